"""`televox campaign start|pause|resume|restart|run-now|requeue|status|schedule NAME`.

The CLI writes the store directly; a running daemon's dialer sees the change on its
next tick. Contact import commands (engineer G) hang off the same group.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any

from televox_pbx.campaigns.controls import Action, ControlError, apply
from televox_pbx.cli.campaign_import import add_import_commands
from televox_pbx.cli.common import (
    DB_HELP,
    StoreTarget,
    campaign_yaml,
    run,
    settings_from_args,
    store_target,
)
from televox_pbx.cli.ivr import prompt_problems
from televox_pbx.config.campaign import Campaign
from televox_pbx.config.loader import ConfigError
from televox_pbx.store.attempts import Kpis, in_flight, kpis
from televox_pbx.store.campaigns import CampaignRow, get_campaign
from televox_pbx.store.dial_queue import FINAL_STATUSES, status_counts

_ACTIONS = {
    "start": (Action.START, "start dialing now"),
    "pause": (Action.PAUSE, "stop starting calls (calls in progress finish)"),
    "resume": (Action.RESUME, "resume a paused campaign"),
    "restart": (Action.RESTART, "all leads back to pending, counters zeroed (DNC honoured)"),
    "run-now": (Action.RUN_NOW, "reconcile, then dial the next batch now (skips pacing wait)"),
    "requeue": (Action.REQUEUE, "no_answer and failed leads go back in line"),
}
# Actions that (re)read the campaign YAML, so edits take effect.
_READS_YAML = {Action.START, Action.RESTART, Action.SCHEDULE}


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("campaign", help="control campaigns")
    csub = p.add_subparsers(dest="campaign_command", required=True, metavar="ACTION")
    for name, (action, help_text) in _ACTIONS.items():
        a = csub.add_parser(name, help=help_text)
        _common(a)
        a.set_defaults(func=_action, action=action)
    s = csub.add_parser("schedule", help="start automatically at a time")
    _common(s)
    s.add_argument("at", nargs="?", default=None,
                   help="ISO time with offset, e.g. 2026-12-01T09:00:00-05:00 "
                        "(default: scheduled_start from the campaign YAML)")
    s.set_defaults(func=_action, action=Action.SCHEDULE)
    st = csub.add_parser("status", help="progress, counts per status and KPIs")
    _common(st)
    st.set_defaults(func=_status)
    add_import_commands(csub)  # `campaign import|template` (engineer G)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="campaign name (config/campaigns/NAME.yaml)")
    p.add_argument("--db", default=None, help=DB_HELP)


def _yaml(args: argparse.Namespace) -> Campaign | None:
    campaign = campaign_yaml(settings_from_args(args), args.name)
    if isinstance(campaign, ConfigError):
        raise SystemExit(1) from campaign
    return campaign


def _db(args: argparse.Namespace) -> StoreTarget:
    return store_target(args)


def _parse_at(text: str) -> datetime:
    try:
        at = datetime.fromisoformat(text)
    except ValueError as exc:
        raise SystemExit(f"schedule: {text!r} is not an ISO time") from exc
    if at.tzinfo is None:
        raise SystemExit("schedule: the time needs a UTC offset, e.g. 2026-12-01T09:00-05:00")
    return at.astimezone(UTC)


def _action(args: argparse.Namespace) -> int:
    action: Action = args.action
    campaign = _yaml(args) if action in _READS_YAML else None
    if campaign is not None and campaign.ivr is not None:  # prompts checked at start
        problems = prompt_problems(settings_from_args(args), campaign)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            return 1
    at: datetime | None = None
    if action is Action.SCHEDULE:
        if args.at is not None:
            at = _parse_at(args.at)
        elif campaign is not None and campaign.scheduled_start is not None:
            at = campaign.scheduled_start.astimezone(UTC)
        else:
            print("schedule: give a time or set scheduled_start in the campaign YAML",
                  file=sys.stderr)
            return 1

    async def go() -> CampaignRow:
        store = await _db(args).open()
        try:
            return await apply(store, args.name, action, datetime.now(UTC),
                               campaign=campaign, at=at)
        finally:
            await store.close()
    try:
        row = run(go())
    except ControlError as exc:
        print(f"campaign {args.name}: {exc}", file=sys.stderr)
        return 1
    extra = f" at {row.scheduled_at.isoformat()}" if row.scheduled_at else ""
    print(f"campaign {row.name}: {row.state}{extra}")
    return 0


def _status(args: argparse.Namespace) -> int:
    async def go() -> tuple[CampaignRow | None, dict[str, int], Kpis, int]:
        store = await _db(args).open()
        try:
            row = await get_campaign(store, args.name)
            if row is None:
                return None, {}, Kpis(0, 0, 0, 0, None), 0
            return (row, await status_counts(store, row.id), await kpis(store, row.id),
                    await in_flight(store, row.id))
        finally:
            await store.close()
    row, counts, k, live = run(go())
    if row is None:
        print(f"campaign {args.name}: not in the store", file=sys.stderr)
        return 1
    render_status(row, counts, k, live)
    return 0


def render_status(row: CampaignRow, counts: dict[str, int], k: Kpis, live: int,
                  console: Any = None) -> None:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
    from rich.table import Table

    console = console or Console()
    total = sum(counts.values())
    done = sum(n for s, n in counts.items() if s in FINAL_STATUSES)
    head = f"[bold]{row.name}[/bold]  {row.state}  pass {row.current_pass}  in flight {live}"
    if row.scheduled_at and row.state == "SCHEDULED":
        head += f"  starts {row.scheduled_at.isoformat()}"
    console.print(head)
    progress = Progress(TextColumn("contacts done"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.percentage:>3.0f}%"), console=console,
                        auto_refresh=False)
    progress.add_task("done", total=max(total, 1), completed=done)
    console.print(progress.get_renderable())
    table = Table(show_header=True, header_style="bold")
    table.add_column("status")
    table.add_column("contacts", justify="right")
    for status in sorted(counts):
        table.add_row(status, str(counts[status]))
    console.print(table)
    avg = f"{k.avg_duration_s:.1f} s" if k.avg_duration_s is not None else "-"
    console.print(f"calls made {k.calls}  reached {k.reached}  interested {k.interested}  "
                  f"opted out {k.opted_out}  average duration {avg}")
