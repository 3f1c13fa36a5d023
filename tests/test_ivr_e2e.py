"""An IVR campaign in the running daemon against the simulator (issue 16): the callee
keys 1 then 2 (DTMF over AudioSocket), the stored answers match, the dialer records the
call as completed, and the CSV export has both answers."""

from __future__ import annotations

from pathlib import Path

from api_support import api_settings, running_api, until
from app_support import campaign_data, write_campaign

from televox_pbx.campaigns.controls import Action, apply
from televox_pbx.config.campaign import Campaign
from televox_pbx.store.campaigns import get_campaign
from televox_pbx.store.ivr import answers, export_rows

ANN = "+12125550101"
FLOW = {"opt_out_key": "9", "steps": [
    {"id": "intro", "play": [{"say": "Hi, an AI survey. Press 9 to stop."}]},
    {"id": "q1", "play": [{"say": "Happy? 1 or 2."}],
     "gather": {"question": "happy", "valid": "12", "timeout_s": 6},
     "branch": {"1": "q2", "2": "bye"}},
    {"id": "q2", "play": [{"say": "Again? 1 or 2."}],
     "gather": {"question": "again", "valid": "12", "timeout_s": 6}},
    {"id": "bye", "play": [{"say": "Thanks, bye."}], "hangup": True}]}


async def test_ivr_call_keys_1_then_2(tmp_path: Path) -> None:
    # ScriptedTts: 20 ms a character: the intro ends near 0.7 s, q1's prompt near 1 s.
    settings = api_settings(tmp_path, {ANN: {
        "behaviour": "answer", "ring_s": 0.2,
        "script": [{"dtmf": "1", "at_s": 2.0}, {"dtmf": "2", "at_s": 4.0},
                   {"pause_s": 4.0}]}})
    data = campaign_data("survey", kind="ivr", ivr=FLOW)
    write_campaign(settings, data)
    async with running_api(settings) as api:
        await api.json("POST", "/campaigns/survey/contacts", 201, json={
            "contacts": [{"phone": ANN, "name": "Ann"}]})
        await apply(api.store, "survey", Action.START, api.app.clock.now(),
                    campaign=Campaign.model_validate(data))

        async def done() -> str | None:
            row = await api.store.fetchone("SELECT status FROM contacts")
            return str(row[0]) if row and row[0] not in ("pending", "calling", "connected") \
                else None
        assert await until(done, 30) == "completed"
        row = await api.store.fetchone("SELECT id FROM call_attempts")
        assert row is not None
        got = [(a.question, a.digit) for a in await answers(api.store, str(row[0]))]
        assert got == [("happy", "1"), ("again", "2")]
        camp = await get_campaign(api.store, "survey")
        assert camp is not None
        header, rows = await export_rows(api.store, camp.id, ["happy", "again"])
        assert header[-2:] == ["happy", "again"] and rows[0][-2:] == ["1", "2"]
