"""Which session gets a connecting call, decided by the UUID Asterisk sends first.

Outbound: the app calls `expect(call_id, handler)` right before it sends the Originate.
Inbound: the AMI UserEvent `TelevoxInbound` leads to `announce_inbound(call_id, ...)`;
that event and the socket race, so an unknown UUID waits `grace_s` for its announcement
before it is refused. Every UUID is served at most once: a replay is refused.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from enum import StrEnum

from televox_pbx.audiosocket.session import SessionHandler
from televox_pbx.clock import Clock, wait_for

log = logging.getLogger(__name__)


class RefusedReason(StrEnum):
    REPLAY = "replay"  # this UUID was already connected (or refused) once
    UNKNOWN = "unknown"  # neither expected nor announced within the grace period
    NO_INBOUND_HANDLER = "no_inbound_handler"


class Refused(Exception):
    def __init__(self, call_id: str, reason: RefusedReason) -> None:
        super().__init__(f"call {call_id} refused: {reason}")
        self.call_id = call_id
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Route:
    call_id: str
    handler: SessionHandler
    inbound: bool
    caller_id: str | None = None


@dataclass(frozen=True, slots=True)
class _Pending:
    handler: SessionHandler | None  # None: inbound, served by the inbound handler
    caller_id: str | None
    expires: float


def canonical_call_id(call_id: str | uuid.UUID) -> str:
    """The one spelling of an attempt id: lowercase hyphenated UUID. ValueError if not."""
    return str(call_id if isinstance(call_id, uuid.UUID) else uuid.UUID(call_id))


class Router:
    def __init__(self, clock: Clock, *, inbound_handler: SessionHandler | None = None,
                 grace_s: float = 1.0, pending_ttl_s: float = 600.0,
                 remember: int = 100_000) -> None:
        self._clock = clock
        self.inbound_handler = inbound_handler
        self._grace = grace_s
        self._ttl = pending_ttl_s  # an attempt that never connects is forgotten after this
        self._remember = remember
        self._pending: dict[str, _Pending] = {}  # insertion order == expiry order
        self._waiters: dict[str, asyncio.Future[None]] = {}
        self._seen: OrderedDict[str, None] = OrderedDict()

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    def expect(self, call_id: str, handler: SessionHandler) -> None:
        """Register an outbound attempt; call right before its Originate."""
        cid = canonical_call_id(call_id)
        if cid in self._seen or cid in self._pending:
            raise ValueError(f"attempt id {cid} is already in use")
        self._add(cid, _Pending(handler, None, self._clock.monotonic() + self._ttl))

    def announce_inbound(self, call_id: str, caller_id: str | None = None) -> None:
        """An inbound call is about to connect (AMI UserEvent TelevoxInbound)."""
        cid = canonical_call_id(call_id)
        if cid in self._seen:
            log.warning("inbound announcement for an already served call ignored",
                        extra={"call_id": cid})
            return
        current = self._pending.get(cid)
        if current is not None and current.handler is not None:
            log.warning("inbound announcement for an expected outbound call ignored",
                        extra={"call_id": cid})
            return
        self._pending.pop(cid, None)  # a repeated announcement re-arms its expiry
        self._add(cid, _Pending(None, caller_id, self._clock.monotonic() + self._ttl))

    def discard(self, call_id: str) -> None:
        """Forget an attempt that will not connect (failed, no answer)."""
        self._pending.pop(canonical_call_id(call_id), None)

    async def claim(self, call_id: str) -> Route:
        """Route for a UUID that just connected, waiting up to the grace period for an
        announcement; raises Refused. A claimed UUID is never served again."""
        cid = canonical_call_id(call_id)
        if cid in self._seen or cid in self._waiters:
            raise Refused(cid, RefusedReason.REPLAY)
        self._expire()
        if cid not in self._pending:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters[cid] = waiter
            try:
                await wait_for(self._clock, waiter, self._grace)
            except TimeoutError:
                pass
            finally:
                del self._waiters[cid]
        self._mark_seen(cid)
        pending = self._pending.pop(cid, None)
        if pending is None:
            raise Refused(cid, RefusedReason.UNKNOWN)
        if pending.handler is not None:
            return Route(cid, pending.handler, inbound=False)
        if self.inbound_handler is None:
            raise Refused(cid, RefusedReason.NO_INBOUND_HANDLER)
        return Route(cid, self.inbound_handler, inbound=True, caller_id=pending.caller_id)

    def _add(self, cid: str, pending: _Pending) -> None:
        self._expire()
        self._pending[cid] = pending
        waiter = self._waiters.get(cid)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _expire(self) -> None:
        now = self._clock.monotonic()
        while self._pending:
            cid, first = next(iter(self._pending.items()))
            if first.expires > now:
                break
            del self._pending[cid]
            log.info("attempt never connected; forgotten", extra={"call_id": cid})

    def _mark_seen(self, cid: str) -> None:
        self._seen[cid] = None
        while len(self._seen) > self._remember:
            self._seen.popitem(last=False)
