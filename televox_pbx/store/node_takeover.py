"""Taking a dead node over (issue 19 item 4): the store's half of campaigns/node_reconcile.py.

A node whose lease ran out (on the DATABASE's clock) is taken over by one survivor, once,
with one conditional UPDATE of its nodes row: it bumps the dead node's epoch (so the dead
process, should it come back, is fenced: its renewals, claims and attempt writes carry the
old epoch and are refused) and records the survivor in `taken_over_by`. Two survivors racing
both run the UPDATE; the row lock and the re-checked WHERE let exactly one of them match.

In the same transaction the dead node's live attempts move to the survivor's node and epoch
(that is what gives the survivor the right to write them through the epoch-checked paths of
store/attempts.py), remembering the node whose Asterisk carries the channel (`pbx_node`) and
when that node's lease ran out (`lost_at`).
"""

from __future__ import annotations

from dataclasses import dataclass

from televox_pbx.store.attempts import UNFINISHED, AttemptRow, attempt_columns, attempt_from_row
from televox_pbx.store.db import NodeIdentity, Store
from televox_pbx.store.nodes import db_now_s

_LIVE = "(" + ",".join(f"'{s}'" for s in UNFINISHED) + ")"


@dataclass(frozen=True, slots=True)
class DeadNode:
    node_id: str
    epoch: int
    ami_address: str
    expired_s: float  # how long ago its lease ran out (database clock)


@dataclass(frozen=True, slots=True)
class Adopted:
    """A live attempt this node took over: its channel is on `pbx_node`'s Asterisk."""
    attempt: AttemptRow
    pbx_node: str
    ami_address: str  # '' when that node's row is gone
    lost_at: float  # database clock, epoch seconds
    restarted: bool = False  # pbx_node has started again since its lease ran out


async def db_now(store: Store) -> float:
    row = await store.fetchone(f"SELECT {db_now_s(store.dialect)} AS now")
    assert row is not None
    return float(row["now"])


async def expired_nodes(store: Store, me: NodeIdentity) -> list[DeadNode]:
    """Other nodes whose lease ran out and that nobody took over since their last start."""
    now = db_now_s(store.dialect)
    rows = await store.fetchall(
        f"SELECT node_id, epoch, ami_address, {now} - lease_until AS ago FROM nodes"
        f" WHERE lease_until < {now} AND taken_over_by IS NULL AND node_id != ?"
        f" ORDER BY node_id", (me.node_id,))
    return [DeadNode(str(r["node_id"]), int(r["epoch"]), str(r["ami_address"]),
                     float(r["ago"])) for r in rows]


async def take_over(store: Store, me: NodeIdentity, dead: DeadNode) -> int | None:
    """Take `dead` over: the number of live attempts moved to `me`, or None when another
    survivor won, the node came back, or `me` no longer holds its own lease (a ghost
    takes nothing over)."""
    now = db_now_s(store.dialect)
    async with store.transaction(tag="takeover") as conn:
        cur = await conn.execute(
            f"UPDATE nodes SET epoch = epoch + 1, taken_over_by = ?, taken_over_s = {now}"
            f" WHERE node_id = ? AND epoch = ? AND taken_over_by IS NULL"
            f" AND lease_until < {now} AND EXISTS (SELECT 1 FROM nodes m"
            f"  WHERE m.node_id = ? AND m.epoch = ? AND m.lease_until >= {now})",
            (me.node_id, dead.node_id, dead.epoch, me.node_id, me.epoch))
        if int(cur.rowcount) != 1:
            return None
        cur = await conn.execute(
            f"UPDATE call_attempts SET node_id = ?, node_epoch = ?,"
            f" pbx_node = COALESCE(pbx_node, ?),"
            f" lost_at = COALESCE(lost_at, (SELECT lease_until FROM nodes WHERE node_id = ?))"
            f" WHERE node_id = ? AND status IN {_LIVE}",
            (me.node_id, me.epoch, dead.node_id, dead.node_id, dead.node_id))
        return int(cur.rowcount)


async def adopted_attempts(store: Store, me: NodeIdentity) -> list[Adopted]:
    """This node's live attempts whose channel is on another node's Asterisk."""
    rows = await store.fetchall(
        f"SELECT {attempt_columns('a.')}, a.pbx_node, a.lost_at,"
        f" COALESCE(n.ami_address, '') AS pbx_address,"
        f" CASE WHEN n.started_s > a.lost_at THEN 1 ELSE 0 END AS restarted"
        f" FROM call_attempts a"
        f" LEFT JOIN nodes n ON n.node_id = a.pbx_node"
        f" WHERE a.node_id = ? AND a.node_epoch = ? AND a.pbx_node IS NOT NULL"
        f" AND a.status IN {_LIVE} ORDER BY a.pbx_node, a.id", (me.node_id, me.epoch))
    return [Adopted(attempt_from_row(r), str(r["pbx_node"]), str(r["pbx_address"]),
                    float(r["lost_at"]) if r["lost_at"] is not None else 0.0,
                    bool(r["restarted"])) for r in rows]
