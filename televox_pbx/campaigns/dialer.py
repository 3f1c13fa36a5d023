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
import uuid
from collections.abc import Callable
from datetime import datetime

from televox_pbx.campaigns import gate
from televox_pbx.campaigns.call_now import call_now_target
from televox_pbx.campaigns.cluster_dial import ClusterDial
from televox_pbx.campaigns.dial_batch import next_batch, put_back
from televox_pbx.campaigns.dial_results import (
    CallNowResult,
    TickReport,
    advance_pass,
    claim_refused,
    refuse,
)
from televox_pbx.campaigns.dial_words import channel_variables, refusal_text
from televox_pbx.campaigns.lines import Lines, claim_chosen
from televox_pbx.campaigns.outcomes import OutcomeApplier
from televox_pbx.campaigns.pacing import Pacer
from televox_pbx.campaigns.prompt_warmups import PromptWarmups
from televox_pbx.campaigns.recent import skip_if_answered
from televox_pbx.campaigns.recovery import ReconcileReport, Recovery
from televox_pbx.campaigns.retry import Result
from televox_pbx.clock import Clock, sleep_or_wake
from televox_pbx.config.campaign import Campaign
from televox_pbx.domain import CallOutcome, CallStatus, Disposition, FailureKind
from televox_pbx.domain import OriginateRequest as Req
from televox_pbx.ports import ChannelProbe, Originator
from televox_pbx.sms.service import SmsService
from televox_pbx.store import attempts as att
from televox_pbx.store import campaigns as camp
from televox_pbx.store import dial_queue as dq
from televox_pbx.store.db import Store

log = logging.getLogger(__name__)

# Gate checks one tick may spend per campaign on held contacts before it gives up, so
# a tick stays cheap however many leads sit outside their window.
_MAX_GATE_CHECKS = 50
# How old an unfinished attempt must be before a live reconcile may finalise it.
_RECONCILE_GRACE_S = 60.0
# Codes on which a tick stops dialling: the link is down, no line is free, no lease.
_STOP_CODES = frozenset({"not_sent", "capacity", "not_ready"})


_GATE_CODES = {gate.GateReason.DNC: "dnc", gate.GateReason.OUTSIDE_WINDOW: "window",
               gate.GateReason.UNKNOWN_TIMEZONE: "unknown_tz",
               gate.GateReason.INVALID_NUMBER: "invalid"}


