"""Custom HTTP tools: the runner against a local receiver (answers, hangs, 500, garbage,
5 MB), and in a call (scripted fakes, FakeClock): a filler line while the answer is slow,
the failure said plainly, every call kept, and the call goes on."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from test_voice_session import PHONE, Rig, opening_done
from voice_fakes import (
    FakeCall,
    FakeCallbacks,
    FakeDnc,
    FakeTransfer,
    LoudnessVad,
    MemoryCallLog,
    ScriptedLlm,
    ScriptedStt,
    ScriptedTts,
    Timeline,
)

from televox_pbx.agent.custom_tools import (
    HttpToolRunner,
    ToolCallRecord,
    ToolResult,
)
from televox_pbx.agent.dialogue import TextDialogue
from televox_pbx.agent.prompts import LINES
from televox_pbx.clock import Clock, FakeClock, SystemClock
from televox_pbx.config.agent import AgentFile, HttpTool
from televox_pbx.config.campaign import Campaign
from televox_pbx.voice.interfaces import ToolCall
from televox_pbx.voice.session import CallPorts, Engines, SessionConfig
from televox_pbx.voice.session_factory import VoiceSessionFactory

SECRET = "s3cret-for-tests"
NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
SLOTS = {"type": "object", "properties": {"date": {"type": "string"}}, "required": ["date"]}


# --- the runner against a local receiver ------------------------------------------------


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []
    release = asyncio.Event()

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        seen.append({"path": request.path, "body": body,
                     "signature": request.headers.get("X-Televox-Signature")})
        match request.path:
            case "/answers":
                return web.json_response({"slots": ["10:00", "14:30"]})
            case "/hangs":
                await release.wait()
                return web.json_response({})
            case "/fails":
                return web.Response(status=500, text="boom")
            case "/garbage":
                return web.Response(body=b"\x00\xffnot json{{", content_type="text/plain")
            case _:  # /huge: 5 MB of JSON
                return web.Response(body=b'{"x": "' + b"a" * (5 * 1024 * 1024) + b'"}',
                                    content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/{name}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        release.set()
        await runner.cleanup()


def _tool(base: str, path: str, **over: Any) -> HttpTool:
    return HttpTool(name="find_slots", description="Free slots on a day.", parameters=SLOTS,
                    url=f"{base}/{path}", **{"timeout_s": 5.0, **over})


async def _call(base: str, path: str, monkeypatch: pytest.MonkeyPatch,
                **over: Any) -> ToolResult:
    monkeypatch.setenv("TEST_TOOL_SECRET", SECRET)
    tool = _tool(base, path, secret_env="TEST_TOOL_SECRET", **over)
    return await HttpToolRunner([tool], SystemClock()).call("find_slots",
                                                           {"date": "2026-03-03"})


async def test_an_answer_is_signed_and_shown(receiver: tuple[str, list[dict[str, Any]]],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    base, seen = receiver
    result = await _call(base, "answers", monkeypatch)
    assert result.ok and json.loads(result.content) == {
        "find_slots": {"result": {"slots": ["10:00", "14:30"]}}}
    [req] = seen
    assert json.loads(req["body"]) == {"date": "2026-03-03"}
    expected = hmac.new(SECRET.encode(), req["body"], hashlib.sha256).hexdigest()
    assert req["signature"] == f"sha256={expected}"
    r = result.record
    assert (r.tool, r.arguments, r.status, r.http_status) == (
        "find_slots", '{"date": "2026-03-03"}', "ok", 200)
    assert r.response_bytes == len(b'{"slots": ["10:00", "14:30"]}') and r.latency_ms >= 0


@pytest.mark.parametrize(("path", "status", "http"), [
    ("hangs", "timeout", None), ("fails", "http_error", 500),
    ("garbage", "bad_response", 200), ("huge", "too_large", None)])
async def test_failures_end_plainly(receiver: tuple[str, list[dict[str, Any]]],
                                    monkeypatch: pytest.MonkeyPatch, path: str, status: str,
                                    http: int | None) -> None:
    base, _ = receiver
    result = await _call(base, path, monkeypatch, timeout_s=0.5 if path == "hangs" else 10)
    assert not result.ok
    assert (result.record.status, result.record.http_status) == (status, http)
    assert "error" in json.loads(result.content)["find_slots"]
    assert "boom" not in result.content and "aaaa" not in result.content
    if path == "huge":
        assert 16_384 < result.record.response_bytes < 5 * 1024 * 1024


async def test_missing_arguments_are_refused_without_a_request(
        receiver: tuple[str, list[dict[str, Any]]]) -> None:
    base, seen = receiver
    result = await HttpToolRunner([_tool(base, "answers")], SystemClock()).call(
        "find_slots", {})
    assert result.record.status == "bad_arguments" and seen == []


# --- in a call -----------------------------------------------------------------------


class SlowRunner(HttpToolRunner):
    """Answers after `delay_s` on the call's clock, with `result`'s status."""

    def __init__(self, tools: list[HttpTool], clock: Clock, delay_s: float, ok: bool) -> None:
        super().__init__(tools, clock)
        self.delay_s, self.ok = delay_s, ok

    async def call(self, name: str, arguments: dict[str, Any]) -> ToolResult:
        await self.clock.sleep(self.delay_s)
        status = "ok" if self.ok else "timeout"
        shown = {"result": {"slots": ["10:00"]}} if self.ok else {"error": "no answer in time"}
        return ToolResult(self.ok, json.dumps({name: shown}), ToolCallRecord(
            name, json.dumps(arguments), status, 200 if self.ok else None,
            round(self.delay_s * 1000), 20 if self.ok else 0))


class MemoryToolLog:
    def __init__(self) -> None:
        self.kept: list[tuple[str, str, ToolCallRecord]] = []

    async def record(self, call_id: str, agent: str, record: ToolCallRecord) -> None:
        self.kept.append((call_id, agent, record))


def _campaign() -> Campaign:
    agent = AgentFile(name="desk", persona_name="Ava", business="Acme Dental",
                      tools=[_tool("http://127.0.0.1:9", "slots",
                                   filler="One moment, let me look.")])
    return Campaign.model_validate(
        {"name": "c", "agent": "desk", "opening_line": "Hi, this is Ava, an AI assistant.",
         "goal": "Book a visit.", "caller_id": "+15550100000", "trunk": "t"},
        context={"agents": {"desk": agent}})


async def _rig(tmp_path: Path, said: list[str], replies: list[Any], delay_s: float,
               ok: bool, tool_log: MemoryToolLog) -> Rig:
    clock = FakeClock()
    call = FakeCall(clock)
    stt, llm = ScriptedStt(said, clock=clock, delay_s=0.1), ScriptedLlm(replies, clock=clock)
    tts = ScriptedTts(clock=clock)
    dnc, callbacks, transfer, log = (FakeDnc(clock), FakeCallbacks(), FakeTransfer(clock),
                                     MemoryCallLog())
    factory = VoiceSessionFactory(
        Engines(LoudnessVad(), stt, llm, tts),
        CallPorts(dnc, callbacks, log, transfer, tool_calls=tool_log),
        clock, SessionConfig(recordings_dir=tmp_path / "rec"))
    campaign = _campaign()
    session = factory.create(campaign=campaign, call_id=call.call_id, phone=PHONE,
                             variables={}, zone="America/New_York")
    assert session.custom is not None
    session.custom = SlowRunner(list(session.custom.tools.values()), clock, delay_s, ok)
    task = asyncio.create_task(session(call))
    r = Rig(clock, call, Timeline(clock, call), session, stt, llm, tts, dnc, callbacks,
            transfer, log, task, [asyncio.create_task(call.pacer())])
    await clock.advance(0.02)
    return r


async def _stop(r: Rig) -> None:
    for t in [r.task, *r.helpers]:
        t.cancel()
    await asyncio.gather(r.task, *r.helpers, return_exceptions=True)


ASK = [ToolCall("find_slots", {"date": "2026-03-03"})]


async def test_a_slow_answer_gets_a_filler_then_the_reply_speaks_from_it(
        tmp_path: Path) -> None:
    kept = MemoryToolLog()
    r = await _rig(tmp_path, ["Do you have time on Tuesday?"],
                   [ASK, "We have 10 am free on Tuesday."], 2.0, True, kept)
    try:
        await opening_done(r)
        n = len(r.tts.spoken)
        await r.tl.say(1.0)
        await r.tl.until(lambda: "We have 10 am free on Tuesday." in " ".join(r.tts.spoken))
        assert r.spoken_after(n)[0] == "One moment, let me look."
        assert r.llm.schemas[0] is not None and "find_slots" in json.dumps(r.llm.schemas[0])
        # The second round was asked with the tool's result before it.
        assert any(m.role == "tool" and "10:00" in m.content for m in r.llm.calls[1])
        [(call_id, agent, record)] = kept.kept
        assert (call_id, agent, record.status) == (r.call.call_id, "desk", "ok")
    finally:
        await _stop(r)


async def test_a_failure_is_said_plainly_and_the_call_goes_on(tmp_path: Path) -> None:
    kept = MemoryToolLog()
    r = await _rig(tmp_path, ["Any slots on Tuesday?", "Okay, what about parking?"],
                   [ASK, "There is parking behind the building."], 3.0, False, kept)
    try:
        await opening_done(r)
        n = len(r.tts.spoken)
        await r.tl.say(1.0)
        await r.tl.until(lambda: LINES.tool_failed in r.tts.spoken)
        assert r.spoken_after(n) == ["One moment, let me look.", LINES.tool_failed]
        assert [rec.status for _, _, rec in kept.kept] == ["timeout"]
        await r.tl.until(r.idle)
        await r.tl.say(1.0)
        await r.tl.until(lambda: "There is parking behind the building." in
                         " ".join(r.tts.spoken))
        assert not r.done
    finally:
        await _stop(r)


# --- in the text dialogue ----------------------------------------------------------------


async def test_the_text_dialogue_calls_the_tool_and_answers_from_it(
        receiver: tuple[str, list[dict[str, Any]]]) -> None:
    base, seen = receiver
    campaign = _campaign()
    assert campaign.agent.profile is not None
    runner = HttpToolRunner([_tool(base, "answers")], SystemClock())
    llm = ScriptedLlm([ASK, "We have 10 am or 2:30 pm on Tuesday.", ASK])
    d = TextDialogue(campaign, {}, llm, now=NOW, zone="America/New_York", custom=runner)
    line = await d.callee("Do you have time on Tuesday?")
    assert line.text == "We have 10 am or 2:30 pm on Tuesday."
    assert [s["path"] for s in seen] == ["/answers"]
    # The second round was asked with the tool's result before it; the call is kept.
    assert any(m.role == "tool" and "14:30" in m.content for m in llm.calls[1])
    assert [(r.tool, r.status) for r in d.tool_calls] == [("find_slots", "ok")]
    # A failure is said plainly and the dialogue goes on.
    runner.tools["find_slots"] = _tool(base, "fails")
    assert (await d.callee("And on Wednesday?")).text == LINES.tool_failed
    assert [r.status for r in d.tool_calls] == ["ok", "http_error"]
    assert not d.ended
