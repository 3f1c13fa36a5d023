"""The dashboard's contact groups (issue 16): the list with member counts, one group's
members. Reads go to the store functions the API serves; every write is a form that
posts to /api/v1/groups (static/app.js), so it is authorised and audited there."""

from __future__ import annotations

import aiohttp_jinja2
from aiohttp import web

from televox_pbx.store import groups as gs
from televox_pbx.web.context import ctx
from televox_pbx.web.errors import not_found
from televox_pbx.web.routes import int_param
from televox_pbx.web.ui.pages import error_page

MEMBERS_PAGE = 100


async def groups_page(request: web.Request) -> web.Response:
    groups = await gs.list_groups(ctx(request).store)
    return aiohttp_jinja2.render_template("groups.html", request, {"groups": groups})


async def group_page(request: web.Request) -> web.Response:
    c = ctx(request)
    name = request.match_info["group"]
    group = next((g for g in await gs.list_groups(c.store) if g.name == name), None)
    if group is None:
        return error_page(request, not_found("group"))
    page = int_param(request, "page", 1, 1, 1_000_000)
    members = await gs.member_numbers(c.store, group.id, MEMBERS_PAGE,
                                      (page - 1) * MEMBERS_PAGE)
    return aiohttp_jinja2.render_template("group.html", request, {
        "group": group, "members": members, "page": page,
        "more": group.members > page * MEMBERS_PAGE})
