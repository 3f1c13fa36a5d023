"""Phone numbers to E.164, with a fast path for the common NANP shapes.

What "invalid" means here (documented for imports and the DNC list):

* the text does not parse as a phone number, or carries an extension (we cannot dial it);
* the number is not *possible* for its country (wrong length; local-only numbers that need
  an area code are rejected too);
* the national number does not match the country's general number pattern (e.g. a US area
  code starting with 0 or 1).

We deliberately do NOT require ``is_valid_number``: metadata lags new ranges, and the
fictional 555-01XX numbers used for tests must still import. The trunk reports truly
unallocated numbers at dial time (Q.850 cause 1).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, ValidationResult

# Regions sharing country calling code 1 (NANP), where a bare 10-digit number is national.
NANP_REGIONS = frozenset({
    "AG", "AI", "AS", "BB", "BM", "BS", "CA", "DM", "DO", "GD", "GU", "JM", "KN", "KY", "LC",
    "MP", "MS", "PR", "SX", "TC", "TT", "US", "VC", "VG", "VI"})

# Already E.164 for NANP: +1 then a 10-digit national number with area code [2-9].
_FAST_E164 = re.compile(r"\+1([2-9][0-9]{9})")
# National NANP shapes: 2025550100, 1-202-555-0100, (202) 555-0100, 202.555.0100, +1 202 ...
FAST_NANP = re.compile(
    r"(?:\+?1[ .-]?)?\(?([2-9][0-9]{2})\)?[ .-]?([0-9]{3})[ .-]?([0-9]{4})")
# Leading apostrophe: our own safe CSV writer adds it to cells starting with '+'.
_APOSTROPHES = "'\u2019"

_REASONS = {
    ValidationResult.INVALID_COUNTRY_CODE: "invalid country code",
    ValidationResult.TOO_SHORT: "too short",
    ValidationResult.TOO_LONG: "too long",
    ValidationResult.INVALID_LENGTH: "invalid length",
    ValidationResult.IS_POSSIBLE_LOCAL_ONLY: "local number, needs an area code",
}


@dataclass(frozen=True, slots=True)
class PhoneResult:
    """Either `e164` is set, or `error` says why the input is not a dialable number."""

    e164: str | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.e164 is not None


def fast_nanp(cell: str) -> str | None:
    """The importer's per-cell fast path when the default country is NANP: E.164 for the
    common shapes of an untrimmed cell, else None. Equals phonenumbers (property-tested)."""
    m = FAST_NANP.fullmatch(cell)
    return "+1" + m.group(1) + m.group(2) + m.group(3) if m is not None else None


def fast_e164(raw: str, default_country: str) -> str | None:
    """E.164 for the common NANP shapes, or None when the slow path must decide.

    Whatever this returns equals phonenumbers' own E.164 output (property-tested).
    """
    m = _FAST_E164.fullmatch(raw)
    if m is not None:
        return raw
    if default_country not in NANP_REGIONS and not raw.startswith("+1"):
        return None
    m = FAST_NANP.fullmatch(raw)
    if m is None:
        return None
    if raw.startswith("+") and not raw.startswith("+1"):
        return None
    return "+1" + m.group(1) + m.group(2) + m.group(3)


@lru_cache(maxsize=65536)
def slow_normalize(raw: str, default_country: str) -> PhoneResult:
    """The full phonenumbers path (~20 µs), cached because lists repeat numbers."""
    try:
        num = phonenumbers.parse(raw, default_country)
    except NumberParseException as exc:
        return PhoneResult(None, f"not a phone number ({_parse_reason(exc)})")
    if num.extension:
        return PhoneResult(None, "has an extension")
    possible = phonenumbers.is_possible_number_with_reason(num)
    if possible != ValidationResult.IS_POSSIBLE:
        return PhoneResult(None, _REASONS.get(possible, "not a possible number"))
    if not _matches_general_pattern(num):
        return PhoneResult(None, "not a number pattern used in that country")
    return PhoneResult(phonenumbers.format_number(num, PhoneNumberFormat.E164))


def _parse_reason(exc: NumberParseException) -> str:
    return {
        NumberParseException.INVALID_COUNTRY_CODE: "unknown country",
        NumberParseException.NOT_A_NUMBER: "no digits",
        NumberParseException.TOO_SHORT_AFTER_IDD: "too short",
        NumberParseException.TOO_SHORT_NSN: "too short",
        NumberParseException.TOO_LONG: "too long",
    }.get(exc.error_type, "unparseable")


def _matches_general_pattern(num: phonenumbers.PhoneNumber) -> bool:
    cc = num.country_code
    if cc is None:
        return False
    region = phonenumbers.region_code_for_country_code(cc)
    meta = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(cc, region)
    if meta is None or meta.general_desc is None:
        return False
    pattern = meta.general_desc.national_number_pattern
    if pattern is None:
        return False
    nsn = phonenumbers.national_significant_number(num)
    return re.fullmatch(pattern, nsn) is not None


def normalize_phone(raw: str, default_country: str = "US") -> PhoneResult:
    """Normalise one cell to E.164 (see the module docstring for what is rejected)."""
    text = raw.strip().lstrip(_APOSTROPHES).strip()
    if not text:
        return PhoneResult(None, "empty")
    fast = fast_e164(text, default_country)
    if fast is not None:
        return PhoneResult(fast)
    return slow_normalize(text, default_country)


def looks_like_phone(raw: str) -> bool:
    """Cheap shape test for the column guesser: 7-15 digits with phone punctuation only."""
    text = raw.strip().lstrip(_APOSTROPHES)
    if not _PHONE_SHAPE.fullmatch(text):
        return False
    digits = sum(ch.isdigit() for ch in text)
    return 7 <= digits <= 15


_PHONE_SHAPE = re.compile(r"\+?[0-9 ().\-/]{7,24}")


def caller_e164(caller_id: str, default_country: str = "US") -> str:
    """An inbound caller ID as the store keeps it: E.164 when it is a number (so the
    live-attempt guard and an opt-out match the campaigns' contacts), else as given
    ("anonymous")."""
    return normalize_phone(caller_id, default_country).e164 or caller_id
