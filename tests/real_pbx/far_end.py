"""The far end of the trunk: who answers which number, and what they say.

sipp/far_end.xml dispatches on the last two digits of the dialed number; this table holds
the same codes and, for the ones that answer, the callee's audio: lines synthesized with the
project's own Piper voice, keyed digits, a voicemail beep, written into one RTP pcap per
code (rtp_pcap.py) that SIPp plays from the answer on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from rtp_pcap import Digit, Speech, rtp_stream, write_pcap

from televox_pbx.sim.speech import beep

SpeechSource = Callable[[str], Awaitable[bytes]]


@dataclass(frozen=True, slots=True)
class Line:
    at_s: float
    text: str


@dataclass(frozen=True, slots=True)
class Callee:
    """One answering far end: what it says (seconds after the answer) and when it hangs
    up (the BYE timeout in far_end.xml; RTP runs until then)."""

    code: str
    hangup_s: float
    lines: tuple[Line, ...] = ()
    digits: tuple[Digit, ...] = ()
    beep_after_s: float | None = None  # a voicemail beep this long after the last line
    notes: str = ""


BUSY, UNAVAILABLE, NOT_FOUND, RING_FOREVER = "86", "03", "04", "80"
HUMAN, EARLY_HANGUP, LONG_CALL, HELLO_THEN_QUESTION = "10", "11", "12", "13"
DTMF_OPT_OUT, DTMF_IN_DISCLOSURE, VOICEMAIL = "20", "21", "30"

FIRST_WORDS = "Hello, this is Sam speaking."
QUESTION, QUESTION_AT_S = "Sorry, who is calling?", 4.0
GREETING = ("Hi, you have reached the voicemail of Sam Jones. I can't take your call right "
            "now. Please leave a message after the tone.")

CALLEES: dict[str, Callee] = {c.code: c for c in (
    Callee(HUMAN, 24.0, (Line(0.5, FIRST_WORDS),
                         Line(9.0, "Yes, I have a minute. What is it about?"),
                         Line(17.0, "Okay, thank you. Goodbye."))),
    Callee(EARLY_HANGUP, 4.0, (Line(0.3, "Hello?"),),
           notes="says hello, hangs up 4 s after the answer, while the opening plays"),
    Callee(LONG_CALL, 60.0, (Line(0.5, "Hello?"), Line(8.0, "Yes, go on, I am listening."))),
    # With `amd: stream` the held opening starts ~0.5 s after the "Hello?" (up to 3 s on a
    # loaded box, its render starved) and plays ~5 s: the question falls in it.
    Callee(HELLO_THEN_QUESTION, 16.0, (Line(0.5, "Hello?"), Line(QUESTION_AT_S, QUESTION))),
    # Up to 30 s: the daemon hangs up first (the sequence daemon_hangs_up) even when the key
    # cut the disclosure, so the goodbye says it first (~8 s), with openings late under load.
    Callee(DTMF_OPT_OUT, 30.0, (Line(0.5, "Hello?"),), (Digit(8.0, "9"),)),
    # The key comes while the disclosure plays: the opening's first audio came 1.2-3.1 s
    # after the answer on a loaded box (it is rendered whole, beside the LLM's prefill),
    # and it plays ~4.8 s. At 1.5 s the key often came before any audio, so nothing was
    # cut (the disclosure was owed, and said, all the same).
    Callee(DTMF_IN_DISCLOSURE, 24.0, (Line(12.0, "Okay."),), (Digit(4.0, "1"),)),
    Callee(VOICEMAIL, 30.0, (Line(0.3, GREETING),), beep_after_s=0.5),
)}
# The inbound caller (sipp/caller.xml): waits for the agent's opening, asks not to be called
# again, and presses 9 (the opt-out key) too, so the case tests where the opt-out is stored,
# not how well whisper hears a phone line (it once heard "take me to offer call and list").
INBOUND_OPT_OUT = Callee("inbound", 25.0, (Line(7.0, "Please do not call me again."),),
                         (Digit(10.0, "9"),))


def number(case: int, code: str) -> str:
    """A NANP test number (555 exchange) whose last two digits pick the far end."""
    return f"+1212555{case:02d}{code}"


def synthesizer(speech: SpeechSource) -> Callable[[str], bytes]:
    """Blocking 8 kHz PCM of a line (Piper takes ~0.1 s a line: no cache needed)."""
    import asyncio

    return lambda text: asyncio.run(speech(text))


def write_pcaps(out: Path, pcm: Callable[[str], bytes]) -> dict[str, Path]:
    """NN.pcap for every answering far end (and inbound.pcap), into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for c in [*CALLEES.values(), INBOUND_OPT_OUT]:
        items = [Speech(line.at_s, pcm(line.text)) for line in c.lines]
        if c.beep_after_s is not None and items:
            last = items[-1]
            items.append(Speech(last.at_s + len(last.pcm) / 16000 + c.beep_after_s, beep()))
        path = out / f"{c.code}.pcap"
        write_pcap(path, rtp_stream(c.hangup_s, items, list(c.digits)))
        paths[c.code] = path
    return paths
