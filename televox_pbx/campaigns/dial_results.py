"""What a Dialer tick and a single dial report, and the two steps of a tick that change a
contact or a campaign without dialling: a refusal by the gate (held, or that phone dead
for the campaign) and the move to the next pass or to completion."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from televox_pbx.campaigns import gate
from televox_pbx.campaigns.dial_words import CLUSTER_REFUSALS
from televox_pbx.campaigns.outcomes import OutcomeApplier
from televox_pbx.campaigns.retry import Result
from televox_pbx.config.campaign import Campaign
from televox_pbx.store import attempts as att
from televox_pbx.store import campaigns as camp
from televox_pbx.store import dial_queue as dq
from televox_pbx.store.db import Store

log = logging.getLogger(__name__)

# How long a contact waits when its number is already in a call (another campaign, a
# callback, an inbound call) before it is looked at again.
IN_CALL_HOLD_S = 120.0


@dataclass(slots=True)
class TickReport:
    originated: list[str] = field(default_factory=list)  # call ids
    held: int = 0
    suppressed: int = 0
    completed_campaigns: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class CallNowResult:
    call_id: str | None  # None: not dialled, see reason
    reason: str
    # Machine-readable: originated, in_call, dnc, window, unknown_tz, invalid, capacity,
    # not_ready, no_contact, no_phone, no_config, not_sent, failed.
    code: str = "originated"


async def refuse(store: Store, outcomes: OutcomeApplier, cfg: Campaign, cand: dq.Candidate,
                 decision: gate.GateDecision, now: datetime, report: TickReport) -> None:
    """The gate said no: held (window, unknown zone) until it may say yes, or (DNC, not a
    number) that phone is dead for this campaign and the next one is tried."""
    if decision.held:
        report.held += 1
        # Unknown zone: look again in an hour (someone may fix the contact's zone).
        until = decision.next_open_at or now + timedelta(hours=1)
        if cand.callback_id is not None:
            await dq.postpone_callback(store, cand.callback_id, until)
        else:
            await dq.hold_contact(store, cand.contact_id, until)
        return
    report.suppressed += 1
    assert cand.position is not None
    status = "dnc" if decision.reason is gate.GateReason.DNC else "wrong_number"
    result = Result.DNC if status == "dnc" else Result.WRONG_NUMBER
    async with store.transaction(tag="refuse"):
        await dq.mark_phone(store, cand.contact_id, cand.position, status, counted=False)
        if cand.callback_id is not None:
            await dq.set_callback_status(store, cand.callback_id, "suppressed")
        await outcomes.apply_result(cand.contact_id, cfg, result, cand.position, None, now,
                                    event=f"refused:{status}")


async def claim_refused(store: Store, outcomes: OutcomeApplier, cfg: Campaign,
                        cand: dq.Candidate, refused: str, now: datetime,
                        report: TickReport) -> CallNowResult:
    """The store refused the claim after the gate allowed it: a race the database won,
    or (on a cluster) no line, no token or no lease: nothing was touched."""
    if refused in CLUSTER_REFUSALS:
        code, words = CLUSTER_REFUSALS[refused]
        return CallNowResult(None, words, code)
    if refused == "dnc":  # listed between the gate and the claim
        await refuse(store, outcomes, cfg, cand, gate.GateDecision(
            False, gate.GateReason.DNC, "on DNC list", None, cand.e164), now, report)
        return CallNowResult(None, "the number is on the DNC list", "dnc")
    if refused == "in_call" and cand.callback_id is None:
        # Live in another campaign or an inbound call: look again a little later.
        await dq.hold_contact(store, cand.contact_id, now + timedelta(seconds=IN_CALL_HOLD_S))
    report.held += 1
    return CallNowResult(None, "already in a call", "in_call")


async def advance_pass(store: Store, row: camp.CampaignRow, cfg: Campaign,
                       now: datetime) -> bool:
    """The current pass has no open work: open the next one after the retry interval, or,
    with nothing left at all, complete the campaign. True when it completed."""
    if await dq.pass_has_open_work(store, row.id, row.current_pass):
        return False
    nxt = await dq.lowest_pending_pass(store, row.id)
    if nxt is not None and nxt > row.current_pass:
        opens = now + timedelta(minutes=cfg.retry.retry_interval_minutes)
        await camp.set_pass(store, row.id, nxt, opens)
        log.info("next pass", extra={"campaign": cfg.name, "pass": nxt})
        return False
    if nxt is not None or await dq.has_open_contacts(store, row.id):
        return False
    if await att.in_flight(store, row.id):
        return False
    await camp.set_state(store, row.id, "COMPLETED", now)
    log.info("campaign completed", extra={"campaign": cfg.name})
    return True
