"""Campaigns: list, one with its KPIs, the operator actions, the plan, reload from YAML."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from pydantic import AwareDatetime, BaseModel, ConfigDict

from televox_pbx.campaigns.controls import Action, ControlError, apply
from televox_pbx.campaigns.plan import PlanAction, build_plan
from televox_pbx.config.campaign import Campaign
from televox_pbx.config.loader import ConfigError, ConfigIssue, find_campaign, load_campaigns
from televox_pbx.store.attempts import in_flight, kpis
from televox_pbx.store.campaigns import CampaignRow, get_campaign, upsert_campaign
from televox_pbx.store.dial_queue import FINAL_STATUSES, status_counts
from televox_pbx.store.stats import campaign_counts
from televox_pbx.web.context import ApiContext, audit, ctx
from televox_pbx.web.errors import ApiError, not_found
from televox_pbx.web.routes import (
    Route,
    int_param,
    json_body,
    json_response,
    path_str,
    query_int,
)

TAG = "campaigns"
STATES = ("IDLE", "SCHEDULED", "RUNNING", "PAUSED", "COMPLETED")
# Actions that (re)read the campaign YAML, so edits take effect (as the CLI does).
_READS_YAML = {Action.START, Action.RESTART, Action.SCHEDULE}


class ScheduleBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    at: AwareDatetime | None = None  # default: scheduled_start from the YAML


def issues_detail(issues: list[ConfigIssue]) -> list[dict[str, Any]]:
    return [{"file": str(i.file), "line": i.line, "field": i.field, "message": i.message}
            for i in issues]


def campaign_yaml(c: ApiContext, name: str) -> Campaign | None:
    """campaigns_dir/NAME.yaml, None without one; 422 naming file, line and field when it
    does not validate."""
    if "/" in name or name.startswith("."):
        return None
    try:
        return find_campaign(c.settings, name)
    except ConfigError as exc:
        raise ApiError(422, "invalid_campaign", issues_detail(exc.issues)) from None


async def campaign_config(c: ApiContext, name: str) -> Campaign:
    """The campaign's YAML, else its stored snapshot; 404 when it has neither."""
    found = campaign_yaml(c, name)
    if found is not None:
        return found
    row = await get_campaign(c.store, name)
    cfg = row.config() if row is not None else None
    if cfg is None:
        raise not_found("campaign")
    return cfg


async def _row(c: ApiContext, name: str) -> CampaignRow:
    row = await get_campaign(c.store, name)
    if row is None:
        raise not_found("campaign")
    return row


async def list_campaigns(request: web.Request) -> web.Response:
    c = ctx(request)
    defined: dict[str, Campaign] = {}
    issues: list[ConfigIssue] = []
    if c.settings.campaigns_dir.is_dir():
        defined, issues = load_campaigns(c.settings.campaigns_dir)
    stored = {cc.name: cc for cc in await campaign_counts(c.store)}
    bad = {i.file.stem for i in issues}
    out = []
    for name in sorted(set(defined) | set(stored) | bad):
        cc = stored.get(name)
        counts = cc.contacts if cc else {}
        out.append({"name": name, "state": cc.state if cc else "IDLE", "in_store": cc is not None,
                    "defined": name in defined or name in bad, "valid": name not in bad,
                    "contacts": sum(counts.values()),
                    "done": sum(n for s, n in counts.items() if s in FINAL_STATUSES)})
    return json_response({"campaigns": out, "issues": issues_detail(issues)})


async def campaign_detail(request: web.Request) -> web.Response:
    c = ctx(request)
    name = request.match_info["name"]
    row = await get_campaign(c.store, name)
    if row is None:
        cfg = campaign_yaml(c, name)
        if cfg is None:
            raise not_found("campaign")
        return json_response(_detail(name, None, {}, None, 0, cfg))
    counts = await status_counts(c.store, row.id)
    return json_response(_detail(name, row, counts, await kpis(c.store, row.id),
                                 await in_flight(c.store, row.id), row.config()))


def _detail(name: str, row: CampaignRow | None, counts: dict[str, int], k: Any, live: int,
            cfg: Campaign | None) -> dict[str, Any]:
    total = sum(counts.values())
    done = sum(n for s, n in counts.items() if s in FINAL_STATUSES)
    return {
        "name": name, "state": row.state if row else "IDLE", "in_store": row is not None,
        "scheduled_at": row.scheduled_at if row else None,
        "current_pass": row.current_pass if row else 1,
        "contacts": {"total": total, "done": done, "by_status": counts},
        "in_flight": live,
        "kpis": dataclasses.asdict(k) if k is not None else
        {"calls": 0, "reached": 0, "interested": 0, "opted_out": 0, "avg_duration_s": None},
        "config": cfg.model_dump(mode="json") if cfg is not None else None,
    }


