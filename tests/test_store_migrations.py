"""Migrations keep every row: v1 -> latest with the bundled files, and the runner itself."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from pg_support import PgServer, fresh_database

from televox_pbx.cli import main
from televox_pbx.store.db import Migration, Store, StoreError, bundled_migrations

# One row per v1 table, with a value in every column (no defaults left to chance), in an
# order that satisfies the foreign keys.
V1_ROWS: dict[str, list[dict[str, Any]]] = {
    "campaigns": [{
        "id": 1, "name": "dental", "state": "PAUSED", "scheduled_at": "2026-12-01T14:00:00Z",
        "config_json": '{"name": "dental"}', "current_pass": 2,
        "pass_started_at": "2026-11-20T10:00:00Z", "created_at": "2026-11-01T00:00:00Z",
        "updated_at": "2026-11-02T00:00:00Z"}],
    "contacts": [{
        "id": 10, "campaign_id": 1, "name": "Jane Doe", "first_name": "Jane",
        "last_name": "Doe", "email": "jane@example.com", "timezone": "America/New_York",
        "variables_json": '{"APPOINTMENT_DATE": "Tuesday"}', "status": "retry",
        "phone_index": 2, "retry_pass": 2, "last_disposition": "no_answer",
        "last_attempt_at": "2026-11-20T15:00:00Z", "last_answered_at": "2026-11-19T15:00:00Z",
        "next_eligible_at": "2026-11-20T17:00:00Z", "callback_at": "2026-11-21T15:00:00Z",
        "notes": "prefers mornings", "source": "api", "created_at": "2026-11-01T00:00:01Z",
        "updated_at": "2026-11-20T15:00:01Z"}],
    "contact_phones": [{
        "id": 100, "contact_id": 10, "campaign_id": 1, "position": 1, "e164": "+15550100001",
        "attempts": 3, "last_status": "busy"}],
    "call_attempts": [{
        "id": "b989e6ee-b220-458c-9d9e-6157f6db44c1", "campaign_id": 1, "contact_id": 10,
        "phone": "+15550100001", "phone_position": 1, "retry_pass": 2, "direction": "outbound",
        "status": "completed", "failure": "busy", "hangup_cause": 17, "sip_code": 486,
        "amd_status": "HUMAN", "amd_cause": "HUMAN-800-800", "disposition": "confirmed",
        "notes": "will attend", "turns": 6, "duration_s": 42.5,
        "created_at": "2026-11-20T15:00:00Z", "originated_at": "2026-11-20T15:00:00.1Z",
        "ringing_at": "2026-11-20T15:00:01Z", "answered_at": "2026-11-20T15:00:05Z",
        "hangup_at": "2026-11-20T15:00:47Z", "gate_reason": "allowed"}],
    "dnc": [{
        "e164": "+15550100009", "workspace": "default", "reason": "asked", "source": "call",
        "added_by": "agent", "added_at": "2026-11-20T15:01:00Z"}],
    "dnc_audit": [{
        "id": 5, "workspace": "default", "e164": "+15550100009", "action": "add",
        "reason": "asked", "source": "call", "actor": "agent", "at": "2026-11-20T15:01:00Z"}],
    "gate_decisions": [{
        "id": 7, "campaign_id": 1, "contact_id": 10, "phone": "+15550100001", "allowed": 0,
        "reason": "window", "detail": "21:05 local", "at": "2026-11-20T02:05:00Z"}],
    "transcripts": [{
        "id": 8, "attempt_id": "b989e6ee-b220-458c-9d9e-6157f6db44c1", "turn": 1,
        "speaker": "agent", "text": "Hi Jane, this is Ava, an AI assistant.",
        "started_at": "2026-11-20T15:00:05Z", "ended_at": "2026-11-20T15:00:08Z",
        "interrupted": 1, "latency_json": '{"stt_ms": 480}'}],
    "recordings": [{
        "id": 9, "attempt_id": "b989e6ee-b220-458c-9d9e-6157f6db44c1",
        "path": "var/recordings/b989.wav", "seconds": 42.0,
        "created_at": "2026-11-20T15:00:48Z"}],
    "callbacks": [{
        "id": 11, "attempt_id": "b989e6ee-b220-458c-9d9e-6157f6db44c1", "contact_id": 10,
        "due_at": "2026-11-21T15:00:00Z", "zone": "America/New_York", "status": "pending",
        "created_at": "2026-11-20T15:00:47Z"}],
    "ami_events": [{
        "id": 12, "received_at": "2026-11-20T15:00:00Z", "event": "OriginateResponse",
        "call_id": "b989e6ee-b220-458c-9d9e-6157f6db44c1",
        "fields_json": '{"Response": "Success", "Reason": "4"}'}],
    "webhook_deliveries": [{
        "id": 13, "url": "https://crm.example.com/hook", "event": "call.completed",
        "payload_json": '{"id": "b989"}', "status": "failed", "attempts": 4,
        "last_error": "HTTP 502", "created_at": "2026-11-20T15:00:48Z",
        "delivered_at": "2026-11-20T15:05:00Z"}],
    "daemon_state": [{"key": "last_shutdown", "value": "clean"}],
}


async def insert_rows(store: Store, rows: dict[str, list[dict[str, Any]]]) -> None:
    async with store.transaction() as conn:
        for table, table_rows in rows.items():
            for row in table_rows:
                cols = ", ".join(row)
                marks = ", ".join("?" for _ in row)
                await conn.execute(f"INSERT INTO {table} ({cols}) VALUES ({marks})",
                                   list(row.values()))


async def user_tables(store: Store) -> set[str]:
    if store.dialect == "postgresql":
        rows = await store.fetchall(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = current_schema() AND table_name != 'schema_migrations'")
    else:
        rows = await store.fetchall(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            " AND name != 'schema_migrations'")
    return {r[0] for r in rows}


async def has_column(store: Store, table: str, column: str) -> bool:
    sql = ("SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema()"
           " AND table_name = ? AND column_name = ?") if store.dialect == "postgresql" \
        else "SELECT 1 FROM pragma_table_info(?) WHERE name = ?"
    return await store.fetchone(sql, (table, column)) is not None


async def snapshot(store: Store, table: str) -> list[dict[str, Any]]:
    # Every fixture table has one row: no order needed (PostgreSQL has no rowid).
    rows = await store.fetchall(f"SELECT * FROM {table}")
    return [dict(zip(r.keys(), tuple(r), strict=True)) for r in rows]


@pytest.mark.both_backends
async def test_v1_data_survives_every_bundled_migration(store_url: str) -> None:
    store = await Store.open(store_url, migrate=False)
    try:
        assert await store.migrate(target=1) == [1]
        assert await store.schema_version() == 1
        # The fixture must cover every v1 table, or this test proves less than it says.
        assert await user_tables(store) == set(V1_ROWS)
        await insert_rows(store, V1_ROWS)
        before = {t: await snapshot(store, t) for t in V1_ROWS}
        for table, rows in V1_ROWS.items():
            assert before[table] == rows  # every column given, so the snapshot is the data

        applied = await store.migrate()
        latest = bundled_migrations()[-1].version
        assert applied == [m.version for m in bundled_migrations() if m.version > 1]
        assert await store.schema_version() == latest

        for table, rows in before.items():
            after = await snapshot(store, table)
            assert len(after) == len(rows), table
            for old, new in zip(rows, after, strict=True):
                # New columns may appear; no v1 column may change or vanish.
                assert {k: new.get(k, "<missing>") for k in old} == old, table
        if store.dialect == "sqlite":
            assert await store.fetchall("PRAGMA foreign_key_check") == []
            assert (await store.fetchone("PRAGMA integrity_check"))[0] == "ok"  # type: ignore[index]
        assert await store.migrate() == []  # idempotent
        # Rows given explicit ids did not leave the id generator behind them.
        await store.execute("INSERT INTO campaigns(name) VALUES ('next')")
        row = await store.fetchone("SELECT id FROM campaigns WHERE name = 'next'")
        assert row is not None and row[0] == 2
    finally:
        await store.close()


# --- the runner, with synthetic chains ---------------------------------------------------

BASE = [
    Migration(1, "0001_base.sql", """
        CREATE TABLE teams (id INTEGER PRIMARY KEY, name TEXT NOT NULL, legacy TEXT);
        CREATE TABLE people (id INTEGER PRIMARY KEY,
                             team_id INTEGER NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
                             name TEXT NOT NULL);
        INSERT INTO teams VALUES (1, 'red', 'x'), (2, 'blue', NULL);
        INSERT INTO people VALUES (1, 1, 'ann'), (2, 1, 'bob'), (3, 2, 'cy');
    """),
]

# SQLite's 12-step rebuild of a parent table: new table, copy, drop old, rename.
REBUILD = Migration(2, "0002_rebuild_teams.sql", """
    CREATE TABLE teams_new (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,
                            colour TEXT NOT NULL DEFAULT 'none');
    INSERT INTO teams_new (id, name, colour) SELECT id, name, COALESCE(legacy, 'none')
        FROM teams;
    DROP TABLE teams;
    ALTER TABLE teams_new RENAME TO teams;
