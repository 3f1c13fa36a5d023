"""A dead node's calls (issue 19 item 4): a survivor takes the node over and settles them.

Runs on every daemon on a shared PostgreSQL, every RECONCILE_S on the daemon's clock;
whether a lease expired is judged on the DATABASE's clock (store/node_takeover.py).

Takeover, once per death:
  T1. another node's lease expired and nobody took it over since its last start
                                                          -> this node, holding its own
      lease, takes it over: one conditional UPDATE of the nodes row bumps that node's epoch
      and records `taken_over_by`; in the same transaction its live attempts move to this
      node's id and epoch (so this node's writes pass the epoch check of store/attempts.py),
      remembering the node whose Asterisk carries them (`pbx_node`) and when its lease ran
      out (`lost_at`). Two survivors racing: exactly one UPDATE matches. The dead process,
      should it come back, is fenced: its lease renewals, claims and attempt writes carry
      an epoch (or node) that no longer owns anything, and are refused; it adopts none of
      the taken-over attempts when it restarts.

Rejoin, without a restart:
  R1. this node's OWN lease lapsed (a long pause, a database outage)
                                                          -> that life is never renewed
      (store/nodes.renew_lease refuses it); the lease keeper joins again as the next epoch
      of the same id (store/nodes.rejoin_node), in one transaction: the live attempts that
      still carry its id (none if a survivor's T1 came first) move to the new epoch,
      adopted as a survivor adopts them, `pbx_node` = this node, `lost_at` = the lapse.
      N1..N5 below settle them through this node's own Asterisk; the Originate fence
      (store/node_load.may_originate) refuses every adopted attempt, so an unsent intent
      of the old life is never sent by the new one. Claims then go on. Its start time is
      kept (the process, and any simulator it embeds, did not restart: no N6).

Then, each pass, for each adopted attempt, asking `pbx_node`'s Asterisk over AMI
(CoreShowChannels, one short connection, REMOTE_TIMEOUT_S; the cluster's AMI user and
secret: every box's Asterisk carries the same manager.conf):
  N1. reachable, its channel still up                     -> keep it live, adopted; asked
      again next pass (a call transferred to a person goes on; the agent died with its node).
  N2. its Hangup was stored (end_status) before the node died, reachable or not
                                                          -> apply that stored verdict.
  N3. reachable, channel gone, answered, no Hangup stored -> `dropped` (daemon_restart),
      end time unknown; the contact counts as reached and is NOT redialed (as A3).
  N4. reachable, channel gone, never answered             -> `failed` (daemon_restart),
      counted as an attempt; the retry policy decides (as A4).
  N5. unreachable (refused, timed out, login rejected, or the node ran the embedded
      simulator, which died with it)                      -> nothing (the number stays
      blocked) until `lost_at` + the campaign's ring_timeout_s + max_call_duration_s +
      END_MARGIN_S have passed on the database's clock (no call it made can still be up by
      then; DEFAULT_RING_S / DEFAULT_MAX_CALL_S when the campaign is gone); then `dropped`
      (daemon_restart), end time unknown, and the contact is NOT redialed whatever the
      attempt's status: it may have been answered, and skipping a call is better than
      dialing twice. The number is free again.
  N6. the node ran the embedded simulator (AMI address `simulator`) and has started again
      since its lease ran out                             -> its PBX died with the old
      process, so no channel of it is up: N3 or N4 at once, as if reachable (until then
      it is unreachable: N5).
  N7. an inbound call (its row is the node's that answered it) -> as N5 whatever the PBX
      says: its channel is named by Asterisk, not by our id, so the channel list cannot
      show it; the caller's number stays blocked until the bound has passed. A node that
      rejoins (R1) keeps its inbound calls as its own: its process still holds them.
Every write goes through OutcomeApplier (campaigns/outcomes.py): the attempt, the contact's
next state and its callbacks, in one transaction, under the epoch check.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from televox_pbx.ami.remote import RemoteProbeFactory
from televox_pbx.campaigns.outcomes import OutcomeApplier
from televox_pbx.campaigns.recovery import stored_end
from televox_pbx.campaigns.retry import Result
from televox_pbx.clock import Clock
from televox_pbx.config.settings import Settings
from televox_pbx.domain import CallOutcome, CallStatus, FailureKind
from televox_pbx.ports import ChannelProbe
from televox_pbx.store import attempts as att_store
from televox_pbx.store import campaigns as camp
from televox_pbx.store.db import Store
from televox_pbx.store.node_takeover import (
    Adopted,
    adopted_attempts,
    db_now,
    expired_nodes,
    take_over,
)
from televox_pbx.store.nodes import RENEW_S

log = logging.getLogger(__name__)

RECONCILE_S = RENEW_S  # how often a survivor looks for dead nodes and adopted calls
DEFAULT_MAX_CALL_S = 600.0  # max_call_duration_s of a campaign that is gone (its default)
DEFAULT_RING_S = 30.0  # ring_timeout_s likewise
END_MARGIN_S = 60.0  # the goodbye and the PBX's hang-up after the limit (voice/session.py)

SIMULATOR = "simulator"  # the AMI address of a node running the embedded simulator
ProbeFor = Callable[[str], ChannelProbe]  # a node's AMI address -> a probe of its Asterisk


@dataclass
class NodePass:
    """What one pass did (for logs, tests and the benchmark)."""
    taken_over: dict[str, int] = field(default_factory=dict)  # node -> attempts moved
    kept: list[str] = field(default_factory=list)  # N1
    finalised: dict[str, str] = field(default_factory=dict)  # attempt -> rule (N2..N5)
    waiting: list[str] = field(default_factory=list)  # N5, not yet due
    unreachable: list[str] = field(default_factory=list)  # nodes whose AMI did not answer


class NodeReconciler:
    def __init__(self, store: Store, clock: Clock, outcomes: OutcomeApplier,
                 probe_for: ProbeFor, *, interval_s: float = RECONCILE_S) -> None:
        self._store, self._clock = store, clock
        self._outcomes, self._probe_for = outcomes, probe_for
        self._interval = interval_s

    async def run(self) -> None:
        """Pass after pass, forever (run it supervised, as its own task)."""
        while True:
            await self.pass_once()
            await self._clock.sleep(self._interval)

    async def pass_once(self) -> NodePass:
        report = NodePass()
        me = self._store.node
        if me is None:
            return report
        for dead in await expired_nodes(self._store, me):
            moved = await take_over(self._store, me, dead)  # T1
            if moved is not None:
                report.taken_over[dead.node_id] = moved
                log.warning("took over a dead node", extra={
                    "dead_node": dead.node_id, "node": me.node_id, "attempts": moved,
                    "expired_s": round(dead.expired_s, 1)})
        # Inbound rows of the previous version carry no node, so no takeover finds them.
        await att_store.close_orphan_inbound(
            self._store, DEFAULT_RING_S + DEFAULT_MAX_CALL_S + END_MARGIN_S)
        adopted = await adopted_attempts(self._store, me)
        if not adopted:
            return report
        by_node: dict[str, list[Adopted]] = {}
        for a in adopted:
            if (end := stored_end(a.attempt)) is not None:  # N2
                if await self._close(a, end, "N2", None, "node lost; stored result"):
                    report.finalised[a.attempt.id] = "N2"
            else:
                by_node.setdefault(a.pbx_node, []).append(a)
        now = await db_now(self._store) if by_node else 0.0
        for node, calls in by_node.items():
            first = calls[0]
            live: set[str] | None
            if first.ami_address == SIMULATOR:  # nothing to ask: N6 once it restarted
                live = set() if first.restarted else None
            else:
                live = await self._live(first.ami_address)
            if live is None:
                report.unreachable.append(node)
            for a in calls:
                await self._settle(a, live, now, report)
        if report.finalised or report.waiting:
            log.warning("reconciled a dead node's calls", extra={
                "node": me.node_id, "finalised": len(report.finalised),
                "kept": len(report.kept), "waiting": len(report.waiting),
                "unreachable": report.unreachable})
        return report

    async def _live(self, address: str) -> set[str] | None:
        """The attempt ids with a channel on that Asterisk; None when it did not answer.
        The probe bounds its own time (ami/remote.py)."""
        try:
            return {c.lower() for c in await self._probe_for(address).live_call_ids()}
        except Exception:
            return None

    async def _settle(self, a: Adopted, live: set[str] | None, now: float,
                      report: NodePass) -> None:
        att = a.attempt
        if att.direction == "inbound":
            # Asterisk names an inbound channel itself (only its TELEVOX_CALL_ID variable
            # carries our id), so the channel list cannot tell whether the caller is still
            # on: the call waits out N5's bound, as if the PBX did not answer (N7).
            live = None
        if live is not None and att.id.lower() in live:  # N1
            report.kept.append(att.id)
            return
        if live is not None and att.answered_at is not None:  # N3
            rule, note = "N3", "node lost during the call; end time unknown"
            outcome = CallOutcome(att.id, CallStatus.DROPPED,
                                  failure=FailureKind.DAEMON_RESTART,
                                  answered_at=att.answered_at)
            force: Result | None = Result.COMPLETED
        elif live is not None:  # N4
            rule, note, force = "N4", "node lost before the call was answered", None
            outcome = CallOutcome(att.id, CallStatus.FAILED, failure=FailureKind.DAEMON_RESTART)
        else:  # N5
            if now < a.lost_at + await self._bound_s(att.campaign_id):
                report.waiting.append(att.id)
                return
            rule, note = "N5", "node lost and its PBX unreachable; outcome unknown"
            outcome = CallOutcome(att.id, CallStatus.DROPPED,
                                  failure=FailureKind.DAEMON_RESTART,
                                  answered_at=att.answered_at)
            force = Result.COMPLETED
        if await self._close(a, outcome, rule, force, note):
            report.finalised[att.id] = rule

    async def _bound_s(self, campaign_id: int | None) -> float:
        """How long after the lease ran out no call the dead node made can still be up."""
        cfg = None
        if campaign_id is not None:
            row = await camp.get_campaign_by_id(self._store, campaign_id)
            cfg = row.config() if row is not None else None
        if cfg is None:
            return DEFAULT_RING_S + DEFAULT_MAX_CALL_S + END_MARGIN_S
        return cfg.ring_timeout_s + cfg.silence.max_call_duration_s + END_MARGIN_S

    async def _close(self, a: Adopted, outcome: CallOutcome, rule: str,
                     force: Result | None, note: str) -> bool:
        return await self._outcomes.apply(outcome, None, None,
                                          notes=f"{rule}: {note} (node {a.pbx_node})",
                                          force_result=force)


def node_reconciler(store: Store, clock: Clock, settings: Settings) -> NodeReconciler:
    """The daemon's reconciler on a shared database: other nodes' Asterisk reached with
    this node's AMI user and secret (the cluster's)."""
    outcomes = OutcomeApplier(store, clock, lambda row: row.config(),
                              workspace=settings.workspace)
    return NodeReconciler(store, clock, outcomes, RemoteProbeFactory(settings.ami, clock))
