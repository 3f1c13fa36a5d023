"""The slow work on the callee's speech, off the session's loop: transcripts and
end-of-turn checks. Each runs as its own task and reports back as an event."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from televox_pbx.agent.hearing import screen
from televox_pbx.clock import Clock
from televox_pbx.voice import turn_events as te
from televox_pbx.voice.backchannel import own_words
from televox_pbx.voice.call_setup import Engines
from televox_pbx.voice.context import Conversation
from televox_pbx.voice.interfaces import AudioChunk

log = logging.getLogger(__name__)
RATE = 8000


@dataclass(frozen=True, slots=True)
class Verdict:
    check: int
    complete: float  # the end-of-turn model's P(complete)


class SpeechJobs:
    def __init__(self, engines: Engines, context: Conversation, clock: Clock,
                 post: Callable[[te.Transcribed | Verdict], None], call_id: str) -> None:
        self.engines = engines
        self.context = context
        self.clock = clock
        self.post = post
        self.call_id = call_id
        self._stt: dict[int, asyncio.Task[None]] = {}
        self._checks: set[asyncio.Task[None]] = set()

    @property
    def transcribing(self) -> bool:
        return bool(self._stt)

    def transcribe(self, seq: int, audio: bytes) -> None:
        self._stt[seq] = asyncio.create_task(self._transcribe(seq, audio),
                                             name=f"stt-{self.call_id}")

    def cancel(self, seq: int) -> None:
        task = self._stt.pop(seq, None)
        if task is not None:
            task.cancel()

    def delivered(self, seq: int) -> None:
        self._stt.pop(seq, None)

    def check(self, check: int, audio: bytes) -> None:
        task = asyncio.create_task(self._check(check, audio), name=f"turn-{self.call_id}")
        self._checks.add(task)
        task.add_done_callback(self._checks.discard)

    async def close(self) -> None:
        tasks = [*self._stt.values(), *self._checks]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _transcribe(self, seq: int, audio: bytes) -> None:
        try:
            heard = await self.engines.stt.transcribe(AudioChunk(audio, RATE))
            text = screen(heard, audio, RATE).text  # noise is never answered
        except Exception:
            log.exception("transcription failed", extra={"call_id": self.call_id})
            text = ""
        own = own_words(text, self.context.recent_agent_text())
        self.post(te.Transcribed(seq, text, self.clock.monotonic(), own))

    async def _check(self, check: int, audio: bytes) -> None:
        assert self.engines.turn is not None
        try:
            complete = await self.engines.turn.complete(AudioChunk(audio, RATE))
        except Exception:
            log.exception("end-of-turn model failed", extra={"call_id": self.call_id})
            return
        self.post(Verdict(check, complete))
