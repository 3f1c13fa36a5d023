"""Issue 12's stateful property (tests/test_invariants_property.py) with two daemons, two
nodes, on one PostgreSQL (issue 19): both dial the same two campaigns through the cluster
claim, on one PBX simulator and one FakeClock. Every rule of the one-daemon machine runs
(imports, callee behaviours, clock ticks and jumps, call-now through either node, opt-outs
in calls and inbound, operator DNC, AMI cuts and outages, PBX restarts, kill -9 of node a
at a commit point and its restart), with node b dialling beside it all along.

The invariants are the same four, judged by tests/invariant_model.py. One difference: a
cluster claim writes its attempt before the window and DNC re-check (issue 19 item 2),
and a refusal there closes it `not_sent`: it never reached the PBX, so the window and
DNC judges look at the attempts that were sent.
"""

from __future__ import annotations

import os
from typing import Any

from cluster_rig import start_node
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import invariant, rule, run_state_machine_as_test
from invariant_model import (
    attempts,
    connect,
    dnc_commits,
    inside_windows,
    no_dial_after_dnc,
)
from pg_support import PgServer, fresh_database
from test_invariants_property import STATS, Invariants, event

EXAMPLES = int(os.environ.get("TELEVOX_CLUSTER_EXAMPLES", "12"))
SERVER: list[PgServer] = []  # the session's throw-away PostgreSQL, for each example


def sent(conn: Any) -> list[Any]:
    return [a for a in attempts(conn) if a.status != "not_sent"]


class ClusterInvariants(Invariants):
    def __init__(self) -> None:
        super().__init__()
        self.db = fresh_database(SERVER[0], migrated=True)  # type: ignore[assignment]
        self.peer_started = False

    async def start_daemon(self) -> None:
        """Node b the first time (self.beside: settled, judged and closed with the rest;
        started first, so that it dials from the start), then node a (self.daemon: the
        crash rule kills and restarts it)."""
        assert self.sim is not None
        port = self.sim.ami_port
        if not self.peer_started:
            self.peer_started = True
            self.beside.append(await self.started(start_node(
                str(self.db), "b", port, self.clock, self.session_results)))
        self.daemon = await self.started(start_node(str(self.db), "a", port, self.clock,
                                                    self.session_results))
        await self.settle()

    @rule(pick=st.integers(0, 40), on_b=st.booleans())
    def call_now(self, pick: int, on_b: bool) -> None:  # type: ignore[override]
        """An operator's `call now` through either node."""
        async def go() -> None:
            assert self.daemon is not None
            conn = connect(self.db)
            ids = [int(r[0]) for r in conn.execute("SELECT id FROM contacts ORDER BY id")]
            conn.close()
            if not ids:
                return
            node = self.beside[0] if on_b and self.beside else self.daemon
            placed = await node.runner.dialer.call_now(ids[pick % len(ids)])
            if placed.call_id is not None:
                event(f"call now placed on node {'b' if node is not self.daemon else 'a'}")
            await self.settle()
        self.run(go())

    @invariant()
    def no_attempt_after_dnc(self) -> None:
        found = self._found(lambda c: no_dial_after_dnc(sent(c), self.model, dnc_commits(c)))
        assert not found, found

    @invariant()
    def no_attempt_outside_window(self) -> None:
        found = self._found(lambda c: inside_windows(sent(c), self.model))
        assert not found, found

    @invariant()
    def node_b_survives(self) -> None:
        for d in self.beside:
            why = d.died()
            assert why is None, f"node b's run() ended: {why!r}"

    def teardown(self) -> None:
        conn = connect(self.db)
        try:
            for r in conn.execute("SELECT DISTINCT node_id FROM call_attempts"
                                  " WHERE status <> 'not_sent'"):
                STATS[f"node {r[0]} dialled"] += 1
        finally:
            conn.close()
        super().teardown()


def test_two_nodes_keep_the_invariants(pg_server: PgServer) -> None:
    STATS.clear()
    SERVER[:] = [pg_server]
    run_state_machine_as_test(ClusterInvariants, settings=settings(
        max_examples=EXAMPLES, stateful_step_count=20, derandomize=True, database=None,
        deadline=None, suppress_health_check=list(HealthCheck)))
    print("cluster property:", dict(STATS))
    # It proves little unless calls went out on both nodes and node a died at a commit.
    assert STATS["dialled"] >= 0.5 * STATS["examples"], STATS
    assert STATS["node a dialled"] and STATS["node b dialled"], STATS
    assert STATS["crashed at a commit"], STATS
