"""How many calls the Dialer may start now, and how it claims a contact it chose itself.

Three limits, each counted where it belongs:
  - the campaign's `max_concurrent`: over every node (the campaign is shared; on a cluster
    the claim also enforces it under the campaign's pacing row lock);
  - `max_concurrent_calls` (settings): this box's own live calls, whatever campaign;
  - the voice capacity (issue 14, capacity.conversations): this box's own live outbound
    calls plus its inbound conversations (counted by the inbound handler, `live_elsewhere`;
    their attempt rows are not counted again), since one box's engines serve them.
On one box every live attempt is its own (store/node_load.live_here).

A contact chosen before the claim (a due callback, call-now) is claimed with att.claim on one
box, and through the cluster (campaigns/cluster_dial.py) on a node of several: counted in the
campaign's shared token bucket and max_concurrent, and only while this node holds its lease.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from televox_pbx.campaigns.cluster_dial import ClusterDial
from televox_pbx.config.campaign import Campaign
from televox_pbx.store import attempts as att
from televox_pbx.store.db import Store
from televox_pbx.store.node_load import live_counts


class Lines:
    def __init__(self, store: Store, *, max_global: int, capacity: int | None,
                 live_elsewhere: Callable[[], int]) -> None:
        self._store = store
        self.max_global = max_global
        self.capacity = capacity
        self._live_elsewhere = live_elsewhere

    async def free(self, campaign_id: int, cfg: Campaign) -> int:
        here, outbound = await live_counts(self._store)
        campaign = await att.in_flight(self._store, campaign_id)
        return min(cfg.pacing.max_concurrent - campaign, self.max_global - here,
                   self._capacity_left(outbound))

    def _capacity_left(self, outbound: int) -> int:
        """Conversations the voice capacity still admits: this box's live outbound calls
        (`outbound`) and its inbound conversations take one each."""
        if self.capacity is None:
            return self.max_global
        return self.capacity - outbound - self._live_elsewhere()

    async def capacity_full(self) -> bool:
        return self._capacity_left((await live_counts(self._store))[1]) <= 0


async def claim_chosen(store: Store, cluster: ClusterDial | None, intent: att.Intent,
                       cfg: Campaign, now: datetime, workspace: str, *,
                       overdraw: bool = False) -> str | None:
    """Claim a contact the Dialer chose; None when claimed, else why not: in_call, dnc,
    contact_busy (either path), or paced, full, no_lease (the cluster's)."""
    if cluster is not None:
        refused = await cluster.claim_contact(intent, cfg, now, workspace, overdraw=overdraw)
        return None if refused is None else refused.reason
    try:
        await att.claim(store, intent, now, workspace)
    except att.ClaimRefused as exc:
        return exc.code
    return None
