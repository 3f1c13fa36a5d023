"""The agent stays in its role: prompt structure, reply guard and policy, the STT noise
screen, opt-out confirmation and the end-of-call disposition pass (no models)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from voice_fakes import Reply, ScriptedLlm, tone

from televox_pbx.agent.classify import classify
from televox_pbx.agent.examples import Kind, campaign_kind
from televox_pbx.agent.guard import Fault, ReplyGuard
from televox_pbx.agent.hearing import screen
from televox_pbx.agent.hints import only_greets, turn_hint, with_hints
from televox_pbx.agent.intents import is_affirmative, is_negative
from televox_pbx.agent.optout import is_opt_out, likely_opt_out
from televox_pbx.agent.outcome import settle
from televox_pbx.agent.prompts import LINES, stable_prompt, system_prompt
from televox_pbx.agent.reply_policy import NO_TIME, OFF_TURN, ReplyPolicy
from televox_pbx.agent.warmup import warm_prompts
from televox_pbx.config.campaign import Campaign
from televox_pbx.config.loader import load_model
from televox_pbx.domain import Disposition
from televox_pbx.voice.engines.llm_states import covered_by
from televox_pbx.voice.interfaces import ChatMessage, LlmDelta, ToolCall, Transcript

REPO = Path(__file__).resolve().parents[1]
DENTAL = load_model(REPO / "config" / "campaigns" / "dental.yaml", Campaign)
SURVEY = load_model(REPO / "config" / "campaigns" / "survey.yaml", Campaign)
VARS = {"NAME": "Jane Doe", "APPOINTMENT_DATE": "Tuesday 3 March", "APPOINTMENT_TIME": "2:30 pm"}
SYSTEM = system_prompt(DENTAL, VARS, datetime(2026, 3, 2, 10, 0))


# --- prompt structure ------------------------------------------------------------------


def test_prompt_puts_what_never_changes_first() -> None:
    jane = system_prompt(DENTAL, VARS, datetime(2026, 3, 2, 10, 0))
    joe = system_prompt(DENTAL, {**VARS, "NAME": "Joe Bloggs", "APPOINTMENT_DATE": "Friday"},
                        datetime(2026, 3, 4, 16, 0))
    stable = stable_prompt(DENTAL)
    assert jane.startswith(stable) and joe.startswith(stable), "one prefix for every call"
    assert "Jane" not in stable and "Tuesday 3 March" not in stable
    assert "Tuesday 3 March at 2:30 pm" in jane and "Friday" in joe
    for needle in ("Ava", "Bright Smile Dental", "12 Main Street", "Rules:", "Examples",
                   "opt_out", "WRONG_NUMBER", "Callee:"):
        assert needle in stable


def test_examples_fit_the_kind_of_campaign() -> None:
    assert campaign_kind(DENTAL) is Kind.APPOINTMENT
    assert campaign_kind(SURVEY) is Kind.SURVEY
    solar = DENTAL.model_copy(update={"agent": DENTAL.agent.model_copy(update={
        "goal": "Offer a free roof survey.", "opening_line": "Hi, I'm an AI from Acme."})})
    assert campaign_kind(solar) is Kind.OUTREACH
    answers = solar.model_copy(update={"agent": solar.agent.model_copy(update={
        "goal": "Book a free consultation. Answer questions about it briefly."})})
    assert campaign_kind(answers) is Kind.OUTREACH  # questions it answers, not asks
    asks = solar.model_copy(update={"agent": solar.agent.model_copy(update={
        "goal": "Ask them two questions about the new bus route."})})
    assert campaign_kind(asks) is Kind.SURVEY
    assert "Can you make your appointment?" in stable_prompt(DENTAL)
    assert "from 1 to 5" in stable_prompt(SURVEY)
    assert "Would you like to hear more?" in stable_prompt(solar)
    # Asked what the call is about, each kind says why it calls (with no such example,
    # the model took the price example: "I'm sorry, I don't have that information").
    assert "I'm calling from Bright Smile Dental about your appointment." in \
        stable_prompt(DENTAL)
    assert "with a few questions about your visit." in stable_prompt(SURVEY)
    assert "with an offer for you." in stable_prompt(solar)


# --- the reply guard ---------------------------------------------------------------------


def guard(callee: str = "Hello?") -> ReplyGuard:
    return ReplyGuard.build(callee, [SYSTEM, callee], "Ava", "Jane Doe")


@pytest.mark.parametrize(("reply", "fault"), [
    ("Great! I'll be there on Tuesday.", Fault.CALLEE_VOICE),
    ("Yes, I can make it.", Fault.CALLEE_VOICE),
    ("I'm sorry, but I can't make Tuesday.", Fault.CALLEE_VOICE),
    ("I can't attend your appointment.", Fault.CALLEE_VOICE),
    ("I'd like to reschedule my appointment.", Fault.CALLEE_VOICE),
    ("Who is this?", Fault.CALLEE_VOICE),
    ("Patient: yes, that works.", Fault.CALLEE_VOICE),
    ("Hi, this is Jane.", Fault.CALLEE_VOICE),
    ("If you ask not to be called again, I'll call the opt_out tool at once.",
     Fault.INSTRUCTIONS),
    ("I will set the disposition to INTERESTED.", Fault.INSTRUCTIONS),
    ("If you ask not to be called again, I'll remove you.", Fault.INSTRUCTIONS),
    ('{"tool": null, "say": "Hi"}', Fault.INSTRUCTIONS),
    ("The cleaning cost is $50.", Fault.INVENTED),
    ("It costs fifty dollars.", Fault.INVENTED),
    ("Call us at 555 0199.", Fault.INVENTED),
    ("Hello! How can I assist you today?", Fault.PASSIVE),
])
def test_guard_rejects(reply: str, fault: Fault) -> None:
    assert guard().check(reply) is fault


def test_guard_rejects_an_echo_of_the_callee() -> None:
    said = "I have a meeting at work on Tuesday afternoon."
    assert guard(said).check("I have a meeting at work on Tuesday afternoon.") is Fault.ECHO
    assert guard(said).check("No problem. Would the front desk call you to pick a new "
                             "time?") is None


def test_a_reply_that_opens_by_saying_a_long_turn_back_is_an_echo() -> None:
    """From the real PBX: the first words of the echo went out before the rest was seen,
    and the whole of it stayed under the question share."""
    turn = "Yes. I have a minute. What is it about?"
    for reply in ("I have a minute.", "Hello! I have a minute. What is it about?"):
        assert guard(turn).check(reply) is Fault.ECHO, reply
    assert guard(turn).check("I'm calling from Bright Smile Dental about your "
                             "appointment.") is None
    assert guard(turn).check("$") is None  # no words at all: nothing said back
    # A short turn said back is a confirmation.
    assert guard("Okay, see you on Tuesday.").check("Great, see you on Tuesday.") is None
    asked = "I was wondering if I need to be at home for the visit?"
    assert guard(asked).check("No, you need to be at home for the visit.") is None


def test_a_reply_that_says_a_notes_instruction_aloud_quotes_it() -> None:
    """From the 0.5B model: the note's instruction said as the reply."""
    note = "Say you can't help with that, then say again in one sentence what you are " \
           "offering them."
    g = ReplyGuard.build("Can you recommend a plumber?", [SYSTEM], "Ava", "Jane Doe",
                         notes=[note])
    assert g.check("Sorry, I can't help with that. Then say again, in one sentence, what "
                   "you are offering them.") is Fault.INSTRUCTIONS
    assert g.check("I'm sorry, I can't help with that. Would you like to hear about our "
                   "free solar survey?") is None
    # The words a note gives the agent to say are its own.
    words_note = "Say something like: I'm sorry, I don't know where it came from. Would " \
                 "you like us to stop calling you?"
    g = ReplyGuard.build("Who gave you my number?", [SYSTEM], "Ava", "Jane Doe",
                         notes=[words_note])
    assert g.check("I'm sorry, I don't know where it came from. Would you like us to stop "
                   "calling you?") is None


