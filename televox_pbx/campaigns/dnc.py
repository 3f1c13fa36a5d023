"""The DNC service: normalise, add/remove with reason, source and actor, import, export.

Every change is audited (store.dnc writes dnc_audit in the same transaction). The dial-time
check is `is_on_dnc(store, e164, workspace)`: one primary-key lookup.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from televox_pbx.campaigns.csvio import read_csv, write_csv
from televox_pbx.campaigns.mapping import build_mapping, normalize_header
from televox_pbx.campaigns.phones import looks_like_phone, normalize_phone
from televox_pbx.clock import Clock
from televox_pbx.store import dnc as dnc_store
from televox_pbx.store.db import Store
from televox_pbx.store.dnc import DncAuditEntry, DncEntry, is_on_dnc
from televox_pbx.store.timefmt import iso

__all__ = ["DncResult", "DncService", "is_on_dnc"]

EXPORT_HEADER = ("e164", "reason", "source", "added_by", "added_at")
# (number as written, reason, why the row could not be read or None)
DncItem = tuple[str, str, str | None]


@dataclass(slots=True)
class DncResult:
    changed: list[str] = field(default_factory=list)  # E.164 added or removed
    unchanged: list[str] = field(default_factory=list)  # already listed / not listed
    invalid: list[tuple[int, str, str]] = field(default_factory=list)  # (item, input, why)


class DncService:
    def __init__(self, store: Store, workspace: str = "default", default_country: str = "US",
                 clock: Clock | None = None) -> None:
        self.store = store
        self.workspace = workspace
        self.country = default_country
        self.clock = clock

    def _now(self) -> str:
        return iso(self.clock.now() if self.clock is not None else datetime.now(UTC))

    def normalise(self, number: str) -> str | None:
        return normalize_phone(number, self.country).e164

    async def contains(self, number: str) -> bool:
        """Any format; a number that does not normalise cannot be on the list."""
        e164 = self.normalise(number)
        return e164 is not None and await is_on_dnc(self.store, e164, self.workspace)

    def _normalise_all(self, items: Sequence[DncItem], result: DncResult) -> list[tuple[str, str]]:
        good = []
        for i, (raw, reason, error) in enumerate(items, start=1):
            res = normalize_phone(raw, self.country) if error is None else None
            if res is None or res.e164 is None:
                result.invalid.append((i, raw, error or (res.error if res else None)
                                       or "invalid"))
            else:
                good.append((res.e164, reason))
        return good

    async def add_entries(self, items: Sequence[tuple[str, str]], *, source: str = "manual",
                          actor: str = "system") -> DncResult:
        """(number, reason) pairs in any format."""
        return await self._add_items([(n, r, None) for n, r in items], source, actor)

    async def _add_items(self, items: Sequence[DncItem], source: str,
                         actor: str) -> DncResult:
        result = DncResult()
        good = self._normalise_all(items, result)
        added = await dnc_store.add_numbers(self.store, self.workspace, good, source, actor,
                                            self._now())
        result.changed = added
        fresh = set(added)
        result.unchanged = list(dict.fromkeys(e for e, _ in good if e not in fresh))
        return result

    async def add(self, numbers: Sequence[str], *, reason: str = "", source: str = "manual",
                  actor: str = "system") -> DncResult:
        return await self.add_entries([(n, reason) for n in numbers], source=source,
                                      actor=actor)

    async def remove(self, numbers: Sequence[str], *, reason: str = "",
                     source: str = "manual", actor: str = "system") -> DncResult:
        result = DncResult()
        good = [e for e, _ in self._normalise_all([(n, "", None) for n in numbers], result)]
        removed = await dnc_store.remove_numbers(self.store, self.workspace, good, reason,
                                                 source, actor, self._now())
        result.changed = removed
        gone = set(removed)
        result.unchanged = list(dict.fromkeys(e for e in good if e not in gone))
        return result

    async def import_csv(self, path: Path, *, reason: str = "", source: str = "import",
                         actor: str = "system") -> DncResult:
        """A CSV with a phone column (guessed) and optional `reason` column, or a bare list
        of numbers one per line. A row's own reason wins over `reason`."""
        return await self._add_items(read_dnc_file(path, reason, self.country), source, actor)

    async def entries(self, limit: int | None = None, offset: int = 0) -> list[DncEntry]:
        return await dnc_store.list_entries(self.store, self.workspace, limit, offset)

    async def count(self) -> int:
        return await dnc_store.count_entries(self.store, self.workspace)

    async def audit(self, number: str | None = None, limit: int = 1000) -> list[DncAuditEntry]:
        e164 = self.normalise(number) if number is not None else None
        if number is not None and e164 is None:
            return []
        return await dnc_store.audit_log(self.store, self.workspace, e164, limit)

    async def export_csv(self, path: Path) -> int:
        entries = await self.entries()
        return write_csv(path, EXPORT_HEADER, (
            (e.e164, e.reason, e.source, e.added_by, e.added_at) for e in entries))


class CallDnc:
    """The voice session's DncPort: an opt-out heard on a call (outbound or inbound) goes
    through the same normaliser as every other DNC write, so "(212) 555-0100" from a caller
    ID and "+12125550100" from a CSV are one entry."""

    def __init__(self, service: DncService) -> None:
        self._service = service

    async def add(self, phone: str, *, reason: str, source: str) -> None:
        result = await self._service.add_entries([(phone, reason)], source=source,
                                                 actor="agent")
        if result.invalid:
            raise ValueError("opt-out for a caller ID that is not a phone number")


def read_dnc_file(path: Path, default_reason: str = "",
                  default_country: str = "US") -> list[DncItem]:
    """(number, reason, error) per row of a DNC file: a CSV with a phone column (guessed)
    and an optional `reason` column, or a bare list of numbers one per line. Unreadable
    rows carry their error so they are reported, not skipped."""
    table = read_csv(path)
    if not table.headers:
        return [("", "", r.error or "unreadable row") for r in table.rows]
    if looks_like_phone(table.headers[0]):  # no header row: a bare list of numbers
        first = table.headers[0]
        out: list[DncItem] = [(first, default_reason, None)]
        out.extend((row.values.get(first, ""), default_reason, row.error)
                   for row in table.rows)
        return out
    samples = [r.values for r in table.rows[:200] if r.error is None]
    phones = build_mapping(table.headers, samples,
                           default_country=default_country).phone_headers()
    if not phones:
        return [("", "", "no phone column") for _ in table.rows]
    reason_col = next((h for h in table.headers if normalize_header(h) == "REASON"), None)
    return [(row.values.get(phones[0], ""),
             (row.values.get(reason_col, "").strip() if reason_col else "") or default_reason,
             row.error) for row in table.rows]
