"""Shared helpers for the dialer/gate tests: a campaign, seeded contacts, fake PBX ports."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from televox_pbx.clock import FakeClock
from televox_pbx.config.campaign import Campaign
from televox_pbx.domain import CallOutcome, OriginateRequest
from televox_pbx.store import Store
from televox_pbx.store.campaigns import upsert_campaign


def make_campaign(**overrides: Any) -> Campaign:
    base: dict[str, Any] = {
        "name": "spring",
        "agent": {"persona_name": "Ava", "business": "Acme", "goal": "book a demo",
                  "opening_line": "Hi, I'm Ava, an AI assistant calling for Acme."},
        "caller_id": "+15550100000",
        "trunk": "trunk",
    }
    base.update(overrides)
    return Campaign.model_validate(base)


async def seed(store: Store, campaign: Campaign, contacts: Sequence[Sequence[str]],
               timezones: Sequence[str | None] | None = None, state: str = "RUNNING") -> int:
    """One contact per entry, each a list of E.164 phones (positions 1..n)."""
    cid = await upsert_campaign(store, campaign)
    await store.execute("UPDATE campaigns SET state = ? WHERE id = ?", (state, cid))
    for i, phones in enumerate(contacts):
        tz = timezones[i] if timezones else None
        contact_id = await store.execute(
            "INSERT INTO contacts(campaign_id, name, timezone) VALUES (?,?,?)",
            (cid, f"Lead {i}", tz))
        for pos, e164 in enumerate(phones, start=1):
            await store.execute(
                "INSERT INTO contact_phones(contact_id, campaign_id, position, e164)"
                " VALUES (?,?,?,?)", (contact_id, cid, pos, e164))
    return cid


async def add_dnc(store: Store, e164: str, workspace: str = "default") -> None:
    await store.execute("INSERT INTO dnc(e164, workspace) VALUES (?,?) ON CONFLICT DO NOTHING",
                        (e164, workspace))


@dataclass
class Sent:
    at: datetime
    mono: float
    req: OriginateRequest


@dataclass
class FakeOriginator:
    """Records originates; a behaviour function schedules each call's outcome."""

    clock: FakeClock
    sent: list[Sent] = field(default_factory=list)
    on_send: Callable[[OriginateRequest], None] | None = None

    async def originate(self, req: OriginateRequest) -> None:
        self.sent.append(Sent(self.clock.now(), self.clock.monotonic(), req))
        if self.on_send is not None:
            self.on_send(req)

    def ready(self) -> bool:
        return True


@dataclass
class FakeProbe:
    live: set[str] = field(default_factory=set)

    async def live_call_ids(self) -> set[str]:
        return set(self.live)


async def drain(tasks: set[asyncio.Task[None]]) -> None:
    for t in list(tasks):
        if t.done():
            tasks.discard(t)
            t.result()


def outcome_for(call_id: str, status: Any, **kw: Any) -> CallOutcome:
    return CallOutcome(call_id=call_id, status=status, **kw)
