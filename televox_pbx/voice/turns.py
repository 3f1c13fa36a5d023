"""Cutting a streamed reply into speakable clauses, and mapping played audio back to text."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

# A clause ends at . ! ? , ; : followed by whitespace (so "3.5" and "a.m." mid-word stay).
_BOUNDARY = re.compile(r"[.!?,;:](?=\s)")
_ABBREV = re.compile(r"\b(Mr|Mrs|Ms|Dr|St|Jr|Sr|vs|etc|e\.g|i\.e|a\.m|p\.m)\.$", re.IGNORECASE)


class ClauseSplitter:
    """Push LLM text deltas; get clauses of at least `min_chars` as soon as they end.
    The first clause may be shorter (`first_min_chars`): "Sure," can be playing while the
    rest is still being generated."""

    def __init__(self, min_chars: int = 12, first_min_chars: int | None = None) -> None:
        self.min_chars = min_chars
        self.first_min_chars = min_chars if first_min_chars is None else first_min_chars
        self._emitted = False
        self._buf = ""

    def push(self, delta: str) -> list[str]:
        self._buf += delta
        out: list[str] = []
        start = 0
        for m in _BOUNDARY.finditer(self._buf):
            end = m.end()
            piece = self._buf[start:end].strip()
            least = self.min_chars if self._emitted else self.first_min_chars
            if len(piece) < least or _ABBREV.search(piece):
                continue
            out.append(piece)
            self._emitted = True
            start = end
        self._buf = self._buf[start:]
        return out

    def flush(self) -> str | None:
        piece, self._buf = self._buf.strip(), ""
        return piece or None


@dataclass(frozen=True, slots=True)
class SpokenPiece:
    """One clause as queued: its text and its byte range in the output stream."""

    text: str
    start: int
    end: int


def heard_prefix(pieces: Sequence[SpokenPiece], played: int) -> tuple[str, bool]:
    """The text the callee heard once the output reached stream position `played`, and
    whether the reply was cut short. Whole pieces count fully; the piece in progress
    counts in proportion to its played audio, rounded down to a whole word."""
    heard: list[str] = []
    for piece in pieces:
        if played >= piece.end:
            heard.append(piece.text)
            continue
        span = piece.end - piece.start
        frac = min(1.0, max(0.0, (played - piece.start) / span)) if span > 0 else 0.0
        cut = int(len(piece.text) * frac)
        partial = piece.text[:cut]
        if cut < len(piece.text) and not piece.text[cut:cut + 1].isspace():
            partial = partial.rsplit(" ", 1)[0] if " " in partial else ""
        if partial.strip():
            heard.append(partial.strip())
        return " ".join(heard), True
    return " ".join(heard), False
