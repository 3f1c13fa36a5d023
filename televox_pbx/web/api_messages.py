"""POST /api/v1/messages: one SMS now, through the compliance gate (DNC, window) and the
one-live-attempt claim, from the campaign's caller ID over its trunk (issue 16)."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from televox_pbx.store.campaigns import get_campaign, upsert_campaign
from televox_pbx.web.api_campaigns import campaign_config
from televox_pbx.web.context import audit, ctx
from televox_pbx.web.errors import ApiError
from televox_pbx.web.routes import Route, json_body, json_response

TAG = "messages"
# SendResult codes -> HTTP status of the refusal.
_REFUSALS = {"dnc": 409, "window": 409, "unknown_tz": 409, "in_call": 409, "invalid": 422,
             "too_long": 422, "not_sent": 503, "failed": 502}


class MessageBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to: str = Field(min_length=3, max_length=40, description="The number, any format.")
    campaign: str = Field(min_length=1, max_length=200,
                          description="Whose caller ID, trunk, window and agent apply.")
    text: str = Field(min_length=1, max_length=1000,
                      description="One segment: 160 GSM-7 or 70 UCS-2 characters.")


async def send_message(request: web.Request) -> web.Response:
    c = ctx(request)
    body = await json_body(request, MessageBody, c.settings.http.max_body_bytes)
    sms = c.dialer.sms if c.dialer is not None else None
    if sms is None:
        raise ApiError(503, "unavailable", "this server has no PBX link for texts")
    campaign = await campaign_config(c, body.campaign)
    row = await get_campaign(c.store, campaign.name)
    campaign_id = row.id if row is not None and row.config() is not None else \
        await upsert_campaign(c.store, campaign)
    result = await sms.send_single(campaign, campaign_id, body.to, body.text)
    await audit(request, "message.send", campaign.name, attempt_id=result.attempt_id,
                result=result.code)
    if not result.ok:
        status = _REFUSALS.get(result.code, 409)
        raise ApiError(status, "message_refused", {"code": result.code,
                                                   "reason": result.reason})
    return json_response({"id": result.attempt_id, "status": "sent",
                          "campaign": campaign.name}, 201)


ROUTES: list[Route] = [
    Route("POST", "/messages", send_message,
          "Send one SMS now through the compliance gate (DNC, window, one live attempt "
          "per number)", TAG, body=MessageBody, ok=201,
          ok_schema={"type": "object", "required": ["id", "status"]},
          errors=(404, 409, 422, 502, 503)),
]
