"""The dialer loop against a fake PBX, driven by a FakeClock (no real sleeping).

50 contacts, 30 calls/min, 5 concurrent, mixed behaviours: never more than 5 at once,
originates evenly spread, breadth-first retries, every contact in the right final state.
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from dialer_support import FakeOriginator, add_dnc, make_campaign, seed

from televox_pbx.campaigns.dialer import Dialer
from televox_pbx.clock import FakeClock
from televox_pbx.domain import AmdStatus, CallOutcome, CallStatus, Disposition, OriginateRequest
from televox_pbx.store import Store
from televox_pbx.store.campaigns import get_campaign

pytestmark = pytest.mark.both_backends  # each test on SQLite and on PostgreSQL

START = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)  # Monday 10:00 in New York
WINDOW = {"start": "08:00", "end": "21:00",
          "weekdays": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]}


def campaign(**kw: object) -> object:
    base: dict[str, object] = {
        "calling_window": WINDOW,
        "timezone_policy": {"source": "fixed", "fixed_zone": "America/New_York"},
        "pacing": {"calls_per_minute": 30, "max_concurrent": 5},
        "retry": {"retry_interval_minutes": 10, "max_attempts_per_phone": 2},
    }
    base.update(kw)
    return make_campaign(**base)


def phone(i: int, pos: int) -> str:
    return f"+1212555{pos}{i:03d}"


@dataclass(order=True)
class Due:
    at: float
    seq: int
    outcome: CallOutcome = field(compare=False)
    turns: int | None = field(compare=False)
    disposition: Disposition | None = field(compare=False)


class FakePbx:
    """Decides each call's result from the contact's behaviour and the try number."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.due: list[Due] = []
        self.tries: Counter[str] = Counter()
        self.live = 0
        self.max_live = 0
        self.seq = itertools.count()
        self.originator = FakeOriginator(clock, on_send=self.on_send)

    def on_send(self, req: OriginateRequest) -> None:
        self.live += 1
        self.max_live = max(self.max_live, self.live)
        self.tries[req.phone] += 1
        i, pos = int(req.phone[-3:]), int(req.phone[-4])
        kind, try_no = i % 7, self.tries[req.phone]
        now = self.clock.now()
        ans = now + timedelta(seconds=5)
        st, turns, disp, amd = CallStatus.NO_ANSWER, None, None, None
        if kind == 0:
            st, turns, disp = CallStatus.COMPLETED, 3, Disposition.INTERESTED
        elif kind == 2 and try_no > 1:
            st, turns, disp = CallStatus.COMPLETED, 4, Disposition.NOT_INTERESTED
        elif kind == 2:
            st = CallStatus.BUSY
        elif kind == 3:
            st, amd = CallStatus.COMPLETED, AmdStatus.MACHINE
        elif kind == 4:
            st, turns, disp = CallStatus.COMPLETED, 2, Disposition.OPT_OUT
        elif kind == 5 and pos == 1:
            st, turns, disp = CallStatus.COMPLETED, 2, Disposition.WRONG_NUMBER
        elif kind == 5:
            st, turns = CallStatus.COMPLETED, 5
        elif kind == 6:
            st, turns = CallStatus.COMPLETED, 1
        answered = st is CallStatus.COMPLETED
        length = 25.0 + (i % 4) * 5
        outcome = CallOutcome(req.call_id, st, amd_status=amd, originated_at=now,
                              answered_at=ans if answered else None,
                              hangup_at=now + timedelta(seconds=length))
        heapq.heappush(self.due, Due(self.clock.monotonic() + length, next(self.seq), outcome,
                                     turns, disp))

    async def deliver(self, dialer: Dialer) -> None:
        while self.due and self.due[0].at <= self.clock.monotonic():
            d = heapq.heappop(self.due)
            self.live -= 1
            await dialer.on_outcome(d.outcome, d.turns, d.disposition)


EXPECTED = {0: ("completed", 1), 1: ("no_answer", 2), 2: ("completed", 2),
            3: ("voicemail", 4), 4: ("opted_out", 1), 5: ("completed", 2), 6: ("no_answer", 2)}


