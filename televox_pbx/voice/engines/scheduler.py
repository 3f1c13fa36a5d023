"""Who runs next on the CPU the engines share: earliest deadline first (sans-IO core).

Every call's engine work (a transcript, an LLM piece, a clause of speech, a prefill) asks
for the resource with a stage; its deadline is the time it was asked plus the stage's
budget. The pending job with the earliest deadline runs next, so:
- the first clause of a pending reply (its transcript, its LLM pieces, its audio: the
  callee is waiting on them) goes before any continuation and before any prefill, which
  have longer budgets;
- a continuation is never starved: a job asked at t loses only to jobs whose deadline is
  earlier than its own, i.e. to first-clause work asked before t + (continuation budget -
  first budget); once the clock passes that, it runs next (`Budgets.starvation_bound_s`).
- a call's queued work is dropped at once when it no longer matters (barge-in, hang-up):
  `cancel` / `cancel_owner`.
No clock is read here except the one injected, and nothing waits: the asyncio gate
(scheduled.py) drives it.
"""

from __future__ import annotations

import contextvars
import heapq
import itertools
from dataclasses import dataclass, field
from enum import IntEnum

from televox_pbx.clock import Clock


class Stage(IntEnum):
    FIRST = 0  # the callee is waiting: a finished turn's transcript, a reply's first clause
    CONTINUATION = 1  # the rest of a reply, while its first words play
    BACKGROUND = 2  # prefill and warm-ups: nobody waits on them yet


# Which call and stage the engine work of the running task is for: the session sets OWNER
# for its tasks, the reply pipeline STAGE (FIRST until a reply's first clause is rendered).
OWNER: contextvars.ContextVar[str] = contextvars.ContextVar("televox_call", default="")
STAGE: contextvars.ContextVar[Stage] = contextvars.ContextVar("televox_stage",
                                                              default=Stage.FIRST)


@dataclass(frozen=True, slots=True)
class Budgets:
    first_s: float = 0.25
    continuation_s: float = 1.0  # about one clause of audio already queued ahead
    background_s: float = 10.0

    def of(self, stage: Stage) -> float:
        return (self.first_s, self.continuation_s, self.background_s)[stage]

    def starvation_bound_s(self, stage: Stage) -> float:
        """A job of `stage` waits behind newer work for at most this long (plus the run
        of whatever holds the resource, and of the jobs asked before it)."""
        return max(0.0, self.of(stage) - self.first_s)


@dataclass(eq=False, slots=True)
class Job:
    owner: str  # the call it is for
    stage: Stage
    asked: float
    deadline: float
    seq: int
    label: str = ""  # what it is (stt, llm, tts...), for logs and tests
    state: str = field(default="pending")  # pending, running, done, cancelled


class EdfScheduler:
    """One resource with `slots` concurrent holders (the engines share 2 cores and each
    uses both: one holder at a time)."""

    def __init__(self, clock: Clock, budgets: Budgets | None = None, slots: int = 1) -> None:
        self.clock = clock
        self.budgets = budgets or Budgets()
        self.slots = slots
        self._heap: list[tuple[float, int, Job]] = []
        self._seq = itertools.count()
        self.running: list[Job] = []

    def submit(self, owner: str, stage: Stage, label: str = "") -> Job:
        now = self.clock.monotonic()
        job = Job(owner, stage, now, now + self.budgets.of(stage), next(self._seq), label)
        heapq.heappush(self._heap, (job.deadline, job.seq, job))
        return job

    def next(self) -> Job | None:
        """The job to start now, if a slot is free and one is pending (it is then running)."""
        if len(self.running) >= self.slots:
            return None
        while self._heap:
            _, _, job = heapq.heappop(self._heap)
            if job.state == "pending":
                job.state = "running"
                self.running.append(job)
                return job
        return None

    def done(self, job: Job) -> None:
        """A running job finished (or its holder left): its slot is free."""
        if job.state == "running":
            self.running.remove(job)
        if job.state in ("running", "pending"):
            job.state = "done" if job.state == "running" else "cancelled"

    def cancel(self, job: Job) -> None:
        """Drop a job: pending, it never runs; running, its slot is freed."""
        if job.state == "running":
            self.running.remove(job)
        if job.state in ("running", "pending"):
            job.state = "cancelled"

    def cancel_owner(self, owner: str) -> list[Job]:
        """Drop every pending job of one call (barge-in, hang-up); returns them."""
        dropped = [job for _, _, job in self._heap if job.owner == owner
                   and job.state == "pending"]
        for job in dropped:
            job.state = "cancelled"
        return dropped

    def pending(self) -> list[Job]:
        return sorted((job for _, _, job in self._heap if job.state == "pending"),
                      key=lambda j: (j.deadline, j.seq))

    def should_yield(self, stage: Stage) -> bool:
        """A holder that can give the resource up between steps (a parked LLM stream),
        now doing `stage` work, should: a more urgent stage waits, or (past its first
        clause) another reply's work is overdue, so replies take turns a clause apart."""
        now = self.clock.monotonic()
        return any(job.stage < stage or (stage is not Stage.FIRST
                                         and job.stage is not Stage.BACKGROUND
                                         and job.deadline <= now)
                   for _, _, job in self._heap if job.state == "pending")

    def waiting_before(self, stage: Stage) -> bool:
        """Some pending job has a more urgent stage than `stage` (a background holder
        should give the resource up)."""
        return any(job.stage < stage for _, _, job in self._heap if job.state == "pending")
