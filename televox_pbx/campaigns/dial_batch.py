"""What one pass of the Dialer's `_dial` loop tries, and what it gives back untried.

The batch is, in this order: due callbacks; else, on a cluster, a claim of up to `want`
contacts in one statement (store/cluster_claim.claim_many: each comes with the attempt the
claim already wrote), or the DNC-blocked contacts when nothing is claimable
(campaigns/dnc_sweep.py); else, on one box, the next candidates of the queue (claimed
one by one later, after the gate).

A claimed contact the Dialer does not get to (a stop code, the budget, an error) must not
stay live: `put_back` closes its attempt unsent and puts the contact back in line.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from televox_pbx.campaigns.cluster_dial import ClusterDial, NoClaim
from televox_pbx.campaigns.dnc_sweep import take_blocked
from televox_pbx.config.campaign import Campaign
from televox_pbx.store import attempts as att
from televox_pbx.store import campaigns as camp
from televox_pbx.store import dial_queue as dq
from televox_pbx.store.db import Store

log = logging.getLogger(__name__)

# Each candidate with the attempt a cluster claim already wrote for it, if any.
Batch = list[tuple[dq.Candidate, str | None]]


async def next_batch(store: Store, cluster: ClusterDial | None, row: camp.CampaignRow,
                     cfg: Campaign, now: datetime, want: int, pass_open: bool,
                     new_id: Callable[[], str], workspace: str, *, overdraw: bool) -> Batch:
    """Up to `want` contacts to try now (`now`: this box's clock; a cluster claim reads
    the database's). `overdraw`: run-now (store/cluster_claim._admit)."""
    callbacks = await dq.due_callbacks(store, row.id, now, want)
    if callbacks or not pass_open:
        return [(c, None) for c in callbacks]
    if cluster is None:
        return [(c, None) for c in await dq.next_candidates(
            store, row.id, row.current_pass, now, want)]
    got = await cluster.claim(row.id, row.current_pass, cfg, new_id, workspace, want=want,
                              overdraw=overdraw)
    if not isinstance(got, NoClaim):
        return [(c.candidate, c.call_id) for c in got]
    if got.reason == "empty":  # nothing claimable: DNC-blocked ones move on
        return [(c, None) for c in await take_blocked(
            store, row.id, row.current_pass, await cluster.now(), workspace, want)]
    return []


async def put_back(store: Store, cluster: ClusterDial | None, lock: asyncio.Lock,
                   rest: Batch, why: str) -> None:
    """Close the claims in `rest` unsent, their contacts back in line. Best effort: a
    claim left behind (a database error here) is an intent that never went out; the
    recovery rules settle it as any such intent (as failed, counted as an attempt:
    skipping a call is better than dialing twice)."""
    claimed = [(cand, call_id) for cand, call_id in rest if call_id is not None]
    if not claimed or cluster is None:
        return
    try:
        now = await cluster.now()
        async with lock:
            for cand, call_id in claimed:
                await att.cancel_unsent(store, call_id, cand.contact_id, now,
                                        f"claimed in a batch, not dialled: {why}")
    except Exception:
        log.exception("could not put back a batch's untried claims",
                      extra={"claims": len(claimed)})