""")

FAILING = Migration(3, "0003_broken.sql", """
    ALTER TABLE people ADD COLUMN email TEXT;
    UPDATE people SET email = name || '@example.com';
    INSERT INTO no_such_table VALUES (1);
""")


async def test_table_rebuild_keeps_parent_and_child_rows(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "t.db", migrate=False)
    try:
        assert await store.migrate(BASE) == [1]
        assert await store.migrate([*BASE, REBUILD]) == [2]
        teams = [tuple(r) for r in await store.fetchall("SELECT * FROM teams ORDER BY id")]
        assert teams == [(1, "red", "x"), (2, "blue", "none")]
        # Dropping the old parent must not have cascaded into the children.
        people = [tuple(r) for r in await store.fetchall("SELECT * FROM people ORDER BY id")]
        assert people == [(1, 1, "ann"), (2, 1, "bob"), (3, 2, "cy")]
        # Foreign keys are enforced again afterwards, against the rebuilt table.
        assert (await store.fetchone("PRAGMA foreign_keys"))[0] == 1  # type: ignore[index]
        with pytest.raises(sqlite3.IntegrityError):
            await store.execute("INSERT INTO people VALUES (4, 99, 'ghost')")
        await store.execute("DELETE FROM teams WHERE id = 2")
        assert len(await store.fetchall("SELECT * FROM people")) == 2  # cascade still works
    finally:
        await store.close()


async def test_failing_migration_rolls_back_and_keeps_previous_version(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "t.db", migrate=False)
    try:
        await store.migrate([*BASE, REBUILD])
        with pytest.raises(StoreError, match=r"0003_broken\.sql"):
            await store.migrate([*BASE, REBUILD, FAILING])
        assert await store.schema_version() == 2
        cols = {r[1] for r in await store.fetchall("PRAGMA table_info(people)")}
        assert "email" not in cols  # the ALTER before the error was rolled back too
        assert len(await store.fetchall("SELECT * FROM people")) == 3
        assert not store.conn.in_transaction
        assert (await store.fetchone("PRAGMA foreign_keys"))[0] == 1  # type: ignore[index]
        # The store stays usable, and a fixed migration 3 applies cleanly.
        fixed = Migration(3, "0003_fixed.sql", "ALTER TABLE people ADD COLUMN email TEXT;")
        assert await store.migrate([*BASE, REBUILD, fixed]) == [3]
    finally:
        await store.close()


async def test_migration_leaving_dangling_foreign_keys_is_refused(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "t.db", migrate=False)
    try:
        await store.migrate(BASE)
        orphaning = Migration(2, "0002_orphans.sql", "DELETE FROM teams WHERE id = 1;")
        # With enforcement off during migrations, the runner must check keys itself.
        with pytest.raises(StoreError, match="foreign key"):
            await store.migrate([*BASE, orphaning])
        assert await store.schema_version() == 1
        assert len(await store.fetchall("SELECT * FROM teams")) == 2
    finally:
        await store.close()


async def test_target_stops_early(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "t.db", migrate=False)
    try:
        assert await store.migrate([*BASE, REBUILD], target=1) == [1]
        assert await store.schema_version() == 1
    finally:
        await store.close()


# --- `televox db upgrade` end to end ------------------------------------------------------

def test_db_upgrade_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "sub" / "televox.db"
    latest = bundled_migrations()[-1].version
    assert main(["db", "upgrade", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert f"schema version {latest}" in out
    assert f"applied {len(bundled_migrations())} migration(s)" in out
    assert main(["db", "upgrade", "--db", str(db)]) == 0
    assert "applied 0 migration(s)" in capsys.readouterr().out
    assert main(["db", "version", "--db", str(db)]) == 0
    assert capsys.readouterr().out.strip() == str(latest)


def test_db_upgrade_uses_settings_path(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "televox.yaml").write_text("database: {path: data/x.db}\n")
    assert main(["--config", "etc/televox.yaml", "db", "upgrade"]) == 0
    assert (tmp_path / "etc" / "data" / "x.db").is_file()  # relative to the settings file
    capsys.readouterr()


async def test_db_upgrade_cli_from_v1_keeps_data(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "old.db"
    store = await Store.open(db, migrate=False)
    await store.migrate(target=1)
    await insert_rows(store, V1_ROWS)
    await store.close()

    # The CLI runs its own event loop, so run it in a worker thread from this async test.
    import asyncio

    assert await asyncio.to_thread(main, ["db", "upgrade", "--db", str(db)]) == 0
    assert f"applied {len(bundled_migrations()) - 1}" in capsys.readouterr().out
    conn = sqlite3.connect(db)
    try:
        names = [r[0] for r in conn.execute("SELECT name FROM contacts")]
        assert names == ["Jane Doe"]
    finally:
        conn.close()


async def test_a_skipped_older_migration_is_still_applied(tmp_path: Path) -> None:
    """A store that recorded 1 and 3 (2 was added later) gets 2, not skipped for being old."""
    one = Migration(1, "0001_a.sql", "CREATE TABLE a (x INTEGER);")
    two = Migration(2, "0002_b.sql", "CREATE TABLE b (y INTEGER);")
    three = Migration(3, "0003_c.sql", "CREATE TABLE c (z INTEGER);")
    store = await Store.open(tmp_path / "s.db", migrate=False)
    try:
        assert await store.migrate([one, three]) == [1, 3]
        assert await store.migrate([one, two, three]) == [2]
        assert await store.fetchone("SELECT name FROM sqlite_master WHERE name='b'") is not None
    finally:
        await store.close()


# --- the same runner rules on both backends ----------------------------------------------

BROKEN_2 = Migration(2, "0002_broken.sql", """
    ALTER TABLE people ADD COLUMN email TEXT;
    UPDATE people SET email = name || '@example.com';
    INSERT INTO no_such_table VALUES (1);
