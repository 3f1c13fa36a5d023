"""`televox db upgrade|version`."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable
from typing import Any

from televox_pbx.cli.common import DB_HELP, run, store_target
from televox_pbx.store import Store


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("db", help="manage the store")
    dsub = p.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    up = dsub.add_parser("upgrade", help="create or migrate the store to the latest schema")
    up.add_argument("--db", default=None, help=DB_HELP)
    up.set_defaults(func=_upgrade)
    ver = dsub.add_parser("version", help="print the store's schema version")
    ver.add_argument("--db", default=None, help=DB_HELP)
    ver.set_defaults(func=_version)


def _open(args: argparse.Namespace) -> Awaitable[Store]:
    """--db (a SQLite file or a postgresql:// URL) wins; else the settings' database."""
    return store_target(args).open(migrate=False)


def _upgrade(args: argparse.Namespace) -> int:
    async def go() -> tuple[list[int], int]:
        store = await _open(args)
        try:
            applied = await store.migrate()
            return applied, await store.schema_version()
        finally:
            await store.close()
    applied, version = run(go())
    print(f"store at schema version {version}; applied {len(applied)} migration(s)")
    return 0


def _version(args: argparse.Namespace) -> int:
    async def go() -> int:
        store = await _open(args)
        try:
            return await store.schema_version()
        finally:
            await store.close()
    print(run(go()))
    return 0
