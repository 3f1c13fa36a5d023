"""Rule-based disposition from the callee's words, for calls where none was set."""

from __future__ import annotations

import re
from collections.abc import Sequence

from televox_pbx.agent.optout import is_opt_out
from televox_pbx.domain import AmdStatus, Disposition


def _rx(*phrases: str) -> re.Pattern[str]:
    return re.compile("|".join(rf"\b{p}\b" for p in phrases), re.IGNORECASE)


_VOICEMAIL = _rx(r"leave (me )?a message", r"after the (tone|beep)", r"voice ?mail",
                 r"not available (right now|to take your call)", r"record your message",
                 r"mailbox")
_WRONG = _rx(r"wrong number", r"no one (here )?(by|named|with|called) that name",
             r"(doesn'?t|does not) live here", r"(you have|you've got) the wrong",
             r"nobody (here )?(by|named|called) that",
             r"i'?m not (?!interested|coming|sure|available|home|free|busy|going|able)\w+,? "
             r"(you|sorry)",
             r"there'?s no \w+ (here|at this number)", r"wrong person",
             r"this (isn'?t|is not) \w+'?s? (number|phone)")
_CALLBACK = _rx(r"call (me )?back", r"call (me )?(again )?(later|tomorrow|next week|another time)",
                r"(not|isn'?t) a good time", r"bad time", r"i'?m (busy|driving|at work)",
                r"try (me )?(again )?(later|tomorrow)", r"another time", r"reschedul\w*",
                r"(can'?t|cannot|couldn'?t) make it", r"won'?t be able to (make it|come)",
                r"another day", r"have to work",
                # Before "i can make it" (INTERESTED) is found inside it.
                r"(don'?t|do not) think (i|we)( can| could| will|'?ll) (make it|come|be there)",
                r"(have|ask) (them|someone|the front desk) "
                r"(to )?call me", r"a different (day|time)")
_NOT_INTERESTED = _rx(r"not interested", r"no,? thanks?( you)?", r"no thank you",
                      r"(don'?t|do not) (want|need) (it|that|this|any)", r"not for me",
                      r"i'?ll pass", r"not right now", r"cancel (it|the appointment|that)",
                      r"switched (dentists?|doctors?|providers?|clinics?)",
                      r"i don'?t do surveys", r"i'?m not coming")
_INTERESTED = _rx(r"interested", r"sounds (good|great|perfect|fine)", r"sign me up",
                  r"tell me more", r"works", r"works for me", r"i'?d (like|love)",
                  r"let'?s do it", r"yes,? please", r"absolutely", r"book (it|me)",
                  r"i'?ll be there", r"i will be there", r"i can make it",
                  r"see you (then|there)", r"i'?ll (come|attend)", r"count me in")

_FILLERS = frozenset({
    "hello", "hi", "hey", "yes", "yeah", "yep", "no", "nope", "ok", "okay", "um", "uh", "hmm",
    "mm", "huh", "what", "who", "sorry", "pardon", "speaking", "this", "is", "it"})


def substantive(text: str) -> bool:
    """More than a greeting or filler: 'hello?' is not, 'who is this, what do you want' is."""
    words = re.findall(r"[a-z']+", text.lower())
    return len([w for w in words if w not in _FILLERS]) >= 2


def classify(callee_turns: Sequence[str], amd: AmdStatus | None = None) -> Disposition:
    """Rules in priority order: opt-out, voicemail, wrong number, callback, no, yes, else
    COMPLETED (or NO_ANSWER when the callee said nothing substantive in more than one turn)."""
    text = " ".join(callee_turns)
    if any(is_opt_out(t) for t in callee_turns):
        return Disposition.OPT_OUT
    if amd is AmdStatus.MACHINE or _VOICEMAIL.search(text):
        return Disposition.VOICEMAIL
    if _WRONG.search(text):
        return Disposition.WRONG_NUMBER
    if _CALLBACK.search(text):
        return Disposition.CALLBACK
    if _NOT_INTERESTED.search(text):
        return Disposition.NOT_INTERESTED
    if _INTERESTED.search(text):
        return Disposition.INTERESTED
    return completed_or_no_answer(callee_turns)


def completed_or_no_answer(callee_turns: Sequence[str]) -> Disposition:
    """A 'completed' call where the callee said nothing substantive counts as NO_ANSWER so
    the dialer retries it."""
    if sum(1 for t in callee_turns if substantive(t)) <= 1 and not any(
            len(t.split()) >= 6 for t in callee_turns):
        return Disposition.NO_ANSWER
    return Disposition.COMPLETED
