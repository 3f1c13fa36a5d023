"""`televox campaign import NAME FILE.csv` and `televox campaign template NAME`.

Engineer H's cli/campaign.py calls `add_import_commands(campaign_subparsers)`.
The mapping table is always printed before anything is stored; --dry-run stops after
the would-be summary.
"""

from __future__ import annotations

import argparse
import getpass
import re
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from televox_pbx.campaigns.csvio import CsvTable, read_csv, write_csv
from televox_pbx.campaigns.importer import ImportSummary, import_rows, write_rejects
from televox_pbx.campaigns.mapping import (
    Mapping,
    MappingError,
    build_mapping,
    merge_explicit,
    normalize_header,
    parse_map_option,
)
from televox_pbx.cli.common import (
    DB_HELP,
    StoreTarget,
    campaign_yaml,
    run,
    settings_from_args,
    store_target,
)
from televox_pbx.config.campaign import Campaign
from televox_pbx.config.loader import ConfigError
from televox_pbx.store.campaigns import get_campaign, upsert_campaign
from televox_pbx.store.contacts import contacts_for_export, results_for_export

PROGRESS_FROM_ROWS = 5_000  # smaller files finish before a bar would be worth drawing
SHOW_REJECTS = 20
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def default_actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry / no USER in a container
        return "cli"


def add_import_commands(csub: Any) -> None:
    imp: argparse.ArgumentParser = csub.add_parser(
        "import", help="import contacts from a CSV file (normalise, dedupe, DNC)")
    imp.add_argument("name", help="campaign name (config/campaigns/NAME.yaml)")
    imp.add_argument("file", type=Path, help="CSV file (any of , ; tab |; UTF-8 or Latin-1)")
    imp.add_argument("--map", action="append", default=[], metavar="HEADER=FIELD",
                     help="map a column: name, first_name, last_name, email, timezone, phone, "
                          "phone1..phone10, var:NAME or skip (repeatable)")
    imp.add_argument("--dry-run", action="store_true",
                     help="show the mapping and the summary; store nothing")
    imp.add_argument("--rejects", type=Path, default=None,
                     help="where to write rejected rows (default: FILE.rejects.csv when any)")
    imp.add_argument("--header-rows", type=int, choices=(1, 2), default=None,
                     help="header rows (default: detect a two-row spreadsheet header)")
    imp.add_argument("--delimiter", default=None, help="field delimiter (default: sniffed)")
    imp.add_argument("--actor", default=None, help="who is importing (default: $USER)")
    imp.add_argument("--db", default=None, help=DB_HELP)
    imp.set_defaults(func=_import)

    tpl: argparse.ArgumentParser = csub.add_parser(
        "template", help="write a starter contacts CSV for the campaign")
    tpl.add_argument("name", help="campaign name (config/campaigns/NAME.yaml)")
    tpl.add_argument("--out", type=Path, default=None,
                     help="output file (default: NAME-contacts.csv)")
    tpl.add_argument("--force", action="store_true", help="overwrite an existing file")
    tpl.set_defaults(func=_template)

    exp: argparse.ArgumentParser = csub.add_parser(
        "export", help="write the campaign's contacts (or --results: call attempts) to CSV")
    exp.add_argument("name", help="campaign name")
    exp.add_argument("file", type=Path, help="output CSV (formula-safe)")
    exp.add_argument("--results", action="store_true",
                     help="export call attempts with outcome instead of contacts")
    exp.add_argument("--db", default=None, help=DB_HELP)
    exp.set_defaults(func=_export)


def _campaign(args: argparse.Namespace) -> Campaign | None:
    """The campaign's YAML, or None after saying on stderr why it cannot be used."""
    settings = settings_from_args(args)
    campaign = campaign_yaml(settings, args.name)
    if isinstance(campaign, ConfigError):
        return None
    if campaign is None:
        print(f"{settings.campaigns_dir / args.name}.yaml: no such campaign", file=sys.stderr)
    return campaign


def template_headers(campaign: Campaign) -> list[str]:
    """Variables the agent text uses (opening line, goal, context, voicemail message),
    then phone1..3 and timezone."""
    texts = (campaign.agent.opening_line, campaign.agent.goal, campaign.agent.context,
             campaign.voicemail.message or "")
    found = _PLACEHOLDER.findall("\n".join(texts))
    headers = list(dict.fromkeys(normalize_header(v) for v in found))
    for extra in ("PHONE1", "PHONE2", "PHONE3", "TIMEZONE"):
        if extra not in headers:
            headers.append(extra)
    return [h.lower() if h in ("PHONE1", "PHONE2", "PHONE3", "TIMEZONE") else h
            for h in headers]