def test_a_reply_that_opens_with_the_callees_whole_turn_parrots_it() -> None:
    """From the 0.5B model on the conversation set."""
    assert guard("Okay, go ahead.").check("Okay, go ahead.") is Fault.ECHO
    assert guard("Three. It was okay.").check("Three. It was okay. I'm Sam.") is Fault.ECHO
    assert guard("Okay, go ahead.").check("Okay, go") is None  # not all of it yet
    assert guard("Okay, go ahead.").check("Okay, first question: how satisfied were "
                                          "you?") is None
    assert guard("Yes.").check("Yes. Great.") is None  # a one-word turn
    # Farewells, questions and times are said back to confirm them.
    for turn, reply in [("Thank you, goodbye.", "Thank you, goodbye."),
                        ("Okay, see you then.", "Okay, see you then. Goodbye!"),
                        ("Have a nice day.", "Have a nice day too!"),
                        ("Take care now.", "Take care now. Goodbye."),
                        ("Tomorrow at 5.", "Tomorrow at 5. I'll call you then."),
                        ("Tuesday at three?", "Tuesday at three, yes.")]:
        assert guard(turn).check(reply) is None, turn


def test_an_answer_may_take_up_the_words_of_a_question() -> None:
    asked = "Do I need to be at home for it?"
    assert guard(asked).check("No, you need to be at home for it.") is None
    assert guard(asked).check("Yes, someone needs to be at home for it.") is None
    assert guard(asked).check("Do I need to be at home for it?") is Fault.ECHO


