"""A greeting and nothing else: "Hello, this is Sam speaking.", "Hi, yes, speaking."

The callee's first words often come over the agent's opening (they say hello as they
pick up; the opening starts at once). The opening is their answer, and the model, asked
to answer them after it, said its whole introduction again (agent/hints.py); the voice
path does not answer one said over the opening at all (voice/turntaking.py).
"""

from __future__ import annotations

import re

from televox_pbx.agent.intents import says_yes

# Names are capitalised words (Whisper writes them so): "this is fine" is not a greeting.
_GREETING = re.compile(r"(?:(?:(?i:hello|hi there|hiya|hi|hey|good (?:morning|afternoon|evening)|"
                       r"yes|yeah|speaking|this is (?:she|he)|(?:this is|it's|it is) )"
                       r"(?:[A-Z][a-z']+(?: [A-Z][a-z']+)?(?i: speaking| here)?)?|"
                       r"[A-Z][a-z']+(?i: speaking| here))[\s,.!?]*)+")
_GREETED_BY = re.compile(r"\b(hello|hi|hey|hiya|good (morning|afternoon|evening)|speaking|"
                         r"this is|it's|it is)\b", re.IGNORECASE)


def is_greeting(text: str, opening: str) -> bool:
    """`text` is only a greeting, "Hello?" included. A "yes" in it answers an opening
    that asked something ("...Do you have a minute?"), so then it is not."""
    text = text.strip()
    if not text or _GREETING.fullmatch(text) is None or _GREETED_BY.search(text) is None:
        return False  # "Yes." alone: an answer
    return not (says_yes(text) and opening.rstrip().endswith("?"))


def only_greets(callee: str, opening: str) -> bool:
    """A greeting said after the opening, which goes on with why the agent calls. One
    that ends in "?" ("Hello?") is left out: they may not have heard the opening, which
    is then worth saying again; "Hello? This is Sam speaking." (two turns on the real
    PBX, one message) is in."""
    return not callee.strip().endswith("?") and is_greeting(callee, opening)
