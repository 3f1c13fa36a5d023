"""Applying one call's outcome: everything it changes commits together or not at all.

The attempt's end, the phone's status, the contact's next state (retry, next phone,
callback, final), the callbacks it used, the DNC entry of an opt-out and the audit row
are written in ONE transaction (tagged "outcome" for the crash tests). A crash at any
point leaves either the whole outcome or none of it; recovery handles the "none".
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from televox_pbx.campaigns.retry import UNCOUNTED, Result, classify, next_step
from televox_pbx.clock import Clock
from televox_pbx.config.campaign import Campaign
from televox_pbx.domain import CallOutcome, CallStatus, Disposition
from televox_pbx.store import attempts as att
from televox_pbx.store import campaigns as camp
from televox_pbx.store import dial_queue as dq
from televox_pbx.store.db import Store
from televox_pbx.store.dnc import add_numbers_in_tx
from televox_pbx.store.timefmt import iso

log = logging.getLogger(__name__)

ConfigFor = Callable[[camp.CampaignRow], Campaign | None]


class OutcomeApplier:
    def __init__(self, store: Store, clock: Clock, config_for: ConfigFor, *,
                 workspace: str = "default") -> None:
        self._store = store
        self._clock = clock
        self._config_for = config_for
        self._workspace = workspace

    async def apply(self, outcome: CallOutcome, turns: int | None,
                    disposition: Disposition | None, *, notes: str | None = None,
                    force_result: Result | None = None) -> bool:
        """Apply a progress or final outcome; False when it changed nothing (a duplicate,
        or an attempt that is not ours). `force_result` overrides the classification
        (recovery decides some results by rule, not from the call)."""
        async with self._store.transaction(tag="outcome" if outcome.status.is_final
                                           else "progress"):
            return await self._apply(outcome, turns, disposition, notes, force_result)

    async def _apply(self, outcome: CallOutcome, turns: int | None,
                     disposition: Disposition | None, notes: str | None,
                     force_result: Result | None) -> bool:
        store = self._store
        now = self._clock.now()
        attempt = await att.get_attempt(store, outcome.call_id)
        if attempt is None or att.is_final_status(attempt.status):
            return False  # not ours (inbound, another daemon) or a duplicate
        if not outcome.status.is_final:
            await att.mark_progress(store, outcome)
            if outcome.status is CallStatus.ANSWERED and attempt.contact_id is not None:
                await dq.set_contact_status(store, attempt.contact_id, "connected", now)
            return True
        if disposition is None and attempt.disposition:
            disposition = Disposition(attempt.disposition)
        if not await att.finish(store, outcome, turns=turns,
                                disposition=disposition.value if disposition else None,
                                notes=notes):
            return False
        if disposition is Disposition.OPT_OUT:
            # Normally listed already, mid-call; an opt-out must never depend on that.
            await add_numbers_in_tx(store, self._workspace,
                                    [(attempt.phone, "opted out on a call")],
                                    source="call", actor="agent", at=iso(now))
        if attempt.contact_id is None or attempt.campaign_id is None:
            return True
        row = await camp.get_campaign_by_id(store, attempt.campaign_id)
        cfg = self._config_for(row) if row else None
        if cfg is None:
            return True
        stored_turns = turns if turns is not None else attempt.turns
        result = force_result or classify(outcome.status, disposition, stored_turns,
                                          outcome.amd_status, outcome.failure)
        answered = outcome.answered_at or attempt.answered_at
        position = attempt.phone_position or 1
        phone_status = "wrong_number" if result is Result.WRONG_NUMBER else result.value
        await dq.mark_phone(store, attempt.contact_id, position, phone_status,
                            counted=result not in UNCOUNTED)
        await dq.finish_dialing_callbacks(store, attempt.contact_id)
        await self.apply_result(attempt.contact_id, cfg, result, position,
                                disposition.value if disposition else None, now, answered,
                                attempt_id=attempt.id, event=f"outcome:{outcome.status.value}")
        return True

    async def apply_result(self, contact_id: int, cfg: Campaign, result: Result,
                           position: int, disposition: str | None, now: datetime,
                           answered_at: datetime | None = None, *,
                           attempt_id: str | None = None, event: str = "result") -> None:
        """Move the contact to its next state and audit it. Inside the caller's
        transaction when there is one."""
        store = self._store
        state = await dq.contact_retry_state(store, contact_id)
        if state is None:
            return
        dropped = 0
        if result is Result.DROPPED:
            row = await store.fetchone(
                "SELECT COUNT(*) AS n FROM call_attempts WHERE contact_id = ?"
                " AND status = 'dropped' AND id != ?", (contact_id, attempt_id or ""))
            dropped = int(row["n"]) if row else 0
        upd = next_step(
            result, position=position,
            live_positions=await dq.live_positions(store, contact_id),
            retry_pass=int(state["retry_pass"]), policy=cfg.retry,
            last_disposition=disposition or result.value.upper(),
            now=now, answered_at=answered_at,
            has_callback=await dq.has_pending_callback(store, contact_id),
            dropped_before=dropped)
        await dq.update_contact(store, contact_id, upd, now, answered_at)
        await dq.record_contact_event(
            store, contact_id, attempt_id, event, str(state["status"]), upd.status,
            f"result={result.value}", now)
