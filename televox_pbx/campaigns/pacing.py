"""Even pacing: at most N originates per minute, one every 60/N seconds.

The next slot is always measured from the last originate, so a pause, a closed window or
a full line never builds up credit: no catch-up burst afterwards.
"""

from __future__ import annotations


class Pacer:
    def __init__(self, calls_per_minute: float) -> None:
        self.interval_s = 60.0 / calls_per_minute
        self._next: float | None = None  # monotonic seconds; None: may dial now

    def set_rate(self, calls_per_minute: float) -> None:
        self.interval_s = 60.0 / calls_per_minute

    def ready(self, mono: float) -> bool:
        return self._next is None or mono >= self._next

    def wait_s(self, mono: float) -> float:
        return 0.0 if self._next is None else max(0.0, self._next - mono)

    def dialled(self, mono: float) -> None:
        self._next = mono + self.interval_s
