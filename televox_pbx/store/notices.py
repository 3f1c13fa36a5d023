"""Every node's events reach every node (issue 19 item 6): LISTEN/NOTIFY wake-ups.

On PostgreSQL, triggers (migration 0022) NOTIFY channel `televox_events` at the commit of
each statement that writes contact_events or campaign_state_log, with the table's name and
the highest new id only (`contact_events:123`): a payload is limited to 8000 bytes, and a
notification is not durable. So a notice only WAKES a reader early; the readers (the
dashboard's progress hub, the webhook outbox) read the database itself and also poll on
their own interval, which covers a notification lost while the listener was reconnecting.

LISTEN holds a session: the listener has a dedicated connection that must reach
PostgreSQL directly (or through pgbouncer in SESSION mode), never through pgbouncer's
transaction pooling, where the LISTEN would sit on a server connection that others then
use. `database.listen_url` gives that direct address when `database.url` goes through
pgbouncer; without it the listener uses `database.url`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from televox_pbx.clock import Clock

log = logging.getLogger(__name__)

CHANNEL = "televox_events"
RESYNC = "*"  # the table name of a notice sent after (re)connecting: anything may be new

Subscriber = Callable[[str, int], None]  # (table, highest id)


def parse(payload: str) -> tuple[str, int] | None:
    table, sep, top = payload.rpartition(":")
    if not sep or not table or not top.isdigit():
        return None
    return table, int(top)


class Notices:
    """In-process fan-out of the database's notices to this node's readers."""

    def __init__(self) -> None:
        self._subs: list[Subscriber] = []
        self.received = 0

    def subscribe(self, fn: Subscriber) -> None:
        self._subs.append(fn)

    def unsubscribe(self, fn: Subscriber) -> None:
        with contextlib.suppress(ValueError):
            self._subs.remove(fn)

    def publish(self, table: str, top: int) -> None:
        for fn in list(self._subs):
            try:
                fn(table, top)
            except Exception:  # one reader's bug must not starve the others
                log.exception("notice subscriber failed", extra={"table": table})


class PgListener(Notices):
    """LISTENs on a dedicated connection; reconnects after `retry_s` when it is lost, and
    checks it every `ping_s` (a half-open TCP link would otherwise hang unnoticed)."""

    def __init__(self, connect: Callable[[], Awaitable[Any]], clock: Clock, *,
                 retry_s: float = 2.0, ping_s: float = 30.0) -> None:
        super().__init__()
        self._connect, self._clock = connect, clock
        self.retry_s, self.ping_s = retry_s, ping_s
        self.connected = asyncio.Event()
        self.lost = asyncio.Event()  # set when a connection that listened is lost

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        got = parse(payload)
        if got is None:
            log.warning("unreadable notice ignored")
            return
        self.received += 1
        self.publish(*got)

    async def run(self) -> None:
        """Listen until cancelled, reconnecting after any loss."""
        while True:
            try:
                await self._listen_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("notice listener lost its connection; will reconnect",
                            extra={"error": type(exc).__name__})
            self.connected.clear()
            await self._clock.sleep(self.retry_s)

    async def _listen_once(self) -> None:
        conn = await self._connect()
        lost = asyncio.Event()
        try:
            conn.add_termination_listener(lambda _c: lost.set())
            await conn.add_listener(CHANNEL, self._on_notify)
            self.lost.clear()
            self.connected.set()
            # Whatever was written while no one listened: the readers look now.
            self.publish(RESYNC, 0)
            while not lost.is_set():
                pinger = asyncio.ensure_future(self._clock.sleep(self.ping_s))
                ender = asyncio.ensure_future(lost.wait())
                try:
                    await asyncio.wait({pinger, ender}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    pinger.cancel()
                    ender.cancel()
                if not lost.is_set():
                    await conn.execute("SELECT 1")
            raise ConnectionError("the listener's connection closed")
        finally:
            if self.connected.is_set():
                self.lost.set()
            self.connected.clear()
            with contextlib.suppress(Exception):
                await conn.close(timeout=2)


def pg_listener(url: str, password: str | None, clock: Clock) -> PgListener:
    """The daemon's listener on `url` (database.listen_url, else database.url)."""
    import asyncpg

    from televox_pbx.store.pg import connect_kwargs

    kw = connect_kwargs(url, password)

    async def connect() -> Any:
        return await asyncpg.connect(**kw)

    return PgListener(connect, clock)
