"""The conversation set: scripted callees against the shipped campaigns, with the real LLM.

Each conversation is played on text turns through the agent's real reply path
(agent/dialogue.py: the session's prompt, reply policy, tool parsing, opt-out rule and
end-of-call disposition pass). Every agent reply is checked, deterministically:
- role: it never speaks as the callee (their plans, their appointment, a speaker label);
- no leak: no rules, tool names, dispositions, JSON or notes in what is said;
- goal: it answers the turn and pursues the campaign's goal (words the turn calls for),
  and states no number it was not given (the invented "$50");
- at the end of each conversation: the right disposition, and the do-not-call list only
  for a real opt-out.
A reply passes when all its checks pass. The set prints its pass rate and needs 95 %.

Marked `models`. About 4-6 minutes on 2 shared cores (one model load, ~50 LLM replies).
Set TELEVOX_MODELS_DIR to a models cache other than var/models, and TELEVOX_LLM to
measure another LLM of the manifest (qwen2.5-0.5b-instruct-q4_k_m, the optional faster
one: it passes fewer than 95 % of the replies, so the set fails on it).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from televox_pbx.agent.dialogue import TextDialogue
from televox_pbx.agent.guard import Fault, ReplyGuard
from televox_pbx.agent.prompts import LINES
from televox_pbx.config.campaign import Campaign
from televox_pbx.config.loader import load_model
from televox_pbx.config.settings import ModelSettings
from televox_pbx.domain import Disposition
from televox_pbx.voice.engines import Engines
from televox_pbx.voice.engines.llm_llama import LlamaLlm
from televox_pbx.voice.engines.manifest import load_manifest

pytestmark = pytest.mark.models

REPO = Path(__file__).resolve().parents[1]
D = Disposition

DENTAL_VARS = {"NAME": "Jane Doe", "APPOINTMENT_DATE": "Tuesday 3 March",
               "APPOINTMENT_TIME": "2:30 pm"}
SURVEY_VARS = {"NAME": "Maria Garcia", "VISIT_DATE": "Friday 27 February",
               "TECHNICIAN": "Bob"}
SOLAR_VARS = {"NAME": "Sam Park"}
# A sales campaign of the third kind (no such campaign ships; its examples do).
SOLAR = Campaign.model_validate({
    "name": "solar", "caller_id": "+15550100000", "trunk": "t",
    "agent": {"persona_name": "Anna", "business": "Acme Solar",
              "opening_line": "Hi {{NAME}}, this is Anna, an AI assistant from Acme Solar. "
                              "We're offering free solar roof surveys this month.",
              "goal": "Offer a free solar roof survey and find out if they are interested.",
              "context": "The roof survey is free and takes about an hour. An engineer "
                         "visits on a weekday."}})
NOW = datetime(2026, 3, 2, 15, 0, tzinfo=ZoneInfo("UTC"))  # Monday, in the window

# Words a reply may use to pursue each goal.
APPOINTMENT = r"appointment|tuesday|2:30|make it|come|confirm|see you|reschedul|front desk"
SURVEY = r"satisf|1 to 5|one to five|rate|technician|on time|recommend|question|minute"
SALES = r"survey|roof|solar|interested|hear more|engineer|free"
BYE = r"bye|thank"


@dataclass(frozen=True)
class Turn:
    said: str
    expect: str  # a regex the reply must match (its goal); "" for none
    forbid: str = ""  # a regex it must not match


@dataclass(frozen=True)
class Convo:
    name: str
    campaign: str  # dental, survey, solar
    turns: tuple[Turn, ...]
    dispositions: frozenset[Disposition] = field(default_factory=frozenset)  # empty: any
    dnc: bool = False


def convo(name: str, campaign: str, *turns: Turn, disp: tuple[Disposition, ...] = (),
          dnc: bool = False) -> Convo:
    return Convo(name, campaign, turns, frozenset(disp), dnc)


T = Turn
CONVERSATIONS = [
    # --- appointment confirmation (config/campaigns/dental.yaml) ---
    convo("confirms", "dental", T("Hello?", APPOINTMENT), T("Yes, I'll be there.", BYE),
          disp=(D.INTERESTED,)),
    convo("plain yes", "dental", T("Yes.", rf"{BYE}|{APPOINTMENT}"),
          T("Yes, that's right.", rf"{BYE}|{APPOINTMENT}"), disp=(D.INTERESTED,)),
    convo("cannot come", "dental",
          T("Oh, I can't make Tuesday. I have to work.", r"front desk|call|reschedul|new time"),
          T("Yes, please have them call me.", rf"{BYE}|front desk|call"),
          disp=(D.CALLBACK,)),
    convo("asks the address", "dental", T("Where is your office again?", r"12 Main"),
          T("Okay. And yes, I'll be there.", BYE), disp=(D.INTERESTED,)),
    convo("asks a price", "dental",
          T("How much does a cleaning cost?", r"don't|do not|not sure|front desk|call|ask",
            r"\d+\s*(dollars|\$)|\$"),
          T("Alright. Yes, I can make it.", BYE), disp=(D.INTERESTED,)),
    convo("asks the hours", "dental", T("What time do you open in the morning?", r"8|eight"),
          T("Great, see you then.", BYE), disp=(D.INTERESTED,)),
    convo("wrong person", "dental",
          T("There's no Jane here, you have the wrong number.", r"sorry|apolog"),
          disp=(D.WRONG_NUMBER,)),
    convo("who is this", "dental", T("Who is this?", r"Ava|Bright Smile|AI"),
          T("Oh, right. Yes, I'll come.", BYE), disp=(D.INTERESTED,)),
    # Asked on the real PBX, and answered "I'm sorry, I don't have that information" (the
    # model took the price example) and "I'm not sure who was calling".
    convo("what is it about", "dental",
          T("I have a minute. What is it about?", APPOINTMENT, r"don't have|not sure"),
          T("Yes, I'll be there.", BYE), disp=(D.INTERESTED,)),
    convo("who was calling", "dental",
          T("Sorry, who was calling?", r"Ava|Bright Smile|AI", r"not sure|clarify"),
          T("Okay. Yes, I'll be there.", BYE), disp=(D.INTERESTED,)),
    convo("robot", "dental", T("Am I talking to a robot?", r"\bAI\b|artificial"),
          T("Fine. Yes, Tuesday works.", BYE), disp=(D.INTERESTED,)),
    convo("off topic", "dental",
          T("Do you know a good pizza place around here?", APPOINTMENT),
          T("Ha, okay. Yes, I'll be there.", BYE), disp=(D.INTERESTED,)),
    convo("hostile", "dental",
          T("This is a scam. You people are useless.", rf"sorry|{APPOINTMENT}|Bright Smile"),
          T("Whatever. Yes, I'll be there.", BYE), disp=(D.INTERESTED,)),
    convo("cancels", "dental", T("Cancel it. I don't need it anymore.", ""),
          T("No, I just don't need the appointment.", ""),
          disp=(D.NOT_INTERESTED, D.CALLBACK)),
    convo("switched dentists", "dental",
          T("I'm not coming, I switched dentists.", ""),
          T("No, just not this appointment.", ""), disp=(D.NOT_INTERESTED,)),
    convo("busy, call back", "dental",
          T("I'm driving right now. Can you call me back later?", r"when|time|later"),
          T("Tomorrow at 5 pm.", rf"{BYE}|tomorrow|5"), disp=(D.CALLBACK,)),
    convo("opt-out: list", "dental", T("Please take me off your list.", ""),
          disp=(D.OPT_OUT,), dnc=True),
    convo("opt-out: one word", "dental", T("Unsubscribe.", ""), disp=(D.OPT_OUT,), dnc=True),
    convo("opt-out: never again", "dental", T("Don't call this number again.", ""),
          disp=(D.OPT_OUT,), dnc=True),
    convo("opt-out: do not call", "dental", T("Put me on your do not call list.", ""),
          disp=(D.OPT_OUT,), dnc=True),
    convo("opt-out: leave me alone", "dental",
          T("Leave me alone, stop bothering me.", r"stop calling"), T("Yes.", ""),
          disp=(D.OPT_OUT,), dnc=True),
    convo("opt-out: misheard", "dental", T("and subscribe.", r"stop calling"),
          T("Yes, that's what I said.", ""), disp=(D.OPT_OUT,), dnc=True),
    # --- survey (config/campaigns/survey.yaml) ---
    convo("survey done", "survey", T("Sure, go ahead.", SURVEY),
          T("Five, it was great.", SURVEY), T("Yes, he was right on time.", SURVEY),
          T("Yes, definitely.", BYE), disp=(D.COMPLETED,)),
    convo("survey busy", "survey", T("I'm busy right now.", r"when|time|later|call"),
          T("Try me tomorrow at 6 pm.", rf"{BYE}|tomorrow|6"), disp=(D.CALLBACK,)),
    convo("survey declined", "survey", T("No, I don't do surveys.", BYE),
          disp=(D.NOT_INTERESTED,)),
    convo("survey who", "survey", T("Who is this?", r"Sam|Northwind|AI"),
          T("Okay, go ahead.", SURVEY), T("Three. It was okay.", SURVEY)),
    convo("survey about", "survey", T("What's this about?", SURVEY, r"don't have|not sure"),
          T("Okay, go ahead.", SURVEY)),
    convo("survey cost", "survey",
          T("Is this going to cost me anything?", rf"(no|free|optional|not|don't).*({SURVEY})",
            r"\$|\d{2,}"),
          T("Okay then, go ahead.", SURVEY)),
    convo("survey wrong person", "survey", T("I think you have the wrong number.", r"sorry"),
          disp=(D.WRONG_NUMBER,)),
    convo("survey opt-out", "survey", T("Stop calling me.", ""), disp=(D.OPT_OUT,), dnc=True),
    convo("survey no more calls", "survey",
          T("I don't want any more calls from you people.", r"stop calling"), T("Yes.", ""),
          disp=(D.OPT_OUT,), dnc=True),
    # --- sales / outreach ---
    convo("sales yes", "solar", T("Sure, tell me more.", SALES),
          T("Yes, I'm interested.", rf"{BYE}|{SALES}|call|time|book"), disp=(D.INTERESTED,)),
    convo("sales price", "solar",
          T("How much does it cost?", r"free|don't|not sure", r"\$|dollars"),
          T("No thanks, I'm not interested.", BYE), disp=(D.NOT_INTERESTED,)),
    convo("sales wrong guess", "solar",
          T("Is this about my electricity bill?", rf"Acme|{SALES}", r"about your electricity"),
          T("Oh. No thanks.", BYE), disp=(D.NOT_INTERESTED,)),
    convo("sales small talk", "solar",
          T("Hi. Can you recommend a good plumber?", SALES,
            r"budget|find (a|you)|plumbers? (in|near)"),
          T("Oh. No thanks.", BYE), disp=(D.NOT_INTERESTED,)),
    convo("sales hostile", "solar",
          T("Who gave you my number?", rf"sorry|Acme|{SALES}|AI|don't"),
          T("I'm not interested.", BYE), disp=(D.NOT_INTERESTED,)),
    # --- a greeting said over the opening (answered once it has been said) ---
    # On the real PBX "Hello, this is Sam speaking." over the opening was answered with
    # the opening again ("Hi, Sam! I'm Ava, an AI..."), and "Hi, yes, speaking." with
    # "Great, your appointment is confirmed. Thank you, goodbye."
    convo("greets over the opening", "dental",
          T("Hello, this is Jane speaking.", APPOINTMENT, r"AI assistant|I'm Ava|confirmed|bye"),
          T("Yes, I'll be there.", BYE), disp=(D.INTERESTED,)),
    convo("greets with a yes", "dental",
          T("Hi, yes, speaking.", APPOINTMENT, r"AI assistant|I'm Ava|confirmed|bye"),
          T("Yes, Tuesday works.", BYE), disp=(D.INTERESTED,)),
    convo("survey greets", "survey",
          T("Hello, this is Maria speaking.", SURVEY, r"AI assistant|I'm Sam|this is Sam"),
          T("Sure, go ahead.", SURVEY)),
    convo("sales greets", "solar",
          T("Hello, this is Sam speaking.", SALES, r"AI assistant|I'm Anna|this is Anna"),
          T("No thanks, I'm not interested.", BYE), disp=(D.NOT_INTERESTED,)),
    # On the real PBX the callee's goodbye cut the agent's question off, and the model
    # answered "Great, your appointment is confirmed." (stored as a yes).
    convo("leaves without an answer", "dental",
          T("I have a minute. What is it about?", APPOINTMENT, r"don't have|not sure"),
          T("Okay, thank you. Goodbye.", BYE, r"confirmed|see you"),
          disp=(D.NO_ANSWER, D.COMPLETED)),
]


@dataclass
class Result:
    convo: str
    said: str
    reply: str
    failures: list[str]


def _campaigns() -> dict[str, tuple[Campaign, dict[str, str], str]]:
    def load(name: str) -> Campaign:
        return load_model(REPO / "config" / "campaigns" / f"{name}.yaml", Campaign)
    return {"dental": (load("dental"), DENTAL_VARS, "America/New_York"),
            "survey": (load("survey"), SURVEY_VARS, "America/Chicago"),
            "solar": (SOLAR, SOLAR_VARS, "America/New_York")}


_ROLE_EXTRA = re.compile(r"\b(i'?m|i am|this is|my name is) (jane|maria|sam park)\b|"
                         r"\bhello\?$", re.IGNORECASE)
_LEAK_EXTRA = re.compile(r"opt_out|set_disposition|schedule_callback|end_call|"
                         r"\btool\b|json|\{|\}|\[|\]|\bnote:|rules|examples|callee",
                         re.IGNORECASE)


def check_reply(d: TextDialogue, turn: Turn, reply: str) -> list[str]:
    failures: list[str] = []
    known = [m.content for m in d.messages if m.role in ("system", "user")]
    guard = ReplyGuard.build(turn.said, known, d.campaign.agent.persona_name, "")
    fault = guard.check(reply)
    if fault is Fault.CALLEE_VOICE or _ROLE_EXTRA.search(reply):
        failures.append("role")
    if fault is Fault.INSTRUCTIONS or _LEAK_EXTRA.search(reply):
        failures.append("leak")
    if fault in (Fault.ECHO, Fault.INVENTED, Fault.PASSIVE):
        failures.append(str(fault))
    if not reply or LINES.fallback in reply:
        failures.append("no answer")
    elif turn.expect and not re.search(turn.expect, reply, re.IGNORECASE) \
            and not (d.outcome.on_dnc and LINES.opt_out_confirm in reply):
        failures.append("goal")
    if turn.forbid and re.search(turn.forbid, reply, re.IGNORECASE):
        failures.append("forbidden")
    return failures


@pytest.fixture(scope="module")
def llm() -> Iterator[LlamaLlm]:
    cache = Path(os.environ.get("TELEVOX_MODELS_DIR", REPO / "var" / "models"))
    settings = ModelSettings(cache_dir=cache)
    if os.environ.get("TELEVOX_LLM"):
        settings = settings.model_copy(update={"llm": os.environ["TELEVOX_LLM"]})
    engines = Engines(settings,
                      manifest=load_manifest(REPO / "models" / "manifest.json"))
    yield engines.llm()
    engines.close()


async def test_conversation_set(llm: LlamaLlm) -> None:
    campaigns = _campaigns()
    results: list[Result] = []
    started = time.monotonic()
    for c in CONVERSATIONS:
        campaign, variables, zone = campaigns[c.campaign]
        d = TextDialogue(campaign, variables, llm, now=NOW, zone=zone)
        played: list[Result] = []
        for turn in c.turns:
            if d.ended:
                break
            reply = (await d.callee(turn.said)).text
            played.append(Result(c.name, turn.said, reply, check_reply(d, turn, reply)))
        disposition = d.disposition()
        last = played[-1]
        if c.dispositions and disposition not in c.dispositions:
            last.failures.append(f"disposition {disposition.value}")
        if d.outcome.on_dnc != c.dnc:
            last.failures.append(f"dnc {d.outcome.on_dnc}")
        results += played
        for r in played:
            mark = "ok  " if not r.failures else "FAIL"
            print(f"{mark} [{c.name}] {r.said!r} -> {r.reply!r} {' '.join(r.failures)}")
        print(f"     [{c.name}] disposition {disposition.value}, dnc {d.outcome.on_dnc}, "
              f"rejected {d.policy.faults}")
    elapsed = time.monotonic() - started
    passed = sum(1 for r in results if not r.failures)
    rate = passed / len(results)
    print(f"conversation set: {passed}/{len(results)} replies passed ({rate:.1%}) in "
          f"{len(CONVERSATIONS)} conversations, {elapsed:.0f} s")
    assert len(results) >= 40, "at least 40 scripted callee turns are played"
    assert rate >= 0.95, [r for r in results if r.failures]
