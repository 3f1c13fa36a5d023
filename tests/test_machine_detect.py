"""The stream AMD detector (voice/machine_detect.py) on synthetic frames: voice is
band-limited noise the test calls speech (VAD probability given), silence is zeros, the
beep a pure tone."""

from __future__ import annotations

import numpy as np
import pytest

from televox_pbx.domain import AmdStatus
from televox_pbx.sim.speech import tone
from televox_pbx.voice.machine_detect import Decision, DetectConfig, MachineDetector, machine_words

FRAME = 0.02
N = int(8000 * FRAME)
_rng = np.random.default_rng(7)


def voice() -> bytes:
    x = _rng.normal(0, 3000, N)
    return np.clip(x, -32000, 32000).astype("<i2").tobytes()


def quiet() -> bytes:
    return bytes(2 * N)


class Feed:
    def __init__(self, config: DetectConfig | None = None) -> None:
        self.d = MachineDetector(0.0, config)
        self.t = 0.0
        self.decisions: list[Decision] = []

    def frames(self, seconds: float, kind: str) -> Decision | None:
        for _ in range(round(seconds / FRAME)):
            if kind == "voice":
                got = self.d.audio(self.t, voice(), 0.9)
            else:
                got = self.d.audio(self.t, quiet(), 0.0)
            self.t += FRAME
            if got is not None:
                self.decisions.append(got)
        return self.decisions[0] if self.decisions else None

    def tone(self, seconds: float, freq: float = 1000.0) -> Decision | None:
        pcm = tone(seconds, freq, 8000)
        for i in range(0, len(pcm), 2 * N):
            got = self.d.audio(self.t, pcm[i:i + 2 * N], 0.2)
            self.t += FRAME
            if got is not None:
                self.decisions.append(got)
        return self.decisions[0] if self.decisions else None


def test_a_short_hello_then_silence_is_a_person_decided_soon_after_it_ends() -> None:
    f = Feed()
    f.frames(0.5, "quiet")
    assert f.frames(0.6, "voice") is None  # "Hello?"
    got = f.frames(1.0, "quiet")
    assert got is not None and got.status is AmdStatus.HUMAN
    assert got.cause.startswith("SHORTGREETING")
    assert got.greeting_end is not None
    assert got.at - got.greeting_end <= DetectConfig().after_greeting_s + FRAME
    assert len(f.decisions) == 1  # decided once


def test_a_greeting_with_short_pauses_is_one_greeting_and_a_long_one_waits_longer() -> None:
    """"Hello, this is Sam" with a comma pause: one greeting of 1.4 s. Longer than a
    "Hello?", so it needs the longer pause a recording does not leave between sentences."""
    f = Feed()
    f.frames(0.4, "voice")
    f.frames(0.2, "quiet")
    f.frames(0.8, "voice")
    assert f.frames(0.6, "quiet") is None
    got = f.frames(0.4, "quiet")
    assert got is not None and got.status is AmdStatus.HUMAN and got.cause == "SHORTGREETING-1.4"
    assert got.greeting_end is not None
    assert abs(got.at - got.greeting_end - DetectConfig().after_long_greeting_s) < FRAME


def test_a_quiet_vad_still_vouches_for_a_short_word() -> None:
    """A high voice's "Hello?" that Silero scored 0.2-0.35 on the real PBX recordings."""
    f = Feed()
    for _ in range(20):
        f.d.audio(f.t, voice(), 0.25)
        f.t += FRAME
    got = f.frames(0.5, "quiet")
    assert got is not None and got.status is AmdStatus.HUMAN


def test_loud_noise_the_vad_rejects_starts_no_greeting() -> None:
    f = Feed()
    for _ in range(100):
        f.d.audio(f.t, voice(), 0.0)
        f.t += FRAME
    assert f.decisions == [] or f.decisions[0].status is AmdStatus.NOTSURE
    assert f.d.tick(2.6) is not None and f.d.decision is not None
    assert f.d.decision.status is AmdStatus.NOTSURE


def test_long_continuous_speech_is_a_machine_before_it_ends() -> None:
    f = Feed()
    f.frames(0.3, "quiet")
    got = f.frames(6.0, "voice")
    assert got is not None and got.status is AmdStatus.MACHINE
    assert got.cause.startswith("LONGGREETING") and not got.beep
    assert got.at < 0.3 + DetectConfig().max_human_greeting_s + 0.1  # mid-greeting


def test_a_beep_is_a_machine_and_says_speak_now() -> None:
    f = Feed()
    f.frames(0.5, "quiet")
    f.tone(0.4)
    got = f.frames(0.1, "quiet")
    assert got is not None and got.status is AmdStatus.MACHINE and got.beep
    assert got.cause == "BEEP"


def test_speech_alone_is_not_a_beep() -> None:
    f = Feed(DetectConfig(max_human_greeting_s=100.0, total_s=100.0))
    f.frames(3.0, "voice")
    assert not f.decisions