@pytest.mark.parametrize("reply", [
    "Great, your appointment on Tuesday 3 March at 2:30 pm is confirmed. Goodbye!",
    "We're at 12 Main Street, open Monday to Friday 8am to 6pm.",
    "I'm Ava, an AI assistant calling from Bright Smile Dental. Can you make it?",
    "I'm sorry, I don't have that information. Are you still interested in coming?",
    "No problem. Would you like our front desk to call you back to find a new time?",
])
def test_guard_passes_the_agents_own_lines(reply: str) -> None:
    assert guard().check(reply) is None


# --- the reply policy ----------------------------------------------------------------------


async def run(policy: ReplyPolicy, replies: list[Reply], callee: str = "Hello?",
              before: list[ChatMessage] | None = None) -> tuple[str, list[str], ScriptedLlm]:
    llm = ScriptedLlm(list(replies))
    messages = [ChatMessage("system", SYSTEM), *(before or []), ChatMessage("user", callee)]
    deltas: list[LlmDelta] = [d async for d in policy.stream(llm, messages, {"tools": []})]
    text = "".join(d.text for d in deltas)
    tools = [d.tool_call.name for d in deltas if d.tool_call is not None]
    return " ".join(text.split()), tools, llm


def policy() -> ReplyPolicy:
    return ReplyPolicy.for_call(DENTAL, VARS)


async def test_a_reply_in_the_callees_voice_is_generated_again() -> None:
    p = policy()
    text, _tools, llm = await run(p, ["Great! I'll be there on Tuesday.",
                                     "Great! We'll see you on Tuesday then."])
    assert text == "Great! We'll see you on Tuesday then."
    assert p.faults == [Fault.CALLEE_VOICE] and len(llm.calls) == 2
    assert "Do not speak for the callee" in llm.calls[1][-1].content, "a note says why"
    assert llm.calls[1][:-1] == llm.calls[0], "the prompt itself is unchanged"


async def test_a_reply_that_says_the_turns_note_aloud_is_generated_again() -> None:
    p = ReplyPolicy(kind=Kind.OUTREACH, persona="Anna")
    text, _tools, llm = await run(p, [
        "Sorry, I can't help with that. Then say again in one sentence what you are "
        "offering them.", "Sorry, I can't help with that. Would you like a free survey?"],
        callee="Can you recommend a plumber?")
    # The note's words are never said (its first clause went out, and is corrected).
    assert "say again" not in text and "offering" not in text
    assert text.endswith("Would you like a free survey?")
    assert p.faults == [Fault.INSTRUCTIONS] and len(llm.calls) == 2
    assert "offering them" in llm.calls[0][-1].content, "the note came with the turn"


async def test_after_two_failures_the_safe_line_is_said() -> None:
    p = policy()
    text, _tools, llm = await run(p, ["Yes, I can make it."] * 3)
    assert text == LINES.fallback and len(llm.calls) == 3 and p.fallbacks == 1


