"""The agents, the numbers, a knowledge search and one person's history over the API
(issue 18 item 6): what the CLI prints, as JSON, behind the token."""

from __future__ import annotations

from pathlib import Path

from agents_web_support import FAQ, LINE, PERSON, agents_settings, fill_history
from api_support import running_api

ROUTES = ["/agents", "/agents/clinic", "/agents/clinic/knowledge?q=parking", "/numbers",
          f"/people/{PERSON}"]


async def test_agents_numbers_knowledge_and_history(tmp_path: Path) -> None:
    async with running_api(agents_settings(tmp_path), dial=False) as api:
        for path in ROUTES:
            async with api.anon.get("/api/v1" + path) as resp:
                assert resp.status == 401, path

        listed = (await api.json("GET", "/agents"))["agents"]
        assert [a["name"] for a in listed] == ["clinic", "plain"]
        clinic = await api.json("GET", "/agents/clinic")
        assert clinic == listed[0]
        assert clinic["campaigns"] == ["recall"] and listed[1]["campaigns"] == []
        assert (clinic["persona"], clinic["business"], clinic["voice"]) == (
            "Ava", "Oak Lane Dental", "piper-joe-medium")
        assert clinic["tools"] == ["find_slots"]
        assert clinic["numbers"] == [LINE]
        assert clinic["knowledge"]["chunks"] == len(FAQ)
        sources = {Path(s["path"]).name: s for s in clinic["knowledge"]["sources"]}
        assert (sources["faq.yaml"]["status"], sources["faq.yaml"]["chunks"]) == (
            "indexed", len(FAQ))
        assert sources["gone.md"]["status"] == "error" and sources["gone.md"]["error"]
        assert (await api.json("GET", "/agents/nobody", 404))["error"] == "not_found"

        found = await api.json("GET", "/agents/clinic/knowledge",
                               params={"q": "Can I park my car near you?", "limit": "2"})
        assert len(found["chunks"]) <= 2
        top = found["chunks"][0]
        assert top["rank"] == 1 and top["kind"] == "faq" and "Oak Lane" in top["body"]
        assert top["score"] > 0 and 0 < top["coverage"] <= 1
        assert found["reply"] == {"kind": "answer", "text": FAQ[0]["answer"], "note": None}
        unknown = await api.json("GET", "/agents/clinic/knowledge",
                                 params={"q": "Do you sell dental insurance plans?"})
        assert unknown["reply"]["kind"] == "decline"
        assert "don't have that information" in unknown["reply"]["text"]
        await api.json("GET", "/agents/clinic/knowledge", 422)  # no question
        await api.json("GET", "/agents/clinic/knowledge", 422, params={"q": "x", "limit": "0"})
        await api.json("GET", "/agents/nobody/knowledge", 404, params={"q": "parking"})
        plain = await api.json("GET", "/agents/plain")
        assert plain["knowledge"] == {"chunks": 0, "sources": []}
        assert (await api.json("GET", "/agents/plain/knowledge", 409, params={"q": "parking"})
                )["error"] == "no_knowledge"

        numbers = (await api.json("GET", "/numbers"))["numbers"]
        assert numbers == [
            {"number": LINE, "agent": "clinic", "agent_known": True, "caller_id": True,
             "sms": True},
            {"number": "+15550100300", "agent": None, "agent_known": False,
             "caller_id": False, "sms": False}]


async def test_person_history_across_campaigns_calls_and_texts(tmp_path: Path) -> None:
    async with running_api(agents_settings(tmp_path), dial=False) as api:
        await fill_history(api.store)
        person = await api.json("GET", "/people/(212) 555-0199")  # national: normalised
        assert person["phone"] == PERSON
        assert (person["calls"], person["texts"]) == (3, 2)
        got = [(h["type"], h["direction"], h.get("campaign"), h.get("call_id"))
               for h in person["history"]]
        assert got == [("call", "inbound", None, "in-call-0001"),
                       ("sms", "inbound", "beta", None),
                       ("sms", "outbound", "beta", None),
                       ("call", "outbound", "beta", "beta-call-0001"),
                       ("call", "outbound", "alpha", "alpha-call-0001")]
        inbound, reply, sent, beta, alpha = person["history"]
        assert (inbound["number"], inbound["agent"]) == (LINE, "clinic")
        assert (reply["body"], reply["status"]) == ("YES", "received")
        assert sent["body"].startswith("Your cleaning is due")
        assert (beta["disposition"], alpha["disposition"]) == ("INTERESTED", "CALLBACK")
        assert beta["url"] == "/api/v1/calls/beta-call-0001"
        call = await api.json("GET", beta["url"].removeprefix("/api/v1"))
        assert call["id"] == "beta-call-0001"
        assert (await api.json("GET", f"/people/{PERSON}", params={"limit": "1"})
                )["history"] == [inbound]
        nobody = await api.json("GET", "/people/+12125550111")
        assert nobody["history"] == [] and nobody["calls"] == 0
        bad = await api.json("GET", "/people/not-a-number", 422)
        assert bad["error"] == "invalid_phone" and "phone number" in bad["detail"]
