"""Agent building blocks: variables, prompts, opt-out phrases, tools, classification."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from televox_pbx.agent.classify import classify, completed_or_no_answer, substantive
from televox_pbx.agent.dispositions import DispositionState
from televox_pbx.agent.optout import is_opt_out
from televox_pbx.agent.prompts import ensure_disclosure, opening_line, system_prompt
from televox_pbx.agent.tools import (
    EndCall,
    InvalidTool,
    OptOut,
    ScheduleCallback,
    SetDisposition,
    parse_tool_call,
    tools_schema,
)
from televox_pbx.agent.variables import render
from televox_pbx.config.campaign import Campaign
from televox_pbx.domain import AmdStatus, Disposition
from televox_pbx.voice.interfaces import ToolCall


def camp(opening: str = "Hi {{NAME}}, I'm Ava, an AI assistant from Acme.",
         **agent: object) -> Campaign:
    return Campaign.model_validate({
        "name": "c", "caller_id": "+15550100000", "trunk": "t",
        "agent": {"persona_name": "Ava", "business": "Acme Solar", "opening_line": opening,
                  "goal": "Book a consultation for {{NAME}}.", **agent}})


# --- variables -------------------------------------------------------------------------


@pytest.mark.parametrize(("template", "variables", "expected"), [
    ("Hi {{NAME}}!", {"name": "Sam"}, "Hi Sam!"),
    ("Hi {{NAME}}!", {}, "Hi there!"),
    ("Hi {{ name }}!", {"NAME": "  "}, "Hi there!"),
    ("Your order {{ORDER}} ships.", {}, "Your order ships."),
    ("Hello {{CITY}}, friend", {}, "Hello, friend"),
    ("{{first_name}} from {{city}}", {"FIRST_NAME": "Ana", "city": "Lyon"}, "Ana from Lyon"),
])
def test_render(template: str, variables: dict[str, str], expected: str) -> None:
    assert render(template, variables) == expected


# --- prompts -------------------------------------------------------------------------------


def test_opening_line_renders_and_keeps_disclosure() -> None:
    assert opening_line(camp(), {"name": "Sam"}) == "Hi Sam, I'm Ava, an AI assistant from Acme."


def test_override_without_disclosure_is_prefixed() -> None:
    assert opening_line(camp(), {}, "Hello {{NAME}}.") == "I'm an AI assistant. Hello there."
    assert ensure_disclosure("This is an AI call.") == "This is an AI call."
    assert ensure_disclosure("This is an automated call.") == \
        "I'm an AI assistant. This is an automated call."


def test_allow_no_disclosure_is_respected() -> None:
    c = camp("Hi {{NAME}}, it's Ava from Acme.", allow_no_ai_disclosure=True)
    assert opening_line(c, {"name": "Sam"}) == "Hi Sam, it's Ava from Acme."


def test_system_prompt_is_stable_and_complete() -> None:
    c = camp(context="Offer ends Friday.")
    a = system_prompt(c, {"name": "Sam"})
    assert a == system_prompt(c, {"name": "Sam"})
    for needle in ("Ava", "Acme Solar", "Book a consultation for Sam.", "Offer ends Friday.",
                   "AI", "opt_out", "short"):
        assert needle in a


def test_tools_schema() -> None:
    names = [t["function"]["name"] for t in tools_schema(transfer_available=True)["tools"]]
    assert names == ["set_disposition", "opt_out", "schedule_callback", "transfer", "end_call"]
    no_transfer = tools_schema(transfer_available=False)["tools"]
    assert "transfer" not in [t["function"]["name"] for t in no_transfer]
    enum = tools_schema(transfer_available=False)["tools"][0]["function"]["parameters"][
        "properties"]["disposition"]["enum"]
    assert set(enum) == {d.value for d in Disposition}


# --- opt-out --------------------------------------------------------------------------------


@pytest.mark.parametrize("text", [
    "Please take me off your list.", "Stop calling me!", "Do not call this number again",
    "remove my number", "Can you remove my phone number from your list",
    "Don't call me again.", "Put me on your do not call list", "I want to opt out",
    "Take my number off your list please", "Never call here again.", "unsubscribe",
    "Don’t call me anymore",
    "me off your list.", "and my number off the calling list please",
])
def test_opt_out_phrases(text: str) -> None:
    assert is_opt_out(text)


@pytest.mark.parametrize("text", [
    "Yes, Tuesday at three works.", "Who is this?", "Take me to the next step",
    "Can you call me back later?", "I'm not interested right now.", "Stop, I'm driving",
    "Could you send me off a copy of the list?",
])
def test_not_opt_out(text: str) -> None:
    assert not is_opt_out(text)


# --- tools -----------------------------------------------------------------------------------


NOW = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)


def test_parse_tool_calls() -> None:
    assert parse_tool_call(ToolCall("set_disposition", {"disposition": "callback"}),
                           now=NOW) == SetDisposition(Disposition.CALLBACK)
    assert isinstance(parse_tool_call(ToolCall("set_disposition", {"disposition": "MAYBE"}),
                                      now=NOW), InvalidTool)
    assert parse_tool_call(ToolCall("opt_out"), now=NOW) == OptOut()
    assert parse_tool_call(ToolCall("end_call", {"reason": "done"}), now=NOW) == EndCall("done")
    assert isinstance(parse_tool_call(ToolCall("fly"), now=NOW), InvalidTool)


def test_callback_time_is_in_callee_zone() -> None:
    action = parse_tool_call(ToolCall("schedule_callback", {"when": "2026-01-06T15:00"}),
                             zones=("America/Chicago",), now=NOW)
    assert isinstance(action, ScheduleCallback)
    assert action.due_at.astimezone(UTC) == datetime(2026, 1, 6, 21, 0, tzinfo=UTC)
    assert action.zone == "America/Chicago"
    past = parse_tool_call(ToolCall("schedule_callback", {"when": "2026-01-01T15:00"}),
                           zones=("America/Chicago",), now=NOW)
    assert isinstance(past, InvalidTool) and "past" in past.error
    bad = parse_tool_call(ToolCall("schedule_callback", {"when": "next tuesday"}),
                          now=NOW)
    assert isinstance(bad, InvalidTool)


# --- dispositions and classification ------------------------------------------------------


def test_opt_out_is_sticky() -> None:
    state = DispositionState()
    assert state.set(Disposition.OPT_OUT, "optout")
    assert not state.set(Disposition.INTERESTED, "tool")
    assert state.value is Disposition.OPT_OUT


@pytest.mark.parametrize(("turns", "amd", "expected"), [
    (["Stop calling me."], None, Disposition.OPT_OUT),
    (["Hi, you've reached Sam, leave a message after the tone."], None, Disposition.VOICEMAIL),
    ([], AmdStatus.MACHINE, Disposition.VOICEMAIL),
    (["Sorry, you have the wrong number."], None, Disposition.WRONG_NUMBER),
    (["Who?", "There's no one here by that name."], None, Disposition.WRONG_NUMBER),
    (["I'm driving, can you call me back tomorrow?"], None, Disposition.CALLBACK),
    (["No thanks, I'm not interested."], None, Disposition.NOT_INTERESTED),
    (["Yes, Tuesday at three works."], None, Disposition.INTERESTED),
    (["That sounds great, tell me more."], None, Disposition.INTERESTED),
    (["Hello?"], None, Disposition.NO_ANSWER),
    ([], None, Disposition.NO_ANSWER),
    (["Who is this?", "We already have panels on our roof.", "My brother installed them."],
     None, Disposition.COMPLETED),
])
def test_classify(turns: list[str], amd: AmdStatus | None, expected: Disposition) -> None:
    assert classify(turns, amd) is expected


def test_completed_with_nothing_substantive_is_no_answer() -> None:
    assert not substantive("Hello? Hello?")
    assert substantive("We already have panels.")
    assert completed_or_no_answer(["hello", "yeah"]) is Disposition.NO_ANSWER
    assert completed_or_no_answer(["We have panels.", "My brother did it."]) \
        is Disposition.COMPLETED
