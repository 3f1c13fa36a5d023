"""The stream detector (voice/machine_detect.py) fed from a call's loop: the callee's
frames, the clock, the transcripts; out comes a `Screened` event for the turn-taking
core. Campaign `amd: stream`, outbound calls only (an inbound caller is a person).

A greeting that pauses early ("Hello. | You have reached the Parkers...") is taken for a
person. Its words still tell: for `late_s` after the answer, a transcript that only a
recording says ("you have reached", "leave a message") turns the verdict to MACHINE, once;
the agent stops, and the message waits for the beep."""

from __future__ import annotations

import logging

from televox_pbx.domain import AmdStatus
from televox_pbx.voice import turn_events as te
from televox_pbx.voice.machine_detect import (
    Decision,
    DetectConfig,
    MachineDetector,
    machine_words,
)

log = logging.getLogger(__name__)


class Screening:
    def __init__(self, start: float, call_id: str, config: DetectConfig | None = None,
                 late_s: float = 8.0) -> None:
        self.detector = MachineDetector(start, config)
        self.start = start
        self.call_id = call_id
        self.late_s = late_s
        self.revised: Decision | None = None  # a person's verdict the words overturned

    @property
    def decision(self) -> Decision | None:
        return self.revised or self.detector.decision

    def audio(self, t: float, pcm: bytes, prob: float) -> list[te.Event]:
        """One frame of the callee's (8 kHz) with the VAD's probability."""
        if self.decision is not None or not pcm:
            return []
        return self._out(self.detector.audio(t, pcm, prob))

    def tick(self, now: float) -> list[te.Event]:
        return [] if self.decision is not None else self._out(self.detector.tick(now))

    def heard(self, text: str, at: float) -> list[te.Event]:
        first = self.detector.decision
        if not text:
            return []
        if first is None:
            return self._out(self.detector.heard(text, at))
        if first.status is AmdStatus.MACHINE or self.revised is not None \
                or at - self.start > self.late_s or not machine_words(text, strict=True):
            return []
        self.revised = Decision(AmdStatus.MACHINE, "LATEWORDS", at, False, first.greeting_end)
        return self._out(self.revised)

    def _out(self, d: Decision | None) -> list[te.Event]:
        if d is None:
            return []
        end = d.greeting_end
        log.info("amd verdict", extra={
            "call_id": self.call_id, "amd": d.status.value, "amd_cause": d.cause,
            "decided_s": round(d.at - self.start, 3),
            "after_greeting_s": round(d.at - end, 3) if end is not None else None})
        return [te.Screened(d.status, d.at, d.beep)]
