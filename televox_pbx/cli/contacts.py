"""`televox contacts show NUMBER`: every call with that number, inbound and outbound,
across campaigns and agents, newest first, with dispositions and the way to each
transcript (`televox calls show ID`)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from televox_pbx.campaigns.phones import normalize_phone
from televox_pbx.cli.common import DB_HELP, run, settings_from_args, store_target
from televox_pbx.store.person_history import HistoryRow, person_history


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("contacts", help="one person's history")
    csub = p.add_subparsers(dest="contacts_command", required=True, metavar="ACTION")
    sh = csub.add_parser("show", help="every call with a number, newest first")
    sh.add_argument("number", help="the phone number (E.164, or national)")
    sh.add_argument("--json", action="store_true", help="one JSON object per call")
    sh.add_argument("--db", default=None, help=DB_HELP)
    sh.set_defaults(func=_show)


def _show(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    e164 = normalize_phone(args.number, settings.default_country).e164
    if e164 is None:
        print(f"{args.number!r} is not a phone number", file=sys.stderr)
        return 1
    db = store_target(args, settings)

    async def go() -> list[HistoryRow]:
        store = await db.open()
        try:
            return await person_history(store, e164)
        finally:
            await store.close()
    rows = run(go())
    if args.json:
        for r in rows:
            print(json.dumps({**{k: getattr(r, k) for k in r.__slots__},
                              "at": r.at.isoformat() if r.at else None}))
        return 0
    names = sorted({r.contact_name for r in rows if r.contact_name})
    print(f"{e164}: {len(rows)} call(s)" + (f"; known as {', '.join(names)}" if names else ""))
    for r in rows:
        when = f"{r.at:%Y-%m-%d %H:%M}" if r.at else "?"
        where = (f"campaign {r.campaign}" if r.campaign
                 else f"to {r.number}" if r.number else "inbound")
        dur = f"{r.duration_s:.0f}s" if r.duration_s is not None else "-"
        print(f"{when}  {r.direction:<8} {where}, agent {r.agent or '-'}: {r.status}, "
              f"{r.disposition or '-'}, {dur}, {r.turns} turns  "
              f"(televox calls show {r.call_id[:8]})")
    return 0
