"""The engines behind one scheduler, shared by every call (one model per engine).

The LLM, STT, TTS and end-of-turn engines each use both cores of the box, so running two
at once only makes both slower. Here every unit of their work (an utterance, an LLM piece,
a clause of speech, a prefill) first takes the one CPU `Gate`, in earliest-deadline-first
order (scheduler.py): a reply's first clause before any continuation and before prefill.

- Which call and stage a piece of work is for comes from context variables: `OWNER` is set
  by the session for its tasks, `STAGE` by the reply pipeline (FIRST until a reply's first
  clause is rendered, then CONTINUATION). Default: FIRST, an unknown owner.
- The llama.cpp context serves one sequence at a time: an LLM stream holds the `llm` gate
  (EDF too: a reply before a prefill) from its first piece to its last, and takes the CPU
  gate per piece, so another call's transcript or first clause runs between two pieces.
- Transcripts waiting at once are decoded in one batch (whisper over several calls' audio:
  bench/bench_stt_batch.py: 2 clips in 0.75x the time of one after the other).
- A prefill (background) holds the LLM context, not the CPU gate, and is cancelled when
  another call's reply asks for the context; the LLM's own warm-up of a call's next prompt
  is stopped when a reply takes the context (LlamaLlm.cancel_background).
- Task cancellation (barge-in, hang-up) drops a call's queued work; `cancel(owner)` too.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from televox_pbx.clock import Clock
from televox_pbx.voice.call_setup import Engines
from televox_pbx.voice.engines.scheduler import OWNER, STAGE, Budgets, EdfScheduler, Job, Stage
from televox_pbx.voice.interfaces import (
    AudioChunk,
    ChatMessage,
    Llm,
    LlmDelta,
    Stt,
    Transcript,
    Tts,
    TurnModel,
)

MAX_STT_BATCH = 4


class Cancelled(Exception):
    """The work was dropped from the queue (its call cancelled it)."""


class Gate:
    """The asyncio side of one EdfScheduler: `async with gate.slot(stage):`."""

    def __init__(self, name: str, clock: Clock, budgets: Budgets | None = None) -> None:
        self.name = name
        self.core = EdfScheduler(clock, budgets)
        self._waiters: dict[Job, asyncio.Future[None]] = {}
        self._preempt: dict[Job, Callable[[], None]] = {}
        self.granted: list[Job] = []  # the order work ran in (tests; trimmed)

    async def acquire(self, stage: Stage | None = None, *, label: str = "",
                      on_preempt: Callable[[], None] | None = None) -> Job:
        """Wait for the resource; `release` the job after. `on_preempt` is called (on the
        loop) when another call's FIRST job asks while this one, a BACKGROUND job, holds
        it."""
        stage = STAGE.get() if stage is None else stage
        job = self.core.submit(OWNER.get(), stage, label)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters[job] = future
        if stage is Stage.FIRST:
            for holder in list(self.core.running):
                callback = self._preempt.get(holder)
                # A call's own prefill is the start of its reply: it goes on.
                if holder.stage is Stage.BACKGROUND and callback is not None \
                        and holder.owner != job.owner:
                    callback()
        self._pump()
        try:
            await future
        except BaseException:
            self._waiters.pop(job, None)
            self.core.cancel(job)
            self._pump()
            raise
        if on_preempt is not None:
            self._preempt[job] = on_preempt
        return job

    def release(self, job: Job) -> None:
        self._preempt.pop(job, None)
        self.core.done(job)
        self._pump()

    @contextlib.asynccontextmanager
    async def slot(self, stage: Stage | None = None, *, label: str = "",
                   on_preempt: Callable[[], None] | None = None) -> AsyncIterator[Job]:
        job = await self.acquire(stage, label=label, on_preempt=on_preempt)
        try:
            yield job
        finally:
            self.release(job)

    def cancel_owner(self, owner: str) -> int:
        dropped = self.core.cancel_owner(owner)
        for job in dropped:
            future = self._waiters.pop(job, None)
            if future is not None and not future.done():
                future.set_exception(Cancelled(owner))
        return len(dropped)

    def _pump(self) -> None:
        while (job := self.core.next()) is not None:
            future = self._waiters.pop(job, None)
            if future is None or future.done():  # its waiter left already
                self.core.done(job)
                continue
            self.granted.append(job)
            del self.granted[:-64]
            future.set_result(None)


@dataclass(slots=True)
class EngineScheduler:
    """One per process: the CPU gate every engine takes, and the LLM context's gate."""

    cpu: Gate
    llm: Gate

    @classmethod
    def create(cls, clock: Clock, budgets: Budgets | None = None) -> EngineScheduler:
        return cls(Gate("cpu", clock, budgets), Gate("llm", clock, budgets))

    def wrap(self, engines: Engines) -> Engines:
        return replace(engines, stt=ScheduledStt(engines.stt, self.cpu),
                       llm=ScheduledLlm(engines.llm, self),
                       tts=ScheduledTts(engines.tts, self.cpu),
                       voices={v: ScheduledTts(t, self.cpu) for v, t in engines.voices.items()},
                       turn=None if engines.turn is None
                       else ScheduledTurn(engines.turn, self.cpu))

    def wrap_llm(self, llm: Llm) -> ScheduledLlm:
        return ScheduledLlm(llm, self)

    def cancel(self, owner: str) -> int:
        """Drop every queued job of one call; returns how many."""
        return self.cpu.cancel_owner(owner) + self.llm.cancel_owner(owner)


