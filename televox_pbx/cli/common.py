"""Helpers shared by CLI subcommands."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from televox_pbx.config.campaign import Campaign
from televox_pbx.config.loader import ConfigError, find_campaign, load_settings, settings_path
from televox_pbx.config.settings import Settings
from televox_pbx.store import Store

# The --db option of the commands that open the store.
DB_HELP = "a SQLite file or a postgresql:// URL (default: the settings' database)"

T = TypeVar("T")


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Load settings or exit 1 with file:line: field errors on stderr."""
    path = settings_path(getattr(args, "config", None))
    if not path.exists():
        if getattr(args, "config", None):
            print(f"{path}: settings file not found", file=sys.stderr)
            raise SystemExit(1)
        return Settings()
    try:
        return load_settings(path)
    except ConfigError as exc:
        for issue in exc.issues:
            print(str(issue), file=sys.stderr)
        raise SystemExit(1) from exc


def campaign_yaml(settings: Settings, name: str) -> Campaign | ConfigError | None:
    """The campaign's YAML (None: no such file); a file with errors is reported on stderr,
    one line per issue, and its ConfigError returned for the caller's exit."""
    try:
        return find_campaign(settings, name)
    except ConfigError as exc:
        for issue in exc.issues:
            print(str(issue), file=sys.stderr)
        return exc


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@dataclass(frozen=True, slots=True)
class StoreTarget:
    """Where a command's store is: a SQLite file or a PostgreSQL URL, and its password."""
    target: str
    password: str | None = None

    async def open(self, *, migrate: bool = True) -> Store:
        return await Store.open(self.target, migrate=migrate, password=self.password)

    def __str__(self) -> str:
        return self.target


def store_target(args: argparse.Namespace, settings: Settings | None = None) -> StoreTarget:
    """--db wins: a SQLite file, or a postgresql:// URL whose password comes from the
    settings (database.password_file or database.password_env), never from the URL. Without
    it, the settings' database: `database.url` (SQLite or PostgreSQL) or `database.path`.
    Settings are loaded only when needed (a SQLite --db needs none)."""
    given = getattr(args, "db", None)
    if given and not str(given).startswith(("postgresql://", "postgres://")):
        return StoreTarget(str(given))
    db = (settings or settings_from_args(args)).database
    if given:
        db = db.model_copy(update={"url": str(given)})
    return StoreTarget(db.target(), db.password())
