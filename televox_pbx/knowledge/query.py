"""What a caller's question is made of, for matching it with the knowledge: its content
words (stop words out), each reduced to a rough stem and widened to its synonyms.

FTS5 ranks with its own Porter stemmer; this is for deciding in Python how well a chunk
covers a question (knowledge/grounding.py), so both sides only need the same stemmer.
The synonyms are a front desk's everyday words that callers use for what a business
writes down ("car" for parking, "kid" for child); they are general, not any one
business's, and an agent's own FAQ questions add nothing here (their words are already
in the index).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_WORD = re.compile(r"[\w']+", re.UNICODE)
# Words that say nothing about what is asked; kept out of the query so that "what are
# your" does not match every chunk, and out of coverage so that "really" or "during"
# does not make a question look like one about something unknown.
STOPWORDS = frozenset((  # noqa: SIM905 (a word list reads better as text)
    "a about all am an and any are as at be been but by can could did do does doing for from "
    "get got had has have how i i'm if in into is it it's its just me my no not of on or our "
    "please so some tell than that the their them then there these they this to too us was we "
    "what when where which who why will with would you your yours you're i'd i'll can't don't "
    "hi hello okay ok well also much many way there's let know like want need "
    "what's where's who's how's whats really actually still even ever anyone anybody "
    "someone somebody something anything happen happens happened during while easily "
    "possible possibly maybe kind sort go going gonna wanna thing things one ones should "
    "shall might may must does doesn't isn't aren't wasn't won't haven't hasn't didn't "
    "i've you've we've he she his her herself himself myself yourself terrible lot "
    "right now here bit very quite just only yes yeah sure thanks thank ask asking wondering "
    "wonder curious question work works working before after over under near until "
    "since between write today tonight regular usual normal usually "
    "office practice clinic place"  # the business itself, not something it offers
).split())

# Each line: words a caller may use for the same thing (the first is only a label).
_SYNONYMS = (
    "cost price prices pricing charge charges fee fees expensive cheap rate rates",
    "pay payment payments paying paid",
    "checkup check-up check exam examination",
    "car cars park parking drive driving",
    "bus buses train transit transport",
    "child children kid kids son daughter toddler baby boy girl",
    "extraction extract extracted pull pulled pulling removal remove removed",
    "cavity cavities filling fillings",
    "record records file files chart",
    "emergency emergencies urgent pain hurts hurt ache aching toothache",
    "wi-fi wifi wi internet",
    "online website web site",
    "move reschedule postpone change",
    "gift voucher vouchers",
    "dentist dentists doctor doctors dr",
    "address located location street",
    "email e-mail",
    "keep kept store stored",
    "fail fails failed break breaks broke broken crack cracked",
    "sick ill illness fever cold flu",
    "refund refunds return returned",
    "installment installments monthly month months spread",
    "weekday weekdays week monday tuesday wednesday thursday friday",
    "white whiter whiten whitening",
    "nervous anxious anxiety scared afraid",
    "guard guards mouthguard mouthguards",
    "hours open opening night evening",
    "phone number numbers telephone",
    "see seen saw",
)
_SUFFIXES = (("ational", ""), ("ations", ""), ("ation", ""), ("ating", ""), ("ated", ""),
             ("ates", ""), ("ate", ""), ("ingly", ""),
             ("ings", ""), ("ing", ""), ("edly", ""), ("ies", "y"), ("ied", "y"),
             ("sses", "ss"), ("ness", ""), ("ers", "er"), ("ed", ""), ("ly", ""))
_QUESTION_START = re.compile(
    r"^\s*(?:(?:and|so|also|oh|um|uh|well|okay|ok|hi|hello|yes|yeah|sorry)\W+)*"
    r"(?:what|what's|whats|where|where's|when|which|who|who's|whom|whose|why|how|how's|"
    r"do|does|did|is|isn't|are|aren't|can|can't|could|will|would|should|may|have|has|"
    r"any)\b", re.IGNORECASE)
_ASKS = re.compile(r"\b(i'?d like to know|i was wondering|i wonder|tell me|do you know)\b",
                   re.IGNORECASE)

# Questions that ask the agent to do something, or about the call itself: the LLM and
# its tools answer those (a callback, a booking, a transfer, who is calling), never the
# knowledge, though their words may be in it ("call", "appointment").
_REQUEST = re.compile(
    r"\b(call|ring|phone) (me|us|him|her|them)\b|\bcall(ing)? (me |you )?back\b|"
    r"\bcallback\b|\b(book|schedule) me\b|\b(reschedule|cancel|move|change|confirm) (my|the|"
    r"this|that|our|it)\b|\b(when|what time|what day) is my\b|\b(speak|talk) (to|with)\b|"
    r"\btransfer\b|"
    r"\bput me through\b|\b(are|is) (you|this|it|that) (a |an )?(robot|machine|real|human|"
    r"person|ai|bot|recording|computer)\b|\bwho (is|are|'s) (this|you|calling|speaking)\b|"
    r"\b(stop|quit) calling\b|\btake me off\b|\bremove me\b|\bmy (booking|number)\b|"
    r"\b(is|was) that\b|\bwhy (are|did) you\b", re.IGNORECASE)


def stem(word: str) -> str:
    """A rough stem: the same on both sides is all that matters ("filled", "filling" ->
    "fill"; "located", "location" -> "loc")."""
    w = word.lower().strip("'")
    if w.endswith("'s"):
        w = w[:-2]
    for suffix, repl in _SUFFIXES:
        if w.endswith(suffix) and len(w) - len(suffix) >= 3:
            w = w[: -len(suffix)] + repl
            if suffix in ("ing", "ings", "ed", "edly", "ingly") and len(w) > 3 \
                    and w[-1] == w[-2] and w[-1] not in "lsz":
                w = w[:-1]  # running -> run
            break
    else:
        if (w.endswith("es") and len(w) > 4 and w[-3] in "sxz") or w.endswith(("ches", "shes")):
            w = w[:-2]
        elif w.endswith("s") and not w.endswith(("ss", "us", "is")) and len(w) > 3:
            w = w[:-1]
    if w.endswith("e") and len(w) > 4:
        w = w[:-1]
    if w.endswith("ll") and len(w) > 4:
        w = w[:-1]  # cancelled -> cancel
    return w


def words(text: str) -> list[str]:
    return [w.strip("'") for w in _WORD.findall(text.lower().replace("’", "'")) if w.strip("'")]


def query_terms(text: str) -> list[str]:
    """The question's content words, in order, once each."""
    seen: list[str] = []
    for w in words(text):
        if w not in STOPWORDS and w not in seen:
            seen.append(w)
    return seen


