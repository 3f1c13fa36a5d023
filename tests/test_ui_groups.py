"""The dashboard's contact groups and the SMS / IVR parts of the campaign page (issue 16),
over plain HTTP with a logged-in session: pages render, and their writes (JSON and the
multipart CSV import) reach /api/v1 with the session cookie and the CSRF header."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from api_support import api_settings, running_api
from app_support import campaign_data, write_campaign
from ui_support import browser_session

from televox_pbx.store import sms as sms_store
from televox_pbx.store.api_audit import list_audit
from televox_pbx.store.campaigns import get_campaign

IVR_FLOW = {"steps": [
    {"id": "q1", "play": [{"say": "An automated AI survey. Satisfied? 1 yes, 2 no."}],
     "gather": {"question": "satisfied", "valid": "12", "timeout_s": 3}, "hangup": True}]}


async def test_groups_pages_and_their_writes(tmp_path: Path) -> None:
    async with running_api(api_settings(tmp_path), dial=False) as api, \
            browser_session(api) as (s, csrf):
        async with s.get("/ui/groups") as resp:
            page = await resp.text()
            assert resp.status == 200 and "No groups yet." in page and 'id="group-create"' \
                in page
        async with s.post("/api/v1/groups", json={"name": "vip"},
                          headers={"X-CSRF-Token": csrf}) as resp:
            assert resp.status == 201
        async with s.post("/api/v1/groups/vip/members", json={"phone": "2125550101",
                                                              "name": "Ann"}) as resp:
            assert resp.status == 403  # a session write without the CSRF header
        async with s.post("/api/v1/groups/vip/members", json={"phone": "2125550101",
                                                              "name": "Ann"},
                          headers={"X-CSRF-Token": csrf}) as resp:
            assert resp.status == 201
        form = aiohttp.FormData()  # what the page's import form sends (data-upload)
        form.add_field("file", b"phone,name\n2125550102,Bob\n", filename="x.csv",
                       content_type="text/csv")
        async with s.post("/api/v1/groups/vip/import", data=form,
                          headers={"X-CSRF-Token": csrf}) as resp:
            assert resp.status == 201 and (await resp.json())["summary"]["added"] == 1
        async with s.get("/ui/groups") as resp:
            page = await resp.text()
            assert 'href="/ui/groups/vip"' in page and "<td>2</td>" in page
        async with s.get("/ui/groups/vip") as resp:
            page = await resp.text()
            assert resp.status == 200
            assert "+12125550101" in page and "Bob" in page and "data-upload" in page
            assert "/api/v1/groups/vip/members/%2B12125550101" in page  # the remove form
        async with s.delete("/api/v1/groups/vip/members/%2B12125550101",
                            headers={"X-CSRF-Token": csrf}) as resp:
            assert resp.status == 200
        async with s.get("/ui/groups/vip") as resp:
            assert "+12125550101" not in await resp.text()
        async with s.get("/ui/groups/nope") as resp:
            assert resp.status == 404
        entries, _ = await list_audit(api.store)
        assert {e.actor for e in entries} == {"ui:ops"} and len(entries) == 4


async def test_campaign_page_shows_sms_recipients_and_the_ivr_export(tmp_path: Path) -> None:
    settings = api_settings(tmp_path)
    write_campaign(settings, campaign_data("promo", channel="sms",
                                           sms={"message": "Hi {{name}}. Reply STOP."}))
    write_campaign(settings, campaign_data("survey", kind="ivr", ivr=IVR_FLOW))
    async with running_api(settings, dial=False) as api, browser_session(api) as (s, _):
        await api.json("POST", "/campaigns/promo/contacts", 201, json={"contacts": [
            {"phone": "+12125550101", "name": "Ann"}, {"phone": "+12125550102"}]})
        row = await get_campaign(api.store, "promo")
        assert row is not None
        ann = int((await api.store.fetchall(
            "SELECT id FROM contacts WHERE campaign_id = ? ORDER BY id", (row.id,)))[0][0])
        await sms_store.record(api.store, "+12125550101", "out", "campaign", "Hi Ann.",
                               "failed", api.app.clock.now(), campaign_id=row.id,
                               contact_id=ann, reason="no route")
        async with s.get("/ui/campaigns/promo") as resp:
            page = await resp.text()
            assert resp.status == 200 and 'id="sms-recipients"' in page
            assert "failed 1, queued 1" in page and "no route" in page
            assert "ivr/answers.csv" not in page
        async with s.get("/ui/campaigns/survey") as resp:
            page = await resp.text()
            assert resp.status == 200 and "sms-recipients" not in page
            assert 'href="/api/v1/campaigns/survey/ivr/answers.csv"' in page
