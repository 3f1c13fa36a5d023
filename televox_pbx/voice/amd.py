"""Waiting for a call's AMD verdict, which AMI may deliver after the audio connects."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from televox_pbx.clock import Clock
from televox_pbx.domain import AmdStatus

log = logging.getLogger(__name__)

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


async def verdict_or_person(wait: Callable[[float], Awaitable[AmdStatus | None]],
                            timeout_s: float, call_id: str) -> AmdStatus | None:
    """AMD() ran in the dialplan before the audio connected, but its verdict travels over
    AMI and may come after the audio: wait for it, `timeout_s` at most. With no verdict by
    then (AMI slow or down) a person may be listening: None, answered as HUMAN, so the
    agent speaks (disclosure first) rather than stay silent or hang up."""
    try:
        return await wait(timeout_s)
    except Exception:
        log.warning("AMD verdict lookup failed; treated as human", exc_info=True,
                    extra={"call_id": call_id})
        return None
