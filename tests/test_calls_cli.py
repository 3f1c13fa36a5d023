"""`televox calls list|show`: a person can read a call without SQL (issue 14 item 6)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from televox_pbx.cli import main
from televox_pbx.store import Store
from televox_pbx.store.transcripts import CallRecord, TurnRow, save_call

T0 = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)
CALL = "3f2a9c1e-0000-4000-8000-000000000001"


async def _seed(db: Path) -> None:
    store = await Store.open(db)
    try:
        await store.execute("INSERT INTO campaigns(id, name) VALUES (1, 'dental')")
        await store.execute("INSERT INTO contacts(id, campaign_id, name) VALUES (1, 1, 'Sam')")
        await store.execute(
            "INSERT INTO call_attempts(id, campaign_id, contact_id, phone, status, disposition,"
            " duration_s, created_at, answered_at, hangup_at, amd_status, amd_cause)"
            " VALUES (?, 1, 1, '+12125550100', 'completed', 'INTERESTED', 12.5, ?, ?, ?,"
            " 'HUMAN', 'SHORTGREETING-0.3')",
            (CALL, "2026-01-05T15:00:00.000Z", "2026-01-05T15:00:05.000Z",
             "2026-01-05T15:00:17.500Z"))
        await store.execute(
            "INSERT INTO call_attempts(id, phone, status, created_at)"
            " VALUES ('other', '+12125550199', 'busy', '2026-01-04T15:00:00.000Z')")
        turns = [
            TurnRow(0, "agent", "Hi Sam, I'm Ava, an AI assistant for Bright Dental.", T0),
            TurnRow(1, "callee", "Yes, Tuesday works.", T0 + timedelta(seconds=6),
                    latency=None),
            TurnRow(1, "callee", " ", T0 + timedelta(seconds=8)),  # noise: not a turn
            TurnRow(2, "agent", "Great, see you Tuesday.", T0 + timedelta(seconds=9),
                    latency={"first_audio": 812.0}),
        ]
        await save_call(store, CallRecord(CALL, turns, "INTERESTED", Path("/r/a.wav"), 12.5))
    finally:
        await store.close()


def test_calls_list_and_show(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "t.db"
    asyncio.run(_seed(db))
    assert main(["calls", "list", "--db", str(db), "--campaign", "dental"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and out[1].startswith(CALL[:8]) and "INTERESTED" in out[1]
    assert main(["calls", "show", CALL[:8], "--db", str(db)]) == 0
    text = capsys.readouterr().out
    assert "Sam, +12125550100 (outbound)" in text
    assert "AMD          HUMAN, cause SHORTGREETING-0.3" in text
    assert "turns        1" in text  # one count: callee turns that said something
    assert "/r/a.wav" in text and "first_audio 812 ms" in text
    assert "   6.0s  callee  Yes, Tuesday works." in text
    assert main(["calls", "show", CALL, "--db", str(db), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["call"]["disposition"] == "INTERESTED" and doc["call"]["turns"] == 1
    assert (doc["call"]["amd_status"], doc["call"]["amd_cause"]) == ("HUMAN",
                                                                      "SHORTGREETING-0.3")
    assert [t["speaker"] for t in doc["turns"]] == ["agent", "callee", "callee", "agent"]
    assert main(["calls", "show", "nope", "--db", str(db)]) == 1
    assert main(["calls", "list", "--db", str(db), "--status", "busy", "--json"]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [r["id"] for r in rows] == ["other"]
