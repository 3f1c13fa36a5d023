"""A custom tool's call during a turn: the request runs while a short filler line plays
(when the answer takes longer than the tool's filler_after_s), so the line never falls
silent; a timeout or an error is said plainly; every call is kept with the call."""

from __future__ import annotations

import asyncio
import logging

from televox_pbx.agent.custom_tools import CustomTool, HttpToolRunner, ToolCallLog
from televox_pbx.agent.prompts import Lines
from televox_pbx.clock import Clock
from televox_pbx.voice.context import Conversation
from televox_pbx.voice.interfaces import ChatMessage
from televox_pbx.voice.reply import ReplyPipeline

log = logging.getLogger(__name__)


class CustomCalls:
    def __init__(self, runner: HttpToolRunner, pipeline: ReplyPipeline,
                 context: Conversation, clock: Clock, lines: Lines, *, call_id: str,
                 agent: str, record: ToolCallLog | None) -> None:
        self.runner = runner
        self.pipeline = pipeline
        self.context = context
        self.clock = clock
        self.lines = lines
        self.call_id = call_id
        self.agent = agent
        self.record = record

    async def run(self, call: CustomTool) -> bool:
        """Call the tool; True when its answer is there for the model to speak from,
        False when the failure has been said already."""
        tool = self.runner.tool(call.name)
        assert tool is not None
        request = asyncio.ensure_future(self.runner.call(call.name, call.arguments))
        timer = asyncio.ensure_future(self.clock.sleep(tool.filler_after_s))
        try:
            await asyncio.wait({request, timer}, return_when=asyncio.FIRST_COMPLETED)
            if not request.done():
                await self.pipeline.say(self.pipeline.new_reply(), tool.filler)
            result = await request
        finally:  # a barge-in cancels the turn: the request goes with it
            timer.cancel()
            request.cancel()
        self.context.add_note(ChatMessage("tool", result.content))
        if self.record is not None:
            try:
                await self.record.record(self.call_id, self.agent, result.record)
            except Exception:
                log.exception("tool call not stored", extra={"call_id": self.call_id})
        if not result.ok:
            await self.pipeline.say(self.pipeline.new_reply(), self.lines.tool_failed)
        return result.ok


