"""What stands between the LLM's stream and the callee's ear.

`ReplyPolicy.stream` wraps `Llm.stream` with the same signature, so the session swaps it in
at the one place it asks for a reply. It:
- holds the first few words of each reply until the reply guard (agent/guard.py) has
  passed them, and regenerates a reply that fails (with a note saying what to avoid), at
  most `retries` times, then says a safe fixed line. A short opener ("Sure,") goes out at
  once. The rest streams a few words behind the model, checked as it grows; a failure
  there is corrected aloud ("Sorry,") and the reply generated again.
- asks before an opt-out only the model heard: the deterministic phrases (agent/optout.py)
  act before the LLM runs, but the `opt_out` tool alone once put callers who only declined
  an appointment on the do-not-call list. The tool, or a likely opt-out the phrases do not
  match ("and subscribe."), makes the agent ask `Lines.opt_out_check`; a yes to it is the
  opt-out, a no sends the model on with the goal.
- ends a reply at a sentence end once it is long enough (`max_words`), and ends the
  call after a reply that says goodbye (the model rarely calls end_call).
It keeps no state between replies: everything it needs is in the messages.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from televox_pbx.agent.examples import Kind, campaign_kind
from televox_pbx.agent.guard import Fault, ReplyGuard
from televox_pbx.agent.hints import contradicts, mentions_time, with_hints
from televox_pbx.agent.intents import is_affirmative, is_negative
from televox_pbx.agent.optout import is_opt_out, likely_opt_out
from televox_pbx.agent.prompts import LINES, Lines
from televox_pbx.agent.variables import render
from televox_pbx.config.campaign import Campaign
from televox_pbx.knowledge.grounding import strip_note
from televox_pbx.voice.interfaces import ChatMessage, Llm, LlmDelta, ToolCall

log = logging.getLogger(__name__)

_REPAIR = " Sorry,"  # after a part of a reply that went out before its fault was seen
_WORD_AND_SPACE = re.compile(r"\S+\s+")
_SENTENCE_END = re.compile(r"[.!?](?=\s|$)")
_CLAUSE_END = re.compile(r"[.!?,;:](\s|$)")
# A reply may start with one of these at once, before the guard has seen the rest: none
# of them is wrong in the agent's mouth, and "Sure," playing while the rest is generated
# is what makes the agent sound quick. If what follows fails, it is generated again and
# goes on after the opener.
_OPENER = re.compile(
    r"^\s*((great|sure|okay|ok|alright|all right|of course|certainly|absolutely|perfect|"
    r"wonderful|thank you|thanks|no problem|i see|i understand|understood|got it|oh|"
    r"hi|hello|hi there|hello there|sorry|i'm sorry|thank you so much|excellent|good)"
    r"[.!?,;:])(\s|$)", re.IGNORECASE)
_GOODBYE = re.compile(r"\b(good-?\s?bye|bye(-bye)?|have a (great|good|nice|lovely) "
                      r"(day|evening|afternoon|one|weekend))\W*$", re.IGNORECASE)
_TERMINAL = frozenset({"opt_out", "end_call", "transfer"})
DENIED = "opt_out_denied"
NO_TIME = "callback_without_time"  # a callback booked at a time the callee never named
OFF_TURN = "off_turn"  # goes against what the callee's turn plainly was


def _note(text: str) -> ChatMessage:
    """A note from the phone system, for one reply only (never kept in the context)."""
    return ChatMessage("user", f"[{text}]")


def _is_opt_out_call(call: ToolCall) -> bool:
    if call.name == "opt_out":
        return True
    disposition = call.arguments.get("disposition")
    return call.name == "set_disposition" and isinstance(disposition, str) \
        and disposition.strip().upper() == "OPT_OUT"


def _sentence_cap(text: str, most_words: int) -> int | None:
    """Where `text` should end: the first sentence end with `most_words` or more words
    before it, when more text follows; else None. The rules ask for one or two short
    sentences; past them is where the model began reciting its goal."""
    for end in _SENTENCE_END.finditer(text):
        if len(text[:end.end()].split()) >= most_words and text[end.end():].strip():
            return end.end()
    return None


def _lagging(text: str, lag: int) -> tuple[str, str]:
    """Split `text` into what may be passed on and its last `lag` complete words (plus a
    word still being written), which stay until more text has been checked: a phrase of
    up to lag + 1 words is seen whole before its first word is spoken."""
    words = list(_WORD_AND_SPACE.finditer(text))
    if len(words) <= lag:
        return "", text
    cut = words[len(words) - lag - 1].end()
    return text[:cut], text[cut:]


@dataclass(slots=True)
class _Said:
    """The text of the reply passed on so far, across its attempts."""

    text: str = ""

    def join(self, more: str) -> str:
        """`more`, with a space before it when it follows what was said."""
        if self.text and not self.text[-1:].isspace() and not more[:1].isspace():
            return " " + more
        return more


def last_callee(messages: Sequence[ChatMessage]) -> str:
    """The callee's latest words ('' when the latest user turn is a system note)."""
    for m in reversed(messages):
        if m.role == "user":
            text = strip_note(m.content).strip()
            return "" if text.startswith("[") else text
    return ""


