"""Webhook intake: a CRM POSTs a lead (JSON of any shape) to /api/v1/intake/<campaign>.

No bearer token: each campaign that enables intake has its own secret, and the request is
signed like our outgoing webhooks: X-Televox-Timestamp (unix seconds) and
X-Televox-Signature: sha256=HEX(HMAC-SHA256(secret, "<timestamp>.<body>")). Unsigned or
wrongly signed -> 401 (an unknown or closed campaign answers the same, so nothing is told
about which exist), a timestamp older than intake.max_age_s -> 401, the same event id (or,
without one, the same signature) a second time -> 409, a body over the limit -> 413.
The campaign's intake.mapping (dotted paths) turns the JSON into a contact through the
same import engine as a CSV row.
"""

from __future__ import annotations

import hmac
import json
import logging
from datetime import timedelta
from typing import Any

from aiohttp import web

from televox_pbx.campaigns.importer import import_records
from televox_pbx.campaigns.json_paths import lead_record
from televox_pbx.campaigns.mapping import MappingError
from televox_pbx.config.campaign import Campaign
from televox_pbx.store.api_audit import record_audit
from televox_pbx.store.intake import claim_request, release_request
from televox_pbx.web.api_campaigns import campaign_config
from televox_pbx.web.api_contacts import campaign_id_for, mapping_rows
from televox_pbx.web.context import ApiContext, ctx
from televox_pbx.web.errors import ApiError
from televox_pbx.web.routes import Param, Route, json_response, path_str, read_body
from televox_pbx.web.webhooks import sign

log = logging.getLogger(__name__)

TAG = "intake"
MAX_LEADS = 1000  # a JSON list of leads in one request
_CHALLENGE = {"WWW-Authenticate": 'HMAC-SHA256 realm="televox-intake"'}


def _refuse(error: str, detail: str) -> ApiError:
    return ApiError(401, error, detail, _CHALLENGE)


async def _intake_campaign(c: ApiContext, name: str) -> tuple[Campaign, bytes]:
    """The campaign and its intake secret; the same 401 for every way of not having one."""
    try:
        campaign = await campaign_config(c, name)
    except ApiError:
        campaign = None
    secret = None
    if campaign is not None and campaign.intake.enabled:
        try:
            secret = campaign.intake.secret()
        except (OSError, UnicodeDecodeError):
            log.warning("intake secret file unreadable", extra={"campaign": name})
        if secret is None:
            log.warning("intake enabled but its secret is not set", extra={"campaign": name})
    if campaign is None or secret is None:
        raise _refuse("invalid_signature", "the signature does not match")
    return campaign, secret


def _leads(raw: bytes) -> list[dict[str, Any]]:
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ApiError(400, "invalid_json", f"the body is not JSON: {exc}") from None
    leads = data if isinstance(data, list) else [data]
    if not leads or len(leads) > MAX_LEADS or not all(isinstance(x, dict) for x in leads):
        raise ApiError(422, "invalid_lead",
                       f"a JSON object (one lead) or a list of 1..{MAX_LEADS} objects")
    return leads


async def intake(request: web.Request) -> web.Response:
    c = ctx(request)
    name = request.match_info["name"]
    stamp = request.headers.get("X-Televox-Timestamp", "")
    signature = request.headers.get("X-Televox-Signature", "")
    if not stamp or not signature:
        raise _refuse("unsigned", "X-Televox-Timestamp and X-Televox-Signature are required")
    raw = await read_body(request, c.settings.http.max_body_bytes)
    campaign, secret = await _intake_campaign(c, name)
    if not stamp.isdigit() or not hmac.compare_digest(sign(secret, stamp, raw), signature):
        raise _refuse("invalid_signature", "the signature does not match")
    now = c.clock.now()
    max_age = campaign.intake.max_age_s
    if abs(now.timestamp() - int(stamp)) > max_age:
        raise _refuse("stale_timestamp", f"the timestamp is more than {max_age} s off")
    event_id = request.headers.get("X-Televox-Event-Id", "")[:200]
    key = f"id:{event_id}" if event_id else f"sig:{signature[:100]}"
    if not await claim_request(c.store, campaign.name, key, now,
                               now - timedelta(seconds=2 * max_age)):
        raise ApiError(409, "replayed", "this request was already accepted")
    try:
        leads = _leads(raw)
        records = [lead_record(lead, campaign.intake.mapping) for lead in leads]
        campaign_id = await campaign_id_for(c, campaign, False)
        mapping, summary = await import_records(
            c.store, campaign, campaign_id, records, source="intake",
            workspace=c.settings.workspace, explicit=campaign.intake.mapping,
            origin="webhook intake", actor=f"intake:{campaign.name}", now=now)
    except Exception as exc:
        # Not taken in: the sender may fix the problem and send the same event again.
        await release_request(c.store, campaign.name, key)
        if isinstance(exc, MappingError):
            raise ApiError(422, "invalid_mapping", str(exc)) from None
        raise
    await record_audit(c.store, actor=f"intake:{campaign.name}", action="contacts.intake",
                       target=campaign.name, detail={**summary.counts(),
                                                     "event_id": event_id or None}, at=now)
    if c.dialer is not None and summary.added:
        c.dialer.poke()
    return json_response({"campaign": campaign.name, "mapping": mapping_rows(mapping),
                          "summary": summary.to_dict()}, 201 if summary.added else 200)


ROUTES: list[Route] = [
    Route("POST", "/intake/{name}", intake,
          "Webhook intake: a CRM pushes a lead (any JSON; the campaign's intake.mapping "
          "picks the fields by dotted path). No bearer token: signed with the campaign's "
          "intake secret, X-Televox-Signature: sha256=HEX(HMAC-SHA256(secret, "
          "'<X-Televox-Timestamp>.<body>')); optional X-Televox-Event-Id for idempotency.",
          TAG, auth=False, params=(
              path_str("name", "campaign name"),
              Param("X-Televox-Timestamp", "header", {"type": "string"}, "unix seconds",
                    True),
              Param("X-Televox-Signature", "header", {"type": "string"},
                    "sha256=HEX", True),
              Param("X-Televox-Event-Id", "header", {"type": "string"},
                    "the sender's event id: a second request with it is a replay")),
          body_types=("application/json",), ok=201,
          ok_schema={"type": "object", "required": ["campaign", "summary"]},
          errors=(401, 409, 413, 422)),
]
