"""The reply guard: deterministic checks that a reply is the agent's own, in its role.

A 1.5B model, given a transcript, sometimes writes the next line of either side. Seen on
real calls: it spoke as the patient ("Great! I'll be there on..."), recited its rules
("...I'll call the opt_out tool at once."), echoed the callee's words back, and made up
a price ("The cleaning cost is $50."). Each check here is a pure function of the reply
and of what the agent was given (its prompt, the callee's words), so it is cheap enough
to run on every clause as it streams.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from televox_pbx.agent.prompts import RULES


class Fault(StrEnum):
    CALLEE_VOICE = "callee_voice"  # speaks as the person called
    INSTRUCTIONS = "instructions"  # quotes or talks about its prompt, tools or notes
    ECHO = "echo"  # repeats the callee's words back
    INVENTED = "invented"  # states a number (price, phone...) that it was never given
    PASSIVE = "passive"  # waits to be told what is wanted, as if it had been called


def _rx(*patterns: str) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)


# Lines only the callee says: their own plans, their own appointment, their questions
# about who calls. The agent says "your appointment", "can you make it?".
_CALLEE_VOICE = _rx(
    r"\bi'?ll be there\b", r"\bi will be there\b", r"\bi can'?t come\b",
    r"\bi (can|can'?t|cannot|could|couldn'?t) make it\b",
    r"\bi (can'?t|cannot|couldn'?t) (make (that|the appointment|(on )?(mon|tues|wednes|thurs|"
    r"fri|satur|sun)day)|attend|come( in)?)\b",
    r"\bi won'?t (be able to )?(make it|come|be there|attend)\b",
    r"\bi('?ll| will) (attend|come in|subscribe)\b",
    r"\bmy (appointment|visit|dentist|technician|cleaning|check-?up|booking)\b",
    r"\bi('?d| would) like to (reschedule|cancel|confirm|unsubscribe)\b",
    r"\bi (need|have|want) to (reschedule|cancel|work)\b",
    r"\b(remove|take) me off\b", r"\b(stop|quit|don'?t) call(ing)? me\b",
    r"\bwho (is|'s) (this|calling|speaking)\b", r"\bwho are you\b",
    r"\bwhat is this (about|regarding)\b", r"\bhow did you get (my|this) number\b",
    r"\bthanks?( you)? for (calling|the call|the reminder|reminding me|checking)\b",
    r"\bi'?m not interested\b", r"\bi am not interested\b", r"\bi can'?t talk\b",
    r"\bi'?m (busy|driving|at work)\b", r"\bcall me (back|later|tomorrow)\b",
    r"\bi (just )?switched\b", r"\bmy (phone )?number\b",
    r"\bi('?d| would) (give|rate) (it|you|them|the)\b",
    r"\bi was (very |quite |really |not )?(satisfied|happy|unhappy|pleased|disappointed)\b",
    r"\bi('?d| would) recommend (you|your|them|it|northwind)\b",
    r"\bthe technician (arrived|came|was) (on time|late|early)\b",
    r"\bi(?: am|'m) (speaking|talking) (with|to) (a|an) (robot|machine|computer|bot|ai)\b",
)
# The model's chat-assistant habit: on an outbound call it is the one who wants something.
_PASSIVE = _rx(r"\bhow (can|may|could) i (help|assist) you\b", r"\bwhat can i do for you\b",
               r"\bhow can i be of (help|assistance)\b", r"\bwhat do you need help with\b")
_SPEAKER_LABEL = re.compile(
    r"(?:^|[.!?]\s+)(callee|caller|you|patient|customer|user|assistant|agent|me|"
    r"person|client|human|ai)\s*:", re.IGNORECASE)
_INSTRUCTION_WORDS = _rx(
    r"\bopt_out\b", r"\bset_disposition\b", r"\bschedule_callback\b", r"\bend_call\b",
    r"\bdisposition\b", r"\bjson\b", r"\b(the|a|my|that) tool\b", r"\bsystem prompt\b",
    r"\bmy (instructions|rules|prompt)\b", r"\bthe (rules|examples)\b", r"\bphone system\b",
    r"\bnotes? from\b", r"[\[\]{}<>]", r"\bcallee\b",
    # The campaign's goal is an instruction too: "...If they ask not to be called again,
    # opt them out." came back as "If you ask not to be called again, I'll...".
    r"\bif (you|they) ask (us )?not to be called\b", r"\bopt (you|them) out\b",
    r"\b(my|the) goal\b", r"\bthe patient\b", r"\bthe person'?s time zone\b")
# The dispositions' own names, as the tool schema spells them (case matters: "interested").
_ENUM_NAMES = re.compile(r"\b(WRONG_NUMBER|NOT_INTERESTED|INTERESTED|CALLBACK|COMPLETED|"
                         r"OPT_OUT|NO_ANSWER|VOICEMAIL)\b")
_MONEY = _rx(r"[$€£]\s?\d[\d,.]*", r"\b\d[\d,.]*\s?(dollars?|bucks|cents|euros?|pounds|usd)\b",
             r"\b\d[\d,.]*\s?(%|percent)",
             r"\b(one|two|three|four|five|six|seven|eight|nine|ten|twenty|thirty|forty|fifty|"
             r"sixty|seventy|eighty|ninety|hundred|thousand)\b[\w\s-]{0,20}?\b(dollars?|bucks|"
             r"euros?|pounds|percent)\b")
_NUMBER = re.compile(r"\d+")
_WORD = re.compile(r"[a-z0-9']+")
ECHO_MIN_WORDS = 5  # shorter callee lines ("Great, see you then.") are fair to say back
ECHO_SHARE = 0.6  # ...an echo repeats at least this share of it, in one run
# A yes/no answer takes up the question's words ("Do I need to be at home for it?" ->
# "No, you need to be at home for it."): there only a near-verbatim repeat is an echo.
# At 0.6 that answer was rejected three times and the callee heard "Sorry, I didn't
# catch that" to a clear question.
ECHO_QUESTION_SHARE = 0.9
QUOTE_WORDS = 6  # a run of this many words from the rules is a quotation
SAY_THIS = "Say something like:"  # in a note, what follows is words for the agent to say
# A reply that opens by saying back this many words of a long callee turn (at least
# ECHO_START_TURN words) echoes it. After an interrupted greeting, the model answered "Yes.
# I have a minute. What is it about?" with "I have a minute. What is it about?": 8 of 9
# words is under the question share, and "I have a minute." went out before it was seen.
# A short turn said back ("Okay, see you on Tuesday." - "Great, see you on Tuesday.") is a
# confirmation, not an echo.
ECHO_START_WORDS = 4
ECHO_START_TURN = 8
# A reply that opens with the callee's whole turn, of this many words or more, parrots it:
# the 0.5B model answered "Okay, go ahead." with "Okay, go ahead." and "Three. It was okay."
# with "Three. It was okay. I'm ...". A farewell is said back ("See you then."), and so
# is a question or a time, to confirm it ("Tuesday at 3, yes.").
ECHO_WHOLE_WORDS = 3
_SAID_BACK = re.compile(r"\b(bye|goodbye|thanks?|see you|take care|talk (to you )?(soon|"
                        r"later)|good night|have a (nice|good|great|lovely) \w+)\b|\?|\d|"
                        r"\b(mon|tues|wednes|thurs|fri|satur|sun)day\b|\b(today|tomorrow|"
                        r"tonight|morning|afternoon|evening|noon|week)\b", re.IGNORECASE)
_LEADING = frozenset({"hi", "hello", "yes", "yeah", "no", "okay", "ok", "sure", "oh", "well",
                      "great", "alright", "so"})


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower().replace("’", "'"))


def _opening_echo(reply: Sequence[str], said: Sequence[str]) -> int:
    """How many words the reply opens with that run on in `said` (after up to two
    leading words such as "yes" or "hello")."""
    best = 0
    for start in range(min(3, len(reply))):
        if start and reply[start - 1] not in _LEADING:
            break
        for at in range(len(said)):
            k = 0
            while start + k < len(reply) and at + k < len(said) \
                    and reply[start + k] == said[at + k]:
                k += 1
            best = max(best, k)
    return best


def _ngrams(tokens: Sequence[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)}


def longest_common_run(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest run of words found in both (dynamic programming)."""
    best = 0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0] * (len(b) + 1)
        for j, y in enumerate(b, 1):
            if x == y:
                cur[j] = prev[j - 1] + 1
                best = max(best, cur[j])
        prev = cur
    return best


