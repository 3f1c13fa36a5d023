"""`televox call` next to a running daemon goes through the daemon's control channel
(issue 12): the daemon's gate and dialer decide, a number it is already calling is
refused in words, and the channel survives bad tokens and garbage. Without a daemon the
standalone path still places the call, behind the same guard.

The daemon is an App on the embedded simulator with scripted fake engines, in this
test's event loop; `place_call` is the whole `televox call` command."""

from __future__ import annotations

import asyncio
import io
import json
import os
import socket
import stat
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from app_support import (
    EVERY_DAY,
    campaign_data,
    fake_engines,
    make_campaign,
    write_campaign,
    write_settings,
)

from televox_pbx.app import App
from televox_pbx.campaigns import gate
from televox_pbx.campaigns.controls import Action, apply
from televox_pbx.campaigns.importer import import_records
from televox_pbx.cli import call as call_cli
from televox_pbx.config.settings import Settings
from televox_pbx.control import refusals
from televox_pbx.control.callnow import hangup, wait_final
from televox_pbx.control.protocol import MAX_LINE, socket_path, token_path
from televox_pbx.startup import StartupError
from televox_pbx.store import Store
from televox_pbx.store import attempts as att
from televox_pbx.store.campaigns import upsert_campaign
from televox_pbx.store.dnc import add_numbers
from televox_pbx.voice.interfaces import ToolCall

PHONE = "+12125550101"  # answers and talks
LONG = "+12125550105"  # answers and stays on the line until hung up
NO_ZONE = "+882123456789"  # a valid number no zone is known for
CALLEE = {"behaviour": "answer", "ring_s": 0.2, "amd_delay_s": 0.5,
          "script": [{"say": "Yes, that sounds good, tell me a bit more about it please.",
                      "at_s": 0.3}]}
SILENT = {"behaviour": "answer", "ring_s": 0.2, "script": [{"pause_s": 30}]}
REPLY = [["Great, I will send you the details. Goodbye! ",
          ToolCall("set_disposition", {"disposition": "interested"}),
          ToolCall("end_call", {"reason": "done"})]]


class Out(io.StringIO):
    """stdout that tells when a line starting with `prefix` has been printed."""

    def __init__(self, prefix: str = "calling ") -> None:
        super().__init__()
        self.seen = asyncio.Event()
        self._prefix = prefix

    def write(self, s: str) -> int:
        n = super().write(s)
        if any(line.startswith(self._prefix) for line in self.getvalue().splitlines()):
            self.seen.set()
        return n


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    s = write_settings(tmp_path, {PHONE: CALLEE, LONG: SILENT})
    write_campaign(s, campaign_data("allday"))
    write_campaign(s, campaign_data("other"))
    return s


@pytest.fixture
async def daemon(settings: Settings) -> AsyncIterator[App]:
    """`televox serve`: the App, running, until the test ends."""
    app = App(settings, engines=fake_engines(["Yes, tell me more."], REPLY),
              audiosocket_port=0)
    await app.start()
    stop = asyncio.Event()
    running = asyncio.create_task(app.run(stop))
    try:
        yield app
        assert not running.done(), "the daemon stopped during the test"
    finally:
        stop.set()
        await asyncio.wait_for(running, 15)
        await asyncio.wait_for(app.stop(), 15)


def originates(app: App) -> int:
    return len(app.sim.actions_named("Originate"))


async def attempts(app: App) -> list[tuple[str, str]]:
    assert app.store is not None
    rows = await app.store.fetchall("SELECT phone, status FROM call_attempts ORDER BY rowid")
    return [(str(r["phone"]), str(r["status"])) for r in rows]


async def refused(settings: Settings, phone: str, campaign: str) -> call_cli.CallReport:
    err = io.StringIO()
    report = await call_cli.place_call(settings, call_cli.CallRequest(phone, campaign=campaign),
                                       engines=fake_engines([], []), err=err)
    assert report.exit_code == 2, err.getvalue()
    assert f"call refused: {report.reason}" in err.getvalue()
    assert phone not in err.getvalue()  # reasons in words, never the number
    return report


# --- through the daemon ------------------------------------------------------------


async def test_the_daemon_places_the_call_and_streams_the_transcript(
        settings: Settings, daemon: App) -> None:
    out = io.StringIO()
    report = await call_cli.place_call(
        settings, call_cli.CallRequest(PHONE, campaign="allday", name="Sam"), out=out)
    text = out.getvalue()
    assert report.exit_code == 0, text
    assert report.via_daemon and report.originates is None
    assert originates(daemon) == 1  # the daemon's own simulator dialled it
    said = [line for line in text.splitlines() if line.startswith(("agent: ", "callee: "))]
    assert said == ["agent: Hi Sam, I'm Ava, an AI assistant calling for Acme.",
                    "callee: Yes, tell me more.",
                    "agent: Great, I will send you the details. Goodbye!"], text
    assert "placed by the running daemon" in text
    assert "status: completed" in text and "disposition: INTERESTED" in text
    assert report.recording is not None and report.recording.exists()
    assert await attempts(daemon) == [(PHONE, "completed")]


