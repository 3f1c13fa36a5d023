"""Bearer-token auth on every route except the public ones (/status). A dashboard session
(cookie, plus the CSRF header on writes) may stand in for the token."""

from __future__ import annotations

import hmac
from collections.abc import Callable

from aiohttp import web
from aiohttp.typedefs import Middleware
from pydantic import SecretStr

from televox_pbx.web.context import ACTOR
from televox_pbx.web.errors import Handler, error_response

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="televox"'}
# The configured tokens, for public routes that answer more to a caller who has one.
TOKENS = web.AppKey("televox.tokens", dict)


def bearer_owner(request: web.Request) -> str | None:
    """Who the request's bearer token belongs to; None without a valid one."""
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    tokens: dict[str, SecretStr] = request.app.get(TOKENS, {})
    if scheme.lower() != "bearer" or not given.strip() or not tokens:
        return None
    return token_owner(given.strip(), tokens)


def token_owner(given: str, tokens: dict[str, SecretStr]) -> str | None:
    """The name of the token that matches, compared in constant time. Every configured
    token is compared, so timing says nothing about which one (or how much) matched."""
    found: str | None = None
    raw = given.encode("utf-8")
    for name, token in tokens.items():
        if hmac.compare_digest(raw, token.get_secret_value().encode("utf-8")):
            found = found or name
    return found


def auth_middleware(tokens: dict[str, SecretStr], public: set[tuple[str, str]],
                    session: Callable[[web.Request], str | None] | None = None) -> Middleware:
    """`public`: (method, canonical path) pairs that need no token (the dashboard's pages
    check their own login). `session`: the actor of a logged-in dashboard session."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        route = request.match_info.route
        resource = route.resource
        canonical = resource.canonical if resource is not None else ""
        if (request.method, canonical) in public or (
                request.method == "HEAD" and ("GET", canonical) in public):
            return await handler(request)
        header = request.headers.get("Authorization", "")
        who = session(request) if session is not None and not header else None
        if who is not None:
            request[ACTOR] = who
            return await handler(request)
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            return error_response(401, "unauthorized", "a bearer token is required",
                                  _CHALLENGE)
        if not tokens:
            return error_response(401, "unauthorized",
                                  "no API token is configured on this server", _CHALLENGE)
        owner = token_owner(given.strip(), tokens)
        if owner is None:
            return error_response(401, "unauthorized", "the token is not valid", _CHALLENGE)
        request[ACTOR] = owner
        return await handler(request)

    return middleware
