"""The dashboard's agents (issue 18 item 6): the agents and the numbers, one agent with a
knowledge search box, and one person's history. Each page shows what the API's own
handlers answer (web/api_agents.py), so the page and /api/v1 never disagree."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import aiohttp_jinja2
from aiohttp import web

from televox_pbx.web import api_agents
from televox_pbx.web.context import ctx
from televox_pbx.web.errors import ApiError
from televox_pbx.web.ui.pages import api_json, error_page


async def agents_page(request: web.Request) -> web.Response:
    agents = await api_json(api_agents.agents_list, request)
    numbers = await api_json(api_agents.numbers_list, request)
    return aiohttp_jinja2.render_template("agents.html", request, {
        "agents": agents["agents"], "numbers": numbers["numbers"]})


async def _search(request: web.Request) -> dict[str, Any]:
    """The knowledge search for ?q= (none asked: nothing); its refusals shown in place."""
    q = request.query.get("q", "").strip()
    if not q:
        return {"q": "", "found": None, "problem": None}
    try:
        found = await api_json(api_agents.agent_knowledge, request)
    except ApiError as exc:
        return {"q": q, "found": None, "problem": str(exc.detail)}
    return {"q": q, "found": found, "problem": None}


async def agent_page(request: web.Request) -> web.Response:
    try:
        agent = await api_json(api_agents.agent_show, request)
    except ApiError as exc:
        return error_page(request, exc)
    context = await _search(request)
    context["agent"] = agent
    return aiohttp_jinja2.render_template("agent.html", request, context)


async def knowledge_fragment(request: web.Request) -> web.Response:
    """The search results alone, for the htmx-enhanced form."""
    try:
        api_agents.agent_files(ctx(request))[request.match_info["name"]]
    except KeyError:
        return error_page(request, ApiError(404, "not_found", "no such agent"))
    context = await _search(request)
    context["agent"] = {"name": request.match_info["name"]}
    return aiohttp_jinja2.render_template("_knowledge.html", request, context)


async def person_lookup(request: web.Request) -> web.Response:
    """The agents page's number box: on to that person's page, in E.164."""
    try:
        e164 = api_agents.phone_of(ctx(request), request.query.get("phone", ""))
    except ApiError as exc:
        return error_page(request, exc)
    return web.Response(status=303, headers={"Location": "/ui/people/" + quote(e164)})


async def person_page(request: web.Request) -> web.Response:
    try:
        person = await api_json(api_agents.person_show, request)
    except ApiError as exc:
        return error_page(request, exc)
    return aiohttp_jinja2.render_template("person.html", request, {"person": person})
