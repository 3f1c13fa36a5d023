"""The one thread that owns the llama.cpp context, and the stream it hands back.

A context serves one sequence at a time, so every use of it (a reply, a prefill, the
warm-up after a reply) holds `lock`. A reply streams one piece per request of its
consumer, and between two pieces it may park (llm_park): its state is saved, the lock
given up for another call's first clause, and taken back when the scheduler says so.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

from televox_pbx.voice.engines.llm_eval import Stopped
from televox_pbx.voice.engines.llm_park import Parked, park, unpark
from televox_pbx.voice.engines.llm_states import KvStates
from televox_pbx.voice.engines.scheduler import OWNER

_DONE = object()
_PARKED = object()


class Yielder(Protocol):
    """Asked between two pieces of a stream whether it should give the context up
    (llm_park), and awaited while it is parked, until its turn comes again."""

    def should_park(self) -> bool: ...

    def wait_turn(self) -> Awaitable[None]: ...


class ContextWorker:
    def __init__(self, llama: Any, states: KvStates | None) -> None:
        self._llama = llama
        self._states = states
        # The lock serialises the context; a parked stream keeps its thread waiting.
        self.lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="llm")
        self.parked = 0  # streams that gave the context up mid-reply
        # The stop flag of the generation running on the LLM thread (read on that thread).
        self.stop_flag: threading.Event | None = None

    def submit(self, work: Callable[[], None]) -> Future[None]:
        """Background work on an LLM thread (it takes `lock` itself, then `own`s it)."""
        return self._executor.submit(work)

    def own(self, owner: str) -> None:
        """Say which call the context works for now (holding `lock`): its saved states
        are that call's."""
        if self._states is not None:
            self._states.owner = owner

    def forget(self, owner: str) -> Future[None]:
        """Drop a finished call's saved states, on an LLM thread once the context is free
        (the states are only touched there)."""
        def work() -> None:
            if self._states is not None:
                with self.lock:
                    self._states.forget(owner)
        return self._executor.submit(work)

    async def generate(self, run: Callable[[], Generator[str, None, None]],
                        yielder: Yielder | None = None, *,
                        owner: str | None = None) -> AsyncGenerator[str, None]:
        """`owner`: whose saved states this work makes ("" shared); by default the
        calling task's call (the LLM thread does not inherit its context)."""
        loop = asyncio.get_running_loop()
        owner = OWNER.get() if owner is None else owner
        queue: asyncio.Queue[object] = asyncio.Queue()
        stop = threading.Event()
        park_now = threading.Event()  # give the context up before the next piece
        # One piece is made per request of the consumer, never ahead of it: a consumer that
        # stops pulling (the session, while Piper renders the first clause) frees both
        # cores. Decoding alongside made that synthesis ~2.5x slower (60 -> 190 ms).
        wanted = threading.Semaphore(0)

        def put(item: object) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is gone: nobody is listening any more
                stop.set()

        def work() -> None:
            held = False
            pieces: Generator[str, None, None] | None = None
            try:
                self.lock.acquire()
                held = True
                if stop.is_set():
                    return
                self.stop_flag = stop
                self.own(owner)
                pieces = run()
                while _await_demand(wanted, stop):
                    if park_now.is_set():
                        park_now.clear()
                        parked: Parked = park(self._llama, self._states)
                        self.lock.release()
                        held = False
                        self.parked += 1
                        put(_PARKED)
                        if not _await_demand(wanted, stop):
                            break
                        self.lock.acquire()
                        held = True
                        self.stop_flag = stop
                        self.own(owner)
                        unpark(self._llama, self._states, parked)
                    piece = next(pieces, None)
                    if piece is None:
                        break
                    put(piece)
            except Stopped:
                pass  # the consumer left mid-prompt; nobody waits for an answer
            except BaseException as exc:  # delivered to the consumer, not lost in a thread
                put(exc)
            finally:
                try:
                    if pieces is not None:
                        if not held:  # closing touches the context (a state is saved)
                            self.lock.acquire()
                            held = True
                            self.own(owner)
                        pieces.close()
                finally:
                    if held:
                        self.lock.release()
                    put(_DONE)

        future = loop.run_in_executor(self._executor, work)
        first = True
        try:
            while True:
                if not first and yielder is not None and yielder.should_park():
                    park_now.set()
                    wanted.release()
                    item = await queue.get()
                    if item is _PARKED:
                        await yielder.wait_turn()
                    elif item is _DONE:
                        break
                    elif isinstance(item, BaseException):
                        raise item
                    else:
                        raise RuntimeError("LLM worker answered a park with a piece")
                first = False
                wanted.release()
                item = await queue.get()
                if item is _DONE:
                    break
                if isinstance(item, BaseException):
                    raise item
                assert isinstance(item, str)
                yield item
            await future
        finally:
            stop.set()
            wanted.release()  # wake the worker so it sees the stop at once

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _await_demand(wanted: threading.Semaphore, stop: threading.Event) -> bool:
    """Block until the consumer asks for the next piece; False once it has left."""
    wanted.acquire()
    return not stop.is_set()
