"""AMI event log: masking, batching to the store, JSONL rotation, retention, CLI tail."""

from __future__ import annotations

import asyncio
import io
import json
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
from sim_harness import fake_speech, harness

from televox_pbx.ami.codec import AmiMessage
from televox_pbx.ami.eventlog import EventLog, RotatingJsonl, event_call_id, masked_fields
from televox_pbx.cli import events as events_cli
from televox_pbx.cli import main
from televox_pbx.clock import FakeClock, SystemClock
from televox_pbx.config.settings import EventLogSettings
from televox_pbx.sim import Callee, Scenario
from televox_pbx.store import Store
from televox_pbx.store.events import query_events

UUID = "0d7b5c1e-2f3a-4b5c-9d6e-7f8091a2b3c4"


def msg(*pairs: tuple[str, str]) -> AmiMessage:
    return AmiMessage(tuple(pairs))


def test_masking() -> None:
    m = msg(("Event", "Newchannel"), ("CallerIDNum", "+15550198000"), ("Exten", "s"),
            ("ConnectedLineNum", "<unknown>"), ("Secret", "hunter2"), ("Uniqueid", UUID),
            ("Variable", "A=1"), ("Variable", "B=2"))
    out = masked_fields(m, ["CallerIDNum", "ConnectedLineNum", "Exten"])
    assert out["CallerIDNum"] == "+1555***00"
    assert out["Exten"] == "s" and out["ConnectedLineNum"] == "<unknown>"
    assert out["Secret"] == "***"
    assert out["Variable"] == ["A=1", "B=2"]
    assert out["Uniqueid"] == UUID
    dial = masked_fields(msg(("Event", "DialBegin"), ("DestCallerIDNum", "15550000"),
                             ("DialString", "15550001@trunk")), ["CallerIDNum"])
    assert dial["DestCallerIDNum"] == "1555***00" and dial["DialString"] == "1555***01@trunk"
    short = masked_fields(msg(("Event", "X"), ("Exten", "101")), ["Exten"])
    assert short["Exten"] == "***"
    var = masked_fields(msg(("Event", "VarSet"), ("Variable", "TELEVOX_VAR_FIRST_NAME"),
                            ("Value", "Ann 42")), [])
    assert var["Value"] == "***"


def test_inbound_caller_is_masked_whatever_mask_fields_says() -> None:
    # asterisk/extensions.conf: UserEvent(TelevoxInbound,CallId: ...,CallerID: ${CALLERID(num)})
    inbound = msg(("Event", "UserEvent"), ("Channel", "PJSIP/televox-trunk-00000007"),
                  ("CallerIDNum", "2125550199"), ("UserEvent", "TelevoxInbound"),
                  ("CallId", UUID), ("CallerID", "2125550199"))
    for mask in (EventLogSettings().mask_fields, []):
        out = masked_fields(inbound, mask)
        assert out["CallerID"] == "2125***99", mask
        assert out["CallId"] == UUID and out["UserEvent"] == "TelevoxInbound"
    anonymous = msg(("Event", "UserEvent"), ("UserEvent", "TelevoxInbound"),
                    ("CallerID", "anonymous"))
    assert masked_fields(anonymous, [])["CallerID"] == "anonymous"  # no number in it


async def test_the_event_log_never_stores_the_inbound_caller(tmp_path: Path) -> None:
    clock = FakeClock()
    store = await Store.open(tmp_path / "t.db")
    elog = EventLog(store, EventLogSettings(jsonl_path=tmp_path / "ev.jsonl"), clock)
    elog.record(msg(("Event", "UserEvent"), ("UserEvent", "TelevoxInbound"), ("CallId", UUID),
                    ("CallerID", "+12125550199")))
    await elog.flush()
    await store.close()
    assert "2125550199" not in (tmp_path / "ev.jsonl").read_text(encoding="utf-8")
    with sqlite3.connect(tmp_path / "t.db") as conn:
        stored = " ".join(r[0] for r in conn.execute("SELECT fields_json FROM ami_events"))
    assert "+1212***99" in stored and "2125550199" not in stored


def test_event_call_id() -> None:
    assert event_call_id(msg(("Event", "Hangup"), ("Uniqueid", UUID.upper()))) == UUID
    assert event_call_id(msg(("Event", "Hangup"), ("Uniqueid", "1795352548.1"),
                             ("Linkedid", UUID))) == UUID
    assert event_call_id(msg(("Event", "OriginateResponse"), ("Uniqueid", "<unknown>"),
                             ("ActionID", UUID))) == UUID
    assert event_call_id(msg(("Event", "VarSet"), ("Uniqueid", "17.1"),
                             ("Variable", "TELEVOX_CALL_ID"), ("Value", UUID))) == UUID
    assert event_call_id(msg(("Event", "FullyBooted"))) is None


