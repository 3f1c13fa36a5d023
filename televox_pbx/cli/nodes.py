"""`televox nodes list`: the daemons sharing this database (issue 19)."""

from __future__ import annotations

import argparse
from typing import Any

from televox_pbx.cli.common import run, store_target
from televox_pbx.store.nodes import NodeRow, list_nodes


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("nodes", help="nodes sharing the database")
    nsub = p.add_subparsers(dest="nodes_command", required=True, metavar="ACTION")
    ls = nsub.add_parser("list", help="each node's id, AMI address, lease, calls in flight "
                                      "and capacity")
    ls.set_defaults(func=_list)


def format_nodes(rows: list[NodeRow]) -> list[str]:
    """One line a node; CAPACITY is its live conversations at most ('-': no voice engines,
    nothing bounds it)."""
    out = [f"{'NODE':<20} {'EPOCH':>5} {'AMI':<24} {'LEASE':<22} {'IN FLIGHT':>9}"
           f" {'CAPACITY':>8}"]
    for r in rows:
        lease = (f"alive, expires in {r.expires_in_s:.0f}s" if r.alive
                 else f"expired {-r.expires_in_s:.0f}s ago")
        cap = "-" if r.capacity is None else str(r.capacity)
        out.append(f"{r.node_id:<20} {r.epoch:>5} {r.ami_address:<24} {lease:<22}"
                   f" {r.in_flight:>9} {cap:>8}")
    return out


def _list(args: argparse.Namespace) -> int:
    db = store_target(args)

    async def go() -> list[NodeRow]:
        store = await db.open()
        try:
            return await list_nodes(store)
        finally:
            await store.close()
    rows = run(go())
    if not rows:
        print("no nodes (a node appears when a daemon starts on a PostgreSQL database)")
        return 0
    print("\n".join(format_nodes(rows)))
    return 0
