"""Issue 19 item 5: jobs that must run once across the nodes, on the throw-away PostgreSQL.
Two nodes' retention jobs: one purge per interval for the cluster, a dead holder's job
taken over after its lease expires; a scheduled campaign started by exactly one node; a
webhook delivery for node A's lead change POSTed once with both nodes' dispatchers running.
The database's clock is moved by shifting the stored deadlines (as time passing would)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from api_support import api_settings
from dialer_support import make_campaign, seed
from node_pair import Cluster, cluster_fixture  # noqa: F401 (the fixture)
from test_api_webhooks import Receiver, hooks, one_answered_call, serve

from televox_pbx.clock import FakeClock
from televox_pbx.store import Store
from televox_pbx.store.call_feedback import set_disposition
from televox_pbx.store.campaigns import start_scheduled
from televox_pbx.store.job_leases import JobLease, LeaseLost, run_held
from televox_pbx.store.webhooks import claim_due, list_deliveries, outbox_step, record_attempt
from televox_pbx.web.retention import RetentionJob
from televox_pbx.web.webhooks import Planner, WebhookDispatcher


async def _shift(store: Store, sql: str) -> None:
    """Move the database's clock for one deadline (what waiting would do)."""
    await store.execute(sql)


async def test_one_purge_per_interval_across_two_nodes(cluster: Cluster,
                                                       tmp_path: Path) -> None:
    clock = FakeClock()
    settings = api_settings(tmp_path)
    ja, jb = (RetentionJob(s, settings, clock, interval_s=3600) for s in (cluster.a, cluster.b))
    got = await asyncio.gather(ja.run_if_due(), jb.run_if_due())
    assert sum(r is not None for r in got) == 1 and ja.runs + jb.runs == 1
    # Released with the next run an hour away: neither node runs it again before then.
    assert await asyncio.gather(ja.run_if_due(), jb.run_if_due()) == [None, None]
    await _shift(cluster.a, "UPDATE job_leases SET next_run_at = next_run_at - 3601")
    got = await asyncio.gather(jb.run_if_due(), ja.run_if_due())
    assert sum(r is not None for r in got) == 1 and ja.runs + jb.runs == 2


async def test_a_dead_holders_job_is_taken_over_after_its_lease_expires(
        cluster: Cluster, tmp_path: Path) -> None:
    clock = FakeClock()
    la = JobLease(cluster.a, "retention")
    assert await la.take()  # box-a takes the purge ... and dies without releasing it
    assert await la.holder() == ("box-a", 1)
    jb = RetentionJob(cluster.b, api_settings(tmp_path), clock)
    assert await jb.run_if_due() is None and jb.runs == 0  # held: box-b waits
    await _shift(cluster.b, "UPDATE job_leases SET expires_at = expires_at - 31")
    assert await jb.run_if_due() is not None and jb.runs == 1  # expired: taken over
    # box-a comes back: the job is box-b's now, released and not due, so a's lease is gone.
    assert not await la.take() and not await la.release(0)


async def test_a_node_whose_own_lease_lapsed_takes_no_job(cluster: Cluster) -> None:
    await _shift(cluster.a, "UPDATE nodes SET lease_until = lease_until - 60"
                            " WHERE node_id = 'box-a'")
    la, lb = JobLease(cluster.a, "retention"), JobLease(cluster.b, "retention")
    assert not await la.take()
    assert await lb.take()


class WatchedLease(JobLease):
    """A lease whose every take() is seen by the test (no polling, no sleeping)."""

    def __init__(self, store: Store, name: str) -> None:
        super().__init__(store, name)
        self.takes: asyncio.Queue[bool] = asyncio.Queue()

    async def take(self, *, due_only: bool = True) -> bool:
        got = await super().take(due_only=due_only)
        self.takes.put_nowait(got)
        return got


async def test_a_running_job_renews_its_lease_and_stops_when_it_loses_it(
        cluster: Cluster) -> None:
    clock = FakeClock()
    la, lb = WatchedLease(cluster.a, "purge"), JobLease(cluster.b, "purge")
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def long_step() -> int:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()
        return 1

    run = asyncio.create_task(run_held(la, clock, long_step, interval_s=60, renew_s=5))
    assert await asyncio.wait_for(la.takes.get(), 10)
    await asyncio.wait_for(started.wait(), 10)
    # Most of the lease has gone by (database clock); the renewal pushes it out again.
    await _shift(cluster.a, "UPDATE job_leases SET expires_at = expires_at - 25")
    await clock.advance(5)
    assert await asyncio.wait_for(la.takes.get(), 10) and not run.done()
    row = await cluster.b.fetchone(
        "SELECT expires_at - CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS DOUBLE PRECISION)"
        " FROM job_leases")
    assert row is not None and float(row[0]) > 25
    # It stalls past its lease; box-b takes the job over; at a's next renewal a stops.
    await _shift(cluster.a, "UPDATE job_leases SET expires_at = expires_at - 100")
    assert await lb.take()
    await clock.advance(5)
    assert not await asyncio.wait_for(la.takes.get(), 10)
    with pytest.raises(LeaseLost):
        await asyncio.wait_for(run, 10)
    assert cancelled.is_set() and await lb.holder() == ("box-b", 1)


