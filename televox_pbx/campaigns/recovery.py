"""Recovery: every inconsistent state a crash or an outage can leave, and its written rule.

Times are the PBX's, as stored when its events arrived (answer, hangup), or unknown (NULL):
never the time of recovery.

At start (our process died; `at_start`), for each attempt still live in the store:
  A1. its channel is still up on the PBX                  -> keep it; the tracker follows it.
  A2. its Hangup was seen (end_status stored) but the result was never applied
                                                          -> apply that stored verdict.
  A3. answered, no Hangup seen                            -> `dropped` (daemon_restart), end
      time unknown; the contact counts as reached and is NOT redialed (we cannot know
      what they heard, and a second call minutes later is the mistake we must not make).
  A4. Originate sent or not confirmed ('intent'), never answered, no Hangup
                                                          -> `failed` (daemon_restart),
      counted as an attempt; the retry policy decides (we cannot prove it never rang).
  A5. inbound calls still open                            -> `dropped`, end time unknown.
Then, for what the rows above cannot explain:
  A6. a contact `calling`/`connected` with no live attempt -> back to `pending`, same
      phone and pass, eligible after the campaign's retry interval (audited).
  A7. a callback `dialing` with no live attempt           -> `pending` again: outcomes
      close their callbacks in the same transaction (A2-A4 included), so one still
      dialing was never dialed to an end.

While running (`live`, and after each AMI re-login), for attempts older than the grace
whose channel the PBX no longer has:
  L1. Hangup seen                                         -> apply that stored verdict.
  L2. answered, no Hangup seen (the PBX restarted, the link died)
                                                          -> `dropped` (pbx_fault), retried
      as the campaign's `retry.dropped_retries` allows.
  L3. never answered                                      -> `failed` (other), counted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from televox_pbx.campaigns.outcomes import OutcomeApplier
from televox_pbx.campaigns.retry import Result
from televox_pbx.clock import Clock
from televox_pbx.domain import CallOutcome, CallStatus, FailureKind
from televox_pbx.ports import ChannelProbe
from televox_pbx.store import attempts as att
from televox_pbx.store import campaigns as camp
from televox_pbx.store import dial_queue as dq
from televox_pbx.store.db import Store
from televox_pbx.store.timefmt import iso

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    kept: list[str]
    finalised: list[str]


def stored_end(a: att.AttemptRow) -> CallOutcome | None:
    """The PBX's verdict kept at Hangup time (rules A2, L1), with its real times."""
    if a.end_status is None:
        return None
    return CallOutcome(
        a.id, CallStatus(a.end_status),
        failure=FailureKind(a.end_failure) if a.end_failure else None,
        hangup_cause=a.hangup_cause, sip_code=a.sip_code, originated_at=a.originated_at,
        ringing_at=a.ringing_at, answered_at=a.answered_at, hangup_at=a.hangup_at)


