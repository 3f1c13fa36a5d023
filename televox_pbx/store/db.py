"""Connection, pragmas and the migration runner."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import sqlite3
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import aiosqlite

from televox_pbx.store.sqlport import SQLITE, migration_sql

log = logging.getLogger(__name__)

_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


class StoreError(Exception):
    pass


# Fault injection for the crash tests: TELEVOX_CRASH_AT="TAG:N:before|after" makes the
# process SIGKILL itself at the Nth commit of transactions tagged TAG (before: the
# transaction dies uncommitted; after: it is durable). Read once; unset in production.
def _crash_spec() -> tuple[str, int, str] | None:
    raw = os.environ.get("TELEVOX_CRASH_AT", "")
    parts = raw.split(":")
    if len(parts) != 3 or parts[2] not in ("before", "after") or not parts[1].isdigit():
        return None
    return parts[0], int(parts[1]), parts[2]


_CRASH = _crash_spec()
_commits: dict[str, int] = {}


def _maybe_crash(tag: str, when: str) -> None:
    if _CRASH is None or _CRASH[0] != tag:
        return
    if when == "before":
        _commits[tag] = _commits.get(tag, 0) + 1
    if _CRASH[2] == when and _commits.get(tag, 0) == _CRASH[1]:
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def bundled_migrations() -> list[Migration]:
    """Migrations shipped in televox_pbx/store/migrations, in version order."""
    found: list[Migration] = []
    for entry in resources.files("televox_pbx.store.migrations").iterdir():
        m = _MIGRATION_NAME.match(entry.name)
        if m:
            found.append(Migration(int(m.group(1)), entry.name, entry.read_text("utf-8")))
    found.sort(key=lambda mig: mig.version)
    versions = [mig.version for mig in found]
    if len(set(versions)) != len(versions):
        raise StoreError(f"duplicate migration versions: {versions}")
    return found


def is_unique_violation(exc: BaseException, target: str) -> bool:
    """`exc` is a unique-constraint failure on `target` ("table.column"), on either
    backend: SQLite names the columns in its message, PostgreSQL in the error's detail."""
    if isinstance(exc, sqlite3.IntegrityError):
        return target in str(exc)
    if type(exc).__name__ != "UniqueViolationError":  # asyncpg's, without importing it
        return False
    table, _, column = target.partition(".")
    detail = str(getattr(exc, "detail", "") or "")
    return getattr(exc, "table_name", None) == table and f"Key ({column})=" in detail


@dataclass(frozen=True, slots=True)
class NodeIdentity:
    """A node (daemon) in one of its lives: store/nodes.py."""
    node_id: str
    epoch: int


