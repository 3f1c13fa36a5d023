"""The LLM call summary: written after an answered call hangs up, off the critical path:
nothing is generated while a call is live or being dialled, a summary under way stops when
a call starts (and is written later), and failures end in a `failed` row, not a loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from api_support import api_settings, running_api, until
from app_support import campaign_data, fake_engines, write_campaign

from televox_pbx.agent import call_summary
from televox_pbx.agent.call_summary import (
    MAX_SUMMARY_CHARS,
    SummaryWorker,
    clean_summary,
    summary_prompt,
)
from televox_pbx.clock import FakeClock
from televox_pbx.store import Store
from televox_pbx.store.call_summaries import get_summary, save_summary
from televox_pbx.store.transcripts import TurnRow
from televox_pbx.voice.interfaces import ChatMessage, LlmDelta, ToolCall

# The tests that take `store` run on SQLite and on the throw-away PostgreSQL.
pytestmark = pytest.mark.both_backends

TURNS = [("agent", "Hi Ann, I'm Ava, an AI assistant calling for Acme."),
         ("callee", "Oh hi. I'm busy now, call me back Tuesday at 3, on 212 555 0123."),
         ("agent", "Of course, Tuesday at three. Goodbye!")]


@dataclass
class FakeLlm:
    """Streams `reply` word by word; `on_piece(i)` runs before piece i is handed over;
    `fail` raises instead of answering."""

    reply: str = "Ann was busy and asked for a callback on Tuesday at 3 pm on 2125550123."
    fail: bool = False
    on_piece: Any = None
    prompts: list[list[ChatMessage]] = field(default_factory=list)
    closed: int = 0

    async def stream(self, messages: Sequence[ChatMessage],
                     tools_schema: dict[str, Any] | None = None) -> AsyncIterator[LlmDelta]:
        self.prompts.append(list(messages))
        if self.fail:
            raise RuntimeError("model crashed")
        try:
            for i, word in enumerate(self.reply.split(" ")):
                if self.on_piece is not None:
                    self.on_piece(i)
                yield LlmDelta(text=word + " ")
        except GeneratorExit:
            self.closed += 1
            raise


@dataclass
class Live:
    calls: int = 0

    async def busy(self) -> bool:
        return self.calls > 0


async def seed_call(store: Store, call_id: str, *, answered: bool = True, hung_up: bool = True,
                    status: str = "completed", hangup_at: str = "2026-01-05T15:01:00Z",
                    turns: Sequence[tuple[str, str]] = TURNS) -> None:
    if await store.fetchone("SELECT 1 FROM campaigns WHERE id = 1") is None:
        await store.execute("INSERT INTO campaigns(id, name) VALUES (1, 'demo')")
    await store.execute(
        "INSERT INTO call_attempts(id, campaign_id, phone, status, answered_at, hangup_at,"
        " turns, duration_s) VALUES (?, 1, '+12125550123', ?, ?, ?, ?, 12.5)",
        (call_id, status, "2026-01-05T15:00:00Z" if answered else None,
         hangup_at if hung_up else None, sum(1 for s, _ in turns if s == "callee")))
    for i, (speaker, text) in enumerate(turns):
        await store.execute(
            "INSERT INTO transcripts(attempt_id, turn, speaker, text) VALUES (?, ?, ?, ?)",
            (call_id, i, speaker, text))


async def test_summaries_wait_for_live_calls_then_go_oldest_first(store: Store) -> None:
    await seed_call(store, "call-b", hangup_at="2026-01-05T15:02:00Z")
    await seed_call(store, "call-a", hangup_at="2026-01-05T15:01:00Z")
    await seed_call(store, "unanswered", answered=False, status="no_answer", turns=())
    await seed_call(store, "silent", turns=[("agent", "Hello?")])  # the callee said nothing
    await seed_call(store, "live", hung_up=False, status="answered")
    live, llm = Live(calls=1), FakeLlm()
    worker = SummaryWorker(store, llm, FakeClock(), live.busy, settle_s=0)
    assert await worker.step() == 0 and llm.prompts == []  # a call is live: nothing runs
    live.calls = 0
    assert await worker.step() == 2
    first = llm.prompts[0]
    assert first[0].role == "system"
    assert "Person: Oh hi. I'm busy now" in first[1].content
    assert "Agent: Hi Ann" in first[1].content
    a, b = await get_summary(store, "call-a"), await get_summary(store, "call-b")
    assert a is not None and a.status == "done" and b is not None
    assert a.text == "Ann was busy and asked for a callback on Tuesday at 3 pm on [number]."
    for untouched in ("unanswered", "silent", "live"):
        assert await get_summary(store, untouched) is None
    assert await worker.step() == 0 and len(llm.prompts) == 2  # nothing is written twice


async def test_a_call_going_live_stops_the_summary(store: Store) -> None:
    await seed_call(store, "call-a")
    live = Live()

    def call_starts(i: int) -> None:
        if i == 3:
            live.calls = 1
    llm = FakeLlm(on_piece=call_starts)
    worker = SummaryWorker(store, llm, FakeClock(), live.busy, settle_s=0)
    assert await worker.step() == 0
    assert worker.preempted == 1 and llm.closed == 1  # the stream was stopped, not drained
    assert await get_summary(store, "call-a") is None
    assert await worker.step() == 0  # still live: it waits
    live.calls, llm.on_piece = 0, None
    assert await worker.step() == 1
    assert (await get_summary(store, "call-a")) is not None


async def test_failures_end_in_a_failed_row_and_the_queue_moves_on(store: Store) -> None:
    await seed_call(store, "call-a", hangup_at="2026-01-05T15:01:00Z")
    await seed_call(store, "call-b", hangup_at="2026-01-05T15:02:00Z")
    live, llm = Live(), FakeLlm(fail=True)
    worker = SummaryWorker(store, llm, FakeClock(), live.busy, settle_s=0, max_tries=3)
    assert await worker.step() == 0
    assert await worker.step() == 0
    assert await get_summary(store, "call-a") is None  # two tries: still queued
    assert await worker.step() == 0  # third: failed; call-b's first try fails too
    failed = await get_summary(store, "call-a")
    assert failed is not None and failed.status == "failed" and failed.text is None
    llm.fail = False
    assert await worker.step() == 1
    done = await get_summary(store, "call-b")
    assert done is not None and done.status == "done"


async def test_the_worker_runs_on_the_clock(store: Store) -> None:
    await seed_call(store, "call-a")
    clock, live = FakeClock(), Live(calls=1)
    worker = SummaryWorker(store, FakeLlm(), clock, live.busy, poll_s=5.0, settle_s=10.0)
    task = asyncio.create_task(worker.run())
    try:
        await clock.advance(30)
        assert worker.written == 0
        live.calls = 0

        async def progressed() -> bool:
            await clock.advance(5)  # the store's work takes real time: give it some
            return worker.written == 1
        await until(progressed, 20)
    finally:
        task.cancel()


async def test_quiet_for_a_while_first_and_old_calls_are_left_alone(store: Store) -> None:
    await seed_call(store, "recent", hangup_at="2026-01-05T14:00:00Z")
    await seed_call(store, "last-month", hangup_at="2025-12-05T14:00:00Z")
    clock, live = FakeClock(), Live()
    worker = SummaryWorker(store, FakeLlm(), clock, live.busy, settle_s=10.0,
                           max_age_days=7)
    assert await worker.step() == 0  # idle from now on: not yet for 10 s
    await clock.advance(6)
    live.calls = 1
    assert await worker.step() == 0  # a call came and went: the wait starts again
    live.calls = 0
    await clock.advance(6)
    assert await worker.step() == 0
    await clock.advance(4)
    assert await worker.step() == 0
    await clock.advance(6)
    assert await worker.step() == 1
    assert await get_summary(store, "recent") is not None
    assert await get_summary(store, "last-month") is None


def test_prompt_and_cleanup() -> None:
    long_turns = [TurnRow(i, "callee" if i % 2 else "agent", f"sentence number {i}. " * 20)
                  for i in range(100)]
    prompt = summary_prompt(long_turns)[1].content
    assert "[...]" in prompt and "sentence number 0." in prompt and "number 99." in prompt
    assert len(prompt) < 3300
    text = clean_summary("  One.\n Two, call +1 (212) 555-0123.  " + "Three is long. " * 60)
    assert text.startswith("One. Two, call [number]. Three")
    assert len(text) <= MAX_SUMMARY_CHARS and text.endswith(".")


async def test_the_call_detail_returns_the_summary(tmp_path: Path) -> None:
    async with running_api(api_settings(tmp_path), dial=False) as api:
        await seed_call(api.store, "11111111-aaaa-bbbb-cccc-000000000001")
        await seed_call(api.store, "11111111-aaaa-bbbb-cccc-000000000002")
        await save_summary(api.store, "11111111-aaaa-bbbb-cccc-000000000001", status="done",
                           text="Ann asked for a callback on Tuesday.", tries=1,
                           at=FakeClock().now())
        one = await api.json("GET", "/calls/11111111-aaaa-bbbb-cccc-000000000001")
        assert one["summary"] == "Ann asked for a callback on Tuesday."
        assert one["summary_status"] == "done"
        two = await api.json("GET", "/calls/11111111-aaaa-bbbb-cccc-000000000002")
        assert two["summary"] is None and two["summary_status"] == "pending"
        async with api.http.get("/api/v1/metrics") as resp:
            assert 'televox_call_summaries{status="done"} 1' in await resp.text()


async def test_the_daemon_summarises_an_answered_call_after_hang_up(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Wired end to end: a call through the simulator, then the summary in its detail,
    written by the same LLM after the call ended."""
    monkeypatch.setattr(call_summary, "SETTLE_S", 0.5)  # the daemon's worker, real time
    monkeypatch.setattr(call_summary, "POLL_S", 0.2)
    callee = "Yes, tell me more please."
    settings = api_settings(tmp_path, {"+12125550101": {
        "behaviour": "answer", "ring_s": 0.2, "script": [{"say": callee}]}}, summaries=True)
    write_campaign(settings, campaign_data("crm"))
    engines = fake_engines([callee], [
        ["Great, we will email you. Goodbye! ", ToolCall("end_call", {"reason": "done"})],
        "The person wanted to hear more and will get an email."])
    async with running_api(settings, engines) as api:
        placed = await api.json("POST", "/calls", 201,
                                json={"phone": "2125550101", "campaign": "crm"})

        async def summarised() -> dict[str, Any] | None:
            d = await api.json("GET", f"/calls/{placed['call_id']}")
            return d if d["summary_status"] == "done" else None
        call = await until(summarised, 30)
        assert call["summary"] == "The person wanted to hear more and will get an email."
        assert call["status"] == "completed"
        prompt = engines.llm.calls[-1]  # type: ignore[attr-defined]
        assert f"Person: {callee}" in prompt[1].content
