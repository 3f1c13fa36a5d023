"""The call summary: after an answered call hangs up, the local LLM writes a few sentences
for the CRM, off the call's critical path.

A background worker, driven by the store (a summary lost to a restart is simply written
later): it takes the oldest answered call without a summary, but only once no call has
been live or dialled for `settle_s`, because the one LLM serves the calls and a reply must
never wait behind a summary. When a call starts mid-summary the generation is stopped
(the engine stops within a token; the prompt's evaluation, a few seconds at most, is not
cut short, and falls in the new call's ringing) and the summary is written again later.
A summary that fails `max_tries` times is marked failed and left alone. Calls that hung
up more than `max_age_days` ago are not summarised (a store upgraded with months of
calls would keep the CPU busy for hours).
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta

from televox_pbx.clock import Clock
from televox_pbx.store.call_summaries import calls_to_summarize, save_summary
from televox_pbx.store.db import Store
from televox_pbx.store.transcripts import TurnRow, transcript
from televox_pbx.voice.interfaces import ChatMessage, Llm

log = logging.getLogger(__name__)

SYSTEM = ("You write call summaries for a CRM. In at most three short sentences, say what "
          "the call was about, how the person responded, and any follow-up they asked for "
          "(a callback time, an email, no more calls). Plain text, no lists, no phone "
          "numbers, nothing that was not said.")
MAX_TRANSCRIPT_CHARS = 3000  # the prompt's share of the transcript: its start and its end
MAX_SUMMARY_CHARS = 600
_NUMBER = re.compile(r"\+?\d[\d\s().-]{5,}\d")
Busy = Callable[[], Awaitable[bool]]
POLL_S = 5.0  # how often the queue is looked at
SETTLE_S = 10.0  # how long no call must have been live or dialled before a summary


def summary_prompt(turns: Sequence[TurnRow]) -> list[ChatMessage]:
    lines = [f"{'Agent' if t.speaker == 'agent' else 'Person'}: {t.text.strip()}"
             for t in turns if t.speaker in ("agent", "callee") and t.text.strip()]
    text = "\n".join(lines)
    if len(text) > MAX_TRANSCRIPT_CHARS:
        half = MAX_TRANSCRIPT_CHARS // 2
        text = f"{text[:half]}\n[...]\n{text[-half:]}"
    return [ChatMessage("system", SYSTEM),
            ChatMessage("user", f"Transcript of the call:\n{text}\n\nSummary:")]


def clean_summary(text: str) -> str:
    """One paragraph, digit runs that could be a phone number masked, cut at a sentence
    end within MAX_SUMMARY_CHARS."""
    text = _NUMBER.sub("[number]", " ".join(text.split()))
    if len(text) > MAX_SUMMARY_CHARS:
        cut = text[:MAX_SUMMARY_CHARS]
        end = max(cut.rfind(". "), cut.rfind("! "), cut.rfind("? "))
        text = cut[:end + 1] if end > 0 else cut.rstrip() + "..."
    return text


class Preempted(Exception):
    """A call went live while the summary was being written."""


class SummaryWorker:
    def __init__(self, store: Store, llm: Llm, clock: Clock, busy: Busy, *,
                 poll_s: float | None = None, settle_s: float | None = None,
                 max_tries: int = 3,
                 check_every: int = 1, max_age_days: float = 7.0) -> None:
        """`busy`: whether a call is live or being dialled (then nothing is generated).
        `check_every`: pieces generated between two looks at `busy`."""
        self._store = store
        self._llm = llm
        self._clock = clock
        self._busy = busy
        self.poll_s = POLL_S if poll_s is None else poll_s
        self.max_tries = max_tries
        self._check_every = check_every
        self.settle_s = SETTLE_S if settle_s is None else settle_s
        self.max_age = timedelta(days=max_age_days)
        self._idle_since: float | None = None
        self._tries: dict[str, int] = {}
        self.written = 0
        self.preempted = 0

    async def run(self) -> None:
        while True:
            try:
                await self.step()
            except Exception:
                log.exception("call summary step failed; will retry")
            await self._clock.sleep(self.poll_s)

    async def step(self) -> int:
        """Summarise the calls waiting, oldest first, while no call is live; returns how
        many were written."""
        written = 0
        if not await self._settled():
            return 0
        while not await self._busy():
            batch = await calls_to_summarize(self._store, 1,
                                             self._clock.now() - self.max_age)
            if not batch:
                break
            call_id = batch[0]
            try:
                text = await self._summarize(call_id)
            except Preempted:
                self.preempted += 1
                self._idle_since = None
                break
            except Exception:
                tries = self._tries.get(call_id, 0) + 1
                self._tries[call_id] = tries
                log.exception("call summary failed", extra={"call_id": call_id,
                                                            "attempt": tries})
                if tries < self.max_tries:
                    break  # again at the next poll
                await save_summary(self._store, call_id, status="failed", text=None,
                                   tries=tries, at=self._clock.now())
                self._tries.pop(call_id, None)
                continue
            await save_summary(self._store, call_id, status="done", text=text,
                               tries=self._tries.pop(call_id, 0) + 1, at=self._clock.now())
            self.written += 1
            written += 1
            log.info("call summary written", extra={"call_id": call_id})
        return written

    async def _settled(self) -> bool:
        """No call live or dialled, and none for settle_s (between a campaign's calls the
        next one is usually on its way)."""
        if await self._busy():
            self._idle_since = None
            return False
        now = self._clock.monotonic()
        if self._idle_since is None:
            self._idle_since = now
        return now - self._idle_since >= self.settle_s

    async def _summarize(self, call_id: str) -> str:
        turns = await transcript(self._store, call_id)
        pieces: list[str] = []
        stream = self._llm.stream(summary_prompt(turns))
        # aclosing: a preempted summary stops the engine now, not when collected.
        async with contextlib.aclosing(stream) as deltas:  # type: ignore[type-var]
            async for delta in deltas:
                pieces.append(delta.text)
                if len(pieces) % self._check_every == 0 and await self._busy():
                    raise Preempted
                if sum(map(len, pieces)) > 2 * MAX_SUMMARY_CHARS:
                    break
        text = clean_summary("".join(pieces))
        if not text:
            raise ValueError("the LLM wrote an empty summary")
        return text

