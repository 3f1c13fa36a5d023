"""What the handlers need, handed in by the composition root (never globals)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from televox_pbx.clock import Clock
from televox_pbx.config.settings import Settings
from televox_pbx.store.api_audit import record_audit
from televox_pbx.store.db import Store
from televox_pbx.web.call_extras import CallExtras

if TYPE_CHECKING:
    from televox_pbx.campaigns.dialer import Dialer
    from televox_pbx.knowledge.index import KnowledgeIndex
    from televox_pbx.store.notices import Notices
    from televox_pbx.web.webhooks import WebhookDispatcher


def _no_health() -> dict[str, Any]:
    return {}


@dataclass(slots=True)
class ApiContext:
    store: Store
    settings: Settings
    clock: Clock
    dialer: Dialer | None = None  # None: no PBX side (then calls are refused with 503)
    health: Callable[[], dict[str, Any]] = _no_health
    # Per-call extras (first message, context, variables) keyed by contact id; the daemon
    # takes them when that contact's call is originated.
    call_extras: dict[str, CallExtras] = field(default_factory=dict)
    webhooks: WebhookDispatcher | None = None
    # On PostgreSQL: the other nodes' events, as wake-ups (store/notices.py); None: one box.
    notices: Notices | None = None
    knowledge: KnowledgeIndex | None = None  # the daemon's index (agents' knowledge search)
    version: str = "0"
    # Set on shutdown: live streams end instead of holding the server open.
    closing: bool = False


CTX = web.AppKey("televox", ApiContext)
ACTOR = web.RequestKey("televox.actor", str)


def ctx(request: web.Request) -> ApiContext:
    return request.app[CTX]


def actor(request: web.Request) -> str:
    return str(request.get(ACTOR, "api"))


async def audit(request: web.Request, action: str, target: str, **detail: Any) -> None:
    """One row of the API audit log for a change just made: who, what, when."""
    c = ctx(request)
    await record_audit(c.store, actor=actor(request), action=action, target=target,
                       detail=detail, at=c.clock.now())
