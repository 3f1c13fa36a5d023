"""`televox call`: one call now, through the daemon's gate and dial path, against the
embedded simulator. Scripted fake engines stand in for the models."""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from app_support import EVERY_DAY, campaign_data, fake_engines, write_campaign, write_settings

from televox_pbx.campaigns.importer import import_records
from televox_pbx.cli import call as call_cli
from televox_pbx.cli import main
from televox_pbx.clock import SystemClock
from televox_pbx.config.campaign import Campaign
from televox_pbx.config.settings import Settings
from televox_pbx.store import Store
from televox_pbx.store.campaigns import upsert_campaign
from televox_pbx.store.dnc import add_numbers, is_on_dnc
from televox_pbx.voice.interfaces import ToolCall

PHONE = "+12125550101"
# at_s: the line is said after AMD (ad-hoc calls run it), not swallowed by it.
CALLEE = {"behaviour": "answer", "ring_s": 0.2, "amd_delay_s": 0.5,
          "script": [{"say": "Yes, that sounds good, tell me a bit more about it please.",
                      "at_s": 0.3}]}
REPLY = [["Great, I will send you the details. Goodbye! ",
          ToolCall("set_disposition", {"disposition": "interested"}),
          ToolCall("end_call", {"reason": "done"})]]


class ShiftedClock(SystemClock):
    """Real time, but the wall clock starts at `start`: the calling window's verdict
    does not depend on when the test runs."""

    def __init__(self, start: datetime) -> None:
        self._offset = start - datetime.now(UTC)

    def now(self) -> datetime:
        return datetime.now(UTC) + self._offset


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    s = write_settings(tmp_path, {PHONE: CALLEE})
    write_campaign(s, campaign_data("allday"))
    return s


async def db_rows(settings: Settings, sql: str) -> list[Any]:
    store = await Store.open(settings.database.path)
    try:
        return list(await store.fetchall(sql))
    finally:
        await store.close()


def run_cli(tmp_path: Path, *args: str) -> int:
    return main(["--config", str(tmp_path / "televox.yaml"), "call", *args])


async def test_call_prints_the_live_transcript_and_the_result(settings: Settings) -> None:
    out = io.StringIO()
    report = await call_cli.place_call(
        settings, call_cli.CallRequest(PHONE, campaign="allday", name="Sam"),
        engines=fake_engines(["Yes, tell me more."], REPLY), out=out)
    text = out.getvalue()
    assert report.exit_code == 0, text
    assert report.originates == 1
    lines = text.splitlines()
    said = [line for line in lines if line.startswith(("agent: ", "callee: "))]
    assert said == ["agent: Hi Sam, I'm Ava, an AI assistant calling for Acme.",
                    "callee: Yes, tell me more.",
                    "agent: Great, I will send you the details. Goodbye!"], text
    assert "status: completed" in lines and "disposition: INTERESTED" in lines
    assert report.recording is not None and report.recording.exists()
    assert f"recording: {report.recording}" in lines
    assert any(line.startswith("duration: ") for line in lines)
    rows = await db_rows(settings, "SELECT status, disposition FROM call_attempts")
    assert [tuple(r) for r in rows] == [("completed", "INTERESTED")]
    # The contact went in through the importer, with the name as a variable.
    contacts = await db_rows(settings, "SELECT name, source, status FROM contacts")
    assert [tuple(r) for r in contacts] == [("Sam", "call", "completed")]


async def test_ad_hoc_call_adds_the_disclosure(settings: Settings) -> None:
    # A Tuesday, 10:00 in New York (the number's zone): inside the default window.
    clock = ShiftedClock(datetime(2026, 3, 3, 15, 0, tzinfo=UTC))
    out = io.StringIO()
    report = await call_cli.place_call(
        settings, call_cli.CallRequest(PHONE, opening="Hello, quick question about {{topic}}.",
                                       goal="Ask if they want a quote.",
                                       variables={"topic": "solar", "phone": "x"}),
        engines=fake_engines(["Sure."], REPLY), clock=clock, out=out)
    assert report.exit_code == 0, out.getvalue()
    assert "agent: I'm an AI assistant. Hello, quick question about solar." in \
        out.getvalue().splitlines()
    rows = await db_rows(settings, "SELECT name FROM campaigns")
    assert [r["name"] for r in rows] == [call_cli.ADHOC_CAMPAIGN]


async def test_ad_hoc_call_outside_the_default_window_is_refused(settings: Settings) -> None:
    clock = ShiftedClock(datetime(2026, 3, 3, 7, 0, tzinfo=UTC))  # 02:00 in New York
    err = io.StringIO()
    report = await call_cli.place_call(
        settings, call_cli.CallRequest(PHONE, opening="Hi.", goal="Chat."),
        engines=fake_engines([], []), clock=clock, err=err)
    assert report.exit_code == 2
    assert "outside_window" in err.getvalue()
    assert "2026-03-03T14:00:00+00:00" in err.getvalue()  # 09:00 New York
    assert await db_rows(settings, "SELECT id FROM call_attempts") == []


