"""IVR campaigns (issue 16 item 2): the flow's validation with file:line, prompts checked
and converted to 8 kHz mono once, a call that gathers, branches, records and stores its
answers, the opt-out key, and the CSV export."""

from __future__ import annotations

import asyncio
import csv
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from dialer_support import make_campaign
from pydantic import ValidationError
from voice_fake_engines import ScriptedTts
from voice_fakes import FakeCall, FakeDnc, Timeline

from televox_pbx.clock import FakeClock
from televox_pbx.config.campaign import Campaign
from televox_pbx.config.loader import load_campaigns
from televox_pbx.domain import Disposition
from televox_pbx.ivr.prompts import PromptError, PromptLibrary, check_prompts, read_wav
from televox_pbx.ivr.session import IvrCall, IvrResult
from televox_pbx.store import Store
from televox_pbx.store.campaigns import upsert_campaign
from televox_pbx.store.ivr import answers, export_rows

CALL_ID = "00000000-0000-4000-8000-000000000001"
INTRO = "Hello, this is Acme's automated AI survey. Press 9 to stop these calls."


def flow(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "opt_out_key": "9",
        "steps": [
            {"id": "intro", "play": [{"say": INTRO}]},
            {"id": "q1", "play": [{"file": "q1.wav"}],
             "gather": {"question": "satisfied", "valid": "12", "timeout_s": 3, "retries": 1},
             "branch": {"1": "q2", "2": "why"}},
            {"id": "why", "play": [{"say": "Tell us why after the tone."}],
             "record": {"question": "comment", "max_s": 2}, "next": "bye"},
            {"id": "q2", "play": [{"say": "Would you recommend us? 1 yes, 2 no."}],
             "gather": {"question": "recommend", "valid": "12", "timeout_s": 3}},
            {"id": "bye", "play": [{"say": "Thank you. Goodbye."}], "hangup": True},
        ]}
    base.update(overrides)
    return base


def ivr_campaign(**overrides: Any) -> Campaign:
    return make_campaign(kind="ivr", ivr=flow(**overrides))


def write_wav(path: Path, seconds: float, rate: int = 16000, channels: int = 2,
              width: int = 2) -> None:
    n = int(seconds * rate)
    t = np.arange(n) / rate
    mono = (6000 * np.sin(2 * np.pi * 300 * t)).astype("<i2")
    data = np.repeat(mono[:, None], channels, axis=1).tobytes()
    if width == 3:
        data = b"".join(b"\0" + data[i:i + 2] for i in range(0, len(data), 2))
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(data)


def test_a_valid_flow_lists_its_questions() -> None:
    assert ivr_campaign().ivr is not None
    assert ivr_campaign().ivr.questions() == ["satisfied", "comment", "recommend"]  # type: ignore[union-attr]


@pytest.mark.parametrize(("change", "message"), [
    ({"opt_out_key": "1"}, "the opt-out key 1 is also an answer"),
    ({"steps": [{"id": "a", "play": [{"say": INTRO}], "next": "nowhere"}]}, "no step"),
    ({"steps": [{"id": "a", "play": [{"say": INTRO}]}, {"id": "a", "hangup": True}]},
     "unique"),
    ({"steps": [{"id": "a", "play": [{"say": "Hello from Acme."}]}]}, "AI"),
    ({"steps": [{"id": "a", "play": [{"file": "../x.wav"}]}]}, "inside the media folder"),
    ({"steps": [{"id": "a", "play": [{"say": INTRO}],
                 "gather": {"question": "q", "valid": "1"}, "branch": {"2": "a"}}]},
     "does not accept"),
])
def test_flow_errors(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ivr_campaign(**change)


def test_kind_ivr_needs_a_flow() -> None:
    with pytest.raises(ValidationError, match="needs an ivr: flow"):
        make_campaign(kind="ivr")


def test_flow_errors_carry_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "survey.yaml").write_text(
        "name: survey\nkind: ivr\ncaller_id: '+15550100000'\ntrunk: trunk\n"
        "agent:\n  persona_name: Ava\n  business: Acme\n  goal: survey\n"
        "  opening_line: Hi, I'm Ava, an AI assistant.\n"
        "ivr:\n  steps:\n    - id: q1\n      play: [{file: q1.wav}]\n"
        "      gather: {question: q1, valid: 12x}\n")
    good, issues = load_campaigns(tmp_path)
    assert not good
    assert any(i.line is not None and i.line >= 14 and "not keypad keys: x" in str(i)
               for i in issues), [str(i) for i in issues]