class Dialer:
    def __init__(self, store: Store, originator: Originator, clock: Clock, *,
                 workspace: str = "default", max_concurrent_global: int = 10,
                 capacity: int | None = None, live_elsewhere: Callable[[], int] = lambda: 0,
                 probe: ChannelProbe | None = None, tick_s: float = 1.0,
                 new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
                 not_sent: tuple[type[BaseException], ...] = (),
                 fate_unknown: tuple[type[BaseException], ...] = (),
                 cluster: ClusterDial | None = None) -> None:
        """`not_sent`: exceptions with which the Originator proves nothing went on the
        wire (e.g. AMI not connected); those attempts are closed unsent and the contact
        waits its turn again. `fate_unknown`: it may have gone out (link lost mid-action);
        the attempt stays open for the tracker or `reconcile()` to settle. Any other
        exception spends the attempt as failed. No attempt is ever sent twice.
        `cluster` (PostgreSQL, several nodes): every claim goes through it (the queue,
        due callbacks, run-now, call-now), counted in the campaign's shared bucket and
        max_concurrent, and none while this node's lease has lapsed; the queue's claims
        are gated again on the database's clock (campaigns/cluster_dial.py).
        `capacity`: the live conversations the voice engines serve at once
        (config/capacity.py), across every campaign and call-now. Every call in flight
        on this box counts against it, ringing ones too (any of them may be answered),
        plus `live_elsewhere()`: conversations that are not attempts (inbound calls). A
        call that would go past it is not originated: campaigns wait for a line, call-now
        is refused with code "capacity" (not queued: the operator asked for now).
        `max_concurrent_global` counts this box's live calls too (campaigns/lines.py)."""
        self._store = store
        self._originator = originator
        self._clock = clock
        self._workspace = workspace
        self.lines = Lines(store, max_global=max_concurrent_global, capacity=capacity,
                           live_elsewhere=live_elsewhere)
        self._probe = probe
        self._tick_s = tick_s
        self._new_id = new_id
        self._not_sent = not_sent
        self._fate_unknown = fate_unknown
        self._cluster = cluster
        self._pacers: dict[int, Pacer] = {}
        self._configs: dict[int, tuple[str, Campaign]] = {}  # parsed once per stored JSON
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        # Sends the texts of SMS campaigns (channel: sms) after the same gate and claim;
        # set by whoever wires the PBX link. Without it SMS campaigns wait.
        self.sms: SmsService | None = None
        # Holds back a campaign's dialling while its agent's prompt warms (set by whoever
        # wires the voice engines; without it campaigns dial at once).
        self.warmups: PromptWarmups | None = None
        self.outcomes = OutcomeApplier(store, clock, self._config, workspace=workspace)
        self._recovery = Recovery(store, clock, self.outcomes, probe)

    # ---- the loop -------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Tick until `stop` is set. Call `recover()` first after a restart."""
        while not stop.is_set():
            self._wake.clear()  # before the tick: a poke during it must not be lost
            await self.tick()
            await self._sleep_until_next(self._next_wait())

    def poke(self) -> None:
        """Something changed (a call ended, an operator acted): tick soon."""
        self._wake.set()

    async def _sleep_until_next(self, seconds: float) -> None:
        await sleep_or_wake(self._clock, seconds, self._wake)

    def _next_wait(self) -> float:
        mono = self._clock.monotonic()
        waits = [p.wait_s(mono) for p in self._pacers.values()]
        return min([self._tick_s, *[w for w in waits if w > 0]])

    def _ready(self) -> bool:
        """The PBX link is up and reconciled: only then may an Originate go out."""
        ready = getattr(self._originator, "ready", None)
        return bool(ready()) if callable(ready) else True

    @property
    def capacity(self) -> int | None:
        return self.lines.capacity

    async def tick(self) -> TickReport:
        report = TickReport()
        if self._cluster is not None and not await self._cluster.holds_lease():
            return report  # lapsed or superseded: nothing at all, run-now requests wait
        for row in await camp.campaigns_in_states(self._store, ("SCHEDULED", "RUNNING")):
            now = self._clock.now()
            if row.state == "SCHEDULED":
                if row.scheduled_at is None or row.scheduled_at > now:
                    continue
                async with self._lock:  # one node starts it: the others see RUNNING
                    if not await camp.start_scheduled(self._store, row.id, now):
                        continue
            cfg = self._config(row)
            if cfg is None or (self.warmups is not None
                               and not self.warmups.ready(row.id, row.config_json, cfg)):
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
        if not self._ready():
            return  # AMI down or not yet reconciled: nothing may be sent, run-now waits
        if run_now:
            await self.reconcile()
            async with self._lock:
                await camp.set_run_now(self._store, row.id, False)
        if not run_now and not pacer.ready(self._clock.monotonic()):
            return
        free = await self.lines.free(row.id, cfg)
        budget = min(free, cfg.pacing.max_concurrent if run_now else 1)
        dialled = 0
        if budget > 0:
            dialled = await self._dial(row, cfg, budget, report, overdraw=run_now)
        if dialled:
            pacer.dialled(self._clock.monotonic())
        else:
            await self._advance(row, cfg, report)

    # ---- choosing and dialling -------------------------------------------------------

    async def _dial(self, row: camp.CampaignRow, cfg: Campaign, budget: int,
                    report: TickReport, overdraw: bool = False) -> int:
        """`overdraw` (run-now on a cluster): claims skip the shared bucket's wait, never
        its count nor max_concurrent (store/cluster_claim._admit). On a cluster, a budget
        of several (run-now) is claimed in one statement (claim_many)."""
        dialled = checks = 0
        while dialled < budget and checks < _MAX_GATE_CHECKS:
            now = self._clock.now()
            pass_open = row.pass_started_at is None or row.pass_started_at <= now
            want = min(budget - dialled, _MAX_GATE_CHECKS - checks)
            todo = await next_batch(self._store, self._cluster, row, cfg, now, want,
                                    pass_open, self._new_id, self._workspace,
                                    overdraw=overdraw)
            if not todo:
                break
            # However the loop ends, the claims from `untried` on are put back, never left
            # live (a stop code put nothing on the line for its own claim either).
            untried, why = len(todo), "tick ended"
            try:
                for i, (cand, claimed) in enumerate(todo):
                    untried = i
                    if not self._ready() and claimed is None:
                        return dialled
                    checks += 1
                    untried, why = i + 1, "error or cancelled"
                    code = (await self._try(row, cfg, cand, report, claimed=claimed,
                                            overdraw=overdraw)).code
                    untried, why = len(todo), "tick ended"
                    if code == "originated":
                        dialled += 1
                    if code in _STOP_CODES:  # link down, no line or no lease
                        untried, why = i, code
                        return dialled
                    if dialled >= budget:
                        untried = i + 1
                        break
            finally:
                await put_back(self._store, self._cluster, self._lock,
                               todo[untried:], why)
        return dialled

    async def _try(self, row: camp.CampaignRow, cfg: Campaign, cand: dq.Candidate,
                   report: TickReport, purpose: str | None = None,
                   claimed: str | None = None, overdraw: bool = False) -> CallNowResult:
        """`claimed`: the attempt the cluster claim already wrote; the gate runs again on
        the database's clock, and a refusal (or a link gone down) closes it unsent."""
        # The window is judged at the moment of this claim, never at a batch's start; on a
        # cluster by the database's clock, whichever node's clock drifted.
        now = self._clock.now() if self._cluster is None else await self._cluster.now()
        if cand.e164 is None or cand.position is None:
            async with self._lock, self._store.transaction(tag="refuse"):
                await self.outcomes.apply_result(cand.contact_id, cfg, Result.FAILED,
                                                 cand.phone_index, None, now,
                                                 event="no_phone_left")
            return CallNowResult(None, "no phone left to try", "no_phone")
        if cfg.channel == "sms" and self.sms is None:
            return CallNowResult(None, "no SMS sender is wired to this dialer", "not_sent")
        purpose = purpose or ("callback" if cand.callback_id is not None else (
            "retry" if cand.retry_pass > 1 or cand.position > 1 else "campaign"))
        async with self._lock:
            decision = await gate.check(self._store, gate.GateContext(
                campaign=cfg, phone=cand.e164, now=now, workspace=self._workspace,
                contact_tz=cand.timezone, campaign_id=row.id, contact_id=cand.contact_id,
                purpose=purpose))
            if claimed is not None and (not decision.allowed or not self._ready()):
                await att.cancel_unsent(self._store, claimed, cand.contact_id, now,
                                        f"refused at the re-check: {decision.reason.value}"
                                        if not decision.allowed else "the PBX link is down")
                if decision.allowed:
                    return CallNowResult(None, "the PBX link is down", "not_sent")
            if not decision.allowed:
                await self._refuse(cfg, cand, decision, now, report)
                return CallNowResult(None, refusal_text(decision),
                                     _GATE_CODES.get(decision.reason, "refused"))
            phone = decision.e164 or cand.e164
            if await skip_if_answered(self._store, cfg, cand.contact_id, phone, now, purpose):
                if claimed is not None:  # the cluster claim made it live: close it unsent
                    await att.cancel_unsent(self._store, claimed, cand.contact_id, now,
                                            "answered recently (another campaign)")
                return CallNowResult(None, "answered recently (another campaign)", "skipped")
            call_id = claimed or self._new_id()
            if claimed is None:
                refused = await claim_chosen(self._store, self._cluster, att.Intent(
                    call_id=call_id, campaign_id=row.id, contact_id=cand.contact_id,
                    phone=phone, phone_position=cand.position, retry_pass=cand.retry_pass,
                    gate_reason=decision.detail, callback_id=cand.callback_id), cfg, now,
                    self._workspace, overdraw=overdraw or purpose == "call_now")
                if refused is not None:
                    return await claim_refused(self._store, self.outcomes, cfg, cand, refused,
                                               now, report)
        if self._cluster is not None and not await self._cluster.may_originate(call_id):
            # Stalled since the claim: the lease is nearly out, or a survivor took this
            # node over and owns the attempt now. Nothing goes out; ours, it is put back.
            log.warning("originate withheld: the lease is lapsing", extra={"call_id": call_id})
            async with self._lock:
                await att.cancel_unsent(self._store, call_id, cand.contact_id, now,
                                        "withheld: this node's lease was lapsing")
            return CallNowResult(None, "this node's lease is lapsing; nothing was sent",
                                 "not_sent")
        if self.sms is not None and cfg.channel == "sms":
            sent = await self.sms.send_claimed(row.id, cfg, cand.contact_id, cand.variables,
                                               call_id, phone)
            if sent.ok:
                report.originated.append(call_id)
            return CallNowResult(call_id if sent.ok else None, sent.reason or "sent",
                                 "originated" if sent.ok else sent.code)
        req = Req(call_id=call_id, phone=phone, trunk=cfg.trunk,
                  caller_id=cfg.caller_id, ring_timeout_s=cfg.ring_timeout_s,
                  variables=channel_variables(cfg, cand, call_id, decision.zones))
        try:
            await self._originator.originate(req)
        except self._not_sent as exc:
            # Nothing went out (link down, PBX refusing): not an attempt. The contact is
            # back in line at once; dialing resumes when the link is up and reconciled.
            log.warning("originate not sent", extra={"call_id": call_id, "error": str(exc)})
            async with self._lock:
                await att.cancel_unsent(self._store, call_id, cand.contact_id, now, str(exc))
            return CallNowResult(None, "the PBX link is down; nothing was sent", "not_sent")
        except self._fate_unknown as exc:
            log.warning("originate fate unknown", extra={"call_id": call_id,
                                                         "error": str(exc)})
        except Exception as exc:  # refused: the attempt is spent, never resent
            log.warning("originate failed", extra={"call_id": call_id, "error": str(exc)})
            await self.on_outcome(CallOutcome(call_id, CallStatus.FAILED,
                                              failure=FailureKind.OTHER))
            return CallNowResult(None, "the PBX refused the call", "failed")
        async with self._lock:
            await att.mark_originated(self._store, call_id, self._clock.now())
        report.originated.append(call_id)
        log.info("originated", extra={"call_id": call_id, "campaign": cfg.name,
                                      "contact_id": cand.contact_id})
        return CallNowResult(call_id, "originated")

    async def _refuse(self, cfg: Campaign, cand: dq.Candidate, decision: gate.GateDecision,
                      now: datetime, report: TickReport) -> None:
        await refuse(self._store, self.outcomes, cfg, cand, decision, now, report)

    async def call_now(self, contact_id: int) -> CallNowResult:
        """Dial one contact right away (operator or API), skipping the pacing wait but
        never the gate, the one-live-attempt claim or the concurrency limits."""
        target = await call_now_target(self._store, contact_id, self._config, self._ready,
                                       self._cluster, self.lines)
        if isinstance(target, CallNowResult):
            return target
        row, cfg, cand = target
        return await self._try(row, cfg, cand, TickReport(), purpose="call_now")

    # ---- passes and completion ------------------------------------------------------

    async def _advance(self, row: camp.CampaignRow, cfg: Campaign, report: TickReport) -> None:
        async with self._lock:
            done = await advance_pass(self._store, row, cfg, self._clock.now())
        if done:
            report.completed_campaigns.append(cfg.name)

    # ---- results ----------------------------------------------------------------------

    async def on_ended(self, outcome: CallOutcome) -> None:
        """The PBX reported the end; the result (the voice session's) may come later.
        Keeps the real end time now, so a crash before the result cannot lose it."""
        async with self._lock:
            await att.mark_ended(self._store, outcome)

    async def on_outcome(self, outcome: CallOutcome, turns: int | None = None,
                         disposition: Disposition | None = None) -> None:
        """Progress or the final result of one attempt, from the tracker/voice session:
        applied in one transaction (see campaigns/outcomes.py)."""
        async with self._lock:
            await self.outcomes.apply(outcome, turns, disposition)
        self.poke()

    # ---- crash recovery --------------------------------------------------------------

    async def recover(self) -> ReconcileReport:
        """On startup: settle what a previous run left open, by the written rules of
        campaigns/recovery.py. Never re-originates."""
        async with self._lock:
            return await self._recovery.at_start()

    async def reconcile(self, grace_s: float = _RECONCILE_GRACE_S,
                        skip: frozenset[str] = frozenset()) -> ReconcileReport:
        """While running (and after each AMI re-login): attempts older than `grace_s`
        whose channel the PBX no longer has are settled (an Originate just sent may not
        have a channel yet). `skip`: calls whose result is on its way."""
        async with self._lock:
            return await self._recovery.live(grace_s, skip)

