"""Deterministic opt-out detection, checked on every callee utterance before the LLM.

The law (TCPA, and most equivalents) requires honouring an opt-out at once; a small model
cannot be trusted to always call the tool, so these phrases decide on their own.
"""

from __future__ import annotations

import re

_PATTERNS = [
    r"\b(take|remove|delete|get|cross|strike)\s+(me|my\s+(phone\s+)?number|us|this\s+number)"
    r"\s+(off|from)\b",
    r"\bremove\s+my\s+(phone\s+)?number\b",
    # The tail alone: speech over the opening can lose the verb ("...me off your list").
    r"\b(me|my\s+(phone\s+)?number|us|this\s+number)\s+off\s+(of\s+)?(your|the|this)\s+"
    r"((calling|call|contact|phone|mailing)\s+)?list\b",
    r"\b(stop|quit|don'?t|do\s+not|never)\s+(calling|call|ringing|phoning|contact(ing)?)\s+"
    r"(me|us|this\s+number|here|again)\b",
    r"\bdo\s+not\s+call\b",
    r"\bdon'?t\s+call\b.*\b(again|anymore|any\s+more)\b",
    r"\b(put|add)\s+(me|my\s+(phone\s+)?number|us)\s+(on|to)\s+(your|the)\s+"
    r"(do\s+not\s+call|dnc|don'?t\s+call)\b",
    r"\bunsubscribe\b",
    r"\bopt\s*(me\s+)?out\b",
    r"\bno\s+more\s+calls\b",
    r"\blose\s+my\s+number\b",
]
_OPT_OUT = re.compile("|".join(f"(?:{p})" for p in _PATTERNS), re.IGNORECASE)


def _clean(text: str) -> str:
    text = text.replace("’", "'")
    return re.sub(r"[^\w'\s]", " ", text)


def is_opt_out(text: str) -> bool:
    """True when the callee clearly asks not to be called again."""
    return bool(_OPT_OUT.search(_clean(text)))


# Not enough to act on, but enough to ask: "Just to be sure: do you want us to stop
# calling you?". "subscribe" is how tiny.en can hear a one-word "Unsubscribe.".
_LIKELY = re.compile("|".join(f"(?:{p})" for p in [
    r"\bsubscribe\b",
    r"\bleave\s+me\s+alone\b",
    r"\b(don'?t|do\s+not|never)\s+(bother|contact|ring|phone)\s+(me|us)\b",
    r"\b(don'?t|do\s+not)\s+want\s+(these|your|any(\s+more)?|the(se)?|more)\s+"
    r"((phone|sales|robo)\s*)?calls\b",
    r"\bstop\s+(the\s+|these\s+|your\s+)?calls\b",
    r"\b(remove|delete)\s+(me|my\s+(phone\s+)?number)\b",
    r"\bno\s+more\b.*\bcall",
    r"^\W*(stop|remove|remove me|opt out|out)\W*$",
]), re.IGNORECASE)


def likely_opt_out(text: str) -> bool:
    """True when the callee may be asking not to be called again (ask them first)."""
    return not is_opt_out(text) and bool(_LIKELY.search(_clean(text).strip()))
