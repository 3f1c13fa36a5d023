"""The test rig under the invariant property test: one event loop, one FakeClock, the
PBX simulator, the daemon (and any second process beside it) on one database file, and
the means to let them all run until nothing moves."""

from __future__ import annotations

import asyncio
import contextlib
import io
import shutil
import tempfile
from collections.abc import Coroutine
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from invariant_harness import Daemon, DbSpy
from invariant_model import LIVE, attempts, connect

from televox_pbx.clock import FakeClock
from televox_pbx.domain import CallOutcome, Disposition, OriginateRequest
from televox_pbx.sim import Simulator

T = TypeVar("T")
# A step of the rig that makes no progress for this long (real seconds) fails the test with
# every task's stack, instead of hanging CI (one full-suite run hung in crash_restart).
STEP_LIMIT_S = 300.0
# A daemon start still waiting after this long (real seconds) gets its FakeClock moved, as
# a real daemon's clock would move: its readiness may wait on a timer (an AMI action's
# timeout, the start-up reconcile's pause) that nobody else advances during a start. The
# clock then moves at the real clock's pace, no faster: moved 10x faster, a start slowed by
# a loaded box (its SQLite thread and AMI login, which the rig cannot see before the start
# returns) ran through its 30 s readiness timeout in 3 s and failed "never became ready".
START_GRACE_S = 5.0
START_STEP_S = 0.5
SessionResult = tuple[int | None, Disposition | None]


class Rig:
    def __init__(self, start: datetime) -> None:
        self.loop = asyncio.new_event_loop()
        self.dir = Path(tempfile.mkdtemp(prefix="televox-inv-"))
        self.db = self.dir / "televox.db"
        self.clock = FakeClock(start)
        self.sim: Simulator | None = None
        self.daemon: Daemon | None = None
        self.beside: list[Daemon] = []

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(self._guarded(coro))

    async def _guarded(self, coro: Coroutine[Any, Any, T]) -> T:
        step = asyncio.ensure_future(coro)
        done, _ = await asyncio.wait({step}, timeout=STEP_LIMIT_S)
        if step in done:
            return step.result()
        stacks = io.StringIO()
        for task in asyncio.all_tasks():
            print(f"-- task {task.get_name()}", file=stacks)
            task.print_stack(limit=15, file=stacks)
        step.cancel()
        raise AssertionError(f"a rig step made no progress for {STEP_LIMIT_S:.0f} s; "
                             f"tasks:\n{stacks.getvalue()}")

    def session_results(self, req: OriginateRequest, outcome: CallOutcome) -> SessionResult:
        raise NotImplementedError

    async def start_daemon(self) -> None:
        assert self.sim is not None
        self.daemon = await self.started(Daemon.start(self.db, self.sim.ami_port, self.clock,
                                                      self.session_results))
        await self.settle()

    async def started(self, start: Coroutine[Any, Any, Daemon]) -> Daemon:
        """A daemon's start; its clock moves if the start waits past START_GRACE_S."""
        task = asyncio.ensure_future(start)
        done, _ = await asyncio.wait({task}, timeout=START_GRACE_S)
        while task not in done:
            await self.clock.advance(START_STEP_S)
            done, _ = await asyncio.wait({task}, timeout=START_STEP_S)
        return task.result()

    def spies(self) -> list[DbSpy]:
        return [d.spy for d in (self.daemon, *self.beside) if d is not None]

    async def settle(self) -> None:
        """Let sockets, the SQLite thread and every task run until nothing moves: no
        SQLite call in flight and, for a few loop turns, no other callback ready (a
        socket with data to read shows up there as soon as the loop polls it)."""
        loop = asyncio.get_running_loop()
        idle = 0
        for _ in range(100_000):
            await asyncio.sleep(0)
            if any(s.inflight for s in self.spies() if not s.frozen):
                idle = 0
                await asyncio.sleep(0.0002)  # the SQLite thread is working
            elif loop._ready:  # type: ignore[attr-defined]
                idle = 0
            else:
                idle += 1
                if idle >= 3:
                    return
        raise AssertionError("the daemon never went quiet")

    async def advance(self, seconds: float, *, until_frozen: bool = False) -> None:
        """Clock time passes in steps of at most 1 s, everything settling in between (a
        PBX reply is never late because the test moved the clock past its timeout)."""
        end = self.clock.monotonic() + seconds
        while self.clock.monotonic() < end - 1e-9:
            await self.settle()
            if until_frozen and self.daemon is not None and self.daemon.spy.frozen:
                return
            await self.clock.advance(min(1.0, end - self.clock.monotonic()))
        await self.settle()

    def live_numbers(self) -> set[str]:
        conn = connect(self.db)
        try:
            return {a.number or a.phone for a in attempts(conn) if a.status in LIVE}
        finally:
            conn.close()

    def quiet(self) -> bool:
        """No call up on the PBX and none live in the store."""
        return self.sim is not None and not self.sim.channels and not self.live_numbers()

    def answered_calls(self) -> list[tuple[str, str]]:
        """(call id, E.164) of outbound calls the PBX has up right now."""
        assert self.sim is not None
        ids = [ch.call_id for ch in self.sim.channels.values() if ch.state == 6]
        conn = connect(self.db)
        try:
            rows = {str(r[0]): str(r[1]) for r in conn.execute(
                "SELECT id, phone FROM call_attempts WHERE direction = 'outbound'")}
        finally:
            conn.close()
        return [(i, rows[i]) for i in sorted(ids) if i in rows]

    async def until_answered(self, limit_s: int = 40) -> list[tuple[str, str]]:
        """The callee speaks once someone picks up: wait (clock time) for an answered call
        while any call is on its way."""
        for _ in range(limit_s):
            calls = self.answered_calls()
            if calls or self.quiet():
                return calls
            await self.advance(1)
        return self.answered_calls()

    def attempt_ids(self) -> frozenset[str]:
        conn = connect(self.db)
        try:
            return frozenset(str(r[0]) for r in conn.execute("SELECT id FROM call_attempts"))
        finally:
            conn.close()

    def close(self) -> bool:
        """Tear everything down; True when the example placed at least one call."""
        async def go() -> bool:
            for d in (self.daemon, *self.beside):
                if d is not None:
                    with contextlib.suppress(Exception):  # a failure is reported already
                        await d.crash()
            dialled = False
            if self.sim is not None:
                dialled = bool(self.sim.actions_named("Originate"))
                await self.sim.close()
            rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in rest:
                t.cancel()
            await asyncio.gather(*rest, return_exceptions=True)
            return dialled
        try:
            # Not through run(): go() cancels every task but its own, the guard's included.
            return self.loop.run_until_complete(go())
        finally:
            self.loop.close()
            shutil.rmtree(self.dir, ignore_errors=True)
