"""The compliance gate: the ONE function every dial path asks before an Originate.

Campaign dialing, `call now`, retries and scheduled callbacks all call `check()`. It
normalises the number, refuses DNC numbers (per workspace, always), and holds calls
outside the calling window in every zone the callee may be in, saying when it opens.
Every decision is recorded in gate_decisions; log lines carry no phone numbers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from televox_pbx.campaigns.phones import normalize_phone
from televox_pbx.campaigns.windows import (
    in_window_everywhere,
    next_open,
    resolve_zones,
    zones_for_number,
)
from televox_pbx.config.campaign import Campaign
from televox_pbx.store.db import Store
from televox_pbx.store.dnc import is_on_dnc
from televox_pbx.store.gate_log import record_gate_decision

log = logging.getLogger(__name__)


class GateReason(StrEnum):
    OK = "ok"
    DNC = "dnc"
    OUTSIDE_WINDOW = "outside_window"
    UNKNOWN_TIMEZONE = "unknown_timezone"
    INVALID_NUMBER = "invalid_number"


@dataclass(frozen=True, slots=True)
class GateContext:
    campaign: Campaign
    phone: str  # any format; normalised here with campaign.default_country
    now: datetime  # aware
    workspace: str = "default"
    contact_tz: str | None = None
    campaign_id: int | None = None
    contact_id: int | None = None
    purpose: str = "campaign"  # campaign | retry | callback | call_now


@dataclass(frozen=True, slots=True)
class GateDecision:
    allowed: bool
    reason: GateReason
    detail: str
    next_open_at: datetime | None = None  # set when held by the window
    e164: str | None = None  # the normalised number that was checked
    zones: tuple[str, ...] = ()  # the callee's candidate zones (IANA), when known

    @property
    def held(self) -> bool:
        """Not now, but not suppressed either: try again at next_open_at."""
        return self.reason in (GateReason.OUTSIDE_WINDOW, GateReason.UNKNOWN_TIMEZONE)


def normalise(phone: str, default_country: str) -> str | None:
    """E.164 form of any way a number may be written, or None if it is not a number.

    The same normaliser as contact import and the DNC list, so formats always agree.
    """
    return normalize_phone(phone, default_country).e164


def decide_window(ctx: GateContext, e164: str) -> GateDecision:
    """The window half of the gate; pure (no store)."""
    res = resolve_zones(ctx.campaign.timezone_policy, ctx.contact_tz, e164)
    if res.source == "conflict":
        number = ",".join(sorted(z.key for z in zones_for_number(e164)))
        return GateDecision(False, GateReason.UNKNOWN_TIMEZONE,
                            f"the contact's timezone {ctx.contact_tz} is not one of the "
                            f"number's ({number}); held: correct the contact's timezone, or "
                            "set timezone_policy.trust_contact_timezone", None, e164)
    if not res.zones:
        return GateDecision(False, GateReason.UNKNOWN_TIMEZONE,
                            "no time zone known for the callee; held", None, e164)
    window = ctx.campaign.calling_window
    keys = tuple(sorted(z.key for z in res.zones))
    names = ",".join(keys)
    if in_window_everywhere(window, res.zones, ctx.now):
        return GateDecision(True, GateReason.OK, f"in window ({res.source}: {names})",
                            None, e164, keys)
    opens = next_open(window, res.zones, ctx.now)
    detail = f"outside window ({res.source}: {names})"
    if opens is None:
        detail += "; windows never overlap in all candidate zones"
    return GateDecision(False, GateReason.OUTSIDE_WINDOW, detail, opens, e164, keys)


async def check(store: Store, ctx: GateContext) -> GateDecision:
    """Decide, record the decision, and return it. DNC wins over everything."""
    e164 = normalise(ctx.phone, ctx.campaign.default_country)
    if e164 is None:
        decision = GateDecision(False, GateReason.INVALID_NUMBER, "not a valid phone number")
    elif await is_on_dnc(store, e164, ctx.workspace):
        decision = GateDecision(False, GateReason.DNC, f"on DNC list ({ctx.workspace})",
                                None, e164)
    else:
        decision = decide_window(ctx, e164)
    await record_gate_decision(
        store, campaign_id=ctx.campaign_id, contact_id=ctx.contact_id,
        phone=e164 or ctx.phone, allowed=decision.allowed, reason=decision.reason.value,
        detail=f"{ctx.purpose}: {decision.detail}", at=ctx.now)
    log.debug("gate decision", extra={"contact_id": ctx.contact_id, "allowed": decision.allowed,
                                      "reason": decision.reason.value, "purpose": ctx.purpose})
    return decision
