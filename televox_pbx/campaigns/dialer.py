"""The dialer loop: who to call now, at what pace, and what each result means.

One Dialer serves every campaign in the store. A tick, per RUNNING campaign:
  1. if the pacer allows (or run-now was asked), pick eligible contacts with indexed
     queries (due callbacks first), ask the compliance gate about each,
  2. write the intent (attempt row 'intent' + contact 'calling') in one transaction,
     THEN send exactly one Originate with a fresh UUID,
  3. open the next pass or complete the campaign when nothing is left.
Results come back through `on_outcome`. All store writes go through one lock, since the
store is one SQLite connection and a transaction must not interleave with other writes.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from televox_pbx.campaigns import gate
from televox_pbx.campaigns.pacing import Pacer
from televox_pbx.campaigns.retry import UNCOUNTED, Result, classify, next_step
from televox_pbx.clock import Clock
from televox_pbx.config.campaign import Campaign
from televox_pbx.domain import CallOutcome, CallStatus, Disposition, FailureKind
from televox_pbx.domain import OriginateRequest as Req
from televox_pbx.ports import ChannelProbe, Originator
from televox_pbx.store import attempts as att
from televox_pbx.store import campaigns as camp
from televox_pbx.store import dial_queue as dq
from televox_pbx.store import gate_log
from televox_pbx.store.db import Store

log = logging.getLogger(__name__)

# Gate checks one tick may spend per campaign on held contacts before it gives up, so
# a tick stays cheap however many leads sit outside their window.
_MAX_GATE_CHECKS = 50
# How old an unfinished attempt must be before a live reconcile may finalise it.
_RECONCILE_GRACE_S = 60.0
# How long a contact waits when the PBX link was down and nothing was sent.
_NOT_SENT_RETRY_S = 30.0
# Channel variable names AMI and the dialplan accept.
_VAR_NAME = re.compile(r"[^A-Za-z0-9_]")


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


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    kept: list[str]
    finalised: list[str]


class Dialer:
    def __init__(self, store: Store, originator: Originator, clock: Clock, *,
                 workspace: str = "default", max_concurrent_global: int = 10,
                 probe: ChannelProbe | None = None, tick_s: float = 1.0,
                 new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
                 not_sent: tuple[type[BaseException], ...] = (),
                 fate_unknown: tuple[type[BaseException], ...] = ()) -> None:
        """`not_sent`: exceptions with which the Originator proves nothing went on the
        wire (e.g. AMI not connected); those attempts are closed unsent and the contact
        waits its turn again. `fate_unknown`: it may have gone out (link lost mid-action);
        the attempt stays open for the tracker or `reconcile()` to settle. Any other
        exception spends the attempt as failed. No attempt is ever sent twice."""
        self._store = store
        self._originator = originator
        self._clock = clock
        self._workspace = workspace
        self._max_global = max_concurrent_global
        self._probe = probe
        self._tick_s = tick_s
        self._new_id = new_id
        self._not_sent = not_sent
        self._fate_unknown = fate_unknown
        self._link_down_until = float("-inf")  # monotonic; set when an originate was unsent
        self._pacers: dict[int, Pacer] = {}
        self._configs: dict[int, tuple[str, Campaign]] = {}  # parsed once per stored JSON
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()

    # ---- the loop -------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Tick until `stop` is set. Call `recover()` first after a restart."""
        while not stop.is_set():
            await self.tick()
            self._wake.clear()
            await self._sleep_until_next(self._next_wait())

    def poke(self) -> None:
        """Something changed (a call ended, an operator acted): tick soon."""
        self._wake.set()

    async def _sleep_until_next(self, seconds: float) -> None:
        sleeper = asyncio.ensure_future(self._clock.sleep(seconds))
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (sleeper, waker):
                t.cancel()

    def _next_wait(self) -> float:
        mono = self._clock.monotonic()
        waits = [p.wait_s(mono) for p in self._pacers.values()]
        return min([self._tick_s, *[w for w in waits if w > 0]])

    async def tick(self) -> TickReport:
        report = TickReport()
        now = self._clock.now()
        for row in await camp.campaigns_in_states(self._store, ("SCHEDULED", "RUNNING")):
            if row.state == "SCHEDULED":
                if row.scheduled_at is None or row.scheduled_at > now:
                    continue
                async with self._lock:
                    await camp.set_state(self._store, row.id, "RUNNING", now)
            cfg = self._config(row)
            if cfg is None:
                continue
            await self._tick_campaign(row, cfg, report)
        return report

    def _config(self, row: camp.CampaignRow) -> Campaign | None:
        cached = self._configs.get(row.id)
        if cached is not None and cached[0] == row.config_json:
            return cached[1]
        cfg = row.config()
        if cfg is not None:
            self._configs[row.id] = (row.config_json, cfg)
        return cfg

    async def _tick_campaign(self, row: camp.CampaignRow, cfg: Campaign,
                             report: TickReport) -> None:
        pacer = self._pacers.setdefault(row.id, Pacer(cfg.pacing.calls_per_minute))
        pacer.set_rate(cfg.pacing.calls_per_minute)
        run_now = row.run_now_requested
        if run_now:
            await self.reconcile()
            async with self._lock:
                await camp.set_run_now(self._store, row.id, False)
        mono = self._clock.monotonic()
        if mono < self._link_down_until or (not run_now and not pacer.ready(mono)):
            return
        free = min(cfg.pacing.max_concurrent - await att.in_flight(self._store, row.id),
                   self._max_global - await att.in_flight(self._store))
        budget = min(free, cfg.pacing.max_concurrent if run_now else 1)
        dialled = 0
        if budget > 0:
            dialled = await self._dial(row, cfg, budget, report)
        if dialled:
            pacer.dialled(self._clock.monotonic())
        else:
            await self._advance(row, cfg, report)

    # ---- choosing and dialling -------------------------------------------------------

    async def _dial(self, row: camp.CampaignRow, cfg: Campaign, budget: int,
                    report: TickReport) -> int:
        now = self._clock.now()
        dialled = checks = 0
        pass_open = row.pass_started_at is None or row.pass_started_at <= now
        while dialled < budget and checks < _MAX_GATE_CHECKS:
            want = min(budget - dialled, _MAX_GATE_CHECKS - checks)
            batch = await dq.due_callbacks(self._store, row.id, now, want)
            if not batch and pass_open:
                batch = await dq.next_candidates(self._store, row.id, row.current_pass, now,
                                                 want)
            if not batch:
                break
            for cand in batch:
                if self._clock.monotonic() < self._link_down_until:
                    return dialled
                checks += 1
                if await self._try(row, cfg, cand, now, report):
                    dialled += 1
                    if dialled >= budget:
                        break
        return dialled

    async def _try(self, row: camp.CampaignRow, cfg: Campaign, cand: dq.Candidate,
                   now: datetime, report: TickReport, purpose: str | None = None) -> bool:
        if cand.e164 is None or cand.position is None:
            async with self._lock:  # no phone left to try
                await self._apply_result(cand.contact_id, cfg, Result.FAILED,
                                         cand.phone_index, None, now)
            return False
        purpose = purpose or ("callback" if cand.callback_id is not None else (
            "retry" if cand.retry_pass > 1 or cand.position > 1 else "campaign"))
        async with self._lock:
            decision = await gate.check(self._store, gate.GateContext(
                campaign=cfg, phone=cand.e164, now=now, workspace=self._workspace,
                contact_tz=cand.timezone, campaign_id=row.id, contact_id=cand.contact_id,
                purpose=purpose))
            if not decision.allowed:
                await self._refuse(cfg, cand, decision, now, report)
                return False
            call_id = self._new_id()
            await att.write_intent(self._store, att.Intent(
                call_id=call_id, campaign_id=row.id, contact_id=cand.contact_id,
                phone=decision.e164 or cand.e164, phone_position=cand.position,
                retry_pass=cand.retry_pass, gate_reason=decision.detail,
                callback_id=cand.callback_id), now)
        req = Req(call_id=call_id, phone=decision.e164 or cand.e164, trunk=cfg.trunk,
                  caller_id=cfg.caller_id, ring_timeout_s=cfg.ring_timeout_s,
                  variables=self._variables(cfg, cand, call_id, decision.zones))
        try:
            await self._originator.originate(req)
        except self._not_sent as exc:
            log.warning("originate not sent", extra={"call_id": call_id, "error": str(exc)})
            self._link_down_until = self._clock.monotonic() + _NOT_SENT_RETRY_S
            async with self._lock:
                await att.cancel_unsent(self._store, call_id, cand.contact_id,
                                        now + timedelta(seconds=_NOT_SENT_RETRY_S), str(exc))
            return False
        except self._fate_unknown as exc:
            log.warning("originate fate unknown", extra={"call_id": call_id,
                                                         "error": str(exc)})
        except Exception as exc:  # refused: the attempt is spent, never resent
            log.warning("originate failed", extra={"call_id": call_id, "error": str(exc)})
            await self.on_outcome(CallOutcome(call_id, CallStatus.FAILED,
                                              failure=FailureKind.OTHER))
            return True
        async with self._lock:
            await att.mark_originated(self._store, call_id, self._clock.now())
        report.originated.append(call_id)
        log.info("originated", extra={"call_id": call_id, "campaign": cfg.name,
                                      "contact_id": cand.contact_id})
        return True

    async def _refuse(self, cfg: Campaign, cand: dq.Candidate, decision: gate.GateDecision,
                      now: datetime, report: TickReport) -> None:
        if decision.held:
            report.held += 1
            # Unknown zone: look again in an hour (someone may fix the contact's zone).
            until = decision.next_open_at or now + timedelta(hours=1)
            if cand.callback_id is not None:
                await dq.postpone_callback(self._store, cand.callback_id, until)
            else:
                await dq.hold_contact(self._store, cand.contact_id, until)
            return
        report.suppressed += 1
        assert cand.position is not None
        # DNC or not a number at all: that phone is dead for this campaign, try the next.
        status = "dnc" if decision.reason is gate.GateReason.DNC else "wrong_number"
        await dq.mark_phone(self._store, cand.contact_id, cand.position, status, counted=False)
        if cand.callback_id is not None:
            await dq.set_callback_status(self._store, cand.callback_id, "suppressed")
        result = Result.DNC if status == "dnc" else Result.WRONG_NUMBER
        await self._apply_result(cand.contact_id, cfg, result, cand.position, None, now)

    def _variables(self, cfg: Campaign, cand: dq.Candidate, call_id: str,
                   zones: tuple[str, ...]) -> dict[str, str]:
        out = {f"TELEVOX_VAR_{_VAR_NAME.sub('_', k).upper()}":
               v.replace("\r", " ").replace("\n", " ") for k, v in cand.variables.items()}
        out.update({"TELEVOX_CALL_ID": call_id, "TELEVOX_CAMPAIGN": cfg.name,
                    "TELEVOX_CONTACT_ID": str(cand.contact_id),
                    "TELEVOX_AMD": "1" if cfg.amd else "0"})
        if len(zones) == 1:  # the agent books callbacks in it; a guess would be worse
            out["TELEVOX_ZONE"] = zones[0]
        return out

    async def call_now(self, contact_id: int) -> CallNowResult:
        """Dial one contact right away (operator or API), skipping the pacing wait but
        never the gate or the concurrency limits."""
        found = await dq.candidate_for(self._store, contact_id)
        if found is None:
            return CallNowResult(None, "no such contact")
        cand, status = found
        if status in ("calling", "connected"):
            return CallNowResult(None, "already on a call")
        if status in ("opted_out", "dnc"):
            return CallNowResult(None, f"contact is {status}")
        row = await camp.get_campaign_by_id(self._store, cand.campaign_id)
        cfg = row.config() if row else None
        if row is None or cfg is None:
            return CallNowResult(None, "campaign has no stored configuration")
        free = min(cfg.pacing.max_concurrent - await att.in_flight(self._store, row.id),
                   self._max_global - await att.in_flight(self._store))
        if free <= 0:
            return CallNowResult(None, "all lines busy (concurrency limit)")
        report = TickReport()
        await self._try(row, cfg, cand, self._clock.now(), report, purpose="call_now")
        if report.originated:
            return CallNowResult(report.originated[0], "originated")
        last = await gate_log.recent_decisions(self._store, contact_id, limit=1)
        detail = str(last[0]["detail"]) if last else "not dialled"
        return CallNowResult(None, detail)

    # ---- passes and completion ------------------------------------------------------

    async def _advance(self, row: camp.CampaignRow, cfg: Campaign, report: TickReport) -> None:
        now = self._clock.now()
        async with self._lock:
            if await dq.pass_has_open_work(self._store, row.id, row.current_pass):
                return
            nxt = await dq.lowest_pending_pass(self._store, row.id)
            if nxt is not None and nxt > row.current_pass:
                opens = now + timedelta(minutes=cfg.retry.retry_interval_minutes)
                await camp.set_pass(self._store, row.id, nxt, opens)
                log.info("next pass", extra={"campaign": cfg.name, "pass": nxt})
                return
            if nxt is not None or await dq.has_open_contacts(self._store, row.id):
                return
            if await att.in_flight(self._store, row.id):
                return
            await camp.set_state(self._store, row.id, "COMPLETED", now)
        report.completed_campaigns.append(cfg.name)
        log.info("campaign completed", extra={"campaign": cfg.name})

    # ---- results ----------------------------------------------------------------------

    async def on_outcome(self, outcome: CallOutcome, turns: int | None = None,
                         disposition: Disposition | None = None) -> None:
        """Progress or the final result of one attempt, from the tracker/voice session."""
        async with self._lock:
            await self._on_outcome(outcome, turns, disposition)
        self.poke()

    async def _on_outcome(self, outcome: CallOutcome, turns: int | None,
                          disposition: Disposition | None, notes: str | None = None,
                          force_completed: bool = False) -> None:
        now = self._clock.now()
        attempt = await att.get_attempt(self._store, outcome.call_id)
        if attempt is None or att.is_final_status(attempt.status):
            return  # not ours (inbound, another daemon) or a duplicate
        if not outcome.status.is_final:
            await att.mark_progress(self._store, outcome)
            if outcome.status is CallStatus.ANSWERED and attempt.contact_id is not None:
                await dq.set_contact_status(self._store, attempt.contact_id, "connected", now)
            return
        if disposition is None and attempt.disposition:
            disposition = Disposition(attempt.disposition)
        if not await att.finish(self._store, outcome, turns=turns,
                                disposition=disposition.value if disposition else None,
                                notes=notes):
            return
        if attempt.contact_id is None or attempt.campaign_id is None:
            return
        row = await camp.get_campaign_by_id(self._store, attempt.campaign_id)
        cfg = self._config(row) if row else None
        if cfg is None:
            return
        stored_turns = turns if turns is not None else attempt.turns
        result = Result.COMPLETED if force_completed else classify(
            outcome.status, disposition, stored_turns, outcome.amd_status)
        answered = outcome.answered_at or attempt.answered_at
        position = attempt.phone_position or 1
        phone_status = "wrong_number" if result is Result.WRONG_NUMBER else result.value
        await dq.mark_phone(self._store, attempt.contact_id, position, phone_status,
                            counted=result not in UNCOUNTED)
        await dq.finish_dialing_callbacks(self._store, attempt.contact_id)
        await self._apply_result(attempt.contact_id, cfg, result, position,
                                 disposition.value if disposition else None, now, answered)

    async def _apply_result(self, contact_id: int, cfg: Campaign, result: Result,
                            position: int, disposition: str | None,
                            now: datetime, answered_at: datetime | None = None) -> None:
        state = await dq.contact_retry_state(self._store, contact_id)
        if state is None:
            return
        upd = next_step(
            result, position=position,
            live_positions=await dq.live_positions(self._store, contact_id),
            retry_pass=int(state["retry_pass"]), policy=cfg.retry,
            last_disposition=disposition or result.value.upper(),
            now=now, answered_at=answered_at,
            has_callback=await dq.has_pending_callback(self._store, contact_id))
        await dq.update_contact(self._store, contact_id, upd, now, answered_at)

    # ---- crash recovery --------------------------------------------------------------

    async def recover(self) -> ReconcileReport:
        """On startup: settle attempts a previous run left unfinished. Never re-originates."""
        return await self.reconcile(grace_s=0.0)

    async def reconcile(self, grace_s: float = _RECONCILE_GRACE_S) -> ReconcileReport:
        """Attempts not finished in the store are checked against the PBX: live ones stay
        tracked; gone ones are finalised (answered: completed; else failed, counted).

        While running, attempts younger than `grace_s` are left alone: an Originate just
        sent may not have a channel yet.
        """
        cutoff = self._clock.now() - timedelta(seconds=grace_s)
        unfinished = [a for a in await att.unfinished_attempts(self._store)
                      if grace_s <= 0 or a.created_at is None or a.created_at <= cutoff]
        if not unfinished:
            return ReconcileReport([], [])
        live = await self._probe.live_call_ids() if self._probe is not None else None
        kept: list[str] = []
        gone: list[str] = []
        for a in unfinished:
            if live is None or a.id in live:
                kept.append(a.id)
                continue
            gone.append(a.id)
            async with self._lock:
                if a.answered_at is not None:
                    await self._on_outcome(
                        CallOutcome(a.id, CallStatus.COMPLETED, answered_at=a.answered_at,
                                    hangup_at=self._clock.now()),
                        None, None, notes="reconciled: channel gone", force_completed=True)
                else:
                    await self._on_outcome(
                        CallOutcome(a.id, CallStatus.FAILED, failure=FailureKind.OTHER,
                                    hangup_at=self._clock.now()),
                        None, None, notes="reconciled: no live channel after restart")
        if gone:
            log.warning("reconciled unfinished attempts",
                        extra={"finalised": len(gone), "kept": len(kept)})
        return ReconcileReport(kept, gone)
