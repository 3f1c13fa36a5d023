"""Sans-IO pieces of the turn loop: endpointing, echo, beeps, clauses, heard text, WAV."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest
from voice_fakes import scale, tone

from televox_pbx.voice.endpointing import (
    BeepDetector,
    EchoGate,
    Edge,
    EndpointConfig,
    Endpointer,
    rms,
)
from televox_pbx.voice.recording import StereoRecorder
from televox_pbx.voice.turns import ClauseSplitter, SpokenPiece, heard_prefix

F = 0.02
GREETING = Path(__file__).resolve().parent / "fixtures" / "voicemail-greeting-asterisk22.wav"


def test_endpointer_onset_and_timer_end() -> None:
    ep = Endpointer(EndpointConfig(onset_s=0.06, silence_s=0.5))
    t = 0.0
    edges = []
    for _ in range(10):  # 200 ms of speech
        edges.append(ep.feed(0.9, t, F, agent_playing=False))
        t += F
    starts = [e for e in edges if e is not None]
    assert len(starts) == 1 and starts[0].edge is Edge.START and starts[0].at == 0.0
    # no frames at all afterwards: only ticks
    assert ep.tick(t + 0.49) is None
    end = ep.tick(t + 0.5)
    assert end is not None and end.edge is Edge.END and abs(end.at - t) < 1e-9
    assert not ep.speaking


def test_endpointer_times_the_end_where_the_energy_ends_not_the_vad_hangover() -> None:
    ep = Endpointer(EndpointConfig(onset_s=0.06, silence_s=0.5))
    t = 0.0
    for _ in range(25):  # 0.5 s of speech at level 3000 (one quiet consonant: 100, -30 dB)
        ep.feed(0.9, t, F, agent_playing=False, level=100.0 if t == 0.2 else 3000.0)
        t += F
    voice_end = t
    assert ep.last_speech == voice_end
    edges = []
    for _ in range(10):  # the VAD still says speech, but the level is at -32 dB
        edges.append(ep.feed(0.9, t, F, agent_playing=False, level=75.0))
        t += F
    assert ep.last_speech == voice_end and edges == [None] * 10
    end = ep.tick(voice_end + 0.5)
    assert end is not None and end.edge is Edge.END and end.at == voice_end
    # without levels (or with the ratio off) the VAD alone decides, as before
    plain = Endpointer(EndpointConfig(tail_level_ratio=None))
    for i in range(10):
        plain.feed(0.9, i * F, F, agent_playing=False, level=3000.0 if i < 5 else 10.0)
    assert plain.last_speech == pytest.approx(10 * F)


def test_endpointer_needs_more_while_agent_plays() -> None:
    ep = Endpointer(EndpointConfig())
    assert ep.feed(0.6, 0.0, F, agent_playing=True) is None  # under the barge-in threshold
    t = 0.0
    for i in range(6):
        edge = ep.feed(0.9, t, F, agent_playing=True)
        t += F
        assert (edge is not None) == (i == 5)  # 120 ms onset


def test_speech_dip_resets_onset() -> None:
    ep = Endpointer(EndpointConfig(onset_s=0.06))
    assert ep.feed(0.9, 0.0, F, agent_playing=False) is None
    assert ep.feed(0.1, 0.02, F, agent_playing=False) is None
    assert ep.feed(0.9, 0.04, F, agent_playing=False) is None
    assert ep.pending_onset == 0.04


def test_echo_gate() -> None:
    gate = EchoGate(EndpointConfig())
    played = tone(F, 8000)
    gate.played(1.0, rms(played))
    assert gate.is_echo(1.05, scale(played, 0.25))
    assert not gate.is_echo(1.05, tone(F, 4000, freq=300))
    assert not gate.is_echo(2.0, scale(played, 0.25)), "nothing played recently"


def test_echo_gate_keeps_a_quiet_callee_who_does_not_sound_like_us() -> None:
    """Quieter than our voice is not enough to be echo: it must also look like it."""
    gate = EchoGate(EndpointConfig())
    voice = tone(0.4, 8000, freq=220)
    for i in range(20):  # 0.4 s of our voice went out, frame by frame
        frame = voice[i * 320:(i + 1) * 320]
        gate.played(1.0 + i * F, rms(frame), frame)
    echo = scale(voice, 0.25)  # our voice back at -12 dB
    callee = tone(0.4, 2000, freq=150)  # a callee as quiet, saying something else
    t = 1.04
    for i in range(5):
        gate.heard(echo[i * 320:(i + 1) * 320])
    assert gate.is_echo(t + 0.1, echo[1600:1920])
    other = EchoGate(EndpointConfig())
    for i in range(20):
        frame = voice[i * 320:(i + 1) * 320]
        other.played(1.0 + i * F, rms(frame), frame)
    for i in range(5):
        other.heard(callee[i * 320:(i + 1) * 320])
    assert not other.is_echo(t + 0.1, callee[1600:1920])
    level_only = EchoGate(EndpointConfig(echo_correlation=None))
    level_only.played(1.0, rms(voice[:320]), voice[:320])
    assert level_only.is_echo(1.05, callee[:320]), "the old rule: any quiet sound is echo"


def test_beep_detector() -> None:
    det = BeepDetector()
    frames = [tone(F, 6000, 180)] * 10 + [tone(F, 8000, 1000)] * 15 + [bytes(320)] * 3
    hits = [i for i, f in enumerate(frames) if det.feed(f)]
    assert hits == [25]
    det2 = BeepDetector()
    assert not any(det2.feed(tone(F, 8000, 1000)) for _ in range(3)) and not det2.feed(
        bytes(320)), "a blip shorter than min_s is no beep"


def test_beep_detector_waits_for_the_beep_of_a_real_greeting() -> None:
    """The callee side of a real voicemail call (Asterisk 22, tests/real_pbx, far end 30):
    Piper's greeting from where AMD() let go of it, then the 1 kHz beep at 3.92-4.32 s.
    The greeting's vowels must not pass for the beep (they did at 0.54 s)."""
    with wave.open(str(GREETING), "rb") as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
        pcm = w.readframes(w.getnframes())
    for frame in (320, 480):  # 20 and 30 ms AudioSocket frames (the far end's ptime)
        det = BeepDetector()
        hits = [round((i + 1) * frame / 16000, 2) for i in range(len(pcm) // frame)
                if det.feed(pcm[i * frame:(i + 1) * frame])]
        assert len(hits) == 1 and 4.32 <= hits[0] <= 4.4, (frame, hits)


def test_clause_splitter() -> None:
    sp = ClauseSplitter(min_chars=12)
    out: list[str] = []
    text = "Hi, Mr. Smith. It costs 3.5 dollars, or so. Want it? Yes"
    for word in text.split(" "):
        out += sp.push(word + " ")
    rest = sp.flush()
    assert out == ["Hi, Mr. Smith.", "It costs 3.5 dollars,", "or so. Want it?"]
    assert rest == "Yes"


def test_heard_prefix() -> None:
    pieces = [SpokenPiece("Hello there.", 0, 1000), SpokenPiece("We sell solar panels.", 1000,
                                                                 3000)]
    assert heard_prefix(pieces, 3000) == ("Hello there. We sell solar panels.", False)
    assert heard_prefix(pieces, 1000) == ("Hello there.", True)
    assert heard_prefix(pieces, 2000) == ("Hello there. We sell", True)
    assert heard_prefix(pieces, 500) == ("Hello", True)
    assert heard_prefix(pieces, 0) == ("", True)


def test_stereo_recording_places_audio_by_time(tmp_path: Path) -> None:
    rec = StereoRecorder(t0=10.0)
    rec.on_inbound(tone(0.1, 5000), 8000, 10.5)  # after 0.5 s with no frames
    rec.on_outbound(tone(0.02, 3000), 10.0)
    rec.on_inbound(tone(0.1, 5000, freq=200, rate=16000), 16000, 10.6)
    path = tmp_path / "a" / "call.wav"
    seconds = rec.write_wav(path)
    assert abs(seconds - 0.7) < 0.01
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getframerate()) == (2, 8000)
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)
    left, right = data[:, 0], data[:, 1]
    assert not left[:3900].any() and left[4000:4800].any()
    assert right[:160].any() and not right[200:].any()
