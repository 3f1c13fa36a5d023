"""kill -9 at every commit point of the dial path, then start again: the store must still
keep its promises. A real daemon process (`python -m televox_pbx.campaigns.runner`) dials
a small campaign against the PBX simulator with TELEVOX_CRASH_AT="TAG:N:before|after",
which SIGKILLs it at the Nth commit of the transactions tagged TAG ("claim": the intent
written before an Originate; "outcome": a call's final result applied). It is started
again without the variable and must finish the campaign. Then, read from the database
and the simulator's own record:

- the four invariants of tests/invariant_model.py (one live attempt per number, none
  after DNC, none outside the window, no contact `calling` without a live attempt);
- every contact ends terminal or scheduled (pending with a time, or a callback);
- no number was originated more often than the retry policy allows, no attempt twice;
- a stored duration is NULL or the PBX's own answer-to-hangup time, never invented.

The sweep is every outcome class x tag x before/after x N = 1..4: 112 runs, 8 at a time.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from invariant_harness import pbx_times
from invariant_model import (
    CampaignSpec,
    Model,
    attempts,
    calling_has_live_attempt,
    connect,
    durations_not_invented,
    inside_windows,
    no_dial_after_dnc,
    one_live_per_number,
)
from pg_support import PgServer, fresh_database

from televox_pbx.campaigns.controls import Action, apply
from televox_pbx.campaigns.importer import import_records
from televox_pbx.config.campaign import Campaign
from televox_pbx.sim import Scenario, Simulator
from televox_pbx.sim.scenario import Behaviour, Callee
from televox_pbx.store import Store
from televox_pbx.store.campaigns import upsert_campaign

SECRET = "crash-sweep-secret"
MAX_ATTEMPTS = 2
EVERY_DAY = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
CAMPAIGN = {
    "name": "sweep", "caller_id": "+15550100000", "trunk": "trunk", "amd": True,
    "agent": {"persona_name": "Ava", "business": "Acme", "goal": "book a demo",
              "opening_line": "Hi, I'm Ava, an AI assistant calling for Acme."},
    "calling_window": {"legal_override": True, "start": "00:00", "end": "23:59:59",
                       "weekdays": EVERY_DAY},
    "timezone_policy": {"source": "number"},
    "pacing": {"calls_per_minute": 600, "max_concurrent": 3},
    "retry": {"retry_interval_minutes": 0, "max_attempts_per_phone": MAX_ATTEMPTS},
    "ring_timeout_s": 5,
}
# Outcome class -> (callee, Originates per phone the retry policy allows). Answered calls
# last 0.8 s (AMD listening), so a kill can fall inside one.
CLASSES: dict[str, tuple[Callee, int]] = {
    "completed": (Callee(behaviour=Behaviour.ANSWER, ring_s=0.1, amd_delay_s=0.8),
                  MAX_ATTEMPTS),
    "voicemail": (Callee(behaviour=Behaviour.VOICEMAIL, ring_s=0.1, amd_delay_s=0.8),
                  MAX_ATTEMPTS),
    "no_answer": (Callee(behaviour=Behaviour.NO_LISTENER), MAX_ATTEMPTS),
    "busy": (Callee(behaviour=Behaviour.BUSY), MAX_ATTEMPTS),
    "congestion": (Callee(behaviour=Behaviour.UNAVAILABLE), MAX_ATTEMPTS),
    "invalid": (Callee(behaviour=Behaviour.NOT_FOUND), 1),  # a 404 is never dialled again
}
MIXED = "mixed"
CONTACTS = 4
POOL = 8  # runs at once: each is two short-lived processes and a simulator
TERMINAL_OR_SCHEDULED = (
    "SELECT c.id, c.status, c.next_eligible_at FROM contacts c WHERE c.status IN"
    " ('calling','connected')"
    " OR (c.status = 'pending' AND c.next_eligible_at IS NULL)"
    " OR (c.status = 'callback' AND NOT EXISTS (SELECT 1 FROM callbacks b"
    "     WHERE b.contact_id = c.id AND b.status = 'pending'))")


@dataclass(frozen=True)
class Run:
    kind: str  # an outcome class, or MIXED (one contact per class)
    tag: str
    nth: int
    when: str

    @property
    def name(self) -> str:
        return f"{self.kind}/{self.tag}:{self.nth}:{self.when}"

    def callees(self) -> list[tuple[str, str]]:
        """(E.164, class) per contact."""
        kinds = list(CLASSES) if self.kind == MIXED else [self.kind] * CONTACTS
        return [(f"+1212555{i:04d}", k) for i, k in enumerate(kinds)]


@dataclass
class Result:
    run: Run
    killed: bool = False
    finished: bool = False
    problems: list[str] = field(default_factory=list)


async def _seed(db: Path | str, run: Run) -> None:
    campaign = Campaign.model_validate(CAMPAIGN)
    store = await Store.open(db)
    try:
        cid = await upsert_campaign(store, campaign)
        await import_records(store, campaign, cid,
                             [{"name": f"Lead {i}", "phone": p}
                              for i, (p, _) in enumerate(run.callees())],
                             source="test", actor="test")
        await apply(store, campaign.name, Action.START, datetime.now(UTC))
    finally:
        await store.close()


def _progress(db: Path | str, sim: Simulator) -> tuple[int, ...]:
    """Anything that moves while the campaign is being worked on."""
    conn = connect(db)
    try:
        row = conn.execute(
            "SELECT (SELECT COUNT(*) FROM call_attempts),"
            " (SELECT COUNT(*) FROM call_attempts WHERE status IN"
            "  ('intent','originated','ringing','answered'))").fetchone()
        contacts = tuple(tuple(r) for r in conn.execute(
            "SELECT status, next_eligible_at FROM contacts ORDER BY id").fetchall())
    finally:
        conn.close()
    return (len(sim.actions), len(sim.events), row[0], row[1], hash(contacts))


async def _daemon(db: Path | str, sim: Simulator, log: Path, crash_at: str | None) -> str:
    """Run the daemon until it exits, is killed, or is stuck: logged in, then nothing
    moved for 5 s, with no call up and none live in the store (then it is stopped with
    SIGTERM). Returns
    "done", "killed" (the fault injection fired), "stuck" or "exit N"."""
    env = {k: v for k, v in os.environ.items() if k != "TELEVOX_CRASH_AT"}
    env["TELEVOX_AMI_SECRET"] = SECRET
    if crash_at is not None:
        env["TELEVOX_CRASH_AT"] = crash_at
    with log.open("ab") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "televox_pbx.campaigns.runner", "--db", str(db),
            "--ami-port", str(sim.ami_port), "--max-concurrent", "3", "--exit-when-idle",
            env=env, stdout=out, stderr=out)
    loop = asyncio.get_running_loop()
    moved_at, last = loop.time(), _progress(db, sim)
    logins = len(sim.actions_named("Login"))
    for _ in range(int(60 / 0.25)):
        try:
            rc = await asyncio.wait_for(proc.wait(), 0.25)
            return {0: "done", -signal.SIGKILL: "killed"}.get(rc, f"exit {rc}")
        except TimeoutError:
            pass
        now, seen = loop.time(), _progress(db, sim)
        starting = len(sim.actions_named("Login")) == logins  # a loaded box starts slowly
        if starting or seen != last or seen[3] or sim.channels:
            moved_at, last = now, seen
        elif now - moved_at > 5.0:
            break
    proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), 10)
    except TimeoutError:
        proc.kill()
        await proc.wait()
    return "stuck"


async def _one(run: Run, root: Path, new_db: Callable[[], str] | None = None) -> Result:
    res = Result(run)
    work = root / run.name.replace("/", "-").replace(":", "-")
    work.mkdir()
    db: Path | str = work / "televox.db" if new_db is None else new_db()
    await _seed(db, run)
    callees = run.callees()
    sim = Simulator(Scenario(numbers={p: CLASSES[k][0] for p, k in callees}, timer_b_s=0.3),
                    secret=SECRET, allow_placeholder_speech=True)
    await sim.start()
    try:
        first = await _daemon(db, sim, work / "first.log", f"{run.tag}:{run.nth}:{run.when}")
        res.killed = first == "killed"
        if res.killed and run.kind in ("completed", "voicemail", MIXED):
            await asyncio.sleep(1.5)  # calls cut mid-way end while no daemon listens
        second = await _daemon(db, sim, work / "second.log", None)
        res.finished = first in ("done", "killed") and second == "done"
        if not res.finished:
            res.problems.append(f"the campaign did not finish (first run: {first},"
                                f" after the restart: {second})")
        res.problems += _judge(db, sim, callees)
    finally:
        await sim.close()
    return res


def _judge(db: Path | str, sim: Simulator, callees: list[tuple[str, str]]) -> list[str]:
    spec = CampaignSpec.from_config(CAMPAIGN)
    model = Model({spec.name: spec})
    conn = connect(db)
    try:
        rows = attempts(conn)
        found = [*one_live_per_number(rows), *no_dial_after_dnc(rows, model, {}),
                 *inside_windows(rows, model), *calling_has_live_attempt(conn),
                 *durations_not_invented(rows, pbx_times(sim), tolerance_s=1.0)]
        found += [f"contact {r['id']} ends {r['status']} with nothing scheduled"
                  for r in conn.execute(TERMINAL_OR_SCHEDULED)]
        # An attempt whose verdict died with the process (no Hangup recorded before the
        # kill) taught the daemon nothing about the number: recovery counts it and the
        # retry policy may dial that phone once more, never more than MAX_ATTEMPTS.
        lost = Counter(str(r[0]) for r in conn.execute(
            "SELECT phone FROM call_attempts WHERE failure = 'daemon_restart'"))
    finally:
        conn.close()
    originates = sim.actions_named("Originate")
    ids = Counter(m.action_id for m in originates)
    found += [f"attempt {i} was originated {n} times" for i, n in ids.items() if n > 1]
    stored = {a.id for a in rows}
    found += [f"an Originate ({i}) with no attempt in the store" for i in ids
              if i not in stored]
    per_phone = Counter((m.get("Channel") or "").removeprefix("PJSIP/").split("@")[0]
                        for m in originates)
    for phone, kind in callees:
        allowed = min(MAX_ATTEMPTS, CLASSES[kind][1] + lost[phone])
        if per_phone[phone] > allowed:
            found.append(f"{phone} ({kind}) was dialled {per_phone[phone]} times;"
                         f" the retry policy allows {allowed}")
    return found


def _sweep() -> list[Run]:
    return [Run(kind, tag, nth, when) for kind in [*CLASSES, MIXED]
            for tag in ("outcome", "claim") for when in ("before", "after")
            for nth in range(1, 5)]


async def _all(runs: list[Run], root: Path, new_db: Callable[[], str] | None = None,
               pool: int = POOL) -> list[Result]:
    gate = asyncio.Semaphore(pool)

    async def guarded(run: Run) -> Result:
        async with gate:
            return await _one(run, root, new_db)
    return list(await asyncio.gather(*(guarded(r) for r in runs)))


async def test_sigkill_at_every_commit_point_of_the_dial_path() -> None:
    runs = _sweep()
    assert len(runs) >= 100
    with tempfile.TemporaryDirectory(prefix="televox-crash-") as tmp:
        results = await _all(runs, Path(tmp))
    broken = [r for r in results if r.problems]
    killed = Counter(r.run.tag for r in results if r.killed)
    lines = [f"{r.run.name}{' (killed)' if r.killed else ''}: {p}"
             for r in broken for p in r.problems[:3]]
    assert not broken, (f"{len(broken)} of {len(runs)} runs broke an invariant (kills:"
                        f" {dict(killed)}):\n" + "\n".join(lines[:60]))
    # A sweep in which the daemon never died tested nothing: the fault-injection tags
    # must sit on the commits they name ("claim" on the intent, "outcome" on applying
    # a final result, one transaction each).
    assert sum(killed.values()) >= 100 and killed["outcome"] >= 50 and killed["claim"] >= 50, \
        f"the daemon was killed in {dict(killed)} runs of {len(runs)}"


async def test_sigkill_at_the_commit_points_on_postgresql(pg_server: PgServer) -> None:
    """The same rules on PostgreSQL: a killed process's connection drops, and the server
    rolls back whatever it had not committed. A cut of the sweep keeps CI short: both
    tags, before and after, the 1st and 2nd commit of the mixed campaign and the 1st of
    one whose calls are all answered (answered calls found the store's one connection
    used by two tasks at once, which asyncpg refuses and aiosqlite queues)."""
    runs = [Run(kind, tag, nth, when) for tag in ("outcome", "claim")
            for when in ("before", "after")
            for kind, nth in ((MIXED, 1), (MIXED, 2), ("completed", 1))]
    with tempfile.TemporaryDirectory(prefix="televox-crash-pg-") as tmp:
        results = await _all(runs, Path(tmp),
                             lambda: fresh_database(pg_server, migrated=True), pool=4)
    broken = [r for r in results if r.problems]
    killed = Counter(r.run.tag for r in results if r.killed)
    lines = [f"{r.run.name}{' (killed)' if r.killed else ''}: {p}"
             for r in broken for p in r.problems[:3]]
    assert not broken, (f"{len(broken)} of {len(runs)} runs broke an invariant (kills:"
                        f" {dict(killed)}):\n" + "\n".join(lines[:60]))
    assert killed["outcome"] >= 4 and killed["claim"] >= 4, \
        f"the daemon was killed in {dict(killed)} runs of {len(runs)}"
