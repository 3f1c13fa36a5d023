"""Yes, no and goodbye: the callee's answer to a closed question, read without the LLM."""

from __future__ import annotations

import re

_NEGATIVE = re.compile(
    r"^\W*(no|nope|nah|not really|no way|don't|do not|i don't|not at all|never mind)\b"
    r"|\b(not|don't|do not|no,|didn't|did not)\b", re.IGNORECASE)
_AFFIRMATIVE = re.compile(
    r"^\W*(yes|yeah|yep|yup|sure|correct|right|exactly|absolutely|definitely|of course|"
    r"please do|i do|that's right|that is right|that's correct|uh-huh|ok|okay|indeed)\b",
    re.IGNORECASE)


def is_affirmative(text: str) -> bool:
    """A plain yes ("Yes.", "Yeah, please do."), with no no or not in it."""
    return bool(_AFFIRMATIVE.search(text)) and not _NEGATIVE.search(text)


def is_negative(text: str) -> bool:
    """A no ("No.", "No, I just can't come.", "I don't")."""
    return bool(_NEGATIVE.search(text)) and not is_affirmative(text)


_BYE = re.compile(r"\b(good-?bye|bye(-bye)?)\b", re.IGNORECASE)
_YES = re.compile(r"\b(yes|yeah|yep|yup|sure)\b", re.IGNORECASE)


def says_yes(text: str) -> bool:
    """A yes word anywhere in it ("Hi, yes, speaking.", "Okay, yeah."); "okay" is not one."""
    return _YES.search(text) is not None


def is_leaving(text: str) -> bool:
    """A goodbye with no yes in it ("Okay, thank you. Goodbye."): its "okay" is the
    callee taking leave, not an answer ("Yes, bye." answers)."""
    return bool(_BYE.search(text)) and not says_yes(text)