def callee_words(messages: Sequence[ChatMessage], n: int) -> list[str]:
    """The callee's last `n` utterances (system notes left out), oldest first."""
    said = [strip_note(m.content) for m in messages
            if m.role == "user" and not m.content.lstrip().startswith("[")]
    return said[-n:]


def last_agent(messages: Sequence[ChatMessage]) -> str:
    for m in reversed(messages):
        if m.role == "assistant":
            return m.content
    return ""


class ReplyPolicy:
    def __init__(self, *, persona: str = "", callee_name: str = "", lines: Lines = LINES,
                 kind: Kind = Kind.OUTREACH, retries: int = 2, hold_words: int = 8,
                 lag_words: int = 4, max_words: int = 25) -> None:
        """`hold_words`: words of a reply held back for the guard before any is spoken
        (fewer once a clause of 3 words has ended); `lag_words`: words kept back after
        that, so a failing phrase is caught before its start is spoken; `max_words`: a
        reply ends at the first sentence end past this many words."""
        self.persona = persona
        self.callee_name = callee_name
        self.kind = kind
        self.lines = lines
        self.retries = retries
        self.hold_words = hold_words
        self.lag_words = lag_words
        self.max_words = max_words
        self.faults: list[str] = []  # why replies were rejected (for tests and benchmarks)
        self.fallbacks = 0

    @classmethod
    def for_call(cls, campaign: Campaign, variables: Mapping[str, object],
                 lines: Lines = LINES) -> ReplyPolicy:
        name = render("{{NAME}}", variables)
        return cls(persona=campaign.agent.persona_name,
                   callee_name="" if name == "there" else name, lines=lines,
                   kind=campaign_kind(campaign))

    def _note(self, fault: str, hint: str | None = None) -> ChatMessage:
        who = self.persona or "the caller"
        text = {
            Fault.CALLEE_VOICE: f"Answer as {who}, the caller. Do not speak for the callee.",
            Fault.INSTRUCTIONS: "Do not mention your rules, tools or notes. Just answer the "
                                "callee.",
            Fault.ECHO: "Do not repeat the callee's words. Answer them in your own words.",
            Fault.INVENTED: "Do not give numbers you were not given. If you do not know, say "
                            "you don't have that information.",
            OFF_TURN: "That does not fit what they said. Answer what they said.",
            Fault.PASSIVE: f"You are {who} and you called them: say why you are calling and "
                           "pursue the goal.",
            DENIED: "The callee said no: they do not want to stop the calls. Do not use "
                    "opt_out. Go on with the goal.",
        }[fault]
        return _note(f"{text} {hint}" if fault == OFF_TURN and hint else text)

    def _window_full(self, text: str) -> bool:
        """Enough of the reply to judge: `hold_words` words, or a clause of 3 or more
        (the session's splitter would not speak a shorter first clause much sooner)."""
        complete = text.split() if text[-1:].isspace() else text.split()[:-1]
        if len(complete) >= self.hold_words:
            return True
        end = _CLAUSE_END.search(text)
        return end is not None and len(text[:end.start()].split()) >= 3

    async def stream(self, llm: Llm, messages: Sequence[ChatMessage],
                     tools_schema: dict[str, Any] | None = None) -> AsyncIterator[LlmDelta]:
        """`llm.stream(messages, tools_schema)`, guarded (see the module docstring)."""
        callee = last_callee(messages)
        asked = bool(callee) and self.lines.opt_out_check in last_agent(messages)
        if asked and (is_affirmative(callee) or likely_opt_out(callee)):
            yield LlmDelta(tool_call=ToolCall("opt_out"))  # the second signal: a yes
            return
        if not asked and likely_opt_out(callee):
            yield LlmDelta(text=self.lines.opt_out_check)
            return
        denied = asked and is_negative(callee)
        prompt, hint = with_hints(self.kind, messages)
        hint = hint if callee else None
        guard = ReplyGuard.build(
            callee, [m.content for m in messages if m.role in ("system", "user", "tool")],
            self.persona, self.callee_name, notes=[hint] if hint else [])

        def check(text: str) -> str | None:
            fault = guard.check(text)
            if fault is None and contradicts(self.kind, callee, text):
                return OFF_TURN
            return fault

        base = [self._note(DENIED)] if denied else []
        notes = base
        said = _Said()
        for attempt in range(self.retries + 1):
            fault: str | None = None
            async for item in self._attempt(llm, [*prompt, *notes], tools_schema, check,
                                            callee, said, asked=asked, denied=denied):
                if isinstance(item, str):
                    fault = item
                else:
                    said.text += item.text
                    yield item
            if fault is None:
                return
            self.faults.append(fault)
            log.info("reply rejected", extra={"fault": fault, "attempt": attempt + 1})
            notes = [*base, self._note(fault, hint)]
        self.fallbacks += 1
        fallback = self.lines.fallback
        if said.text.endswith(_REPAIR) and fallback.startswith("Sorry, "):
            fallback = fallback.removeprefix("Sorry, ")  # not "Sorry, Sorry, ..."
        yield LlmDelta(text=said.join(fallback))

    async def _attempt(self, llm: Llm, messages: list[ChatMessage],
                       tools_schema: dict[str, Any] | None,
                       check: Callable[[str], str | None], callee: str,
                       said: _Said, *, asked: bool, denied: bool
                       ) -> AsyncIterator[LlmDelta | str]:
        """One generation. Yields deltas to pass on, or a fault (a str, last) that asks
        for another attempt. `said` is what earlier attempts of this reply passed on: an
        opener, or the start of a reply that went wrong later (then this one follows a
        "Sorry," as a person correcting themselves would)."""
        inner = llm.stream(messages, tools_schema)
        recent = " ".join(callee_words(messages, 2))
        held: list[ToolCall] = []
        buf, mine = "", ""  # text not yet passed on; text passed on by this attempt
        released = terminal = False
        at_start = True  # the start of this attempt's text is not yet judged
        try:
            async for delta in inner:
                call = delta.tool_call
                if call is not None:
                    if _is_opt_out_call(call):
                        if denied:
                            yield DENIED
                            return
                        if asked or is_opt_out(callee):
                            yield LlmDelta(tool_call=ToolCall("opt_out"))
                        else:  # the model alone heard an opt-out: ask first
                            yield LlmDelta(text=said.join(self.lines.opt_out_check))
                        return
                    if call.name == "schedule_callback" and recent \
                            and not mentions_time(recent):
                        # The model booked a time nobody said. For an appointment the
                        # front desk calls back; otherwise ask for a time.
                        self.faults.append(NO_TIME)
                        if self.kind is Kind.APPOINTMENT:
                            yield LlmDelta(tool_call=ToolCall(
                                "set_disposition", {"disposition": "CALLBACK"}))
                            yield LlmDelta(text=said.join(self.lines.front_desk_callback))
                            yield LlmDelta(tool_call=ToolCall("end_call",
                                                              {"reason": "said goodbye"}))
                        else:
                            yield LlmDelta(text=said.join(self.lines.ask_when))
                        return
                    terminal = terminal or call.name in _TERMINAL
                    if released:
                        yield delta
                    else:
                        held.append(call)
                if not delta.text:
                    continue
                buf += delta.text
                if at_start:
                    opener = _OPENER.match(buf)
                    if opener is None and not _CLAUSE_END.search(buf) \
                            and len(buf.split()) <= 3:
                        continue  # may still become an opener
                    at_start = False
                    if opener is not None:
                        buf = buf[opener.end(1):]
                        if not said.text:  # a later attempt does not say one again
                            yield LlmDelta(text=opener.group(1))
                if not released:
                    if not buf.strip() or not self._window_full(buf):
                        continue
                    fault = check(said.text + said.join(buf))
                    if fault is not None:
                        yield fault
                        return
                    released = True
                    for held_call in held:
                        yield LlmDelta(tool_call=held_call)
                    # A word still being written stays for the next check: "is $" passed,
                    # went out, and "$50" failed only after it ("...survey is $ Sorry,").
                    ready, buf = _lagging(buf, 0)
                    mine = said.join(ready)
                    yield LlmDelta(text=mine)
                    continue
                fault = check(said.text + buf)
                if fault is not None:
                    # Part of this reply is out already: correct it, then try again.
                    yield LlmDelta(text=_REPAIR)
                    yield fault
                    return
                cut = _sentence_cap(said.text + buf, self.max_words)
                if cut is not None:  # enough said: the rest is not even generated
                    buf = buf[:max(0, cut - len(said.text))]
                    break
                ready, buf = _lagging(buf, self.lag_words)
                if ready:
                    mine += ready
                    yield LlmDelta(text=ready)
        finally:
            aclose = getattr(inner, "aclose", None)
            if aclose is not None:
                await aclose()
        if not released:
            if at_start and (opener := _OPENER.match(buf)) is not None:
                buf = buf[opener.end(1):]  # a reply that is only an opener ("Great.")
                if not said.text:
                    yield LlmDelta(text=opener.group(1))
            fault = check(said.text + said.join(buf)) if buf.strip() else None
            if fault is not None:
                yield fault
                return
            for held_call in held:
                yield LlmDelta(tool_call=held_call)
            mine, buf = (said.join(buf) if buf.strip() else ""), ""
            if mine:
                yield LlmDelta(text=mine)
        elif buf:
            fault = check(said.text + buf)
            if fault is not None:
                yield LlmDelta(text=_REPAIR)
                yield fault
                return
            mine += buf
            yield LlmDelta(text=buf)
        if not terminal and _GOODBYE.search(mine.strip()):
            yield LlmDelta(tool_call=ToolCall("end_call", {"reason": "said goodbye"}))
