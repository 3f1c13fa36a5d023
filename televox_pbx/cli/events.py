"""`televox events tail`: read the AMI event log from the store."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import sys
from datetime import datetime, timedelta
from typing import Any, TextIO

from televox_pbx.cli.common import DB_HELP, run, store_target
from televox_pbx.clock import SystemClock
from televox_pbx.store import Store
from televox_pbx.store.events import EventRow, query_events
from televox_pbx.store.timefmt import iso, parse_iso

# Fields worth a glance on one line, in this order (after time and Event).
KEY_FIELDS = ("Channel", "DestChannel", "ChannelStateDesc", "UserEvent", "Response", "Reason",
              "DialStatus", "Cause", "Cause-txt", "TechCause", "AMDSTATUS", "AMDCAUSE",
              "Variable", "Value", "Digit", "Status")
_SINCE = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
FOLLOW_POLL_S = 1.0


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("events", help="the AMI event log")
    esub = p.add_subparsers(dest="events_command", required=True, metavar="ACTION")
    t = esub.add_parser("tail", help="print recent AMI events (newest last)")
    t.add_argument("--follow", "-f", action="store_true", help="keep printing new events")
    t.add_argument("--filter", action="append", default=[], metavar="KEY=VALUE",
                   help="only events whose field KEY equals VALUE (repeatable)")
    t.add_argument("--since", default=None,
                   help="only events newer than this: 30s, 10m, 2h, 1d or an ISO time")
    t.add_argument("--call", default=None, metavar="UUID", help="only this attempt's events")
    t.add_argument("--json", action="store_true", help="one JSON object per line")
    t.add_argument("--limit", type=int, default=50, help="how many to print first (50)")
    t.add_argument("--db", default=None, help=DB_HELP)
    t.set_defaults(func=_tail)


def parse_since(text: str, now: datetime) -> datetime:
    m = _SINCE.match(text.strip())
    if m:
        return now - timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])
    try:
        parsed = parse_iso(text.strip())
    except ValueError:
        parsed = None
    if parsed is None:
        raise ValueError(f"--since: expected e.g. 10m, 2h, 1d or an ISO time, got {text!r}")
    return parsed


def parse_filters(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--filter: expected KEY=VALUE, got {item!r}")
        out[key.strip()] = value
    return out


def format_line(row: EventRow) -> str:
    parts = [iso(row.received_at), row.event or "-"]
    for key in KEY_FIELDS:
        value = row.fields.get(key)
        if value is None or value == "":
            continue
        text = ",".join(value) if isinstance(value, list) else value
        parts.append(f"{key}={text}")
    if row.call_id:
        parts.append(f"call={row.call_id}")
    return " ".join(parts)


def format_json(row: EventRow) -> str:
    return json.dumps({"id": row.id, "received_at": iso(row.received_at), "event": row.event,
                       "call_id": row.call_id, "fields": row.fields}, ensure_ascii=False)


async def tail(store: Store, *, out: TextIO, filters: dict[str, str], since: datetime | None,
               call_id: str | None, as_json: bool, limit: int, follow: bool) -> int:
    """Print matching events; with follow, poll for new ones until cancelled."""
    fmt = format_json if as_json else format_line
    rows = await query_events(store, since=since, call_id=call_id, filters=filters,
                              limit=limit, newest=True)
    last_id = 0
    for row in rows:
        print(fmt(row), file=out)
        last_id = row.id or last_id
    out.flush()
    if not follow:
        return len(rows)
    if not rows:
        newest = await store.fetchone("SELECT MAX(id) FROM ami_events")
        last_id = int(newest[0]) if newest and newest[0] is not None else 0
    printed = len(rows)
    while True:
        await asyncio.sleep(FOLLOW_POLL_S)
        more = await query_events(store, after_id=last_id, call_id=call_id, filters=filters,
                                  limit=1000, newest=False)
        for row in more:
            print(fmt(row), file=out)
            last_id = row.id or last_id
        printed += len(more)
        out.flush()


def _tail(args: argparse.Namespace) -> int:
    try:
        filters = parse_filters(args.filter)
        since = parse_since(args.since, SystemClock().now()) if args.since else None
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    path = store_target(args)

    async def go() -> None:
        store = await path.open()
        try:
            await tail(store, out=sys.stdout, filters=filters, since=since,
                       call_id=args.call, as_json=args.json, limit=args.limit,
                       follow=args.follow)
        finally:
            await store.close()
    with contextlib.suppress(KeyboardInterrupt):
        run(go())
    return 0