def test_prompts_checked_for_format_and_length(tmp_path: Path) -> None:
    cfg = ivr_campaign(max_prompt_s=5).ivr
    assert cfg is not None
    assert check_prompts(cfg, tmp_path) == [
        f"step q1: q1.wav: not in the media folder ({tmp_path})"]
    write_wav(tmp_path / "q1.wav", 6.0)
    assert "6.0 s long; at most 5 s" in check_prompts(cfg, tmp_path)[0]
    write_wav(tmp_path / "q1.wav", 1.0, width=3)
    assert "24-bit" in check_prompts(cfg, tmp_path)[0]
    (tmp_path / "q1.wav").write_bytes(b"RIFF not really")
    assert "not a PCM WAV" in check_prompts(cfg, tmp_path)[0]
    write_wav(tmp_path / "q1.wav", 1.0)
    assert check_prompts(cfg, tmp_path) == []
    with pytest.raises(PromptError):
        read_wav(tmp_path / "missing.wav", 5)


async def test_prompts_are_converted_to_8k_mono_once(tmp_path: Path) -> None:
    media, cache = tmp_path / "media", tmp_path / "cache"
    media.mkdir()
    write_wav(media / "q1.wav", 1.0, rate=16000, channels=2)
    cfg = ivr_campaign().ivr
    assert cfg is not None
    tts = ScriptedTts()
    lib = PromptLibrary(media, cache, tts)
    await lib.prepare(cfg)
    q1 = await lib.audio(cfg.steps[1].play[0])
    assert abs(len(q1) - 16000) <= 64  # 1 s of 8 kHz slin16 mono
    assert len(list(cache.iterdir())) == 5  # one WAV and four TTS texts, each cached
    assert len(tts.spoken) == 4
    again = PromptLibrary(media, cache, ScriptedTts())
    await again.prepare(cfg)
    assert await again.audio(cfg.steps[1].play[0]) == q1  # from the cache, no work


class Rig:
    def __init__(self, store: Store, tmp_path: Path, campaign: Campaign) -> None:
        self.clock = FakeClock()
        self.call = FakeCall(self.clock, CALL_ID)
        self.line = Timeline(self.clock, self.call)
        self.dnc = FakeDnc(self.clock)
        self.results: list[IvrResult] = []
        media = tmp_path / "media"
        media.mkdir(exist_ok=True)
        write_wav(media / "q1.wav", 1.0, rate=8000, channels=1)
        self.ivr = IvrCall(campaign, CALL_ID, "+12125550101",
                           PromptLibrary(media, tmp_path / "cache",
                                         ScriptedTts(seconds_per_char=0.02)),
                           store, self.clock, self.dnc, tmp_path / "rec", self.results.append)

    async def run(self, script: Any) -> None:
        pacer = asyncio.create_task(self.call.pacer())
        session = asyncio.create_task(self.ivr(self.call))
        for _ in range(10):  # both tasks start (and sleep on the clock) before time moves
            await asyncio.sleep(0)
        await script(self)
        await self.line.until(lambda: session.done(), 60)
        pacer.cancel()
        await session


async def _attempt(store: Store, campaign: Campaign) -> int:
    cid = await upsert_campaign(store, campaign)
    await store.execute("INSERT INTO call_attempts(id, campaign_id, phone, status) VALUES"
                        " (?, ?, '+12125550101', 'answered')", (CALL_ID, cid))
    return cid


def _playing(rig: Rig) -> bool:
    return rig.call.output.queued_seconds > 0