""")


@pytest.mark.both_backends
async def test_a_failing_migration_leaves_nothing_behind(store_url: str) -> None:
    store = await Store.open(store_url, migrate=False)
    try:
        assert await store.migrate(BASE) == [1]
        with pytest.raises(StoreError, match=r"0002_broken\.sql"):
            await store.migrate([*BASE, BROKEN_2])
        assert await store.schema_version() == 1
        assert not await has_column(store, "people", "email")  # the ALTER was undone too
        assert len(await store.fetchall("SELECT * FROM people")) == 3
        assert not store.conn.in_transaction
        fixed = Migration(2, "0002_fixed.sql", "ALTER TABLE people ADD COLUMN email TEXT;")
        assert await store.migrate([*BASE, fixed]) == [2]
        assert await has_column(store, "people", "email")
    finally:
        await store.close()


@pytest.mark.both_backends
async def test_recorded_versions_decide_on_both_backends(store_url: str) -> None:
    one = Migration(1, "0001_a.sql", "CREATE TABLE a (x INTEGER);")
    two = Migration(2, "0002_b.sql", "CREATE TABLE b (y INTEGER);")
    three = Migration(3, "0003_c.sql", "CREATE TABLE c (z INTEGER);")
    store = await Store.open(store_url, migrate=False)
    try:
        assert await store.migrate([one, three], target=1) == [1]
        assert await store.migrate([one, three]) == [3]
        assert await store.migrate([one, two, three]) == [2]
        assert await user_tables(store) == {"a", "b", "c"}
    finally:
        await store.close()


async def test_nodes_starting_together_apply_each_migration_once(pg_server: PgServer) -> None:
    """Several daemons on one PostgreSQL may start at once: each migration runs once."""
    url = fresh_database(pg_server, migrated=False)
    stores = await asyncio.gather(*(Store.open(url) for _ in range(3)))
    try:
        rows = await stores[0].fetchall("SELECT version FROM schema_migrations ORDER BY 1")
        assert [r[0] for r in rows] == [m.version for m in bundled_migrations()]
    finally:
        for s in stores:
            await s.close()