async def test_two_nodes_start_a_scheduled_campaign_once(cluster: Cluster) -> None:
    cid = await seed(cluster.a, make_campaign(), [["+12125550100"]], state="SCHEDULED")
    now = FakeClock().now()
    for _ in range(3):
        got = await asyncio.gather(start_scheduled(cluster.a, cid, now),
                                   start_scheduled(cluster.b, cid, now))
        assert sum(got) <= 1
    rows = await cluster.a.fetchall("SELECT from_state, to_state FROM campaign_state_log"
                                    " WHERE campaign_id = ? ORDER BY id", (cid,))
    assert [(r[0], r[1]) for r in rows][-1:] == [("SCHEDULED", "RUNNING")]
    assert sum(1 for r in rows if r[1] == "RUNNING") == 1


async def test_node_as_lead_change_is_delivered_once_by_two_dispatchers(
        cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEVOX_TEST_WEBHOOK_SECRET", "whsec-test")
    clock = FakeClock()
    async with serve(Receiver([500])) as rx:  # down at first: every delivery is retried
        settings = hooks(rx.url)
        da, db = (WebhookDispatcher(s, settings, clock, "http://televox.test")
                  for s in (cluster.a, cluster.b))
        try:
            call_id = await one_answered_call(cluster.a, clock)  # a lead changes on box-a
            assert await db.step() >= 2  # box-b's outbox sees box-a's events and sends
            await db.drain()
            first = len(rx.got)
            rx.script = [200]
            await clock.advance(31)  # the retries are due: both nodes step at once
            await asyncio.gather(da.step(), db.step())
            await asyncio.gather(da.drain(), db.drain())
            assert len(rx.got) == 2 * first  # each delivery retried once, by one node
            await set_disposition(cluster.a, call_id, "CALLBACK", "ops", clock.now())
            await outbox_step(cluster.b, Planner(settings, "http://t"), clock.now())
            for _ in range(2):  # queued and due: both nodes step at once
                await asyncio.gather(da.step(), db.step())
                await asyncio.gather(da.drain(), db.drain())
        finally:
            await da.close()
            await db.close()
    rows, total = await list_deliveries(cluster.b)
    assert total == first + 1 and all(d.status == "delivered" for d in rows)
    assert sorted(d.attempts for d in rows) == [1] + [2] * first
    assert sorted(rx.acked) == sorted(d.event_id for d in rows)  # each acked exactly once
    assert len(rx.got) == 2 * first + 1
    assert {h["X-Televox-Event"] for h, _ in rx.got} >= {"campaign.lead.updated",
                                                         "call.completed"}


async def test_a_dead_nodes_claimed_delivery_is_taken_over_after_its_claim(
        cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEVOX_TEST_WEBHOOK_SECRET", "whsec-test")
    clock = FakeClock()
    await one_answered_call(cluster.a, clock)
    await outbox_step(cluster.a, Planner(hooks("http://127.0.0.1:9/hook"), "http://t"),
                      clock.now())
    mine = await claim_due(cluster.a, "box-a:1", clock.now(), 10, 40.0)
    assert mine  # box-a claims the deliveries ... and dies mid-send
    assert await claim_due(cluster.b, "box-b:1", clock.now(), 10, 40.0) == []
    await _shift(cluster.b, "UPDATE webhook_deliveries SET claim_until = claim_until - 41")
    theirs = await claim_due(cluster.b, "box-b:1", clock.now(), 10, 40.0)
    assert sorted(d.id for d in theirs) == sorted(d.id for d in mine)
    # box-a's late result is refused: the delivery is box-b's now.
    assert not await record_attempt(cluster.a, mine[0].id, 1, clock.now(), status_code=200,
                                    error=None, duration_ms=1.0, outcome="delivered",
                                    next_at=None, claimer="box-a:1")
    assert await record_attempt(cluster.b, mine[0].id, 1, clock.now(), status_code=200,
                                error=None, duration_ms=1.0, outcome="delivered",
                                next_at=None, claimer="box-b:1")
