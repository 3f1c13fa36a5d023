"""The DNC list: list, add with a reason, remove, CSV import and export, audit trail.
Every write goes through DncService (the one normaliser; every change audited)."""

from __future__ import annotations

import asyncio
import io
import os
import tempfile
from pathlib import Path

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from televox_pbx.campaigns.csvio import write_rows
from televox_pbx.campaigns.dnc import EXPORT_HEADER, DncResult, DncService
from televox_pbx.web.context import ApiContext, actor, audit, ctx
from televox_pbx.web.errors import ApiError, not_found
from televox_pbx.web.routes import (
    PAGING,
    Route,
    int_param,
    json_body,
    json_response,
    paging,
    path_str,
    query_int,
    query_str,
    read_upload,
    str_param,
)

TAG = "dnc"


class DncAddBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    numbers: list[str] = Field(min_length=1, max_length=10_000)
    reason: str = Field(default="", max_length=500)


def _service(c: ApiContext) -> DncService:
    return DncService(c.store, c.settings.workspace, c.settings.default_country, c.clock)


def _result(result: DncResult, verb: str, same: str) -> dict[str, object]:
    return {verb: result.changed, same: result.unchanged,
            "invalid": [{"item": i, "input": raw[:40], "reason": why}
                        for i, raw, why in result.invalid]}


async def dnc_list(request: web.Request) -> web.Response:
    svc = _service(ctx(request))
    limit, offset = paging(request)
    entries = await svc.entries(limit, offset)
    return json_response({"total": await svc.count(), "limit": limit, "offset": offset,
                          "entries": [{"e164": e.e164, "reason": e.reason, "source": e.source,
                                       "added_by": e.added_by, "added_at": e.added_at}
                                      for e in entries]})


async def dnc_add(request: web.Request) -> web.Response:
    c = ctx(request)
    body = await json_body(request, DncAddBody, c.settings.http.max_body_bytes)
    result = await _service(c).add(body.numbers, reason=body.reason, source="api",
                                   actor=actor(request))
    if result.changed:
        await audit(request, "dnc.add", f"{len(result.changed)} number(s)",
                    numbers=result.changed, reason=body.reason)
    if result.invalid and not result.changed and not result.unchanged:
        raise ApiError(422, "invalid_number", _result(result, "added", "already_listed"))
    return json_response(_result(result, "added", "already_listed"),
                         201 if result.changed else 200)


async def dnc_remove(request: web.Request) -> web.Response:
    c = ctx(request)
    number = request.match_info["number"]
    reason = str_param(request, "reason", max_len=500) or ""
    result = await _service(c).remove([number], reason=reason, source="api",
                                      actor=actor(request))
    if result.invalid:
        raise ApiError(422, "invalid_number", "not a valid phone number")
    if not result.changed:
        raise not_found("number on the DNC list")
    await audit(request, "dnc.remove", result.changed[0], reason=reason)
    return json_response({"removed": result.changed[0]})


def _temp_file(data: bytes) -> Path:
    fd, name = tempfile.mkstemp(suffix=".csv", prefix="televox-dnc-")
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    return Path(name)


async def dnc_import(request: web.Request) -> web.Response:
    """A CSV with a phone column (guessed) and an optional reason column, or a bare list."""
    c = ctx(request)
    reason = str_param(request, "reason", max_len=500) or ""
    data = await read_upload(request, c.settings.http.max_upload_bytes)
    # DncService reads files (the CLI's path): the upload goes through a private temp file.
    path = await asyncio.to_thread(_temp_file, data)
    try:
        result = await _service(c).import_csv(path, reason=reason, source="api-import",
                                              actor=actor(request))
    finally:
        await asyncio.to_thread(path.unlink, missing_ok=True)
    await audit(request, "dnc.import", f"{len(result.changed)} number(s)",
                added=len(result.changed), already_listed=len(result.unchanged),
                invalid=len(result.invalid), reason=reason)
    out = _result(result, "added", "already_listed")
    return json_response({"counts": {"added": len(result.changed),
                                     "already_listed": len(result.unchanged),
                                     "invalid": len(result.invalid)}, **out},
                         201 if result.changed else 200)


async def dnc_export(request: web.Request) -> web.Response:
    svc = _service(ctx(request))
    out = io.StringIO()
    write_rows(out, EXPORT_HEADER, ((e.e164, e.reason, e.source, e.added_by, e.added_at)
                                    for e in await svc.entries()))
    return web.Response(text=out.getvalue(), content_type="text/csv", headers={
        "Content-Disposition": 'attachment; filename="dnc.csv"'})


async def dnc_audit(request: web.Request) -> web.Response:
    svc = _service(ctx(request))
    entries = await svc.audit(str_param(request, "number"),
                              int_param(request, "limit", 100, 1, 5000))
    return json_response({"entries": [
        {"id": a.id, "e164": a.e164, "action": a.action, "reason": a.reason,
         "source": a.source, "actor": a.actor, "at": a.at} for a in entries]})


ROUTES: list[Route] = [
    Route("GET", "/dnc", dnc_list, "The DNC list, paged", TAG, params=PAGING,
          ok_schema={"type": "object", "required": ["total", "entries"]}),
    Route("POST", "/dnc", dnc_add, "Add numbers with a reason", TAG, body=DncAddBody,
          errors=(422,)),
    Route("DELETE", "/dnc/{number}", dnc_remove, "Remove a number (audited)", TAG,
          params=(path_str("number", "the number, any format"),
                  query_str("reason", "why it is removed")), errors=(422,)),
    Route("POST", "/dnc/import", dnc_import,
          "Import a CSV of numbers (raw text/csv or a multipart file)", TAG,
          params=(query_str("reason", "for rows without their own"),),
          body_types=("text/csv", "multipart/form-data"), errors=(422,)),
    Route("GET", "/dnc/export.csv", dnc_export, "The whole list as CSV", TAG,
          ok_type="text/csv", ok_schema={"type": "string"}),
    Route("GET", "/dnc/audit", dnc_audit, "Who added or removed what, newest first", TAG,
          params=(query_str("number"), query_int("limit", 100, 1, 5000))),
]
