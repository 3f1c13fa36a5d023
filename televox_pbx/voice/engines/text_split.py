"""Split a reply into pieces Piper can speak one at a time, so audio starts sooner."""

from __future__ import annotations

import re

_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"')\]]*\s+")
_CLAUSE_END = re.compile(r"(?<=[,;:—–])\s+")
# Clauses shorter than this are glued to the next one (tiny pieces sound choppy).
MIN_CLAUSE_CHARS = 24
# Sentences longer than this are split at clause punctuation.
LONG_SENTENCE_CHARS = 80


def split_for_tts(text: str) -> list[str]:
    pieces: list[str] = []
    for sentence in _SENTENCE_END.split(text.strip()):
        sentence = sentence.strip()
        if not sentence:
            continue
        if len(sentence) <= LONG_SENTENCE_CHARS:
            pieces.append(sentence)
            continue
        buf = ""
        for clause in _CLAUSE_END.split(sentence):
            buf = f"{buf} {clause}".strip()
            if len(buf) >= MIN_CLAUSE_CHARS:
                pieces.append(buf)
                buf = ""
        if buf:
            if pieces and len(buf) < MIN_CLAUSE_CHARS // 2:
                pieces[-1] = f"{pieces[-1]} {buf}"
            else:
                pieces.append(buf)
    return pieces
