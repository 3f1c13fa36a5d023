"""A call on text turns: the voice session's agent logic with no audio.

The same system prompt, tools schema, reply policy (guard, opt-out check), tool parsing,
deterministic opt-out rule and end-of-call disposition pass as `voice/session.py`, driven
one typed callee line at a time. The conversation set (tests/test_conversation_set.py)
runs the real LLM through it in minutes; it is also a quick way to try a prompt.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from televox_pbx.agent.custom_tools import CustomTool, HttpToolRunner, ToolCallRecord
from televox_pbx.agent.dispositions import DispositionState
from televox_pbx.agent.optout import is_opt_out
from televox_pbx.agent.outcome import settle
from televox_pbx.agent.prompts import LINES, Lines, opening_line, system_prompt
from televox_pbx.agent.reply_policy import ReplyPolicy
from televox_pbx.agent.tools import (
    EndCall,
    InvalidTool,
    OptOut,
    ScheduleCallback,
    SetDisposition,
    ToolAction,
    Transfer,
    parse_tool_call,
    tools_for,
)
from televox_pbx.config.campaign import Campaign
from televox_pbx.domain import Disposition
from televox_pbx.knowledge.grounding import Grounding, with_note
from televox_pbx.voice.interfaces import ChatMessage, Llm


@dataclass(frozen=True, slots=True)
class Line:
    speaker: str  # "agent" or "callee"
    text: str
    tools: tuple[str, ...] = ()


@dataclass(slots=True)
class Outcome:
    """What the call did so far."""

    ended_by: str = ""  # "", "opt_out", "agent", "transfer"
    on_dnc: bool = False
    callbacks: list[datetime] = field(default_factory=list)


class TextDialogue:
    def __init__(self, campaign: Campaign, variables: Mapping[str, object], llm: Llm, *,
                 now: datetime, zone: str, lines: Lines = LINES, max_followups: int = 1,
                 ground: Grounding | None = None, opening: str | None = None,
                 custom: HttpToolRunner | None = None) -> None:
        """`now`: an aware datetime (the callee's clock is `zone`'s); `ground`: the agent's
        knowledge, as the session looks it up (voice/context.py, voice/reply.py);
        `custom`: the agent's HTTP tools (agent/custom_tools.py), called as a call does."""
        self.campaign = campaign
        self.ground = ground
        self.custom = custom
        self.tool_calls: list[ToolCallRecord] = []  # the custom tools called, as kept
        self.llm = llm
        self.now = now
        self.zones = (zone,)
        self.lines = lines
        self.max_followups = max_followups
        self.policy = ReplyPolicy.for_call(campaign, variables, lines)
        self.tools = tools_for(campaign, transfer_port=True)
        opening = opening_line(campaign, variables, opening)
        self.messages = [
            ChatMessage("system", system_prompt(campaign, variables,
                                                now.astimezone(ZoneInfo(zone)))),
            ChatMessage("assistant", opening)]
        self.transcript = [Line("agent", opening)]
        self.state = DispositionState()
        self.outcome = Outcome()

    @property
    def ended(self) -> bool:
        return bool(self.outcome.ended_by)

    async def callee(self, text: str) -> Line:
        """The callee says `text`; returns the agent's answer."""
        self.transcript.append(Line("callee", text))
        if is_opt_out(text):  # the law, not the model: before the LLM, as the session
            return self._opt_out("optout")
        note = self.ground.note(text) if self.ground is not None else None
        self.messages.append(ChatMessage("user", with_note(text, note)))
        stored = self.ground.direct(text) if self.ground is not None else None
        if stored is not None:  # a question the knowledge answers, or cannot: no LLM
            self.messages.append(ChatMessage("assistant", stored))
            self.transcript.append(Line("agent", stored))
            return self.transcript[-1]
        return await self._respond(0)

    async def _respond(self, followups: int) -> Line:
        parts: list[str] = []
        actions: list[ToolAction] = []
        names: list[str] = []
        async for delta in self.policy.stream(self.llm, self.messages, self.tools):
            parts.append(delta.text)
            if delta.tool_call is not None:
                call = delta.tool_call
                names.append(call.name)
                action = (CustomTool(call.name, dict(call.arguments))
                          if self.custom is not None and self.custom.tool(call.name)
                          else parse_tool_call(call, now=self.now, zones=self.zones,
                                               window=self.campaign.calling_window))
                actions.append(action)
                if isinstance(action, OptOut):
                    break
        said = " ".join("".join(parts).split())
        if said:
            self.messages.append(ChatMessage("assistant", said))
        line = Line("agent", said, tuple(names))
        if said:
            self.transcript.append(line)
        for action in actions:
            match action:
                case OptOut():
                    return self._opt_out("tool", said)
                case EndCall() | Transfer():
                    self.outcome.ended_by = "agent" if isinstance(action, EndCall) \
                        else "transfer"
                case SetDisposition(disposition=disposition):
                    self.state.set(disposition, "tool")
                    self._tool_result({"set_disposition": disposition.value, "ok": True})
                case ScheduleCallback(due_at=due_at):
                    self.outcome.callbacks.append(due_at)
                    self.state.set(Disposition.CALLBACK, "tool")
                    self._tool_result({"schedule_callback": due_at.isoformat(), "ok": True})
                case InvalidTool(name=name, error=error):
                    self._tool_result({name: "error", "error": error})
                case CustomTool(name=name, arguments=arguments) if self.custom is not None:
                    # The text mode has no audio to keep going: the filler is not said.
                    result = await self.custom.call(name, arguments)
                    self.tool_calls.append(result.record)
                    self.messages.append(ChatMessage("tool", result.content))
                    if not result.ok:  # said plainly, as in a call (voice/custom_calls.py)
                        return self._say(self.lines.tool_failed)
        looked_up = any(isinstance(a, CustomTool) for a in actions)
        if (looked_up or (not said and actions)) and not self.ended \
                and followups < self.max_followups:
            return await self._respond(followups + 1)
        return line

    def _say(self, text: str) -> Line:
        self.messages.append(ChatMessage("assistant", text))
        self.transcript.append(Line("agent", text))
        return self.transcript[-1]

    def _tool_result(self, result: dict[str, object]) -> None:
        self.messages.append(ChatMessage("tool", json.dumps(result)))

    def _opt_out(self, source: str, said: str = "") -> Line:
        self.state.set(Disposition.OPT_OUT, source)
        self.outcome.on_dnc = True
        self.outcome.ended_by = "opt_out"
        line = Line("agent", " ".join(f"{said} {self.lines.opt_out_confirm}".split()),
                    ("opt_out",))
        self.transcript.append(line)
        return line

    def disposition(self) -> Disposition:
        """As the session stores it after hang-up."""
        return settle(self.campaign, self.state.value, self.transcript, None)
