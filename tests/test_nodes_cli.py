"""`televox nodes list` on PostgreSQL (the throw-away server; never skipped)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pg_support import PgServer, fresh_database

from televox_pbx.cli import main
from televox_pbx.store import Store
from televox_pbx.store.nodes import start_node
from televox_pbx.store.pg import connect_kwargs


def test_nodes_list_shows_each_nodes_lease_and_calls(
        pg_server: PgServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = fresh_database(pg_server, migrated=True)

    async def two_nodes() -> None:
        store = await Store.open(url)
        try:
            await start_node(store, "box-a", "10.0.0.1:5038", capacity=6)
            await start_node(store, "box-b", "10.0.0.2:5038")
            await store.execute("UPDATE nodes SET lease_until = lease_until - 60"
                                " WHERE node_id = 'box-b'")
        finally:
            await store.close()
    asyncio.run(two_nodes())
    cfg = tmp_path / "televox.yaml"
    cfg.write_text(f"database:\n  url: \"{url}\"\n")
    assert main(["-c", str(cfg), "nodes", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NODE", "EPOCH", "AMI", "LEASE", "IN", "FLIGHT", "CAPACITY"]
    a, b = (line.split() for line in lines[1:])
    assert a[:5] == ["box-a", "1", "10.0.0.1:5038", "alive,", "expires"]
    assert a[-2:] == ["0", "6"]
    assert b[:4] == ["box-b", "1", "10.0.0.2:5038", "expired"] and b[-2:] == ["0", "-"]


def test_statement_cache_size_in_the_url_reaches_asyncpg_not_the_server(
        pg_server: PgServer) -> None:
    kw = connect_kwargs("postgresql://televox@db.lan:6432/televox?statement_cache_size=0"
                        "&sslmode=prefer", None)
    assert kw == {"dsn": "postgresql://televox@db.lan:6432/televox?sslmode=prefer",
                  "statement_cache_size": 0}
    url = fresh_database(pg_server, migrated=True)  # and a real connection takes it

    async def go() -> int:
        store = await Store.open(url + "&statement_cache_size=0")
        try:
            await start_node(store, "box-a", "10.0.0.1:5038")
            row = await store.fetchone("SELECT COUNT(*) AS n FROM nodes")
            return int(row["n"]) if row else -1
        finally:
            await store.close()
    assert asyncio.run(go()) == 1
