"""Campaigns over the API: list, detail with KPIs, the operator actions and their audit
rows, the plan, the CSV template, and a reload that an invalid file cannot half-apply."""

from __future__ import annotations

from pathlib import Path

from api_support import api_settings, running_api, until
from app_support import campaign_data, write_campaign

from televox_pbx.store.campaigns import get_campaign

PHONE = "+12125550101"


async def test_list_detail_actions_and_audit(tmp_path: Path) -> None:
    settings = api_settings(tmp_path, {PHONE: {"behaviour": "busy"}})
    write_campaign(settings, campaign_data("demo"))
    async with running_api(settings) as api:
        listed = await api.json("GET", "/campaigns")
        assert [(c["name"], c["state"], c["in_store"]) for c in listed["campaigns"]] == [
            ("demo", "IDLE", False)]
        await api.json("POST", "/campaigns/demo/contacts", 201,
                       json={"contacts": [{"name": "Ann", "phone": PHONE}]})
        # Pause needs a running campaign: 409 with the control's reason.
        refused = await api.json("POST", "/campaigns/demo/pause", 409)
        assert refused["error"] == "invalid_transition" and "IDLE" in refused["detail"]
        started = await api.json("POST", "/campaigns/demo/start")
        assert started["state"] == "RUNNING"

        async def completed() -> bool:
            d = await api.json("GET", "/campaigns/demo")
            return bool(d["state"] == "COMPLETED")
        await until(completed)
        detail = await api.json("GET", "/campaigns/demo")
        assert detail["contacts"] == {"total": 1, "done": 1, "by_status": {"busy": 1}}
        assert detail["kpis"]["calls"] == 1 and detail["kpis"]["reached"] == 0
        assert detail["config"]["name"] == "demo"
        assert (await api.json("POST", "/campaigns/demo/resume", 409))["error"] == \
            "invalid_transition"
        restarted = await api.json("POST", "/campaigns/demo/restart")
        assert restarted["state"] == "RUNNING"
        await until(completed)

        audit = await api.json("GET", "/audit")
        actions = [(e["actor"], e["action"], e["target"]) for e in reversed(audit["entries"])]
        assert actions == [("ops", "contacts.add", "demo"), ("ops", "campaign.start", "demo"),
                           ("ops", "campaign.restart", "demo")]
        assert audit["entries"][-2]["detail"] == {"from_state": "IDLE", "to_state": "RUNNING"}
        assert (await api.json("GET", "/campaigns/nope", 404))["error"] == "not_found"
        assert (await api.json("POST", "/campaigns/nope/start", 404))["error"] == "not_found"


async def test_schedule_plan_and_template(tmp_path: Path) -> None:
    settings = api_settings(tmp_path)
    data = campaign_data("demo")
    data["agent"]["opening_line"] = "Hi {{name}}, I'm Ava, an AI assistant, about {{plan}}."
    write_campaign(settings, data)
    async with running_api(settings, dial=False) as api:
        await api.json("POST", "/campaigns/demo/contacts", 201, json={"contacts": [
            {"name": "Ann", "phone": PHONE}, {"name": "Bob", "phone": "+12125550102"}]})
        body = await api.json("POST", "/campaigns/demo/schedule", 422)
        assert body["error"] == "schedule_needs_time"
        scheduled = await api.json("POST", "/campaigns/demo/schedule",
                                   json={"at": "2030-01-01T09:00:00+00:00"})
        assert scheduled["state"] == "SCHEDULED"
        plan = await api.json("GET", "/campaigns/demo/plan", params={"hours": "2"})
        assert plan["state"] == "SCHEDULED" and plan["start"].startswith("2030-01-01")
        assert plan["sections"]["dial"]["count"] == 2
        assert {e["name"] for e in plan["sections"]["dial"]["entries"]} == {"Ann", "Bob"}
        async with api.http.get("/api/v1/campaigns/demo/template.csv") as resp:
            assert resp.status == 200 and resp.content_type == "text/csv"
            header = (await resp.text()).lstrip("\ufeff").splitlines()[0]
        assert header.split(",") == ["NAME", "PLAN", "phone1", "phone2", "phone3", "timezone"]
        # Under the names the campaign's import_mapping reads them by.
        data["import_mapping"] = {"Customer": "name", "Plan tier": "var:PLAN",
                                  "Mobile": "phone1"}
        write_campaign(settings, data)
        async with api.http.get("/api/v1/campaigns/demo/template.csv") as resp:
            header = (await resp.text()).lstrip("\ufeff").splitlines()[0]
        assert header.split(",") == ["Customer", "Plan tier", "Mobile", "phone2", "phone3",
                                     "timezone"]


async def test_reload_with_an_invalid_file_changes_nothing(tmp_path: Path) -> None:
    settings = api_settings(tmp_path)
    write_campaign(settings, campaign_data("demo"))
    async with running_api(settings, dial=False) as api:
        await api.json("POST", "/campaigns/reload")
        row = await get_campaign(api.store, "demo")
        assert row is not None and row.config() is not None
        before = row.config_json
        # One good edit, one broken file: nothing at all may be applied.
        write_campaign(settings, campaign_data("demo", pacing={"calls_per_minute": 3,
                                                               "max_concurrent": 1}))
        bad = settings.campaigns_dir / "broken.yaml"
        bad.write_text("name: broken\ncaller_id: '+15550100000'\ntrunk: t\n"
                       "agent:\n  persona_name: Ava\n  business: Acme\n  goal: demo\n"
                       "  opening_line: Hello there\nring_timeout_s: 1\n", encoding="utf-8")
        body = await api.json("POST", "/campaigns/reload", 422)
        assert body["error"] == "invalid_campaigns"
        issues = {(Path(i["file"]).name, i["line"], i["field"]) for i in body["detail"]}
        assert ("broken.yaml", 8, "agent.opening_line") in issues
        assert ("broken.yaml", 9, "ring_timeout_s") in issues
        row = await get_campaign(api.store, "demo")
        assert row is not None and row.config_json == before
        assert await get_campaign(api.store, "broken") is None
        listed = await api.json("GET", "/campaigns")
        assert {c["name"]: c["valid"] for c in listed["campaigns"]} == {
            "broken": False, "demo": True}
        bad.unlink()
        assert (await api.json("POST", "/campaigns/reload"))["reloaded"] == ["demo"]
        row = await get_campaign(api.store, "demo")
        cfg = row.config() if row else None
        assert cfg is not None and cfg.pacing.calls_per_minute == 3
