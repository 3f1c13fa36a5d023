"""Contact groups over the API (issue 16): list, create, delete, members (paged), add or
remove one member, CSV import. Every write goes through the store and campaign functions
the CLI (`televox groups ...`) uses, and is audited."""

from __future__ import annotations

import asyncio

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from televox_pbx.campaigns.csvio import decode, parse_text
from televox_pbx.campaigns.groups import (
    GroupError,
    add_member,
    import_into_group,
    remove_member,
)
from televox_pbx.campaigns.mapping import (
    MappingError,
    build_mapping,
    normalize_header,
    parse_map_option,
)
from televox_pbx.store import groups as gs
from televox_pbx.web.api_contacts import mapping_rows
from televox_pbx.web.context import ApiContext, audit, ctx
from televox_pbx.web.errors import ApiError, not_found
from televox_pbx.web.routes import (
    PAGING,
    Param,
    Route,
    bool_param,
    json_body,
    json_response,
    paging,
    path_str,
    read_upload,
)

TAG = "groups"
_NAME_MAX = 200


class GroupBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=_NAME_MAX, pattern=r"\S")


class MemberBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    phone: str = Field(min_length=3, max_length=40, description="The number, any format.")
    name: str | None = Field(default=None, max_length=200)
    timezone: str | None = Field(default=None, max_length=64,
                                 description="IANA zone, e.g. America/Chicago")
    variables: dict[str, str] = Field(default_factory=dict, max_length=50,
                                      description="template variables")


def _group_name(request: web.Request) -> str:
    name = request.match_info["group"]
    if not name.strip() or len(name) > _NAME_MAX:
        raise not_found("group")
    return name


async def _existing(c: ApiContext, name: str) -> gs.GroupInfo:
    for g in await gs.list_groups(c.store):
        if g.name == name:
            return g
    raise not_found("group")


def _info(g: gs.GroupInfo) -> dict[str, object]:
    return {"id": g.id, "name": g.name, "members": g.members}


async def groups_list(request: web.Request) -> web.Response:
    groups = await gs.list_groups(ctx(request).store)
    return json_response({"groups": [_info(g) for g in groups]})


async def group_create(request: web.Request) -> web.Response:
    c = ctx(request)
    body = await json_body(request, GroupBody, c.settings.http.max_body_bytes)
    if await gs.group_id(c.store, body.name) is not None:
        raise ApiError(409, "exists", "a group of that name exists")
    await gs.ensure_group(c.store, body.name)
    await audit(request, "group.create", body.name)
    return json_response(_info(await _existing(c, body.name)), 201)


async def group_delete(request: web.Request) -> web.Response:
    c = ctx(request)
    name = _group_name(request)
    if not await gs.delete_group(c.store, name):
        raise not_found("group")
    await audit(request, "group.delete", name)
    return json_response({"deleted": name})


async def group_members(request: web.Request) -> web.Response:
    c = ctx(request)
    group = await _existing(c, _group_name(request))
    limit, offset = paging(request)
    rows = await gs.member_numbers(c.store, group.id, limit, offset)
    return json_response({"group": group.name, "total": group.members, "limit": limit,
                          "offset": offset,
                          "members": [{"phone": p, "name": n} for p, n in rows]})


async def member_add(request: web.Request) -> web.Response:
    c = ctx(request)
    name = _group_name(request)
    body = await json_body(request, MemberBody, c.settings.http.max_body_bytes)
    record: dict[str, object] = {"phone": body.phone}
    explicit = {"phone": "phone"}
    if body.name:
        record["name"], explicit["name"] = body.name, "name"
    if body.timezone:
        record["timezone"], explicit["timezone"] = body.timezone, "timezone"
    for key, value in body.variables.items():
        if not key.strip() or key.strip() in explicit:
            raise ApiError(422, "invalid_variable", f"variable name {key[:40]!r}")
        record[key.strip()], explicit[key.strip()] = value, f"var:{key.strip()}"
    try:
        summary = await add_member(c.store, name, record,
                                   default_country=c.settings.default_country,
                                   workspace=c.settings.workspace, explicit=explicit,
                                   now=c.clock.now())
    except (GroupError, MappingError) as exc:
        raise ApiError(422, "invalid_member", str(exc)) from None
    if not summary.added:
        issue = summary.rejects()[0] if summary.rejects() else None
        # Invalid input is 422; a number already in the group or on the DNC list, 409.
        raise ApiError(422 if summary.invalid else 409, "not_added",
                       {"reason": issue.reason if issue else "unknown",
                        "summary": summary.to_dict()})
    await audit(request, "group.member_add", name, **summary.counts())
    return json_response({"group": name, "added": summary.added,
                          "summary": summary.to_dict()}, 201)


