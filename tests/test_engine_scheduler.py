"""The engines' scheduler: earliest deadline first on a FakeClock (a reply's first clause
before continuations and prefill, continuations never starved past their bound, queued
work dropped on barge-in), the asyncio gate, STT batching and a parked LLM stream."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from televox_pbx.clock import FakeClock
from televox_pbx.voice.engines.llm_llama import LlamaLlm
from televox_pbx.voice.engines.scheduled import Cancelled, EngineScheduler, Gate, ScheduledStt
from televox_pbx.voice.engines.scheduler import OWNER, STAGE, Budgets, EdfScheduler, Stage
from televox_pbx.voice.interfaces import AudioChunk, ChatMessage, Transcript

F, C, B = Stage.FIRST, Stage.CONTINUATION, Stage.BACKGROUND


# --- the sans-IO core -----------------------------------------------------------------

def test_first_clause_before_continuation_before_prefill() -> None:
    core = EdfScheduler(FakeClock())
    busy = core.submit("a", C)
    assert core.next() is busy and core.next() is None  # one holder at a time
    for owner, stage in (("b", B), ("c", C), ("d", F), ("e", F)):
        core.submit(owner, stage)
    core.done(busy)
    order = []
    while (job := core.next()) is not None:
        order.append(job.owner)
        core.done(job)
    assert order == ["d", "e", "c", "b"]  # equal stages keep their order


async def test_a_continuation_is_not_starved_past_its_bound() -> None:
    clock = FakeClock()
    budgets = Budgets(first_s=0.25, continuation_s=1.0)
    core = EdfScheduler(clock, budgets)
    core.next()  # nothing yet
    running = core.submit("other", F)
    assert core.next() is running
    waiting = core.submit("a", C)
    step, ran_at = 0.1, None
    for i in range(100):  # a first clause arrives every 0.1 s and runs 0.1 s
        core.submit(f"f{i}", F)
        await clock.advance(step)
        core.done(running)
        running = core.next()
        assert running is not None
        if running is waiting:
            ran_at = clock.monotonic()
            break
    assert ran_at is not None
    assert ran_at <= waiting.asked + budgets.starvation_bound_s(C) + 2 * step + 1e-9


def test_cancel_owner_drops_only_that_calls_pending_work() -> None:
    core = EdfScheduler(FakeClock())
    running = core.submit("a", F)
    core.next()
    a2, b1, a3 = core.submit("a", C), core.submit("b", F), core.submit("a", F)
    assert set(core.cancel_owner("a")) == {a2, a3}
    assert running.state == "running"  # what runs finishes its piece
    core.done(running)
    assert core.next() is b1 and core.next() is None
    core.cancel(b1)  # a running job cancelled frees its slot
    assert core.running == []


def test_waiting_before() -> None:
    core = EdfScheduler(FakeClock())
    core.submit("a", C)
    core.next()
    assert not core.waiting_before(C)
    core.submit("b", F)
    assert core.waiting_before(C) and not core.waiting_before(F)


async def test_continuations_take_turns_once_overdue() -> None:
    clock = FakeClock()
    core = EdfScheduler(clock, Budgets(first_s=0.25, continuation_s=1.0))
    core.submit("a", C)
    core.next()
    core.submit("b", C)
    assert not core.should_yield(C)  # b is not overdue yet: a goes on
    assert not core.should_yield(F)  # a first clause is never parked for it
    await clock.advance(1.0)
    assert core.should_yield(C)
    core.submit("c", B)
    assert not EdfScheduler(clock).should_yield(C)


# --- the asyncio gate -----------------------------------------------------------------

async def test_gate_grants_in_deadline_order() -> None:
    gate = Gate("cpu", FakeClock())
    order: list[str] = []
    hold = await gate.acquire(C)

    async def work(name: str, stage: Stage) -> None:
        OWNER.set(name)
        async with gate.slot(stage):
            order.append(name)

    tasks = [asyncio.create_task(work(n, s)) for n, s in
             (("prefill", B), ("rest", C), ("first", F))]
    await asyncio.sleep(0)
    gate.release(hold)
    await asyncio.gather(*tasks)
    assert order == ["first", "rest", "prefill"]


async def test_barge_in_drops_queued_work() -> None:
    gate = Gate("cpu", FakeClock())
    hold = await gate.acquire(F)
    OWNER.set("call-1")
    waiter = asyncio.create_task(gate.acquire(C))
    cancelled_task = asyncio.create_task(gate.acquire(C))
    await asyncio.sleep(0)
    cancelled_task.cancel()  # the reply task was cancelled (barge-in)
    with pytest.raises(asyncio.CancelledError):
        await cancelled_task
    assert gate.cancel_owner("call-1") == 1
    with pytest.raises(Cancelled):
        await waiter
    gate.release(hold)
    assert gate.core.running == [] and gate.core.pending() == []


async def test_a_first_job_preempts_background_work() -> None:
    gate = Gate("llm", FakeClock())
    preempted: list[str] = []
    OWNER.set("a")
    prefill = await gate.acquire(B, on_preempt=lambda: preempted.append("prefill"))
    own = asyncio.create_task(gate.acquire(F))
    later = asyncio.create_task(_as("b", gate.acquire(C)))
    await asyncio.sleep(0)
    assert preempted == []  # its own reply and another's continuation wait their turn
    first = asyncio.create_task(_as("b", gate.acquire(F)))
    await asyncio.sleep(0)
    assert preempted == ["prefill"]
    gate.release(prefill)
    gate.release(await own)
    gate.release(await first)
    gate.release(await later)


async def _as(owner: str, work: Any) -> Any:
    OWNER.set(owner)
    return await work


# --- STT batching ---------------------------------------------------------------------

class _BatchStt:
    def __init__(self) -> None:
        self.batches: list[list[bytes]] = []

    async def transcribe(self, audio: AudioChunk) -> Transcript:
        self.batches.append([audio.pcm])
        return Transcript(audio.pcm.decode())

    async def transcribe_batch(self, audios: list[AudioChunk]) -> list[Transcript]:
        self.batches.append([a.pcm for a in audios])
        return [Transcript(a.pcm.decode()) for a in audios]


async def test_transcripts_waiting_together_go_as_one_batch() -> None:
    gate = Gate("cpu", FakeClock())
    inner = _BatchStt()
    stt = ScheduledStt(inner, gate)
    hold = await gate.acquire(C)  # another call's piece is running
    tasks = [asyncio.create_task(stt.transcribe(AudioChunk(t, 8000))) for t in
             (b"aa", b"bb", b"cc")]
    await asyncio.sleep(0)
    gate.release(hold)
    got = await asyncio.gather(*tasks)
    assert [t.text for t in got] == ["aa", "bb", "cc"]
    assert inner.batches == [[b"aa", b"bb", b"cc"]]
    assert gate.core.running == [] and gate.core.pending() == []
    assert (await stt.transcribe(AudioChunk(b"dd", 8000))).text == "dd"  # alone: one clip
    assert inner.batches[-1] == [b"dd"]


class _SlowBatchStt(_BatchStt):
    def __init__(self) -> None:
        super().__init__()
        self.go = asyncio.Event()

    async def transcribe_batch(self, audios: list[AudioChunk]) -> list[Transcript]:
        await self.go.wait()
        return await super().transcribe_batch(audios)


async def test_a_batch_outlives_the_call_that_started_it() -> None:
    """The call whose task took the batch hangs up (its transcribe is cancelled) while the
    batch decodes: the other call's audio in it still gets its transcript. Cancelling that
    decode used to leave the other call waiting, then fail it with a ValueError."""
    gate = Gate("cpu", FakeClock())
    inner = _SlowBatchStt()
    stt = ScheduledStt(inner, gate)
    hold = await gate.acquire(C)
    first = asyncio.create_task(stt.transcribe(AudioChunk(b"aa", 8000)))
    await asyncio.sleep(0)
    other = asyncio.create_task(stt.transcribe(AudioChunk(b"bb", 8000)))
    for _ in range(3):
        await asyncio.sleep(0)
    gate.release(hold)
    for _ in range(5):
        await asyncio.sleep(0)
    first.cancel()  # the first call is gone, mid-decode
    for _ in range(3):
        await asyncio.sleep(0)
    inner.go.set()
    assert (await other).text == "bb"
    assert inner.batches == [[b"aa", b"bb"]]
    with pytest.raises(asyncio.CancelledError):
        await first
    assert (await stt.transcribe(AudioChunk(b"cc", 8000))).text == "cc"


# --- a parked LLM stream ----------------------------------------------------------------

class _ContextLlama:
    """A llama double with a token context (what parking saves and puts back)."""

    def __init__(self, pieces: list[str]) -> None:
        self.pieces = pieces
        self.input_ids = np.zeros(64, dtype=np.intc)
        self.n_tokens = 0

    def create_chat_completion(self, messages: list[dict[str, str]],
                               **kwargs: Any) -> Iterator[dict[str, Any]]:
        return self._gen()

    def _gen(self) -> Iterator[dict[str, Any]]:
        for piece in self.pieces:
            yield {"choices": [{"delta": {"content": piece}}]}


class _ParkOnce:
    def __init__(self) -> None:
        self.asked = 0
        self.resume = asyncio.Event()
        self.parked = asyncio.Event()

    def should_park(self) -> bool:
        self.asked += 1
        return self.asked == 2  # before the third piece

    async def wait_turn(self) -> None:
        self.parked.set()
        await self.resume.wait()


async def test_a_parked_stream_lets_another_reply_use_the_context() -> None:
    llm = LlamaLlm(_ContextLlama(["a1 ", "a2 ", "a3 ", "a4"]))
    yielder = _ParkOnce()
    first: list[str] = []

    async def call_a() -> None:
        stream = llm.stream([ChatMessage("user", "a")], yielder=yielder)
        async for delta in stream:
            first.append(delta.text)

    task = asyncio.create_task(call_a())
    await yielder.parked.wait()
    assert first == ["a1 ", "a2 "]
    other = [d.text async for d in llm.stream([ChatMessage("user", "b")])]
    assert other == ["a1 ", "a2 ", "a3 ", "a4"]  # the whole reply ran while A was parked
    yielder.resume.set()
    await task
    assert first == ["a1 ", "a2 ", "a3 ", "a4"] and llm.parked == 1
    llm.close()


async def test_scheduled_llm_stage_follows_the_reply() -> None:
    from voice_fake_engines import ScriptedLlm

    sched = EngineScheduler.create(FakeClock())
    inner = ScriptedLlm(replies=["One two three."])
    wrapped = sched.wrap_llm(inner)
    stages: list[Stage] = []
    async for _ in wrapped.stream([ChatMessage("user", "x")]):
        stages.append(sched.cpu.granted[-1].stage)
        STAGE.set(C)  # the first clause is out: what follows is a continuation
    assert stages[0] is F and set(stages[1:]) == {C}
    assert sched.llm.core.running == [] and sched.cpu.core.running == []


# --- two calls on one set of engines --------------------------------------------------

async def test_two_calls_share_one_model_per_engine_through_the_scheduler() -> None:
    from voice_fakes import (
        FRAME_BYTES,
        FRAME_SECONDS,
        FakeCall,
        FakeCallbacks,
        FakeDnc,
        LoudnessVad,
        MemoryCallLog,
        ScriptedLlm,
        ScriptedStt,
        ScriptedTts,
        tone,
    )

    from televox_pbx.config.campaign import Campaign
    from televox_pbx.voice.session import CallPorts, Engines, SessionConfig
    from televox_pbx.voice.session_factory import VoiceSessionFactory

    campaign = Campaign.model_validate({
        "name": "two", "caller_id": "+15550100000", "trunk": "trunk",
        "agent": {"persona_name": "Ava", "business": "Acme Solar",
                  "opening_line": "Hi, this is Ava, an AI assistant from Acme Solar.",
                  "goal": "Book a consultation."}})
    clock = FakeClock()
    stt = ScriptedStt(["Yes, tell me more.", "Yes, tell me more."], clock=clock, delay_s=0.1)
    llm = ScriptedLlm(["Great, it is free.", "Great, it is free."], clock=clock,
                      first_token_s=0.05, per_token_s=0.02)
    tts = ScriptedTts(clock=clock, delay_s=0.05)
    sched = EngineScheduler.create(clock)
    engines = sched.wrap(Engines(LoudnessVad(), stt, llm, tts))
    factory = VoiceSessionFactory(engines, CallPorts(FakeDnc(clock), FakeCallbacks(),
                                                     MemoryCallLog()), clock, SessionConfig())
    calls = [FakeCall(clock, f"00000000-0000-4000-8000-00000000000{i}") for i in (1, 2)]
    sessions = [factory.create(campaign=campaign, call_id=c.call_id, phone="+15550198000")
                for c in calls]
    assert sessions[0].engines is sessions[1].engines is engines  # one model per engine
    tasks = [asyncio.create_task(s(c)) for s, c in zip(sessions, calls, strict=True)]
    tasks += [asyncio.create_task(c.pacer()) for c in calls]

    async def until(predicate: Any, limit_s: float = 30.0) -> None:
        start = clock.monotonic()
        while not predicate():
            assert clock.monotonic() - start < limit_s
            await clock.advance(FRAME_SECONDS)

    await until(lambda: all(c.output.queued_seconds == 0 and s._task is None
                            for s, c in zip(sessions, calls, strict=True))
                and len(tts.spoken) >= 2)
    frames = [len(c.output.audio_frames()) for c in calls]
    speech = tone(1.0, 6000.0, 180.0)
    for i in range(0, len(speech), FRAME_BYTES):  # both callees speak at once
        for c in calls:
            c.push_audio(speech[i:i + FRAME_BYTES])
        await clock.advance(FRAME_SECONDS)
    await until(lambda: all(len(c.output.audio_frames()) > n for c, n in
                            zip(calls, frames, strict=True)))
    assert len(stt.heard) == 2 and len(llm.calls) == 2
    assert all(msgs[-1].content == "Yes, tell me more." for msgs in llm.calls)
    await until(lambda: not sched.cpu.core.running and not sched.llm.core.running)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
