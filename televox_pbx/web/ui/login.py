"""Log in (API token, or the admin user and its hashed password), log out, and the
middleware that keeps every other dashboard route behind the login."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import aiohttp_jinja2
from aiohttp import web
from pydantic import SecretStr

from televox_pbx.web.auth import token_owner
from televox_pbx.web.context import ACTOR, ctx
from televox_pbx.web.errors import Handler, error_response
from televox_pbx.web.ui.passwords import verify_password
from televox_pbx.web.ui.sessions import (
    COOKIE,
    CSRF_FIELD,
    LOGIN_COOKIE,
    SESSIONS,
    csrf_ok,
    current,
    set_cookie,
)

MAX_FAILURES = 5  # failed logins per client address within FAILURE_WINDOW ...
FAILURE_WINDOW = timedelta(minutes=5)  # ... before it must wait (429)
LOGIN_PATH = "/ui/login"
HOME = "/ui/"
TOKENS = web.AppKey("televox.ui.tokens", dict)  # name -> SecretStr, as the API's auth


class Throttle:
    """Failed logins per client address: guessing a token or password stays slow."""

    def __init__(self) -> None:
        self._fails: dict[str, list[datetime]] = {}

    def _recent(self, who: str, now: datetime) -> list[datetime]:
        kept = [t for t in self._fails.get(who, []) if now - t < FAILURE_WINDOW]
        if kept:
            self._fails[who] = kept
        else:
            self._fails.pop(who, None)
        return kept

    def blocked(self, who: str, now: datetime) -> bool:
        return len(self._recent(who, now)) >= MAX_FAILURES

    def failed(self, who: str, now: datetime) -> None:
        if len(self._fails) >= 10_000:  # bounded memory under a spray of addresses
            self._fails.pop(next(iter(self._fails)))
        self._fails.setdefault(who, []).append(now)


THROTTLE = web.AppKey("televox.ui.throttle", Throttle)


def _safe_next(raw: str | None) -> str:
    """Only a path on this dashboard: never an open redirect."""
    if raw and raw.startswith("/ui/") and not raw.startswith("//") and "\\" not in raw:
        return raw
    return HOME


async def login_page(request: web.Request, error: str | None = None,
                     status: int = 200) -> web.Response:
    if current(request) is not None and error is None:
        raise web.HTTPSeeOther(HOME)
    nonce = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(24)
    c = ctx(request)
    resp = aiohttp_jinja2.render_template("login.html", request, {
        "login_csrf": nonce, "error": error, "next": _safe_next(request.query.get("next")),
        "admin_user": c.settings.dashboard.admin_user,
        "password_login": c.settings.dashboard.admin_password_hash is not None},
        status=status)
    set_cookie(resp, request, LOGIN_COOKIE, nonce)
    return resp


async def login_submit(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    given = str(form.get(CSRF_FIELD, ""))
    if not nonce or not secrets.compare_digest(nonce.encode(), given.encode()):
        return await login_page(request, "The form expired; try again.", 403)
    c = ctx(request)
    throttle, who, now = request.app[THROTTLE], request.remote or "?", c.clock.now()
    if throttle.blocked(who, now):
        return await login_page(request, "Too many failed logins; wait a few minutes.", 429)
    dash = c.settings.dashboard
    token = str(form.get("token", "")).strip()
    actor: str | None = None
    if token:
        tokens: dict[str, SecretStr] = request.app[TOKENS]
        owner = token_owner(token, tokens)
        actor = f"ui:{owner}" if owner is not None else None
    else:
        user = str(form.get("username", ""))
        password = str(form.get("password", ""))
        # Both compared every time, so the answer does not say which one was wrong.
        user_ok = secrets.compare_digest(user.encode(), dash.admin_user.encode())
        if verify_password(password, dash.admin_password_hash) and user_ok:
            actor = f"ui:{dash.admin_user}"
    if actor is None:
        throttle.failed(who, now)
        return await login_page(request, "Wrong token, user or password.", 401)
    session = request.app[SESSIONS].create(actor)
    resp = redirect(_safe_next(str(form.get("next", ""))))
    set_cookie(resp, request, COOKIE, session.id, int(dash.session_ttl_h * 3600))
    resp.del_cookie(LOGIN_COOKIE, path="/")
    return resp


async def logout(request: web.Request) -> web.StreamResponse:
    session = current(request)
    form = await request.post()
    if session is None or not csrf_ok(session, str(form.get(CSRF_FIELD, ""))):
        return error_response(403, "csrf_failed", "the CSRF token is missing or wrong")
    request.app[SESSIONS].drop(session.id)
    resp = redirect(LOGIN_PATH)
    resp.del_cookie(COOKIE, path="/")
    return resp


def ui_middleware(protected: set[str]) -> Any:
    """`protected`: canonical paths of dashboard routes. Without a session a page visit
    (GET) goes to the login page; anything else gets 401."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        resource = request.match_info.route.resource
        canonical = resource.canonical if resource is not None else ""
        if canonical not in protected:
            return await handler(request)
        session = current(request)
        if session is not None:
            request[ACTOR] = session.actor  # the audit log names who did it
            return await handler(request)
        if request.method in ("GET", "HEAD"):
            target = request.path_qs if request.path.startswith("/ui/") else HOME
            raise web.HTTPSeeOther(f"{LOGIN_PATH}?next={quote(target, safe='/')}")
        return error_response(401, "unauthorized", "log in to the dashboard first")

    return middleware


def redirect(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})
