"""Wires the dashboard into the API's aiohttp application: templates, static files, the
pages, the login and its middleware, and the live-progress hub."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web
from pydantic import SecretStr

from televox_pbx.web.context import ApiContext
from televox_pbx.web.ui import agents, groups, imports, login, pages
from televox_pbx.web.ui.progress import HUB, ProgressHub, progress_stream
from televox_pbx.web.ui.sessions import SESSIONS, Sessions, current

WEB = Path(__file__).resolve().parent.parent
TEMPLATES = WEB / "templates"
STATIC = WEB / "static"
PUBLIC_PATHS = frozenset({login.LOGIN_PATH})  # the login form itself


async def _template_context(request: web.Request) -> dict[str, Any]:
    session = current(request)
    return {"session": session, "csrf": session.csrf if session else "",
            "path": request.path}


def _pages() -> list[tuple[str, str, Any]]:
    n = "/ui/campaigns/{name}"
    return [
        ("GET", "/", pages.home),
        ("GET", "/ui/", pages.campaigns_page),
        ("GET", "/ui/progress", progress_stream),
        ("GET", n, pages.campaign_page),
        ("GET", n + "/leads", pages.leads_fragment),
        ("GET", n + "/import", imports.import_form),
        ("POST", n + "/import", imports.upload),
        ("POST", n + "/import/{key}", imports.commit),
        ("GET", "/ui/calls/{id}", pages.call_page),
        ("GET", "/ui/dnc", pages.dnc_page),
        ("GET", "/ui/groups", groups.groups_page),
        ("GET", "/ui/groups/{group}", groups.group_page),
        ("GET", "/ui/events", pages.events_page),
        ("GET", "/ui/agents", agents.agents_page),
        ("GET", "/ui/agents/{name}", agents.agent_page),
        ("GET", "/ui/agents/{name}/knowledge", agents.knowledge_fragment),
        ("GET", "/ui/people", agents.person_lookup),
        ("GET", "/ui/people/{phone}", agents.person_page),
        ("GET", login.LOGIN_PATH, login.login_page),
        ("POST", login.LOGIN_PATH, login.login_submit),
        ("POST", "/ui/logout", login.logout),
    ]


def install_ui(app: web.Application, c: ApiContext, tokens: dict[str, SecretStr],
               api_public: set[tuple[str, str]]) -> None:
    """Adds the dashboard to `app`. Its routes join `api_public` (the bearer check skips
    them) because the dashboard's own middleware demands a login on every one of them."""
    loader = jinja2.ChoiceLoader([jinja2.FileSystemLoader(TEMPLATES), jinja2.PrefixLoader(
        {"static": jinja2.FileSystemLoader(STATIC)})])  # login.html inlines app.css
    aiohttp_jinja2.setup(app, loader=loader, autoescape=True,
                         context_processors=[_template_context],
                         filters={"since": pages.seconds_between}, default_helpers=False)
    app[SESSIONS] = Sessions(c.clock, timedelta(hours=c.settings.dashboard.session_ttl_h))
    app[login.TOKENS] = tokens
    app[login.THROTTLE] = login.Throttle()
    app[imports.UPLOADS] = imports.Uploads()
    hub = app[HUB] = ProgressHub(c.store, c.clock)
    if c.notices is not None:  # another node's event: sample now, not at the next poll
        c.notices.subscribe(hub.wake)
    for method, path, handler in _pages():
        app.router.add_route(method, path, handler)
    app.router.add_static("/ui/static", STATIC)
    protected: set[str] = set()
    for route in app.router.routes():
        canonical = route.resource.canonical if route.resource is not None else ""
        if canonical == "/" or canonical.startswith("/ui/"):
            api_public.add((route.method, canonical))
            if canonical not in PUBLIC_PATHS:
                protected.add(canonical)
    app.middlewares.append(login.ui_middleware(protected))

    async def hub_task(_: web.Application) -> AsyncIterator[None]:
        task = asyncio.get_running_loop().create_task(hub.run(), name="ui-progress")
        yield
        hub.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def end_streams(_: web.Application) -> None:
        hub.close()  # before the server waits for handlers: live streams must end

    app.cleanup_ctx.append(hub_task)
    app.on_shutdown.append(end_streams)