async def test_tools_wait_for_the_speech_that_carries_them() -> None:
    bad = [ToolCall("set_disposition", {"disposition": "INTERESTED"}), "I'll be there!"]
    good = [ToolCall("set_disposition", {"disposition": "CALLBACK"}),
            "Thank you, the front desk will call you. Goodbye."]
    text, tools, _ = await run(policy(), [bad, good])
    assert tools == ["set_disposition", "end_call"], "only the accepted reply's tool"
    assert text.endswith("Goodbye.")


async def test_a_reply_that_goes_wrong_late_is_corrected() -> None:
    p = policy()
    text, _, llm = await run(p, [
        "Thanks for letting me know about that. If you ask not to be called again, "
        "I'll call the opt_out tool at once.", "Can you still make your appointment?"])
    # Words go out a few behind the model: the leak itself is never said.
    assert text.startswith("Thanks for letting me know about that.")
    assert "opt_out" not in text and "tool" not in text
    assert text.endswith("Sorry, Can you still make your appointment?")
    assert p.faults == [Fault.INSTRUCTIONS] and len(llm.calls) == 2


async def test_a_word_still_being_written_is_not_passed_on_with_the_first_words() -> None:
    """The model's tokens lead with a space (" is", " $", "50"): the token that completed
    the eighth word brought the "$" with it, all of it went out (nothing in it failed
    yet), and the callee heard "...survey is $ Sorry,"."""
    p = policy()
    words = ["The", "cost", "of", "a", "cleaning", "visit", "today", "is"]  # then " $"
    text, _, _ = await run(p, [[words[0], *(" " + w for w in words[1:]), " $", "50",
                                " dollars."],
                               "I don't have prices. Can you make your appointment?"])
    assert p.faults == [Fault.INVENTED]
    assert "$" not in text and "dollars" not in text
    assert text == ("The cost of a cleaning visit today is Sorry, I don't have prices. "
                    "Can you make your appointment?")


async def test_a_long_reply_ends_at_a_sentence() -> None:
    text, _, _ = await run(policy(), [
        "Hi Jane Doe, this is Ava, an AI assistant from Bright Smile Dental. I'm calling to "
        "confirm your appointment on Tuesday 3 March at 2:30 pm. If you cannot come, I can "
        "offer a callback."])
    assert text.endswith("at 2:30 pm.") and "callback" not in text


async def test_a_tool_only_opt_out_asks_first() -> None:
    text, tools, _ = await run(policy(), [[ToolCall("opt_out"), "Removed."]],
                               callee="Cancel it, I switched dentists.")
    assert text == LINES.opt_out_check and tools == []
    asked = [ChatMessage("user", "Cancel it."), ChatMessage("assistant", LINES.opt_out_check)]
    _, tools, llm = await run(policy(), [], callee="Yes.", before=asked)
    assert tools == ["opt_out"] and llm.calls == [], "a yes is the second signal"
    text, tools, llm = await run(policy(), [[ToolCall("opt_out"), "Bye."],
                                            "Alright. Would you like to book a new time?"],
                                 callee="No, just not this appointment.", before=asked)
    assert tools == [] and text == "Alright. Would you like to book a new time?"
    assert "do not want to stop the calls" in llm.calls[0][-1].content


async def test_set_disposition_opt_out_is_an_opt_out_too() -> None:
    text, tools, _ = await run(policy(), [[ToolCall("set_disposition",
                                                    {"disposition": "OPT_OUT"}), "Ok."]])
    assert text == LINES.opt_out_check and tools == []


async def test_a_misheard_unsubscribe_is_asked_about() -> None:
    text, _tools, llm = await run(policy(), ["I'll subscribe to your appointment."],
                                 callee="and subscribe.")
    assert text == LINES.opt_out_check and llm.calls == []


async def test_a_deterministic_opt_out_passes_the_tool_at_once() -> None:
    _, tools, _ = await run(policy(), [[ToolCall("opt_out"), "Done."]],
                            callee="Never call me again, you hear?")
    assert tools == ["opt_out"]


# --- opt-out phrases and yes / no ------------------------------------------------------------


@pytest.mark.parametrize("text", ["and subscribe.", "Leave me alone.", "Stop.",
                                  "I don't want these calls.", "Don't bother me again."])
