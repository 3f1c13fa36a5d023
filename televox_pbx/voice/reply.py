"""The reply pipeline: LLM -> clause splitter -> TTS -> playback, clause by clause.

A reply speaks each clause as soon as it is complete; the first one may be short ("Sure,")
or cut early, and the LLM is asked for nothing more while it renders (they share the CPU).
A reply to a provisional turn is prepared but held (`Reply.live` False) until its turn is
confirmed. The AI disclosure, when owed, is said first (voice/disclosure.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from televox_pbx.agent.reply_policy import ReplyPolicy
from televox_pbx.agent.tools import OptOut, ToolAction
from televox_pbx.clock import Clock
from televox_pbx.knowledge.grounding import strip_note
from televox_pbx.voice.call_setup import Engines, SessionConfig
from televox_pbx.voice.context import Conversation
from televox_pbx.voice.disclosure import Disclosure
from televox_pbx.voice.engines.resample import resample_pcm16 as to_rate
from televox_pbx.voice.engines.scheduler import STAGE, Stage
from televox_pbx.voice.interfaces import ChatMessage, LlmDelta, ToolCall
from televox_pbx.voice.playback import RATE, Playback, Reply, ms
from televox_pbx.voice.trim import trim_leading_silence
from televox_pbx.voice.turns import ClauseSplitter, split_disclosure

ParseTool = Callable[[ToolCall], ToolAction]


class ReplyPipeline:
    def __init__(self, engines: Engines, config: SessionConfig, clock: Clock,
                 playback: Playback, context: Conversation, disclosure: Disclosure,
                 tools: dict[str, Any], parse_tool: ParseTool,
                 policy: ReplyPolicy | None = None) -> None:
        self.engines = engines
        self.policy = policy  # the role guard around the LLM (agent/reply_policy.py)
        self.config = config
        self.clock = clock
        self.playback = playback
        self.context = context
        self.disclosure = disclosure
        self.tools = tools
        self.parse_tool = parse_tool
        # An answer to speak as is for the callee's words (a clear FAQ match), or None.
        self.direct: Callable[[str], str | None] | None = None

    # --- replies and fixed lines --------------------------------------------------------

    def new_reply(self, *, interruptible: bool = True, speech_end: float | None = None,
                  live: bool = True) -> Reply:
        reply = Reply(started=self.clock.monotonic(), interruptible=interruptible,
                      speech_end=speech_end)
        if live:
            self.open(reply)
        else:
            reply.live = False
        return reply

    def open(self, reply: Reply) -> None:
        """The reply becomes the one being said: in the log, its held audio queued."""
        self.context.add_reply(reply)
        self.playback.open(reply)

    async def opening(self, text: str, release: asyncio.Event | None = None) -> None:
        """The opening line, its disclosure sentence a piece of its own (so the session
        knows when it has been heard). Not interruptible by voice. With `release`, its
        start is rendered and held until that is set (while machine detection listens)."""
        before, sentence, after = split_disclosure(text)
        self.disclosure.text = sentence
        reply = self.new_reply(interruptible=False, live=release is None)
        reply.text_parts.append(text)
        opener = asyncio.create_task(self._open_on(reply, release)) if release else None
        try:
            if before:
                await self.synth_clause(reply, before)
            if self.disclosure.claim(reply) is not None:
                await self.speak_disclosure(reply)
            if after:
                await self.synth_clause(reply, after)
            if opener is not None:
                await opener
        finally:
            if opener is not None:
                opener.cancel()
        self.context.commit(reply, text)

    async def _open_on(self, reply: Reply, release: asyncio.Event) -> None:
        """A held reply goes on the line once released, what is rendered by then at once
        and the rest as it comes (synth_clause queues a live reply's audio directly)."""
        await release.wait()
        self.open(reply)

    async def say(self, reply: Reply, line: str, release: asyncio.Event | None = None) -> None:
        """A fixed line (the owed disclosure first), recorded as said. With `release`
        (`reply` not live), rendered and held until that is set (a voicemail message)."""
        if self.claim_disclosure(reply):
            await self.speak_disclosure(reply)
        reply.text_parts.append(line)
        await self.synth_clause(reply, line)
        if release is not None:
            await self._open_on(reply, release)
        self.context.commit(reply, reply.text)

    def claim_disclosure(self, reply: Reply) -> bool:
        """Make `reply` start with the AI disclosure when it is owed."""
        text = self.disclosure.claim(reply)
        if text is not None:
            reply.text_parts.append(text + " ")
        return text is not None

    async def speak_disclosure(self, reply: Reply) -> None:
        assert self.disclosure.text is not None
        await self.synth_clause(reply, self.disclosure.text)
        reply.discloses = True
        if reply.live:
            self.disclosure.queued(reply, reply.pieces, self.playback.output.played_position)

    # --- one LLM round ------------------------------------------------------------------

    async def respond(self, reply: Reply, messages: Sequence[ChatMessage],
                      release: asyncio.Event | None = None) -> tuple[bool, list[ToolAction]]:
        """Stream text into clauses spoken as they complete, and collect the tool calls.
        A reply that is not live is prepared but held (nothing queued) until `release` is
        set. Returns whether it said words of its own (the owed disclosure is not an
        answer), and the tool actions in order."""
        speech_end = reply.speech_end
        clauses: asyncio.Queue[str | None] = asyncio.Queue()
        actions: list[ToolAction] = []
        cfg = self.config
        splitter = ClauseSplitter(cfg.min_clause_chars, cfg.first_clause_chars,
                                  cfg.first_clause_max_words)
        disclose = self.claim_disclosure(reply)  # owed: said before the reply's words
        first_said = asyncio.Event()  # the first clause is synthesized
        rendering = [False]  # consume() is synthesizing a clause
        playback = self.playback

        def starving() -> bool:
            """This reply has been silent on the line for `starve_s` mid-reply, with
            nothing on the way: the next clause should not wait for its full stop."""
            starve = cfg.starve_s
            return (starve is not None and reply.live and bool(reply.pieces)
                    and not rendering[0] and clauses.empty() and not playback.paused
                    and playback.queued_seconds == 0
                    and self.clock.monotonic() - playback.last_audio_t >= starve)

        async def produce() -> None:
            direct = self._direct(messages)
            stream = (_said(direct) if direct is not None
                      else self.policy.stream(self.engines.llm, messages, self.tools)
                      if self.policy is not None
                      else self.engines.llm.stream(messages, self.tools))
            try:
                async for delta in stream:
                    if speech_end is not None and "first_token_ms" not in reply.latency:
                        reply.latency["first_token_ms"] = ms(self.clock.monotonic() - speech_end)
                    if delta.text:
                        reply.text_parts.append(delta.text)
                        ready = splitter.push(delta.text)
                        if not ready and starving():
                            ready = [c for c in (splitter.cut_early(),) if c]
                        for clause in ready:
                            clauses.put_nowait(clause)
                        if ready and not first_said.is_set():
                            # The callee waits on this clause's audio alone: ask the LLM
                            # for nothing more until it is rendered.
                            await first_said.wait()
                            STAGE.set(Stage.CONTINUATION)  # for the engines' scheduler
                    if delta.tool_call is not None:
                        action = self.parse_tool(delta.tool_call)
                        actions.append(action)
                        if isinstance(action, OptOut):
                            return  # stop talking; the session confirms and hangs up
                rest = splitter.flush()
                if rest:
                    clauses.put_nowait(rest)
            finally:
                clauses.put_nowait(None)
                aclose = getattr(stream, "aclose", None)
                if aclose is not None:
                    await aclose()

        async def consume() -> None:
            if disclose:
                await self.speak_disclosure(reply)
            while (clause := await clauses.get()) is not None:
                rendering[0] = True
                try:
                    await self.synth_clause(reply, clause)
                finally:
                    rendering[0] = False
                first_said.set()
            first_said.set()

        async def released(event: asyncio.Event) -> None:
            await event.wait()
            self.open(reply)

        async with asyncio.TaskGroup() as tg:
            tg.create_task(produce())
            tg.create_task(consume())
            if not reply.live:
                assert release is not None
                tg.create_task(released(release))
        self.context.commit(reply, " ".join(p.text for p in reply.pieces))
        own = reply.pieces
        if disclose and own and own[0].text == self.disclosure.text:
            own = own[1:]  # the owed disclosure is not an answer: a tool result needs one
        return bool(own), actions

    def _direct(self, messages: Sequence[ChatMessage]) -> str | None:
        if self.direct is None or not messages or messages[-1].role != "user":
            return None
        return self.direct(strip_note(messages[-1].content))

    # --- speech ------------------------------------------------------------------------

    async def synth_clause(self, reply: Reply, clause: str) -> None:
        # The engines' scheduler serves a reply's first clause before any continuation.
        STAGE.set(Stage.CONTINUATION if reply.pieces else Stage.FIRST)
        first = True
        async for chunk in self.engines.tts.synthesize(clause):
            pcm = to_rate(chunk.pcm, chunk.sample_rate, RATE)
            if first and not reply.pieces and not reply.held:
                pcm = trim_leading_silence(pcm, RATE)  # the callee is waiting for this
            if not pcm:
                continue
            if reply.speech_end is not None and "first_audio_ms" not in reply.latency:
                reply.latency["first_audio_ms"] = ms(self.clock.monotonic() - reply.speech_end)
            if reply.live:
                self.playback.enqueue(reply, clause, pcm, first)
            else:
                reply.held.append((clause, pcm, first))
            first = False


async def _said(text: str) -> AsyncIterator[LlmDelta]:
    """A stored answer, streamed like a model's reply."""
    yield LlmDelta(text=text)
