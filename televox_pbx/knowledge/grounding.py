"""What an agent's knowledge adds to a callee's turn: a short note of the best one or two
chunks, appended to the turn (never to the system prompt, so the cached prefix of the
agent and the conversation stays valid), and an FAQ answer to speak as is when a stored
question matches clearly.

Budget: a prompt token costs about 18 ms here, so the note holds at most about 60 tokens
(NOTE_CHARS, at ~4 characters a token: ~1 s of prompt work, less than a turn's own
words). The best chunk goes in, cut at a sentence end to fit; the second one when the rest
of the budget holds it whole (on the test set, tests/fixtures/knowledge, that put the
right fact in the note for 41 of 51 questions; 60 tokens or 80 changed it by one). A
chunk that shares too few of the question's words stays out.
"""

from __future__ import annotations

import re

from televox_pbx.knowledge.index import Hit, KnowledgeIndex, matched, query_terms

NOTE_CHARS = 240
MIN_MATCHED = 0.2  # share of the question's words a chunk must hold to be shown
CLEAR_FAQ = 0.75  # share of the question's words a stored FAQ question must hold
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
NOTE_MARK = "\n[Knowledge: "  # how a note follows the callee's words in their turn


def with_note(text: str, note: str | None) -> str:
    return f"{text}\n{note}" if note else text


def strip_note(text: str) -> str:
    """What the callee said, without the knowledge note after it."""
    at = text.find(NOTE_MARK)
    return text if at < 0 else text[:at]


class Grounding:
    """Retrieval for one agent. Results are cached per text, so the note a turn got when
    its reply started on the provisional transcript is the note it keeps (the prompt of
    the next round repeats it byte for byte)."""

    def __init__(self, index: KnowledgeIndex, agent: str, note_chars: int = NOTE_CHARS) -> None:
        self.index = index
        self.agent = agent
        self.note_chars = note_chars
        self._hits: dict[str, list[Hit]] = {}

    def hits(self, text: str) -> list[Hit]:
        if text not in self._hits:
            try:
                self._hits[text] = self.index.search(self.agent, text, limit=3)
            except Exception:  # a broken index must not end the call: answer without it
                self._hits[text] = []
        return self._hits[text]

    def note(self, text: str) -> str | None:
        hits = [h for h in self.hits(text) if h.matched >= MIN_MATCHED]
        if not hits:
            return None
        first = _fit(hits[0].body, self.note_chars)
        parts = [first]
        if len(hits) > 1 and len(first) + 3 + len(hits[1].body) <= self.note_chars:
            parts.append(hits[1].body)
        return f"[Knowledge: {' | '.join(parts)}]"

    def faq_answer(self, text: str) -> str | None:
        """The stored answer when the best chunk is an FAQ pair whose question holds
        most of the caller's words and ranks well ahead of the next chunk."""
        hits = self.hits(text)
        if not hits or not hits[0].answer:
            return None
        best = hits[0]
        if matched(query_terms(text), best.question) < CLEAR_FAQ:
            return None
        if len(hits) > 1 and hits[1].score > 0.7 * best.score:
            return None
        return best.answer


def _fit(body: str, limit: int) -> str:
    if len(body) <= limit:
        return body
    out = ""
    for sentence in _SENTENCE.split(body):
        if len(out) + len(sentence) + 1 > limit:
            break
        out = f"{out} {sentence}".strip()
    return out or body[: limit - 1].rsplit(" ", 1)[0] + "…"
