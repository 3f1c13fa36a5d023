"""Helpers shared by CLI subcommands."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

from televox_pbx.config.loader import ConfigError, load_settings, settings_path
from televox_pbx.config.settings import Settings

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


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)
