"""Issue 19 item 6: every node's events reach every node's clients, on the throw-away
PostgreSQL. An SSE viewer of node B's dashboard sees a change written by node A: woken by
NOTIFY without its poll's clock moving, and by the poll when the notification is lost.
The webhook outbox never steps over an event that commits late with a smaller id."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from api_support import api_settings, running_api, until
from dialer_support import make_campaign, seed
from node_pair import Cluster, cluster_fixture  # noqa: F401 (the fixture)
from test_api_webhooks import Receiver, hooks, serve

from televox_pbx.clock import FakeClock
from televox_pbx.store import Store
from televox_pbx.store.id_follow import IdFollower
from televox_pbx.store.notices import RESYNC, PgListener, parse, pg_listener
from televox_pbx.store.webhooks import list_deliveries, outbox_step
from televox_pbx.web.ui.progress import HUB, ProgressHub, progress_stream
from televox_pbx.web.webhooks import Planner

AT = "2026-01-05T15:00:00.000Z"


async def _lead_changes(store: Store, contact_id: int, to_status: str) -> None:
    """What an outcome does on a node: the contact's status and its event, one commit."""
    async with store.transaction() as conn:
        await conn.execute("UPDATE contacts SET status = ? WHERE id = ?", (to_status, contact_id))
        await conn.execute(
            "INSERT INTO contact_events(contact_id, event, from_status, to_status, at)"
            " VALUES (?, 'outcome:test', 'pending', ?, ?)", (contact_id, to_status, AT))


class SseClient:
    """Reads node B's /ui/progress stream as a browser would."""

    def __init__(self, client: TestClient[Any, Any]) -> None:
        self.client = client
        self.resp: Any = None

    async def open(self) -> None:
        self.resp = await self.client.get("/ui/progress")
        assert self.resp.status == 200

    async def next(self) -> dict[str, Any]:
        while True:
            line = (await asyncio.wait_for(self.resp.content.readline(), 10)).decode()
            if line.startswith("data: "):
                return dict(json.loads(line[6:]))


def _counts(snap: dict[str, Any]) -> tuple[int, int]:
    """(queued, done) of the one campaign."""
    [campaign] = snap["campaigns"]
    return int(campaign["queued"]), int(campaign["done"])


@contextlib.asynccontextmanager
async def node_b_dashboard(store: Store, clock: FakeClock,
                           listener: PgListener | None) -> AsyncIterator[SseClient]:
    hub = ProgressHub(store, clock)
    if listener is not None:
        listener.subscribe(hub.wake)
    app = web.Application()
    app[HUB] = hub
    app.router.add_get("/ui/progress", progress_stream)
    tasks = [asyncio.create_task(hub.run())]
    if listener is not None:
        tasks.append(asyncio.create_task(listener.run()))
        await asyncio.wait_for(listener.connected.wait(), 10)
    try:
        async with TestClient(TestServer(app)) as client:
            sse = SseClient(client)
            await sse.open()
            yield sse
            hub.close()
    finally:
        hub.close()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _one_contact(cluster: Cluster) -> int:
    await seed(cluster.a, make_campaign(), [["+12125550100"]])
    row = await cluster.a.fetchone("SELECT id FROM contacts")
    assert row is not None
    return int(row[0])


async def test_a_viewer_on_b_sees_as_write_through_notify(cluster: Cluster) -> None:
    contact = await _one_contact(cluster)
    clock = FakeClock()  # never past B's poll interval: only a notice wakes its hub
    listener = pg_listener(cluster.url, None, clock)
    async with node_b_dashboard(cluster.b, clock, listener) as sse:
        assert _counts(await sse.next()) == (1, 0)
        await _lead_changes(cluster.a, contact, "completed")  # written on node A
        await clock.advance(0.1)  # the least gap between two reads, < the 0.5 s poll
        assert _counts(await sse.next()) == (0, 1)
        assert listener.received >= 1


async def test_a_viewer_on_b_sees_as_write_by_polling_when_the_notice_is_lost(
        cluster: Cluster) -> None:
    contact = await _one_contact(cluster)
    clock = FakeClock()
    async with node_b_dashboard(cluster.b, clock, None) as sse:  # no listener: lost
        assert _counts(await sse.next()) == (1, 0)
        await _lead_changes(cluster.a, contact, "completed")
        await clock.advance(0.5)  # B's next poll
        assert _counts(await sse.next()) == (0, 1)


async def test_the_listener_reconnects_and_asks_for_a_resync(cluster: Cluster) -> None:
    contact = await _one_contact(cluster)
    clock = FakeClock()
    listener = pg_listener(cluster.url, None, clock)
    seen: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
    listener.subscribe(lambda table, top: seen.put_nowait((table, top)))
    task = asyncio.create_task(listener.run())
    try:
        assert await asyncio.wait_for(seen.get(), 10) == (RESYNC, 0)
        # The database drops the listening session (a restart, a network cut).
        await cluster.a.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                                " WHERE query LIKE 'LISTEN%'")
        await asyncio.wait_for(listener.lost.wait(), 10)  # then it waits to retry
        await clock.advance(listener.retry_s)
        assert await asyncio.wait_for(seen.get(), 10) == (RESYNC, 0)  # readers look again
        await _lead_changes(cluster.a, contact, "completed")
        row = await cluster.a.fetchone("SELECT MAX(id) FROM contact_events")
        assert row is not None
        assert await asyncio.wait_for(seen.get(), 10) == ("contact_events", int(row[0]))
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_a_notice_carries_a_table_and_an_id_only() -> None:
    assert parse("contact_events:42") == ("contact_events", 42)
    assert parse("garbage") is None and parse("t:x") is None


