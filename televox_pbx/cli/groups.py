"""`televox groups list|create|import|add|remove|members|delete`: contact groups.

Numbers are normalised to E.164 (--country, default US) and deduplicated inside each
group. A campaign names its groups in YAML (`groups: [...]`); members added to a group
join every started campaign that targets it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from televox_pbx.campaigns.csvio import read_csv
from televox_pbx.campaigns.groups import (
    GroupError,
    add_member,
    import_into_group,
    remove_member,
)
from televox_pbx.campaigns.importer import ImportSummary
from televox_pbx.campaigns.mapping import (
    MappingError,
    build_mapping,
    normalize_header,
    parse_map_option,
)
from televox_pbx.cli.campaign_import import print_mapping, print_summary
from televox_pbx.cli.common import DB_HELP, run, settings_from_args, store_target
from televox_pbx.store import Store
from televox_pbx.store import groups as gs


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("groups", help="manage contact groups")
    gsub = p.add_subparsers(dest="groups_command", required=True, metavar="ACTION")
    ls = gsub.add_parser("list", help="every group and its member count")
    _common(ls)
    ls.set_defaults(func=_list)
    cr = gsub.add_parser("create", help="create an empty group")
    cr.add_argument("group")
    _common(cr)
    cr.set_defaults(func=_create)
    imp = gsub.add_parser("import", help="import contacts from a CSV into a group")
    imp.add_argument("group")
    imp.add_argument("file", type=Path)
    imp.add_argument("--map", action="append", default=[], metavar="HEADER=FIELD",
                     help="map a column (as `campaign import --map`)")
    imp.add_argument("--dry-run", action="store_true", help="store nothing")
    _common(imp)
    imp.set_defaults(func=_import)
    add = gsub.add_parser("add", help="add one contact to a group")
    add.add_argument("group")
    add.add_argument("phone")
    add.add_argument("--name", default=None)
    add.add_argument("--timezone", default=None, help="IANA zone, e.g. America/Chicago")
    add.add_argument("--var", action="append", default=[], metavar="NAME=VALUE",
                     help="a template variable (repeatable)")
    _common(add)
    add.set_defaults(func=_add)
    rem = gsub.add_parser("remove", help="remove a contact from a group (not from campaigns)")
    rem.add_argument("group")
    rem.add_argument("phone")
    _common(rem)
    rem.set_defaults(func=_remove)
    mem = gsub.add_parser("members", help="list a group's members")
    mem.add_argument("group")
    mem.add_argument("--limit", type=int, default=None)
    _common(mem)
    mem.set_defaults(func=_members)
    de = gsub.add_parser("delete", help="delete a group (campaign contacts stay)")
    de.add_argument("group")
    _common(de)
    de.set_defaults(func=_delete)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--country", default="US", help="default country for national numbers")
    p.add_argument("--db", default=None, help=DB_HELP)


async def _open(args: argparse.Namespace) -> tuple[Store, str]:
    settings = settings_from_args(args)
    return await store_target(args, settings).open(), settings.workspace


def _list(args: argparse.Namespace) -> int:
    async def go() -> list[gs.GroupInfo]:
        store, _ = await _open(args)
        try:
            return await gs.list_groups(store)
        finally:
            await store.close()
    for g in run(go()):
        print(f"{g.name}\t{g.members}")
    return 0


def _create(args: argparse.Namespace) -> int:
    async def go() -> None:
        store, _ = await _open(args)
        try:
            await gs.ensure_group(store, args.group)
        finally:
            await store.close()
    run(go())
    print(f"group {args.group}: ready")
    return 0


def _import(args: argparse.Namespace) -> int:
    console = Console()
    try:
        table = read_csv(args.file)
    except OSError as exc:
        print(f"{args.file}: cannot read: {exc.strerror or exc}", file=sys.stderr)
        return 1
    try:
        keys = {normalize_header(h) for h in table.headers}
        explicit: dict[str, str] = {}
        for option in args.map:
            header, target = parse_map_option(option)
            if normalize_header(header) not in keys:
                raise MappingError(f"--map {option!r}: the file has no column {header!r}")
            explicit[header] = target
        mapping = build_mapping(table.headers, [r.values for r in table.rows[:200]],
                                explicit, default_country=args.country.upper())
    except MappingError as exc:
        print(f"{args.file}: {exc}", file=sys.stderr)
        return 2
    print_mapping(console, table, mapping)
    if not mapping.phone_headers():
        print(f"{args.file}: no phone column found; map one with --map 'HEADER=phone'",
              file=sys.stderr)
        return 1

    async def go() -> ImportSummary:
        store, workspace = await _open(args)
        try:
            return await import_into_group(store, args.group, table.rows, mapping,
                                           default_country=args.country.upper(),
                                           workspace=workspace, dry_run=args.dry_run)
        finally:
            await store.close()
    print_summary(console, run(go()))
    return 0


def _add(args: argparse.Namespace) -> int:
    record: dict[str, object] = {"phone": args.phone}
    explicit = {"phone": "phone"}
    if args.name:
        record["name"], explicit["name"] = args.name, "name"
    if args.timezone:
        record["timezone"], explicit["timezone"] = args.timezone, "timezone"
    for item in args.var:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            print(f"--var {item!r}: write NAME=VALUE", file=sys.stderr)
            return 2
        record[key.strip()], explicit[key.strip()] = value, f"var:{key.strip()}"

    async def go() -> ImportSummary:
        store, workspace = await _open(args)
        try:
            return await add_member(store, args.group, record,
                                    default_country=args.country.upper(),
                                    workspace=workspace, explicit=explicit)
        finally:
            await store.close()
    summary = run(go())
    if summary.added:
        print(f"group {args.group}: added")
        return 0
    issue = summary.rejects()[0] if summary.rejects() else None
    print(f"group {args.group}: not added: {issue.reason if issue else 'unknown'}",
          file=sys.stderr)
    return 1


def _remove(args: argparse.Namespace) -> int:
    async def go() -> bool:
        store, _ = await _open(args)
        try:
            return await remove_member(store, args.group, args.phone, args.country.upper())
        finally:
            await store.close()
    try:
        removed = run(go())
    except GroupError as exc:
        print(f"group {args.group}: {exc}", file=sys.stderr)
        return 1
    print(f"group {args.group}: {'removed' if removed else 'no member with that number'}")
    return 0 if removed else 1


def _members(args: argparse.Namespace) -> int:
    async def go() -> list[tuple[str, str | None]] | None:
        store, _ = await _open(args)
        try:
            gid = await gs.group_id(store, args.group)
            return None if gid is None else await gs.member_numbers(store, gid, args.limit)
        finally:
            await store.close()
    found = run(go())
    if found is None:
        print(f"no group named {args.group!r}", file=sys.stderr)
        return 1
    for phone, name in found:
        print(f"{phone}\t{name or ''}")
    return 0


def _delete(args: argparse.Namespace) -> int:
    async def go() -> bool:
        store, _ = await _open(args)
        try:
            return await gs.delete_group(store, args.group)
        finally:
            await store.close()
    if not run(go()):
        print(f"no group named {args.group!r}", file=sys.stderr)
        return 1
    print(f"group {args.group}: deleted")
    return 0
