"""Live campaign progress over Server-Sent Events (aiohttp-sse). The browser never polls:
one hub samples the store for every viewer at once (while anyone watches) and pushes a
snapshot only when it changed; a slow viewer loses stale snapshots, never slows others.

Several nodes (issue 19 item 6): the snapshot is read from the shared database, so it
counts every node's calls and contacts. A notice from another node's write (LISTEN/NOTIFY,
store/notices.py) calls `wake()` to sample at once; the interval's poll still runs, so a
lost notice delays an update by one interval at most."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable

from aiohttp import web
from aiohttp_sse import sse_response

from televox_pbx.clock import Clock, sleep_or_wake
from televox_pbx.store.dashboard_stats import campaign_progress
from televox_pbx.store.db import Store

log = logging.getLogger(__name__)
Queue = asyncio.Queue[str | None]  # None: the server is closing


class ProgressHub:
    def __init__(self, store: Store, clock: Clock, interval_s: float = 0.5,
                 on_publish: Callable[[str], None] | None = None,
                 min_gap_s: float = 0.1) -> None:
        self._store = store
        self._clock = clock
        self._interval = interval_s
        self.min_gap_s = min_gap_s
        self.on_publish = on_publish  # a listener for every snapshot sent (benchmarks)
        self._subs: set[Queue] = set()
        self._last: str | None = None
        self._wake = asyncio.Event()
        self._poke = asyncio.Event()  # something changed: sample before the interval ends
        self._closed = False
        self.samples = 0

    @property
    def viewers(self) -> int:
        return len(self._subs)

    def subscribe(self) -> tuple[Queue, str | None]:
        q: Queue = asyncio.Queue(maxsize=4)
        self._subs.add(q)
        self._wake.set()
        return q, self._last

    def unsubscribe(self, q: Queue) -> None:
        self._subs.discard(q)

    def wake(self, *_: object) -> None:
        """Sample now (a notice of another node's write); harmless with no viewer."""
        self._poke.set()

    async def snapshot(self) -> str:
        rows = await campaign_progress(self._store)
        return json.dumps({"campaigns": [p.as_dict() for p in rows]}, sort_keys=True)

    async def run(self) -> None:
        while not self._closed:
            if not self._subs:
                self._last = None  # nobody watched: the next viewer gets a fresh read
                self._wake.clear()
                await self._wake.wait()
                continue
            self._poke.clear()  # before the read: a notice during it is not lost
            try:
                snap = await self.snapshot()
                self.samples += 1
            except Exception:  # a store hiccup must not end live progress for good
                log.exception("campaign progress read failed")
            else:
                if snap != self._last:
                    self._last = snap
                    self._publish(snap)
            await self._nap()

    async def _nap(self) -> None:
        """The interval, or less when poked; never less than `min_gap_s` between reads, so
        a burst of notices (every call's outcome, cluster-wide) costs few reads."""
        began = self._clock.monotonic()
        await sleep_or_wake(self._clock, self._interval, self._poke)
        rest = self.min_gap_s - (self._clock.monotonic() - began)
        if rest > 0 and not self._closed:
            await self._clock.sleep(rest)

    def _publish(self, message: str | None) -> None:
        if message is not None and self.on_publish is not None:
            self.on_publish(message)
        for q in self._subs:
            if q.full():
                q.get_nowait()  # drop the oldest: only the newest snapshot matters
            q.put_nowait(message)

    def close(self) -> None:
        """Ends every stream (on shutdown), so none holds the server open."""
        self._closed = True
        self._publish(None)
        self._wake.set()
        self._poke.set()


HUB = web.AppKey("televox.ui.hub", ProgressHub)


async def progress_stream(request: web.Request) -> web.StreamResponse:
    hub = request.app[HUB]
    q, last = hub.subscribe()
    try:
        async with sse_response(request) as resp:
            with contextlib.suppress(ConnectionResetError):
                if last is not None:
                    await resp.send(last, event="progress")
                while (message := await q.get()) is not None:
                    await resp.send(message, event="progress")
    finally:
        hub.unsubscribe(q)
    return resp
