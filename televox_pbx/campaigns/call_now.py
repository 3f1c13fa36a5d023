"""Call-now's own refusals: what an operator's "call this contact now" must pass before
the Dialer's shared gate-claim-originate step (which it never skips)."""

from __future__ import annotations

from collections.abc import Callable

from televox_pbx.campaigns.cluster_dial import ClusterDial
from televox_pbx.campaigns.dial_results import CallNowResult
from televox_pbx.campaigns.dial_words import CLUSTER_REFUSALS
from televox_pbx.campaigns.lines import Lines
from televox_pbx.config.campaign import Campaign
from televox_pbx.store import campaigns as camp
from televox_pbx.store import dial_queue as dq
from televox_pbx.store.db import Store

Target = tuple[camp.CampaignRow, Campaign, dq.Candidate]


async def call_now_target(store: Store, contact_id: int,
                          config: Callable[[camp.CampaignRow], Campaign | None],
                          ready: Callable[[], bool], cluster: ClusterDial | None,
                          lines: Lines) -> Target | CallNowResult:
    """The contact's campaign, configuration and next phone, or the refusal: no such
    contact, already in a call, opted out, no configuration, the link down, no lease,
    at the box's capacity (refused, not queued: the operator asked for now) or no line."""
    found = await dq.candidate_for(store, contact_id)
    if found is None:
        return CallNowResult(None, "no such contact", "no_contact")
    cand, status = found
    if status in ("calling", "connected"):
        return CallNowResult(None, "already in a call", "in_call")
    if status in ("opted_out", "dnc"):
        return CallNowResult(None, "the contact opted out (DNC list)", "dnc")
    row = await camp.get_campaign_by_id(store, cand.campaign_id)
    cfg = config(row) if row else None
    if row is None or cfg is None:
        return CallNowResult(None, "campaign has no stored configuration", "no_config")
    if not ready():
        return CallNowResult(None, "the PBX link is down or reconnecting", "not_ready")
    if cluster is not None and not await cluster.holds_lease():
        return CallNowResult(None, CLUSTER_REFUSALS["no_lease"][1], "not_ready")
    if await lines.capacity_full():
        return CallNowResult(None, f"at capacity: {lines.capacity} live conversations "
                             "at once (capacity.conversations); try again when one "
                             "ends", "capacity")
    if await lines.free(row.id, cfg) <= 0:
        return CallNowResult(None, "all lines busy (concurrency limit)", "capacity")
    return row, cfg, cand