def _template(args: argparse.Namespace) -> int:
    campaign = _campaign(args)
    if campaign is None:
        return 1
    out: Path = args.out or Path(f"{campaign.name}-contacts.csv")
    if out.exists() and not args.force:
        print(f"{out}: exists (use --force to overwrite)", file=sys.stderr)
        return 1
    headers = template_headers(campaign)
    try:
        write_csv(out, headers, [])
    except OSError as exc:
        print(f"{out}: cannot write: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(f"wrote {out} with columns: {', '.join(headers)}")
    return 0


def _export(args: argparse.Namespace) -> int:
    db = store_target(args)

    async def go() -> tuple[list[str], list[list[object]]] | None:
        store = await db.open()
        try:
            row = await get_campaign(store, args.name)
            if row is None:
                return None
            if args.results:
                return await results_for_export(store, row.id)
            return await contacts_for_export(store, row.id)
        finally:
            await store.close()
    return write_export(args.name, args.file, run(go()), "row(s)")


def write_export(name: str, file: Path,
                 found: tuple[list[str], list[list[object]]] | None, noun: str) -> int:
    """An export command's end: the campaign's (header, rows) to `file`, or why not."""
    if found is None:
        print(f"{name}: no such campaign in the store", file=sys.stderr)
        return 1
    try:
        n = write_csv(file, *found)
    except OSError as exc:
        print(f"{file}: cannot write: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(f"wrote {n} {noun} to {file}")
    return 0


def _explicit(campaign: Campaign, options: list[str], table: CsvTable) -> dict[str, str]:
    """The campaign's import_mapping, overridden by --map (which must name real columns)."""
    keys = {normalize_header(h) for h in table.headers}
    cli: dict[str, str] = {}
    for option in options:
        header, target = parse_map_option(option)
        if normalize_header(header) not in keys:
            raise MappingError(f"--map {option!r}: the file has no column {header!r} "
                               f"(columns: {', '.join(table.headers)})")
        cli[header] = target
    return merge_explicit(campaign.import_mapping, cli)


def print_mapping(console: Console, table: CsvTable, mapping: Mapping) -> None:
    console.print(f"[bold]{len(table.rows)}[/] row(s); encoding {table.encoding}, "
                  f"delimiter {table.delimiter!r}, {table.header_rows} header row(s)"
                  + (f", {table.blank_rows} blank line(s) skipped" if table.blank_rows else ""))
    t = Table(title="Column mapping")
    t.add_column("column")
    t.add_column("field")
    t.add_column("decided by")
    for header, shown, why in mapping.table():
        t.add_row(Text(header), Text(shown), Text(why))  # headers are data, not markup
    console.print(t)
    for note in mapping.notes:
        console.print(f"[yellow]note:[/] {escape(note)}")


def print_summary(console: Console, summary: ImportSummary) -> None:
    c = summary.counts()
    verb = "would add" if summary.dry_run else "added"
    console.print(f"[bold]{c['rows']}[/] row(s): {verb} [green]{c['added']}[/] contact(s) "
                  f"({c['phones_added']} phone(s)); invalid {c['invalid']}, "
                  f"duplicate {c['duplicate']}, on DNC {c['dnc']}; "
                  f"{c['warnings']} kept with warnings")
    rejects = summary.rejects()
    for issue in rejects[:SHOW_REJECTS]:
        where = f"row {issue.row}" + (f" (line {issue.line})" if issue.line else "")
        console.print(f"  {where}: {issue.status.value}: {issue.reason}", markup=False,
                      highlight=False)
    if len(rejects) > SHOW_REJECTS:
        console.print(f"  ... and {len(rejects) - SHOW_REJECTS} more")


def _import(args: argparse.Namespace) -> int:
    console = Console()
    settings = settings_from_args(args)
    campaign = _campaign(args)
    if campaign is None:
        return 1
    try:
        table = read_csv(args.file, delimiter=args.delimiter, header_rows=args.header_rows)
    except OSError as exc:
        print(f"{args.file}: cannot read: {exc.strerror or exc}", file=sys.stderr)
        return 1
    try:
        mapping = build_mapping(table.headers, [r.values for r in table.rows[:200]],
                                _explicit(campaign, args.map, table),
                                default_country=campaign.default_country)
    except MappingError as exc:
        print(f"{args.file}: {exc}", file=sys.stderr)
        return 2
    print_mapping(console, table, mapping)
    if not mapping.phone_headers():
        print(f"{args.file}: no phone column found; map one with --map 'HEADER=phone'",
              file=sys.stderr)
        return 1
    db = store_target(args, settings)
    summary = run(_run_import(args, campaign, table, mapping, db, settings.workspace, console))
    print_summary(console, summary)
    rejects_path: Path | None = args.rejects
    if rejects_path is None and summary.rejects() and not args.dry_run:
        rejects_path = args.file.with_name(args.file.name + ".rejects.csv")
    if rejects_path is not None:
        try:
            n = write_rejects(rejects_path, summary, table.headers)
        except OSError as exc:
            print(f"{rejects_path}: cannot write the rejected rows: {exc.strerror or exc}",
                  file=sys.stderr)
            return 1
        console.print(f"wrote {n} rejected row(s) to {rejects_path}", markup=False,
                      highlight=False)
    return 0


async def _run_import(args: argparse.Namespace, campaign: Campaign, table: CsvTable,
                      mapping: Mapping, db: StoreTarget, workspace: str,
                      console: Console) -> ImportSummary:
    store = await db.open()
    try:
        row = await get_campaign(store, campaign.name)
        campaign_id = row.id if row is not None else None
        if campaign_id is None and not args.dry_run:
            campaign_id = await upsert_campaign(store, campaign)
        kwargs: dict[str, Any] = {
            "campaign_id": campaign_id, "default_country": campaign.default_country,
            "workspace": workspace, "source": "csv", "origin": args.file.name,
            "actor": args.actor or default_actor(), "dry_run": args.dry_run}
        if len(table.rows) < PROGRESS_FROM_ROWS:
            return await import_rows(store, table.rows, mapping, **kwargs)
        with Progress(TextColumn("importing"), BarColumn(), MofNCompleteColumn(),
                      TimeRemainingColumn(), console=console, transient=True) as bar:
            task = bar.add_task("import", total=len(table.rows))
            return await import_rows(
                store, table.rows, mapping,
                on_progress=lambda done, _total: bar.update(task, completed=done), **kwargs)
    finally:
        await store.close()
