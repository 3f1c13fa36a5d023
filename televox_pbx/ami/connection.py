"""The socket side of one AMI connection, below the client's login and state machine.

Opening it (TCP connect and the banner, within the action timeout), watching it while it
is up (its reader against a pinger: whichever ends first says why it was lost, a ping
gone unanswered meaning half-open), and the jittered backoff before the next attempt.
Apart from the client so that the supervisor there reads as the reconnect policy only.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

from televox_pbx.ami.codec import AmiBanner, AmiParser, AmiProtocolError
from televox_pbx.ami.errors import AmiTimeout
from televox_pbx.clock import Clock, wait_for
from televox_pbx.config.settings import AmiSettings


class _HalfOpen(Exception):
    pass


async def open_ami(host: str, port: int, clock: Clock, timeout_s: float,
                   ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, AmiParser, str]:
    """Connect and read the banner; returns the stream, its parser and the banner."""
    reader, writer = await asyncio.open_connection(host, port)
    parser = AmiParser(expect_banner=True)
    try:
        banner = await wait_for(clock, _read_banner(reader, parser), timeout_s)
    except BaseException:
        writer.close()
        raise
    return reader, writer, parser, banner


async def _read_banner(reader: asyncio.StreamReader, parser: AmiParser) -> str:
    line = await reader.readline()
    if not line:
        raise ConnectionError("AMI server closed before its banner")
    items = parser.feed(line)
    if not items or not isinstance(items[0], AmiBanner):
        raise AmiProtocolError("no AMI banner")
    return items[0].text


async def watch(read_task: asyncio.Task[None], ping: Callable[[], Awaitable[object]],
                settings: AmiSettings, clock: Clock) -> str:
    """Run until the connection fails (its reader ends, or `ping` times out); returns
    why. Both tasks are ended before it returns."""
    ping_task = asyncio.create_task(_ping_loop(ping, settings, clock), name="ami-pinger")
    try:
        await asyncio.wait({read_task, ping_task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in (read_task, ping_task):
            t.cancel()
        results = await asyncio.gather(read_task, ping_task, return_exceptions=True)
    for r in results:
        if isinstance(r, _HalfOpen):
            return "ping timeout (half-open)"
        if isinstance(r, AmiProtocolError):
            return f"protocol error: {r}"
        if isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError):
            return repr(r)
    return "connection closed by server"


async def _ping_loop(ping: Callable[[], Awaitable[object]], settings: AmiSettings,
                     clock: Clock) -> None:
    while True:
        await clock.sleep(settings.ping_interval_s)
        try:
            await ping()
        except AmiTimeout:
            raise _HalfOpen from None


def backoff_s(attempt: int, settings: AmiSettings, rng: random.Random) -> float:
    """Seconds before reconnect attempt `attempt` (0 first): doubling from 0.5 s up to
    the settings' cap, with jitter."""
    cap = float(settings.reconnect_max_backoff_s)
    base = min(cap, 0.5 * 2.0 ** min(attempt, 20))
    return base * (0.5 + 0.5 * rng.random())  # jitter: 50-100 %
