"""Issue 12's three promises as a stateful property: whatever happens (two campaigns that
share numbers written differently, callbacks, call-now from the daemon and from a second
process, opt-outs in calls and inbound calls, every outcome class, AMI cuts, PBX
restarts, kill -9 and restart at a commit point, days of clock), after every step:

- at most one live attempt per number (E.164);
- no attempt created after that number's DNC commit;
- no attempt outside the calling window in any zone the callee may be in;
- once recovery has run, no contact `calling` without a live attempt.

The store, dialer, tracker and PBX simulator are the product's, on one FakeClock, over
real AMI/TCP on loopback. The judge (tests/invariant_model.py) shares no code with them.
"""

from __future__ import annotations

import contextlib
import os
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, Phase, settings
from hypothesis import event as hypothesis_event
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from invariant_harness import (
    SECRET,
    CrashTrap,
    Daemon,
    Inbound,
    inbound_end,
    inbound_start,
    operator_dnc,
    refusing_logins,
    restart_pbx,
    session_callback,
    session_opt_out,
)
from invariant_model import (
    CampaignSpec,
    Model,
    OptOut,
    attempts,
    calling_has_live_attempt,
    connect,
    dnc_commits,
    e164,
    inside_windows,
    no_dial_after_dnc,
    number_zones,
    one_live_per_number,
)
from invariant_people import (
    CALLEES,
    CAMPAIGNS,
    NUMBERS,
    caller_id_forms,
    contacts,
    import_into,
    scenario_for,
    session_result,
    written_forms,
)
from invariant_rig import Rig, SessionResult

from televox_pbx.domain import CallOutcome, Disposition, OriginateRequest
from televox_pbx.sim import Simulator
from televox_pbx.store import Store

# Monday 11:30 New York, 10:30 Chicago, 08:30 Los Angeles, 06:30 Honolulu, 16:30 London.
START = datetime(2026, 1, 5, 16, 30, tzinfo=UTC)
STATS: Counter[str] = Counter()


def event(what: str) -> None:
    """Counted for the run's statistics (hypothesis) and for the coverage asserts here."""
    with contextlib.suppress(InvalidArgument):  # outside a hypothesis run (debugging)
        hypothesis_event(what)
    STATS[what] += 1


