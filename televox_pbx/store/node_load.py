"""What this box holds, and what the cluster holds (issue 19 item 7 and issue 14's capacity).

On a node of a cluster (`store.node` set) the live attempts of the table are every node's:
this box's own voice capacity and `max_concurrent_calls` count only its own (`live_here`).
On one box (SQLite, or no node) its own are all of them. `cluster_view` is the picture
/status and /metrics give: every node with its lease, calls in flight and capacity; on one
box (SQLite), that box alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from televox_pbx.store.db import Store
from televox_pbx.store.nodes import NodeRow, db_now_s, list_nodes
from televox_pbx.store.sqlport import POSTGRESQL

_LIVE = "('intent','originated','ringing','answered')"


async def live_here(store: Store) -> int:
    """Attempts that may still be on this box's PBX (ringing ones too)."""
    return (await live_counts(store))[0]


async def live_counts(store: Store) -> tuple[int, int]:
    """This box's live attempts, and the outbound ones among them, in one query. The voice
    capacity counts the outbound ones only: it counts inbound conversations itself, from
    the inbound handler, so that an inbound call is one conversation, not two."""
    mine, params = ("", ()) if store.node is None else (" AND node_id = ?",
                                                        (store.node.node_id,))
    row = await store.fetchone(
        "SELECT COUNT(*) AS n, COALESCE(SUM(CASE WHEN direction = 'outbound' THEN 1"
        f" ELSE 0 END), 0) AS outbound FROM call_attempts WHERE status IN {_LIVE}{mine}",
        params)
    return (int(row["n"]), int(row["outbound"])) if row else (0, 0)


@dataclass(frozen=True, slots=True)
class ClusterView:
    me: str  # this node's id
    nodes: list[NodeRow]

    @property
    def alive(self) -> int:
        return sum(1 for n in self.nodes if n.alive)

    @property
    def dead(self) -> int:
        return len(self.nodes) - self.alive

    @property
    def in_flight(self) -> int:
        return sum(n.in_flight for n in self.nodes)

    @property
    def capacity(self) -> int | None:
        """The live nodes' capacity in total; None when no live node states one."""
        known = [n.capacity for n in self.nodes if n.alive and n.capacity is not None]
        return sum(known) if known else None

    def here(self) -> NodeRow | None:
        return next((n for n in self.nodes if n.node_id == self.me), None)


async def cluster_view(store: Store, *, node_id: str, ami_address: str,
                       capacity: int | None) -> ClusterView:
    """Every node sharing the store; on SQLite this box alone, alive, with every live
    attempt its own. A process on PostgreSQL that is no node (no daemon) sees the nodes."""
    if store.dialect != POSTGRESQL:
        me = NodeRow(node_id, ami_address, 1, True, 0.0, await live_here(store), capacity)
        return ClusterView(node_id, [me])
    return ClusterView(store.node.node_id if store.node else node_id, await list_nodes(store))


async def holds_lease(store: Store) -> bool:
    """This node's lease is live on the database's clock, in this life of it (a newer start
    of the same id supersedes it). Always True on one box."""
    me = store.node
    if me is None:
        return True
    row = await store.fetchone(f"SELECT 1 AS ok FROM nodes WHERE node_id = ? AND epoch = ?"
                               f" AND lease_until > {db_now_s(store.dialect)}",
                               (me.node_id, me.epoch))
    return row is not None


# A takeover needs this node's lease to have expired; with at least this much of it left at
# the check, the Originate that follows goes out long before a survivor may take the call.
ORIGINATE_MARGIN_S = 3.0


async def may_originate(store: Store, call_id: str) -> bool:
    """The attempt is still this node's, in this life, not yet sent (`intent`), not
    adopted from a lapsed life (`pbx_node`: store/nodes.rejoin_node), and the lease has
    ORIGINATE_MARGIN_S left: checked just before an Originate, so a node that stalled
    between its claim and the send (and was taken over meanwhile, or rejoined as a new
    life of itself) never dials. Always True on one box."""
    me = store.node
    if me is None:
        return True
    row = await store.fetchone(
        f"SELECT 1 AS ok FROM call_attempts a JOIN nodes n ON n.node_id = a.node_id"
        f" WHERE a.id = ? AND a.status = 'intent' AND a.node_id = ? AND a.pbx_node IS NULL"
        f" AND a.node_epoch = ? AND n.epoch = ?"
        f" AND n.lease_until > {db_now_s(store.dialect)} + ?",
        (call_id, me.node_id, me.epoch, me.epoch, ORIGINATE_MARGIN_S))
    return row is not None