def test_likely_opt_out(text: str) -> None:
    assert likely_opt_out(text) and not is_opt_out(text)


@pytest.mark.parametrize("text", ["Cancel it.", "I can't make Tuesday. I have to work.",
                                  "I'm not coming, I switched dentists.", "Yes, I'll be there.",
                                  "Unsubscribe.", "Stop calling me."])
def test_not_a_likely_opt_out(text: str) -> None:
    assert not likely_opt_out(text)


def test_yes_and_no() -> None:
    assert is_affirmative("Yes.") and is_affirmative("Yeah, please do.")
    assert not is_affirmative("Yes, but not this week.")
    assert is_negative("No, just the appointment.") and is_negative("I don't, no.")
    assert not is_negative("Yes.")


# --- the STT noise screen -------------------------------------------------------------------


VOICE = tone(1.0, amplitude=6000)
HISS = tone(1.0, amplitude=30)


@pytest.mark.parametrize(("transcript", "pcm", "kept"), [
    (Transcript("Thank you for watching!", 0.4, 0.3, -0.8), VOICE, False),
    (Transcript("you", 0.6, 0.2, -0.5), VOICE, False),
    (Transcript("Subtitles by the Amara.org community", 0.5, 0.1, -0.4), VOICE, False),
    (Transcript("Thank you.", 0.5, 0.55, -0.7), VOICE, False),  # doubtful and unsure
    (Transcript("Thank you.", 0.9, 0.02, -0.1), VOICE, True),  # said clearly
    # A stock phrase said over is judged as the phrase.
    (Transcript("Thank you. Thank you.", 0.5, 0.55, -0.7), VOICE, False),
    (Transcript("You. You. You.", 0.6, 0.2, -0.5), VOICE, False),
    (Transcript("Yes, I'll be there.", 0.9, 0.05, -0.2), HISS, False),  # no speech energy
    (Transcript("Hello there.", 0.2, 0.8, -1.3), VOICE, False),  # whisper's no-speech rule
    (Transcript("and subscribe.", 0.8, 0.1, -0.3), VOICE, True),  # maybe "Unsubscribe."
    (Transcript("Yes, I'll be there.", None), VOICE, True),  # engines without the numbers
])
def test_noise_is_never_answered(transcript: Transcript, pcm: bytes, kept: bool) -> None:
    heard = screen(transcript, pcm, 8000)
    assert (heard.text == transcript.text) is kept and bool(heard.dropped) is not kept


# --- the disposition pass after hang-up -------------------------------------------------------


class T:
    def __init__(self, speaker: str, text: str) -> None:
        self.speaker, self.text = speaker, text


def test_a_yes_to_the_appointment_is_interested() -> None:
    turns = [T("agent", "Hi Jane, this is Ava about your appointment. Can you make it?"),
             T("callee", "Yes.")]
    assert settle(DENTAL, None, turns, None) is Disposition.INTERESTED
    assert settle(DENTAL, Disposition.COMPLETED, turns, None) is Disposition.INTERESTED


def test_a_yes_the_agent_confirmed_is_interested_not_dialled_again() -> None:
    """The dental opening asks nothing; the 0.5B model set no disposition. NO_ANSWER would
    have the dialer call a person whose appointment it had just confirmed."""
    opening = T("agent", "Hi Jane, this is Ava, an AI assistant calling from Bright Smile "
                         "Dental about your appointment on Tuesday 3 March.")
    said_yes = [opening, T("callee", "Yes."),
                T("agent", "Great, your appointment is confirmed. Thank you, goodbye.")]
    assert settle(DENTAL, None, said_yes, None) is Disposition.INTERESTED
    said_no = [opening, T("callee", "No."),
               T("agent", "Great, your appointment is confirmed. Thank you, goodbye.")]
    assert settle(DENTAL, None, said_no, None) is not Disposition.INTERESTED
    no_word = [opening, T("callee", "Yes."), T("agent", "Can I help with anything else?")]
    assert settle(DENTAL, None, no_word, None) is not Disposition.INTERESTED
    see_you = [opening, T("callee", "Yes."),
               T("agent", "Great, your appointment is confirmed. See you then!"),
               T("callee", "Thanks, bye.")]  # a farewell, not an answer to "see you"
    assert settle(DENTAL, None, see_you, None) is Disposition.INTERESTED


