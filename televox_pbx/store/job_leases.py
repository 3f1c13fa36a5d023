"""Jobs that must run on one node at a time across the cluster (issue 19 item 5).

A job (the retention purge) is held under a row of `job_leases`. Taking and renewing it is
ONE conditional UPSERT on the database's clock: the row is written only where it is free
(its lease expired), or already this node's in this life, and this node's own node lease
is alive. The row also carries the job's schedule (`next_run_at`), so the cluster runs the
job once per interval whichever node holds it. Releasing sets the next run and ends the
lease at once; a holder that dies simply stops renewing, and after `expires_at` another
node takes the job over. Nothing here uses session state (no advisory locks, no SET):
every statement stands alone, so it works behind pgbouncer's transaction pooling.

On SQLite (one box) there is one node: the lease is trivially held and nothing is stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from televox_pbx.clock import Clock
from televox_pbx.store.db import Store
from televox_pbx.store.nodes import db_now_s
from televox_pbx.store.sqlport import POSTGRESQL

log = logging.getLogger(__name__)
T = TypeVar("T")

JOB_LEASE_S = 30.0  # how long a job lease lasts past its last renewal
JOB_RENEW_S = 5.0   # how often a running job renews it


class LeaseLost(Exception):
    """The job's lease was lost while it ran (another node may have taken it over)."""


class JobLease:
    """One named job's lease for this store's node (store.node: set on PostgreSQL)."""

    def __init__(self, store: Store, name: str, *, lease_s: float = JOB_LEASE_S) -> None:
        self.store, self.name, self.lease_s = store, name, lease_s

    @property
    def trivial(self) -> bool:
        """One box: nothing to share, always held."""
        return self.store.dialect != POSTGRESQL

    async def take(self, *, due_only: bool = True) -> bool:
        """Take (or renew) the lease; True while this node holds it. With `due_only`, a
        free lease is taken only once the job is due (next_run_at passed); renewing one
        already held never depends on that."""
        if self.trivial:
            return True
        me = self.store.node
        if me is None:
            return False
        now = db_now_s(self.store.dialect)
        due = f" AND job_leases.next_run_at <= {now}" if due_only else ""
        async with self.store.transaction(tag="job_lease") as conn:
            cur = await conn.execute(
                f"INSERT INTO job_leases(name, holder_node, holder_epoch, expires_at,"
                f" next_run_at) SELECT :name, :node, :epoch, {now} + :lease, {now}"
                f" WHERE EXISTS (SELECT 1 FROM nodes WHERE node_id = :node"
                f"  AND epoch = :epoch AND lease_until > {now})"
                f" ON CONFLICT (name) DO UPDATE SET holder_node = excluded.holder_node,"
                f" holder_epoch = excluded.holder_epoch, expires_at = excluded.expires_at"
                f" WHERE (job_leases.holder_node = excluded.holder_node"
                f"  AND job_leases.holder_epoch = excluded.holder_epoch"
                f"  AND job_leases.expires_at > {now})"
                f" OR (job_leases.expires_at <= {now}{due})"
                f" RETURNING holder_node",
                {"name": self.name, "node": me.node_id, "epoch": me.epoch,
                 "lease": self.lease_s})
            return await cur.fetchone() is not None

    async def release(self, next_run_in_s: float) -> bool:
        """The run is over: the next one is due in `next_run_in_s` (database clock), and
        the lease ends now so any node may take it then. False if it was no longer ours
        (an expired lease keeps its schedule: the job is still due, another node runs it)."""
        if self.trivial:
            return True
        me = self.store.node
        if me is None:
            return False
        now = db_now_s(self.store.dialect)
        async with self.store.transaction(tag="job_lease") as conn:
            cur = await conn.execute(
                f"UPDATE job_leases SET expires_at = {now}, next_run_at = {now} + ?"
                f" WHERE name = ? AND holder_node = ? AND holder_epoch = ?"
                f" AND expires_at > {now}",
                (next_run_in_s, self.name, me.node_id, me.epoch))
            return int(cur.rowcount) == 1

    async def holder(self) -> tuple[str, int] | None:
        """Who holds the lease now (database clock), if anyone."""
        if self.trivial:
            return None
        now = db_now_s(self.store.dialect)
        row = await self.store.fetchone(
            f"SELECT holder_node, holder_epoch FROM job_leases WHERE name = ?"
            f" AND expires_at > {now}", (self.name,))
        return (str(row["holder_node"]), int(row["holder_epoch"])) if row else None


async def run_held(lease: JobLease, clock: Clock, step: Callable[[], Awaitable[T]], *,
                   interval_s: float, renew_s: float = JOB_RENEW_S) -> T | None:
    """Run `step` once if this node takes the job's lease (it is due and free); renew the
    lease every `renew_s` while the step runs, and cancel the step if the lease is lost.
    Returns the step's result, or None when another node holds the job or it is not due.
    After the step (done or failed) the lease is released with the next run `interval_s`
    away; a step cut short (shutdown) leaves the job due, for another node to run now."""
    if lease.trivial:
        return await step()
    if not await lease.take():
        return None
    work = asyncio.ensure_future(step())
    ran = False
    try:
        while True:
            sleeper = asyncio.ensure_future(clock.sleep(renew_s))
            done, _ = await asyncio.wait({work, sleeper}, return_when=asyncio.FIRST_COMPLETED)
            sleeper.cancel()
            if work in done:
                ran = True
                return work.result()
            if not await lease.take():
                work.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await work
                log.error("job lease lost while the job ran; stopped it",
                          extra={"job": lease.name})
                raise LeaseLost(lease.name)
    finally:
        if not work.done():
            work.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await work
        with contextlib.suppress(Exception):
            await lease.release(interval_s if ran else 0.0)
