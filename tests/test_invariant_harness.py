"""The invariant rig's simulated kill -9 (invariant_harness.DbSpy) must release what a
real process death releases: the database's write lock, at once."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from invariant_harness import DbSpy

from televox_pbx.store import Store


def write_lock_free(db: Path) -> bool:
    conn = sqlite3.connect(db, timeout=0, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:  # "database is locked"
        return False
    finally:
        conn.close()


async def test_crash_mid_transaction_releases_the_write_lock(tmp_path: Path) -> None:
    """Killed inside a write transaction while a SELECT's cursor is part way through (its
    task's `async with` could not close it: the frozen connection runs nothing more), and
    that cursor still referenced, as a cancelled task's traceback cycle keeps it until the
    garbage collector runs: SQLite would close the connection only as a zombie that still
    holds the transaction, and the next daemon's start-up found the database locked."""
    db = tmp_path / "televox.db"
    store = await Store.open(db)
    await store.conn.execute("CREATE TABLE t(x INTEGER)")
    await store.conn.executemany("INSERT INTO t VALUES (?)", [(1,), (2,), (3,)])
    spy = DbSpy(store)
    await store.conn.execute("BEGIN IMMEDIATE")
    await store.conn.execute("INSERT INTO t VALUES (4)")
    left_open = await store.conn.execute("SELECT x FROM t")  # stepped to its first row
    assert not write_lock_free(db)

    spy.frozen = True  # kill -9
    await spy.close()

    assert write_lock_free(db)
    conn = sqlite3.connect(db)
    try:  # the uncommitted row died with the process
        assert [r[0] for r in conn.execute("SELECT x FROM t ORDER BY x")] == [1, 2, 3]
    finally:
        conn.close()
    del left_open
