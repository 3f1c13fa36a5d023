"""Contacts: add one or many (JSON), CSV upload, the CSV template, the list, one contact.

Every import goes through the same engine as the CLI (campaigns/importer.py): normalised
phones, dedupe, DNC suppression, and the summary that accounts for every row."""

from __future__ import annotations

import asyncio
import dataclasses
import io
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from televox_pbx.campaigns.csvio import decode, parse_text, write_rows
from televox_pbx.campaigns.importer import import_records, import_rows
from televox_pbx.campaigns.mapping import (
    Mapping,
    MappingError,
    build_mapping,
    merge_explicit,
    normalize_header,
    parse_map_option,
    parse_target,
)
from televox_pbx.cli.campaign_import import template_headers
from televox_pbx.config.campaign import Campaign
from televox_pbx.store.campaigns import get_campaign, upsert_campaign
from televox_pbx.store.contact_queries import (
    ContactFilter,
    ContactInfo,
    contact_attempts,
    contact_history,
    contact_phones,
    get_contact,
    list_contacts,
)
from televox_pbx.web.api_campaigns import campaign_config
from televox_pbx.web.context import ApiContext, actor, audit, ctx
from televox_pbx.web.errors import ApiError, not_found
from televox_pbx.web.routes import (
    PAGING,
    Param,
    Route,
    bool_param,
    int_param,
    json_body,
    json_response,
    match_int,
    paging,
    path_int,
    path_str,
    query_int,
    query_str,
    read_upload,
    str_param,
)

TAG = "contacts"
Scalar = str | int | float | bool | None


class ContactsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    contacts: list[dict[str, Scalar]] = Field(min_length=1, max_length=10_000)
    mapping: dict[str, str] = Field(
        default_factory=dict, description="field -> name, phone, phone1..10, timezone, "
                                          "email, first_name, last_name, var:NAME or skip")
    dry_run: bool = False


def mapping_rows(mapping: Mapping) -> list[dict[str, str]]:
    return [{"column": h, "field": f, "decided_by": why} for h, f, why in mapping.table()]


async def campaign_id_for(c: ApiContext, campaign: Campaign, dry_run: bool) -> int | None:
    row = await get_campaign(c.store, campaign.name)
    if row is not None:
        return row.id
    return None if dry_run else await upsert_campaign(c.store, campaign)


async def add_contacts(request: web.Request) -> web.Response:
    c = ctx(request)
    campaign = await campaign_config(c, request.match_info["name"])
    body = await json_body(request, ContactsBody, c.settings.http.max_body_bytes)
    campaign_id = await campaign_id_for(c, campaign, body.dry_run)
    try:
        mapping, summary = await import_records(
            c.store, campaign, campaign_id, body.contacts, source="api",
            workspace=c.settings.workspace, explicit=body.mapping, dry_run=body.dry_run,
            origin="api", actor=actor(request), now=c.clock.now())
    except MappingError as exc:
        raise ApiError(422, "invalid_mapping", str(exc)) from None
    if not body.dry_run:
        await audit(request, "contacts.add", campaign.name, **summary.counts())
    return json_response({"mapping": mapping_rows(mapping), "summary": summary.to_dict()},
                         200 if body.dry_run else 201)


async def upload_csv(request: web.Request) -> web.Response:
    c = ctx(request)
    campaign = await campaign_config(c, request.match_info["name"])
    dry_run = bool_param(request, "dry_run")
    header_rows = int_param(request, "header_rows", 0, 0, 2) or None
    delimiter = str_param(request, "delimiter", (",", ";", "\t", "|"))
    options = request.query.getall("map", [])
    data = await read_upload(request, c.settings.http.max_upload_bytes)
    text, encoding = decode(data)
    table = await asyncio.to_thread(parse_text, text, delimiter=delimiter,
                                    header_rows=header_rows, encoding=encoding)
    keys = {normalize_header(h) for h in table.headers}
    explicit: dict[str, str] = {}
    try:
        for option in options:
            header, target = parse_map_option(option)
            if normalize_header(header) not in keys:
                raise MappingError(f"map {option!r}: the file has no column {header!r}")
            explicit[header] = target
        mapping = build_mapping(table.headers, [r.values for r in table.rows[:200]],
                                merge_explicit(campaign.import_mapping, explicit),
                                default_country=campaign.default_country)
    except MappingError as exc:
        raise ApiError(422, "invalid_mapping", str(exc)) from None
    if not mapping.phone_headers():
        raise ApiError(422, "no_phone_column", {
            "message": "no phone column found; map one with ?map=HEADER=phone",
            "columns": table.headers})
    campaign_id = await campaign_id_for(c, campaign, dry_run)
    summary = await import_rows(
        c.store, table.rows, mapping, campaign_id=campaign_id,
        default_country=campaign.default_country, workspace=c.settings.workspace,
        source="csv", origin="api upload", actor=actor(request), dry_run=dry_run,
        now=c.clock.now())
    if not dry_run:
        await audit(request, "contacts.import_csv", campaign.name, **summary.counts())
    return json_response({
        "file": {"rows": len(table.rows), "encoding": table.encoding,
                 "delimiter": table.delimiter, "header_rows": table.header_rows,
                 "columns": table.headers},
        "mapping": mapping_rows(mapping), "notes": list(mapping.notes),
        "summary": summary.to_dict()}, 200 if dry_run else 201)


