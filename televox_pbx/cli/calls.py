"""`televox calls list|show`: calls and their transcripts, as a person reads them."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from televox_pbx.cli.common import DB_HELP, StoreTarget, run, store_target
from televox_pbx.cli.events import parse_since
from televox_pbx.clock import SystemClock
from televox_pbx.store.call_history import CallDetail, CallRow, call_detail, list_calls


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("calls", help="calls and their transcripts")
    csub = p.add_subparsers(dest="calls_command", required=True, metavar="ACTION")
    ls = csub.add_parser("list", help="recent calls, newest first")
    ls.add_argument("--campaign", default=None)
    ls.add_argument("--status", default=None,
                    help="completed, no_answer, busy, failed, voicemail, dropped, ...")
    ls.add_argument("--since", default=None, help="30m, 2h, 1d or an ISO time")
    ls.add_argument("--limit", type=int, default=50)
    ls.add_argument("--json", action="store_true", help="one JSON object per line")
    ls.add_argument("--db", default=None, help=DB_HELP)
    ls.set_defaults(func=_list)
    sh = csub.add_parser("show", help="one call: who, when, result and every turn")
    sh.add_argument("id", help="the call id (a unique prefix is enough)")
    sh.add_argument("--json", action="store_true", help="the same, as one JSON document")
    sh.add_argument("--db", default=None, help=DB_HELP)
    sh.set_defaults(func=_show)


def _db(args: argparse.Namespace) -> StoreTarget:
    return store_target(args)


def _list(args: argparse.Namespace) -> int:
    try:
        since = parse_since(args.since, SystemClock().now()) if args.since else None
    except ValueError as exc:
        print(f"televox calls list: {exc}", file=sys.stderr)
        return 2

    async def go() -> list[CallRow]:
        store = await _db(args).open()
        try:
            return await list_calls(store, campaign=args.campaign, status=args.status,
                                    since=since, limit=args.limit)
        finally:
            await store.close()

    rows = run(go())
    if args.json:
        for r in rows:
            print(json.dumps(_jsonable(dataclasses.asdict(r))))
    else:
        print_list(rows, sys.stdout)
    return 0


def _show(args: argparse.Namespace) -> int:
    async def go() -> CallDetail | None:
        store = await _db(args).open()
        try:
            return await call_detail(store, args.id)
        finally:
            await store.close()

    detail = run(go())
    if detail is None:
        print(f"televox calls show: no single call with id {args.id!r}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(_jsonable(dataclasses.asdict(detail)), indent=2))
    else:
        print_detail(detail, sys.stdout)
    return 0


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    return value


def _t(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S") if at else "-"


def _dur(seconds: float | None) -> str:
    return f"{seconds:.1f}s" if seconds is not None else "-"


def print_list(rows: list[CallRow], out: TextIO) -> None:
    print(f"{'id':8}  {'started (UTC)':19}  {'campaign':14}  {'phone':14}  {'status':10}"
          f"  {'disposition':14}  {'turns':>5}  {'duration':>8}", file=out)
    for r in rows:
        print(f"{r.id[:8]}  {_t(r.created_at):19}  {(r.campaign or r.direction)[:14]:14}"
              f"  {r.phone[:14]:14}  {r.status[:10]:10}"
              f"  {(r.disposition or '-')[:14]:14}  {r.turns:>5}  {_dur(r.duration_s):>8}",
              file=out)


def print_detail(d: CallDetail, out: TextIO) -> None:
    c = d.call
    who = c.contact_name or "(no contact)"
    lines = [
        f"call         {c.id}",
        f"who          {who}, {c.phone} ({c.direction})",
        f"campaign     {c.campaign or '-'}",
        f"when         {_t(c.created_at)} UTC; answered {_t(c.answered_at)};"
        f" ended {_t(c.hangup_at)}",
        f"duration     {_dur(c.duration_s)}",
        f"result       {c.status}" + (f" ({c.failure})" if c.failure else "")
        + (f", cause {c.hangup_cause}" if c.hangup_cause is not None else "")
        + (f", SIP {c.sip_code}" if c.sip_code is not None else ""),
        f"disposition  {c.disposition or '-'}",
        f"AMD          {c.amd_status or '-'}"
        + (f", cause {c.amd_cause}" if c.amd_cause else ""),
        f"turns        {c.turns}",
    ]
    for path, seconds in d.recordings:
        lines.append(f"recording    {path} ({_dur(seconds)})")
    if c.notes:
        lines.append(f"notes        {c.notes}")
    print("\n".join(lines), file=out)
    print("", file=out)
    start = d.turns[0].started_at if d.turns and d.turns[0].started_at else None
    for t in d.turns:
        at = f"{(t.started_at - start).total_seconds():6.1f}s" \
            if start is not None and t.started_at is not None else "      -"
        cut = " [interrupted]" if t.interrupted else ""
        lat = ""
        if t.latency:
            lat = "  (" + ", ".join(f"{k} {v:.0f} ms" for k, v in t.latency.items()) + ")"
        print(f"{at}  {t.speaker:6}  {t.text}{cut}{lat}", file=out)
