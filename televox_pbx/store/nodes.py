"""Nodes sharing one database (issue 19 item 3): identity, epoch and lease.

A node is one daemon next to its own Asterisk. Each start takes the next epoch of its node
id; the lease is renewed on the DATABASE's clock (a node's own clock may drift) and a node
whose lease ran out is presumed dead. Attempts carry the node id and epoch that made them,
and every write to an attempt checks both (store/attempts.py): a node given up for dead that
comes back cannot overwrite what a survivor decided.
"""

from __future__ import annotations

from dataclasses import dataclass

from televox_pbx.store.db import NodeIdentity, Store
from televox_pbx.store.sqlport import POSTGRESQL

__all__ = ["NodeIdentity", "NodeRow", "RejoinRaced", "Superseded", "list_nodes", "rejoin_node",
           "renew_lease", "start_node"]

LEASE_S = 12.0  # how long a lease lasts past its last renewal (the issue asks 10-15 s)
RENEW_S = 2.0   # how often it is renewed
_LIVE = "('intent','originated','ringing','answered')"


def db_now_s(dialect: str) -> str:
    """SQL for the database's clock in epoch seconds (clock_timestamp, not the
    transaction's start, so a long transaction never renews into the past)."""
    if dialect == POSTGRESQL:
        return "CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS DOUBLE PRECISION)"
    return "((julianday('now') - 2440587.5) * 86400.0)"


@dataclass(frozen=True, slots=True)
class NodeRow:
    node_id: str
    ami_address: str
    epoch: int
    alive: bool
    expires_in_s: float  # negative once expired
    in_flight: int
    capacity: int | None = None  # its live conversations at most; None: not bounded


async def start_node(store: Store, node_id: str, ami_address: str,
                     lease_s: float = LEASE_S, *, capacity: int | None = None) -> NodeIdentity:
    """This node starts: the next epoch, a fresh lease, and its own live attempts of earlier
    lives adopted into this one (this node's restart recovery settles them; an attempt a
    survivor already took over carries the survivor's id and is left alone). A takeover
    of an earlier life is forgotten: this life may be taken over in its turn."""
    now = db_now_s(store.dialect)
    async with store.transaction(tag="node") as conn:
        await conn.execute(
            f"INSERT INTO nodes(node_id, ami_address, epoch, started_s, lease_until, capacity)"
            f" VALUES (?, ?, 1, {now}, {now} + ?, ?)"
            f" ON CONFLICT (node_id) DO UPDATE SET epoch = nodes.epoch + 1,"
            f" ami_address = excluded.ami_address, started_s = excluded.started_s,"
            f" lease_until = excluded.lease_until, capacity = excluded.capacity,"
            f" taken_over_by = NULL, taken_over_s = NULL",
            (node_id, ami_address, lease_s, capacity))
        async with conn.execute("SELECT epoch FROM nodes WHERE node_id = ?",
                                (node_id,)) as cur:
            row = await cur.fetchone()
        assert row is not None
        epoch = int(row["epoch"])
        await conn.execute(f"UPDATE call_attempts SET node_epoch = ? WHERE node_id = ?"
                           f" AND status IN {_LIVE}", (epoch, node_id))
    return NodeIdentity(node_id, epoch)


async def renew_lease(store: Store, me: NodeIdentity, lease_s: float = LEASE_S) -> bool:
    """Extend this node's lease; False when this life is over: its lease lapsed (a lapsed
    life is never revived: `rejoin_node` starts the next one), a survivor took it over, or
    a newer start of the same node id took the row."""
    now = db_now_s(store.dialect)
    async with store.transaction(tag="lease") as conn:
        cur = await conn.execute(f"UPDATE nodes SET lease_until = {now} + ?"
                                 f" WHERE node_id = ? AND epoch = ? AND lease_until >= {now}",
                                 (lease_s, me.node_id, me.epoch))
        return int(cur.rowcount) == 1


class Superseded(Exception):
    """A newer start of this node id (another process) holds the row: this one stops."""


class RejoinRaced(Exception):
    """The nodes row changed between the look and the update (a survivor took the lapsed
    life over meanwhile): nothing was written; rejoin again."""