@pytest.mark.both_backends
async def test_batched_store_and_jsonl(tmp_path: Path, store_url: str) -> None:
    store = await Store.open(store_url)
    settings = EventLogSettings(jsonl_path=tmp_path / "ami.jsonl")
    elog = EventLog(store, settings, FakeClock(), max_batch=500)
    for i in range(1200):
        elog.record(msg(("Event", "Newstate"), ("Uniqueid", UUID), ("Seq", str(i))))
    elog.record(msg(("Response", "Success")))  # responses are not events: skipped
    assert elog.backlog == 1200
    assert await elog.flush() == 1200
    row = await store.fetchone("SELECT COUNT(*), MIN(call_id) FROM ami_events")
    assert row is not None and (row[0], row[1]) == (1200, UUID)
    lines = (tmp_path / "ami.jsonl").read_text().splitlines()
    assert len(lines) == 1200
    assert json.loads(lines[-1])["fields"]["Seq"] == "1199"
    await store.close()


def test_rotation_keeps_n_backups(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    rot = RotatingJsonl(path, max_bytes=1000, backups=2)
    for i in range(50):
        rot.write([json.dumps({"i": i, "pad": "x" * 80})])
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["e.jsonl", "e.jsonl.1", "e.jsonl.2"]
    assert all(p.stat().st_size <= 1000 for p in tmp_path.iterdir())
    last = json.loads(path.read_text().splitlines()[-1])
    assert last["i"] == 49


@pytest.mark.both_backends
async def test_retention_prunes_old_rows(tmp_path: Path, store_url: str) -> None:
    store = await Store.open(store_url)
    clock = FakeClock()
    elog = EventLog(store, EventLogSettings(jsonl_path=tmp_path / "e.jsonl", retention_days=2),
                    clock)
    elog.record(msg(("Event", "Old")))
    await elog.flush()
    await clock.advance(timedelta(days=3).total_seconds())
    elog.record(msg(("Event", "New")))
    await elog.flush()
    assert await elog.prune() >= 1
    rows = await query_events(store)
    assert [r.event for r in rows] == ["New"]
    await store.close()


async def test_run_flushes_on_cancel(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "t.db")
    elog = EventLog(store, EventLogSettings(jsonl_path=tmp_path / "e.jsonl"), FakeClock(),
                    jsonl=False)
    task = asyncio.create_task(elog.run())
    await asyncio.sleep(0.01)
    elog.record(msg(("Event", "Last")))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [r.event for r in await query_events(store)] == ["Last"]
    await store.close()


async def _record_a_real_call(tmp_path: Path) -> tuple[Path, str]:
    db = tmp_path / "events.db"
    store = await Store.open(db)
    elog = EventLog(store, EventLogSettings(jsonl_path=tmp_path / "e.jsonl"), SystemClock())
    scenario = Scenario(numbers={"15550002": Callee(behaviour="busy")})
    async with harness(scenario, speech=fake_speech) as h:
        h.client.subscribe(elog.record)
        call_id = await h.originate("15550002")
        await h.wait_final(call_id)
    await elog.flush()
    await store.close()
    return db, call_id


async def test_cli_tail_shows_the_call(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db, call_id = await _record_a_real_call(tmp_path)
    # main() runs its own event loop: call it from a worker thread.
    code = await asyncio.to_thread(main, ["events", "tail", "--db", str(db)])
    assert code == 0
    out = capsys.readouterr().out
    assert "OriginateResponse" in out and "Hangup" in out
    assert "Cause=17" in out and "TechCause=486" in out
    assert f"call={call_id}" in out
    assert "15550002" not in out  # numbers are masked in the log

    await asyncio.to_thread(main, ["events", "tail", "--db", str(db), "--json",
                                   "--filter", "Event=Hangup", "--call", call_id])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["event"] for r in rows] == ["Hangup"]
    assert rows[0]["fields"]["Cause-txt"] == "User busy"

    await asyncio.to_thread(main, ["events", "tail", "--db", str(db), "--limit", "2",
                                   "--since", "10m"])
    assert len(capsys.readouterr().out.splitlines()) == 2

    assert await asyncio.to_thread(main, ["events", "tail", "--db", str(db),
                                          "--since", "yesterday"]) == 2


async def test_tail_follow_prints_new_events(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events_cli, "FOLLOW_POLL_S", 0.01)
    store = await Store.open(tmp_path / "t.db")
    elog = EventLog(store, EventLogSettings(jsonl_path=tmp_path / "e.jsonl"), FakeClock(),
                    jsonl=False)
    elog.record(msg(("Event", "Before")))
    await elog.flush()
    out = io.StringIO()
    task = asyncio.create_task(events_cli.tail(
        store, out=out, filters={}, since=None, call_id=None, as_json=False, limit=10,
        follow=True))
    await asyncio.sleep(0.05)
    elog.record(msg(("Event", "After"), ("Cause", "16")))
    await elog.flush()
    for _ in range(100):
        if "After" in out.getvalue():
            break
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    lines = out.getvalue().splitlines()
    assert [line.split()[1] for line in lines] == ["Before", "After"]
    assert "Cause=16" in lines[1]
    await store.close()
