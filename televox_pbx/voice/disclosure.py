"""Whether the callee has heard the AI disclosure whole, and who must say it next.

The opening's disclosure sentence ("I'm Ava, an AI assistant...") is played as a piece of
its own. It counts as heard only once the pacer has sent its last byte. A DTMF key, a
barge-in, a cancelled or failed turn can cut it first: then it is owed, and the next
thing the agent says, whatever it is, starts with it (session.py asks `claim`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from televox_pbx.voice.turns import SpokenPiece


class Carrier(Protocol):
    """A reply that may carry the disclosure: live once its audio goes to the line."""

    live: bool


@dataclass(slots=True)
class Disclosure:
    text: str | None = None  # None: this call has nothing to disclose (or no opening)
    heard: bool = False
    carrier: Carrier | None = None  # the reply saying it now
    end: int | None = None  # output stream position where its audio ends, all queued

    def claim(self, reply: Carrier) -> str | None:
        """The sentence, when `reply` must start with it (it becomes the carrier)."""
        if self.text is None or self.heard or self.carrier is not None:
            return None
        self.carrier, self.end = reply, None
        return self.text

    @property
    def playing(self) -> bool:
        """Claimed and not heard yet: a callee's voice must not cut it."""
        return self.carrier is not None and not self.heard

    def queued(self, reply: Carrier, pieces: Sequence[SpokenPiece], played: int) -> None:
        """All of the sentence's audio is queued in `reply`'s `pieces`."""
        if reply is not self.carrier:
            return
        self.end = next((p.end for p in pieces if p.text == self.text), None)
        if self.end is None:
            self.carrier = None  # it rendered to nothing: owed again
        else:
            self.played(played)  # a slow render may have let the line catch up

    def played(self, position: int) -> None:
        """The pacer really sent audio up to `position`."""
        if self.carrier is not None and self.end is not None and position >= self.end:
            self.heard, self.carrier = True, None

    def abandoned(self) -> None:
        """A turn was cancelled or failed: a carrier still rendering, or held back and
        never played, will not finish it."""
        carrier = self.carrier
        if carrier is not None and (self.end is None or not carrier.live):
            self.carrier = self.end = None

    def cut(self, played: int) -> None:
        """The output was cleared at `played`: heard if it had got that far, else owed."""
        self.played(played)
        if not self.heard:
            self.carrier = self.end = None
