"""One SMS segment: 160 GSM-7 characters (extension characters count twice), or 70
UTF-16 code units when any character needs UCS-2. Pure functions."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from televox_pbx.agent.variables import render

GSM7_LIMIT = 160
UCS2_LIMIT = 70

# GSM 03.38 basic character set (with the newline/CR) and its escape-table extension.
_GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
_GSM_EXT = frozenset("^{}\\[~]|€\f")
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


@dataclass(frozen=True, slots=True)
class Segment:
    encoding: str  # "GSM-7" or "UCS-2"
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)
    limit: int

    @property
    def fits(self) -> bool:
        return self.units <= self.limit

    def describe(self) -> str:
        return (f"{self.units} {self.encoding} characters; one segment holds {self.limit}")


class SegmentError(ValueError):
    pass


def measure(text: str) -> Segment:
    if all(c in _GSM_BASIC or c in _GSM_EXT for c in text):
        return Segment("GSM-7", sum(2 if c in _GSM_EXT else 1 for c in text), GSM7_LIMIT)
    return Segment("UCS-2", len(text.encode("utf-16-le")) // 2, UCS2_LIMIT)


def render_one_segment(template: str, variables: Mapping[str, object], row: object) -> str:
    """The message for one contact; SegmentError naming the row when it does not fit."""
    text = render(template, variables)
    seg = measure(text)
    if not seg.fits:
        raise SegmentError(f"row {row}: the message is {seg.describe()}")
    return text


def check_template(template: str) -> str | None:
    """What is wrong with a template (checked by `televox check`), or None."""
    stripped = PLACEHOLDER.sub("", template)
    if "{{" in stripped or "}}" in stripped:
        return "a placeholder is malformed; write {{NAME}} (letters, digits, _)"
    if not template.strip():
        return "the message is empty"
    static = measure(render(template, {}))
    if not static.fits:
        return f"even with every variable empty the message is {static.describe()}"
    return None


def fit(text: str) -> str:
    """Cut a generated reply to one segment, at a sentence or word end when possible."""
    text = " ".join(text.split())
    if measure(text).fits:
        return text
    # Non-GSM characters in a model reply are rare and cost 90 characters: drop them.
    gsm = "".join(c for c in text if c in _GSM_BASIC or c in _GSM_EXT)
    if gsm and len(gsm) >= len(text) - 3:
        text = gsm
    limit = measure(text).limit
    cut = text
    while not measure(cut).fits:
        cut = cut[:-1]
    for stop in (". ", "! ", "? "):
        i = cut.rfind(stop)
        if i >= limit // 2:
            return cut[:i + 1]
    i = cut.rfind(" ")
    return cut[:i].rstrip(",;: ") if i >= limit // 2 else cut
