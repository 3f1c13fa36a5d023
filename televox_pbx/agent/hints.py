"""A note for the model on what the callee's turn calls for, read with rules.

A 1.5B model matches the callee's words against its examples and sometimes picks the
wrong one ("I can't make Tuesday" answered as a cancellation, "call me back later"
answered with a made-up time). Where the deterministic rules (agent/classify.py) see
what the turn is, a one-line note after it says what to do. The notes are not stored
with the call: `with_hints` puts them back after every callee turn they fit, each time
the same way, so each prompt still starts with the previous one (and llama.cpp's saved
state of the last reply serves the next).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from televox_pbx.agent.classify import classify
from televox_pbx.agent.examples import Kind
from televox_pbx.agent.greetings import only_greets
from televox_pbx.agent.intents import is_affirmative, is_leaving
from televox_pbx.domain import Disposition
from televox_pbx.knowledge.grounding import strip_note
from televox_pbx.voice.interfaces import ChatMessage

_QUESTION = re.compile(r"\?\s*$|^\s*(what|where|when|how|why|which|is|are|do|does|can|"
                       r"could|will|would)\b", re.IGNORECASE)
_WHO = re.compile(r"\bwho (is|are|was|'s) (this|you|calling|speaking)\b|\bwho are you\b|"
                  r"\bwho am i (talking|speaking) to\b|"
                  r"\b(robot|a machine|a real person|human)\b|"
                  # "Is this about my electricity bill?" was answered "Yes, this is about
                  # your electricity bill" (bench/capacity.py): it asks why they call. Only
                  # as a yes/no question: "What is it about?" has its own example, and with
                  # this note the real PBX heard who was calling but not why.
                  r"(^|[.?!,]\s*)(is|are) (this|it|you) (calling )?(about|regarding)\b|"
                  r"\bare you calling (about|for|because)\b", re.IGNORECASE)
_SOURCE = re.compile(r"\b(who|where|how) (gave you|did you get|got|'d you get) (my|this) "
                     r"(phone )?(number|phone)\b", re.IGNORECASE)
_HOSTILE = re.compile(r"\b(scam|scammer|useless|idiots?|stupid|annoying|ridiculous|"
                      r"hate|rude|liars?)\b", re.IGNORECASE)
_TIME = re.compile(r"\b(\d{1,2}(:\d\d)?\s*(am|pm|a\.m\.|p\.m\.|o'?clock)?|tomorrow|tonight|"
                   r"today|morning|afternoon|evening|noon|monday|tuesday|wednesday|"
                   r"thursday|friday|saturday|sunday|next week|weekend)\b", re.IGNORECASE)


def mentions_time(text: str) -> bool:
    """The callee named a day or a time (a callback may be booked for it)."""
    return _TIME.search(text) is not None


_OFFERED = re.compile(r"\bfront desk\b.*\bcall you\b|\bcall you back\b.*\bnew time\b",
                      re.IGNORECASE)
_BUSY = re.compile(r"\b(busy|driving|at work|call (me )?back|later|bad time|not a good time)\b",
                   re.IGNORECASE)
_CANCEL = re.compile(r"\bcancel", re.IGNORECASE)
_CANCELS = re.compile(r"(?<!n't )(?<!not )\bcancel", re.IGNORECASE)  # not "don't cancel"
# Small talk a call is not for: the model offered to help find a pizza place ("Sure, I
# can help you find a good pizza place around here. What's your preferred location?").
_SMALL_TALK = re.compile(r"(^|[.!?,]\s*)((so|hey|oh|hi|well),? )?(do you know (a|an|any|of) "
                         r"(good|nice|great)|(can|could) you recommend (a|an|any|some) "
                         r"(?!(good |better )?(time|day|date|slot|hour))|what'?s the weather "
                         r"(like|today)|did you (see|watch) the (game|match|news|show|movie))\b",
                         re.IGNORECASE)
# After the opening the model greeted back and said its whole introduction again ("Hi
# Jane, this is Ava, an AI assistant calling from..."), or took the "yes" of "Hi, yes,
# speaking." for a confirmation and said goodbye. With the words below an appointment
# call went on to its question in 6 replies of 8, and never confirmed. The other kinds get
# the instruction, which the model follows less often (the prompt's examples answer a
# "Hello?" with the introduction): a survey's words were said as the callee's ("Yes, I
# have a minute."), and "...Is now a good time?" was followed 1 time in 6.
# A reply that introduces the agent again is not generated again: tried, every retry
# began with another greeting ("Hello, Hi Jane") and the turn ended in the fallback line.
_GREETED_WORDS = {
    Kind.APPOINTMENT: "Say something like: I'm calling to confirm your appointment. Can you "
                      "make it?"}
_GREETED = ("They only greeted you. Do not greet them or say who you are again: say why "
            "you call and ask your question.")


# "Okay, thank you. Goodbye." after a question they never heard whole (cut off by their
# own words): the model answered "Great, your appointment is confirmed." on the real PBX.
_LEAVING = "They are saying goodbye without an answer. Do not confirm anything. Say " \
           "something like: Alright, thank you for your time. Goodbye."
_ASKED_WHEN = re.compile(r"\bwhen\b|\bwhat time\b|\bbetter time\b|\bwhich day\b",
                         re.IGNORECASE)


def turn_hint(kind: Kind, callee: str, agent_before: str = "", *,
              opening: bool = False) -> str | None:
    """What to do with this turn (after the agent said `agent_before`; `opening`: that was
    the call's opening), or None when the rules cannot tell."""
    if not callee:
        return None
    if opening and only_greets(callee, agent_before):
        return _GREETED_WORDS.get(kind, _GREETED)
    if _ASKED_WHEN.search(agent_before) and mentions_time(callee):
        return "They gave a time: book it with schedule_callback, then say goodbye."
    if _SOURCE.search(callee):
        # The model asked them for their name and number instead. (As words to say: the
        # guard holds a reply to the notes' own instructions, agent/guard.py.)
        return "Say something like: I'm sorry, I don't know where it came from. Would you " \
               "like us to stop calling you?"
    if _WHO.search(callee):
        return "Say who you are, that you are an AI assistant, and why you call."
    rules = classify([callee])
    if rules is Disposition.WRONG_NUMBER:
        return "Wrong person: apologise, set WRONG_NUMBER and say goodbye."
    if _OFFERED.search(agent_before) and (is_affirmative(callee)
                                          or rules is Disposition.CALLBACK):
        return "Set CALLBACK, say the front desk will call them, and say goodbye."
    if rules is Disposition.CALLBACK:
        if re.search(r"\bcall\b", callee, re.IGNORECASE) and mentions_time(callee) \
                and not _QUESTION.search(callee):  # "Call me back tomorrow at five."
            return "They gave a time: book it with schedule_callback, then say goodbye."
        if kind is Kind.APPOINTMENT and not _BUSY.search(callee):
            return "Say something like: No problem. Would you like our front desk to call " \
                   "you back to find a new time?"
        return "Say something like: No problem. When would be a better time to call you " \
               "back?"
    if _HOSTILE.search(callee):
        return "Stay calm and polite: say who you are and why you call."
    if _SMALL_TALK.search(callee):
        back = {Kind.APPOINTMENT: "I'm calling about your appointment. Can you make it?",
                Kind.SURVEY: "I'm calling with a few quick questions about your visit."}
        if kind not in back:
            return "Say you can't help with that, then say again in one sentence what " \
                   "you are offering them."
        return "Say something like: Sorry, I can't help with that. " + back[kind]
    if _QUESTION.search(callee):
        # No note: the system prompt's rules already say it ("Answer briefly, then steer
        # back to the goal"; only the facts written there), and every token of a note is
        # on the reply's critical path. This one (22 tokens with its role markers, the
        # commonest note) cost ~0.5 s of first audio a question. The conversation set
        # went from 52/53 replies with it to 51/53 without it; which replies fail moves
        # with any change to an earlier reply (the sampler's state carries over).
        return None
    if kind is Kind.APPOINTMENT and _CANCELS.search(callee):
        # With the note below alone, the model cancelled as the patient ("I'm sorry, I
        # can't attend your appointment"), three times over: words in the agent's mouth.
        return "Set NOT_INTERESTED. Say something like: Alright, I've noted that you " \
               "want to cancel. Thank you, goodbye."
    if rules is Disposition.NOT_INTERESTED:
        return "Set NOT_INTERESTED. Say something like: I understand, thank you for " \
               "letting us know. Goodbye."
    if rules is Disposition.INTERESTED and kind is Kind.APPOINTMENT:
        return "Set INTERESTED, thank them and say goodbye."
    if rules is Disposition.NO_ANSWER and is_leaving(callee):
        return _LEAVING
    return None


def with_hints(kind: Kind, messages: Sequence[ChatMessage]
               ) -> tuple[list[ChatMessage], str | None]:
    """`messages` with each callee turn's note (if any) right after it, and the note of
    the last callee turn (None: none)."""
    out: list[ChatMessage] = []
    agent, agents, hint = "", 0, None
    for m in messages:
        out.append(m)
        if m.role == "assistant":
            agent, agents = m.content, agents + 1
        elif m.role == "user" and not m.content.lstrip().startswith("["):
            hint = turn_hint(kind, strip_note(m.content).strip(), agent, opening=agents == 1)
            if hint is not None:
                out.append(ChatMessage("user", f"[{hint}]"))
    return out, hint


def contradicts(kind: Kind, callee: str, reply: str) -> bool:
    """The reply goes against what the rules read in the callee's turn: cancelling for
    someone who asked to reschedule or confirmed ("I can't make it that day" was once
    answered with the cancellation example)."""
    if not callee or _CANCEL.search(callee):
        return False
    rules = classify([callee])
    if rules is Disposition.CALLBACK:
        return _CANCEL.search(reply) is not None
    if rules is Disposition.INTERESTED and kind is Kind.APPOINTMENT:
        return re.search(r"\bcancel|\bsorry to hear", reply, re.IGNORECASE) is not None
    return False