def test_no_models_refuses_cleanly(settings: Settings, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(tmp_path, PHONE, "--campaign", "allday", "--no-models") == 1
    err = capsys.readouterr().err
    assert "--no-models" in err and "Traceback" not in err


def test_dnc_number_is_refused(settings: Settings, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    async def put_on_dnc() -> None:
        store = await Store.open(settings.database.path)
        try:
            await add_numbers(store, settings.workspace, [(PHONE, "asked")], source="test",
                              actor="test", at=datetime.now(UTC).isoformat())
        finally:
            await store.close()
    asyncio.run(put_on_dnc())
    assert run_cli(tmp_path, PHONE, "--campaign", "allday") == 2
    err = capsys.readouterr().err
    assert "call refused: dnc" in err
    assert PHONE not in err  # the gate's words, not the number
    rows = asyncio.run(db_rows(settings, "SELECT COUNT(*) AS n FROM call_attempts"))
    assert rows[0]["n"] == 0


async def test_dnc_after_the_first_check_still_stops_the_originate(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """The number goes on DNC while the models load: call_now's own gate check refuses,
    and the simulator never sees an Originate."""
    campaign = Campaign.model_validate(campaign_data("allday"))
    store = await Store.open(settings.database.path)
    try:  # already a contact of the campaign (imported earlier)
        cid = await upsert_campaign(store, campaign)
        await import_records(store, campaign, cid, [{"phone": PHONE}], source="test")
    finally:
        await store.close()
    real_precheck = call_cli.precheck

    async def precheck_then_opt_out(*args: Any) -> Any:
        decision = await real_precheck(*args)
        db = await Store.open(settings.database.path)
        try:
            await add_numbers(db, settings.workspace, [(PHONE, "opt-out")], source="test",
                              actor="test", at=datetime.now(UTC).isoformat())
        finally:
            await db.close()
        return decision
    monkeypatch.setattr(call_cli, "precheck", precheck_then_opt_out)
    err = io.StringIO()
    report = await call_cli.place_call(
        settings, call_cli.CallRequest(PHONE, campaign="allday"),
        engines=fake_engines([], []), err=err)
    assert report.exit_code == 2, err.getvalue()
    assert "DNC" in report.reason
    assert report.originates == 0
    assert await db_rows(settings, "SELECT id FROM call_attempts") == []


def test_number_outside_its_window_is_refused(settings: Settings, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    # Open all day, but only on a weekday that is neither today nor tomorrow (UTC).
    today = datetime.now(UTC).weekday()
    other = EVERY_DAY[(today + 3) % 7]
    write_campaign(settings, campaign_data(
        "someday", calling_window={"legal_override": True, "start": "00:00",
                                   "end": "23:59:59", "weekdays": [other]}))
    assert run_cli(tmp_path, PHONE, "--campaign", "someday") == 2
    err = capsys.readouterr().err
    assert "call refused: outside_window" in err
    opens = datetime.now(UTC).date() + timedelta(days=3)
    assert f"opens at {opens.isoformat()}T00:00:00+00:00" in err


def test_unknown_campaign_is_an_error(settings: Settings, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(tmp_path, PHONE, "--campaign", "nope") == 1
    assert "no such campaign" in capsys.readouterr().err


def test_opening_needs_a_goal(settings: Settings, tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(tmp_path, PHONE, "--opening", "Hi there") == 1
    assert "--goal" in capsys.readouterr().err


async def test_dnc_check_uses_the_normalised_number(settings: Settings) -> None:
    store = await Store.open(settings.database.path)
    try:
        await add_numbers(store, settings.workspace, [(PHONE, "asked")], source="test",
                          actor="test", at=datetime.now(UTC).isoformat())
        assert await is_on_dnc(store, PHONE)
    finally:
        await store.close()
    report = await call_cli.place_call(
        settings, call_cli.CallRequest("(212) 555-0101", campaign="allday"),
        engines=fake_engines([], []), err=io.StringIO())
    assert report.exit_code == 2 and report.reason.startswith("dnc")


@pytest.mark.parametrize("how", ["timeout", "interrupt"])
async def test_timeout_or_ctrl_c_hangs_the_call_up(tmp_path: Path, how: str) -> None:
    settings = write_settings(tmp_path, {PHONE: {"behaviour": "answer", "ring_s": 0.2,
                                                 "script": [{"pause_s": 30}]}})
    write_campaign(settings, campaign_data("allday"))
    out = io.StringIO()
    interrupt = asyncio.Event()
    if how == "interrupt":
        asyncio.get_running_loop().call_later(1.5, interrupt.set)
    report = await call_cli.place_call(
        settings, call_cli.CallRequest(PHONE, campaign="allday",
                                       timeout_s=1.5 if how == "timeout" else 60),
        engines=fake_engines([], []), out=out, interrupt=interrupt)
    assert report.exit_code == 0, out.getvalue()
    expected = "timeout after 1.5 s" if how == "timeout" else "interrupted"
    assert f"{expected}: hanging up" in out.getvalue()
    # The result is stored: the attempt is final and the contact moved on.
    assert report.summary is not None and report.summary.status == "completed"
    assert report.summary.duration_s is not None and report.summary.duration_s < 5
    rows = await db_rows(settings, "SELECT status FROM contacts")
    assert rows[0]["status"] not in ("calling", "connected")