@pytest.mark.parametrize("turns", [
    # A yes to a callback offer after a no to coming.
    [("agent", "Can you still make it?"), ("callee", "No."),
     ("agent", "Would you like the front desk to call you?"), ("callee", "Yeah."),
     ("agent", "Okay, you're all set. Goodbye.")],
    # A reminder of the booking, then doubt.
    [("agent", "Hi Jane, this is Ava from Bright Smile Dental."),
     ("callee", "Okay, what about it?"),
     ("agent", "Your appointment is booked for Tuesday at 3 pm."),
     ("callee", "I'm not sure I can come that day.")],
    # Real PBX: the callee's goodbye cut the question off, and the model confirmed.
    [("agent", "Hi Sam, this is Ava, an AI assistant calling from Acme Dental about your "
               "appointment."),
     ("callee", "Yes, I have a minute. What is it about?"),
     ("agent", "I'm calling from Acme Dental about your appointment. Can you make your"),
     ("callee", "Okay, thank you. Goodbye."), ("agent", "Great, your appointment is confirmed.")],
    # Confirmed, then taken back.
    [("agent", "Hi Jane, about your appointment on Tuesday."), ("callee", "Yes."),
     ("agent", "Great, your appointment is confirmed."),
     ("callee", "Actually no, I don't think I can make it.")],
])
def test_the_agents_confirmation_needs_a_clear_yes_that_stands(
        turns: list[tuple[str, str]]) -> None:
    assert settle(DENTAL, None, [T(a, b) for a, b in turns], None) \
        is not Disposition.INTERESTED


@pytest.mark.parametrize(("said", "expected"), [
    ("Oh, I can't make Tuesday. I have to work.", Disposition.CALLBACK),
    ("Cancel it.", Disposition.NOT_INTERESTED),
    ("I'm not coming, I switched dentists.", Disposition.NOT_INTERESTED),
    ("There's no Jane here.", Disposition.WRONG_NUMBER),
    ("Yes, I'll be there.", Disposition.INTERESTED),
    ("I don't think I can make it.", Disposition.CALLBACK),  # not "i can make it"
])
def test_the_callees_words_set_the_outcome(said: str, expected: Disposition) -> None:
    assert classify([said]) is expected
    turns = [T("agent", "Hi, can you make your appointment?"), T("callee", said)]
    assert settle(DENTAL, Disposition.COMPLETED, turns, None) is expected


def test_strong_outcomes_stand_and_surveys_complete() -> None:
    turns = [T("agent", "Can you make it?"), T("callee", "Yes.")]
    assert settle(DENTAL, Disposition.CALLBACK, turns, None) is Disposition.CALLBACK
    answers = [T("agent", "How satisfied were you, from 1 to 5?"), T("callee", "Five."),
               T("agent", "Did the technician arrive on time?"),
               T("callee", "Yes, on time, it works great now.")]
    assert settle(SURVEY, Disposition.COMPLETED, answers, None) is Disposition.COMPLETED


def test_a_wrong_number_needs_the_callees_words() -> None:
    hostile = [T("agent", "Can you make your appointment?"),
               T("callee", "This is a scam. You people are useless.")]
    assert settle(DENTAL, Disposition.WRONG_NUMBER, hostile, None) is not \
        Disposition.WRONG_NUMBER
    moved = [T("agent", "Can you make your appointment?"),
             T("callee", "Jane moved away last year.")]
    assert settle(DENTAL, Disposition.WRONG_NUMBER, moved, None) is Disposition.WRONG_NUMBER


# --- per-turn hints ---------------------------------------------------------------------------


