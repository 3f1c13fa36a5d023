"""Contacts over the API: the same import engine as the CLI (summary for every row),
CSV uploads raw or as a form, the list with filters and paging, and one contact with
every attempt."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from api_support import api_settings, running_api, until
from app_support import campaign_data, write_campaign

CSV = ("Full Name;Mobile;Plan\n"
       "Ann Lee;(212) 555-0101;gold\n"
       "Bob Roy;212-555-0102;silver\n"
       "Dup;+1 212 555 0101;gold\n"
       "Nobody;not a number;none\n"
       "Dnc;212 555 0109;x\n")


async def test_json_and_csv_imports_report_every_row(tmp_path: Path) -> None:
    settings = api_settings(tmp_path)
    write_campaign(settings, campaign_data("demo"))
    async with running_api(settings, dial=False) as api:
        await api.json("POST", "/dnc", 201, json={"numbers": ["+12125550109"]})
        dry = await api.json("POST", "/campaigns/demo/contacts/csv",
                             params={"dry_run": "true"}, data=CSV.encode(),
                             headers={"Content-Type": "text/csv"})
        assert dry["summary"]["dry_run"] and dry["summary"]["added"] == 2
        assert (await api.json("GET", "/campaigns/demo/contacts", 404))["error"] == \
            "not_found"  # a dry run stores nothing, not even the campaign row
        form = aiohttp.FormData()
        form.add_field("file", CSV.encode(), filename="leads.csv", content_type="text/csv")
        done = await api.json("POST", "/campaigns/demo/contacts/csv", 201, data=form)
        s = done["summary"]
        assert (s["rows"], s["added"], s["duplicate"], s["invalid"], s["dnc"]) == \
            (5, 2, 1, 1, 1)
        assert [r["row"] for r in s["invalid_rows"]] == [4]
        assert {m["column"]: m["field"] for m in done["mapping"]}["Mobile"].startswith("phone")
        assert done["file"]["delimiter"] == ";"

        one = await api.json("POST", "/campaigns/demo/contacts", 201, json={
            "contacts": [{"name": "Cy", "tel": "2125550103", "plan": "bronze"}],
            "mapping": {"tel": "phone"}})
        assert one["summary"]["added"] == 1
        bad = await api.json("POST", "/campaigns/demo/contacts", 422, json={
            "contacts": [{"name": "Cy", "phone": "2125550104"}], "mapping": {"name": "bogus"}})
        assert bad["error"] == "invalid_mapping"
        nophone = await api.json("POST", "/campaigns/demo/contacts/csv", 422,
                                 data=b"a,b\n1,2\n", headers={"Content-Type": "text/csv"})
        assert nophone["error"] == "no_phone_column"

        page = await api.json("GET", "/campaigns/demo/contacts",
                              params={"limit": "2", "offset": "1"})
        assert page["total"] == 3 and [c["name"] for c in page["contacts"]] == ["Bob Roy", "Cy"]
        found = await api.json("GET", "/campaigns/demo/contacts", params={"q": "555-0102"})
        assert [c["name"] for c in found["contacts"]] == ["Bob Roy"]  # by its digits
        found = await api.json("GET", "/campaigns/demo/contacts", params={"q": "2125550102"})
        assert [c["name"] for c in found["contacts"]] == ["Bob Roy"]
        assert found["contacts"][0]["current_phone"] == "+12125550102"
        assert found["contacts"][0]["variables"] == {"PLAN": "silver"}
        pending = await api.json("GET", "/campaigns/demo/contacts",
                                 params={"status": "pending"})
        assert pending["total"] == 3

        audit = await api.json("GET", "/audit", params={"action": "contacts.import_csv"})
        assert audit["total"] == 1 and audit["entries"][0]["detail"]["added"] == 2


async def test_contact_detail_lists_every_attempt(tmp_path: Path) -> None:
    phone = "+12125550101"
    settings = api_settings(tmp_path, {phone: {"behaviour": "busy"}})
    write_campaign(settings, campaign_data("demo", retry={"max_attempts_per_phone": 2,
                                                          "retry_interval_minutes": 0}))
    async with running_api(settings) as api:
        await api.json("POST", "/campaigns/demo/contacts", 201,
                       json={"contacts": [{"name": "Ann", "phone": phone}]})
        await api.json("POST", "/campaigns/demo/start")

        async def done() -> bool:
            d = await api.json("GET", "/campaigns/demo")
            return bool(d["state"] == "COMPLETED")
        await until(done)
        contacts = await api.json("GET", "/campaigns/demo/contacts")
        cid = contacts["contacts"][0]["id"]
        detail = await api.json("GET", f"/contacts/{cid}")
        assert detail["status"] == "busy" and detail["name"] == "Ann"
        assert [a["status"] for a in detail["attempts"]] == ["busy", "busy"]
        assert [a["summary"] for a in detail["attempts"]] == [None, None]  # none answered
        assert detail["phones"] == [{"position": 1, "e164": phone, "attempts": 2,
                                     "last_status": "busy"}]
        assert [h["to_status"] for h in detail["history"]] == ["pending", "busy"]
        assert (await api.json("GET", "/contacts/999999", 404))["error"] == "not_found"
