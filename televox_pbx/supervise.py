"""Supervision for the daemon's long-running loops and its short-lived owned tasks.

A loop that raises is logged with its context and started again after an exponential
backoff on the injected clock, so one bad event or a flaky dependency never takes the
daemon down. Cancellation is never swallowed: it is how the daemon stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any

from televox_pbx.clock import Clock, wait_for

log = logging.getLogger(__name__)

# A loop that ran this long before failing starts its backoff over.
_HEALTHY_RUN_S = 60.0


def backoff_s(failures: int, initial_s: float, max_s: float) -> float:
    """Delay before restart number `failures` (1-based): initial, x2 each time, capped."""
    return min(max_s, initial_s * 2.0 ** min(max(failures - 1, 0), 30))


async def supervise(name: str, loop: Callable[[], Awaitable[None]], clock: Clock, *,
                    stop: asyncio.Event | None = None, initial_backoff_s: float = 1.0,
                    max_backoff_s: float = 60.0,
                    context: Mapping[str, Any] | None = None) -> None:
    """Run `loop()` until it returns (or `stop` is set); restart it after each failure.

    The failure is logged with `logger.exception` and structured fields (the loop's
    name, how many times in a row it failed, the delay before the restart, `context`).
    """
    failures = 0
    while stop is None or not stop.is_set():
        started = clock.monotonic()
        try:
            await loop()
            return
        except Exception:
            if clock.monotonic() - started >= _HEALTHY_RUN_S:
                failures = 0
            failures += 1
            delay = backoff_s(failures, initial_backoff_s, max_backoff_s)
            log.exception("loop failed; restarting", extra={
                "loop": name, "failures": failures, "restart_in_s": delay, **(context or {})})
        if stop is None:
            await clock.sleep(delay)
        else:
            with contextlib.suppress(TimeoutError):
                await wait_for(clock, stop.wait(), delay)


class OwnedTasks:
    """Tasks that belong to one component: each failure is logged (never lost in a
    'Task exception was never retrieved'), and `aclose()` cancels and awaits them all."""

    def __init__(self, owner: str) -> None:
        self._owner = owner
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, coro: Coroutine[Any, Any, None], name: str,
              context: Mapping[str, Any] | None = None) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(lambda t: self._done(t, name, context))
        return task

    def _done(self, task: asyncio.Task[None], name: str,
              context: Mapping[str, Any] | None) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error("task failed", exc_info=exc, extra={
                "owner": self._owner, "task": name, **(context or {})})

    def __len__(self) -> int:
        return len(self._tasks)

    def cancel(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    async def aclose(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
