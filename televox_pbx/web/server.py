"""The aiohttp application and the service the daemon starts: the API on its port and the
webhook dispatcher beside it."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from typing import TYPE_CHECKING, Any

from aiohttp import web
from pydantic import SecretStr

from televox_pbx.supervise import supervise
from televox_pbx.web import (
    api_calls,
    api_campaigns,
    api_contacts,
    api_dnc,
    api_events,
    api_messages,
    api_system,
)
from televox_pbx.web.api_system import OPENAPI
from televox_pbx.web.auth import auth_middleware
from televox_pbx.web.context import CTX, ApiContext
from televox_pbx.web.errors import error_middleware
from televox_pbx.web.openapi import build_document
from televox_pbx.web.routes import Route
from televox_pbx.web.webhooks import WebhookDispatcher

if TYPE_CHECKING:
    from televox_pbx.app import App

log = logging.getLogger(__name__)


def all_routes() -> list[Route]:
    return [*api_system.ROUTES, *api_campaigns.ROUTES, *api_contacts.ROUTES,
            *api_calls.ROUTES, *api_dnc.ROUTES, *api_events.ROUTES, *api_messages.ROUTES]


def build_app(c: ApiContext, tokens: dict[str, SecretStr]) -> web.Application:
    routes = all_routes()
    public = {(r.method, r.full_path) for r in routes if not r.auth}
    app = web.Application(middlewares=[error_middleware, auth_middleware(tokens, public)],
                          client_max_size=c.settings.http.max_upload_bytes)
    app[CTX] = c
    app[OPENAPI] = build_document(routes, c.version)
    for r in routes:
        app.router.add_route(r.method, r.full_path, r.handler)
    return app


class WebService:
    """The HTTP API and the webhook dispatcher, started and stopped together."""

    def __init__(self, c: ApiContext, *, port: int | None = None) -> None:
        self.ctx = c
        http = c.settings.http
        self._host = http.bind_host
        self._port = http.port if port is None else port
        self._runner: web.AppRunner | None = None
        self._task: asyncio.Task[None] | None = None
        self.application: web.Application | None = None
        self.port = 0

    async def start(self) -> None:
        c = self.ctx
        tokens = c.settings.http.api_tokens()
        if not tokens:
            log.warning("no API token configured: only /api/v1/status answers",
                        extra={"env": c.settings.http.api_token_env})
        self.application = build_app(c, tokens)
        self._runner = web.AppRunner(self.application, access_log=None,
                                     handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        addresses = self._runner.addresses
        self.port = int(addresses[0][1]) if addresses else self._port
        if c.webhooks is None:
            c.webhooks = WebhookDispatcher(c.store, c.settings.webhooks, c.clock,
                                           c.settings.http.public_url or
                                           f"http://{self._host}:{self.port}",
                                           user_agent=f"televox/{c.version}")
        hooks = c.webhooks
        self._task = asyncio.get_running_loop().create_task(
            supervise("webhook dispatcher", hooks.run, c.clock), name="webhooks")
        log.info("HTTP API listening", extra={"host": self._host, "port": self.port})

    async def close(self) -> None:
        self.ctx.closing = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


async def serve_app(app: App, port: int) -> WebService:
    """The daemon's API and webhooks, wired to a started App (its store, dialer, health)."""
    from televox_pbx import __version__

    assert app.store is not None and app.runner is not None

    def health() -> dict[str, Any]:
        out = dataclasses.asdict(app.health())
        if app.eventlog is not None:
            out.update(eventlog_backlog=app.eventlog.backlog,
                       eventlog_dropped=app.eventlog.dropped)
        return out

    service = WebService(ApiContext(app.store, app.settings, app.clock,
                                    dialer=app.runner.dialer, health=health,
                                    call_extras=app.call_extras, version=__version__),
                         port=port)
    await service.start()
    return service
