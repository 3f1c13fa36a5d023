"""What the agent's one task runs: a fixed line (the opening, a goodbye then the hang-up),
an LLM turn with its tools, the transfer. Each returns the `Outcome` the turn-taking
core acts on next."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from televox_pbx.agent.custom_tools import CustomTool
from televox_pbx.agent.prompts import stable_prompt
from televox_pbx.agent.tools import EndCall, OptOut, Transfer
from televox_pbx.audiosocket.session import CallAudio
from televox_pbx.clock import Clock
from televox_pbx.voice import turn_events as te
from televox_pbx.voice.actions import CallActions
from televox_pbx.voice.call_setup import SessionConfig
from televox_pbx.voice.context import Conversation
from televox_pbx.voice.custom_calls import CustomCalls
from televox_pbx.voice.interfaces import ChatMessage, Llm
from televox_pbx.voice.playback import Reply
from televox_pbx.voice.reply import ReplyPipeline

log = logging.getLogger(__name__)

OPENING_FIRST_S = 3.0  # the prefill waits this long at most for the opening's first audio


class AgentTasks:
    def __init__(self, pipeline: ReplyPipeline, actions: CallActions, context: Conversation,
                 config: SessionConfig, call: CallAudio, opening: str,
                 report: Callable[[te.Transferred], None], clock: Clock) -> None:
        self.pipeline = pipeline
        self.actions = actions
        self.context = context
        self.config = config
        self.call = call
        self.opening = opening
        self.report = report
        self.clock = clock
        self.custom: CustomCalls | None = None  # the agent's HTTP tools, if it has any

    async def prefill(self, llm: Llm, tools: dict[str, Any]) -> None:
        """While the opening plays, let the LLM evaluate the prompt prefix (if it can),
        so the first reply only pays for the callee's words."""
        prefill = getattr(llm, "prefill", None)
        if prefill is None:
            return
        # The opening's first audio comes first: on the real PBX (2 busy cores) a prefill
        # beside the opening's render delayed that audio by seconds.
        output, deadline = self.call.output, self.clock.monotonic() + OPENING_FIRST_S
        while output.queued_seconds == 0 and output.played_position == 0 \
                and self.clock.monotonic() < deadline:
            await self.clock.sleep(0.02)
        try:
            # The campaign's stable prompt is kept for its later calls; the rest is ours.
            stable = ChatMessage("system", stable_prompt(self.actions.info.campaign))
            await prefill([self.context.system, ChatMessage("assistant", self.opening)], tools,
                          shared=[stable])
        except Exception:
            log.warning("LLM prefill failed", exc_info=True,
                        extra={"call_id": self.actions.info.call_id})

    async def say(self, action: te.Say, release: asyncio.Event | None = None) -> te.Outcome:
        if action.opening:
            await self.pipeline.opening(self.opening, release)
            return te.Outcome()
        if action.line:
            reply = self.pipeline.new_reply(interruptible=action.interruptible,
                                            live=release is None)
            await self.pipeline.say(reply, action.line, release)
        if action.hangup:
            await self.call.hangup(drain=True)
        return te.Outcome(restart_silence=action.restart_silence)

    async def answer(self, reply: Reply, messages: list[ChatMessage],
                     release: asyncio.Event | None, followups: int = 0) -> te.Outcome:
        """One LLM round, its tools applied; a tool call with nothing said gets one more
        round (the model answers the tool's result)."""
        spoke, calls = await self.pipeline.respond(reply, messages, release)
        terminal: OptOut | EndCall | Transfer | None = None
        # A custom tool's answer the model must speak from; a failure said already.
        answered = failed = False
        for call in calls:
            if isinstance(call, CustomTool) and self.custom is not None:
                if await self.custom.run(call):
                    answered = True
                else:
                    failed = True
                continue
            result = await self.actions.apply(call)
            if isinstance(call, OptOut | EndCall | Transfer):
                terminal = terminal or call
            elif result is not None:
                self.context.add_note(ChatMessage("tool", result))
        if terminal is not None:
            return te.Outcome(terminal, source="tool", spoke=spoke)
        if (answered or (not spoke and not failed and calls)) \
                and followups < self.config.max_followups:
            return await self.answer(self.pipeline.new_reply(), self.context.messages(),
                                     None, followups + 1)
        return te.Outcome(spoke=spoke)

    async def transfer(self, speak: bool) -> te.Outcome:
        lines = self.config.lines
        if speak:
            await self.pipeline.say(self.pipeline.new_reply(interruptible=False),
                                    lines.transfer)
        await self.call.output.wait_drained()
        if not await self.actions.transfer():
            await self.pipeline.say(self.pipeline.new_reply(interruptible=False),
                                    lines.transfer_unavailable)
            await self.call.hangup(drain=True)
            return te.Outcome()
        self.report(te.Transferred(self.clock.monotonic()))
        return te.Outcome()