class ScheduledStt:
    """Transcripts at stage FIRST; those waiting together go as one batch when the engine
    can (`transcribe_batch`): the first to get the CPU takes the others along."""

    def __init__(self, inner: Stt, cpu: Gate, max_batch: int = MAX_STT_BATCH) -> None:
        self.inner = inner
        self.cpu = cpu
        self.max_batch = max_batch
        self._queue: list[tuple[AudioChunk, asyncio.Future[Transcript]]] = []
        self._serving: set[asyncio.Task[None]] = set()  # held: a decode may outlive its caller
        self.batches: list[int] = []  # the size of each decode (trimmed)

    async def transcribe(self, audio: AudioChunk) -> Transcript:
        future: asyncio.Future[Transcript] = asyncio.get_running_loop().create_future()
        item = (audio, future)
        self._queue.append(item)
        decoding = asyncio.Event()  # set once `serve` holds a batch (maybe others' audio)
        serve = asyncio.create_task(self._serve(item, decoding))
        self._serving.add(serve)
        serve.add_done_callback(self._serving.discard)
        try:
            await asyncio.wait((future, serve), return_when=asyncio.FIRST_COMPLETED)
            if not future.done():
                await serve  # it failed, or another batch holds our audio: wait for that
            return await future
        finally:
            if item in self._queue:
                self._queue.remove(item)
            # Not yet decoding: withdraw (our audio went in another call's batch, or we
            # were cancelled). Decoding: let it finish, for the other calls in its batch.
            if not serve.done() and not decoding.is_set():
                serve.cancel()

    async def _serve(self, first: tuple[AudioChunk, asyncio.Future[Transcript]],
                     decoding: asyncio.Event) -> None:
        async with self.cpu.slot(Stage.FIRST, label="stt"):
            # With several slots, another batch may have taken `first` and still be at it.
            if first[1].done() or first not in self._queue:
                return
            others = [i for i in self._queue if i is not first and not i[1].done()]
            batch = [first, *others[: self.max_batch - 1]]
            for item in batch:
                self._queue.remove(item)
            decoding.set()
            self.batches.append(len(batch))
            del self.batches[:-64]
            many = getattr(self.inner, "transcribe_batch", None)
            try:
                if many is not None and len(batch) > 1:
                    results: list[Transcript] = await many([a for a, _ in batch])
                else:
                    results = [await self.inner.transcribe(a) for a, _ in batch]
            except BaseException as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc if isinstance(exc, Exception)
                                             else RuntimeError("transcription stopped"))
                if isinstance(exc, Exception):
                    return
                raise
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)


