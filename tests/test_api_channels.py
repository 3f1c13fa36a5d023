"""SMS recipients and threads, IVR answers as CSV, over the API (issue 16)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from api_support import api_settings, running_api
from app_support import campaign_data, write_campaign

from televox_pbx.campaigns.csvio import write_csv
from televox_pbx.config.campaign import Campaign
from televox_pbx.store import sms as sms_store
from televox_pbx.store.campaigns import get_campaign, upsert_campaign
from televox_pbx.store.ivr import export_rows

CALL_ID = "00000000-0000-4000-8000-000000000001"
IVR_FLOW = {"steps": [
    {"id": "q1", "play": [{"say": "An automated AI survey. Satisfied? 1 yes, 2 no."}],
     "gather": {"question": "satisfied", "valid": "12", "timeout_s": 3}, "next": "q2"},
    {"id": "q2", "play": [{"say": "Would you recommend us? 1 yes, 2 no."}],
     "gather": {"question": "recommend", "valid": "12", "timeout_s": 3}, "hangup": True}]}


async def test_sms_recipients_and_a_thread(tmp_path: Path) -> None:
    settings = api_settings(tmp_path)
    write_campaign(settings, campaign_data("promo", channel="sms",
                                           sms={"message": "Hi {{name}}. Reply STOP."}))
    async with running_api(settings, dial=False) as api:
        await api.json("POST", "/campaigns/promo/contacts", 201, json={"contacts": [
            {"phone": "+12125550101", "name": "Ann"}, {"phone": "+12125550102"},
            {"phone": "+12125550103"}]})
        row = await get_campaign(api.store, "promo")
        assert row is not None
        ann, bob, cy = [int(r[0]) for r in await api.store.fetchall(
            "SELECT id FROM contacts WHERE campaign_id = ? ORDER BY id", (row.id,))]
        now = api.app.clock.now()
        await sms_store.record(api.store, "+12125550101", "out", "campaign", "Hi Ann.",
                               "sent", now, campaign_id=row.id, contact_id=ann)
        await sms_store.record(api.store, "+12125550101", "in", "reply", "When?",
                               "received", now, campaign_id=row.id, contact_id=ann)
        await sms_store.record(api.store, "+12125550102", "out", "campaign", "Hi.",
                               "failed", now, campaign_id=row.id, contact_id=bob,
                               reason="no route")
        out = await api.json("GET", "/campaigns/promo/sms/recipients")
        assert out["counts"] == {"queued": 1, "sent": 0, "failed": 1, "replied": 1}
        assert [(r["contact_id"], r["status"], r["reason"]) for r in out["recipients"]] == [
            (ann, "replied", None), (bob, "failed", "no route"), (cy, "queued", None)]
        failed = await api.json("GET", "/campaigns/promo/sms/recipients",
                                params={"status": "failed"})
        assert failed["total"] == 1 and failed["recipients"][0]["phone"] == "+12125550102"
        await api.json("GET", "/campaigns/promo/sms/recipients", 422,
                       params={"status": "lost"})
        await api.json("GET", "/campaigns/nope/sms/recipients", 404)
        thread = await api.json("GET", f"/campaigns/promo/sms/recipients/{ann}")
        assert [(t["direction"], t["body"]) for t in thread["texts"]] == [
            ("out", "Hi Ann."), ("in", "When?")]


async def test_ivr_answers_csv_matches_the_cli_export(tmp_path: Path) -> None:
    settings = api_settings(tmp_path)
    data = campaign_data("survey", kind="ivr", ivr=IVR_FLOW)
    write_campaign(settings, data)
    write_campaign(settings, campaign_data("plain"))
    async with running_api(settings, dial=False) as api:
        await api.json("GET", "/campaigns/survey/ivr/answers.csv", 404)  # not stored yet
        campaign = Campaign.model_validate(data)
        cid = await upsert_campaign(api.store, campaign)
        await api.store.execute("INSERT INTO call_attempts(id, campaign_id, phone, status)"
                                " VALUES (?, ?, '+12125550101', 'completed')", (CALL_ID, cid))
        await api.store.execute("INSERT INTO ivr_answers(attempt_id, campaign_id, question,"
                                " digit, at) VALUES (?, ?, 'recommend', '1', 'x')",
                                (CALL_ID, cid))
        async with api.http.get("/api/v1/campaigns/survey/ivr/answers.csv") as resp:
            assert resp.status == 200 and resp.content_type == "text/csv"
            assert "survey-answers.csv" in resp.headers["Content-Disposition"]
            text = await resp.text()
        rows = list(csv.DictReader(io.StringIO(text)))
        assert [(r["attempt_id"], r["satisfied"], r["recommend"]) for r in rows] == [
            (CALL_ID, "", "1")]
        assert campaign.ivr is not None
        cli = tmp_path / "cli.csv"  # what `televox ivr export` writes
        write_csv(cli, *await export_rows(api.store, cid, campaign.ivr.questions()))
        assert cli.read_bytes().decode("utf-8-sig") == text
        await api.json("GET", "/campaigns/plain/ivr/answers.csv", 422)
