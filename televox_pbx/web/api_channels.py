"""What an SMS or IVR campaign produced (issue 16): the SMS recipients with their status
(as `televox sms status`) and each one's thread, and the IVR answers as CSV (the same
rows as `televox ivr export`)."""

from __future__ import annotations

import io

from aiohttp import web

from televox_pbx.campaigns.csvio import write_rows
from televox_pbx.store import sms as sms_store
from televox_pbx.store.campaigns import CampaignRow, get_campaign
from televox_pbx.store.ivr import export_rows
from televox_pbx.web.api_campaigns import campaign_config
from televox_pbx.web.context import ApiContext, ctx
from televox_pbx.web.errors import ApiError, not_found
from televox_pbx.web.routes import (
    PAGING,
    Route,
    json_response,
    match_int,
    paging,
    path_int,
    path_str,
    query_str,
    str_param,
)

TAG = "campaigns"
STATUSES = ("queued", "sent", "failed", "replied")


async def _stored(c: ApiContext, name: str) -> CampaignRow:
    row = await get_campaign(c.store, name)
    if row is None:
        raise not_found("campaign")
    return row


async def sms_recipients(request: web.Request) -> web.Response:
    c = ctx(request)
    row = await _stored(c, request.match_info["name"])
    status = str_param(request, "status", STATUSES)
    limit, offset = paging(request)
    every = await sms_store.recipients(c.store, row.id)
    counts = {s: 0 for s in STATUSES}
    for r in every:
        counts[r.status] = counts.get(r.status, 0) + 1
    chosen = [r for r in every if status is None or r.status == status]
    return json_response({
        "campaign": row.name, "counts": counts, "total": len(chosen), "limit": limit,
        "offset": offset,
        "recipients": [{"contact_id": r.contact_id, "phone": r.e164, "status": r.status,
                        "reason": r.reason} for r in chosen[offset:offset + limit]]})


async def sms_thread(request: web.Request) -> web.Response:
    c = ctx(request)
    row = await _stored(c, request.match_info["name"])
    contact_id = match_int(request, "id")
    texts = await sms_store.contact_thread(c.store, row.id, contact_id)
    return json_response({"campaign": row.name, "contact_id": contact_id, "texts": [
        {"direction": t.direction, "kind": t.kind, "body": t.body, "status": t.status,
         "reason": t.reason, "at": t.at} for t in texts]})


async def ivr_answers_csv(request: web.Request) -> web.Response:
    c = ctx(request)
    name = request.match_info["name"]
    campaign = await campaign_config(c, name)
    if campaign.ivr is None:
        raise ApiError(422, "not_ivr", "not an IVR campaign (kind: ivr)")
    row = await _stored(c, name)
    header, rows = await export_rows(c.store, row.id, campaign.ivr.questions())
    out = io.StringIO()
    write_rows(out, header, rows)
    return web.Response(text=out.getvalue(), content_type="text/csv", headers={
        "Content-Disposition": f'attachment; filename="{_filename(name)}-answers.csv"'})


def _filename(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)[:80]


_NAME = path_str("name", "campaign name")

ROUTES: list[Route] = [
    Route("GET", "/campaigns/{name}/sms/recipients", sms_recipients,
          "An SMS campaign's recipients: queued, sent, failed or replied, paged", TAG,
          params=(_NAME, query_str("status", "only this status", STATUSES), *PAGING),
          ok_schema={"type": "object", "required": ["counts", "total", "recipients"]}),
    Route("GET", "/campaigns/{name}/sms/recipients/{id}", sms_thread,
          "Every text between the campaign and one contact, oldest first", TAG,
          params=(_NAME, path_int("id", "contact id")),
          ok_schema={"type": "object", "required": ["texts"]}),
    Route("GET", "/campaigns/{name}/ivr/answers.csv", ivr_answers_csv,
          "An IVR campaign's answers: one row per call, one column per question", TAG,
          params=(_NAME,), ok_type="text/csv", ok_schema={"type": "string"},
          errors=(422,)),
]
