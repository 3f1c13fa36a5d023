"""What an agent's knowledge does with a callee's turn.

A question is answered without the LLM when the knowledge covers it, and declined
without it when the knowledge does not: a 1.5B model given a note that did not answer
the question invented ("No, we do not offer Botox"), and given one that did, sometimes
copied the wrong half of it (bench/eval_knowledge_set.py). How well a chunk covers a
question is the share of the question's content words (with everyday synonyms, weighted
by how rare each is in the knowledge; a word the knowledge never uses weighs most) found
in it (`coverage`). For a question (a turn that asks; knowledge/query.py):
- coverage >= CONFIDENT: the answer as stored (an FAQ pair's answer), or the sentence of
  the chunk that covers the question best;
- coverage >= RELATED: the nearest fact, said as such, with a follow-up offered ("I'm not
  sure about that exactly. Here is what I can tell you: ...");
- below: DECLINE, a fixed line offering a callback.
A question with a word the knowledge never uses ("Humana") gets the nearest fact at
most. A question about the call's own variables (its appointment), or too vague to say
what it is about ("how much is it?", "I have a minute. What is it about?": the words of
the sentence that asks count, not the rest of the turn), goes to the LLM, which has the
conversation. Any other turn goes to the LLM with a note of the best chunk (and the
second when it covers as much), appended to the turn (never to the system prompt, so the
cached prefix of the agent and the conversation stays valid).

Budget: a prompt token costs about 18 ms here, so the note holds at most about 60 tokens
(NOTE_CHARS, at ~4 characters a token: ~1 s of prompt work, less than a turn's own
words). The thresholds and synonyms were set on tests/fixtures/knowledge/questions.yaml;
the held-out questions (heldout.yaml) were written first and not tuned on (CONFIDENT
went from 0.5 to 0.6 after they were first run, by the rule on its line, which changed
none of their results).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from televox_pbx.knowledge.index import Hit, KnowledgeIndex, Vocabulary
from televox_pbx.knowledge.query import group, is_question, query_terms, stem, stems

NOTE_CHARS = 240
CANDIDATES = 12  # chunks the full-text search hands to the coverage ranking
CONFIDENT = 0.6  # above every unanswerable question of the tuning set (best 0.58)
RELATED = 0.3
ALIKE = 0.25  # weight of `Ranked.alike` in the ranking
# A question whose words together weigh less than this (only words most of the knowledge
# uses: "cost", "price") does not say what it is about; the LLM has the conversation.
MIN_SPECIFIC = 2.0
MIN_MATCHED = RELATED  # a chunk covering less of the turn is not shown to the LLM
DECLINE = ("I'm sorry, I don't have that information. Would you like someone from our "
           "team to call you back about it?")
HEDGE = ("I'm not sure about that exactly. Here is what I can tell you: {fact} Would you "
         "like someone from our team to call you back about it?")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9])")
_ABBREVIATION = re.compile(r"\b(Dr|Mr|Mrs|Ms|St|No|Prof|Jr|Sr|vs|etc|e\.g|i\.e)\.$")
_HEADING = re.compile(r"^[^.:!?]{1,60}:\s+")  # "Minors: " before a document chunk
_YES_NO = re.compile(r"^(yes|no)\b[,.;]?\s*", re.IGNORECASE)
NOTE_MARK = "\n[Knowledge: "  # how a note follows the callee's words in their turn


def with_note(text: str, note: str | None) -> str:
    return f"{text}\n{note}" if note else text


def strip_note(text: str) -> str:
    """What the callee said, without the knowledge note after it."""
    at = text.find(NOTE_MARK)
    return text if at < 0 else text[:at]


@dataclass(frozen=True, slots=True)
class Ranked:
    hit: Hit
    coverage: float  # weighted share of the question's words the chunk holds (0..1)
    alike: float = 0.0  # share of an FAQ pair's question words that the caller used


@dataclass(frozen=True, slots=True)
class Verdict:
    kind: str  # "answer", "hedge" or "decline"
    text: str  # what the agent says


class Grounding:
    """Retrieval for one agent on one call. Results are cached per text, so the note a
    turn got when its reply started on the provisional transcript is the note it keeps
    (the prompt of the next round repeats it byte for byte)."""

    def __init__(self, index: KnowledgeIndex, agent: str, note_chars: int = NOTE_CHARS,
                 variables: Mapping[str, object] | None = None) -> None:
        self.index = index
        self.agent = agent
        self.note_chars = note_chars
        self._own = _variable_stems(variables or {})
        self._ranked: dict[str, list[Ranked]] = {}

    def ranked(self, text: str) -> list[Ranked]:
        """The candidate chunks, best covering first (bm25 breaks ties)."""
        if text not in self._ranked:
            try:
                hits = self.index.search(self.agent, text, limit=CANDIDATES)
                vocab = self.index.vocabulary(self.agent)
            except Exception:  # a broken index must not end the call: answer without it
                hits, vocab = [], Vocabulary(0, {})
            terms = query_terms(text)
            asked = {s for t in terms for s in group(t)}
            ranked = [Ranked(h, coverage(terms, f"{h.question} {h.body}", vocab),
                             _asks_alike(h.question, asked)) for h in hits]
            ranked.sort(key=lambda r: (-round(r.coverage + ALIKE * r.alike, 3),
                                       -r.hit.score))
            self._ranked[text] = ranked
        return self._ranked[text]

    def hits(self, text: str) -> list[Hit]:
        return [r.hit for r in self.ranked(text)]

    def note(self, text: str) -> str | None:
        ranked = [r for r in self.ranked(text) if r.coverage >= MIN_MATCHED]
        if not ranked:
            return None
        first = _fit(ranked[0].hit.body, self.note_chars)
        parts = [first]
        if len(ranked) > 1 and ranked[1].coverage >= ranked[0].coverage \
                and len(first) + 3 + len(ranked[1].hit.body) <= self.note_chars:
            parts.append(ranked[1].hit.body)
        return f"[Knowledge: {' | '.join(parts)}]"

    def verdict(self, text: str) -> Verdict | None:
        """What to say to a question without the LLM (see the module docstring); None
        for a turn the LLM answers."""
        terms = query_terms(text)
        if not terms or not is_question(text) or self._about_the_call(terms) \
                or _names_nothing(text):
            return None
        vocab = self.index.vocabulary(self.agent)
        if sum(vocab.weight(group(t)) for t in terms) < MIN_SPECIFIC:
            return None  # "how much does it cost?": which thing, the conversation says
        ranked = self.ranked(text)
        best = ranked[0] if ranked else None
        if best is None or best.coverage < RELATED:
            return Verdict("decline", DECLINE)
        if best.coverage >= CONFIDENT and not _unknown(terms, vocab):
            return Verdict("answer", best.hit.answer or _sentence(best.hit.body, terms, vocab))
        fact = _YES_NO.sub("", best.hit.answer) if best.hit.answer \
            else _sentence(best.hit.body, terms, vocab)
        return Verdict("hedge", HEDGE.format(fact=fact[:1].upper() + fact[1:]))

    def direct(self, text: str) -> str | None:
        """What the agent says to `text` without the LLM, or None."""
        v = self.verdict(text)
        return None if v is None else v.text

    def _about_the_call(self, terms: list[str]) -> bool:
        return any(group(t) & self._own for t in terms)


def _asks_alike(question: str, asked: set[str]) -> float:
    """How much of a stored FAQ question the caller's words hold: between chunks that
    cover the caller's words alike, the pair asked about that (and little else) wins."""
    own = [stem(t) for t in query_terms(question)]
    return sum(s in asked for s in own) / len(own) if own else 0.0


