"""The invariant rig's pieces on PostgreSQL, for two daemons (nodes) on one database.

- `PgSpy` is DbSpy for a PostgreSQL store: it counts the statements in flight (an asyncpg
  reply is awaited on the loop, invisible to `Rig.settle` otherwise) and freezes the
  connection at a commit point like DbSpy; a freeze also drops the connection at once, as
  a killed process's would be, so the server rolls back what was not committed and the
  other node is never left waiting on its locks.
- `start_node` is `Daemon.start` for one node: its node row (epoch, a lease long enough
  for any FakeClock run), and the cluster claim with the database's clock pinned to the
  rig's FakeClock (the rig jumps days; the real database clock does not).
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from invariant_harness import CrashTrap, Daemon, ami_client

from televox_pbx.campaigns.cluster_dial import ClusterDial
from televox_pbx.campaigns.runner import CampaignRunner, SessionResults
from televox_pbx.clock import FakeClock
from televox_pbx.store import Store
from televox_pbx.store.nodes import start_node as register_node
from televox_pbx.store.pg import PgConn

_WRITES = ("INSERT", "UPDATE", "DELETE")
_LEASE_S = 10 * 86400.0  # the rig's clock jumps days; the lease is not what it tests


class PgSpy:
    def __init__(self, store: Store) -> None:
        conn = store.conn
        assert isinstance(conn, PgConn)
        self.pg = conn
        self._orig = conn._run_now
        self.inflight = 0
        self.ops = 0
        self.frozen = False
        self.trap: CrashTrap | None = None
        conn._run_now = self._run_now  # type: ignore[method-assign]

    def _is_commit(self, sql: str) -> bool:
        text = sql.lstrip().upper()
        return text.startswith("COMMIT") or (text.startswith(_WRITES)
                                             and not self.pg.in_transaction)

    async def _run_now(self, sql: str, params: Any) -> Any:
        if self.frozen:
            raise asyncio.CancelledError  # the process is gone: nothing more runs
        commit = self.trap is not None and self._is_commit(sql)
        if commit and self.trap is not None:
            self.trap.seen += 1
            if self.trap.when == "before" and self.trap.seen == self.trap.nth:
                await self._freeze()
        self.inflight += 1
        self.ops += 1
        try:
            result = await self._orig(sql, params)
        finally:
            self.inflight -= 1
        if commit and self.trap is not None and self.trap.when == "after" \
                and self.trap.seen == self.trap.nth:
            await self._freeze()
        return result

    async def _freeze(self) -> None:
        self.frozen = True
        if self.trap is not None:
            self.trap.on_freeze()
        self.pg.raw.terminate()  # the server rolls back the open transaction now
        await asyncio.get_running_loop().create_future()  # never resolves

    async def close(self) -> None:
        if not self.pg.raw.is_closed():
            self.pg.raw.terminate()


async def start_node(url: str, node_id: str, port: int, clock: FakeClock,
                     session_results: SessionResults) -> Daemon:
    store = await Store.open(url)
    store.node = await register_node(store, node_id, f"sim:{port}", _LEASE_S)
    spy = PgSpy(store)
    client = ami_client(port, clock)
    runner = CampaignRunner(store, client, clock, max_concurrent_global=6,
                            session_results=session_results)

    async def fake_db_clock() -> datetime:
        return clock.now()
    runner.dialer._cluster = ClusterDial(store, db_clock=fake_db_clock)
    await client.start()
    d = Daemon(store, spy, client, runner)  # type: ignore[arg-type]
    assert await d.runner.wait_ready(30.0), f"node {node_id} never became ready"
    d.recovered = True
    d.task = asyncio.create_task(d.runner.run(d.stop), name=f"node-{node_id}")
    return d

