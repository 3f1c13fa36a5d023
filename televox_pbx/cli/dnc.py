"""`televox dnc add|remove|import|list|export|audit`: the Do-Not-Call list.

Every change is audited with who (--actor, default $USER), why (--reason), where from
(--source) and when. Numbers are normalised to E.164 (--country, default US).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from televox_pbx.campaigns.dnc import DncResult, DncService
from televox_pbx.cli.campaign_import import default_actor
from televox_pbx.cli.common import DB_HELP, run, settings_from_args, store_target
from televox_pbx.store import Store


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("dnc", help="manage the Do-Not-Call list")
    dsub = p.add_subparsers(dest="dnc_command", required=True, metavar="ACTION")

    add = dsub.add_parser("add", help="add numbers")
    add.add_argument("numbers", nargs="+", metavar="NUMBER")
    _change_opts(add, "manual")
    add.set_defaults(func=_add)

    rem = dsub.add_parser("remove", help="remove numbers (audited)")
    rem.add_argument("numbers", nargs="+", metavar="NUMBER")
    _change_opts(rem, "manual")
    rem.set_defaults(func=_remove)

    imp = dsub.add_parser("import", help="add every number in a CSV (optional reason column)")
    imp.add_argument("file", type=Path)
    _change_opts(imp, "import")
    imp.set_defaults(func=_import)

    ls = dsub.add_parser("list", help="print the list")
    ls.add_argument("--limit", type=int, default=None)
    ls.add_argument("--offset", type=int, default=0)
    _common(ls)
    ls.set_defaults(func=_list)

    exp = dsub.add_parser("export", help="write the list to a CSV (formula-safe)")
    exp.add_argument("file", type=Path)
    _common(exp)
    exp.set_defaults(func=_export)

    aud = dsub.add_parser("audit", help="who added or removed what, newest first")
    aud.add_argument("number", nargs="?", default=None)
    aud.add_argument("--limit", type=int, default=100)
    _common(aud)
    aud.set_defaults(func=_audit)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--country", default="US", help="default country for national numbers")
    p.add_argument("--workspace", default=None, help="DNC workspace (default: from settings)")
    p.add_argument("--db", default=None, help=DB_HELP)


def _change_opts(p: argparse.ArgumentParser, source: str) -> None:
    p.add_argument("--reason", default="", help="why (kept in the list and the audit)")
    p.add_argument("--source", default=source, help=f"where the request came from ({source})")
    p.add_argument("--actor", default=None, help="who is making the change (default: $USER)")
    _common(p)


async def _service(args: argparse.Namespace) -> tuple[Store, DncService]:
    settings = settings_from_args(args)
    store = await store_target(args, settings).open()
    workspace = args.workspace or settings.workspace
    return store, DncService(store, workspace, args.country.upper())


def _report(verb: str, same: str, result: DncResult) -> int:
    print(f"{verb} {len(result.changed)}; {same} {len(result.unchanged)}; "
          f"invalid {len(result.invalid)}")
    for item, raw, why in result.invalid[:20]:
        print(f"  item {item}: {raw[:40]!r}: {why}", file=sys.stderr)
    return 1 if result.invalid and not result.changed and not result.unchanged else 0


def _add(args: argparse.Namespace) -> int:
    async def go() -> DncResult:
        store, svc = await _service(args)
        try:
            return await svc.add(args.numbers, reason=args.reason, source=args.source,
                                 actor=args.actor or default_actor())
        finally:
            await store.close()
    return _report("added", "already listed", run(go()))


def _remove(args: argparse.Namespace) -> int:
    async def go() -> DncResult:
        store, svc = await _service(args)
        try:
            return await svc.remove(args.numbers, reason=args.reason, source=args.source,
                                    actor=args.actor or default_actor())
        finally:
            await store.close()
    return _report("removed", "not listed", run(go()))


def _import(args: argparse.Namespace) -> int:
    async def go() -> DncResult:
        store, svc = await _service(args)
        try:
            return await svc.import_csv(args.file, reason=args.reason, source=args.source,
                                        actor=args.actor or default_actor())
        finally:
            await store.close()
    try:
        return _report("added", "already listed", run(go()))
    except OSError as exc:
        print(f"{args.file}: cannot read: {exc.strerror or exc}", file=sys.stderr)
        return 1


def _list(args: argparse.Namespace) -> int:
    async def go() -> int:
        store, svc = await _service(args)
        try:
            for e in await svc.entries(args.limit, args.offset):
                print(f"{e.e164}\t{e.added_at}\t{e.added_by}\t{e.source}\t{e.reason}")
            return 0
        finally:
            await store.close()
    return run(go())


def _export(args: argparse.Namespace) -> int:
    async def go() -> int:
        store, svc = await _service(args)
        try:
            return await svc.export_csv(args.file)
        finally:
            await store.close()
    try:
        n = run(go())
    except OSError as exc:
        print(f"{args.file}: cannot write: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(f"wrote {n} number(s) to {args.file}")
    return 0


def _audit(args: argparse.Namespace) -> int:
    async def go() -> int:
        store, svc = await _service(args)
        try:
            for a in await svc.audit(args.number, args.limit):
                print(f"{a.at}\t{a.action}\t{a.e164}\t{a.actor}\t{a.source}\t{a.reason}")
            return 0
        finally:
            await store.close()
    return run(go())
