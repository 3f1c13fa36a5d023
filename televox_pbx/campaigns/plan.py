"""Dry run of the dialer: who would be dialled in the next hours and when, who is held
by their window (until when), suppressed by DNC, or exhausted, and why. Places no call
and writes nothing (the gate's window half is pure; DNC is a read)."""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from televox_pbx.campaigns.gate import GateContext, GateReason, decide_window, normalise
from televox_pbx.config.campaign import Campaign
from televox_pbx.store import dial_queue as dq
from televox_pbx.store.campaigns import CampaignRow
from televox_pbx.store.db import Store
from televox_pbx.store.dnc import is_on_dnc


class PlanAction(StrEnum):
    DIAL = "dial"
    HELD = "held"  # outside the window (until), or no known zone
    WAITING = "waiting"  # dialable, but not before the horizon (pacing or a later pass)
    SUPPRESSED = "suppressed"  # DNC or not a number
    EXHAUSTED = "exhausted"  # finished without reaching anyone


@dataclass(frozen=True, slots=True)
class PlanEntry:
    contact_id: int
    name: str | None
    phone: str | None
    action: PlanAction
    at: datetime | None
    reason: str


@dataclass(frozen=True, slots=True)
class Plan:
    campaign: str
    state: str
    start: datetime
    until: datetime
    interval_s: float
    entries: list[PlanEntry]

    def by_action(self, action: PlanAction) -> list[PlanEntry]:
        return [e for e in self.entries if e.action is action]


_EXHAUSTED = ("no_answer", "busy", "failed", "voicemail")


async def build_plan(store: Store, row: CampaignRow, cfg: Campaign, now: datetime, *,
                     hours: float = 4.0, workspace: str = "default",
                     limit: int = 5000) -> Plan:
    start = max(now, row.scheduled_at) if row.state == "SCHEDULED" and row.scheduled_at \
        else now
    until = start + timedelta(hours=hours)
    interval = 60.0 / cfg.pacing.calls_per_minute
    entries: list[PlanEntry] = []
    seq = itertools.count()
    ready: list[tuple[datetime, int, dq.PlanRow, bool]] = []
    pass_opens = row.pass_started_at or start
    for c in await dq.plan_rows(store, row.id, ("pending",), limit):
        if c.e164 is None:
            entries.append(PlanEntry(c.contact_id, c.name, None, PlanAction.EXHAUSTED, None,
                                     "no phone left to try"))
            continue
        e164 = normalise(c.e164, cfg.default_country)
        if e164 is None or await is_on_dnc(store, e164, workspace):
            why = "on the DNC list" if e164 else "not a valid number"
            entries.append(PlanEntry(c.contact_id, c.name, c.e164, PlanAction.SUPPRESSED,
                                     None, why))
            continue
        if c.retry_pass > row.current_pass:
            entries.append(PlanEntry(
                c.contact_id, c.name, e164, PlanAction.WAITING, None,
                f"pass {c.retry_pass}: opens {cfg.retry.retry_interval_minutes} min after "
                f"pass {row.current_pass} is done"))
            continue
        t0 = max(start, pass_opens, c.next_eligible_at or start)
        heapq.heappush(ready, (t0, next(seq), c, False))
    slot = start
    while ready:
        t0, _, c, was_held = heapq.heappop(ready)
        t = max(t0, slot)
        assert c.e164 is not None
        if t > until:
            entries.append(PlanEntry(c.contact_id, c.name, c.e164, PlanAction.WAITING, t,
                                     "after the horizon (pacing)"))
            continue
        d = decide_window(GateContext(cfg, c.e164, t, workspace, c.timezone), c.e164)
        if d.allowed:
            why = "in window" + (" (after a hold)" if was_held else "")
            entries.append(PlanEntry(c.contact_id, c.name, c.e164, PlanAction.DIAL, t,
                                     f"{why}; pass {c.retry_pass}, phone {c.position}"))
            slot = t + timedelta(seconds=interval)
        elif d.reason is GateReason.OUTSIDE_WINDOW and d.next_open_at and \
                d.next_open_at <= until:
            heapq.heappush(ready, (d.next_open_at, next(seq), c, True))
        else:
            entries.append(PlanEntry(c.contact_id, c.name, c.e164, PlanAction.HELD,
                                     d.next_open_at, d.detail))
    for c in await dq.plan_rows(store, row.id, _EXHAUSTED, limit):
        entries.append(PlanEntry(c.contact_id, c.name, c.e164, PlanAction.EXHAUSTED, None,
                                 f"{c.status} after {c.retry_pass} pass(es)"
                                 + (f", last {c.last_disposition}" if c.last_disposition
                                    else "")))
    for c in await dq.plan_rows(store, row.id, ("dnc", "opted_out"), limit):
        entries.append(PlanEntry(c.contact_id, c.name, c.e164, PlanAction.SUPPRESSED, None,
                                 "opted out" if c.status == "opted_out" else "on the DNC list"))
    return Plan(cfg.name, row.state, start, until, interval, entries)
