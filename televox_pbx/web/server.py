"""The aiohttp application and the service the daemon starts: the API on its port and,
beside it, the webhook dispatcher, the retention purge and the call summary worker."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web
from pydantic import SecretStr

from televox_pbx.agent.call_summary import SummaryWorker
from televox_pbx.store.node_load import live_here
from televox_pbx.supervise import supervise
from televox_pbx.web import (
    api_agents,
    api_calls,
    api_campaigns,
    api_channels,
    api_contacts,
    api_dnc,
    api_events,
    api_groups,
    api_intake,
    api_messages,
    api_system,
)
from televox_pbx.web.api_system import OPENAPI
from televox_pbx.web.auth import TOKENS, auth_middleware
from televox_pbx.web.context import CTX, ApiContext
from televox_pbx.web.errors import error_middleware
from televox_pbx.web.openapi import build_document
from televox_pbx.web.retention import RetentionJob
from televox_pbx.web.routes import Route
from televox_pbx.web.ui.sessions import api_session_actor
from televox_pbx.web.ui.wiring import install_ui
from televox_pbx.web.webhooks import WebhookDispatcher

if TYPE_CHECKING:
    from televox_pbx.app import App
    from televox_pbx.store.notices import PgListener

log = logging.getLogger(__name__)


def all_routes() -> list[Route]:
    return [*api_system.ROUTES, *api_campaigns.ROUTES, *api_contacts.ROUTES,
            *api_calls.ROUTES, *api_dnc.ROUTES, *api_events.ROUTES,
            *api_intake.ROUTES, *api_messages.ROUTES, *api_groups.ROUTES,
            *api_channels.ROUTES, *api_agents.ROUTES]


def build_app(c: ApiContext, tokens: dict[str, SecretStr]) -> web.Application:
    routes = all_routes()
    public = {(r.method, r.full_path) for r in routes if not r.auth}
    app = web.Application(
        middlewares=[error_middleware, auth_middleware(tokens, public, api_session_actor)],
        client_max_size=c.settings.http.max_upload_bytes)
    app[CTX] = c
    app[TOKENS] = tokens
    app[OPENAPI] = build_document(routes, c.version)
    for r in routes:
        app.router.add_route(r.method, r.full_path, r.handler)
    install_ui(app, c, tokens, public)  # the dashboard, behind its own login
    return app


Job = tuple[str, Callable[[], Awaitable[None]]]


def cluster_listener(c: ApiContext) -> PgListener:
    """The other nodes' events (LISTEN on database.listen_url, else database.url)."""
    from televox_pbx.store.notices import pg_listener

    db = c.settings.database
    url = db.listen_url or db.url
    assert url is not None
    return pg_listener(url, db.password(), c.clock)


class WebService:
    """The HTTP API and its background jobs, started and stopped together."""

    def __init__(self, c: ApiContext, *, port: int | None = None,
                 jobs: list[Job] | None = None) -> None:
        self.ctx = c
        http = c.settings.http
        self._host = http.bind_host
        self._port = http.port if port is None else port
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._jobs = [("retention purge", RetentionJob(c.store, c.settings, c.clock).run),
                      *(jobs or [])]
        if c.notices is None and c.settings.database.is_postgres:
            c.notices = listener = cluster_listener(c)
            self._jobs.append(("notice listener", listener.run))
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
        if c.notices is not None:
            c.notices.subscribe(lambda _table, _top: hooks.wake())
        loop = asyncio.get_running_loop()
        for name, job in [("webhook dispatcher", hooks.run), *self._jobs]:
            self._tasks.append(loop.create_task(supervise(name, job, c.clock), name=name))
        log.info("HTTP API listening", extra={"host": self._host, "port": self.port})

    async def close(self) -> None:
        self.ctx.closing = True
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
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

    store = app.store
    jobs: list[Job] = []
    if app.factory is not None and app.settings.models.call_summaries:

        async def busy() -> bool:
            """A call live or being dialled on this box: the LLM is theirs."""
            live = app.audiosocket.stats().active if app.audiosocket is not None else 0
            return live > 0 or await live_here(store) > 0

        worker = SummaryWorker(store, app.factory.engines.llm, app.clock, busy)
        jobs.append(("call summaries", worker.run))
    service = WebService(ApiContext(store, app.settings, app.clock,
                                    dialer=app.runner.dialer, health=health,
                                    call_extras=app.call_extras, version=__version__,
                                    knowledge=app.knowledge),
                         port=port, jobs=jobs)
    await service.start()
    return service