def phones_for(i: int) -> list[str]:
    return [phone(i, 1), phone(i, 2)] if i % 7 in (3, 5) else [phone(i, 1)]



async def drive(store: Store, dialer: Dialer, pbx: FakePbx, clock: FakeClock,
                name: str, limit_s: float = 4 * 3600, step: float = 0.5) -> None:
    for _ in range(int(limit_s / step)):
        await pbx.deliver(dialer)
        await dialer.tick()
        row = await get_campaign(store, name)
        assert row is not None
        if row.state == "COMPLETED":
            return
        await clock.advance(step)
    raise AssertionError("campaign did not complete")


async def test_fifty_contacts_mixed_behaviours(store: Store) -> None:
    clock = FakeClock(START)
    pbx = FakePbx(clock)
    camp = campaign(amd="asterisk")  # AMD() in the dialplan: the Originate asks for it
    await seed(store, camp, [phones_for(i) for i in range(50)])
    await add_dnc(store, phone(49, 1))  # kind 0 by behaviour, but suppressed
    dialer = Dialer(store, pbx.originator, clock, max_concurrent_global=50)
    await drive(store, dialer, pbx, clock, camp.name)

    sent = pbx.originator.sent
    assert pbx.max_live <= 5
    # Evenly spread: never two originates closer than 60/30 = 2 s, never >30 in a minute.
    gaps = [b.mono - a.mono for a, b in itertools.pairwise(sent)]
    assert min(gaps) >= 2.0 - 1e-9
    monos = [s.mono for s in sent]
    assert all(sum(1 for m in monos if t <= m < t + 60) <= 30 for t in monos)
    # Nobody on the DNC list was ever dialled.
    assert phone(49, 1) not in {s.req.phone for s in sent}

    rows = await store.fetchall("SELECT name, status, retry_pass FROM contacts ORDER BY id")
    attempts = Counter(s.req.phone[-3:] for s in sent)
    for i, r in enumerate(rows):
        if i == 49:
            assert r["status"] == "dnc"
            continue
        want_status, want_calls = EXPECTED[i % 7]
        assert (r["status"], attempts[f"{i:03d}"]) == (want_status, want_calls), i

    # Breadth-first: every first-pass call precedes every second-pass call, and within
    # pass 1 every lead's phone 1 is tried before anyone's phone 2.
    passes = {r["id"]: r for r in await store.fetchall(
        "SELECT id, retry_pass, phone_position, created_at, hangup_at FROM call_attempts")}
    by_call = [passes[s.req.call_id] for s in sent]
    pass_seq = [a["retry_pass"] for a in by_call]
    assert pass_seq == sorted(pass_seq)
    p1 = [a["phone_position"] for a in by_call if a["retry_pass"] == 1]
    assert p1 == sorted(p1)
    # The second pass waits the retry interval after the first pass's last call ended.
    last_p1_end = max(a["hangup_at"] for a in by_call if a["retry_pass"] == 1)
    first_p2 = min(a["created_at"] for a in by_call if a["retry_pass"] == 2)
    gap = (datetime.fromisoformat(first_p2) - datetime.fromisoformat(last_p1_end))
    assert gap >= timedelta(minutes=10)

    # Every attempt ended; the originate carried a fresh id and the AMD flag.
    assert await store.fetchone(
        "SELECT 1 FROM call_attempts WHERE status IN ('intent','originated')") is None
    assert len({s.req.call_id for s in sent}) == len(sent)
    assert all(s.req.variables["TELEVOX_AMD"] == "1" for s in sent)


async def test_pause_stops_new_calls_and_resume_has_no_burst(store: Store) -> None:
    from televox_pbx.campaigns.controls import Action, apply

    clock = FakeClock(START)
    pbx = FakePbx(clock)
    camp = campaign(pacing={"calls_per_minute": 6, "max_concurrent": 5})
    await seed(store, camp, [[phone(i * 7, 1)] for i in range(10)])  # all kind 0
    dialer = Dialer(store, pbx.originator, clock)
    for _ in range(30):
        await pbx.deliver(dialer)
        await dialer.tick()
        await clock.advance(1)
    before = len(pbx.originator.sent)
    assert before == 3  # t=0, 10, 20
    await apply(store, camp.name, Action.PAUSE, clock.now())
    for _ in range(120):
        await pbx.deliver(dialer)
        await dialer.tick()
        await clock.advance(1)
    assert len(pbx.originator.sent) == before
    await apply(store, camp.name, Action.RESUME, clock.now())
    for _ in range(25):
        await pbx.deliver(dialer)
        await dialer.tick()
        await clock.advance(1)
    # One now, one 10 s later, one at 20 s: no catch-up for the paused two minutes.
    assert len(pbx.originator.sent) == before + 3


