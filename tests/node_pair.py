"""Two nodes on one throw-away PostgreSQL database (issue 19's cluster tests)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from pg_support import PgServer, fresh_database

from televox_pbx.store import Store
from televox_pbx.store.nodes import start_node


@dataclass
class Cluster:
    url: str
    a: Store  # node box-a's store, started as a node
    b: Store  # node box-b's


@pytest.fixture(name="cluster")
async def cluster_fixture(pg_server: PgServer) -> AsyncIterator[Cluster]:
    url = fresh_database(pg_server, migrated=True)
    a, b = await Store.open(url), await Store.open(url)
    a.node = await start_node(a, "box-a", "10.0.0.1:5038")
    b.node = await start_node(b, "box-b", "10.0.0.2:5038")
    try:
        yield Cluster(url, a, b)
    finally:
        await a.close()
        await b.close()