def _unknown(terms: list[str], vocab: Vocabulary) -> list[str]:
    """The question's words that nothing in the knowledge uses (nor a synonym of them):
    what it asks about may be just what the knowledge lacks ("Humana", "downtown")."""
    return [t for t in terms if not any(vocab.df.get(s) for s in group(t))]


def coverage(terms: list[str], text: str, vocab: Vocabulary) -> float:
    """The weighted share of `terms` (with synonyms) that `text` holds."""
    if not terms:
        return 0.0
    held = stems(text)
    groups = [group(t) for t in terms]
    weights = [vocab.weight(g) for g in groups]
    total = sum(weights)
    if total <= 0:
        return 0.0
    return sum(w for g, w in zip(groups, weights, strict=True) if g & held) / total


def _sentence(body: str, terms: list[str], vocab: Vocabulary) -> str:
    """The sentence of a document chunk that covers the question best (its heading
    left off), with the next one when the best is a short lead-in."""
    parts = sentences(_HEADING.sub("", body, count=1))
    scores = [coverage(terms, s, vocab) for s in parts]
    best = max(range(len(parts)), key=lambda i: (scores[i], -i))
    out = parts[best]
    if len(out) < 60 and best + 1 < len(parts) \
            and len(out) + 1 + len(parts[best + 1]) <= NOTE_CHARS:
        out = f"{out} {parts[best + 1]}"
    return _fit(out, NOTE_CHARS)


def _names_nothing(text: str) -> bool:
    """The turn's asking sentences hold no content word ("I have a minute. What is it
    about?"): what they ask about is the call, which the LLM has; the other sentences'
    words ("minute") are not what is asked."""
    asking = [s for s in sentences(text.strip()) if is_question(s)]
    return bool(asking) and not any(query_terms(s) for s in asking)


def sentences(text: str) -> list[str]:
    """`text` cut at sentence ends ("Dr. Lopez" is not one)."""
    out: list[str] = []
    for piece in _SENTENCE.split(text):
        if out and _ABBREVIATION.search(out[-1]):
            out[-1] = f"{out[-1]} {piece}"
        else:
            out.append(piece)
    return out


def _variable_stems(variables: Mapping[str, object]) -> set[str]:
    """The words of the call's variables (names and values): a question using them is
    about this call, which only the LLM's prompt knows."""
    out: set[str] = set()
    for key, value in variables.items():
        out |= stems(str(key).replace("_", " ")) | stems(str(value))
    return {s for s in out if len(s) > 2 and not s.isdigit()}


def _fit(body: str, limit: int) -> str:
    if len(body) <= limit:
        return body
    out = ""
    for sentence in sentences(body):
        if len(out) + len(sentence) + 1 > limit:
            break
        out = f"{out} {sentence}".strip()
    return out or body[: limit - 1].rsplit(" ", 1)[0] + "…"