class ScheduledTurn:
    def __init__(self, inner: TurnModel, cpu: Gate) -> None:
        self.inner = inner
        self.cpu = cpu

    async def complete(self, audio: AudioChunk) -> float:
        async with self.cpu.slot(Stage.FIRST, label="turn"):
            return await self.inner.complete(audio)


class ScheduledTts:
    """Each piece of speech at the caller's STAGE for its first piece, CONTINUATION after."""

    def __init__(self, inner: Tts, cpu: Gate) -> None:
        self.inner = inner
        self.cpu = cpu
        self.sample_rate = inner.sample_rate

    async def synthesize(self, text: str) -> AsyncIterator[AudioChunk]:
        stage = STAGE.get()
        stream = self.inner.synthesize(text)
        try:
            while True:
                async with self.cpu.slot(stage, label="tts"):
                    try:
                        chunk = await anext(stream)
                    except StopAsyncIteration:
                        return
                yield chunk
                stage = Stage.CONTINUATION
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()


class ScheduledLlm:
    """The LLM context for a whole stream (a reply before any prefill), the CPU per piece."""

    def __init__(self, inner: Llm, scheduler: EngineScheduler) -> None:
        self.inner = inner
        self.scheduler = scheduler
        cancel = getattr(inner, "cancel_background", None)
        self._cancel_background: Callable[[], None] = cancel if callable(cancel) else _nothing

    async def stream(self, messages: Sequence[ChatMessage],
                     tools_schema: dict[str, Any] | None = None) -> AsyncIterator[LlmDelta]:
        cpu, llm = self.scheduler.cpu, self.scheduler.llm
        held = [await llm.acquire(Stage.FIRST, label="llm-context")]
        cancel_background = self._cancel_background
        cancel_background()  # the last reply's warm-up of its next prompt waits; this runs
        piece: list[Job | None] = [None]  # the CPU slot of the piece being made

        class Turn:
            """Parks this stream when a more urgent reply waits for the context."""

            def should_park(self) -> bool:
                return llm.core.should_yield(STAGE.get())

            async def wait_turn(self) -> None:
                """Parked: both gates go to the waiting reply; back in EDF order."""
                if piece[0] is not None:
                    cpu.release(piece[0])
                    piece[0] = None
                llm.release(held[0])
                held[0] = await llm.acquire(label="llm-context")
                cancel_background()
                piece[0] = await cpu.acquire(label="llm")

        parks = bool(getattr(self.inner, "parks", False))
        stream = (self.inner.stream(messages, tools_schema, yielder=Turn())  # type: ignore[call-arg]
                  if parks else self.inner.stream(messages, tools_schema))
        try:
            while True:
                piece[0] = await cpu.acquire(label="llm")
                try:
                    delta = await anext(stream)
                except StopAsyncIteration:
                    return
                finally:
                    if piece[0] is not None:
                        cpu.release(piece[0])
                        piece[0] = None
                yield delta
        finally:
            try:
                aclose = getattr(stream, "aclose", None)
                if aclose is not None:
                    await aclose()
            finally:
                llm.release(held[0])

    async def prefill(self, messages: Sequence[ChatMessage],
                      tools_schema: dict[str, Any] | None = None, **options: Any) -> None:
        prefill = getattr(self.inner, "prefill", None)
        if prefill is None:
            return
        task = asyncio.current_task()
        assert task is not None
        preempted = [False]

        def preempt() -> None:  # a call is waiting on the CPU: this can wait
            preempted[0] = True
            task.cancel()
        try:
            # The context only: holding the CPU gate for a prefill's seconds would hold up
            # every other call's transcripts and speech; cancelling it for them lost the
            # work its own first reply needs (measured: the first reply took the prompt).
            async with self.scheduler.llm.slot(Stage.BACKGROUND, label="prefill",
                                               on_preempt=preempt):
                await prefill(messages, tools_schema, **options)
        except asyncio.CancelledError:
            if not preempted[0] or task.uncancel() > 0:
                raise  # cancelled by its caller, not preempted

    def __getattr__(self, name: str) -> Any:  # counters and tuning of the real engine
        return getattr(self.inner, name)


def _nothing() -> None:
    return None
