"""The dashboard's pages. Reads of what the API also serves go through the API's own
handlers (the page shows exactly what /api/v1 answers, summary included); the rest are
store reads. Nothing here writes: the pages' forms post JSON to /api/v1 (static/app.js)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from televox_pbx.campaigns.controls import Action, ControlError, State, transition
from televox_pbx.campaigns.dnc import DncService
from televox_pbx.domain import Disposition
from televox_pbx.store import sms as sms_store
from televox_pbx.store.call_history import list_calls
from televox_pbx.store.campaigns import get_campaign
from televox_pbx.store.contact_queries import ContactFilter, list_contacts
from televox_pbx.store.dashboard_stats import campaign_progress, minutes_per_day
from televox_pbx.web import api_calls, api_campaigns
from televox_pbx.web.context import ctx
from televox_pbx.web.errors import ApiError, Handler
from televox_pbx.web.routes import int_param, str_param

LEADS_PAGE = 25
SMS_SHOWN = 200  # recipients on the campaign page; the API pages through all of them
_LEAD_STATUSES = ("pending", "calling", "connected", "callback", "completed", "no_answer",
                  "busy", "failed", "voicemail", "opted_out", "dnc")


async def api_json(handler: Handler, request: web.Request) -> Any:
    """What the API handler answers for this request (same match_info), as data."""
    resp = await handler(request)
    assert isinstance(resp, web.Response) and resp.text is not None
    return json.loads(resp.text)


def error_page(request: web.Request, exc: ApiError) -> web.Response:
    return aiohttp_jinja2.render_template("error.html", request, {
        "status": exc.status, "error": exc.error, "detail": exc.detail}, status=exc.status)


async def home(request: web.Request) -> web.Response:
    return web.Response(status=303, headers={"Location": "/ui/"})


async def campaigns_page(request: web.Request) -> web.Response:
    listed = await api_json(api_campaigns.list_campaigns, request)
    progress = {p.name: p.as_dict() for p in await campaign_progress(ctx(request).store)}
    return aiohttp_jinja2.render_template("campaigns.html", request, {
        "campaigns": listed["campaigns"], "issues": listed["issues"], "progress": progress})


async def campaign_page(request: web.Request) -> web.Response:
    c = ctx(request)
    name = request.match_info["name"]
    try:
        detail = await api_json(api_campaigns.campaign_detail, request)
    except ApiError as exc:
        return error_page(request, exc)
    row = await get_campaign(c.store, name)
    minutes = await minutes_per_day(c.store, row.id, c.clock.now()) if row else []
    rate = c.settings.dashboard.cost_per_minute
    total_min = sum(m for _, m in minutes)
    progress = next((p.as_dict() for p in await campaign_progress(c.store) if p.name == name),
                    None)
    calls = await list_calls(c.store, campaign=name, limit=20) if row else []
    context = {"c": detail, "progress": progress, "calls": calls, "rate": rate,
               "currency": c.settings.dashboard.currency,
               "cost": {"days": [d for d, _ in minutes], "minutes": [m for _, m in minutes],
                        "total_minutes": round(total_min, 2),
                        "total_cost": round(total_min * rate, 2), "rate": rate,
                        "currency": c.settings.dashboard.currency},
               "actions": _actions(detail["state"])}
    context.update(await _leads(request, row.id if row else None))
    context.update(await _channel(request, name, row.id if row else None))
    return aiohttp_jinja2.render_template("campaign.html", request, context)


async def _channel(request: web.Request, name: str, campaign_id: int | None
                   ) -> dict[str, Any]:
    """SMS campaigns: their recipients (as `televox sms status`); IVR: the answers link."""
    c = ctx(request)
    try:
        cfg = await api_campaigns.campaign_config(c, name)
    except ApiError:
        return {"sms": False, "ivr": False}
    sms = cfg.channel == "sms"
    every = await sms_store.recipients(c.store, campaign_id) if sms and campaign_id else []
    counts: dict[str, int] = {}
    for r in every:
        counts[r.status] = counts.get(r.status, 0) + 1
    return {"sms": sms, "recipients": every[:SMS_SHOWN], "recipient_counts": counts,
            "recipients_total": len(every), "ivr": cfg.ivr is not None}


def _actions(state: str) -> list[str]:
    """The buttons that make sense now (the API still guards every transition)."""
    out = []
    for action in Action:
        if action is Action.SCHEDULE:
            continue  # needs a time: the API or the CLI
        try:
            transition(State(state), action)
        except (ControlError, ValueError):
            continue
        out.append(action.value)
    return out


async def _leads(request: web.Request, campaign_id: int | None) -> dict[str, Any]:
    page = int_param(request, "page", 1, 1, 1_000_000)
    status = str_param(request, "status", _LEAD_STATUSES)
    q = str_param(request, "q")
    if campaign_id is None:
        return {"leads": [], "leads_total": 0, "page": 1, "pages": 1, "status": status, "q": q,
                "statuses": _LEAD_STATUSES}
    items, total = await list_contacts(ctx(request).store, campaign_id,
                                       ContactFilter(status=status, q=q), limit=LEADS_PAGE,
                                       offset=(page - 1) * LEADS_PAGE)
    return {"leads": items, "leads_total": total, "page": page, "status": status, "q": q,
            "pages": max(1, -(-total // LEADS_PAGE)), "statuses": _LEAD_STATUSES}


async def leads_fragment(request: web.Request) -> web.Response:
    """The lead table alone, for htmx paging and filters."""
    row = await get_campaign(ctx(request).store, request.match_info["name"])
    context = await _leads(request, row.id if row else None)
    context["c"] = {"name": request.match_info["name"]}
    return aiohttp_jinja2.render_template("_leads.html", request, context)


async def call_page(request: web.Request) -> web.Response:
    try:
        call = await api_json(api_calls.call_show, request)
    except ApiError as exc:
        return error_page(request, exc)
    first = call["transcript"][0]["started_at"] if call["transcript"] else None
    return aiohttp_jinja2.render_template("call.html", request, {
        "call": call, "dispositions": [d.value for d in Disposition], "t0": first})


async def dnc_page(request: web.Request) -> web.Response:
    c = ctx(request)
    svc = DncService(c.store, c.settings.workspace, c.settings.default_country, c.clock)
    page = int_param(request, "page", 1, 1, 1_000_000)
    entries = await svc.entries(100, (page - 1) * 100)
    listed = await api_json(api_campaigns.list_campaigns, request)
    return aiohttp_jinja2.render_template("dnc.html", request, {
        "entries": entries, "total": await svc.count(), "page": page,
        "campaigns": [x["name"] for x in listed["campaigns"] if x["valid"]]})


async def events_page(request: web.Request) -> web.Response:
    return aiohttp_jinja2.render_template("events.html", request, {
        "event": request.query.get("event", ""), "filter": request.query.get("filter", ""),
        "call_id": request.query.get("call_id", "")})


def seconds_between(start: str | None, end: str | None) -> str:
    """A template filter: '+1.24 s' from two ISO times (turn timings on the call page)."""
    from televox_pbx.store.timefmt import parse_iso

    a, b = parse_iso(start), parse_iso(end)
    if a is None or b is None:
        return ""
    return f"{(b - a) / timedelta(seconds=1):+.2f} s"