async def test_a_number_in_a_call_is_refused_whatever_the_campaign(
        settings: Settings, daemon: App) -> None:
    """Today a second App dials it again from another campaign (two live attempts)."""
    out, interrupt = Out(), asyncio.Event()
    first = asyncio.create_task(call_cli.place_call(
        settings, call_cli.CallRequest(LONG, campaign="allday"), out=out,
        interrupt=interrupt))
    await asyncio.wait_for(out.seen.wait(), 15)

    for campaign in ("allday", "other"):
        report = await refused(settings, LONG, campaign=campaign)
        assert report.via_daemon
        assert report.reason.startswith("in_call: already in a call"), report.reason
    assert originates(daemon) == 1
    assert len(await attempts(daemon)) == 1

    interrupt.set()  # Ctrl-C on the first: the daemon hangs the call up
    report = await asyncio.wait_for(first, 30)
    assert report.exit_code == 0 and report.via_daemon, out.getvalue()
    assert "interrupted: hanging up" in out.getvalue()
    assert await attempts(daemon) == [(LONG, "completed")]


async def test_a_number_a_running_campaign_is_calling_is_refused(
        settings: Settings, daemon: App) -> None:
    assert daemon.store is not None
    campaign = make_campaign("e2e")
    cid = await upsert_campaign(daemon.store, campaign)
    await import_records(daemon.store, campaign, cid, [{"phone": LONG}], source="test")
    await apply(daemon.store, "e2e", Action.START, datetime.now(UTC))
    for _ in range(300):  # until the dialer has claimed it
        live = await att.unfinished_attempts(daemon.store)
        if live:
            break
        await asyncio.sleep(0.05)
    report = await refused(settings, LONG, campaign="allday")
    assert report.via_daemon and report.reason.startswith("in_call: already in a call")
    assert originates(daemon) == 1
    assert len(await attempts(daemon)) == 1
    assert daemon.client is not None  # end the campaign's call (else stop drains it)
    await wait_final(daemon.store, daemon.clock, live[0].id, 0, asyncio.Event(),
                     partial(hangup, daemon.client, live[0].id), lambda _: None)


async def test_a_dnc_number_is_refused_by_the_daemon(settings: Settings, daemon: App) -> None:
    assert daemon.store is not None
    await add_numbers(daemon.store, settings.workspace, [(PHONE, "asked")], source="test",
                      actor="test", at=datetime.now(UTC).isoformat())
    report = await refused(settings, PHONE, campaign="allday")
    assert report.via_daemon
    assert report.reason.startswith("dnc: the number is on the DNC list"), report.reason
    assert originates(daemon) == 0 and await attempts(daemon) == []


async def test_outside_the_window_the_reason_names_the_zone(settings: Settings,
                                                            daemon: App) -> None:
    # Open all day on one weekday three days from today in New York (the number's zone).
    zone = ZoneInfo("America/New_York")
    today = datetime.now(zone).date()
    day = today + timedelta(days=3)
    write_campaign(settings, campaign_data(
        "someday", timezone_policy={"source": "number"},
        calling_window={"legal_override": True, "start": "00:00", "end": "23:59:59",
                        "weekdays": [EVERY_DAY[day.weekday()]]}))
    report = await refused(settings, PHONE, campaign="someday")
    assert report.via_daemon
    opens = datetime.combine(day, datetime.min.time(), tzinfo=zone).astimezone(UTC)
    assert report.reason.startswith(
        "outside_window: outside the calling window in zone America/New_York"), report.reason
    assert f"opens at {opens.isoformat()}" in report.reason
    assert originates(daemon) == 0


async def test_an_unknown_zone_says_how_to_set_one(settings: Settings, daemon: App) -> None:
    write_campaign(settings, campaign_data("byzone", timezone_policy={"source": "contact"}))
    report = await refused(settings, NO_ZONE, campaign="byzone")
    assert report.via_daemon
    assert report.reason.startswith("unknown_timezone: unknown time zone"), report.reason
    assert "--timezone" in report.reason and "timezone column" in report.reason
    # Given a zone, the same number gets past that part of the gate (the window is open).
    out = io.StringIO()
    ok = await call_cli.place_call(
        settings, call_cli.CallRequest(NO_ZONE, campaign="byzone", timezone="Europe/Paris"),
        load_models=False, out=out, err=out)
    assert ok.exit_code == 1 and "gate allows this call" in out.getvalue()
    assert originates(daemon) == 0