def test_the_greetings_words_make_it_a_machine() -> None:
    f = Feed()
    f.frames(1.0, "voice")
    got = f.d.heard("Hi, you've reached Sam Jones.", 1.0)
    assert got is not None and got.status is AmdStatus.MACHINE and got.cause == "WORDS"
    assert f.d.heard("leave a message", 1.1) is None  # decided once


def test_a_persons_words_decide_nothing() -> None:
    f = Feed()
    f.frames(0.8, "voice")
    assert f.d.heard("Hello, this is Sam speaking.", 0.9) is None
    got = f.frames(0.6, "quiet")
    assert got is not None and got.status is AmdStatus.HUMAN


def test_nobody_speaks_is_not_sure() -> None:
    f = Feed()
    f.frames(1.0, "quiet")
    assert f.d.tick(2.0) is None
    got = f.d.tick(2.6)  # silence suppression: no frames, only time
    assert got is not None and got.status is AmdStatus.NOTSURE and got.cause == "INITIALSILENCE"


def test_a_click_does_not_start_the_greeting() -> None:
    f = Feed()
    f.frames(0.04, "voice")
    f.frames(2.6, "quiet")
    assert f.decisions[0].status is AmdStatus.NOTSURE


def test_the_vads_hangover_does_not_delay_a_persons_answer() -> None:
    """Quiet frames the VAD still calls speech (its hangover) end the greeting."""
    f = Feed()
    f.frames(0.6, "voice")
    for _ in range(10):  # 0.2 s of near-silence at VAD 0.8
        f.d.audio(f.t, (np.ones(N) * 20).astype("<i2").tobytes(), 0.8)
        f.t += FRAME
    got = f.frames(0.4, "quiet")
    assert got is not None and got.status is AmdStatus.HUMAN
    assert got.greeting_end is not None and abs(got.greeting_end - 0.6) < 0.03


def test_machine_words() -> None:
    for text in ("Please leave a message after the tone.", "I'm not available right now",
                 "You have reached the voicemail of", "I can\u2019t take your call",
                 "We'll get back to you as soon as possible"):
        assert machine_words(text), text
    for text in ("Hello?", "Yes, speaking.", "Who is this?", "Hi, this is Sam.",
                 "Dr Smith's office, Kim speaking, how can I help you?"):
        assert not machine_words(text), text
    # What may overturn a person's verdict: only a recording says it.
    assert machine_words("The person you are calling is not available.", strict=True)
    assert machine_words("You've reached Kim, leave a message.", strict=True)
    for text in ("Sorry, I can't talk right now.", "I'll get back to you.",
                 "I'm not available on Tuesday."):
        assert not machine_words(text, strict=True), text


def test_campaign_amd_setting() -> None:
    """stream is the default; the booleans of older files keep their old meaning."""
    from app_support import campaign_data

    from televox_pbx.config.campaign import Campaign

    def amd(**over: object) -> str:
        data = campaign_data("c")
        data.pop("amd")
        data.update(over)
        return Campaign.model_validate(data).amd

    assert amd() == "stream"
    assert amd(amd=True) == "asterisk"  # AMD() in the dialplan, as before
    assert amd(amd=False) == "off"
    assert amd(amd="asterisk") == "asterisk"
    with pytest.raises(ValueError, match="amd"):
        amd(amd="maybe")


def test_silence_with_no_frames_ends_the_greeting() -> None:
    """With silence suppression no frames come after the "Hello?": time alone decides."""
    f = Feed()
    f.frames(0.6, "voice")
    assert f.d.tick(f.t + 0.3) is None
    got = f.d.tick(f.t + 0.4)
    assert got is not None and got.status is AmdStatus.HUMAN


def test_a_persons_verdict_is_overturned_once_by_a_recordings_words_in_time() -> None:
    from televox_pbx.voice import turn_events as te
    from televox_pbx.voice.screening import Screening

    s = Screening(0.0, "c1", late_s=8.0)
    t = 0.0
    for _ in range(25):
        s.audio(t, voice(), 0.9)
        t += FRAME
    [human] = s.tick(t + 0.5)
    assert isinstance(human, te.Screened) and human.amd is AmdStatus.HUMAN
    assert s.heard("Hello, who's calling?", 2.0) == []
    [late] = s.heard("You have reached the Parkers.", 3.0)
    assert isinstance(late, te.Screened) and late.amd is AmdStatus.MACHINE
    assert s.decision is not None and s.decision.cause == "LATEWORDS"
    assert s.heard("Leave a message.", 4.0) == []  # once

    other = Screening(0.0, "c2", late_s=8.0)
    other.tick(3.0)  # NOTSURE: nobody spoke
    assert other.heard("leave a message", 9.0) == []  # too late to tell