@pytest.mark.parametrize(("said", "before", "needle"), [
    ("Oh, I can't make Tuesday. I have to work.", "", "front desk to call you back"),
    ("There's no Jane here.", "", "WRONG_NUMBER"),
    ("I'm busy right now.", "", "When would be a better time"),
    ("Yes, please have them call me.",
     "No problem. Would you like our front desk to call you back to find a new time?",
     "CALLBACK"),
    ("Who is this?", "", "who you are"),
    ("Sorry, who was calling?", "", "who you are"),
    ("Who am I talking to?", "", "who you are"),
    ("This is a scam.", "", "calm"),
    ("Tomorrow at 5 pm.", "When would be a better time?", "schedule_callback"),
    ("Cancel it.", "", "noted that you want to cancel"),
    ("I switched dentists, not coming.", "", "thank you for letting us know"),
    ("Is this about my electricity bill?", "", "why you call"),
    ("Hello, is it about my bill?", "", "why you call"),
    ("Are you calling about the survey?", "", "why you call"),
    ("How did you get my number?", "", "stop calling you"),
    ("Who gave you this number?", "", "stop calling you"),
    ("Yes, I'll be there.", "", "INTERESTED"),
    ("Do you know a good pizza place around here?", "", "can't help with that"),
    ("Hi. Can you recommend a plumber?", "", "can't help with that"),
    ("Okay, thank you. Goodbye.", "Can you make your—", "Do not confirm anything"),
    ("Okay, bye.", "", "Do not confirm anything"),
])
def test_turn_hints(said: str, before: str, needle: str) -> None:
    hint = turn_hint(Kind.APPOINTMENT, said, before)
    assert hint is not None and needle in hint


def test_no_hint_where_the_rules_cannot_tell() -> None:
    assert turn_hint(Kind.SURVEY, "Five, it was great.") is None
    # A question needs none: the rules say how to answer, and a note costs first audio.
    assert turn_hint(Kind.APPOINTMENT, "How much does a cleaning cost?") is None
    assert turn_hint(Kind.APPOINTMENT, "") is None
    # Keeping the appointment is not a cancellation.
    assert "cancel" not in (turn_hint(Kind.APPOINTMENT, "Don't cancel it, I'll come.") or "")
    # Answered by the kind's own example: who and why (the note gave who alone).
    assert turn_hint(Kind.APPOINTMENT, "I have a minute. What is it about?") is None
    # Questions about the call are not small talk.
    assert turn_hint(Kind.OUTREACH, "Do you know how long the survey takes?") is None
    assert turn_hint(Kind.OUTREACH, "What do you think about my roof?") is None
    assert turn_hint(Kind.APPOINTMENT, "Can you recommend a good time to come in?") is None
    assert turn_hint(Kind.APPOINTMENT, "Did you see the email I sent?") is None
    assert turn_hint(Kind.APPOINTMENT, "Yes, bye.") is None  # a yes: not leaving unanswered


OPENING = "Hi Sam, this is Ava, an AI assistant calling from Acme Dental about your appointment."
ASKING = "Hi Maria, this is Sam, an AI assistant. Do you have one minute for three questions?"


@pytest.mark.parametrize(("said", "before", "greets"), [
    ("Hello, this is Sam speaking.", OPENING, True),
    ("Hi, yes, speaking.", OPENING, True),  # the model once confirmed the appointment
    ("Hello, this is Sam Park.", OPENING, True),
    ("Good morning.", OPENING, True),
    ("This is she.", OPENING, True),
    ("Hello. Hello.", OPENING, True),
    ("Hello? This is Sam speaking.", OPENING, True),  # two turns, one message
    ("Hello, Sam speaking.", ASKING, True),
    ("Hello?", OPENING, False),  # maybe the opening was not heard: it is said again
    ("Yes.", OPENING, False),
    ("Hi, yes, speaking.", ASKING, False),  # the yes answers the opening's question
    ("Hello, this is fine.", OPENING, False),
    ("Hello, yes, I can make it.", OPENING, False),
    ("Hello, who is this?", OPENING, False),
    ("Hi, I'm busy right now.", OPENING, False),
    ("Not here.", OPENING, False),
])
def test_a_greeting_after_the_opening_is_told_apart(said: str, before: str,
                                                   greets: bool) -> None:
    assert only_greets(said, before) is greets
    hint = turn_hint(Kind.SURVEY, said, before, opening=True)
    assert (hint is not None and "Do not greet them" in hint) is greets
    # An appointment's note gives the words (the instruction alone was not followed).
    hint = turn_hint(Kind.APPOINTMENT, said, before, opening=True)
    assert (hint is not None and "confirm your appointment. Can you" in hint) is greets


