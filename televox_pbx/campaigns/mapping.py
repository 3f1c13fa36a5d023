"""Which source column feeds which contact field: explicit maps first, then a guesser.

The same mapping serves CSV upload, manual entry, the HTTP API and webhook pushes: every
source hands the importer rows of header -> value. Headers are compared in normalised form
(`case number` -> `CASE_NUMBER`); any column that is not a contact field becomes a template
variable under its normalised name, usable as {{CASE_NUMBER}}.
"""

from __future__ import annotations

import re
import unicodedata
import zoneinfo
from collections.abc import Callable, Sequence
from collections.abc import Mapping as MappingT
from dataclasses import dataclass, field
from functools import lru_cache
from typing import NamedTuple

from televox_pbx.campaigns.phones import looks_like_phone, normalize_phone

MAX_PHONES = 10
SCALAR_FIELDS = ("name", "first_name", "last_name", "email", "timezone")

_EXACT: dict[str, str] = {
    "NAME": "name", "FULL_NAME": "name", "FULLNAME": "name", "CONTACT_NAME": "name",
    "CUSTOMER_NAME": "name", "CONTACT": "name",
    "FIRST_NAME": "first_name", "FIRSTNAME": "first_name", "FIRST": "first_name",
    "GIVEN_NAME": "first_name", "FORENAME": "first_name", "CONTACT_FIRST_NAME": "first_name",
    "LAST_NAME": "last_name", "LASTNAME": "last_name", "LAST": "last_name",
    "SURNAME": "last_name", "FAMILY_NAME": "last_name", "CONTACT_LAST_NAME": "last_name",
    "EMAIL": "email", "E_MAIL": "email", "EMAIL_ADDRESS": "email", "MAIL": "email",
    "TIMEZONE": "timezone", "TIME_ZONE": "timezone", "TZ": "timezone",
    "PHONE": "phone", "PHONE_NUMBER": "phone", "PHONENUMBER": "phone", "TELEPHONE": "phone",
    "TEL": "phone", "MOBILE": "phone", "CELL": "phone", "NUMBER": "phone", "E164": "phone",
}
_PHONE_WORDS = frozenset({"PHONE", "PHONES", "MOBILE", "CELL", "TEL", "TELEPHONE"})
# Tokens that mark a numeric column that is not a phone (CASE_NUMBER, PHONE_EXT, ZIP ...).
_NOT_PHONE = frozenset({"ID", "CASE", "ACCOUNT", "ZIP", "POSTAL", "POSTCODE", "ORDER", "REF",
                        "AMOUNT", "EXT", "EXTENSION", "COUNT", "TYPE", "INVOICE", "SSN"})
_PHONE_SLOT = re.compile(r"PHONE_?(\d{1,2})")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_SKIP_WORDS = frozenset({"skip", "ignore", "-", "none"})
# Share of non-empty samples that must look alike before values decide a column.
_VALUE_SHARE = 0.8


class MappingError(ValueError):
    """An explicit mapping names an unknown field."""


class SourceRow(NamedTuple):
    """One input row from any source. `error` set means the row could not even be read.

    A NamedTuple rather than a frozen dataclass: it is built once per imported row, and a
    frozen dataclass's __init__ cost a fifth of the CSV parse time."""

    number: int  # 1-based data row number
    values: MappingT[str, str]
    line: int | None = None  # physical line in a file, when there is one
    error: str | None = None
    raw: str | None = None  # the raw text of an unreadable row, for the rejects file


@dataclass(frozen=True, slots=True)
class ColumnMap:
    header: str  # as the source spells it
    key: str  # normalised header
    target: str  # a SCALAR_FIELDS name, "phone", "var" or "skip"
    why: str  # explicit | header | values | default
    slot: int | None = None  # phoneN given explicitly or by header
    variable: str | None = None  # variable name when target == "var"


