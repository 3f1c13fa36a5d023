"""Outgoing webhooks: events derived from the store, signed, delivered with retries.

Events (per subscription, filtered by campaign and type):
  campaign.lead.updated   a contact's status changed, or an operator corrected the
                          disposition of its call (from contact_events)
  call.completed          a campaign call ended: status, disposition, transcript link
  campaign.state.changed  IDLE/SCHEDULED/RUNNING/PAUSED/COMPLETED (from campaign_state_log)

Each POST carries X-Televox-Event, X-Televox-Event-Id (stable across retries: the
receiver's idempotency key), X-Televox-Timestamp (unix seconds at sending) and
X-Televox-Signature: sha256=HEX(HMAC-SHA256(secret, "<timestamp>.<body>")).

Only a 2xx acknowledges. Anything else is retried with exponential backoff on the
injected clock until `give_up_after_h` after the event; every attempt is logged
(webhook_attempts). The dispatcher is its own task with its own HTTP session and a cap on
deliveries in flight: a slow or dead receiver holds up nothing but its own deliveries.

Several nodes on PostgreSQL (issue 19 items 5 and 6): every node runs a dispatcher. The
outbox derives deliveries from the shared event tables, one node's step at a time, so an
event written on any node is queued once; each delivery (and each of its retries) is
claimed by one node before it is sent (store/webhooks.claim_due), so it is POSTed once
cluster-wide. A per-delivery claim rather than one "webhooks" job lease: every node sends,
a slow receiver does not tie the whole cluster's webhooks to one node, and a dead node's
in-flight deliveries come back when their own claims lapse (timeout + CLAIM_SLACK_S).
`wake()` (a NOTIFY from another node's event) cuts the poll's wait short.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import aiohttp

from televox_pbx.clock import Clock, sleep_or_wake
from televox_pbx.config.settings import WebhookSettings
from televox_pbx.store.db import Store
from televox_pbx.store.sqlport import POSTGRESQL
from televox_pbx.store.timefmt import parse_iso
from televox_pbx.store.webhooks import (
    CONTACT_EVENTS,
    Delivery,
    NewDelivery,
    SourceRow,
    claim_due,
    due_deliveries,
    outbox_step,
    record_attempt,
    release_claims,
)

log = logging.getLogger(__name__)

LEAD_UPDATED = "campaign.lead.updated"
CALL_COMPLETED = "call.completed"
STATE_CHANGED = "campaign.state.changed"
_NS = uuid.UUID("5d1f3a52-8f0e-4c57-9a35-7f1f1d0b3c11")
_MAX_RESPONSE = 65536  # bytes of a receiver's answer read (and thrown away)
CLAIM_SLACK_S = 30.0  # a claim lasts the HTTP timeout and this much more
WAKE_GAP_S = 0.2  # a wake-up steps no sooner than this after the last step


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: bytes, timestamp: str, body: bytes, signature: str, now: datetime,
           tolerance_s: float = 300.0) -> bool:
    """What a receiver does: the signature matches and the timestamp is recent."""
    try:
        age = abs(now.timestamp() - int(timestamp))
    except ValueError:
        return False
    return age <= tolerance_s and hmac.compare_digest(sign(secret, timestamp, body), signature)


def backoff_s(attempt: int, settings: WebhookSettings) -> float:
    """Wait after failed attempt number `attempt` (1-based): base, 2x base, 4x base ..."""
    return float(min(settings.retry_base_s * 2 ** min(attempt - 1, 40),
                     settings.retry_max_interval_s))


class Planner:
    """Source rows -> one delivery per (event, interested subscription)."""

    def __init__(self, settings: WebhookSettings, base_url: str) -> None:
        self._subs = settings.subscriptions
        self._base = base_url.rstrip("/")

    def __call__(self, rows: Sequence[SourceRow]) -> list[NewDelivery]:
        out: list[NewDelivery] = []
        for row in rows:
            campaign = row.data.get("campaign")
            for event, data in self._events(row):
                event_id = str(uuid.uuid5(_NS, f"{row.source}:{row.row_id}:{event}"))
                payload = {"id": event_id, "type": event, "created_at": row.data.get("at"),
                           "data": data}
                out += [NewDelivery(event_id, event, sub.name, sub.url,
                                    row.data.get("campaign_id"), payload)
                        for sub in self._subs if sub.wants(event, campaign)]
        return out

    def _events(self, row: SourceRow) -> list[tuple[str, dict[str, Any]]]:
        d = row.data
        if row.source != CONTACT_EVENTS:
            return [(STATE_CHANGED, {"campaign": d["campaign"], "from_state": d["from_state"],
                                     "to_state": d["to_state"], "at": d["at"]})]
        events: list[tuple[str, dict[str, Any]]] = []
        # A corrected disposition changes the lead too, though not its status.
        if d["from_status"] != d["to_status"] or d["event"] == "disposition_edited":
            events.append((LEAD_UPDATED, {
                "campaign": d["campaign"], "contact_id": d["contact_id"],
                "name": d["contact_name"], "from_status": d["from_status"],
                "to_status": d["to_status"], "last_disposition": d["last_disposition"],
                "retry_pass": d["retry_pass"], "call_id": d["attempt_id"],
                "reason": d["event"], "at": d["at"]}))
        if d["attempt_id"] and str(d["event"]).startswith("outcome:"):
            call = f"{self._base}/api/v1/calls/{d['attempt_id']}"
            events.append((CALL_COMPLETED, {
                "campaign": d["campaign"], "call_id": d["attempt_id"],
                "contact_id": d["contact_id"], "phone": d["phone"],
                "status": d["call_status"], "disposition": d["disposition"],
                "failure": d["failure"], "amd_status": d["amd_status"],
                "duration_s": d["duration_s"], "turns": d["turns"],
                "answered_at": d["answered_at"], "hangup_at": d["hangup_at"],
                "transcript_url": call, "recording_url": f"{call}/recording"}))
        return events


class WebhookDispatcher:
    def __init__(self, store: Store, settings: WebhookSettings, clock: Clock, base_url: str,
                 *, user_agent: str = "televox") -> None:
        self._store = store
        self._settings = settings
        self._clock = clock
        self._planner = Planner(settings, base_url)
        self._subs = {s.name: s for s in settings.subscriptions}
        self._agent = user_agent
        self._session: aiohttp.ClientSession | None = None
        self._inflight: dict[int, asyncio.Task[None]] = {}
        self._inflight_sub: dict[int, str] = {}  # delivery id -> subscription
        self._wake = asyncio.Event()
        self.attempts = 0
        self.delivered = 0
        self.lost_claims = 0

    def wake(self) -> None:
        """New events may be waiting (another node wrote them): step soon."""
        self._wake.set()

    def _claimer(self) -> str | None:
        """Who claims deliveries: this node in this life, on a shared database only."""
        if self._store.dialect != POSTGRESQL:
            return None
        me = self._store.node
        return f"{me.node_id}:{me.epoch}" if me is not None else "local"

    async def run(self) -> None:
        """Derive and deliver until cancelled; a failing step is logged and retried."""
        try:
            while True:
                self._wake.clear()  # before the step: a wake during it is not lost
                try:
                    await self.step()
                except Exception:
                    log.exception("webhook dispatcher step failed; will retry")
                await self._nap(self._settings.poll_interval_s)
        finally:
            await self.close()

    async def _nap(self, seconds: float) -> None:
        """`seconds`, or less when woken, but at least WAKE_GAP_S after the last step: a
        burst of notices costs few steps."""
        began = self._clock.monotonic()
        await sleep_or_wake(self._clock, seconds, self._wake)
        rest = min(WAKE_GAP_S, seconds) - (self._clock.monotonic() - began)
        if rest > 0:
            await self._clock.sleep(rest)

    async def step(self) -> int:
        """Queue new events, then start the deliveries that are due; returns how many."""
        for _ in range(100):  # bounded: a huge backlog is caught up over several steps
            if not await outbox_step(self._store, self._planner, self._clock.now()):
                break
        # The cap is per subscription: a receiver that hangs ties up its own slots only.
        cap = self._settings.max_in_flight
        per_sub: dict[str, int] = {}
        for sub in self._inflight_sub.values():
            per_sub[sub] = per_sub.get(sub, 0) + 1
        full = [s for s, n in per_sub.items() if n >= cap]
        claimer = self._claimer()
        want = cap * len(self._subs) + 1
        if claimer is None:
            due = await due_deliveries(self._store, self._clock.now(), want,
                                       list(self._inflight), full)
        else:
            due = await claim_due(self._store, claimer, self._clock.now(), want,
                                  self._settings.timeout_s + CLAIM_SLACK_S,
                                  list(self._inflight), full)
        started = 0
        for d in due:
            if per_sub.get(d.subscription, 0) >= cap:
                continue
            per_sub[d.subscription] = per_sub.get(d.subscription, 0) + 1
            task = asyncio.get_running_loop().create_task(self._deliver(d),
                                                          name=f"webhook-{d.id}")
            self._inflight[d.id] = task
            self._inflight_sub[d.id] = d.subscription
            task.add_done_callback(self._forget(d.id))
            started += 1
        return started

    def _forget(self, delivery_id: int) -> Callable[[asyncio.Task[None]], None]:
        def done(_task: asyncio.Task[None]) -> None:
            self._inflight.pop(delivery_id, None)
            self._inflight_sub.pop(delivery_id, None)
        return done

    async def drain(self) -> None:
        """Wait for the deliveries in flight (tests; shutdown)."""
        while self._inflight:
            await asyncio.gather(*self._inflight.values(), return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._inflight.values()):
            task.cancel()
        await asyncio.gather(*self._inflight.values(), return_exceptions=True)
        claimer = self._claimer()
        if claimer is not None:  # what this node was sending: another may send it now
            with contextlib.suppress(Exception):
                await release_claims(self._store, claimer)
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._settings.timeout_s))
        return self._session

    async def _deliver(self, d: Delivery) -> None:
        try:
            await self._attempt(d)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("webhook delivery crashed", extra={"delivery_id": d.id})

    async def _attempt(self, d: Delivery) -> None:
        attempt = d.attempts + 1
        sub = self._subs.get(d.subscription)
        code: int | None = None
        error: str | None = None
        loop = asyncio.get_running_loop()
        sent_at = loop.time()  # the wire time of the attempt, for the log
        secret = sub.secret() if sub is not None else None
        if sub is None:
            error = "subscription no longer configured"
        elif secret is None:
            error = "no secret configured for this subscription"
        else:
            body = d.payload_json.encode("utf-8")
            stamp = str(int(self._clock.now().timestamp()))
            headers = {"Content-Type": "application/json", "User-Agent": self._agent,
                       "X-Televox-Event": d.event, "X-Televox-Event-Id": d.event_id,
                       "X-Televox-Timestamp": stamp, "X-Televox-Delivery": str(attempt),
                       "X-Televox-Signature": sign(secret, stamp, body)}
            self.attempts += 1
            try:
                async with self._http().post(sub.url, data=body, headers=headers,
                                             allow_redirects=False) as resp:
                    code = resp.status
                    with contextlib.suppress(aiohttp.ClientError):
                        await resp.content.read(_MAX_RESPONSE)
                if not 200 <= code < 300:
                    error = f"HTTP {code}"
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                error = f"{type(exc).__name__}: {exc}"[:300]
        took_ms = 1000.0 * (loop.time() - sent_at)
        now = self._clock.now()
        outcome, next_at = "delivered", None
        if error is not None:
            next_at = now + timedelta(seconds=backoff_s(attempt, self._settings))
            created = parse_iso(d.created_at) or now
            give_up = created + timedelta(hours=self._settings.give_up_after_h)
            outcome = "failed" if sub is None or next_at > give_up else "pending"
            if outcome == "failed":
                next_at = None
            log.warning("webhook delivery failed", extra={
                "delivery_id": d.id, "event_type": d.event, "attempt": attempt,
                "error": error, "outcome": outcome})
        else:
            self.delivered += 1
        if not await record_attempt(self._store, d.id, attempt, now, status_code=code,
                                    error=error, duration_ms=took_ms, outcome=outcome,
                                    next_at=next_at, claimer=self._claimer()):
            self.lost_claims += 1
            log.warning("webhook delivery's claim lapsed before its attempt was recorded",
                        extra={"delivery_id": d.id, "attempt": attempt})