def mapped_headers(headers: list[str], import_mapping: dict[str, str]) -> list[str]:
    """The template's columns under the names the campaign's import_mapping reads them
    by (`Visit date: var:VISIT_DATE` makes VISIT_DATE `Visit date`, `Customer: name`
    makes NAME `Customer`), so a filled-in template imports as the campaign expects."""
    by_target: dict[str, str] = {}
    for header, target in import_mapping.items():
        try:
            field, slot, var = parse_target(target)
        except MappingError:
            continue
        key = var or (f"PHONE{slot}" if field == "phone" and slot else field.upper())
        by_target.setdefault(key, header)
    return [by_target.get(normalize_header(h), h) for h in headers]


async def csv_template(request: web.Request) -> web.Response:
    c = ctx(request)
    campaign = await campaign_config(c, request.match_info["name"])
    out = io.StringIO()
    write_rows(out, mapped_headers(template_headers(campaign), campaign.import_mapping), [])
    return web.Response(text=out.getvalue(), content_type="text/csv", headers={
        "Content-Disposition": f'attachment; filename="{campaign.name}-contacts.csv"'})


async def contacts_list(request: web.Request) -> web.Response:
    c = ctx(request)
    name = request.match_info["name"]
    row = await get_campaign(c.store, name)
    if row is None:
        raise not_found("campaign")
    limit, offset = paging(request)
    flt = ContactFilter(status=str_param(request, "status"),
                        disposition=str_param(request, "disposition"),
                        retry_pass=int_param(request, "retry_pass", 0, 0, 1000) or None,
                        q=str_param(request, "q"))
    items, total = await list_contacts(c.store, row.id, flt, limit=limit, offset=offset)
    return json_response({"total": total, "limit": limit, "offset": offset,
                          "contacts": [_contact(i) for i in items]})


def _contact(info: ContactInfo) -> dict[str, Any]:
    return dataclasses.asdict(info)


async def contact_detail(request: web.Request) -> web.Response:
    c = ctx(request)
    contact_id = match_int(request, "id")
    info = await get_contact(c.store, contact_id)
    if info is None:
        raise not_found("contact")
    return json_response({**_contact(info), "phones": await contact_phones(c.store, contact_id),
                          "attempts": await contact_attempts(c.store, contact_id),
                          "history": await contact_history(c.store, contact_id)})


_NAME = path_str("name", "campaign name")
_SUMMARY = {"type": "object", "required": ["summary", "mapping"]}
_CSV_PARAMS = (
    Param("dry_run", "query", {"type": "boolean"}, "plan only; store nothing"),
    Param("map", "query", {"type": "array", "items": {"type": "string"}},
          "HEADER=FIELD, repeatable"),
    query_int("header_rows", 0, 0, 2, "0: detect"),
    query_str("delimiter", "default: sniffed", (",", ";", "\t", "|")),
)

ROUTES: list[Route] = [
    Route("POST", "/campaigns/{name}/contacts", add_contacts,
          "Add one or many contacts (JSON), with the import summary", TAG, params=(_NAME,),
          body=ContactsBody, ok=201, ok_schema=_SUMMARY, errors=(422,)),
    Route("POST", "/campaigns/{name}/contacts/csv", upload_csv,
          "Upload a CSV of contacts (raw text/csv or a multipart file), with the summary",
          TAG, params=(_NAME, *_CSV_PARAMS), body_types=("text/csv", "multipart/form-data"),
          ok=201, ok_schema=_SUMMARY, errors=(422,)),
    Route("GET", "/campaigns/{name}/contacts", contacts_list,
          "Contacts of a campaign, filtered and paged", TAG,
          params=(_NAME, query_str("status"), query_str("disposition"),
                  query_int("retry_pass", 0, 0, 1000, "0: any"),
                  query_str("q", "name, email or phone contains"), *PAGING),
          ok_schema={"type": "object", "required": ["total", "contacts"]}),
    Route("GET", "/campaigns/{name}/template.csv", csv_template,
          "A CSV template with the columns the campaign's variables need", TAG,
          params=(_NAME,), ok_type="text/csv", ok_schema={"type": "string"}, errors=(422,)),
    Route("GET", "/contacts/{id}", contact_detail, "One contact with every attempt", TAG,
          params=(path_int("id", "contact id"),),
          ok_schema={"type": "object", "required": ["id", "attempts", "phones"]}),
]