class Invariants(RuleBasedStateMachine, Rig):
    def __init__(self) -> None:
        RuleBasedStateMachine.__init__(self)
        Rig.__init__(self, START)
        self.model = Model({name: CampaignSpec.from_config(c) for name, c in CAMPAIGNS.items()})
        self.kinds: dict[str, str] = {}  # E.164 -> how that callee behaves (CALLEES)
        self.said: dict[str, SessionResult] = {}  # call id -> what its session reports
        self.inbound: list[Inbound] = []

    def session_results(self, req: OriginateRequest, outcome: CallOutcome) -> SessionResult:
        if outcome.answered_at is None:
            return (None, None)
        if req.call_id in self.said:
            return self.said.pop(req.call_id)
        return session_result(self.kinds.get(req.phone, "interested"))

    def opted_out(self, number: str) -> None:
        self.model.opt_outs.append(OptOut(number, self.clock.now(), self.attempt_ids()))

    # ---- rules --------------------------------------------------------------------

    @initialize(first=contacts(), second=contacts())
    def start(self, first: list[Any], second: list[Any]) -> None:
        async def go() -> None:
            self.sim = Simulator(scenario_for(self.kinds), clock=self.clock, secret=SECRET,
                                 allow_placeholder_speech=True)
            await self.sim.start()
            store = await Store.open(self.db)
            try:
                for name, rows in zip(CAMPAIGNS, (first, second), strict=True):
                    await import_into(store, name, rows, self.model, self.clock)
            finally:
                await store.close()
            await self.start_daemon()
        self.run(go())

    @rule(campaign=st.sampled_from(sorted(CAMPAIGNS)), rows=contacts())
    def import_more(self, campaign: str, rows: list[Any]) -> None:
        async def go() -> None:
            store = await Store.open(self.db)  # `televox campaign import`: its own process
            try:
                await import_into(store, campaign, rows, self.model, self.clock)
            finally:
                await store.close()
            await self.settle()
        self.run(go())

    @rule(number=st.sampled_from(NUMBERS), kind=st.sampled_from(sorted(CALLEES)))
    def callee_behaves(self, number: str, kind: str) -> None:
        assert self.sim is not None
        self.kinds[number] = kind
        self.sim.scenario = scenario_for(self.kinds)

    @rule(seconds=st.sampled_from([1, 2, 4, 8, 15, 30, 60]))
    def tick(self, seconds: int) -> None:
        self.run(self.advance(seconds))

    @rule(hours=st.sampled_from([0.25, 1, 3, 7, 16, 24]), edge=st.booleans())
    def jump(self, hours: float, edge: bool) -> None:
        """Hours pass (calls in flight first run out); `edge` lands just before the top of
        an hour, where the windows open and close."""
        async def go() -> None:
            for _ in range(60):
                if self.quiet():
                    break
                await self.advance(1)
            target = self.clock.now() + timedelta(hours=hours)
            if edge:
                target = target.replace(minute=59, second=58, microsecond=0)
            if target > self.clock.now():
                self.clock.set_now(target)
            await self.advance(4)
        self.run(go())

    @rule(pick=st.integers(0, 40), beside=st.booleans())
    def call_now(self, pick: int, beside: bool) -> None:
        """An operator's `call now`: through the daemon, or from a second process on the
        same database (today's `televox call` beside a running daemon)."""
        async def go() -> None:
            assert self.daemon is not None and self.sim is not None
            conn = connect(self.db)
            ids = [int(r[0]) for r in conn.execute("SELECT id FROM contacts ORDER BY id")]
            conn.close()
            if not ids:
                return
            contact = ids[pick % len(ids)]
            if beside and len(self.beside) < 2:
                other = await self.started(Daemon.start_beside(
                    self.db, self.sim.ami_port, self.clock, self.session_results))
                self.beside.append(other)
                placed = await other.runner.dialer.call_now(contact)
                where = "beside the daemon"
            else:
                placed = await self.daemon.runner.dialer.call_now(contact)
                where = "through the daemon"
            if placed.call_id is not None:
                event(f"call now placed {where}")
            await self.settle()
        self.run(go())

    @rule(pick=st.integers(0, 10), form=st.integers(0, 10))
    def opt_out_in_call(self, pick: int, form: int) -> None:
        async def go() -> None:
            assert self.daemon is not None
            calls = await self.until_answered()
            if not calls:
                return
            call_id, phone = calls[pick % len(calls)]
            forms = written_forms(phone)
            await session_opt_out(self.daemon.store, self.clock, forms[form % len(forms)])
            self.opted_out(e164(phone) or phone)
            self.said[call_id] = (2, Disposition.OPT_OUT)
            event("opt-out in a call")
            await self.settle()
        self.run(go())

    @rule(pick=st.integers(0, 10), delays=st.lists(
        st.sampled_from([5, 90, 6 * 60, 13 * 60, 26 * 60]), min_size=1, max_size=2),
        zoned=st.booleans())
    def book_callbacks(self, pick: int, delays: list[int], zoned: bool) -> None:
        async def go() -> None:
            assert self.daemon is not None
            calls = await self.until_answered()
            if not calls:
                return
            call_id, phone = calls[pick % len(calls)]
            zones = number_zones(phone)
            zone = zones[0] if zoned and len(zones) == 1 else None
            for minutes in delays:
                due = self.clock.now() + timedelta(minutes=minutes)
                await session_callback(self.daemon.store, call_id, due, zone)
            self.said[call_id] = (3, Disposition.CALLBACK)
            event(f"{len(delays)} callback(s) booked in one call")
            await self.settle()
        self.run(go())

    @rule(number=st.sampled_from(NUMBERS), form=st.integers(0, 10), opt_out=st.booleans())
    def inbound_call(self, number: str, form: int, opt_out: bool) -> None:
        """Someone not on a call with us calls in (caller ID as the PBX writes it), and
        maybe asks to be removed."""
        async def go() -> None:
            assert self.daemon is not None
            if number in self.live_numbers():
                return
            forms = caller_id_forms(number)
            caller = forms[form % len(forms)]
            call = await inbound_start(self.daemon.store, self.clock, caller)
            self.inbound.append(call)
            if opt_out:
                await session_opt_out(self.daemon.store, self.clock, caller, source="inbound")
                self.opted_out(number)
                event("opt-out in an inbound call")
            await self.settle()
        self.run(go())

    @rule()
    def inbound_hangs_up(self) -> None:
        async def go() -> None:
            if self.inbound and self.daemon is not None:
                await inbound_end(self.daemon.store, self.clock, self.inbound.pop(0))
                await self.settle()
        self.run(go())

    @rule(number=st.sampled_from(NUMBERS), form=st.integers(0, 10))
    def operator_adds_dnc(self, number: str, form: int) -> None:
        forms = written_forms(number)
        self.run(operator_dnc(self.db, self.clock, forms[form % len(forms)]))
        self.opted_out(number)
        self.run(self.settle())

    @rule(outage=st.sampled_from([0, 3, 20, 45]))
    def ami_cut(self, outage: int) -> None:
        """The manager link drops; with an outage, logins fail for that long."""
        async def go() -> None:
            assert self.sim is not None
            event("AMI outage" if outage else "AMI cut")
            with refusing_logins(self.sim, outage > 0):
                self.sim.kill_ami_connections()
                await self.advance(outage)
            await self.advance(6)
        self.run(go())

    @rule()
    def pbx_restart(self) -> None:
        async def go() -> None:
            assert self.sim is not None
            answered = len(self.answered_calls())
            cut = await restart_pbx(self.sim, self.settle)
            if answered:
                event("PBX restart cut an answered call")
            elif cut:
                event("PBX restart cut a ringing call")
            await self.advance(6)
        self.run(go())

    @rule(nth=st.integers(0, 6), when=st.sampled_from(["before", "after"]))
    def crash_restart(self, nth: int, when: str) -> None:
        """kill -9 at the daemon's nth commit from now (0: at once), then start again."""
        async def go() -> None:
            assert self.daemon is not None
            if nth:
                self.daemon.spy.trap = CrashTrap(nth, when, self.daemon.cut_ami)
                await self.advance(60, until_frozen=True)
                if self.daemon.spy.frozen:
                    event("crashed at a commit")
            await self.daemon.crash()
            self.daemon = None
            self.inbound.clear()  # their sockets died with the process
            await self.start_daemon()
        self.run(go())

    # ---- invariants ---------------------------------------------------------------

    # One method per invariant, so that hypothesis reports each broken one on its own.
    def _found(self, which: Any) -> str:
        conn = connect(self.db)
        try:
            return "\n".join(which(conn))
        finally:
            conn.close()

    @invariant()
    def one_live_attempt_per_number(self) -> None:
        found = self._found(lambda c: one_live_per_number(attempts(c)))
        assert not found, found

    @invariant()
    def no_attempt_after_dnc(self) -> None:
        found = self._found(lambda c: no_dial_after_dnc(attempts(c), self.model,
                                                        dnc_commits(c)))
        assert not found, found

    @invariant()
    def no_attempt_outside_window(self) -> None:
        found = self._found(lambda c: inside_windows(attempts(c), self.model))
        assert not found, found

    @invariant()
    def no_calling_contact_without_live_attempt(self) -> None:
        if self.daemon is not None and self.daemon.recovered:
            found = self._found(calling_has_live_attempt)
            assert not found, found

    @invariant()
    def daemon_survives(self) -> None:
        if self.daemon is not None:
            why = self.daemon.died()
            assert why is None, f"the daemon's run() ended: {why!r}"

    def teardown(self) -> None:
        STATS["examples"] += 1
        STATS["dialled"] += self.close()


