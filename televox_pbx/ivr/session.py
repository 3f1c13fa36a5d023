"""One IVR call: play the flow's prompts in sequence, gather keys (timeout, retries, valid
keys), branch, record an answer, hang up. Each answer is stored as soon as it is given.
The opt-out key, at any moment, puts the number on the DNC list the way a conversation
does (the DncPort, source call:ivr) and ends the call with disposition OPT_OUT."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from televox_pbx.audiosocket.session import AudioIn, CallAudio, Dtmf, Hangup
from televox_pbx.clock import Clock, wait_for
from televox_pbx.config.campaign import Campaign
from televox_pbx.config.ivr import IvrConfig, Prompt, Step
from televox_pbx.domain import Disposition
from televox_pbx.ivr.prompts import PromptLibrary
from televox_pbx.store import ivr as ivr_store
from televox_pbx.store.db import Store

log = logging.getLogger(__name__)

# (turns, disposition) for the dialer, as a conversation reports it: answers + 1 turns, so
# a call with at least one answer counts as completed and one with none as not answered.
IvrResult = tuple[int, Disposition | None]
_BEEP = b"".join(int(6000 * math.sin(2 * math.pi * 880 * i / 8000)).to_bytes(
    2, "little", signed=True) for i in range(1600))  # 200 ms at 880 Hz


class OptOutPort(Protocol):
    async def add(self, phone: str, *, reason: str, source: str) -> None: ...


class _Gone(Exception):
    """The call is down."""


class _OptedOut(Exception):
    """The opt-out key was pressed."""


@dataclass
class IvrCall:
    campaign: Campaign
    call_id: str
    phone: str
    prompts: PromptLibrary
    store: Store
    clock: Clock
    dnc: OptOutPort
    recordings: Path
    on_result: Callable[[IvrResult], None]

    @property
    def flow(self) -> IvrConfig:
        assert self.campaign.ivr is not None
        return self.campaign.ivr

    async def __call__(self, call: CallAudio) -> None:
        events: asyncio.Queue[Dtmf | Hangup | AudioIn] = asyncio.Queue()

        async def read() -> None:
            async for ev in call.incoming():
                events.put_nowait(ev)
        reader = asyncio.create_task(read(), name=f"ivr-{self.call_id}")
        answers, opted_out = 0, False
        try:
            answers = await self._run(call, events)
        except _OptedOut:
            opted_out = True
            await self.dnc.add(self.phone, reason="pressed the IVR opt-out key",
                               source="call:ivr")
            log.info("opt-out", extra={"call_id": self.call_id, "source": "ivr"})
        except _Gone:
            answers = len(await ivr_store.answers(self.store, self.call_id))
        finally:
            with contextlib.suppress(Exception):
                await call.hangup(drain=not opted_out)
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            if opted_out:
                self.on_result((answers + 1, Disposition.OPT_OUT))
            else:
                self.on_result((answers + 1 if answers else 0, None))

    async def _run(self, call: CallAudio, events: asyncio.Queue[Dtmf | Hangup | AudioIn]
                   ) -> int:
        steps = self.flow.steps
        index = {s.id: i for i, s in enumerate(steps)}
        i: int | None = 0
        answers = 0
        while i is not None and i < len(steps):
            step = steps[i]
            target: str | None = None
            if step.gather is not None:
                key = await self._gather(call, events, step)
                if key is not None:
                    answers += 1
                    target = step.branch.get(key)
            else:
                await self._play(call, events, step.play, barge=False)
                if step.record is not None and await self._record(call, events, step):
                    answers += 1
            if step.hangup:
                break
            target = target or step.next
            i = index[target] if target is not None else i + 1
        return answers

    def _key(self, ev: Dtmf | Hangup | AudioIn) -> str | None:
        if isinstance(ev, Hangup):
            raise _Gone
        if isinstance(ev, Dtmf):
            if ev.digit == self.flow.opt_out_key:
                raise _OptedOut
            return ev.digit
        return None

    async def _play(self, call: CallAudio, events: asyncio.Queue[Dtmf | Hangup | AudioIn],
                    prompts: list[Prompt], *, barge: bool) -> str | None:
        """Play in sequence; a key pressed meanwhile ends the prompt when `barge`."""
        for p in prompts:
            call.output.enqueue(await self.prompts.audio(p, self.flow.max_prompt_s))
        drained = asyncio.ensure_future(call.output.wait_drained())
        try:
            while not drained.done():
                getter = asyncio.ensure_future(events.get())
                await asyncio.wait({drained, getter}, return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():
                    getter.cancel()
                    break
                key = self._key(getter.result())
                if key is not None and barge:
                    call.output.clear()
                    return key
        finally:
            drained.cancel()
        return None

    async def _next_key(self, events: asyncio.Queue[Dtmf | Hangup | AudioIn],
                        timeout_s: float) -> str | None:
        deadline = self.clock.monotonic() + timeout_s
        while (left := deadline - self.clock.monotonic()) > 0:
            try:
                ev = await wait_for(self.clock, events.get(), left)
            except TimeoutError:
                return None
            key = self._key(ev)
            if key is not None:
                return key
        return None

    async def _gather(self, call: CallAudio, events: asyncio.Queue[Dtmf | Hangup | AudioIn],
                      step: Step) -> str | None:
        g = step.gather
        assert g is not None
        for _ in range(g.retries + 1):
            key = await self._play(call, events, step.play, barge=True)
            if key is None:
                key = await self._next_key(events, g.timeout_s)
            if key is not None and key in g.valid:
                await ivr_store.save_answer(self.store, self.call_id, g.question, key,
                                            self.clock.now())
                return key
        return None

    async def _record(self, call: CallAudio, events: asyncio.Queue[Dtmf | Hangup | AudioIn],
                      step: Step) -> bool:
        """After a beep, the caller's audio until '#' or max_s; False when none came."""
        rec = step.record
        assert rec is not None
        call.output.enqueue(_BEEP)
        await call.output.wait_drained()
        while not events.empty():  # what came during the prompt is not the answer
            self._key(events.get_nowait())
        pcm: list[bytes] = []
        rate = 8000
        deadline = self.clock.monotonic() + rec.max_s
        while (left := deadline - self.clock.monotonic()) > 0:
            try:
                ev = await wait_for(self.clock, events.get(), left)
            except TimeoutError:
                break
            if isinstance(ev, AudioIn):
                pcm.append(ev.pcm)
                rate = ev.sample_rate
            elif self._key(ev) == "#":
                break
        if not pcm:
            return False
        path = self.recordings / "ivr" / f"{self.call_id}-{rec.question}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        with wave.open(str(path), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(rate)
            w.writeframes(b"".join(pcm))
        await ivr_store.save_answer(self.store, self.call_id, rec.question, None,
                                    self.clock.now(), recording=str(path))
        return True