_RULE_GRAMS = _ngrams(words(RULES), QUOTE_WORDS)


@dataclass(frozen=True, slots=True)
class ReplyGuard:
    """Checks for one reply. `known` is every text the agent may take facts from (its
    prompt and what the callee said); `callee` the callee's last words."""

    callee: str
    known: str
    persona: str = ""
    callee_name: str = ""
    # Runs of QUOTE_WORDS words of the notes this reply was given (agent/hints.py): the
    # 0.5B model said one aloud ("Then say again, in one sentence, what you are offering
    # them."). The words a note puts in the agent's mouth are not among them.
    notes: frozenset[tuple[str, ...]] = frozenset()

    @classmethod
    def build(cls, callee: str, known: Iterable[str], persona: str = "",
              callee_name: str = "", notes: Iterable[str] = ()) -> ReplyGuard:
        grams: set[tuple[str, ...]] = set()
        for note in notes:
            grams |= _ngrams(words(note.split(SAY_THIS)[0]), QUOTE_WORDS)
        return cls(callee, "\n".join(known), persona, callee_name, frozenset(grams))

    def check(self, reply: str) -> Fault | None:
        """The first fault found in `reply` (the whole text so far), or None."""
        if _CALLEE_VOICE.search(reply) or _SPEAKER_LABEL.search(reply) \
                or self._names_self_as_callee(reply):
            return Fault.CALLEE_VOICE
        tokens = words(reply)
        grams = _ngrams(tokens, QUOTE_WORDS)
        if _INSTRUCTION_WORDS.search(reply) or _ENUM_NAMES.search(reply) \
                or grams & _RULE_GRAMS or grams & self.notes:
            return Fault.INSTRUCTIONS
        said = words(self.callee)
        share = ECHO_QUESTION_SHARE if self.callee.rstrip().endswith("?") else ECHO_SHARE
        if len(said) >= ECHO_MIN_WORDS and \
                longest_common_run(tokens, said) >= max(ECHO_MIN_WORDS, share * len(said)):
            return Fault.ECHO
        if len(said) >= ECHO_START_TURN and _opening_echo(tokens, said) >= ECHO_START_WORDS:
            return Fault.ECHO
        if len(said) >= ECHO_WHOLE_WORDS and tokens[:len(said)] == said \
                and not _SAID_BACK.search(self.callee):
            return Fault.ECHO
        if self._invents(reply):
            return Fault.INVENTED
        if _PASSIVE.search(reply):
            return Fault.PASSIVE
        return None

    def _names_self_as_callee(self, reply: str) -> bool:
        first = self.callee_name.split()[0] if self.callee_name.split() else ""
        if not first or first.lower() == self.persona.lower() or first.lower() == "there":
            return False
        return re.search(rf"\b(this is|i'?m|i am|my name is|it'?s) {re.escape(first)}\b",
                         reply, re.IGNORECASE) is not None

    def _invents(self, reply: str) -> bool:
        """A price, share or long number that appears nowhere in what the agent knows."""
        known = self.known.lower()
        known_numbers = {n.lstrip("0") or "0" for n in _NUMBER.findall(known)}
        for m in _MONEY.finditer(reply):
            digits = _NUMBER.findall(m.group(0))
            if not digits:  # "fifty dollars": a spelled amount is only fine if it is known
                if m.group(0).lower() not in known:
                    return True
            elif any((d.lstrip("0") or "0") not in known_numbers for d in digits):
                return True
        for number in _NUMBER.findall(reply):
            if len(number) >= 3 and (number.lstrip("0") or "0") not in known_numbers:
                return True  # phone numbers, prices without a unit, street numbers
        return False
