"""Leads as JSON of any shape -> flat records for the import engine: dotted paths into
nested objects, list items by index (`lead.phones.0.number`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MAX_LEAVES = 500  # a lead with more scalars than this is not a lead
_SCALARS = (str, int, float, bool)


def _scalar(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if isinstance(value, _SCALARS) else None


def resolve(data: Any, path: str) -> Any:
    """The value at a dotted path; None when any step is missing. A step into a list is
    its index (negative counts from the end); a key that itself holds dots is found too
    (`{"a.b": 1}` answers `a.b`)."""
    if isinstance(data, Mapping) and path in data:
        return data[path]
    head, sep, rest = path.partition(".")
    if isinstance(data, Mapping):
        if head not in data:
            return None
        value = data[head]
    elif isinstance(data, list):
        try:
            value = data[int(head)]
        except (ValueError, IndexError):
            return None
    else:
        return None
    return resolve(value, rest) if sep else value


def flatten(data: Any, prefix: str = "", out: dict[str, str] | None = None) -> dict[str, str]:
    """Every scalar leaf under its dotted path, in document order, up to MAX_LEAVES."""
    out = {} if out is None else out
    items: Any = data.items() if isinstance(data, Mapping) else \
        enumerate(data) if isinstance(data, list) else ()
    for key, value in items:
        if len(out) >= MAX_LEAVES:
            break
        path = f"{prefix}{key}"
        if isinstance(value, (Mapping, list)):
            flatten(value, path + ".", out)
            continue
        text = _scalar(value)
        if text is not None:
            out[path] = text
    return out


def lead_record(lead: Any, mapping: Mapping[str, str]) -> dict[str, str]:
    """The record the import engine reads: with a mapping, one column per mapped path
    (the rest of the JSON is ignored); without one, every scalar leaf (guessed as CSV
    columns are)."""
    if not mapping:
        return flatten(lead)
    out: dict[str, str] = {}
    for path in mapping:
        text = _scalar(resolve(lead, path))
        if text is not None:
            out[path] = text
    return out