@dataclass(frozen=True, slots=True)
class Mapping:
    columns: tuple[ColumnMap, ...]
    notes: tuple[str, ...] = ()

    def scalar(self, name: str) -> str | None:
        for col in self.columns:
            if col.target == name:
                return col.header
        return None

    def phone_headers(self) -> list[str]:
        """Phone columns in dialling order: phoneN slots first, then column order."""
        cols = [(c.slot if c.slot is not None else MAX_PHONES + 1, i, c.header)
                for i, c in enumerate(self.columns) if c.target == "phone"]
        return [h for _, _, h in sorted(cols)]

    def variables(self) -> list[tuple[str, str]]:
        return [(c.header, c.variable or c.key) for c in self.columns if c.target == "var"]

    def table(self) -> list[tuple[str, str, str]]:
        """(source header, field, why) rows for display before an import."""
        out = []
        for c in self.columns:
            if c.target == "phone":
                shown = f"phone (position {self.phone_headers().index(c.header) + 1})"
            elif c.target == "var":
                shown = "{{" + (c.variable or c.key) + "}}"
            else:
                shown = c.target
            out.append((c.header, shown, c.why))
        return out


@lru_cache(maxsize=4096)
def normalize_header(header: str) -> str:
    """`case number` -> `CASE_NUMBER`; accents folded; non-alphanumerics become `_`."""
    folded = unicodedata.normalize("NFKD", header).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^A-Z0-9]+", "_", folded.upper()).strip("_")


def parse_target(value: str) -> tuple[str, int | None, str | None]:
    """A mapping target as written by a user: name, phone, phone3, var:CASE, skip ..."""
    v = value.strip()
    low = v.lower()
    if low in _SKIP_WORDS:
        return "skip", None, None
    if low in SCALAR_FIELDS:
        return low, None, None
    if low in ("phone", "phone_number"):
        return "phone", None, None
    m = re.fullmatch(r"phone_?(\d{1,2})", low)
    if m:
        n = int(m.group(1))
        if not 1 <= n <= MAX_PHONES:
            raise MappingError(f"{value!r}: phone slots are phone1..phone{MAX_PHONES}")
        return "phone", n, None
    if low.startswith("var:") and normalize_header(v[4:]):
        return "var", None, normalize_header(v[4:])
    raise MappingError(
        f"unknown field {value!r}; use name, first_name, last_name, email, timezone, "
        f"phone, phone1..phone{MAX_PHONES}, var:NAME or skip")


def merge_explicit(base: MappingT[str, str], override: MappingT[str, str]) -> dict[str, str]:
    """Campaign mapping overlaid with a caller's (CLI --map, API): an override that maps
    some column to a contact field also drops the base's entry for that field."""
    taken = {parse_target(t)[0] for t in override.values()} & set(SCALAR_FIELDS)
    merged = {h: t for h, t in base.items() if parse_target(t)[0] not in taken}
    merged.update(override)
    return merged


def parse_map_option(text: str) -> tuple[str, str]:
    """CLI `--map 'Mobile=phone1'` -> ('Mobile', 'phone1')."""
    header, sep, target = text.rpartition("=")
    if not sep or not header.strip() or not target.strip():
        raise MappingError(f"{text!r}: expected HEADER=field, e.g. Mobile=phone1")
    parse_target(target)
    return header.strip(), target.strip()


def _guess_from_header(key: str) -> tuple[str, int | None] | None:
    m = _PHONE_SLOT.fullmatch(key)
    if m and 1 <= int(m.group(1)) <= MAX_PHONES:
        return "phone", int(m.group(1))
    if key in _EXACT:
        return _EXACT[key], None
    tokens = key.split("_")
    if tokens[-1] in ("EMAIL", "MAIL"):
        return "email", None
    if _NOT_PHONE.isdisjoint(tokens) and (
            tokens[-1] in _PHONE_WORDS or tokens[0] in _PHONE_WORDS):
        return "phone", None
    return None


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _share(samples: Sequence[str], test: Callable[[str], object]) -> float:
    vals = [s.strip() for s in samples if s and s.strip()]
    if not vals:
        return 0.0
    return sum(1 for v in vals if test(v)) / len(vals)


