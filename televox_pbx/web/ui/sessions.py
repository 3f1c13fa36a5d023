"""Dashboard sessions: a random id in an HttpOnly, SameSite=Strict cookie, held in memory
(a restart logs everyone out), each with its own CSRF token. The same session lets the
browser call /api/v1: reads with the cookie alone, writes only with the CSRF header too."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from aiohttp import web

from televox_pbx.clock import Clock
from televox_pbx.web.errors import ApiError

COOKIE = "televox_session"
LOGIN_COOKIE = "televox_login"  # double-submit CSRF for the login form itself
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_MAX_SESSIONS = 1000


@dataclass(slots=True)
class Session:
    id: str
    actor: str  # what the audit log names: ui:<token name> or ui:<admin user>
    csrf: str
    expires: datetime


class Sessions:
    def __init__(self, clock: Clock, ttl: timedelta) -> None:
        self._clock = clock
        self._ttl = ttl
        self._items: dict[str, Session] = {}

    def create(self, actor: str) -> Session:
        now = self._clock.now()
        self._items = {k: s for k, s in self._items.items() if s.expires > now}
        while len(self._items) >= _MAX_SESSIONS:  # the oldest goes first
            self._items.pop(next(iter(self._items)))
        s = Session(secrets.token_urlsafe(32), actor, secrets.token_urlsafe(32),
                    now + self._ttl)
        self._items[s.id] = s
        return s

    def get(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        s = self._items.get(sid)
        if s is None:
            return None
        if s.expires <= self._clock.now():
            self._items.pop(sid, None)
            return None
        return s

    def drop(self, sid: str) -> None:
        self._items.pop(sid, None)

    def __len__(self) -> int:
        return len(self._items)


SESSIONS = web.AppKey("televox.ui.sessions", Sessions)


def current(request: web.Request) -> Session | None:
    sessions = request.app.get(SESSIONS)
    return sessions.get(request.cookies.get(COOKIE)) if sessions is not None else None


def csrf_ok(session: Session, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(session.csrf.encode(), (given or "").encode())


def api_session_actor(request: web.Request) -> str | None:
    """For the API's auth: the session's actor, or None without a session. A write with a
    session but without its CSRF token is refused outright (403), never let through."""
    session = current(request)
    if session is None:
        return None
    if request.method not in SAFE_METHODS and \
            not csrf_ok(session, request.headers.get(CSRF_HEADER)):
        raise ApiError(403, "csrf_failed", "the CSRF token is missing or wrong")
    return session.actor


def set_cookie(response: web.StreamResponse, request: web.Request, name: str, value: str,
               max_age: int | None = None) -> None:
    response.set_cookie(name, value, httponly=True, samesite="Strict", path="/",
                        secure=request.secure, max_age=max_age)