async def test_the_real_command_goes_through_the_daemon(settings: Settings, daemon: App,
                                                        tmp_path: Path) -> None:
    """`televox call` as a process: no second App (it used to die on the daemon's
    AudioSocket port), and the daemon's refusal with exit code 2."""
    assert daemon.store is not None
    await add_numbers(daemon.store, settings.workspace, [(PHONE, "asked")], source="test",
                      actor="test", at=datetime.now(UTC).isoformat())
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "televox_pbx", "--config", str(tmp_path / "televox.yaml"),
        "call", PHONE, "--campaign", "allday", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2, stdout.decode() + stderr.decode()
    assert "call refused: dnc: the number is on the DNC list" in stderr.decode()
    assert "address already in use" not in stderr.decode()


async def test_an_ad_hoc_call_goes_through_the_daemon_too(settings: Settings,
                                                          daemon: App) -> None:
    assert daemon.store is not None
    await add_numbers(daemon.store, settings.workspace, [(PHONE, "asked")], source="test",
                      actor="test", at=datetime.now(UTC).isoformat())
    err = io.StringIO()
    report = await call_cli.place_call(
        settings, call_cli.CallRequest(PHONE, opening="Hi.", goal="Chat."), err=err)
    assert report.exit_code == 2 and report.via_daemon, err.getvalue()
    assert report.reason.startswith("dnc: "), report.reason


@pytest.mark.parametrize(("reason", "code", "expected"), [
    ("already on a call", None, "in_call: already in a call"),
    ("already in a call", "in_call", "in_call: already in a call"),
    ("call_now: on DNC list (default)", None, "dnc: the number is on the DNC list"),
    ("contact is opted_out", None, "dnc: the number is on the DNC list"),
    ("all lines busy (concurrency limit)", None, "capacity: all lines are busy"),
    ("whatever the dialer says", "capacity", "capacity: all lines are busy"),
    ("call_now: outside window (number: America/New_York)", None,
     "outside_window: outside the calling window in zone America/New_York; the window "
     "opens at 2026-03-03T14:00:00+00:00 (Tue 09:00 local time)"),
    ("held", "window", "outside_window: outside the calling window in zone America/New_"),
    ("held", "unknown_tz", "unknown_timezone: unknown time zone"),
    ("campaign has no stored configuration", None,
     "refused: campaign has no stored configuration"),
])
def test_the_dialers_answers_in_words(reason: str, code: str | None, expected: str) -> None:
    """What `Dialer.call_now` answers today (a sentence), and with the code it will carry."""
    campaign = make_campaign("num", timezone_policy={"source": "number"},
                             calling_window={"start": "09:00", "end": "17:00"})
    at = datetime(2026, 3, 3, 7, 0, tzinfo=UTC)  # 02:00 in New York
    zone_known = code != "unknown_tz"

    def recheck() -> gate.GateDecision:
        return gate.decide_window(gate.GateContext(campaign=campaign, phone=PHONE, now=at),
                                  PHONE if zone_known else NO_ZONE)
    got = refusals.from_call_now(reason, code, campaign, "default", recheck)
    assert got.reason.startswith(expected), got.reason


async def test_a_bad_request_is_answered_and_the_daemon_keeps_serving(
        settings: Settings, daemon: App) -> None:
    token = the_token(settings)
    for args in ({"request": {"phone": 5, "campaign": "allday"}},
                 {"request": {"phone": PHONE, "campaign": "allday", "timeout_s": -1}},
                 {"request": {"phone": PHONE, "campaign": "allday", "rm": "-rf"}},
                 {"request": "call me"}):
        payload = json.dumps({"token": token, "op": "call", "args": args}).encode() + b"\n"
        lines = await exchange(settings, payload)
        assert [json.loads(line)["event"] for line in lines] == ["error"], lines
    lines = await exchange(settings, request(token, "reboot"))
    assert json.loads(lines[0])["error"] == "bad_request"
    assert originates(daemon) == 0
    pong = await exchange(settings, request(token))
    assert json.loads(pong[0])["event"] == "pong"


# --- the channel itself -------------------------------------------------------------


async def exchange(settings: Settings, payload: bytes) -> list[bytes]:
    """Send raw bytes, read every line until the daemon closes the connection."""
    reader, writer = await asyncio.open_unix_connection(str(socket_path(settings)))
    try:
        writer.write(payload)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 10)  # b"" only once closed
    finally:
        writer.close()
    return data.splitlines()


def request(token: str, op: str = "ping") -> bytes:
    return json.dumps({"token": token, "op": op, "args": {}}).encode() + b"\n"


