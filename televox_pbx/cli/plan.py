"""`televox plan NAME [--hours 4]`: a dry run of the dialer; no call is placed."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any

from televox_pbx.campaigns.plan import Plan, PlanAction, build_plan
from televox_pbx.cli.common import DB_HELP, run, settings_from_args, store_target
from televox_pbx.config.capacity import campaign_warning
from televox_pbx.config.capacity import effective as effective_capacity
from televox_pbx.store.campaigns import get_campaign


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "plan", help="dry run: who would be dialled in the next hours, who is held and why")
    p.add_argument("name", help="campaign name")
    p.add_argument("--hours", type=float, default=4.0, help="look ahead this long (default 4)")
    p.add_argument("--limit", type=int, default=50,
                   help="rows shown per section (default 50; counts are always complete)")
    p.add_argument("--db", default=None, help=DB_HELP)
    p.set_defaults(func=_plan)


def _plan(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    db = store_target(args, settings)

    async def go() -> tuple[Plan, int] | str:
        store = await db.open()
        try:
            row = await get_campaign(store, args.name)
            if row is None:
                return "not in the store"
            cfg = row.config()
            if cfg is None:
                return "no stored configuration (start or schedule it from YAML first)"
            plan = await build_plan(store, row, cfg, datetime.now(UTC), hours=args.hours,
                                    workspace=settings.workspace)
            return plan, cfg.pacing.max_concurrent
        finally:
            await store.close()
    got = run(go())
    if isinstance(got, str):
        print(f"campaign {args.name}: {got}", file=sys.stderr)
        return 1
    plan, max_concurrent = got
    print_plan(plan, args.limit)
    warning = campaign_warning(plan.campaign, max_concurrent,
                               effective_capacity(settings.capacity).conversations)
    if warning:
        print(warning)
    return 0


_TITLES = {
    PlanAction.DIAL: "would dial",
    PlanAction.HELD: "held by the calling window",
    PlanAction.WAITING: "waiting (pacing or a later pass)",
    PlanAction.SUPPRESSED: "suppressed",
    PlanAction.EXHAUSTED: "exhausted",
}


def print_plan(plan: Plan, limit: int, console: Any = None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    console.print(f"[bold]plan for {plan.campaign}[/bold] ({plan.state}) from "
                  f"{plan.start:%Y-%m-%d %H:%M} to {plan.until:%Y-%m-%d %H:%M} UTC, "
                  f"one call every {plan.interval_s:.1f} s at most; no call is placed")
    for action, title in _TITLES.items():
        rows = plan.by_action(action)
        if not rows:
            continue
        table = Table(title=f"{title}: {len(rows)}", title_justify="left")
        for col in ("contact", "name", "phone", "when (UTC)", "why"):
            table.add_column(col)
        for e in rows[:limit]:
            table.add_row(str(e.contact_id), e.name or "", e.phone or "",
                          f"{e.at:%Y-%m-%d %H:%M:%S}" if e.at else "", e.reason)
        if len(rows) > limit:
            table.add_row("…", f"{len(rows) - limit} more", "", "", "")
        console.print(table)
