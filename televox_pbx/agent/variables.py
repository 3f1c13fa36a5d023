"""Fill `{{VAR}}` placeholders in campaign text from a contact's fields."""

from __future__ import annotations

import re
from collections.abc import Mapping

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")

# A greeting reads naturally without a name ("Hi there"), so NAME has a fallback.
FALLBACKS: Mapping[str, str] = {"NAME": "there", "FIRST_NAME": "there"}


def normalise(variables: Mapping[str, object]) -> dict[str, str]:
    """Upper-case keys, string values, blanks dropped (so fallbacks apply)."""
    out: dict[str, str] = {}
    for key, value in variables.items():
        if value is None:
            continue
        text = str(value).strip()
        if text:
            out[key.strip().upper()] = text
    return out


def render(template: str, variables: Mapping[str, object]) -> str:
    """Replace each placeholder; unknown or empty ones become their fallback or ''."""
    values = normalise(variables)

    def repl(m: re.Match[str]) -> str:
        key = m.group(1).upper()
        return values.get(key) or FALLBACKS.get(key, "")

    rendered = _PLACEHOLDER.sub(repl, template)
    # An emptied placeholder can leave "Hi ," or double spaces behind.
    rendered = re.sub(r"[ \t]+([,.!?;:])", r"\1", rendered)
    return re.sub(r"[ \t]{2,}", " ", rendered).strip()
