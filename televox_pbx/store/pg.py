"""The PostgreSQL backend (asyncpg): the same Store interface as SQLite.

`PgConn` gives an asyncpg connection the small part of aiosqlite's API the store modules
use (`execute` awaited or as a context manager, a cursor with rowcount/lastrowid/fetchone/
fetchall, `executemany`), with the SQL translated by sqlport. One connection per Store,
like SQLite's: transactions from different tasks never interleave on it. Several nodes are
several Stores on one database; the database's locks and constraints keep them apart.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Generator, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from televox_pbx.store import sqlport
from televox_pbx.store.db import Migration, Store, StoreError, bundled_migrations, log

_RETURNS_ROWS = re.compile(r"^\s*(SELECT|WITH|VALUES|SHOW|EXPLAIN|TABLE)\b|\bRETURNING\b",
                           re.I | re.S)
_INSERT = re.compile(r"^\s*INSERT\b", re.I)
_STATUS_COUNT = re.compile(r"(\d+)\s*$")

_MIGRATION_LOCK = 0x7E1E_F0C5  # the advisory lock key of schema_migrations' creation
Params = Sequence[Any] | Mapping[str, Any]


class PgCursor:
    """What one statement gave back, read like an aiosqlite cursor."""

    def __init__(self, rows: list[Any], rowcount: int, lastrowid: int | None) -> None:
        self._rows = rows
        self._pos = 0
        self.rowcount = rowcount
        self.lastrowid = lastrowid

    async def fetchone(self) -> Any:
        if self._pos >= len(self._rows):
            return None
        self._pos += 1
        return self._rows[self._pos - 1]

    async def fetchall(self) -> list[Any]:
        rest, self._pos = self._rows[self._pos:], len(self._rows)
        return rest

    async def __aenter__(self) -> PgCursor:
        return self

    async def __aexit__(self, *_: object) -> None:
        return None


class _Pending:
    """`await conn.execute(...)` and `async with conn.execute(...) as cur` both work."""

    def __init__(self, run: Awaitable[PgCursor]) -> None:
        self._run = run

    def __await__(self) -> Generator[Any, None, PgCursor]:
        return self._run.__await__()

    async def __aenter__(self) -> PgCursor:
        return await self._run

    async def __aexit__(self, typ: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        return None


class PgConn:
    def __init__(self, conn: Any) -> None:
        self.raw = conn
        # asyncpg refuses a second operation while one is in flight on a connection, where
        # aiosqlite queues it: statements from different tasks take turns here likewise.
        self.op_lock = asyncio.Lock()

    @property
    def in_transaction(self) -> bool:
        return bool(self.raw.is_in_transaction())

    def execute(self, sql: str, params: Params = ()) -> _Pending:
        return _Pending(self._run(sql, params))

    async def executemany(self, sql: str, seq: Iterable[Params]) -> None:
        items = list(seq)
        if not items:
            return
        text, _ = sqlport.to_postgres(sql, items[0])
        async with self.op_lock:
            await self.raw.executemany(text, [sqlport.to_postgres(sql, p)[1] for p in items])

    async def _run(self, sql: str, params: Params) -> PgCursor:
        async with self.op_lock:
            return await self._run_now(sql, params)

    async def _run_now(self, sql: str, params: Params) -> PgCursor:
        text, args = sqlport.to_postgres(sql, params)
        if _INSERT.match(text) and not _RETURNS_ROWS.search(text):
            # PostgreSQL has no lastrowid: the inserted rows come back instead.
            rows = await self.raw.fetch(text.rstrip().rstrip(";") + " RETURNING *", *args)
            keys = set(rows[-1].keys()) if rows else set()
            last = rows[-1]["id"] if "id" in keys else None
            return PgCursor([], len(rows), last if isinstance(last, int) else None)
        if _RETURNS_ROWS.search(text):
            rows = await self.raw.fetch(text, *args)
            return PgCursor(list(rows), len(rows), None)
        status = await self.raw.execute(text, *args)
        m = _STATUS_COUNT.search(status or "")
        return PgCursor([], int(m.group(1)) if m else -1, None)


def connect_kwargs(url: str, password: str | None) -> dict[str, Any]:
    if urlsplit(url).password is not None:
        raise StoreError("database.url must not hold a password: give it in a file or the "
                         "environment (database.password_file / database.password_env)")
    kw: dict[str, Any] = {"dsn": url}
    # ?statement_cache_size=0 for pgbouncer in transaction mode: a prepared statement lives
    # on one server connection, and the next transaction may run on another. asyncpg reads
    # the DSN's unknown parameters as server settings, so this one is taken out here.
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    cache = [v for k, v in query if k == "statement_cache_size"]
    if cache:
        if not cache[-1].isdigit():
            raise StoreError("database.url: statement_cache_size must be a whole number")
        kw["statement_cache_size"] = int(cache[-1])
        kw["dsn"] = urlunsplit(parts._replace(query=urlencode(
            [(k, v) for k, v in query if k != "statement_cache_size"])))
    if password:
        kw["password"] = password
    return kw


class PgStore(Store):
    dialect = sqlport.POSTGRESQL
    _begin_sql = "BEGIN"

    @classmethod
    async def connect(cls, url: str, *, password: str | None = None,
                      migrate: bool = True) -> PgStore:
        raw = await asyncpg.connect(**connect_kwargs(url, password))
        try:
            store = cls(PgConn(raw), None)  # type: ignore[arg-type]
            if migrate:
                await store.migrate()
        except BaseException:
            await raw.close()
            raise
        return store

    async def close(self) -> None:
        await self._pg.raw.close()

    @property
    def _pg(self) -> PgConn:
        conn = self.conn
        assert isinstance(conn, PgConn)
        return conn

    async def schema_version(self) -> int:
        raw = self._pg.raw
        # CREATE TABLE IF NOT EXISTS races with itself when nodes start together: a
        # transaction-scoped advisory lock (pgbouncer-safe, unlike a session one) orders them.
        async with raw.transaction():
            await raw.execute(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
            await raw.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                " applied_at TEXT NOT NULL DEFAULT " + sqlport.migration_sql(
                    "strftime('%Y-%m-%dT%H:%M:%fZ','now'))", sqlport.POSTGRESQL))
        row = await self._pg.raw.fetchval("SELECT MAX(version) FROM schema_migrations")
        return int(row) if row is not None else 0

    async def migrate(self, migrations: Iterable[Migration] | None = None,
                      target: int | None = None) -> list[int]:
        """As SQLite's: each pending migration in its own transaction. The bookkeeping
        table is locked for each, so nodes starting together apply each migration once."""
        await self.schema_version()
        applied: list[int] = []
        for mig in (migrations if migrations is not None else bundled_migrations()):
            if target is not None and mig.version > target:
                continue
            if await self._apply_once(mig):
                applied.append(mig.version)
        return applied

    async def _apply_once(self, mig: Migration) -> bool:
        raw = self._pg.raw
        try:
            async with raw.transaction():
                await raw.execute("LOCK TABLE schema_migrations IN EXCLUSIVE MODE")
                if await raw.fetchval("SELECT 1 FROM schema_migrations WHERE version = $1",
                                      mig.version):
                    return False
                await raw.execute(sqlport.migration_sql(mig.sql, sqlport.POSTGRESQL))
                await raw.execute("INSERT INTO schema_migrations(version, name)"
                                  " VALUES ($1, $2)", mig.version, mig.name)
                await self._sync_ids(raw)
        except Exception as exc:
            raise StoreError(f"migration {mig.name} failed: {exc}") from exc
        log.info("applied migration", extra={"migration": mig.name})
        return True

    async def sync_ids(self, table: str | None = None) -> None:
        async with self._pg.op_lock:
            await self._sync_ids(self._pg.raw, table)

    @staticmethod
    async def _sync_ids(raw: Any, table: str | None = None) -> None:
        """Identity sequences past the highest id: rows inserted with explicit ids (an
        import, a migrated copy) do not move them, and the next default id would clash."""
        tables = await raw.fetch(
            "SELECT table_name FROM information_schema.columns WHERE table_schema ="
            " current_schema() AND column_name = 'id' AND is_identity = 'YES'"
            " AND ($1::text IS NULL OR table_name = $1::text)", table)
        for t in tables:
            name = '"' + str(t["table_name"]).replace('"', '""') + '"'
            await raw.execute(
                f"SELECT setval(pg_get_serial_sequence('{name}', 'id'),"
                f" COALESCE((SELECT MAX(id) FROM {name}), 0) + 1, false)")
