"""Calls: place one now (through the gate), list, detail with transcript and recording
(HTTP Range), edit the disposition, add notes."""

from __future__ import annotations

import dataclasses
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from televox_pbx.campaigns.dnc import DncService
from televox_pbx.campaigns.importer import RowStatus, import_records
from televox_pbx.campaigns.phones import normalize_phone
from televox_pbx.domain import Disposition
from televox_pbx.store.call_feedback import add_note, notes, set_disposition
from televox_pbx.store.call_history import CallDetail, call_detail, list_calls
from televox_pbx.store.call_lookup import contact_for_phone
from televox_pbx.store.call_summaries import get_summary
from televox_pbx.store.campaigns import get_campaign, upsert_campaign
from televox_pbx.web.api_campaigns import campaign_config
from televox_pbx.web.call_extras import CallExtras
from televox_pbx.web.context import ApiContext, actor, audit, ctx
from televox_pbx.web.errors import ApiError, not_found
from televox_pbx.web.routes import (
    Route,
    int_param,
    json_body,
    json_response,
    path_str,
    query_int,
    query_str,
    str_param,
)

TAG = "calls"
Scalar = str | int | float | bool | None

# CallNowResult.code -> (HTTP status, error id) for a call that was not placed.
_REFUSALS = {"dnc": 409, "window": 409, "unknown_tz": 409, "in_call": 409, "no_phone": 409,
             "no_config": 409, "invalid": 422, "no_contact": 404, "capacity": 429,
             "not_ready": 503, "not_sent": 503, "failed": 502}


class CallBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    phone: str = Field(min_length=3, max_length=40)
    campaign: str = Field(min_length=1, max_length=200)
    variables: dict[str, Scalar] = Field(default_factory=dict, max_length=100)
    name: str | None = Field(default=None, max_length=200)
    timezone: str | None = Field(default=None, max_length=64)
    first_message: str | None = Field(default=None, max_length=1000,
                                      description="Replaces the opening line (AI disclosure "
                                                  "added when missing).")
    context: str | None = Field(default=None, max_length=4000,
                                description="Extra background for the agent on this call.")


class DispositionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    disposition: Disposition


class NoteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=4000)


def _vars(variables: dict[str, Scalar]) -> dict[str, str]:
    return {str(k): "" if v is None else str(v) for k, v in variables.items()}


async def _contact_id(c: ApiContext, body: CallBody, campaign_id: int, e164: str,
                      request: web.Request) -> int:
    """The campaign's contact with this number, or a new one through the importer."""
    existing = await contact_for_phone(c.store, campaign_id, e164)
    if existing is not None:
        return existing
    campaign = await campaign_config(c, body.campaign)
    variables = _vars(body.variables)
    # Variables travel under their own headers, so a variable named `phone` cannot clash.
    record: dict[str, str] = {f"var_{k}": v for k, v in variables.items()}
    explicit = {f"var_{k}": f"var:{k}" for k in variables}
    record["phone"], explicit["phone"] = e164, "phone"
    if body.name:
        record["name"], explicit["name"] = body.name, "name"
    if body.timezone:
        record["timezone"], explicit["timezone"] = body.timezone, "timezone"
    try:
        _, summary = await import_records(c.store, campaign, campaign_id, [record],
                                          source="api", origin="POST /calls",
                                          actor=actor(request), explicit=explicit,
                                          workspace=c.settings.workspace, now=c.clock.now())
    except ValueError as exc:  # MappingError: a variable name the mapping refuses
        raise ApiError(422, "invalid_variables", str(exc)) from None
    for issue in summary.rejects():
        if issue.status is RowStatus.DNC:
            raise ApiError(409, "call_refused", {"code": "dnc", "reason": issue.reason})
        raise ApiError(422, "invalid_contact", issue.reason)
    found = await contact_for_phone(c.store, campaign_id, e164)
    if found is None:
        raise ApiError(422, "invalid_contact", "the contact was not added")
    return found


async def place_call(request: web.Request) -> web.Response:
    c = ctx(request)
    body = await json_body(request, CallBody, c.settings.http.max_body_bytes)
    if c.dialer is None:
        raise ApiError(503, "unavailable", "this server has no dialer running")
    campaign = await campaign_config(c, body.campaign)
    e164 = normalize_phone(body.phone, campaign.default_country).e164
    if e164 is None:
        raise ApiError(422, "invalid_phone", "not a valid phone number")
    row = await get_campaign(c.store, campaign.name)
    campaign_id = row.id if row is not None and row.config() is not None else \
        await upsert_campaign(c.store, campaign)
    contact_id = await _contact_id(c, body, campaign_id, e164, request)
    key = str(contact_id)
    if body.first_message or body.context or body.variables:
        c.call_extras[key] = CallExtras(body.first_message, body.context, _vars(body.variables))
    try:
        result = await c.dialer.call_now(contact_id)
    finally:
        # Taken by the Originate when the call went out; never left for a later call.
        c.call_extras.pop(key, None)
    await audit(request, "call.place", campaign.name, contact_id=contact_id,
                call_id=result.call_id, result=result.code)
    if result.call_id is None:
        status = _REFUSALS.get(result.code, 409)
        headers = {"Retry-After": "30"} if status in (429, 503) else None
        raise ApiError(status, "call_refused", {"code": result.code, "reason": result.reason},
                       headers)
    return json_response({"call_id": result.call_id, "status": "originated",
                          "contact_id": contact_id, "campaign": campaign.name,
                          "url": f"/api/v1/calls/{result.call_id}"}, 201)