async def test_keys_1_then_2_are_stored_and_exported(store: Store, tmp_path: Path) -> None:
    campaign = ivr_campaign()
    cid = await _attempt(store, campaign)
    rig = Rig(store, tmp_path, campaign)

    async def script(r: Rig) -> None:
        await r.line.wait(4.0)  # the intro plays, then q1's prompt
        r.call.push_dtmf("1")  # barge into q1: satisfied
        await r.line.wait(1.0)
        await r.line.until(lambda: not _playing(r))  # q2's prompt played out
        r.call.push_dtmf("2")  # recommend: no
    await rig.run(script)
    got = [(a.question, a.digit) for a in await answers(store, CALL_ID)]
    assert got == [("satisfied", "1"), ("recommend", "2")]
    assert rig.results == [(3, None)]
    assert rig.dnc.added == []
    header, rows = await export_rows(store, cid, campaign.ivr.questions())  # type: ignore[union-attr]
    assert header[-3:] == ["satisfied", "comment", "recommend"]
    assert rows[0][0] == CALL_ID and rows[0][-3:] == ["1", "", "2"]


async def test_invalid_key_and_timeout_retry_then_give_up(store: Store,
                                                         tmp_path: Path) -> None:
    campaign = ivr_campaign()
    await _attempt(store, campaign)
    rig = Rig(store, tmp_path, campaign)

    async def script(r: Rig) -> None:
        await r.line.wait(5.0)
        r.call.push_dtmf("7")  # not a valid key: asked again, then the timeout ends it
    await rig.run(script)
    assert await answers(store, CALL_ID) == []
    assert rig.results == [(0, None)]  # nothing answered: the dialer sees no answer


async def test_branch_to_a_recorded_answer(store: Store, tmp_path: Path) -> None:
    campaign = ivr_campaign()
    await _attempt(store, campaign)
    rig = Rig(store, tmp_path, campaign)

    async def script(r: Rig) -> None:
        await r.line.wait(4.0)
        r.call.push_dtmf("2")  # not satisfied: why? The caller talks through the prompt
        await r.line.say(6.0)  # and the tone; what comes after the tone is the answer
    await rig.run(script)
    got = await answers(store, CALL_ID)
    assert [(a.question, a.digit) for a in got] == [("satisfied", "2"), ("comment", None)]
    assert got[1].recording is not None
    with wave.open(got[1].recording) as w:
        assert w.getframerate() == 8000 and w.getnframes() > 0


async def test_opt_out_key_lists_the_number(store: Store, tmp_path: Path) -> None:
    campaign = ivr_campaign()
    await _attempt(store, campaign)
    rig = Rig(store, tmp_path, campaign)

    async def script(r: Rig) -> None:
        await r.line.wait(1.0)
        r.call.push_dtmf("9")  # during the intro
    await rig.run(script)
    assert [(p, s) for p, s, _ in rig.dnc.added] == [("+12125550101", "call:ivr")]
    assert rig.results == [(1, Disposition.OPT_OUT)]


def test_export_cli_writes_one_column_per_question(tmp_path: Path) -> None:
    import yaml

    from televox_pbx.cli import main

    (tmp_path / "campaigns").mkdir()
    data = make_campaign(name="survey", kind="ivr", ivr=flow()).model_dump(
        mode="json", exclude_none=True)
    (tmp_path / "campaigns" / "survey.yaml").write_text(yaml.safe_dump(data))
    settings = tmp_path / "televox.yaml"
    settings.write_text(f"database: {{path: {tmp_path / 't.db'}}}\n"
                        f"campaigns_dir: {tmp_path / 'campaigns'}\n")

    async def seed() -> None:
        s = await Store.open(tmp_path / "t.db")
        try:
            cid = await upsert_campaign(s, Campaign.model_validate(data))
            await s.execute("INSERT INTO call_attempts(id, campaign_id, phone, status)"
                            " VALUES (?, ?, '+12125550101', 'completed')", (CALL_ID, cid))
            await s.execute("INSERT INTO ivr_answers(attempt_id, campaign_id, question,"
                            " digit, at) VALUES (?, ?, 'recommend', '1', 'x')", (CALL_ID, cid))
        finally:
            await s.close()
    asyncio.run(seed())
    out = tmp_path / "answers.csv"
    assert main(["-c", str(settings), "ivr", "export", "survey", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert rows[0]["recommend"] == "1" and rows[0]["satisfied"] == ""
    assert main(["-c", str(settings), "ivr", "check", "survey"]) == 1  # no q1.wav yet