class Recovery:
    def __init__(self, store: Store, clock: Clock, outcomes: OutcomeApplier,
                 probe: ChannelProbe | None) -> None:
        self._store = store
        self._clock = clock
        self._outcomes = outcomes
        self._probe = probe

    async def _live_ids(self) -> set[str] | None:
        if self._probe is None:
            return None
        return {c.lower() for c in await self._probe.live_call_ids()}

    async def at_start(self) -> ReconcileReport:
        unfinished = await att.unfinished_attempts(self._store)
        live = await self._live_ids() if unfinished else set()
        kept: list[str] = []
        done: list[str] = []
        for a in unfinished:
            if live is None or a.id.lower() in live:
                kept.append(a.id)  # A1 (or no PBX to ask: leave it to the tracker)
                continue
            done.append(a.id)
            end = stored_end(a)
            if end is not None:  # A2
                await self._outcomes.apply(end, None, None,
                                           notes="recovered: result applied after restart")
            elif a.answered_at is not None:  # A3
                await self._outcomes.apply(
                    CallOutcome(a.id, CallStatus.DROPPED, failure=FailureKind.DAEMON_RESTART,
                                answered_at=a.answered_at),
                    None, None, notes="daemon restarted during the call; end time unknown",
                    force_result=Result.COMPLETED)
            else:  # A4
                await self._outcomes.apply(
                    CallOutcome(a.id, CallStatus.FAILED, failure=FailureKind.DAEMON_RESTART),
                    None, None, notes="daemon restarted before the call was answered")
        closed = await att.close_stale_inbound(self._store)  # A5
        stranded = await self._unstick_contacts()  # A6
        await self._settle_callbacks()  # A7
        if done or closed or stranded:
            log.warning("recovered after restart",
                        extra={"finalised": len(done), "kept": len(kept),
                               "inbound_closed": closed, "contacts_unstuck": stranded})
        return ReconcileReport(kept, done)

    async def live(self, grace_s: float,
                   skip: frozenset[str] = frozenset()) -> ReconcileReport:
        cutoff = self._clock.now() - timedelta(seconds=grace_s)
        unfinished = [a for a in await att.unfinished_attempts(self._store)
                      if a.id not in skip
                      and (grace_s <= 0 or a.created_at is None or a.created_at <= cutoff)]
        if not unfinished:
            return ReconcileReport([], [])
        live = await self._live_ids()
        if live is None:
            return ReconcileReport([a.id for a in unfinished], [])
        kept: list[str] = []
        gone: list[str] = []
        for a in unfinished:
            if a.id.lower() in live:
                kept.append(a.id)
                continue
            gone.append(a.id)
            end = stored_end(a)
            if end is not None:  # L1
                await self._outcomes.apply(end, None, None, notes="reconciled: ended")
            elif a.answered_at is not None:  # L2
                await self._outcomes.apply(
                    CallOutcome(a.id, CallStatus.DROPPED, failure=FailureKind.PBX_FAULT,
                                answered_at=a.answered_at),
                    None, None, notes="reconciled: channel gone without a hangup")
            else:  # L3
                await self._outcomes.apply(
                    CallOutcome(a.id, CallStatus.FAILED, failure=FailureKind.OTHER),
                    None, None, notes="reconciled: no live channel")
        if gone:
            log.warning("reconciled unfinished attempts",
                        extra={"finalised": len(gone), "kept": len(kept)})
        return ReconcileReport(kept, gone)

    async def _unstick_contacts(self) -> int:
        rows = await self._store.fetchall(
            "SELECT c.id, c.campaign_id, c.status FROM contacts c"
            " WHERE c.status IN ('calling','connected') AND NOT EXISTS ("
            "  SELECT 1 FROM call_attempts a WHERE a.contact_id = c.id"
            "  AND a.status IN ('intent','originated','ringing','answered'))")
        now = self._clock.now()
        for r in rows:
            campaign = await camp.get_campaign_by_id(self._store, int(r["campaign_id"]))
            cfg = campaign.config() if campaign is not None else None
            minutes = cfg.retry.retry_interval_minutes if cfg is not None else 60
            until = now + timedelta(minutes=minutes)
            async with self._store.transaction(tag="recover"):
                await self._store.execute(
                    "UPDATE contacts SET status = 'pending', next_eligible_at = ?,"
                    " updated_at = ? WHERE id = ? AND status IN ('calling','connected')",
                    (iso(until), iso(now), int(r["id"])))
                await dq.record_contact_event(
                    self._store, int(r["id"]), None, "recovered:no_live_attempt",
                    str(r["status"]), "pending", "contact was calling with no live attempt",
                    now)
        return len(rows)

    async def _settle_callbacks(self) -> None:
        await self._store.execute(
            "UPDATE callbacks SET status = 'pending'"
            " WHERE status = 'dialing' AND NOT EXISTS ("
            "  SELECT 1 FROM call_attempts a WHERE a.contact_id = callbacks.contact_id"
            "  AND a.status IN ('intent','originated','ringing','answered'))")
