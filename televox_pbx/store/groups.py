"""Contact groups: named sets of people, deduplicated by E.164 inside each group."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from televox_pbx.store.contacts import NewContact
from televox_pbx.store.db import Store
from televox_pbx.store.sqlport import POSTGRESQL


@dataclass(frozen=True, slots=True)
class GroupInfo:
    id: int
    name: str
    members: int


async def ensure_group(store: Store, name: str) -> int:
    await store.execute("INSERT INTO contact_groups(name) VALUES (?) ON CONFLICT DO NOTHING",
                        (name,))
    gid = await group_id(store, name)
    assert gid is not None
    return gid


async def group_id(store: Store, name: str) -> int | None:
    row = await store.fetchone("SELECT id FROM contact_groups WHERE name = ?", (name,))
    return int(row[0]) if row else None


async def list_groups(store: Store) -> list[GroupInfo]:
    rows = await store.fetchall(
        "SELECT g.id, g.name, (SELECT COUNT(*) FROM group_members m WHERE m.group_id = g.id)"
        " FROM contact_groups g ORDER BY g.name")
    return [GroupInfo(int(r[0]), str(r[1]), int(r[2])) for r in rows]


async def delete_group(store: Store, name: str) -> bool:
    """Drops the group and its members; campaign contacts made from them stay."""
    gid = await group_id(store, name)
    if gid is None:
        return False
    await store.execute("DELETE FROM contact_groups WHERE id = ?", (gid,))
    return True


async def group_phones(store: Store, gid: int) -> set[str]:
    rows = await store.fetchall("SELECT e164 FROM group_member_phones WHERE group_id = ?",
                                (gid,))
    return {str(r[0]) for r in rows}


async def insert_members(store: Store, gid: int, members: Sequence[NewContact],
                         at: str) -> int:
    """Phones must be new to the group (the planner dedupes); a clash aborts the batch."""
    if not members:
        return 0
    async with store.transaction(tag="group") as conn:
        for m in members:
            async with conn.execute(
                    "INSERT INTO group_members(group_id, name, first_name, last_name, email,"
                    " timezone, variables_json, added_at) VALUES (?,?,?,?,?,?,?,?)",
                    (gid, m.name, m.first_name, m.last_name, m.email, m.timezone,
                     m.variables_json, at)) as cur:
                mid = int(cur.lastrowid or 0)
            await conn.executemany(
                "INSERT INTO group_member_phones(member_id, group_id, position, e164)"
                " VALUES (?,?,?,?)", [(mid, gid, i, p) for i, p in enumerate(m.phones, 1)])
    return len(members)


async def remove_member(store: Store, gid: int, e164: str) -> bool:
    """Removes the member who has this number from the group (not from any campaign)."""
    row = await store.fetchone(
        "SELECT member_id FROM group_member_phones WHERE group_id = ? AND e164 = ?",
        (gid, e164))
    if row is None:
        return False
    await store.execute("DELETE FROM group_members WHERE id = ?", (int(row[0]),))
    return True


async def members_of(store: Store, gids: Sequence[int]) -> list[NewContact]:
    """Every member of the groups, oldest first, as contacts ready for a campaign."""
    if not gids:
        return []
    marks = ",".join("?" * len(gids))
    # The phones in order, space-separated (an E.164 number holds no space).
    phones = (
        "(SELECT string_agg(e164, ' ' ORDER BY position) FROM group_member_phones p"
        " WHERE p.member_id = m.id)" if store.dialect == POSTGRESQL else
        "(SELECT group_concat(e164, ' ') FROM (SELECT e164 FROM group_member_phones p"
        "  WHERE p.member_id = m.id ORDER BY position))")
    rows = await store.fetchall(
        "SELECT m.name, m.first_name, m.last_name, m.email, m.timezone, m.variables_json,"
        f" {phones} AS phones"
        f" FROM group_members m WHERE m.group_id IN ({marks}) ORDER BY m.added_at, m.id",
        tuple(gids))
    return [NewContact(r[0], r[1], r[2], r[3], r[4], str(r[5]),
                       tuple(str(r[6] or "").split())) for r in rows]


async def member_numbers(store: Store, gid: int, limit: int | None = None,
                         offset: int = 0) -> list[tuple[str, str | None]]:
    """(first phone, name) per member, for listings."""
    rows = await store.fetchall(
        "SELECT (SELECT e164 FROM group_member_phones p WHERE p.member_id = m.id"
        " ORDER BY position LIMIT 1), m.name FROM group_members m WHERE m.group_id = ?"
        # No limit: the largest a LIMIT takes on both engines (PostgreSQL refuses -1).
        " ORDER BY m.id LIMIT ? OFFSET ?", (gid, 2**62 if limit is None else limit, offset))
    return [(str(r[0]), r[1]) for r in rows]