class Store:
    """One database connection: SQLite (aiosqlite) here, PostgreSQL in store/pg.py.
    Writers serialise through the database's own locks."""

    dialect = "sqlite"
    _begin_sql = "BEGIN IMMEDIATE"

    def __init__(self, conn: aiosqlite.Connection, path: Path | None) -> None:
        self.conn = conn
        self.path = path
        # One connection is shared by every component: transactions from different tasks
        # must not interleave ("cannot start a transaction within a transaction"), and a
        # lone write must not land inside another task's open transaction.
        self._tx_lock = asyncio.Lock()
        self._tx_owner: asyncio.Task[Any] | None = None
        # Set once this daemon has started as a node (store/nodes.py): the attempts it
        # claims carry it, and every write to an attempt is checked against it.
        self.node: NodeIdentity | None = None

    @classmethod
    async def open(cls, path: Path | str, *, migrate: bool = True,
                   password: str | None = None) -> Store:
        """`path`: a SQLite file (or ":memory:"), a `sqlite:///file` URL, or a
        `postgresql://` URL (its password never in the URL: pass `password`)."""
        if str(path).startswith(("postgresql://", "postgres://")):
            from televox_pbx.store.pg import PgStore  # asyncpg only when it is used
            return await PgStore.connect(str(path), password=password, migrate=migrate)
        if str(path).startswith("sqlite://"):
            path = str(path).removeprefix("sqlite://").removeprefix("/") or ":memory:"
        p = Path(path) if str(path) != ":memory:" else None
        if p is not None:
            p.parent.mkdir(parents=True, exist_ok=True)
        conn = await aiosqlite.connect(str(path), isolation_level=None)
        try:
            conn.row_factory = aiosqlite.Row
            await conn.execute("PRAGMA journal_mode=WAL")
            await conn.execute("PRAGMA synchronous=NORMAL")
            await conn.execute("PRAGMA foreign_keys=ON")
            await conn.execute("PRAGMA busy_timeout=5000")
            store = cls(conn, p)
            if migrate:
                await store.migrate()
        except BaseException:
            # The connection's worker thread is not a daemon thread: left open, it would
            # keep a failed process from ever exiting.
            await conn.close()
            raise
        return store

    async def close(self) -> None:
        await self.conn.close()

    async def schema_version(self) -> int:
        await self.conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
            " applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')))")
        async with self.conn.execute("SELECT MAX(version) FROM schema_migrations") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    async def migrate(self, migrations: Iterable[Migration] | None = None,
                      target: int | None = None) -> list[int]:
        """Apply every migration the store has not recorded, in version order, each in its
        own transaction. Recorded versions, not the highest one, decide: a store that got
        0006 before 0005 existed still receives 0005."""
        await self.schema_version()  # creates the bookkeeping table on a new store
        done = {int(r[0]) for r in await self.fetchall("SELECT version FROM schema_migrations")}
        applied: list[int] = []
        pending = [mig for mig in (migrations if migrations is not None
                                   else bundled_migrations())
                   if mig.version not in done and (target is None or mig.version <= target)]
        if not pending:
            return applied
        # A table rebuild (create new, copy, drop old, rename) must not cascade deletes into
        # child tables, and PRAGMA foreign_keys is a no-op inside a transaction: so keys are
        # unenforced around each migration and checked by hand before it commits.
        fk_row = await self.fetchone("PRAGMA foreign_keys")
        fk_was_on = bool(fk_row and fk_row[0])
        await self.conn.execute("PRAGMA foreign_keys=OFF")
        try:
            for mig in pending:
                await self._apply(mig)
                applied.append(mig.version)
        finally:
            if fk_was_on:
                await self.conn.execute("PRAGMA foreign_keys=ON")
        return applied

    async def _apply(self, mig: Migration) -> None:
        """One migration in one transaction: all of it, or none of it."""
        # executescript runs the whole file; BEGIN inside it holds the script and the
        # version row in one transaction, committed only after the key check.
        script = (f"BEGIN IMMEDIATE;\n{migration_sql(mig.sql, SQLITE)}\n"
                  f"INSERT INTO schema_migrations(version, name) "
                  f"VALUES ({mig.version}, '{mig.name}');\n")
        try:
            await self.conn.executescript(script)
            broken = await self.fetchall("PRAGMA foreign_key_check")
            if broken:
                raise StoreError(f"leaves {len(broken)} row(s) with a dangling foreign key "
                                 f"(first in table {broken[0][0]})")
            await self.conn.execute("COMMIT")
        except Exception as exc:
            if self.conn.in_transaction:
                await self.conn.execute("ROLLBACK")
            raise StoreError(f"migration {mig.name} failed: {exc}") from exc
        log.info("applied migration", extra={"migration": mig.name})

    @asynccontextmanager
    async def transaction(self, tag: str = "") -> AsyncIterator[aiosqlite.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception. Not re-entrant.
        `tag` names the commit point for the crash tests' fault injection."""
        me = asyncio.current_task()
        if me is not None and self._tx_owner is me:
            raise StoreError("nested Store.transaction() in one task")
        async with self._tx_lock:
            self._tx_owner = me
            try:
                await self.conn.execute(self._begin_sql)
                try:
                    yield self.conn
                except BaseException:
                    await self.conn.execute("ROLLBACK")
                    raise
                else:
                    _maybe_crash(tag, "before")
                    await self.conn.execute("COMMIT")
                    _maybe_crash(tag, "after")
            finally:
                self._tx_owner = None

    async def sync_ids(self, table: str | None = None) -> None:
        """After rows were inserted with explicit ids: SQLite's rowids need nothing."""

    def in_transaction(self) -> bool:
        """True inside this task's own transaction()."""
        return self._tx_owner is not None and self._tx_owner is asyncio.current_task()

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[aiosqlite.Row]:
        async with self.conn.execute(sql, params) as cur:
            return list(await cur.fetchall())

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> aiosqlite.Row | None:
        async with self.conn.execute(sql, params) as cur:
            return await cur.fetchone()

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; returns lastrowid. Waits for other tasks' transactions."""
        if self._tx_owner is not None and self._tx_owner is asyncio.current_task():
            return await self._execute(sql, params)
        async with self._tx_lock:
            return await self._execute(sql, params)

    async def fetch_alone(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = (),
                          *, tag: str = "") -> list[Any]:
        """One statement that writes and returns rows, as a transaction of its own (the
        database commits a lone statement itself: no BEGIN and COMMIT round trips). Waits
        for other tasks' transactions; `tag` as transaction()'s (its commit point)."""
        if self.in_transaction():
            raise StoreError("fetch_alone() inside a transaction")
        async with self._tx_lock:
            _maybe_crash(tag, "before")
            async with self.conn.execute(sql, params) as cur:
                rows = list(await cur.fetchall())
            _maybe_crash(tag, "after")
            return rows

    async def executemany(self, sql: str, seq: Iterable[Sequence[Any]]) -> None:
        """One statement per parameter tuple; inside this task's transaction or alone."""
        if self.in_transaction():
            await self.conn.executemany(sql, seq)
            return
        async with self._tx_lock:
            await self.conn.executemany(sql, seq)

    async def _execute(self, sql: str, params: Sequence[Any]) -> int:
        async with self.conn.execute(sql, params) as cur:
            return int(cur.lastrowid or 0)
