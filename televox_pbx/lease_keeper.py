"""The daemon's node lease (issue 19 item 3): renewed about every 2 s on the database's
clock. Sans-IO apart from the store calls; the clock is injected, so tests drive it."""

from __future__ import annotations

import logging
import socket

from televox_pbx.clock import Clock
from televox_pbx.config.settings import Settings
from televox_pbx.store.db import NodeIdentity, Store
from televox_pbx.store.nodes import (
    LEASE_S,
    RENEW_S,
    Superseded,
    rejoin_node,
    renew_lease,
    start_node,
)

log = logging.getLogger(__name__)


class LeaseKeeper:
    """Holds this node's lease. `held` turns False when this life's lease is over: renewals
    failed for as long as the lease lasts (the others may already count this node as
    dead), or the database says it lapsed or a survivor took it over. A lapsed life is
    never revived: as soon as the database answers again the keeper joins as the next
    life of the same node id (store/nodes.rejoin_node: the old life's live attempts are
    adopted and settled by the dead-node rules, its unsent intents never sent) and claims
    go on, without a restart. Only a newer start of the same node id in another process
    (`superseded`) stops it for good."""

    def __init__(self, store: Store, clock: Clock, node_id: str, ami_address: str,
                 *, renew_s: float = RENEW_S, lease_s: float = LEASE_S,
                 capacity: int | None = None) -> None:
        self.store, self.clock = store, clock
        self.capacity = capacity  # written in the nodes row: what this box can hold
        self.node_id, self.ami_address = node_id, ami_address
        self.renew_s, self.lease_s = renew_s, lease_s
        self.held = False
        self.superseded = False
        self.rejoined = 0  # lives started without a restart (logs, tests)
        self._renewed_at = 0.0

    async def start(self) -> None:
        """Take the next epoch; from now on the store's attempt writes carry it."""
        self.store.node = await start_node(self.store, self.node_id, self.ami_address,
                                           self.lease_s, capacity=self.capacity)
        self.held, self._renewed_at = True, self.clock.monotonic()
        log.info("node started", extra={"node": self.node_id, "epoch": self.store.node.epoch})

    async def renew_once(self) -> bool:
        me = self.store.node
        if me is None or self.superseded:
            return False
        try:
            if await renew_lease(self.store, me, self.lease_s):
                self.held, self._renewed_at = True, self.clock.monotonic()
            else:
                await self._rejoin(me)
        except Superseded:
            log.error("node superseded by a newer start", extra={"node": me.node_id})
            self.superseded, self.held = True, False
            return False
        except Exception:  # a database hiccup (or a race): try again until it answers
            log.warning("lease renewal failed", exc_info=True)
        if self.clock.monotonic() - self._renewed_at >= self.lease_s:
            self.held = False
        return self.held

    async def _rejoin(self, me: NodeIdentity) -> None:
        self.held = False  # this life is over whatever happens next
        new = await rejoin_node(self.store, me, self.lease_s)
        if new == me:  # still alive after all (a race with the clock): renew next time
            return
        self.store.node = new
        self.held, self._renewed_at = True, self.clock.monotonic()
        self.rejoined += 1
        log.warning("node lease lapsed; joined again as a new life",
                    extra={"node": me.node_id, "old_epoch": me.epoch, "epoch": new.epoch})

    async def run(self) -> None:
        """Renew (or rejoin) until cancelled or superseded."""
        while not self.superseded:
            await self.renew_once()
            if not self.superseded:
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
