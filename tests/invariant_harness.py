"""In-process daemon pieces for the invariant property test, on one injected FakeClock.

These are thin adapters over the product's public pieces (Store, CampaignRunner, the
voice session's store ports, the simulator). Where a path the tests need is about to
change (start-up recovery, inbound calls, PBX restart), it sits here, in one place:

- `Daemon.start` does what App.start does for the dial side: open the store, log in to
  AMI, close stale inbound calls, `CampaignRunner.recover()`, then `runner.run()`.
- `Daemon.crash` is kill -9 in-process: the store connection freezes at a chosen commit
  (or now), the AMI socket is cut without a Logoff, every task is cancelled and the
  SQLite connection is closed under any open transaction (which rolls it back), its
  cursors first, so that its locks go at once as with a dead process (DbSpy.close).
- `restart_pbx` plays Asterisk's `core restart now` on the simulator.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sqlite3
import uuid
import weakref
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from televox_pbx.ami.client import AmiClient
from televox_pbx.campaigns.dnc import CallDnc, DncService
from televox_pbx.campaigns.phones import caller_e164
from televox_pbx.campaigns.runner import CampaignRunner, SessionResults
from televox_pbx.clock import FakeClock
from televox_pbx.config.settings import AmiSettings
from televox_pbx.sim import Simulator
from televox_pbx.sim.channel import cause_fields
from televox_pbx.store import Store
from televox_pbx.store.attempts import finish_inbound, record_inbound
from televox_pbx.store.transcripts import StoreCallbacks

SECRET = "invariants-secret"
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")


class CrashTrap:
    """Freeze a store connection at its Nth commit from now, before or after it;
    `on_freeze` runs at that instant (it cuts the AMI socket: nothing more goes out)."""

    def __init__(self, nth: int, when: str, on_freeze: Callable[[], None]) -> None:
        self.nth = nth
        self.when = when
        self.on_freeze = on_freeze
        self.seen = 0


class DbSpy:
    """Counts a Store's SQLite operations (to know when the loop is quiet) and can freeze
    the connection at a commit point, like a process killed there."""

    def __init__(self, store: Store) -> None:
        self.conn = store.conn
        self._orig = store.conn._execute
        self.inflight = 0
        self.ops = 0
        self.frozen = False
        self.trap: CrashTrap | None = None
        self._cursors: weakref.WeakSet[sqlite3.Cursor] = weakref.WeakSet()
        store.conn._execute = self._execute  # type: ignore[method-assign]

    def _is_commit(self, args: tuple[Any, ...]) -> bool:
        if not args or not isinstance(args[0], str):
            return False
        sql = args[0].lstrip().upper()
        if sql.startswith("COMMIT"):
            return True
        return sql.startswith(_WRITES) and not self.conn.in_transaction

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        if self.frozen:
            raise asyncio.CancelledError  # the process is gone: nothing more runs
        commit = self.trap is not None and self._is_commit(args)
        if commit and self.trap is not None:
            self.trap.seen += 1
            if self.trap.when == "before" and self.trap.seen == self.trap.nth:
                await self._freeze()
        self.inflight += 1
        self.ops += 1
        try:
            result = await self._orig(self._tracked, fn, *args, **kw)
        finally:
            self.inflight -= 1
        if commit and self.trap is not None and self.trap.when == "after" \
                and self.trap.seen == self.trap.nth:
            await self._freeze()
        return result

    def _tracked(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        """Runs `fn` on the SQLite thread; remembers any cursor it returns, even one
        whose caller was cancelled before it got it."""
        result = fn(*args, **kw)
        if isinstance(result, sqlite3.Cursor):
            self._cursors.add(result)
        return result

    async def _freeze(self) -> None:
        self.frozen = True
        if self.trap is not None:
            self.trap.on_freeze()
        await asyncio.get_running_loop().create_future()  # never resolves

    async def close(self) -> None:
        """Close the SQLite connection whatever state it is in, releasing its locks at
        once as a process's death does (its open transaction rolls back).

        A frozen connection runs nothing more, so a cancelled task's `async with` never
        closed its cursor; one left part way through a SELECT keeps its statement alive,
        and SQLite then closes the connection only as a zombie that keeps the open write
        transaction, and its lock, until that cursor is garbage collected (a reference
        cycle through the CancelledError's traceback: seconds or minutes later). The next
        daemon's start-up recovery then found the database locked. Close them first."""
        del self.conn._execute  # back to aiosqlite's own method

        def release() -> None:  # on the SQLite thread, after everything queued before
            for cur in list(self._cursors):
                cur.close()

        await self.conn._execute(release)
        await self.conn.close()


def ami_client(port: int, clock: FakeClock) -> AmiClient:
    settings = AmiSettings(port=port, ping_interval_s=86400, reconnect_max_backoff_s=4.0)
    return AmiClient(settings, clock=clock, port=port, secret=SecretStr(SECRET),
                     action_timeout_s=10.0, rng=random.Random(7))


@dataclass
class Daemon:
    """The dial side of the daemon: store + AMI client + runner (dialer, tracker, pump)."""

    store: Store
    spy: DbSpy
    client: AmiClient
    runner: CampaignRunner
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    side_tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    recovered: bool = False

    @classmethod
    async def _open(cls, db: Path, port: int, clock: FakeClock,
                    session_results: SessionResults, *, recover: bool = True) -> Daemon:
        store = await Store.open(db)
        spy = DbSpy(store)
        client = ami_client(port, clock)
        # As App does: the runner settles unfinished attempts after every login, the
        # first time by the start-up recovery rules (recover_on_login).
        runner = CampaignRunner(store, client, clock, max_concurrent_global=6,
                                session_results=session_results, recover_on_login=recover)
        await client.start()
        return cls(store, spy, client, runner)

    @classmethod
    async def start(cls, db: Path, port: int, clock: FakeClock,
                    session_results: SessionResults) -> Daemon:
        d = await cls._open(db, port, clock, session_results)
        assert await d.runner.wait_ready(30.0), "daemon never became ready"
        d.recovered = True
        d.task = asyncio.create_task(d.runner.run(d.stop), name="daemon")
        return d

    @classmethod
    async def start_beside(cls, db: Path, port: int, clock: FakeClock,
                           session_results: SessionResults) -> Daemon:
        """A second process on the same database (`televox call` today): its own store
        connection, AMI login and dialer, pumping its own calls' results; no dial loop."""
        d = await cls._open(db, port, clock, session_results, recover=False)
        await d.runner.wait_ready(30.0)
        d.task = asyncio.create_task(d.runner.pump(), name="beside-pump")
        return d

    def cut_ami(self) -> None:
        writer = getattr(self.client, "_writer", None)
        if writer is not None:
            writer.transport.abort()

    def died(self) -> BaseException | None:
        """Why the daemon's main task ended by itself, if it did."""
        if self.task is None or not self.task.done() or self.task.cancelled():
            return None
        return self.task.exception() or RuntimeError("daemon run() returned")

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        t = asyncio.create_task(coro)
        self.side_tasks.add(t)
        t.add_done_callback(self.side_tasks.discard)
        return t

    async def crash(self) -> None:
        """kill -9: no clean shutdown, no Logoff, uncommitted work lost."""
        self.spy.frozen = True
        self.cut_ami()
        tasks = [t for t in (self.task, *self.side_tasks) if t is not None]
        for t in tasks:
            t.cancel()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 10)
        self.runner.close()
        await self.client.close()
        await self.spy.close()


