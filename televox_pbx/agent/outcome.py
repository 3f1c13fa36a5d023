"""The disposition a finished call is stored with: one pass over the whole transcript.

During the call the model may set a disposition with a tool, and often sets the wrong
one or none (confirmed appointments were stored as COMPLETED). After hang-up, off the
critical path, the whole transcript is read again: strong signals (an opt-out, a
voicemail, a wrong number, a booked callback) stand; a vague or missing verdict is
replaced by what the callee's words say; an appointment the callee said yes to is
INTERESTED, whatever the model set.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol

from televox_pbx.agent.classify import classify, completed_or_no_answer
from televox_pbx.agent.examples import Kind, campaign_kind
from televox_pbx.agent.intents import is_affirmative, is_leaving, is_negative
from televox_pbx.config.campaign import Campaign
from televox_pbx.domain import AmdStatus, Disposition


class Turn(Protocol):
    @property
    def speaker(self) -> str: ...  # "agent" or "callee"

    @property
    def text(self) -> str: ...


# Kept as set: an opt-out is a fact; VOICEMAIL came from AMD; a CALLBACK from the tool
# means a time was booked. A wrong number stands when the callee said something like it:
# the model once filed a hostile "This is a scam" as WRONG_NUMBER, which stops the calls.
_STANDS = frozenset({Disposition.OPT_OUT, Disposition.VOICEMAIL, Disposition.CALLBACK})
_WRONG_HINT = re.compile(r"\b(wrong|no(body| one)|not (me|him|her|here)|moved|who'?s that|"
                         r"don'?t know (any|a|who|her|him)|isn'?t here|not my)\b",
                         re.IGNORECASE)
_VAGUE = frozenset({None, Disposition.COMPLETED, Disposition.NO_ANSWER})
_ASKS_TO_CONFIRM = re.compile(
    r"\b(can|could|will|would) you (still )?(make|come|attend|be there)|\bconfirm\b|"
    r"\bstill (on|good|works)\b|\bsee you\b|\bwork for you\b", re.IGNORECASE)


# The agent telling a callee who just said yes that it is settled. The dental opening
# asks nothing ("...about your appointment on Tuesday."): a "Yes." to it, answered "Great,
# your appointment is confirmed. Goodbye.", was stored NO_ANSWER, and NO_ANSWER is dialled
# again. ("Is booked" is how a reminder states the booking, not a yes to it.)
_SAYS_CONFIRMED = re.compile(r"\b(is|are) (all )?confirmed\b|\byou'?re all set\b|"
                             r"\bsee you (then|on|at|next)\b", re.IGNORECASE)


def _clear_yes(text: str) -> bool:
    """A yes that is an answer ("Yes?" and "Okay, what about it?" ask instead; "Okay,
    thank you. Goodbye." takes leave: on the real PBX it followed a "Can you make your—"
    the callee had cut off, and the call was stored as a confirmed appointment)."""
    return is_affirmative(text) and not is_negative(text) and "?" not in text \
        and not is_leaving(text)


def confirmed(turns: Sequence[Turn]) -> bool:
    """The callee's last answer to a question about coming was a yes, or the agent told
    them it is confirmed right after a clear yes; a no since then undoes either."""
    verdict = False
    asked = False  # the agent's last turn asked about coming
    yes = refused = False  # the callee's last turn was a clear yes; they said no to coming
    for turn in turns:
        text = turn.text
        if turn.speaker == "agent":
            settled = yes and not refused and _SAYS_CONFIRMED.search(text) is not None
            verdict = verdict or settled
            # "...is confirmed. See you then!" states it: the farewell after is no answer.
            asked = not settled and _ASKS_TO_CONFIRM.search(text) is not None
            continue
        yes = _clear_yes(text)
        if asked and (yes or is_negative(text)):
            verdict, refused = yes, not yes
        elif is_negative(text):
            verdict = False
        asked = False
    return verdict


def settle(campaign: Campaign, decided: Disposition | None, turns: Sequence[Turn],
           amd: AmdStatus | None) -> Disposition:
    """The disposition to store. `decided`: what the call set (tool, DTMF, opt-out)."""
    callee = [t.text for t in turns if t.speaker == "callee"]
    if decided in _STANDS or (decided is Disposition.WRONG_NUMBER
                               and any(_WRONG_HINT.search(t) for t in callee)):
        assert decided is not None
        return decided
    if decided is Disposition.WRONG_NUMBER:
        decided = None
    rules = classify(callee, amd)
    if rules in (Disposition.OPT_OUT, Disposition.VOICEMAIL, Disposition.WRONG_NUMBER):
        return rules
    kind = campaign_kind(campaign)
    specific = rules not in _VAGUE
    if kind is Kind.APPOINTMENT and confirmed(turns) \
            and rules in (Disposition.INTERESTED, *_VAGUE):
        result = Disposition.INTERESTED
    elif decided in _VAGUE and (specific or decided is None):
        # A survey that got answers is COMPLETED, whatever words came in them.
        result = Disposition.COMPLETED if kind is Kind.SURVEY and decided is not None \
            and rules is Disposition.INTERESTED else rules
    elif kind is Kind.APPOINTMENT and decided is Disposition.INTERESTED \
            and rules in (Disposition.CALLBACK, Disposition.NOT_INTERESTED):
        result = rules  # the model's yes against the callee's own "I can't come"
    else:
        assert decided is not None
        result = decided
    if result is Disposition.COMPLETED:
        return completed_or_no_answer(callee)
    return result