def _guess_from_values(key: str, samples: Sequence[str], country: str) -> str | None:
    if _share(samples, _EMAIL.fullmatch) >= _VALUE_SHARE:
        return "email"
    if _share(samples, lambda v: v in _zones()) >= _VALUE_SHARE:
        return "timezone"
    # Shaped like a phone AND a dialable number here (not a balance like 1234567.89).
    if _NOT_PHONE.isdisjoint(key.split("_")) and _share(
            samples, lambda v: looks_like_phone(v) and normalize_phone(v, country).ok
    ) >= _VALUE_SHARE:
        return "phone"
    return None


@dataclass(slots=True)
class _Builder:
    columns: list[ColumnMap] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    taken: set[str] = field(default_factory=set)
    phones: int = 0

    def add(self, header: str, key: str, target: str, why: str, slot: int | None = None,
            variable: str | None = None) -> None:
        if target in SCALAR_FIELDS and target in self.taken:
            self.notes.append(f"{header!r}: {target} already mapped; kept as a variable")
            target, slot = "var", None
        if target == "phone":
            if self.phones >= MAX_PHONES:
                self.notes.append(f"{header!r}: more than {MAX_PHONES} phone columns; "
                                  "kept as a variable")
                target, slot = "var", None
            else:
                self.phones += 1
        if target in SCALAR_FIELDS:
            self.taken.add(target)
        self.columns.append(ColumnMap(header, key, target, why, slot, variable))


def build_mapping(headers: Sequence[str], samples: Sequence[MappingT[str, str]] = (),
                  explicit: MappingT[str, str] | None = None, *,
                  default_country: str = "US") -> Mapping:
    """Map each header to a field. Explicit entries (keys compared normalised) win; the
    rest are guessed from the header name, then from sample values; leftovers are
    variables. Raises MappingError for an explicit entry naming an unknown field."""
    wanted: dict[str, tuple[str, int | None, str | None]] = {}
    for src, target in (explicit or {}).items():
        wanted[normalize_header(src)] = parse_target(target)
    b = _Builder()
    keys = [normalize_header(h) or f"COLUMN_{i + 1}" for i, h in enumerate(headers)]
    # Explicit scalar targets claim their field before any guess can take it.
    claimed: dict[str, str] = {}
    for header, key in zip(headers, keys, strict=True):
        target = wanted[key][0] if key in wanted else ""
        if target in SCALAR_FIELDS:
            if target in claimed:
                raise MappingError(f"both {claimed[target]!r} and {header!r} are mapped to "
                                   f"{target}")
            claimed[target] = header
    b.taken.update(claimed)
    for header, key in zip(headers, keys, strict=True):
        if key in wanted:
            target, slot, var = wanted[key]
            b.taken.discard(target)
            b.add(header, key, target, "explicit", slot, var)
            continue
        column = [row.get(header, "") for row in samples]
        guess = _guess_from_header(key)
        if guess is not None and guess[0] == "phone" and key not in _EXACT and \
                guess[1] is None and column and _share(column, looks_like_phone) < 0.5:
            guess = None  # e.g. PHONE_TYPE holding "mobile", "home"
        if guess is not None:
            b.add(header, key, guess[0], "header", guess[1])
            continue
        by_value = _guess_from_values(key, column, default_country) if column else None
        if by_value is not None:
            b.add(header, key, by_value, "values")
        else:
            b.add(header, key, "var", "default")
    missing = sorted(set(wanted) - set(keys))
    b.notes.extend(f"mapping for {k!r} ignored: no such column" for k in missing)
    return Mapping(tuple(b.columns), tuple(b.notes))
