"""Which disposition an attempt ends with, and how a later signal may override an earlier one."""

from __future__ import annotations

from dataclasses import dataclass, field

from televox_pbx.domain import Disposition

# Once set, these are never downgraded by a later, weaker signal (an opt-out is a legal fact).
_STICKY = frozenset({Disposition.OPT_OUT, Disposition.WRONG_NUMBER})


@dataclass(slots=True)
class DispositionState:
    value: Disposition | None = None
    source: str = ""  # "tool", "dtmf", "optout", "amd", "classify"
    history: list[tuple[Disposition, str]] = field(default_factory=list)

    def set(self, value: Disposition, source: str) -> bool:
        """Record a disposition; returns False when a sticky one already holds."""
        if self.value in _STICKY and value != self.value:
            return False
        self.value = value
        self.source = source
        self.history.append((value, source))
        return True


def parse_disposition(raw: object) -> Disposition | None:
    if not isinstance(raw, str):
        return None
    try:
        return Disposition(raw.strip().upper().replace(" ", "_"))
    except ValueError:
        return None