def the_token(settings: Settings) -> str:
    return token_path(settings).read_text(encoding="utf-8").strip()


async def test_files_are_private_and_removed_on_stop(settings: Settings) -> None:
    app = App(settings, engines=fake_engines([], []), audiosocket_port=0)
    await app.start()
    try:
        for path in (socket_path(settings), token_path(settings)):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        assert socket_path(settings).parent == settings.database.path.parent
        assert stat.S_ISSOCK(socket_path(settings).stat().st_mode)
    finally:
        await app.stop()
    assert not socket_path(settings).exists() and not token_path(settings).exists()


async def test_a_wrong_token_is_refused(settings: Settings, daemon: App) -> None:
    for bad in ("", "x" * 43, the_token(settings)[:-1] + "?"):
        lines = await exchange(settings, request(bad, "call"))
        assert [json.loads(line)["error"] for line in lines] == ["unauthorized"]
    lines = await exchange(settings, b'{"op": "ping", "token": 12345}\n')
    assert json.loads(lines[0])["error"] == "unauthorized"
    assert daemon.control is not None and daemon.control.rejected == 4
    pong = await exchange(settings, request(the_token(settings)))
    assert json.loads(pong[0])["event"] == "pong"
    assert originates(daemon) == 0


@pytest.mark.parametrize("garbage", [
    b"\xff\xfe\x00not json at all\n",
    b"[1, 2, 3]\n",
    b"[" * 40_000 + b"\n",  # nesting the JSON parser cannot follow
    b"{" + b"x" * (MAX_LINE + 10),  # over the size cap, never a newline
    b'{"token": "unterminated',
])
async def test_garbage_closes_that_connection_and_the_daemon_keeps_serving(
        settings: Settings, daemon: App, garbage: bytes) -> None:
    reader, writer = await asyncio.open_unix_connection(str(socket_path(settings)))
    writer.write(garbage)
    await writer.drain()
    if not garbage.endswith(b"\n") and len(garbage) < MAX_LINE:
        writer.write_eof()  # a short unterminated line: the end of the stream ends it
    data = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    assert all(json.loads(line)["event"] == "error" for line in data.splitlines())
    assert daemon.control is not None and daemon.control.malformed == 1
    # The daemon still serves: a good request on a new connection is answered.
    pong = await exchange(settings, request(the_token(settings)))
    assert json.loads(pong[0])["event"] == "pong"


async def test_a_second_daemon_on_the_same_database_does_not_start(
        settings: Settings, daemon: App) -> None:
    second = App(settings, engines=fake_engines([], []), audiosocket_port=0)
    with pytest.raises(StartupError, match="another televox daemon"):  # one line, no trace
        await second.start()
    await second.stop()
    pong = await exchange(settings, request(the_token(settings)))
    assert json.loads(pong[0])["event"] == "pong"  # the first is untouched


# --- no daemon ----------------------------------------------------------------------


async def test_without_a_daemon_the_call_is_placed_here(settings: Settings) -> None:
    """A socket left behind by a daemon that died answers nobody: the CLI dials itself."""
    path = socket_path(settings)
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()
    assert path.exists()
    out = io.StringIO()
    report = await call_cli.place_call(
        settings, call_cli.CallRequest(PHONE, campaign="allday", name="Sam"),
        engines=fake_engines(["Yes, tell me more."], REPLY), out=out)
    assert report.exit_code == 0, out.getvalue()
    assert not report.via_daemon and report.originates == 1
    assert "status: completed" in out.getvalue()


async def test_without_a_daemon_a_live_attempt_still_refuses(settings: Settings) -> None:
    """Another process (a daemon that is down now, another `televox call`) holds a live
    attempt for the number: the standalone path refuses it in words too."""
    store = await Store.open(settings.database.path)
    try:
        campaign = make_campaign("allday")
        cid = await upsert_campaign(store, campaign)
        await import_records(store, campaign, cid, [{"phone": LONG}], source="test")
        contact = await store.fetchone("SELECT id FROM contacts")
        assert contact is not None
        await att.claim(store, att.Intent(
            call_id="live-1", campaign_id=cid, contact_id=int(contact["id"]), phone=LONG,
            phone_position=1, retry_pass=1, gate_reason="test"), datetime.now(UTC),
            "default")
    finally:
        await store.close()
    report = await refused(settings, LONG, campaign="other")
    assert not report.via_daemon
    assert report.reason.startswith("in_call: already in a call"), report.reason
    store = await Store.open(settings.database.path)
    try:
        rows = await store.fetchall("SELECT id FROM call_attempts")
        assert [r["id"] for r in rows] == ["live-1"]
    finally:
        await store.close()