async def calls_list(request: web.Request) -> web.Response:
    c = ctx(request)
    rows = await list_calls(c.store, campaign=str_param(request, "campaign"),
                            status=str_param(request, "status"),
                            limit=int_param(request, "limit", 50, 1, 1000))
    return json_response({"calls": [dataclasses.asdict(r) for r in rows]})


async def _detail(c: ApiContext, request: web.Request) -> CallDetail:
    call_id = request.match_info["id"]
    if len(call_id) < 8:  # a prefix this short would match by accident
        raise not_found("call")
    found = await call_detail(c.store, call_id)
    if found is None:
        raise not_found("call")
    return found


async def call_show(request: web.Request) -> web.Response:
    c = ctx(request)
    d = await _detail(c, request)
    call_id = d.call.id
    out: dict[str, Any] = dataclasses.asdict(d.call)
    out["amd"] = out.pop("amd_status")
    out["transcript"] = [{"turn": t.turn, "speaker": t.speaker, "text": t.text,
                          "started_at": t.started_at, "ended_at": t.ended_at,
                          "interrupted": t.interrupted, "latency_ms": t.latency}
                         for t in d.turns]
    out["recordings"] = [{"url": f"/api/v1/calls/{call_id}/recording?n={i}", "seconds": s,
                          "available": p.is_file()} for i, (p, s) in enumerate(d.recordings)]
    out["notes"] = [dataclasses.asdict(n) for n in await notes(c.store, call_id)]
    summary = await get_summary(c.store, call_id)
    # pending: not written yet (the call is live, or the LLM waits for live calls to end).
    out["summary"] = summary.text if summary is not None else None
    out["summary_status"] = summary.status if summary is not None else (
        "pending" if d.call.answered_at is not None and d.call.turns > 0 else "none")
    return json_response(out)


async def call_recording(request: web.Request) -> web.StreamResponse:
    """The WAV file, streamed; aiohttp's FileResponse answers Range requests (206)."""
    c = ctx(request)
    d = await _detail(c, request)
    n = int_param(request, "n", 0, 0, 100)
    if n >= len(d.recordings) or not d.recordings[n][0].is_file():
        raise not_found("recording")
    return web.FileResponse(d.recordings[n][0], headers={"Content-Type": "audio/wav"})


async def edit_disposition(request: web.Request) -> web.Response:
    c = ctx(request)
    d = await _detail(c, request)
    body = await json_body(request, DispositionBody, c.settings.http.max_body_bytes)
    who = actor(request)
    old = await set_disposition(c.store, d.call.id, body.disposition.value, who,
                                c.clock.now())
    if body.disposition is Disposition.OPT_OUT:
        # An opt-out is honoured wherever it is recorded: the number goes on the DNC list.
        await DncService(c.store, c.settings.workspace, c.settings.default_country,
                         c.clock).add([d.call.phone], reason="disposition set to OPT_OUT",
                                      source="api", actor=who)
    await audit(request, "call.disposition", d.call.id, previous=old,
                disposition=body.disposition.value)
    return json_response({"id": d.call.id, "disposition": body.disposition.value,
                          "previous": old})


async def add_call_note(request: web.Request) -> web.Response:
    c = ctx(request)
    d = await _detail(c, request)
    body = await json_body(request, NoteBody, c.settings.http.max_body_bytes)
    note_id = await add_note(c.store, d.call.id, actor(request), body.text, c.clock.now())
    await audit(request, "call.note", d.call.id, note_id=note_id)
    return json_response({"id": note_id, "call_id": d.call.id, "author": actor(request)}, 201)


_ID = path_str("id", "call id (the attempt UUID, or a unique prefix of 8+ characters)")

ROUTES: list[Route] = [
    Route("POST", "/calls", place_call,
          "Place one call now through the compliance gate (DNC, window, one live call per "
          "number)", TAG, body=CallBody, ok=201,
          ok_schema={"type": "object", "required": ["call_id", "contact_id"]},
          errors=(404, 409, 422, 429, 502, 503)),
    Route("GET", "/calls", calls_list, "Calls, newest first", TAG,
          params=(query_str("campaign"), query_str("status"), query_int("limit", 50, 1, 1000)),
          ok_schema={"type": "object", "required": ["calls"]}),
    Route("GET", "/calls/{id}", call_show,
          "One call: status, duration, AMD, transcript, recordings, notes, and the summary "
          "the LLM writes after hang-up", TAG,
          params=(_ID,), ok_schema={"type": "object", "required": ["id", "status",
                                                                   "transcript"]}),
    Route("GET", "/calls/{id}/recording", call_recording,
          "The call's recording (WAV), with HTTP Range support", TAG,
          params=(_ID, query_int("n", 0, 0, 100, "which recording")), ok_type="audio/wav",
          ok_schema={"type": "string", "format": "binary"}, errors=(416,)),
    Route("PUT", "/calls/{id}/disposition", edit_disposition,
          "Correct the call's disposition (OPT_OUT also lists the number on DNC)", TAG,
          params=(_ID,), body=DispositionBody,
          ok_schema={"type": "object", "required": ["id", "disposition"]}),
    Route("POST", "/calls/{id}/notes", add_call_note, "Add a feedback note to the call", TAG,
          params=(_ID,), body=NoteBody, ok=201),
]
