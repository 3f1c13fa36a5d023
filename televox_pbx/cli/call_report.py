"""What `televox call` prints: the live transcript, and the call's result at the end."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from televox_pbx.clock import Clock
from televox_pbx.store.call_lookup import AttemptSummary


@dataclass(slots=True)
class CallReport:
    """What `place_call` did; tests read it, the CLI prints it."""

    exit_code: int
    reason: str = ""
    call_id: str | None = None
    summary: AttemptSummary | None = None
    recording: Path | None = None
    originates: int | None = None  # Originates the embedded simulator saw (None: Asterisk)
    via_daemon: bool = False  # placed by the running daemon over its control channel



class TranscriptPrinter:
    """Prints what the agent says (as it is synthesized) and what the callee said (as it
    is transcribed). The clauses of one agent reply arrive close together and share a
    line; a fixed line after a silence (re-prompt, goodbye) starts a new one."""

    def __init__(self, out: TextIO, clock: Clock, gap_s: float = 2.0) -> None:
        self._out = out
        self._clock = clock
        self._gap_s = gap_s
        self._open: str | None = None  # speaker of the unfinished line
        self._last_agent = float("-inf")

    def say(self, speaker: str, text: str) -> None:
        text = " ".join(text.split())
        if not text:
            return
        now = self._clock.monotonic()
        if speaker == "agent" and self._open == "agent" and \
                now - self._last_agent < self._gap_s:
            self._out.write(" " + text)
        else:
            self.end_line()
            self._out.write(f"{speaker}: {text}")
            self._open = speaker
        if speaker == "agent":
            self._last_agent = now
        else:
            self.end_line()
        self._out.flush()

    def end_line(self) -> None:
        if self._open is not None:
            self._out.write("\n")
            self._open = None

    def note(self, text: str) -> None:
        """A line of our own (not speech), never glued to an agent line."""
        self.end_line()
        self._out.write(text + "\n")
        self._out.flush()


def print_report(report: CallReport, out: TextIO) -> None:
    s = report.summary
    if s is None:
        print("status: unknown", file=out)
        return
    duration = f"{s.duration_s:.1f} s" if s.duration_s is not None else "-"
    lines = [f"status: {s.status}", f"disposition: {s.disposition or '-'}",
             f"duration: {duration}",
             f"recording: {report.recording if report.recording else '-'}"]
    if s.failure:
        lines.insert(1, f"failure: {s.failure}")
    print("\n".join(lines), file=out, flush=True)
