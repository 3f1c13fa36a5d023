"""Timeouts measured on an injected `Clock` (asyncio.wait_for only knows real time)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from televox_pbx.clock import Clock

T = TypeVar("T")


async def wait_for(clock: Clock, aw: Awaitable[T], seconds: float) -> T:
    """Like `asyncio.wait_for`, on `clock`: the result of `aw`, or TimeoutError after
    `seconds` on the clock (then `aw` is cancelled and awaited)."""
    task = asyncio.ensure_future(aw)
    timer = asyncio.ensure_future(clock.sleep(seconds))
    try:
        await asyncio.wait({task, timer}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        timer.cancel()
        raise
    timer.cancel()
    if task.done():
        return task.result()
    task.cancel()
    await asyncio.wait({task})  # let it unwind; our own cancellation still propagates
    if not task.cancelled():
        task.exception()  # mark retrieved: a timeout is what we report
    raise TimeoutError