def test_the_greeting_note_is_for_the_turn_after_the_opening_only() -> None:
    assert turn_hint(Kind.APPOINTMENT, "Hello, this is Sam speaking.", OPENING) is None
    messages = [ChatMessage("system", SYSTEM), ChatMessage("assistant", OPENING),
                ChatMessage("user", "Hello, this is Sam speaking.")]
    prompt, hint = with_hints(Kind.APPOINTMENT, messages)
    assert hint is not None and prompt[3] == ChatMessage("user", f"[{hint}]")
    later = [*messages, ChatMessage("assistant", "Can you make it on Tuesday?"),
             ChatMessage("user", "Hi, this is Sam.")]
    prompt, hint = with_hints(Kind.APPOINTMENT, later)
    assert hint is None and prompt[-1] == later[-1]


async def test_hints_follow_each_turn_the_same_way_every_time() -> None:
    """Each prompt starts with the previous prompt and its reply (the cached prefix)."""
    p = policy()
    first = [ChatMessage("system", SYSTEM), ChatMessage("user", "Who is this?")]
    said = "I'm Ava, an AI assistant calling about your appointment."
    llm = ScriptedLlm([said, "Great, see you then."])
    async for _ in p.stream(llm, first, {"tools": []}):
        pass
    second = [*first, ChatMessage("assistant", said),
              ChatMessage("user", "Okay, I'll be there.")]
    async for _ in p.stream(llm, second, {"tools": []}):
        pass
    one, two = llm.calls
    assert one[1] == first[1] and one[2].content.startswith("[Say who you are")
    assert two[:3] == one, "the note comes back where it was"
    assert two[3:5] == second[2:] and "INTERESTED" in two[5].content


async def test_a_callback_needs_a_time_the_callee_said() -> None:
    booked = [ToolCall("schedule_callback", {"when": "2026-03-03T14:30"}),
              "Sure, I'll call you back at 2:30 on Tuesday. Goodbye."]
    p = ReplyPolicy.for_call(SURVEY, {"NAME": "Maria"})
    text, tools, _ = await run(p, [booked], callee="I'm driving. Call me back later.")
    assert text == LINES.ask_when and tools == [] and p.faults == [NO_TIME]
    # An appointment: the front desk calls back, no time needed.
    text, tools, _ = await run(policy(), [booked], callee="Yes, have the front desk call me.")
    assert text == LINES.front_desk_callback and tools == ["set_disposition", "end_call"]
    _, tools, _ = await run(policy(), [booked], callee="Tuesday at 2:30 works.")
    assert tools[0] == "schedule_callback"


async def test_warm_up_evaluates_the_prefix_every_call_starts_with() -> None:
    llm = ScriptedLlm()
    assert await warm_prompts(llm, [DENTAL, SURVEY]) == 2
    [dental], [survey] = llm.prefills
    assert SYSTEM.startswith(dental.content) and dental.role == "system"
    assert system_prompt(SURVEY, {"NAME": "Maria"}).startswith(survey.content)


async def test_a_reply_against_the_turn_is_generated_again() -> None:
    p = policy()
    offer = "No problem. Would you like our front desk to call you back to find a new time?"
    text, _, llm = await run(p, ["Alright, I've noted that you want to cancel. Goodbye.", offer],
                             callee="Oh, I can't make it that day. I have to work.")
    # "Alright," went out at once; the second attempt goes on after it.
    assert text == "Alright, Would you like our front desk to call you back to find a new " \
        "time?" and p.faults == [OFF_TURN]
    assert "front desk to call you back" in llm.calls[1][-1].content, "the hint comes again"


def test_one_saved_llm_state_per_conversation() -> None:
    """The longer prompt makes each saved state ~30 MB: a turn's state replaces the states
    its own history already covers, so two calls no longer evict each other's."""
    keys = [(1, 2, 3), (1, 2, 3, 4), (1, 2, 9), (1, 2)]
    assert covered_by(keys, (1, 2, 3, 4, 5)) == [(1, 2, 3), (1, 2, 3, 4), (1, 2)]
    assert covered_by(keys, (1, 2, 9)) == [(1, 2)]
