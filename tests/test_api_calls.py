"""Calls over the API: POST /calls dials through the gate and the dialer's call_now (with a
first message, context and variables for that call), the detail has the transcript and a
recording served with Range, and the disposition and notes can be edited."""

from __future__ import annotations

from pathlib import Path

from api_support import api_settings, running_api, until
from app_support import campaign_data, fake_engines, write_campaign

from televox_pbx.store.dnc import is_on_dnc
from televox_pbx.voice.interfaces import ToolCall

ANSWER = "+12125550101"
BUSY = "+12125550102"
CALLEE = "Yes, tell me more please, I am listening."


async def test_place_a_call_then_review_and_correct_it(tmp_path: Path) -> None:
    settings = api_settings(tmp_path, {
        ANSWER: {"behaviour": "answer", "ring_s": 0.2, "script": [{"say": CALLEE}]}})
    write_campaign(settings, campaign_data("crm"))
    engines = fake_engines([CALLEE], [["Great, we will email you. Goodbye! ",
                                      ToolCall("set_disposition",
                                               {"disposition": "interested"}),
                                      ToolCall("end_call", {"reason": "done"})]])
    async with running_api(settings, engines) as api:
        placed = await api.json("POST", "/calls", 201, json={
            "phone": "(212) 555-0101", "campaign": "crm", "name": "Ann",
            "variables": {"plan": "gold"},
            "first_message": "Hello {{name}}, a quick question about your {{plan}} plan.",
            "context": "The customer asked for a call back about renewals."})
        call_id = placed["call_id"]
        assert placed["campaign"] == "crm" and placed["url"] == f"/api/v1/calls/{call_id}"

        async def finished() -> dict[str, object] | None:
            d = await api.json("GET", f"/calls/{call_id}")
            return d if d["status"] == "completed" and d["recordings"] else None
        call = await until(finished)
        assert call["disposition"] == "INTERESTED" and call["phone"] == ANSWER
        assert call["duration_s"] and call["duration_s"] > 0
        first = call["transcript"][0]
        assert first["speaker"] == "agent"
        # The API's first message replaced the opening line, with the AI disclosure kept.
        assert first["text"] == ("I'm an AI assistant. Hello Ann, a quick question about "
                                 "your gold plan.")
        assert call["transcript"][1] == {**call["transcript"][1], "speaker": "callee",
                                         "text": CALLEE}
        assert "The customer asked for a call back about renewals." in \
            engines.llm.calls[0][0].content  # type: ignore[attr-defined]
        assert api.app.call_extras == {}  # taken by that call, not left for another

        rec = call["recordings"][0]
        assert rec["available"]
        async with api.http.get(rec["url"]) as resp:
            whole = await resp.read()
            assert resp.status == 200 and resp.content_type == "audio/wav"
            assert resp.headers["Accept-Ranges"] == "bytes"
        assert whole[:4] == b"RIFF"
        async with api.http.get(rec["url"], headers={"Range": "bytes=4-11"}) as resp:
            assert resp.status == 206
            assert resp.headers["Content-Range"] == f"bytes 4-11/{len(whole)}"
            assert await resp.read() == whole[4:12]
        async with api.http.get(rec["url"], headers={"Range": f"bytes={len(whole)}-"}) \
                as resp:
            assert resp.status == 416

        edited = await api.json("PUT", f"/calls/{call_id}/disposition",
                                json={"disposition": "OPT_OUT"})
        assert edited == {"id": call_id, "disposition": "OPT_OUT", "previous": "INTERESTED"}
        assert await is_on_dnc(api.store, ANSWER)
        bad = await api.json("PUT", f"/calls/{call_id}/disposition",
                             json={"disposition": "MAYBE"}, expect=422)
        assert bad["error"] == "validation_error"
        note = await api.json("POST", f"/calls/{call_id}/notes", 201,
                              json={"text": "Customer sounded keen before opting out."})
        assert note["author"] == "ops"
        call = await api.json("GET", f"/calls/{call_id[:8]}")  # a unique prefix works
        assert call["disposition"] == "OPT_OUT"
        assert [n["text"] for n in call["notes"]] == [
            "Customer sounded keen before opting out."]
        contacts = await api.json("GET", "/campaigns/crm/contacts")
        assert contacts["contacts"][0]["last_disposition"] == "OPT_OUT"
        listed = await api.json("GET", "/calls", params={"campaign": "crm"})
        assert [c["id"] for c in listed["calls"]] == [call_id]
        audit = await api.json("GET", "/audit")
        assert [e["action"] for e in reversed(audit["entries"])] == [
            "call.place", "call.disposition", "call.note"]

        # A second call to the number now on the DNC list is refused by the gate.
        refused = await api.json("POST", "/calls", 409,
                                 json={"phone": ANSWER, "campaign": "crm"})
        assert refused["error"] == "call_refused" and refused["detail"]["code"] == "dnc"


async def test_refusals_say_why(tmp_path: Path) -> None:
    settings = api_settings(tmp_path, {BUSY: {"behaviour": "busy"}})
    write_campaign(settings, campaign_data("crm"))
    write_campaign(settings, campaign_data("night", calling_window={
        "start": "09:00", "end": "09:01", "weekdays": ["mon"]}))
    async with running_api(settings) as api:
        body = await api.json("POST", "/calls", 422, json={"phone": "12", "campaign": "crm"})
        assert body["error"] == "validation_error"
        body = await api.json("POST", "/calls", 422,
                              json={"phone": "not a phone", "campaign": "crm"})
        assert body["error"] == "invalid_phone"
        body = await api.json("POST", "/calls", 404, json={"phone": BUSY, "campaign": "none"})
        assert body["error"] == "not_found"
        body = await api.json("POST", "/calls", 409, json={"phone": BUSY, "campaign": "night"})
        assert body["detail"]["code"] == "window" and "calling window" in \
            body["detail"]["reason"]
        placed = await api.json("POST", "/calls", 201, json={"phone": BUSY, "campaign": "crm"})

        async def busy() -> bool:
            d = await api.json("GET", f"/calls/{placed['call_id']}")
            return bool(d["status"] == "busy")
        await until(busy)
        assert (await api.json("GET", "/calls/00000000-none", 404))["error"] == "not_found"
        assert (await api.json("GET", f"/calls/{placed['call_id']}/recording",
                               404))["error"] == "not_found"
