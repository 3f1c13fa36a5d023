"""The `televox` command line. Each subcommand lives in its own module with `register()`."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Modules under televox_pbx.cli that each add one top-level subcommand.
COMMAND_MODULES = (
    "agents",
    "call",
    "calls",
    "campaign",
    "check",
    "contacts",
    "db",
    "dnc",
    "events",
    "groups",
    "ivr",
    "knowledge",
    "models",
    "nodes",
    "plan",
    "schema",
    "serve",
    "sim",
    "sms",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="televox", description="Televox PBX: AI calling on your own Asterisk box.")
    parser.add_argument("--config", "-c", default=None,
                        help="settings file (default: $TELEVOX_CONFIG or config/televox.yaml)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"televox_pbx.cli.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
