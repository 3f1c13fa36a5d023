"""Backchannels: the short "yes", "uh-huh", "okay" a listener says to show they follow.

Said over the agent while it has more to say, one is kept in the transcript and the
context but does not take the turn: the agent goes on. "No", "wait" or a question are
never backchannels; neither is anything longer than a few words.
"""

from __future__ import annotations

import re

_WORDS = frozenset((
    "yes", "yeah", "yep", "yup", "ya", "aha", "uh-huh", "uhhuh", "uh", "huh", "mhm", "mm",
    "mmhm", "mm-hmm", "mmhmm", "hmm", "hm", "ok", "okay", "k", "right", "sure", "alright",
    "all", "fine", "good", "great", "cool", "got", "it", "i", "see", "go", "on", "oh",
    "ah", "true", "exactly", "indeed", "perfect", "gotcha"))
# Words that make a short phrase more than an acknowledgement on their own.
_ALONE_NOT = frozenset(("it", "i", "go", "on", "all", "got", "see", "uh", "huh", "oh", "ah"))
_MAX_WORDS = 3
_TOKEN = re.compile(r"[a-z]+(?:-[a-z]+)*")


def is_backchannel(text: str) -> bool:
    """True for a short acknowledgement ("Yes.", "Uh-huh", "Okay, okay", "I see")."""
    words = _TOKEN.findall(text.lower().replace("’", "'"))
    if not words or len(words) > _MAX_WORDS or "?" in text:
        return False
    if any(w not in _WORDS for w in words):
        return False
    return not all(w in _ALONE_NOT for w in words) or words in (["i", "see"], ["go", "on"],
                                                               ["got", "it"], ["uh", "huh"])


def own_words(text: str, agent_text: str) -> bool:
    """All of `text`'s words (two or more) are in what the agent was saying: heard over
    the agent's voice, that is its echo, not the callee."""
    words = _TOKEN.findall(text.lower())
    said = set(_TOKEN.findall(agent_text.lower()))
    return len(words) >= 2 and all(w in said for w in words)
