"""The dashboard's pages over plain HTTP (the browser tests drive the same in Chromium):
every page renders for a campaign with a finished call, the live progress stream moves
with the campaign, and a CSV goes through upload, mapping change, preview and import."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
from api_support import api_settings, running_api, until
from app_support import campaign_data, fake_engines, write_campaign
from ui_support import browser_session, csrf_of

from televox_pbx.voice.interfaces import ToolCall

ANSWER = "+12125550101"
BUSY = [f"+1212555020{i}" for i in range(4)]
CALLEE = "Yes, tell me more please."


async def _next_progress(resp: aiohttp.ClientResponse) -> dict[str, object]:
    """The next `progress` event of an SSE response."""
    event = ""
    async for raw in resp.content:
        line = raw.decode().rstrip("\n")
        if line.startswith("event:"):
            event = line.split(":", 1)[1].strip()
        elif line.startswith("data:") and event == "progress":
            return dict(json.loads(line.split(":", 1)[1]))
    raise AssertionError("the stream ended")


async def test_pages_render_and_progress_streams(tmp_path: Path) -> None:
    numbers = {ANSWER: {"behaviour": "answer", "ring_s": 0.2, "script": [{"say": CALLEE}]},
               **{n: {"behaviour": "busy"} for n in BUSY}}
    settings = api_settings(tmp_path, numbers)
    write_campaign(settings, campaign_data("demo", pacing={"calls_per_minute": 600,
                                                           "max_concurrent": 1}))
    engines = fake_engines([CALLEE], [["Thanks, goodbye! ",
                                      ToolCall("set_disposition", {"disposition": "interested"}),
                                      ToolCall("end_call", {"reason": "done"})]])
    async with running_api(settings, engines) as api, browser_session(api) as (s, csrf):
        await api.json("POST", "/campaigns/demo/contacts", 201, json={"contacts": [
            {"name": "Ann", "phone": ANSWER}, *[{"name": f"B{i}", "phone": n}
                                               for i, n in enumerate(BUSY)]]})
        async with s.get("/ui/progress") as stream:
            assert stream.content_type == "text/event-stream"
            first = await _next_progress(stream)
            assert first["campaigns"] == [{"name": "demo", "state": "IDLE", "total": 5,
                                           "done": 0, "percent": 0.0, "queued": 5,
                                           "in_progress": 0, "completed": 0, "failed": 0}]
            async with s.post("/api/v1/campaigns/demo/start",
                              headers={"X-CSRF-Token": csrf}) as resp:
                assert resp.status == 200
            seen = [0]
            while seen[-1] < 5:
                snap = await _next_progress(stream)
                demo = snap["campaigns"][0]  # type: ignore[index]
                seen.append(int(demo["done"]))
            assert seen == sorted(seen)  # the bar only moves forward, and it moved
            assert (demo["completed"], demo["failed"], demo["queued"]) == (1, 4, 0)

        async def finished() -> list[dict[str, object]]:
            calls = await api.json("GET", "/calls", params={"campaign": "demo"})
            return [c for c in calls["calls"] if c["status"] == "completed"]
        call_id = (await until(finished))[0]["id"]
        for path, expect in (("/ui/", "demo"), ("/ui/campaigns/demo", "Ann"),
                             ("/ui/campaigns/demo/leads?status=busy", "B1"),
                             (f"/ui/calls/{call_id}", CALLEE), ("/ui/dnc", "Call now"),
                             ("/ui/events", "AMI events"),
                             ("/ui/campaigns/demo/import", "CSV file"),
                             ("/ui/static/htmx-2.0.11.min.js", "htmx")):
            async with s.get(path) as resp:
                body = await resp.text()
                assert resp.status == 200 and expect in body, (path, resp.status)
        async with s.get(f"/ui/calls/{call_id}") as resp:
            page = await resp.text()
        assert f"/api/v1/calls/{call_id}/recording?n=0" in page and "INTERESTED" in page
        async with s.get("/ui/calls/00000000-none") as resp:
            assert resp.status == 404 and "not_found" in await resp.text()
        async with s.get("/ui/campaigns/demo/leads?status=bogus") as resp:
            assert resp.status == 422


async def test_csv_import_through_the_mapping_page(tmp_path: Path) -> None:
    settings = api_settings(tmp_path)
    data = campaign_data("demo")
    data["agent"]["opening_line"] = "Hi {{name}}, I'm Ava, an AI assistant, about {{plan}}."
    write_campaign(settings, data)
    csv = (b"Customer,Tel,Tier,Notes\nAnn Lee,(212) 555-0101,gold,x\n"
           b"Bob Roe,not a phone,silver,y\nCy Doe,212-555-0103,bronze,z\n")
    async with running_api(settings, dial=False) as api, browser_session(api) as (s, csrf):
        form = aiohttp.FormData()
        form.add_field("csrf", csrf)
        form.add_field("file", csv, filename="leads.csv", content_type="text/csv")
        async with s.post("/ui/campaigns/demo/import", data=form) as resp:
            page = await resp.text()
            assert resp.status == 200, page
        action = page.split('id="mapping-form"')[0].rsplit('action="', 1)[1].split('"')[0]
        assert action.startswith("/ui/campaigns/demo/import/")
        assert 'data-column="Tel"' in page and "Ann Lee" in page
        # Tier is guessed as a variable under its own name; map it to {{plan}} instead.
        fields = {"csrf": csrf_of(page), "map_0": "name", "map_1": "phone",
                  "map_2": "var:plan", "map_3": "skip"}
        async with s.post(action, data={**fields, "action": "preview"}) as resp:
            page = await resp.text()
        assert "Hi Ann Lee, I&#39;m Ava, an AI assistant, about gold." in page
        assert "2 added, 1 invalid" in page
        async with s.post(action, data={**fields, "action": "import"}) as resp:
            page = await resp.text()
            assert resp.status == 200
        assert 'id="added">2<' in page and 'id="invalid">1<' in page
        assert "<td>2</td><td>3</td><td>invalid</td>" in page  # row 2, on line 3
        contacts = await api.json("GET", "/campaigns/demo/contacts")
        assert {c["name"]: c["variables"] for c in contacts["contacts"]} == {
            "Ann Lee": {"PLAN": "gold"}, "Cy Doe": {"PLAN": "bronze"}}
        audit = await api.json("GET", "/audit")
        assert [(e["actor"], e["action"]) for e in audit["entries"]] == [
            ("ui:ops", "contacts.import_csv")]
        async with s.post("/ui/campaigns/demo/import", data=b"phone\n1",
                          headers={"Content-Type": "text/csv"}) as resp:
            assert resp.status == 400  # the page's form is multipart
        # The upload is gone once imported; a bad CSRF token is refused.
        async with s.post(action, data={**fields, "action": "import"}) as resp:
            assert resp.status == 404
        async with s.post(action, data={**fields, "csrf": "x"}) as resp:
            assert resp.status == 403
