"""Waiting for a call's AMD verdict, which AMI may deliver after the audio connects."""

from __future__ import annotations

from collections.abc import Callable

from televox_pbx.clock import Clock
from televox_pbx.domain import AmdStatus

POLL_S = 0.02  # one audio frame: the verdict is acted on within a frame of its arrival


async def await_verdict(lookup: Callable[[], AmdStatus | None], clock: Clock,
                        timeout_s: float, poll_s: float = POLL_S) -> AmdStatus | None:
    """`lookup()`'s verdict as soon as it has one, or None once `timeout_s` have passed
    on `clock`. Polling keeps the call tracker free of waiters (it is sans-IO)."""
    deadline = clock.monotonic() + timeout_s
    while (verdict := lookup()) is None:
        left = deadline - clock.monotonic()
        if left <= 0:
            return None
        await clock.sleep(min(poll_s, left))
    return verdict