def stems(text: str) -> set[str]:
    return {stem(w) for w in words(text)}


_GROUP_OF: dict[str, frozenset[str]] = {}
for _line in _SYNONYMS:
    _group = frozenset(stem(w) for w in _line.split())
    for _member in _group:
        _GROUP_OF[_member] = _GROUP_OF.get(_member, frozenset()) | _group


def group(term: str) -> frozenset[str]:
    """The stems that count as `term` (itself and its synonyms)."""
    s = stem(term)
    return _GROUP_OF.get(s, frozenset((s,)))


def expanded(terms: Iterable[str]) -> list[str]:
    """`terms` and their synonyms as words for the full-text query."""
    out: list[str] = []
    for t in terms:
        for w in (t, *(w for line in _SYNONYMS for w in line.split()
                       if stem(t) in _GROUP_OF and stem(w) in _GROUP_OF[stem(t)])):
            if w not in out:
                out.append(w)
    return out


def is_question(text: str) -> bool:
    """A turn that asks something of the business (a transcript's "?" or a question's
    first word), not of the agent's tools or about the call (`_REQUEST`)."""
    t = text.strip()
    if _REQUEST.search(t):
        return False
    return t.endswith("?") or _QUESTION_START.match(t) is not None \
        or _ASKS.search(t) is not None
