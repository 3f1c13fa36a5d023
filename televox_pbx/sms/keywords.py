"""The carrier opt-out keywords: a keyword counts only alone in the message, any case."""

from __future__ import annotations

from enum import StrEnum

STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
START_WORDS = frozenset({"START", "UNSTOP"})


class Keyword(StrEnum):
    STOP = "stop"
    START = "start"
    NONE = "none"


def classify(body: str) -> Keyword:
    # Trailing punctuation from phone keyboards ("Stop." / "STOP!") still means the word.
    word = body.strip().strip(".!").strip().upper()
    if word in STOP_WORDS:
        return Keyword.STOP
    if word in START_WORDS:
        return Keyword.START
    return Keyword.NONE