async def test_the_outbox_never_steps_over_a_late_commit(
        cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEVOX_TEST_WEBHOOK_SECRET", "whsec-test")
    await seed(cluster.a, make_campaign(), [["+12125550100"], ["+12125550101"]])
    first, second = [int(r[0]) for r in
                     await cluster.a.fetchall("SELECT id FROM contacts ORDER BY id")]
    plan, now = Planner(hooks("http://127.0.0.1:9/hook"), "http://t"), FakeClock().now()
    await outbox_step(cluster.b, plan, now)  # the campaign's start: not this test's matter
    before = {d.id for d in (await list_deliveries(cluster.b))[0]}
    # A slow node's transaction takes the smaller id and commits last.
    slow = await asyncpg.connect(cluster.url)
    try:
        tx = slow.transaction()
        await tx.start()
        await slow.execute("INSERT INTO contact_events(contact_id, event, from_status,"
                           " to_status, at) VALUES ($1, 'outcome:slow', 'pending',"
                           " 'completed', $2)", first, AT)
        await _lead_changes(cluster.a, second, "completed")  # bigger id, committed first
        assert await outbox_step(cluster.b, plan, now) == 0  # waits for the older one
        await tx.commit()
    finally:
        await slow.close()
    assert await outbox_step(cluster.b, plan, now) == 2
    rows = [d for d in (await list_deliveries(cluster.b))[0] if d.id not in before]
    assert sorted(json.loads(d.payload_json)["data"]["contact_id"] for d in rows) == [
        first, second]


async def test_the_daemon_on_postgresql_sends_another_nodes_event_on_its_notice(
        cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The wiring: a daemon on PostgreSQL LISTENs (database.listen_url), and a lead change
    written by another node wakes its webhook dispatcher long before its poll would."""
    monkeypatch.setenv("TELEVOX_TEST_WEBHOOK_SECRET", "whsec-test")
    contact = await _one_contact(cluster)
    async with serve(Receiver([200])) as rx:
        base = api_settings(tmp_path, webhooks=hooks(rx.url).model_copy(
            update={"poll_interval_s": 3600.0}))
        db = base.database.model_copy(update={
            "url": cluster.url, "listen_url": f"{cluster.url}&application_name=listener",
            "node_id": "box-c"})
        async with running_api(base.model_copy(update={"database": db}), dial=False) as api:
            web_ctx = api.app.web.ctx
            assert isinstance(web_ctx.notices, PgListener)
            await asyncio.wait_for(web_ctx.notices.connected.wait(), 10)
            row = await cluster.a.fetchone("SELECT query FROM pg_stat_activity"
                                           " WHERE application_name = 'listener'")
            assert row is not None and str(row[0]).startswith("LISTEN")
            # Its first step (at start, and at the listener's resync) sends the campaign's
            # start; after that only a notice wakes it before the hour's poll.
            await until(lambda: _got(rx, "campaign.state.changed"), 10)
            await _lead_changes(cluster.a, contact, "completed")  # on node box-a
            await until(lambda: _got(rx, "campaign.lead.updated"), 10)


async def _got(rx: Receiver, event: str) -> bool:
    return event in {h["X-Televox-Event"] for h, _ in rx.got}


_AMI = "INSERT INTO ami_events(received_at, event, fields_json) VALUES ({}, 'Newchannel', '{{}}')"


async def _ami_event(slow: Any) -> None:
    """An AMI event logged in the slow connection's open transaction."""
    await slow.execute(_AMI.format("$1"), AT)


async def _ami_event_on(store: Store) -> None:
    """One logged and committed by a node's event log."""
    await store.execute(_AMI.format("?"), (AT,))


async def test_the_event_stream_waits_for_a_late_commit_and_passes_a_rollback(
        cluster: Cluster) -> None:
    clock = FakeClock()
    follow = IdFollower(cluster.b, "ami_events", clock)
    slow = await asyncpg.connect(cluster.url)
    try:
        tx = slow.transaction()
        await tx.start()
        await _ami_event(slow)  # id 1, committed last
        await _ami_event_on(cluster.a)  # id 2, committed first (node A's event log)
        assert await follow.safe_upto(0) == 0  # 2 is held back while 1 may still come
        await tx.commit()
        assert await follow.safe_upto(0) == 2
        tx = slow.transaction()
        await tx.start()
        await _ami_event(slow)  # id 3: rolled back, never to come
        await tx.rollback()
        await _ami_event_on(cluster.a)  # id 4
        assert await follow.safe_upto(2) == 2
        await clock.advance(follow.wait_s)  # the gap is given up on
        assert await follow.safe_upto(2) == 4
    finally:
        await slow.close()


async def test_one_writer_needs_no_bound(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "one.db")
    try:
        assert await IdFollower(store, "ami_events", FakeClock()).safe_upto(0) is None
    finally:
        await store.close()
