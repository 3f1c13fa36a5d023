"""Contact rows for imports: bulk insert, the phone set used for dedupe, export, runs."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import NamedTuple

from televox_pbx.store.db import Store
from televox_pbx.store.sqlport import POSTGRESQL, SQLITE


class NewContact(NamedTuple):
    """A tuple, not a dataclass: a batch of them serialises straight to one JSON array."""

    name: str | None
    first_name: str | None
    last_name: str | None
    email: str | None
    timezone: str | None
    variables_json: str
    phones: tuple[str, ...]  # E.164, dialling order = positions 1..n


@dataclass(frozen=True, slots=True)
class ImportRun:
    campaign_id: int | None
    source: str
    origin: str  # file name or API client, no contact data
    rows: int
    added: int
    phones_added: int
    invalid: int
    duplicate: int
    dnc: int
    actor: str


async def ensure_campaign(store: Store, name: str) -> int:
    """The campaign's id, creating a bare row if it has none yet."""
    await store.execute("INSERT INTO campaigns(name) VALUES (?) ON CONFLICT(name) DO NOTHING",
                        (name,))
    row = await store.fetchone("SELECT id FROM campaigns WHERE name = ?", (name,))
    assert row is not None
    return int(row["id"])


@asynccontextmanager
async def big_page_cache(store: Store, kib: int = 65536) -> AsyncIterator[None]:
    """Raise the connection's page cache for a bulk import, then put it back.

    Sorted batches still touch e164 index pages across the whole key range; with the
    default 2 MiB cache they are evicted between batches and re-read (about 1.5 µs a row).
    """
    if store.dialect != SQLITE:  # PostgreSQL's shared buffers are the server's business
        yield
        return
    row = await store.fetchone("PRAGMA cache_size")
    before = int(row[0]) if row else -2000
    await store.execute(f"PRAGMA cache_size = {-abs(int(kib))}")
    try:
        yield
    finally:
        await store.execute(f"PRAGMA cache_size = {before}")


async def campaign_phones(store: Store, campaign_id: int) -> set[str]:
    """Every E.164 already in the campaign (one query; the importer dedupes in memory)."""
    rows = await store.fetchall("SELECT e164 FROM contact_phones WHERE campaign_id = ?",
                                (campaign_id,))
    return {str(r[0]) for r in rows}


_INSERT_SQLITE = (
    "INSERT INTO contacts(id, campaign_id, name, first_name, last_name, email,"
    " timezone, variables_json, source, created_at, updated_at)"
    " SELECT ?1 + key, ?2, value->>0, value->>1, value->>2, value->>3, value->>4,"
    " value->>5, ?3, ?4, ?4 FROM json_each(?5)",
    "INSERT INTO contact_phones(contact_id, campaign_id, position, e164)"
    " SELECT ?1 + c.key, ?2, p.key + 1, p.value"
    " FROM json_each(?3) AS c, json_each(c.value, '$[6]') AS p ORDER BY p.value")
# The same with PostgreSQL's JSON functions (ordinality counts from 1, json_each's key from 0).
_INSERT_PG = (
    "INSERT INTO contacts(id, campaign_id, name, first_name, last_name, email,"
    " timezone, variables_json, source, created_at, updated_at)"
    " SELECT ?1 + c.ord - 1, ?2, c.value->>0, c.value->>1, c.value->>2, c.value->>3,"
    " c.value->>4, c.value->>5, ?3, ?4, ?4"
    " FROM jsonb_array_elements(CAST(?5 AS jsonb)) WITH ORDINALITY AS c(value, ord)",
    "INSERT INTO contact_phones(contact_id, campaign_id, position, e164)"
    " SELECT ?1 + c.ord - 1, ?2, p.ord, p.value"
    " FROM jsonb_array_elements(CAST(?3 AS jsonb)) WITH ORDINALITY AS c(value, ord),"
    " jsonb_array_elements_text(c.value->6) WITH ORDINALITY AS p(value, ord)"
    " ORDER BY p.value")


