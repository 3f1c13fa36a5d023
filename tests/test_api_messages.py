"""SMS through the running daemon (issue 16): POST /api/v1/messages through the gate, and
an SMS campaign plus an inbound STOP over the embedded simulator's AMI."""

from __future__ import annotations

from pathlib import Path

from api_support import api_settings, running_api, until
from app_support import campaign_data, write_campaign

from televox_pbx.campaigns.controls import Action, apply
from televox_pbx.config.campaign import Campaign
from televox_pbx.store.dnc import is_on_dnc

ANN = "+12125550101"
BOB = "+12125550102"


async def test_post_message_goes_through_the_gate(tmp_path: Path) -> None:
    settings = api_settings(tmp_path)
    write_campaign(settings, campaign_data("crm"))
    async with running_api(settings, dial=False) as api:
        sent = await api.json("POST", "/messages", 201, json={
            "to": "(212) 555-0101", "campaign": "crm", "text": "Your order has shipped."})
        assert sent["status"] == "sent"
        [msg] = api.app.sim.messages
        assert (msg.to, msg.sender, msg.body) == (ANN, "+15550100000",
                                                  "Your order has shipped.")
        await api.store.execute("INSERT INTO dnc(e164) VALUES (?)", (BOB,))
        refused = await api.json("POST", "/messages", 409, json={
            "to": BOB, "campaign": "crm", "text": "hello"})
        assert refused["error"] == "message_refused" and refused["detail"]["code"] == "dnc"
        long = await api.json("POST", "/messages", 422, json={
            "to": ANN, "campaign": "crm", "text": "x" * 161})
        assert long["detail"]["code"] == "too_long"
        assert len(api.app.sim.messages) == 1


async def test_sms_campaign_and_an_inbound_stop_in_the_daemon(tmp_path: Path) -> None:
    settings = api_settings(tmp_path)
    data = campaign_data("promo", channel="sms",
                         sms={"message": "Hi {{name}}, 20% off this week. Reply STOP to opt "
                                         "out."})
    write_campaign(settings, data)
    async with running_api(settings) as api:
        await api.json("POST", "/campaigns/promo/contacts", 201, json={
            "contacts": [{"phone": ANN, "name": "Ann"}]})
        await apply(api.store, "promo", Action.START, api.app.clock.now(),
                    campaign=Campaign.model_validate(data))

        async def texted() -> bool:
            return bool(api.app.sim.messages)
        await until(texted)
        assert api.app.sim.messages[0].body == "Hi Ann, 20% off this week. Reply STOP to " \
                                               "opt out."
        api.app.sim.deliver_message(ANN, "+15550100000", "STOP")

        async def listed() -> bool:
            return await is_on_dnc(api.store, ANN)
        await until(listed)

        async def confirmed() -> bool:
            return len(api.app.sim.messages) == 2
        await until(confirmed)
        assert api.app.sim.messages[1].body.startswith("You are unsubscribed")
