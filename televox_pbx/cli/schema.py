"""`televox schema campaign|settings`: print the JSON Schema of a config file kind."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from televox_pbx.config.schema import SCHEMAS, render


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "schema", help="print the JSON Schema for campaign or settings YAML")
    p.add_argument("kind", choices=sorted(SCHEMAS), help="which file kind")
    p.set_defaults(func=_schema)


def _schema(args: argparse.Namespace) -> int:
    sys.stdout.write(render(args.kind))
    return 0
