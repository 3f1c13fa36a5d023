"""`serve --exit-when-idle` on a cluster: a daemon is idle when it has nothing left of
its own, whatever calls other nodes still hold (issue 19; the throw-away PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime

from pg_support import PgServer, fresh_database

from televox_pbx.ami.client import AmiClient
from televox_pbx.campaigns.runner import CampaignRunner
from televox_pbx.clock import FakeClock
from televox_pbx.config.settings import AmiSettings
from televox_pbx.store import Store
from televox_pbx.store.attempts import record_inbound
from televox_pbx.store.nodes import start_node

NOW = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)


async def test_another_nodes_call_keeps_only_that_node_busy(pg_server: PgServer) -> None:
    url = fresh_database(pg_server, migrated=True)
    stores = [await Store.open(url) for _ in range(2)]
    try:
        for i, store in enumerate(stores):
            store.node = await start_node(store, f"box-{i}", f"10.0.0.{i}:5038")
        clock = FakeClock(NOW)
        runners = [CampaignRunner(s, AmiClient(AmiSettings(), clock=clock), clock)
                   for s in stores]
        assert [await r.idle() for r in runners] == [True, True]
        # An inbound call answered on box-1: its attempt is that node's.
        assert await record_inbound(stores[1], "in-1", "+12125550001", NOW)
        assert [await r.idle() for r in runners] == [True, False]
        await stores[1].execute("UPDATE call_attempts SET status = 'completed'")
        assert [await r.idle() for r in runners] == [True, True]
    finally:
        for store in stores:
            await store.close()
