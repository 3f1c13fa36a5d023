"""Cutting a streamed reply into speakable clauses, and mapping played audio back to text."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from televox_pbx.config.campaign import has_ai_disclosure

# A clause ends at . ! ? , ; : followed by whitespace (so "3.5" and "a.m." mid-word stay),
# or at the end of the text so far when a word of two or more letters ends there: the LLM
# streams "." as its own token, and waiting for the next token's space cost a decode
# (~50 ms) before the first clause could be rendered. "3." (maybe "3.5"), "U." (maybe
# "U.S.") and "..." still wait.
_BOUNDARY = re.compile(r"[.!?,;:](?=\s)|(?<=[^\W\d_]{2})[.!?,;:]$")
_ABBREV = re.compile(r"\b(Mr|Mrs|Ms|Dr|St|Jr|Sr|vs|etc|e\.g|i\.e|a\.m|p\.m)\.$", re.IGNORECASE)


# Words a phrase commonly starts with: a reply's first piece may end before one of them
# when no punctuation comes soon ("The visit takes about an hour | and is free").
_PHRASE_START = frozenset((
    "and", "but", "or", "so", "because", "to", "that", "which", "who", "if", "when", "while",
    "for", "with", "about", "at", "on", "in", "from", "by", "as", "after", "before", "until",
    "than"))
# A forced cut never leaves one of these hanging at the end ("from the | phone system").
_NO_END = _PHRASE_START | frozenset((
    "the", "a", "an", "my", "your", "our", "their", "his", "her", "its", "this", "these",
    "those", "of", "is", "are", "was", "were", "be", "will", "can", "could", "would",
    "should", "i", "you", "we", "they", "he", "she", "it", "not", "no", "very"))
_MIN_WORDS_BEFORE_PHRASE = 3


class ClauseSplitter:
    """Push LLM text deltas; get clauses of at least `min_chars` as soon as they end.
    The first clause may be shorter (`first_min_chars`): "Sure," can be playing while the
    rest is still being generated. With `first_max_words`, a first clause that has no
    punctuation yet is cut before a phrase-starting word once it has 3 words, or at
    `first_max_words` words, so a reply with a long first sentence starts speaking after
    a few words instead of after the whole sentence."""

    def __init__(self, min_chars: int = 12, first_min_chars: int | None = None,
                 first_max_words: int | None = None) -> None:
        self.min_chars = min_chars
        self.first_min_chars = min_chars if first_min_chars is None else first_min_chars
        self.first_max_words = first_max_words
        self._emitted = False
        self._buf = ""

    def push(self, delta: str) -> list[str]:
        self._buf += delta
        out: list[str] = []
        start = 0
        for m in _BOUNDARY.finditer(self._buf):
            end = m.end()
            piece = self._buf[start:end].strip()
            least = self.min_chars if self._emitted else self.first_min_chars
            if len(piece) < least or _ABBREV.search(piece):
                continue
            out.append(piece)
            self._emitted = True
            start = end
        self._buf = self._buf[start:]
        if not self._emitted and self.first_max_words is not None:
            cut = self._first_cut(self.first_max_words)
            if cut is not None:
                out.append(cut)
                self._emitted = True
        return out

    def _complete_words(self) -> tuple[list[str], str]:
        """Words followed by a space (complete), and the last one (it may still grow)."""
        words = self._buf.split(" ")
        return [w for w in words[:-1] if w], words[-1]

    def _first_cut(self, max_words: int) -> str | None:
        done, last = self._complete_words()
        n = None
        for i, word in enumerate(done[_MIN_WORDS_BEFORE_PHRASE:max_words],
                                 _MIN_WORDS_BEFORE_PHRASE):
            if word.lower() in _PHRASE_START:
                n = i
                break
        if n is None and len(done) >= max_words:
            n = next((i for i in range(max_words, _MIN_WORDS_BEFORE_PHRASE - 1, -1)
                      if done[i - 1].lower().strip("'\"") not in _NO_END), None)
            if n is None and len(done) > 2 * max_words:
                n = max_words  # nothing better turned up: a long run of small words
        if n is None:
            return None
        piece = " ".join(done[:n])
        self._buf = " ".join([*done[n:], last])
        return piece

    def cut_early(self) -> str | None:
        """A clause out of the words written so far (at least 3, cut before a phrase word
        when there is one, never on a small word), for a reply whose audio is running out
        before the sentence ends; None when there is no good place yet."""
        n_done = len(self._complete_words()[0])
        return self._first_cut(n_done) if n_done >= _MIN_WORDS_BEFORE_PHRASE else None

    def flush(self) -> str | None:
        piece, self._buf = self._buf.strip(), ""
        return piece or None


_SENTENCE_END = re.compile(r"[.!?](?=\s)")


def split_disclosure(text: str) -> tuple[str, str | None, str]:
    """(before, the sentence that says the caller is an AI, after). The session plays the
    sentence as a piece of its own so it knows when the callee has heard all of it.
    (text, None, "") when no sentence says it."""
    sentences: list[str] = []
    start = 0
    for m in _SENTENCE_END.finditer(text):
        piece = text[start:m.end()].strip()
        if piece and not _ABBREV.search(piece):  # "Dr. Lee" is one sentence
            sentences.append(piece)
            start = m.end()
    if text[start:].strip():
        sentences.append(text[start:].strip())
    for i, sentence in enumerate(sentences):
        if has_ai_disclosure(sentence):
            return " ".join(sentences[:i]), sentence, " ".join(sentences[i + 1:])
    return text, None, ""


@dataclass(frozen=True, slots=True)
class SpokenPiece:
    """One clause as queued: its text and its byte range in the output stream."""

    text: str
    start: int
    end: int


def heard_prefix(pieces: Sequence[SpokenPiece], played: int) -> tuple[str, bool]:
    """The text the callee heard once the output reached stream position `played`, and
    whether the reply was cut short. Whole pieces count fully; the piece in progress
    counts in proportion to its played audio, rounded down to a whole word."""
    heard: list[str] = []
    for piece in pieces:
        if played >= piece.end:
            heard.append(piece.text)
            continue
        span = piece.end - piece.start
        frac = min(1.0, max(0.0, (played - piece.start) / span)) if span > 0 else 0.0
        cut = int(len(piece.text) * frac)
        partial = piece.text[:cut]
        if cut < len(piece.text) and not piece.text[cut:cut + 1].isspace():
            partial = partial.rsplit(" ", 1)[0] if " " in partial else ""
        if partial.strip():
            heard.append(partial.strip())
        return " ".join(heard), True
    return " ".join(heard), False
