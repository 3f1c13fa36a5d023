"""/status and /metrics speak for this node and for the cluster (issue 19 item 7): three
nodes on the throw-away PostgreSQL (never skipped), one of them dead, calls live on two."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from aiohttp.test_utils import TestClient, TestServer
from dialer_support import make_campaign, seed
from pg_support import PgServer, fresh_database
from pydantic import SecretStr

from televox_pbx.clock import FakeClock
from televox_pbx.config.settings import Settings
from televox_pbx.store import Store
from televox_pbx.store.attempts import Intent, claim
from televox_pbx.store.nodes import start_node
from televox_pbx.web.context import ApiContext
from televox_pbx.web.server import build_app

NOW = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)
TOKEN = "cluster-status-token"
_SAMPLE = re.compile(r'^[a-z_]+(\{([a-z_]+="[^"]*",?)*\})? -?[0-9.e+]+$')


@pytest.fixture
async def client(pg_server: PgServer) -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    url = fresh_database(pg_server, migrated=True)
    stores = [await Store.open(url) for _ in range(3)]
    cid = await seed(stores[0], make_campaign(), [[f"+121255501{i:02d}"] for i in range(5)])
    for i, (s, cap) in enumerate(zip(stores, (4, 6, 8), strict=True)):
        # An hour's lease (the database's real clock): never lapsing on a slow CI box.
        s.node = await start_node(s, f"box-{i}", f"10.0.0.{i}:5038", 3600, capacity=cap)
    for n, (s, contact) in enumerate(((stores[0], 1), (stores[1], 2), (stores[1], 3))):
        await claim(s, Intent(f"c{n}", cid, contact, f"+121255501{contact - 1:02d}", 1, 1,
                              "test"), NOW, "default")
    await stores[0].execute("UPDATE nodes SET lease_until = lease_until - 7200"
                            " WHERE node_id = 'box-2'")  # box-2 died
    settings = Settings.model_validate({"database": {"url": url, "node_id": "box-0"}})
    app = build_app(ApiContext(stores[0], settings, FakeClock(NOW)),
                    {"ops": SecretStr(TOKEN)})
    async with TestClient(TestServer(app)) as c:
        yield c
    for s in stores:
        await s.close()


async def test_status_reports_the_node_and_the_cluster(
        client: TestClient) -> None:  # type: ignore[type-arg]
    async with client.get("/api/v1/status") as resp:
        body = await resp.json()
    assert body["calls_in_flight"] == 1  # this node's own
    assert body["node"] == {"id": "box-0", "calls_in_flight": 1, "capacity": 4,
                            "lease_alive": True}
    assert body["cluster"] == {"nodes_alive": 2, "nodes_dead": 1, "calls_in_flight": 3,
                               "capacity": 10}  # the live nodes' 4 + 6
    assert "detail" not in body
    async with client.get("/api/v1/status",
                          headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
        nodes = (await resp.json())["detail"]["nodes"]
    assert [(n["id"], n["alive"], n["calls_in_flight"], n["capacity"], n["ami_address"])
            for n in nodes] == [("box-0", True, 1, 4, "10.0.0.0:5038"),
                                ("box-1", True, 2, 6, "10.0.0.1:5038"),
                                ("box-2", False, 0, 8, "10.0.0.2:5038")]


async def test_metrics_report_the_node_and_the_cluster(
        client: TestClient) -> None:  # type: ignore[type-arg]
    async with client.get("/api/v1/metrics",
                          headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
        assert resp.status == 200
        text = await resp.text()
    samples = {}
    for line in text.splitlines():
        if not line.startswith("#"):
            assert _SAMPLE.match(line), line
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    assert samples["televox_calls_in_flight"] == 1 and samples["televox_capacity"] == 4
    assert samples['televox_cluster_nodes{state="alive"}'] == 2
    assert samples['televox_cluster_nodes{state="dead"}'] == 1
    assert [samples[f'televox_cluster_node_calls_in_flight{{node="box-{i}"}}']
            for i in range(3)] == [1, 2, 0]
    assert samples["televox_cluster_calls_in_flight"] == 3
    assert samples["televox_cluster_capacity"] == 10
