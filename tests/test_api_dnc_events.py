"""DNC over the API (through DncService: normalised, audited) and the AMI event log
(query and the live SSE stream)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from api_support import api_settings, running_api

from televox_pbx.store.events import EventRow, insert_events


async def test_dnc_add_list_remove_import_export(tmp_path: Path) -> None:
    async with running_api(api_settings(tmp_path), dial=False) as api:
        added = await api.json("POST", "/dnc", 201, json={
            "numbers": ["(212) 555-0100", "+12125550100", "nope"], "reason": "asked"})
        assert added["added"] == ["+12125550100"]
        assert [i["reason"] for i in added["invalid"]] and added["invalid"][0]["item"] == 3
        again = await api.json("POST", "/dnc", 200, json={"numbers": ["212-555-0100"]})
        assert again["already_listed"] == ["+12125550100"]
        assert (await api.json("POST", "/dnc", 422, json={"numbers": ["x"]}))["error"] == \
            "invalid_number"
        imported = await api.json("POST", "/dnc/import", 201, params={"reason": "list"},
                                  data=b"phone,reason\n2125550101,\n2125550102,lawyer\n",
                                  headers={"Content-Type": "text/csv"})
        assert imported["counts"] == {"added": 2, "already_listed": 0, "invalid": 0}
        listed = await api.json("GET", "/dnc", params={"limit": "2"})
        assert listed["total"] == 3 and len(listed["entries"]) == 2
        reasons = {e["e164"]: e["reason"] for e in (await api.json("GET", "/dnc"))["entries"]}
        assert reasons == {"+12125550100": "asked", "+12125550101": "list",
                           "+12125550102": "lawyer"}
        removed = await api.json("DELETE", "/dnc/(212) 555-0101", params={"reason": "mistake"})
        assert removed == {"removed": "+12125550101"}
        assert (await api.json("DELETE", "/dnc/2125550101", 404))["error"] == "not_found"
        async with api.http.get("/api/v1/dnc/export.csv") as resp:
            assert resp.status == 200 and resp.content_type == "text/csv"
            lines = (await resp.text()).lstrip("\ufeff").splitlines()
        assert lines[0] == "e164,reason,source,added_by,added_at"
        # Formula-safe like every export: a leading + is quoted for spreadsheets.
        assert sorted(line.split(",")[0] for line in lines[1:]) == [
            "'+12125550100", "'+12125550102"]
        trail = await api.json("GET", "/dnc/audit", params={"number": "2125550101"})
        assert [(e["action"], e["actor"], e["reason"]) for e in trail["entries"]] == [
            ("remove", "ops", "mistake"), ("add", "ops", "list")]
        audit = await api.json("GET", "/audit")
        assert [e["action"] for e in reversed(audit["entries"])] == [
            "dnc.add", "dnc.import", "dnc.remove"]


def _event(n: int, name: str, call_id: str | None = None) -> EventRow:
    from datetime import UTC, datetime
    return EventRow(received_at=datetime(2026, 1, 5, 15, 0, n, tzinfo=UTC), event=name,
                    call_id=call_id, fields={"Event": name, "Channel": f"PJSIP/x-{n}"})


async def test_event_query_and_live_stream(tmp_path: Path) -> None:
    async with running_api(api_settings(tmp_path), dial=False) as api:
        await api.app.eventlog.flush()  # the simulator's login events
        await insert_events(api.store, [_event(1, "Newchannel", "abc"),
                                        _event(2, "Hangup", "abc"), _event(3, "Hangup")])
        got = await api.json("GET", "/events", params={"event": "Hangup"})
        assert [e["call_id"] for e in got["events"]] == ["abc", None]
        got = await api.json("GET", "/events", params={"call_id": "ABC", "order": "oldest"})
        assert [e["event"] for e in got["events"]] == ["Newchannel", "Hangup"]
        got = await api.json("GET", "/events", params={"filter": "Channel=PJSIP/x-3"})
        assert [e["fields"]["Channel"] for e in got["events"]] == ["PJSIP/x-3"]
        assert (await api.json("GET", "/events", 422, params={"filter": "bad key=1"}))[
            "error"] == "invalid_parameter"

        async with api.http.get("/api/v1/events/stream",
                                params={"event": "Hangup"}) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/event-stream")
            assert await resp.content.readline() == b": connected\n"
            await resp.content.readline()
            # Only what happens after connecting, filtered.
            await insert_events(api.store, [_event(4, "Newchannel", "def"),
                                            _event(5, "Hangup", "def")])
            lines = [await asyncio.wait_for(resp.content.readline(), 10) for _ in range(3)]
        assert lines[0].startswith(b"id: ") and lines[1] == b"event: ami\n"
        data = json.loads(lines[2].removeprefix(b"data: "))
        assert (data["event"], data["call_id"]) == ("Hangup", "def")