# What the run must have exercised at least once, or it proves less than it claims.
# Two callbacks in one call is a rule here too, but whether an example reaches it depends
# on the run (it never did in full-suite runs, always alone): its invariant is pinned by
# the deterministic tests test_two_due_callbacks_dial_the_contact_once and
# test_invariants_convo's second-callback-replaces-the-first.
MUST_HAPPEN = ("opt-out in a call", "opt-out in an inbound call", "crashed at a commit",
               "PBX restart cut an answered call", "AMI outage")


def test_invariants_hold_whatever_happens() -> None:
    """TELEVOX_INVARIANTS_QUICK=1 skips shrinking: a failure is found in about a minute,
    but its counterexample is not minimal."""
    STATS.clear()
    quick = os.environ.get("TELEVOX_INVARIANTS_QUICK") == "1"
    phases = (Phase.explicit, Phase.reuse, Phase.generate) if quick else tuple(Phase)
    run_state_machine_as_test(Invariants, settings=settings(
        max_examples=50, stateful_step_count=25, derandomize=True, database=None,
        deadline=None, phases=phases, suppress_health_check=list(HealthCheck)))
    # A property that never dials proves nothing: most examples must place calls.
    assert STATS["dialled"] >= 0.6 * STATS["examples"], STATS
    assert all(STATS[what] for what in MUST_HAPPEN), STATS
    assert STATS["call now placed through the daemon"] + \
        STATS["call now placed beside the daemon"], STATS
