"""`televox call PHONE`: place one call now, through the daemon's own dial path.

When a daemon serves this database, the request goes to it over its control channel
(televox_pbx/control): the daemon asks its gate, dials with its own dialer and streams
the live transcript and the result back. Otherwise an App runs in this process (the
embedded simulator when no Asterisk is configured). Either way the number goes through
the same compliance gate as campaign dialing (DNC, calling window in the callee's local
time) and the same `Dialer.call_now`; nothing here sends an Originate itself.

Exit codes: 0 the call was placed and finished; 2 refused (gate, DNC, already in a call,
dialer); 1 anything else (bad config, no models, PBX unreachable, timed out).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from televox_pbx.campaigns import gate
from televox_pbx.campaigns.mapping import normalize_header
from televox_pbx.cli.call_report import CallReport, TranscriptPrinter, print_report
from televox_pbx.cli.campaign_import import default_actor
from televox_pbx.cli.common import settings_from_args
from televox_pbx.clock import Clock, SystemClock
from televox_pbx.config.campaign import Campaign
from televox_pbx.config.settings import Settings
from televox_pbx.control import client as control
from televox_pbx.control import refusals
from televox_pbx.control.callnow import (
    ADHOC_CAMPAIGN,
    DEFAULT_TIMEOUT_S,
    EXIT_ERROR,
    EXIT_OK,
    EXIT_REFUSED,
    CallError,
    CallRequest,
    campaign_for,
    contact_id_for,
    hangup,
    live_call,
    summary_from_wire,
    wait_final,
)
from televox_pbx.control.taps import tapped
from televox_pbx.store import Store
from televox_pbx.store.attempts import is_final_status
from televox_pbx.store.campaigns import upsert_campaign
from televox_pbx.store.transcripts import recordings
from televox_pbx.voice.session import Engines

if TYPE_CHECKING:
    from televox_pbx.app import App

__all__ = ["ADHOC_CAMPAIGN", "CallError", "CallReport", "CallRequest", "TranscriptPrinter",
           "campaign_for", "place_call", "precheck", "register"]

Fail = Callable[[int, str], "CallReport"]


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "call", help="place one call now (same compliance gate and dial path as campaigns)")
    p.add_argument("phone", help="number to call, e.g. +15551234567")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--campaign", help="use config/campaigns/NAME.yaml for the agent")
    what.add_argument("--opening", help="ad-hoc call: the first words (an AI disclosure is "
                                        "added if missing); needs --goal")
    p.add_argument("--goal", help="ad-hoc call: what the agent should achieve")
    p.add_argument("--name", help="the callee's name ({{NAME}} in the agent's lines)")
    p.add_argument("--var", action="append", default=[], metavar="K=V",
                   help="a prompt variable for this call (repeatable)")
    p.add_argument("--timezone", help="the callee's IANA zone (default: from the number)")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="S",
                   help=f"hang up after S seconds (default {DEFAULT_TIMEOUT_S:.0f})")
    p.add_argument("--caller-id", help="ad-hoc call: caller ID to show (default: the first "
                                       "campaign's, or a test number on the simulator)")
    p.add_argument("--trunk", help="ad-hoc call: PJSIP trunk (default: as --caller-id)")
    p.add_argument("--persona", default="Alex", help="ad-hoc call: the agent's name")
    p.add_argument("--business", default="Televox", help="ad-hoc call: who is calling")
    p.add_argument("--no-models", action="store_true",
                   help="do not load the voice models: only ask the gate, never dial")
    p.add_argument("--verbose", action="store_true", help="daemon logs on stderr")
    p.set_defaults(func=_call)


def _parse_vars(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not normalize_header(key):
            raise SystemExit(f"--var {item!r}: expected NAME=VALUE")
        out[key.strip()] = value
    return out


def _call(args: argparse.Namespace) -> int:
    from televox_pbx.logs import setup_logging

    if args.opening is not None and not args.goal:
        print("call: --opening needs --goal", file=sys.stderr)
        return EXIT_ERROR
    settings = settings_from_args(args)
    setup_logging(settings.logging.level if args.verbose else "WARNING", stream=sys.stderr)
    req = CallRequest(phone=args.phone, campaign=args.campaign, opening=args.opening,
                      goal=args.goal, name=args.name, timezone=args.timezone,
                      variables=_parse_vars(args.var), timeout_s=args.timeout,
                      caller_id=args.caller_id, trunk=args.trunk, persona=args.persona,
                      business=args.business)
    return asyncio.run(_main(settings, req, load_models=not args.no_models))


async def _main(settings: Settings, req: CallRequest, *, load_models: bool) -> int:
    # Ctrl-C / SIGTERM hang the call up and still store its result (never a bare exit
    # that leaves the contact 'calling').
    interrupt = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, interrupt.set)
    report = await place_call(settings, req, load_models=load_models, interrupt=interrupt)
    return report.exit_code


# --- live transcript ----------------------------------------------------------------


# --- placing the call ---------------------------------------------------------------


async def precheck(settings: Settings, campaign: Campaign, req: CallRequest,
                   clock: Clock) -> gate.GateDecision:
    """Ask the gate before anything loads, so a refusal is quick. `call_now` asks again
    (the answer may change while models load); this one only saves waiting."""
    store = await Store.open(settings.database.target(),
                             password=settings.database.password())
    try:
        return await gate.check(store, gate.GateContext(
            campaign=campaign, phone=req.phone, now=clock.now(),
            workspace=settings.workspace, contact_tz=req.timezone, purpose="call_now"))
    finally:
        await store.close()


async def _in_a_call(settings: Settings, e164: str) -> bool:
    store = await Store.open(settings.database.target(),
                             password=settings.database.password())
    try:
        return await live_call(store, e164)
    finally:
        await store.close()


async def place_call(settings: Settings, req: CallRequest, *, engines: Engines | None = None,
                     load_models: bool = True, clock: Clock | None = None,
                     audiosocket_port: int | None = None,
                     out: TextIO | None = None, err: TextIO | None = None,
                     interrupt: asyncio.Event | None = None) -> CallReport:
    """The whole command. A running daemon places the call; else this process does, and
    `engines` replaces the models (tests pass scripted fakes). `interrupt` set before
    dialling aborts, set during the call hangs it up."""
    out = out or sys.stdout
    err = err or sys.stderr
    clock = clock or SystemClock()
    interrupt = interrupt or asyncio.Event()

    def fail(code: int, reason: str) -> CallReport:
        print(f"call refused: {reason}" if code == EXIT_REFUSED else f"call: {reason}",
              file=err)
        return CallReport(code, reason)

    check_only = engines is None and not load_models
    try:
        conn = await control.connect(settings)
    except control.ClientError as exc:
        return fail(EXIT_ERROR, str(exc))
    if conn is not None:
        report = await _via_daemon(conn, req, check_only, clock, out, fail, interrupt)
        report.via_daemon = True
        return report
    try:
        campaign = campaign_for(settings, req)
    except CallError as exc:
        return fail(EXIT_ERROR, str(exc))
    decision = await precheck(settings, campaign, req, clock)
    if not decision.allowed or decision.e164 is None:
        return fail(EXIT_REFUSED,
                    refusals.from_gate(decision, campaign, settings.workspace).reason)
    if await _in_a_call(settings, decision.e164):
        return fail(EXIT_REFUSED, refusals.in_call().reason)
    if check_only:
        return fail(EXIT_ERROR, "the gate allows this call, but without the voice models "
                                "(--no-models) nobody would talk on it; not dialling")
    return await _dial(settings, campaign, req, decision.e164, engines, load_models, clock,
                       audiosocket_port, out, fail, interrupt)


# --- through the daemon -------------------------------------------------------------


async def _via_daemon(conn: control.Connection, req: CallRequest, check_only: bool,
                      clock: Clock, out: TextIO, fail: Fail,
                      interrupt: asyncio.Event) -> CallReport:
    """Send the request, print what the daemon streams back; Ctrl-C asks it to hang up."""
    printer = TranscriptPrinter(out, clock)
    relay = asyncio.create_task(_hangup_when(interrupt, conn), name="call-interrupt")
    call_id: str | None = None
    try:
        if interrupt.is_set():
            return fail(EXIT_ERROR, "interrupted before dialling")
        await conn.request("call", {"request": req.to_wire(), "check_only": check_only,
                                    "actor": default_actor()})
        async for ev in conn.events():
            kind, text = ev.get("event"), str(ev.get("text") or "")
            if kind == "say":
                printer.say(str(ev.get("speaker") or "?"), text)
            elif kind == "note":
                printer.note(text)
            elif kind == "calling":
                call_id = str(ev.get("call_id"))
                print(f"calling {ev.get('phone')} (campaign {ev.get('campaign')}, call "
                      f"{call_id}, placed by the running daemon)", file=out, flush=True)
            elif kind in ("refused", "error", "allowed"):
                printer.end_line()
                return _answer(kind, ev, fail)
            elif kind == "done":
                printer.end_line()
                return _done(ev, out)
        printer.end_line()
        return fail(EXIT_ERROR, "the daemon closed the connection before the call's result"
                    + (f"; look up call {call_id} later" if call_id else ""))
    except control.ClientError as exc:
        return fail(EXIT_ERROR, str(exc))
    except (ConnectionError, OSError) as exc:
        return fail(EXIT_ERROR, f"lost the daemon's control channel ({exc})")
    finally:
        printer.end_line()
        relay.cancel()
        await conn.close()


async def _hangup_when(interrupt: asyncio.Event, conn: control.Connection) -> None:
    await interrupt.wait()
    with contextlib.suppress(ConnectionError, OSError):
        await conn.send({"op": "hangup"})


def _answer(kind: object, ev: dict[str, Any], fail: Fail) -> CallReport:
    reason = str(ev.get("reason") or "no reason given")
    if kind == "refused":
        return fail(EXIT_REFUSED, reason)
    if kind == "allowed":
        return fail(EXIT_ERROR, "the gate allows this call; --no-models only asks, so it is "
                                "not dialled")
    return fail(EXIT_ERROR, reason)


def _done(ev: dict[str, Any], out: TextIO) -> CallReport:
    summary = summary_from_wire(ev.get("summary"))
    recording = ev.get("recording")
    report = CallReport(EXIT_OK, "finished", str(ev.get("call_id")), summary,
                        Path(recording) if isinstance(recording, str) else None)
    if ev.get("finished") is not True:
        report.exit_code, report.reason = EXIT_ERROR, "the call did not finish in time"
    print_report(report, out)
    return report


# --- in this process (no daemon running) --------------------------------------------


async def _dial(settings: Settings, campaign: Campaign, req: CallRequest, e164: str,
                engines: Engines | None, load_models: bool, clock: Clock,
                audiosocket_port: int | None, out: TextIO, fail: Fail,
                interrupt: asyncio.Event) -> CallReport:
    from televox_pbx.ami.client import ConnectionState
    from televox_pbx.app import App  # the daemon's whole graph: only when dialling

    if audiosocket_port is None and not settings.ami.host:
        audiosocket_port = 0  # the embedded simulator is told the port; a daemon may hold ours
    app = App(settings, clock=clock, load_models=load_models, engines=engines,
              audiosocket_port=audiosocket_port, recover=False, control=False)
    printer = TranscriptPrinter(out, clock)
    tasks: list[asyncio.Task[None]] = []
    try:
        try:
            await app.start()
        except Exception as exc:  # port in use, models missing: say so, no traceback
            return fail(EXIT_ERROR, f"cannot start: {exc}")
        store, runner, client = app.store, app.runner, app.client
        assert store is not None and runner is not None and client is not None
        assert app.eventlog is not None
        if app.factory is None:
            return fail(EXIT_ERROR, "no voice engines loaded; not dialling")
        app.factory.engines = tapped(app.factory.engines, printer.say)
        if client.state is not ConnectionState.LOGGED_IN:
            return fail(EXIT_ERROR, f"the PBX is not reachable over AMI ({client.state.value})")
        campaign_id = await upsert_campaign(store, campaign)
        try:
            contact_id = await contact_id_for(store, campaign, campaign_id, req, e164,
                                              actor=default_actor())
        except CallError as exc:
            return fail(exc.code, str(exc))
        # No dialer loop here: a running campaign in this database stays the daemon's.
        tasks = [asyncio.create_task(app.eventlog.run(), name="eventlog"),
                 asyncio.create_task(runner.pump(), name="outcomes")]
        if interrupt.is_set():
            return fail(EXIT_ERROR, "interrupted before dialling")
        result = await runner.dialer.call_now(contact_id)
        if result.call_id is None:
            def recheck() -> gate.GateDecision:
                return gate.decide_window(gate.GateContext(
                    campaign=campaign, phone=e164, now=clock.now(),
                    workspace=settings.workspace, contact_tz=req.timezone), e164)
            refused = fail(EXIT_REFUSED, refusals.from_call_now(
                result.reason, getattr(result, "code", None), campaign, settings.workspace,
                recheck).reason)
            refused.originates = _originates(app)
            return refused
        call_id = result.call_id
        print(f"calling {e164} (campaign {campaign.name}, call {call_id})", file=out,
              flush=True)
        summary = await wait_final(store, clock, call_id, req.timeout_s, interrupt,
                                   lambda: hangup(client, call_id), printer.note)
        printer.end_line()
        report = CallReport(EXIT_OK, "finished", call_id, summary,
                            originates=_originates(app))
        if summary is None or not is_final_status(summary.status):
            report.exit_code, report.reason = EXIT_ERROR, "the call did not finish in time"
        found = await recordings(store, call_id)
        report.recording = found[0][0] if found else None
        print_report(report, out)
        return report
    finally:
        printer.end_line()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await app.stop()


def _originates(app: App) -> int | None:
    return len(app.sim.actions_named("Originate")) if app.sim is not None else None
