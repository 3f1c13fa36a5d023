"""The import page: upload a CSV, see the guessed column mapping and change it, preview the
first rows with their variables filled in, then import through the same engine as the API
and the CLI (campaigns/importer.py) and show the summary, rejected rows one by one.

The uploaded file waits in memory between the steps (a few at most, for an hour)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import aiohttp_jinja2
from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from televox_pbx.agent.prompts import opening_line
from televox_pbx.campaigns.csvio import CsvTable, decode, parse_text
from televox_pbx.campaigns.importer import import_rows
from televox_pbx.campaigns.mapping import (
    SCALAR_FIELDS,
    ColumnMap,
    Mapping,
    MappingError,
    build_mapping,
    merge_explicit,
    normalize_header,
)
from televox_pbx.campaigns.phones import normalize_phone
from televox_pbx.cli.campaign_import import template_headers
from televox_pbx.config.campaign import Campaign
from televox_pbx.web.api_campaigns import campaign_config
from televox_pbx.web.api_contacts import campaign_id_for
from televox_pbx.web.context import actor, audit, ctx
from televox_pbx.web.errors import ApiError
from televox_pbx.web.ui.pages import error_page
from televox_pbx.web.ui.sessions import CSRF_FIELD, csrf_ok, current

PREVIEW_ROWS = 5
_KEEP = timedelta(hours=1)
_MAX_UPLOADS = 4


@dataclass(slots=True)
class Upload:
    campaign: str
    filename: str
    table: CsvTable
    expires: datetime


class Uploads:
    def __init__(self) -> None:
        self._items: dict[str, Upload] = {}

    def put(self, upload: Upload) -> str:
        while len(self._items) >= _MAX_UPLOADS:
            self._items.pop(next(iter(self._items)))
        key = secrets.token_urlsafe(16)
        self._items[key] = upload
        return key

    def get(self, key: str, campaign: str, now: datetime) -> Upload | None:
        self._items = {k: u for k, u in self._items.items() if u.expires > now}
        found = self._items.get(key)
        return found if found is not None and found.campaign == campaign else None

    def drop(self, key: str) -> None:
        self._items.pop(key, None)


UPLOADS = web.AppKey("televox.ui.uploads", Uploads)


def targets(campaign: Campaign, headers: list[str], chosen: Iterable[str]) -> list[str]:
    """What a column may be mapped to: the fields, the variables the campaign's texts use,
    a variable named after each column, and whatever is chosen now."""
    used = [h for h in template_headers(campaign) if not h.startswith(("phone", "timezone"))]
    names = [*used, *(normalize_header(h) for h in headers)]
    options = ["skip", *SCALAR_FIELDS, "phone", *(f"phone{i}" for i in range(1, 4)),
               *(f"var:{n}" for n in names if n), *chosen]
    return list(dict.fromkeys(options))


def _target(col: ColumnMap) -> str:
    if col.target == "var":
        return f"var:{col.variable or col.key}"
    if col.target == "phone" and col.slot is not None:
        return f"phone{col.slot}"
    return col.target


def preview(campaign: Campaign, mapping: Mapping, table: CsvTable) -> list[dict[str, Any]]:
    """The first rows as the dialer would see them: name, phones, variables, first words."""
    out = []
    for row in table.rows[:PREVIEW_ROWS]:
        get = row.values.get
        variables = {key: get(header, "") for header, key in mapping.variables()}
        name = get(mapping.scalar("name") or "", "").strip()
        first = get(mapping.scalar("first_name") or "", "").strip()
        last = get(mapping.scalar("last_name") or "", "").strip()
        name = name or " ".join(p for p in (first, last) if p)
        scalars = {k: v for k, v in (("name", name), ("first_name", first),
                                     ("last_name", last)) if v}
        phones = [normalize_phone(get(h, ""), campaign.default_country).e164 or
                  f"invalid: {get(h, '')[:40]}" for h in mapping.phone_headers() if get(h)]
        out.append({"row": row.number, "name": name, "phones": phones,
                    "variables": variables,
                    "opening": opening_line(campaign, {**scalars, **variables})})
    return out


async def import_form(request: web.Request) -> web.Response:
    try:
        campaign = await campaign_config(ctx(request), request.match_info["name"])
    except ApiError as exc:
        return error_page(request, exc)
    return aiohttp_jinja2.render_template("import.html", request, {"campaign": campaign.name})


async def _read_form(request: web.Request, limit: int) -> tuple[dict[str, str], bytes, str]:
    fields: dict[str, str] = {}
    data, filename = b"", ""
    reader = await request.multipart()
    async for part in reader:
        if not isinstance(part, BodyPartReader):
            continue
        if part.filename is None:
            fields[part.name or ""] = (await part.read(decode=True)).decode("utf-8")[:2000]
            continue
        buf = bytearray()
        while chunk := await part.read_chunk(65536):
            buf += chunk
            if len(buf) > limit:
                raise ApiError(413, "body_too_large", f"the file is over {limit} bytes")
        data, filename = bytes(buf), part.filename
    return fields, data, filename


async def upload(request: web.Request) -> web.Response:
    c = ctx(request)
    try:
        campaign = await campaign_config(c, request.match_info["name"])
        fields, data, filename = await _read_form(request, c.settings.http.max_upload_bytes)
    except ApiError as exc:
        return error_page(request, exc)
    except (HttpProcessingError, ValueError, AssertionError, KeyError):
        # Not a form, or a malformed one (aiohttp's parser asserts on some).
        return error_page(request, ApiError(400, "invalid_multipart", "send the upload form"))
    session = current(request)
    if session is None or not csrf_ok(session, fields.get(CSRF_FIELD)):
        return error_page(request, ApiError(403, "csrf_failed", "the form expired"))
    if not data:
        return error_page(request, ApiError(422, "no_file", "choose a CSV file"))
    text, encoding = decode(data)
    table = await asyncio.to_thread(parse_text, text, encoding=encoding)
    key = request.app[UPLOADS].put(Upload(campaign.name, filename, table,
                                          c.clock.now() + _KEEP))
    return await _mapping_page(request, campaign, key, table, filename, {})


async def _mapping_page(request: web.Request, campaign: Campaign, key: str, table: CsvTable,
                        filename: str, explicit: dict[str, str],
                        error: str | None = None) -> web.Response:
    c = ctx(request)
    try:
        mapping = build_mapping(table.headers, [r.values for r in table.rows[:200]],
                                merge_explicit(campaign.import_mapping, explicit),
                                default_country=campaign.default_country)
    except MappingError as exc:
        mapping = build_mapping(table.headers, [r.values for r in table.rows[:200]],
                                campaign.import_mapping, default_country=campaign.default_country)
        error = str(exc)
    summary = await import_rows(c.store, table.rows, mapping, campaign_id=None,
                                default_country=campaign.default_country,
                                workspace=c.settings.workspace, dry_run=True,
                                now=c.clock.now()) if mapping.phone_headers() else None
    chosen = {col.header: _target(col) for col in mapping.columns}
    return aiohttp_jinja2.render_template("import_map.html", request, {
        "campaign": campaign.name, "key": key, "filename": filename,
        "file": {"rows": len(table.rows), "encoding": table.encoding,
                 "delimiter": table.delimiter},
        "columns": [(i, h, chosen.get(h, "skip"), why) for i, (h, _, why)
                    in enumerate(_table_rows(mapping, table.headers))],
        "targets": targets(campaign, table.headers, chosen.values()), "notes": list(mapping.notes),
        "preview": preview(campaign, mapping, table), "error": error,
        "summary": summary.counts() if summary else None,
        "has_phone": bool(mapping.phone_headers())})


def _table_rows(mapping: Mapping, headers: list[str]) -> list[tuple[str, str, str]]:
    known = {h: (h, f, why) for h, f, why in mapping.table()}
    return [known.get(h, (h, "skip", "default")) for h in headers]


async def commit(request: web.Request) -> web.Response:
    """The mapping form: `preview` shows the page again, `import` imports."""
    c = ctx(request)
    name = request.match_info["name"]
    form = await request.post()
    session = current(request)
    if session is None or not csrf_ok(session, str(form.get(CSRF_FIELD, ""))):
        return error_page(request, ApiError(403, "csrf_failed", "the form expired"))
    key = request.match_info["key"]
    up = request.app[UPLOADS].get(key, name, c.clock.now())
    try:
        campaign = await campaign_config(c, name)
        if up is None:
            raise ApiError(404, "upload_expired", "upload the file again")
    except ApiError as exc:
        return error_page(request, exc)
    explicit = {h: str(form.get(f"map_{i}", "skip")) for i, h in enumerate(up.table.headers)}
    if form.get("action") != "import":
        return await _mapping_page(request, campaign, key, up.table, up.filename, explicit)
    try:
        mapping = build_mapping(up.table.headers, [r.values for r in up.table.rows[:200]],
                                merge_explicit(campaign.import_mapping, explicit),
                                default_country=campaign.default_country)
    except MappingError as exc:
        return await _mapping_page(request, campaign, key, up.table, up.filename, {},
                                   str(exc))
    if not mapping.phone_headers():
        return await _mapping_page(request, campaign, key, up.table, up.filename, explicit,
                                   "map at least one column to a phone")
    campaign_id = await campaign_id_for(c, campaign, False)
    summary = await import_rows(
        c.store, up.table.rows, mapping, campaign_id=campaign_id,
        default_country=campaign.default_country, workspace=c.settings.workspace,
        source="csv", origin=f"dashboard upload {up.filename[:100]}", actor=actor(request),
        now=c.clock.now())
    request.app[UPLOADS].drop(key)
    await audit(request, "contacts.import_csv", campaign.name, **summary.counts())
    return aiohttp_jinja2.render_template("import_done.html", request, {
        "campaign": campaign.name, "filename": up.filename, "counts": summary.counts(),
        "rejects": summary.rejects(), "warnings": summary.warnings})
