"""Contact groups over the API (issue 16): the CLI's store functions behind HTTP, every
write audited, CSV import with the campaign import's summary."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from api_support import api_settings, running_api

from televox_pbx.store.api_audit import list_audit

CSV = ("name,phone\nAnn,(212) 555-0101\nBob,212-555-0102\nAnn again,2125550101\n"
       "Nope,12\nDee,2125550109\n")


async def test_groups_crud_members_and_audit(tmp_path: Path) -> None:
    async with running_api(api_settings(tmp_path), dial=False) as api:
        assert (await api.json("GET", "/groups"))["groups"] == []
        made = await api.json("POST", "/groups", 201, json={"name": "vip"})
        assert (made["name"], made["members"]) == ("vip", 0)
        assert (await api.json("POST", "/groups", 409, json={"name": "vip"}))["error"] == \
            "exists"
        await api.json("POST", "/groups", 422, json={"name": ""})

        added = await api.json("POST", "/groups/vip/members", 201, json={
            "phone": "(212) 555-0101", "name": "Ann", "variables": {"plan": "gold"}})
        assert added["added"] == 1
        again = await api.json("POST", "/groups/vip/members", 409, json={
            "phone": "+12125550101"})
        assert again["error"] == "not_added"
        bad = await api.json("POST", "/groups/vip/members", 422, json={"phone": "123"})
        assert bad["error"] == "not_added"
        await api.json("POST", "/groups/vip/members", 201, json={"phone": "2125550102"})

        listed = await api.json("GET", "/groups")
        assert [(g["name"], g["members"]) for g in listed["groups"]] == [("vip", 2)]
        page = await api.json("GET", "/groups/vip/members", params={"limit": "1",
                                                                    "offset": "1"})
        assert page["total"] == 2 and page["members"] == [{"phone": "+12125550102",
                                                           "name": None}]
        await api.json("GET", "/groups/nope/members", 404)

        await api.json("DELETE", "/groups/vip/members/212-555-0101")
        await api.json("DELETE", "/groups/vip/members/212-555-0101", 404)
        await api.json("DELETE", "/groups/vip/members/12", 422)
        await api.json("DELETE", "/groups/nope/members/2125550101", 404)
        members = await api.json("GET", "/groups/vip/members")
        assert [m["phone"] for m in members["members"]] == ["+12125550102"]

        await api.json("DELETE", "/groups/vip")
        await api.json("DELETE", "/groups/vip", 404)
        assert (await api.json("GET", "/groups"))["groups"] == []

        entries, _ = await list_audit(api.store)
        assert sorted(e.action for e in entries) == sorted(
            ["group.create", "group.member_add", "group.member_add",
             "group.member_remove", "group.delete"])
        assert {e.actor for e in entries} == {"ops"}


async def test_csv_import_into_a_group(tmp_path: Path) -> None:
    async with running_api(api_settings(tmp_path), dial=False) as api:
        await api.json("POST", "/dnc", 201, json={"numbers": ["+12125550109"]})
        dry = await api.json("POST", "/groups/leads/import", params={"dry_run": "true"},
                             data=CSV.encode(), headers={"Content-Type": "text/csv"})
        assert dry["summary"]["dry_run"] and dry["summary"]["added"] == 2
        assert (await api.json("GET", "/groups"))["groups"] == []  # nothing stored

        form = aiohttp.FormData()
        form.add_field("file", CSV.encode(), filename="leads.csv", content_type="text/csv")
        done = await api.json("POST", "/groups/leads/import", 201, data=form)
        s = done["summary"]
        assert (s["rows"], s["added"], s["duplicate"], s["invalid"], s["dnc"]) == \
            (5, 2, 1, 1, 1)
        assert {m["column"]: m["field"] for m in done["mapping"]}["phone"].startswith("phone")
        members = await api.json("GET", "/groups/leads/members")
        assert [(m["phone"], m["name"]) for m in members["members"]] == [
            ("+12125550101", "Ann"), ("+12125550102", "Bob")]

        nophone = await api.json("POST", "/groups/leads/import", 422,
                                 data=b"name,city\nAnn,Paris\n",
                                 headers={"Content-Type": "text/csv"})
        assert nophone["error"] == "no_phone_column"
        entries, _ = await list_audit(api.store, action="group.import_csv")
        assert len(entries) == 1 and entries[0].target == "leads"