async def rejoin_node(store: Store, me: NodeIdentity,
                      lease_s: float = LEASE_S) -> NodeIdentity:
    """This process's lease lapsed (a long pause, a database outage): it joins again as the
    next life of the same node id, without a restart, and returns that life.

    Which lives are its own: its epoch with the lease run out and nobody taking it over
    yet, or its epoch + 1 with `taken_over_by` set (a survivor's takeover bumps the epoch
    by exactly one; store/node_takeover.py). Anything else is a newer start of the same id
    elsewhere: Superseded. The lapsed life is treated as taken over by the new one: every
    live attempt still carrying this node id (a survivor already moved those it took) moves
    to the new epoch as adopted, `pbx_node` = this node and `lost_at` = when the lease ran
    out, so the dead-node rules N1..N5 (campaigns/node_reconcile.py) settle them through
    this node's own Asterisk, and the Originate fence (store/node_load.may_originate)
    refuses them: an unsent intent of the old life is never sent by the new one.
    `started_s` is kept: the process (and any PBX it embeds) did not restart (N6).
    RejoinRaced: the row changed under it (nothing written); try again."""
    now = db_now_s(store.dialect)
    async with store.transaction(tag="node") as conn:
        async with conn.execute(
                f"SELECT epoch, lease_until, taken_over_by, CASE WHEN lease_until < {now}"
                f" THEN 1 ELSE 0 END AS lapsed FROM nodes WHERE node_id = ?",
                (me.node_id,)) as cur:
            row = await cur.fetchone()
        if row is None:
            raise Superseded(me.node_id)
        epoch, taken = int(row["epoch"]), row["taken_over_by"] is not None
        if epoch == me.epoch and not taken and not int(row["lapsed"]):
            return me  # still alive in this life: nothing to start
        if not ((epoch == me.epoch and not taken) or (epoch == me.epoch + 1 and taken)):
            raise Superseded(me.node_id)
        cur = await conn.execute(
            f"UPDATE nodes SET epoch = epoch + 1, lease_until = {now} + ?,"
            f" taken_over_by = NULL, taken_over_s = NULL"
            f" WHERE node_id = ? AND epoch = ? AND"
            f" {'taken_over_by IS NOT NULL' if taken else 'taken_over_by IS NULL'}"
            f" AND (taken_over_by IS NOT NULL OR lease_until < {now})",
            (lease_s, me.node_id, epoch))
        if int(cur.rowcount) != 1:  # a survivor's takeover won the row: look again
            raise RejoinRaced(me.node_id)
        new = NodeIdentity(me.node_id, epoch + 1)
        await conn.execute(
            f"UPDATE call_attempts SET node_epoch = ?, pbx_node = COALESCE(pbx_node, ?),"
            f" lost_at = COALESCE(lost_at, ?) WHERE node_id = ? AND node_epoch < ?"
            f" AND status IN {_LIVE} AND direction = 'outbound'",
            (new.epoch, me.node_id, float(row["lease_until"]), me.node_id, new.epoch))
        # This process still holds its inbound calls' sockets (no restart): they stay its
        # own, not adopted, in the new life (their transcripts are written under it). One
        # it had taken over from a dead node keeps its pbx_node and lost_at: N7 goes on.
        await conn.execute(
            "UPDATE call_attempts SET node_epoch = ? WHERE node_id = ? AND node_epoch < ?"
            " AND direction = 'inbound' AND status IN ('answered', 'overlap')",
            (new.epoch, me.node_id, new.epoch))
    return new


async def list_nodes(store: Store) -> list[NodeRow]:
    now = db_now_s(store.dialect)
    rows = await store.fetchall(
        f"SELECT n.node_id, n.ami_address, n.epoch, n.lease_until - {now} AS left_s,"
        f" n.capacity,"
        f" (SELECT COUNT(*) FROM call_attempts a WHERE a.node_id = n.node_id"
        f"  AND a.status IN {_LIVE}) AS live FROM nodes n ORDER BY n.node_id")
    return [NodeRow(str(r["node_id"]), str(r["ami_address"]), int(r["epoch"]),
                    float(r["left_s"]) > 0, round(float(r["left_s"]), 1), int(r["live"]),
                    None if r["capacity"] is None else int(r["capacity"]))
            for r in rows]
