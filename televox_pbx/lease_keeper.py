"""The daemon's node lease (issue 19 item 3): renewed about every 2 s on the database's
clock. Sans-IO apart from the store calls; the clock is injected, so tests drive it."""

from __future__ import annotations

import logging
import socket

from televox_pbx.clock import Clock
from televox_pbx.config.settings import Settings
from televox_pbx.store.db import Store
from televox_pbx.store.nodes import LEASE_S, RENEW_S, renew_lease, start_node

log = logging.getLogger(__name__)


class LeaseKeeper:
    """Holds this node's lease. `held` turns False when a newer start of the same node id
    took the row (this process must stop claiming) or after renewals failed for longer than
    the lease lasts (the others may already count this node as dead)."""

    def __init__(self, store: Store, clock: Clock, node_id: str, ami_address: str,
                 *, renew_s: float = RENEW_S, lease_s: float = LEASE_S,
                 capacity: int | None = None) -> None:
        self.store, self.clock = store, clock
        self.capacity = capacity  # written in the nodes row: what this box can hold
        self.node_id, self.ami_address = node_id, ami_address
        self.renew_s, self.lease_s = renew_s, lease_s
        self.held = False
        self._renewed_at = 0.0

    async def start(self) -> None:
        """Take the next epoch; from now on the store's attempt writes carry it."""
        self.store.node = await start_node(self.store, self.node_id, self.ami_address,
                                           self.lease_s, capacity=self.capacity)
        self.held, self._renewed_at = True, self.clock.monotonic()
        log.info("node started", extra={"node": self.node_id, "epoch": self.store.node.epoch})

    async def renew_once(self) -> bool:
        me = self.store.node
        if me is None:
            return False
        try:
            ok = await renew_lease(self.store, me, self.lease_s)
        except Exception:  # a database hiccup: keep trying until the lease would be gone
            log.warning("lease renewal failed", exc_info=True)
            ok = None
        if ok:
            self._renewed_at = self.clock.monotonic()
        elif ok is False:
            log.error("node superseded by a newer start", extra={"node": me.node_id})
            self.held = False
        if self.clock.monotonic() - self._renewed_at >= self.lease_s:
            self.held = False
        return self.held

    async def run(self) -> None:
        """Renew until cancelled or superseded."""
        while await self.renew_once():
            await self.clock.sleep(self.renew_s)


async def start_lease(store: Store, clock: Clock, settings: Settings, *,
                      capacity: int | None = None) -> LeaseKeeper:
    """The daemon's node on a shared database: its id (database.node_id, else the host's
    name), the AMI address that survivors would reach its Asterisk through, and its voice
    capacity (None: no voice engines, nothing bounds it)."""
    ami = settings.ami
    address = f"{ami.host}:{ami.port}" if ami.host else "simulator"
    keeper = LeaseKeeper(store, clock, settings.database.node_id or socket.gethostname(),
                         address, capacity=capacity)
    await keeper.start()
    return keeper