async def insert_contacts(store: Store, campaign_id: int, contacts: Sequence[NewContact],
                          source: str, at: str) -> int:
    """Insert contacts and their phones in one transaction.

    The batch travels as one JSON array that the database unpacks (json_each; on
    PostgreSQL jsonb_array_elements), so no Python
    tuple is built per row. Ids are assigned from MAX(id) under the write lock (BEGIN
    IMMEDIATE), so phones reference their contact without a lastrowid round trip; phones
    go in sorted by number so the e164 indexes grow in order. Phones must already be
    unique within the campaign; a clash aborts the whole batch.
    """
    if not contacts:
        return 0
    blob = json.dumps(contacts, ensure_ascii=False)
    async with store.transaction() as conn:
        if store.dialect == POSTGRESQL:
            # What BEGIN IMMEDIATE gives SQLite: no other importer takes ids meanwhile.
            await conn.execute("LOCK TABLE contacts IN SHARE ROW EXCLUSIVE MODE")
        async with conn.execute("SELECT COALESCE(MAX(id), 0) FROM contacts") as cur:
            row = await cur.fetchone()
        first = int(row[0]) + 1 if row else 1
        sql = _INSERT_PG if store.dialect == POSTGRESQL else _INSERT_SQLITE
        await conn.execute(sql[0], (first, campaign_id, source, at, blob))
        await conn.execute(sql[1], (first, campaign_id, blob))
        await store.sync_ids("contacts")
    return len(contacts)


async def record_import(store: Store, run: ImportRun) -> int:
    return await store.execute(
        "INSERT INTO import_runs(campaign_id, source, origin, rows, added, phones_added,"
        " invalid, duplicate, dnc, actor) VALUES (?,?,?,?,?,?,?,?,?,?)",
        (run.campaign_id, run.source, run.origin, run.rows, run.added, run.phones_added,
         run.invalid, run.duplicate, run.dnc, run.actor))


async def contacts_for_export(store: Store, campaign_id: int,
                              max_phones: int = 10) -> tuple[list[str], list[list[object]]]:
    """Header and rows (id, names, email, timezone, status, phone1..N, variables JSON)."""
    header = ["id", "name", "first_name", "last_name", "email", "timezone", "status",
              "last_disposition", *[f"phone{i}" for i in range(1, max_phones + 1)],
              "variables_json"]
    phones_sql = (
        "(SELECT string_agg(e164, ' ' ORDER BY position) FROM contact_phones p"
        " WHERE p.contact_id = c.id)" if store.dialect == POSTGRESQL else
        "(SELECT group_concat(e164, ' ') FROM (SELECT e164 FROM contact_phones p"
        "  WHERE p.contact_id = c.id ORDER BY position))")
    rows = await store.fetchall(
        "SELECT c.id, c.name, c.first_name, c.last_name, c.email, c.timezone, c.status,"
        f" c.last_disposition, c.variables_json, {phones_sql} AS phones"
        " FROM contacts c WHERE c.campaign_id = ? ORDER BY c.id", (campaign_id,))
    out: list[list[object]] = []
    for r in rows:
        phones = str(r["phones"] or "").split()
        phones += [""] * (max_phones - len(phones))
        out.append([r["id"], r["name"], r["first_name"], r["last_name"], r["email"],
                    r["timezone"], r["status"], r["last_disposition"], *phones[:max_phones],
                    r["variables_json"]])
    return header, out


async def results_for_export(store: Store,
                             campaign_id: int) -> tuple[list[str], list[list[object]]]:
    """One row per call attempt with its contact, oldest first (the results export)."""
    header = ["attempt_id", "contact_id", "name", "phone", "phone_position", "retry_pass",
              "status", "disposition", "failure", "amd_status", "hangup_cause", "duration_s",
              "turns", "created_at", "answered_at", "hangup_at", "notes"]
    rows = await store.fetchall(
        "SELECT a.id, a.contact_id, c.name, a.phone, a.phone_position, a.retry_pass,"
        " a.status, a.disposition, a.failure, a.amd_status, a.hangup_cause, a.duration_s,"
        " a.turns, a.created_at, a.answered_at, a.hangup_at, a.notes"
        " FROM call_attempts a LEFT JOIN contacts c ON c.id = a.contact_id"
        " WHERE a.campaign_id = ? ORDER BY a.created_at, a.id", (campaign_id,))
    return header, [list(r) for r in rows]