def _action_handler(action: Action) -> Any:
    async def handler(request: web.Request) -> web.Response:
        c = ctx(request)
        name = request.match_info["name"]
        at: datetime | None = None
        body = await json_body(request, ScheduleBody, c.settings.http.max_body_bytes) \
            if action is Action.SCHEDULE and request.can_read_body else ScheduleBody()
        campaign = campaign_yaml(c, name) if action in _READS_YAML else None
        if campaign is None and await get_campaign(c.store, name) is None:
            raise not_found("campaign")
        if action is Action.SCHEDULE:
            at = body.at or (campaign.scheduled_start if campaign else None)
            if at is None:
                raise ApiError(422, "schedule_needs_time",
                               "give `at` or set scheduled_start in the campaign YAML")
            at = at.astimezone(UTC)
        before = await get_campaign(c.store, name)
        try:
            row = await apply(c.store, name, action, c.clock.now(), campaign=campaign, at=at)
        except ControlError as exc:
            raise ApiError(409, "invalid_transition", str(exc)) from None
        if c.dialer is not None:
            c.dialer.poke()
        await audit(request, f"campaign.{action.value}", name,
                    from_state=before.state if before else None, to_state=row.state)
        return json_response({"name": row.name, "state": row.state,
                              "scheduled_at": row.scheduled_at, "action": action.value})
    return handler


async def reload_campaigns(request: web.Request) -> web.Response:
    """Validate every YAML file first; any error and nothing changes."""
    c = ctx(request)
    if not c.settings.campaigns_dir.is_dir():
        raise ApiError(422, "invalid_campaigns", [{"file": str(c.settings.campaigns_dir),
                                                   "line": None, "field": "",
                                                   "message": "no such directory"}])
    defined, issues = load_campaigns(c.settings.campaigns_dir)
    if issues:
        raise ApiError(422, "invalid_campaigns", issues_detail(issues))
    for campaign in defined.values():
        await upsert_campaign(c.store, campaign)
    if c.dialer is not None:
        c.dialer.poke()
    names = sorted(defined)
    await audit(request, "campaign.reload", "*", campaigns=names)
    return json_response({"reloaded": names})


async def campaign_plan(request: web.Request) -> web.Response:
    c = ctx(request)
    row = await _row(c, request.match_info["name"])
    cfg = row.config()
    if cfg is None:
        raise ApiError(409, "no_config", "the campaign has no stored configuration; start it")
    hours = int_param(request, "hours", 4, 1, 168)
    limit = int_param(request, "limit", 200, 1, 5000)
    plan = await build_plan(c.store, row, cfg, c.clock.now(), hours=hours,
                            workspace=c.settings.workspace)
    sections = {}
    for act in PlanAction:
        rows = plan.by_action(act)
        sections[act.value] = {"count": len(rows), "entries": [
            {"contact_id": e.contact_id, "name": e.name, "phone": e.phone, "at": e.at,
             "reason": e.reason} for e in rows[:limit]]}
    return json_response({"campaign": plan.campaign, "state": plan.state, "start": plan.start,
                          "until": plan.until, "interval_s": plan.interval_s,
                          "sections": sections})


_NAME = path_str("name", "campaign name (its YAML file's name)")
_STATE_SCHEMA = {"type": "object", "required": ["name", "state"],
                 "properties": {"name": {"type": "string"},
                                "state": {"type": "string", "enum": list(STATES)}}}

ROUTES: list[Route] = [
    Route("GET", "/campaigns", list_campaigns, "List campaigns (YAML and store) with state",
          TAG, ok_schema={"type": "object", "required": ["campaigns"]}),
    Route("POST", "/campaigns/reload", reload_campaigns,
          "Reload every campaign YAML; an invalid file changes nothing (422 with file, line, "
          "field)", TAG, errors=(422,)),
    Route("GET", "/campaigns/{name}", campaign_detail, "One campaign with its KPIs", TAG,
          params=(_NAME,), ok_schema={"type": "object", "required": ["name", "state", "kpis"]},
          errors=(422,)),
    Route("GET", "/campaigns/{name}/plan", campaign_plan,
          "Dry run of the dialer: who would be dialled when, who is held and why", TAG,
          params=(_NAME, query_int("hours", 4, 1, 168), query_int("limit", 200, 1, 5000)),
          errors=(409, 422)),
    *[Route("POST", f"/campaigns/{{name}}/{a.value}", _action_handler(a),
            f"Campaign action: {a.value}", TAG, params=(_NAME,),
            body=ScheduleBody if a is Action.SCHEDULE else None, body_required=False,
            ok_schema=_STATE_SCHEMA, errors=(409, 422)) for a in Action],
]