async def test_outside_window_holds_until_open(store: Store) -> None:
    clock = FakeClock(datetime(2026, 1, 5, 12, 0, tzinfo=UTC))  # 07:00 New York
    pbx = FakePbx(clock)
    camp = campaign(calling_window={"start": "09:00", "end": "20:00"})
    await seed(store, camp, [[phone(0, 1)]])
    dialer = Dialer(store, pbx.originator, clock)
    await dialer.tick()
    assert pbx.originator.sent == []
    row = await store.fetchone("SELECT status, next_eligible_at FROM contacts")
    assert row is not None and row["status"] == "pending"
    assert row["next_eligible_at"].startswith("2026-01-05T14:00:00")
    await clock.advance(2 * 3600)
    await dialer.tick()
    assert len(pbx.originator.sent) == 1
    assert pbx.originator.sent[0].at == datetime(2026, 1, 5, 14, 0, tzinfo=UTC)


async def test_global_concurrency_across_campaigns(store: Store) -> None:
    clock = FakeClock(START)
    pbx = FakePbx(clock)
    for name in ("one", "two"):
        c = campaign(name=name, pacing={"calls_per_minute": 60, "max_concurrent": 3})
        await seed(store, c, [[f"+1212555{name == 'one':d}{i:03d}"] for i in range(5)])
    dialer = Dialer(store, pbx.originator, clock, max_concurrent_global=4)
    for _ in range(20):
        await dialer.tick()
        await clock.advance(1)
    assert pbx.max_live == 4 and len(pbx.originator.sent) == 4


async def test_run_now_ignores_pacing_but_not_concurrency(store: Store) -> None:
    from televox_pbx.campaigns.controls import Action, apply

    clock = FakeClock(START)
    pbx = FakePbx(clock)
    camp = campaign(pacing={"calls_per_minute": 1, "max_concurrent": 4})
    await seed(store, camp, [[phone(i * 7, 1)] for i in range(10)])
    dialer = Dialer(store, pbx.originator, clock)
    await dialer.tick()
    assert len(pbx.originator.sent) == 1
    await apply(store, camp.name, Action.RUN_NOW, clock.now())
    await dialer.tick()
    assert len(pbx.originator.sent) == 4
    row = await get_campaign(store, camp.name)
    assert row is not None and not row.run_now_requested


async def test_originate_carries_the_callee_zone_only_when_unambiguous(store: Store) -> None:
    """The agent books callbacks in the callee's zone: the contact's column narrows a
    number spanning zones, a one-zone number gives its zone, and a number spanning zones
    gives none, not a guess. A column the number contradicts holds the contact."""
    clock = FakeClock(START + timedelta(hours=3))  # 13:00 New York, 10:00 Los Angeles
    c = make_campaign(calling_window={"start": "09:00", "end": "20:00"},
                      pacing={"calls_per_minute": 60, "max_concurrent": 5})
    # +1 212 is New York only; +1 208 is Boise and Los Angeles.
    await seed(store, c, [["+12125550100"], ["+12125550101"], ["+12085550102"],
                          ["+12085550104"]],
               timezones=["America/Chicago", None, None, "America/Los_Angeles"])
    orig = FakeOriginator(clock)
    dialer = Dialer(store, orig, clock)
    for _ in range(5):
        await dialer.tick()
        await clock.advance(2)
    zones = {s.req.phone: s.req.variables.get("TELEVOX_ZONE") for s in orig.sent}
    assert zones == {"+12125550101": "America/New_York", "+12085550102": None,
                     "+12085550104": "America/Los_Angeles"}
