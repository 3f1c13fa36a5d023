"""Few-shot examples for the system prompt, one set per kind of campaign.

A 1.5B model copies what it is shown far better than it follows rules it is told, so each
kind gets short exchanges in the exact reply format: the callee's words, then the agent's
JSON answer. They depend only on the campaign (persona, business, kind), never on the
contact, so they sit in the stable prefix of the prompt that every call shares.

The examples name no fact (price, address, date): the model would repeat it on calls
where it is false. Where a fact is asked for, they show how to say it is not known.
"""

from __future__ import annotations

import json
import re
from enum import StrEnum

from televox_pbx.config.campaign import Campaign


class Kind(StrEnum):
    APPOINTMENT = "appointment"  # confirm or reschedule an appointment
    SURVEY = "survey"  # ask a few questions, record the answers
    OUTREACH = "outreach"  # offer something (sales, reminders, invitations)


_APPOINTMENT = re.compile(r"\b(appointments?|booking|reservation|visit on)\b", re.IGNORECASE)
# Questions the agent asks, not ones it answers: "Answer questions about it briefly" in
# an offer's goal made it a survey, and the model asked a solar prospect how satisfied
# they were with the visit, from 1 to 5 (bench/capacity.py).
_SURVEY = re.compile(r"\b(ask|asks|asking)\b[^.]{0,40}?\bquestions?\b|"
                     r"\b(a few|some|two|three|four|five|\d+|quick|short) (quick |short )?"
                     r"questions\b|"
                     r"\b(satisf\w*|feedback|rating|rate (us|the|your|it)|"
                     r"how (likely|happy)|recommend)\b", re.IGNORECASE)


def campaign_kind(campaign: Campaign) -> Kind:
    """What the campaign's goal is about, read from its wording ("a free roof survey" is
    an offer, "three questions" a survey)."""
    goal = f"{campaign.agent.goal} {campaign.agent.opening_line}"
    if _APPOINTMENT.search(goal):
        return Kind.APPOINTMENT
    if _SURVEY.search(goal):
        return Kind.SURVEY
    return Kind.OUTREACH


def _reply(say: str, tool: str | None = None, **arguments: str) -> str:
    value = None if tool is None else {"name": tool, "arguments": arguments}
    return json.dumps({"tool": value, "say": say})


def _common(persona: str, business: str, goal_question: str,
            why: str) -> list[tuple[str, str]]:
    """`why`: the reason for the call in a few words, said when asked what it is about
    (with no example of that, the model took the price example and said it did not know)."""
    return [
        ("Hello?",
         _reply(f"Hi, this is {persona}, an AI assistant from {business}. {goal_question}")),
        ("Okay, what is this about?",
         _reply(f"I'm calling from {business} {why}. {goal_question}")),
        ("Who is this? Is this some kind of scam?",
         _reply(f"No, I'm {persona}, an AI assistant calling from {business}. "
                f"{goal_question}")),
        ("I'm busy right now.",
         _reply("No problem. When would be a better time to call you back?")),
        ("There's nobody here by that name. You have the wrong number.",
         _reply("I'm sorry for the trouble. Goodbye.", "set_disposition",
                disposition="WRONG_NUMBER")),
        ("Stop calling me. Take me off your list.",
         _reply("I understand. You won't be called again. Goodbye.", "opt_out")),
        # A greeting said after the opening (one said over it is not answered: the
        # opening is its answer): with the "Hello?" example alone, the model said its
        # whole introduction again.
        ("Hi, yes, speaking.",
         _reply(f"I'm calling from {business} {why}. {goal_question}")),
    ]


def _appointment(persona: str, business: str) -> list[tuple[str, str]]:
    question = "Can you make your appointment?"
    return [
        ("Yes, I'll be there.",
         _reply("Great, your appointment is confirmed. Thank you, goodbye.",
                "set_disposition", disposition="INTERESTED")),
        ("Oh, I can't make it that day. I have to work.",
         _reply("No problem. Would you like our front desk to call you back to find a "
                "new time?")),
        ("Yes, please have them call me.",
         _reply("Thank you, the front desk will call you to reschedule. Goodbye.",
                "set_disposition", disposition="CALLBACK")),
        ("Cancel it, I don't need it anymore.",
         _reply("Alright, I've noted that you want to cancel. Thank you, goodbye.",
                "set_disposition", disposition="NOT_INTERESTED")),
        ("How much will the visit cost?",
         _reply(f"I'm sorry, I don't have that information, but {business} can tell "
                f"you. {question}")),
        *_common(persona, business, question, "about your appointment"),
    ]


def _survey(persona: str, business: str) -> list[tuple[str, str]]:
    question = "Do you have a minute for a few quick questions?"
    return [
        ("Sure, go ahead.",
         _reply("Thank you! First, how satisfied were you with the visit, from 1 to 5?")),
        ("Wait, does this cost anything?",
         _reply("No, it's free and takes one minute. How satisfied were you with the "
                "visit, from 1 to 5?")),
        ("I'd say a four.",
         _reply("Thank you. Did the technician arrive on time?")),
        ("Yes, I would recommend you to a friend.",
         _reply("Thank you for your answers. Have a great day, goodbye.",
                "set_disposition", disposition="COMPLETED", note="4, on time, recommends")),
        ("No, I don't do surveys.",
         _reply("I understand. Thank you for your time, goodbye.", "set_disposition",
                disposition="NOT_INTERESTED")),
        *_common(persona, business, question, "with a few questions about your visit"),
    ]


def _outreach(persona: str, business: str) -> list[tuple[str, str]]:
    question = "Would you like to hear more?"
    return [
        ("Sure, tell me more.",
         _reply(f"Great. Someone from {business} will call you with the details. "
                "Thank you, goodbye.", "set_disposition", disposition="INTERESTED")),
        ("How much does it cost?",
         _reply(f"I'm sorry, I don't have prices, but someone from {business} can tell "
                f"you. {question}")),
        ("No thanks, I'm not interested.",
         _reply("I understand. Thank you for your time, goodbye.", "set_disposition",
                disposition="NOT_INTERESTED")),
        *_common(persona, business, question, "with an offer for you"),
    ]


def examples(campaign: Campaign) -> str:
    """The examples block of the system prompt (stable per campaign)."""
    persona, business = campaign.agent.persona_name, campaign.agent.business
    kind = campaign_kind(campaign)
    pairs = {Kind.APPOINTMENT: _appointment, Kind.SURVEY: _survey,
             Kind.OUTREACH: _outreach}[kind](persona, business)
    lines = ["Examples of good answers (from other calls; their facts are not this call's):"]
    for callee, reply in pairs:
        lines += [f"Callee: {callee}", f"You: {reply}"]
    return "\n".join(lines)
