"""The Do-Not-Call list and its audit trail. Every add and remove writes one audit row."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from aiosqlite import Row

from televox_pbx.store.db import Store

_CHUNK = 500  # bound on SQL variables per IN (...) query


@dataclass(frozen=True, slots=True)
class DncEntry:
    e164: str
    workspace: str
    reason: str
    source: str
    added_by: str
    added_at: str


@dataclass(frozen=True, slots=True)
class DncAuditEntry:
    id: int
    workspace: str
    e164: str
    action: str  # add | remove
    reason: str
    source: str
    actor: str
    at: str


async def is_on_dnc(store: Store, e164: str, workspace: str = "default") -> bool:
    """Primary-key lookup; the dial-time check."""
    row = await store.fetchone("SELECT 1 FROM dnc WHERE workspace = ? AND e164 = ?",
                               (workspace, e164))
    return row is not None


async def dnc_numbers(store: Store, workspace: str = "default") -> set[str]:
    """The whole list for one workspace, preloaded by imports to check rows in memory."""
    rows = await store.fetchall("SELECT e164 FROM dnc WHERE workspace = ?", (workspace,))
    return {str(r[0]) for r in rows}


async def _present(store: Store, workspace: str, numbers: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for i in range(0, len(numbers), _CHUNK):
        part = list(numbers[i:i + _CHUNK])
        rows = await store.fetchall(
            f"SELECT e164 FROM dnc WHERE workspace = ? AND e164 IN ({','.join('?' * len(part))})",
            (workspace, *part))
        found.update(str(r[0]) for r in rows)
    return found


# The store takes E.164 only: every DNC write is normalised first, by the one normaliser
# (campaigns.dnc.DncService / campaigns.phones). A raw caller ID here is a bug, refused.
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


def _check_e164(numbers: Sequence[str]) -> None:
    bad = sum(1 for e in numbers if not _E164.match(e))
    if bad:
        raise ValueError(f"{bad} DNC number(s) not in E.164: normalise before storing")


async def add_numbers(store: Store, workspace: str, entries: Sequence[tuple[str, str]],
                      source: str, actor: str, at: str) -> list[str]:
    """Add (e164, reason) pairs; returns the numbers that were not already listed.
    Numbers already on the list are left as they are (no change, so no audit row)."""
    async with store.transaction(tag="dnc"):
        return await add_numbers_in_tx(store, workspace, entries, source, actor, at)


async def add_numbers_in_tx(store: Store, workspace: str, entries: Sequence[tuple[str, str]],
                            source: str, actor: str, at: str) -> list[str]:
    """add_numbers inside the caller's transaction (an outcome's, for one)."""
    wanted: dict[str, str] = {}
    for e164, reason in entries:
        wanted.setdefault(e164, reason)
    _check_e164(list(wanted))
    present = await _present(store, workspace, list(wanted))
    new = [(e, r) for e, r in wanted.items() if e not in present]
    await store.conn.executemany(
        "INSERT INTO dnc(e164, workspace, reason, source, added_by, added_at)"
        " VALUES (?,?,?,?,?,?)", [(e, workspace, r, source, actor, at) for e, r in new])
    await store.conn.executemany(
        "INSERT INTO dnc_audit(workspace, e164, action, reason, source, actor, at)"
        " VALUES (?,?,'add',?,?,?,?)", [(workspace, e, r, source, actor, at) for e, r in new])
    if source != SMS_SOURCE and present:
        await _claim_from_sms(store, workspace, [(e, r) for e, r in wanted.items()
                                                 if e in present], source, actor, at)
    return [e for e, _ in new]


# An opt-out a text made (STOP) is the only kind a text (START) may take back.
SMS_SOURCE = "sms"


async def _claim_from_sms(store: Store, workspace: str, entries: Sequence[tuple[str, str]],
                          source: str, actor: str, at: str) -> None:
    """Any other request to list a number an SMS opt-out already holds takes the entry
    over (audited), so a later START cannot undo what the operator or a call asked for."""
    for e164, reason in entries:
        async with store.conn.execute(
                "UPDATE dnc SET source = ?, reason = ?, added_by = ?"
                " WHERE workspace = ? AND e164 = ? AND source = ?",
                (source, reason, actor, workspace, e164, SMS_SOURCE)) as cur:
            if cur.rowcount:
                await store.conn.execute(
                    "INSERT INTO dnc_audit(workspace, e164, action, reason, source, actor, at)"
                    " VALUES (?,?,'add',?,?,?,?)", (workspace, e164, reason, source, actor, at))


async def remove_numbers(store: Store, workspace: str, numbers: Sequence[str], reason: str,
                         source: str, actor: str, at: str) -> list[str]:
    """Remove numbers; returns those that were listed (only they get an audit row)."""
    async with store.transaction():
        unique = list(dict.fromkeys(numbers))
        present = await _present(store, workspace, unique)
        gone = [e for e in unique if e in present]
        await store.conn.executemany("DELETE FROM dnc WHERE workspace = ? AND e164 = ?",
                                     [(workspace, e) for e in gone])
        await store.conn.executemany(
            "INSERT INTO dnc_audit(workspace, e164, action, reason, source, actor, at)"
            " VALUES (?,?,'remove',?,?,?,?)",
            [(workspace, e, reason, source, actor, at) for e in gone])
    return gone


def _entry(r: Row) -> DncEntry:
    return DncEntry(str(r["e164"]), str(r["workspace"]), str(r["reason"]), str(r["source"]),
                    str(r["added_by"]), str(r["added_at"]))


async def list_entries(store: Store, workspace: str = "default", limit: int | None = None,
                       offset: int = 0) -> list[DncEntry]:
    rows = await store.fetchall(
        "SELECT e164, workspace, reason, source, added_by, added_at FROM dnc"
        " WHERE workspace = ? ORDER BY added_at, e164 LIMIT ? OFFSET ?",
        # No limit: a bound no list reaches (SQLite's LIMIT -1 is an error on PostgreSQL).
        (workspace, 2**62 if limit is None else limit, offset))
    return [_entry(r) for r in rows]


async def count_entries(store: Store, workspace: str = "default") -> int:
    row = await store.fetchone("SELECT COUNT(*) FROM dnc WHERE workspace = ?", (workspace,))
    return int(row[0]) if row else 0


async def audit_log(store: Store, workspace: str = "default", e164: str | None = None,
                    limit: int = 1000) -> list[DncAuditEntry]:
    """Newest first; one number's history when e164 is given."""
    where, params = "workspace = ?", [workspace]
    if e164 is not None:
        where += " AND e164 = ?"
        params.append(e164)
    rows = await store.fetchall(
        f"SELECT id, workspace, e164, action, reason, source, actor, at FROM dnc_audit"
        f" WHERE {where} ORDER BY at DESC, id DESC LIMIT ?", (*params, limit))
    return [DncAuditEntry(int(r["id"]), str(r["workspace"]), str(r["e164"]), str(r["action"]),
                          str(r["reason"]), str(r["source"]), str(r["actor"]), str(r["at"]))
            for r in rows]