# ---- what a voice session would write through its ports -----------------------------

async def session_opt_out(store: Store, clock: FakeClock, phone_as_given: str,
                          source: str = "call") -> None:
    """The agent heard "don't call me again": the session's DncPort, number as given."""
    await CallDnc(DncService(store, clock=clock)).add(
        phone_as_given, reason="asked not to be called", source=source)


async def session_callback(store: Store, call_id: str, due_at: datetime,
                           zone: str | None) -> None:
    await StoreCallbacks(store).schedule(call_id, due_at, zone)


async def operator_dnc(db: Path, clock: FakeClock, phone_as_given: str) -> None:
    """`televox dnc add` from another process: its own connection."""
    store = await Store.open(db)
    try:
        await DncService(store, clock=clock).add([phone_as_given], reason="operator",
                                                 source="cli", actor="ops")
    finally:
        await store.close()


@dataclass
class Inbound:
    call_id: str
    caller: str  # as the PBX gives it


async def inbound_start(store: Store, clock: FakeClock, caller: str) -> Inbound:
    """An inbound call is answered: the App records an attempt row for it."""
    call = Inbound(str(uuid.uuid4()), caller)
    await record_inbound(store, call.call_id, caller_e164(caller), clock.now())
    return call


async def inbound_end(store: Store, clock: FakeClock, call: Inbound) -> None:
    await finish_inbound(store, call.call_id, clock.now())


# ---- the PBX --------------------------------------------------------------------------

async def restart_pbx(sim: Simulator, settle: Callable[[], Coroutine[Any, Any, None]]) -> int:
    """`core restart now`: Shutdown, every channel hung up (Cause 0), the manager socket
    closed; the simulator then takes logins again as the restarted PBX. Returns how many
    channels were cut."""
    chans = list(sim.channels.values())
    sim._emit("Shutdown", [("Shutdown", "Cleanly"), ("Restart", "True")], "system,all")
    for ch in chans:
        sim._chan_event("Hangup", ch, cause_fields(0))
    await settle()
    sim.kill_ami_connections()
    for t in list(sim._tasks):
        if t.get_name().startswith("sim-originate"):
            t.cancel()
    await settle()
    return len(chans)


@contextlib.contextmanager
def refusing_logins(sim: Simulator, refuse: bool = True) -> Iterator[None]:
    """The manager port answers but refuses every login (the PBX is down)."""
    saved = sim._secret
    if refuse:
        sim._secret = "the-pbx-is-down"
    try:
        yield
    finally:
        sim._secret = saved


def pbx_times(sim: Simulator) -> dict[str, tuple[float | None, float | None]]:
    """call id -> (answered, hung up), epoch seconds from the PBX's own event stamps."""
    out: dict[str, tuple[float | None, float | None]] = {}
    for ev in sim.events:
        uid = ev.get("Uniqueid")
        stamp = ev.get("Timestamp")
        if not uid or not stamp:
            continue
        answered, hung = out.get(uid, (None, None))
        if ev.event == "Newstate" and ev.get("ChannelStateDesc") == "Up" and answered is None:
            answered = float(stamp)
        elif ev.event == "Hangup" and hung is None:
            hung = float(stamp)
        out[uid] = (answered, hung)
    return out