async def member_remove(request: web.Request) -> web.Response:
    c = ctx(request)
    name = _group_name(request)
    await _existing(c, name)
    try:
        removed = await remove_member(c.store, name, request.match_info["phone"],
                                      c.settings.default_country)
    except GroupError as exc:
        raise ApiError(422, "invalid_number", str(exc)) from None
    if not removed:
        raise not_found("member with that number")
    await audit(request, "group.member_remove", name)
    return json_response({"group": name, "removed": True})


async def group_import(request: web.Request) -> web.Response:
    """The campaign CSV import's engine and summary, writing into the group (created if
    new); new members join the started campaigns that target it."""
    c = ctx(request)
    name = _group_name(request)
    dry_run = bool_param(request, "dry_run")
    data = await read_upload(request, c.settings.http.max_upload_bytes)
    text, encoding = decode(data)
    table = await asyncio.to_thread(parse_text, text, encoding=encoding)
    keys = {normalize_header(h) for h in table.headers}
    explicit: dict[str, str] = {}
    try:
        for option in request.query.getall("map", []):
            header, target = parse_map_option(option)
            if normalize_header(header) not in keys:
                raise MappingError(f"map {option!r}: the file has no column {header!r}")
            explicit[header] = target
        mapping = build_mapping(table.headers, [r.values for r in table.rows[:200]],
                                explicit, default_country=c.settings.default_country)
    except MappingError as exc:
        raise ApiError(422, "invalid_mapping", str(exc)) from None
    if not mapping.phone_headers():
        raise ApiError(422, "no_phone_column", {
            "message": "no phone column found; map one with ?map=HEADER=phone",
            "columns": table.headers})
    summary = await import_into_group(c.store, name, table.rows, mapping,
                                      default_country=c.settings.default_country,
                                      workspace=c.settings.workspace, dry_run=dry_run,
                                      now=c.clock.now())
    if not dry_run:
        await audit(request, "group.import_csv", name, **summary.counts())
    return json_response({
        "file": {"rows": len(table.rows), "encoding": table.encoding,
                 "delimiter": table.delimiter, "header_rows": table.header_rows,
                 "columns": table.headers},
        "mapping": mapping_rows(mapping), "notes": list(mapping.notes),
        "summary": summary.to_dict()}, 200 if dry_run else 201)


_GROUP = path_str("group", "group name")
_SUMMARY = {"type": "object", "required": ["summary", "mapping"]}

ROUTES: list[Route] = [
    Route("GET", "/groups", groups_list, "Every contact group with its member count", TAG,
          ok_schema={"type": "object", "required": ["groups"]}),
    Route("POST", "/groups", group_create, "Create an empty group", TAG, body=GroupBody, ok=201,
          ok_schema={"type": "object", "required": ["name"]}, errors=(409,)),
    Route("DELETE", "/groups/{group}", group_delete,
          "Delete a group and its members (campaign contacts made from them stay)", TAG,
          params=(_GROUP,)),
    Route("GET", "/groups/{group}/members", group_members, "A group's members, paged", TAG,
          params=(_GROUP, *PAGING),
          ok_schema={"type": "object", "required": ["total", "members"]}),
    Route("POST", "/groups/{group}/members", member_add,
          "Add one member (the group is created if new); joins the started campaigns that "
          "target it",
          TAG, params=(_GROUP,), body=MemberBody, ok=201, errors=(409, 422)),
    Route("DELETE", "/groups/{group}/members/{phone}", member_remove,
          "Remove the member with this number from the group (not from campaigns)", TAG,
          params=(_GROUP, path_str("phone", "the number, any format")), errors=(422,)),
    Route("POST", "/groups/{group}/import", group_import,
          "Import a CSV into a group (raw text/csv or a multipart file), with the summary",
          TAG, params=(_GROUP,
                       Param("dry_run", "query", {"type": "boolean"}, "plan only"),
                       Param("map", "query", {"type": "array", "items": {"type": "string"}},
                             "HEADER=FIELD, repeatable")),
          body_types=("text/csv", "multipart/form-data"), ok=201, ok_schema=_SUMMARY,
          errors=(422,)),
]
