"""`televox call PHONE`: place one call now, through the daemon's own dial path.

An App runs in this process (the embedded simulator when no Asterisk is configured). The
number goes through the same compliance gate as campaign dialing (DNC, calling window in
the callee's local time) and the same `Dialer.call_now`; nothing here sends an Originate
itself. The live transcript is printed while the call runs.

Exit codes: 0 the call was placed and finished; 2 refused (gate, DNC, dialer); 1 anything
else (bad config, no models, PBX unreachable, timed out).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from televox_pbx.campaigns import gate
from televox_pbx.campaigns.importer import RowStatus, import_records
from televox_pbx.campaigns.mapping import MappingError, normalize_header
from televox_pbx.cli.campaign_import import default_actor
from televox_pbx.cli.common import settings_from_args
from televox_pbx.clock import Clock, SystemClock
from televox_pbx.config.campaign import Campaign
from televox_pbx.config.loader import ConfigError, campaign_files, find_campaign, load_campaign
from televox_pbx.config.settings import Settings
from televox_pbx.store import Store
from televox_pbx.store.attempts import is_final_status
from televox_pbx.store.call_lookup import (
    AttemptSummary,
    attempt_summary,
    contact_for_phone,
    settled,
)
from televox_pbx.store.campaigns import upsert_campaign
from televox_pbx.store.transcripts import recordings
from televox_pbx.voice.interfaces import AudioChunk, Stt, Transcript, Tts
from televox_pbx.voice.session import Engines

if TYPE_CHECKING:
    from televox_pbx.app import App

ADHOC_CAMPAIGN = "adhoc-call"
# Used for ad-hoc calls on the embedded simulator when nothing better is known.
SIM_CALLER_ID = "+15550100000"
SIM_TRUNK = "trunk"
DEFAULT_TIMEOUT_S = 900.0
# After --timeout hangs the call up, how long the PBX gets to report the hang-up.
HANGUP_WAIT_S = 15.0
EXIT_OK, EXIT_ERROR, EXIT_REFUSED = 0, 1, 2

class CallError(Exception):
    """Not dialled: say why; exit 2 for a compliance refusal, else 1."""

    def __init__(self, reason: str, code: int = EXIT_ERROR) -> None:
        super().__init__(reason)
        self.code = code


@dataclass(frozen=True, slots=True)
class CallRequest:
    phone: str
    campaign: str | None = None  # a campaigns_dir YAML; else ad-hoc from opening + goal
    opening: str | None = None
    goal: str | None = None
    name: str | None = None
    timezone: str | None = None
    variables: dict[str, str] = field(default_factory=dict)
    timeout_s: float = DEFAULT_TIMEOUT_S
    caller_id: str | None = None
    trunk: str | None = None
    persona: str = "Alex"
    business: str = "Televox"


@dataclass(slots=True)
class CallReport:
    """What `place_call` did; tests read it, the CLI prints it."""

    exit_code: int
    reason: str = ""
    call_id: str | None = None
    summary: AttemptSummary | None = None
    recording: Path | None = None
    originates: int | None = None  # Originates the embedded simulator saw (None: Asterisk)


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


# --- the campaign -------------------------------------------------------------------


def campaign_for(settings: Settings, req: CallRequest) -> Campaign:
    """The named campaign's YAML, or an ad-hoc one (default calling window and zones)."""
    if req.campaign is not None:
        try:
            found = find_campaign(settings, req.campaign)
        except ConfigError as exc:
            raise CallError("\n".join(str(i) for i in exc.issues)) from exc
        if found is None:
            raise CallError(f"{settings.campaigns_dir / req.campaign}.yaml: no such campaign")
        return found
    if not req.opening or not req.goal:
        raise CallError("an ad-hoc call needs --opening and --goal")
    from televox_pbx.agent.prompts import ensure_disclosure

    caller_id, trunk = _line_for(settings, req)
    try:
        return Campaign.model_validate({
            "name": ADHOC_CAMPAIGN, "caller_id": caller_id, "trunk": trunk,
            "agent": {"persona_name": req.persona, "business": req.business,
                      "opening_line": ensure_disclosure(req.opening), "goal": req.goal}})
    except ValueError as exc:
        raise CallError(f"ad-hoc campaign: {exc}") from exc


def _line_for(settings: Settings, req: CallRequest) -> tuple[str, str]:
    """Caller ID and trunk: the flags, else the first campaign on disk that loads, else
    (simulator only) test values. A real trunk is never guessed."""
    if req.caller_id and req.trunk:
        return req.caller_id, req.trunk
    for path in campaign_files(settings.campaigns_dir) if settings.campaigns_dir.is_dir() \
            else []:
        try:
            other = load_campaign(path)
        except ConfigError:
            continue
        return req.caller_id or other.caller_id, req.trunk or other.trunk
    if settings.ami.host:
        raise CallError("ad-hoc call on Asterisk: give --caller-id and --trunk "
                        "(no campaign to borrow them from)")
    return req.caller_id or SIM_CALLER_ID, req.trunk or SIM_TRUNK


# --- live transcript ----------------------------------------------------------------


class TranscriptPrinter:
    """Prints what the agent says (as it is synthesized) and what the callee said (as it
    is transcribed). The clauses of one agent reply arrive close together and share a
    line; a fixed line after a silence (re-prompt, goodbye) starts a new one."""

    def __init__(self, out: TextIO, clock: Clock, gap_s: float = 2.0) -> None:
        self._out = out
        self._clock = clock
        self._gap_s = gap_s
        self._open: str | None = None  # speaker of the unfinished line
        self._last_agent = float("-inf")

    def say(self, speaker: str, text: str) -> None:
        text = " ".join(text.split())
        if not text:
            return
        now = self._clock.monotonic()
        if speaker == "agent" and self._open == "agent" and \
                now - self._last_agent < self._gap_s:
            self._out.write(" " + text)
        else:
            self.end_line()
            self._out.write(f"{speaker}: {text}")
            self._open = speaker
        if speaker == "agent":
            self._last_agent = now
        else:
            self.end_line()
        self._out.flush()

    def end_line(self) -> None:
        if self._open is not None:
            self._out.write("\n")
            self._open = None

    def note(self, text: str) -> None:
        """A line of our own (not speech), never glued to an agent line."""
        self.end_line()
        self._out.write(text + "\n")
        self._out.flush()


class _TappedStt:
    def __init__(self, inner: Stt, printer: TranscriptPrinter) -> None:
        self._inner = inner
        self._printer = printer

    async def transcribe(self, audio: AudioChunk) -> Transcript:
        result = await self._inner.transcribe(audio)
        self._printer.say("callee", result.text)
        return result


class _TappedTts:
    def __init__(self, inner: Tts, printer: TranscriptPrinter) -> None:
        self._inner = inner
        self._printer = printer
        self.sample_rate = inner.sample_rate

    def synthesize(self, text: str) -> AsyncIterator[AudioChunk]:
        self._printer.say("agent", text)
        return self._inner.synthesize(text)


def tapped(engines: Engines, printer: TranscriptPrinter) -> Engines:
    return Engines(vad=engines.vad, stt=_TappedStt(engines.stt, printer), llm=engines.llm,
                   tts=_TappedTts(engines.tts, printer))


# --- placing the call ---------------------------------------------------------------


async def precheck(settings: Settings, campaign: Campaign, req: CallRequest,
                   clock: Clock) -> gate.GateDecision:
    """Ask the gate before anything loads, so a refusal is quick. `call_now` asks again
    (the answer may change while models load); this one only saves waiting."""
    store = await Store.open(settings.database.path)
    try:
        return await gate.check(store, gate.GateContext(
            campaign=campaign, phone=req.phone, now=clock.now(),
            workspace=settings.workspace, contact_tz=req.timezone, purpose="call_now"))
    finally:
        await store.close()


def refusal_text(decision: gate.GateDecision) -> str:
    text = f"{decision.reason.value}: {decision.detail}"
    if decision.next_open_at is not None:
        text += f"; the window opens at {decision.next_open_at.isoformat()}"
    return text


async def _contact_id(store: Store, campaign: Campaign, campaign_id: int, req: CallRequest,
                      e164: str) -> int:
    """Add the callee with the importer (one manual-entry record), or reuse the contact
    that already has this number in the campaign."""
    existing = await contact_for_phone(store, campaign_id, e164)
    if existing is not None:
        return existing
    # Variables travel under their own headers, so `--var phone=...` cannot clash.
    record = {f"var_{k}": v for k, v in req.variables.items()}
    explicit = {f"var_{k}": f"var:{k}" for k in req.variables}
    record["phone"], explicit["phone"] = e164, "phone"
    if req.name:
        record["name"], explicit["name"] = req.name, "name"
    if req.timezone:
        record["timezone"], explicit["timezone"] = req.timezone, "timezone"
    try:
        _, summary = await import_records(store, campaign, campaign_id, [record],
                                          source="call", origin="televox call",
                                          actor=default_actor(), explicit=explicit)
    except MappingError as exc:
        raise CallError(f"--var: {exc}") from exc
    for issue in summary.rejects():
        # DNC here: the number went on the list after the gate's first look.
        raise CallError(f"contact not added: {issue.status.value}: {issue.reason}",
                        EXIT_REFUSED if issue.status is RowStatus.DNC else EXIT_ERROR)
    found = await contact_for_phone(store, campaign_id, e164)
    if found is None:
        raise CallError("contact not added")
    return found


async def place_call(settings: Settings, req: CallRequest, *, engines: Engines | None = None,
                     load_models: bool = True, clock: Clock | None = None,
                     audiosocket_port: int | None = None,
                     out: TextIO | None = None, err: TextIO | None = None,
                     interrupt: asyncio.Event | None = None) -> CallReport:
    """The whole command. `engines` replaces the models (tests pass scripted fakes);
    `interrupt` set before dialling aborts, set during the call hangs it up."""
    out = out or sys.stdout
    err = err or sys.stderr
    clock = clock or SystemClock()

    def fail(code: int, reason: str) -> CallReport:
        print(f"call refused: {reason}" if code == EXIT_REFUSED else f"call: {reason}",
              file=err)
        return CallReport(code, reason)

    try:
        campaign = campaign_for(settings, req)
    except CallError as exc:
        return fail(EXIT_ERROR, str(exc))
    decision = await precheck(settings, campaign, req, clock)
    if not decision.allowed or decision.e164 is None:
        return fail(EXIT_REFUSED, refusal_text(decision))
    if engines is None and not load_models:
        return fail(EXIT_ERROR, "the gate allows this call, but without the voice models "
                                "(--no-models) nobody would talk on it; not dialling")
    return await _dial(settings, campaign, req, decision.e164, engines, load_models, clock,
                       audiosocket_port, out, fail, interrupt or asyncio.Event())


async def _dial(settings: Settings, campaign: Campaign, req: CallRequest, e164: str,
                engines: Engines | None, load_models: bool, clock: Clock,
                audiosocket_port: int | None, out: TextIO,
                fail: Callable[[int, str], CallReport], interrupt: asyncio.Event) -> CallReport:
    from televox_pbx.ami.client import ConnectionState
    from televox_pbx.app import App  # the daemon's whole graph: only when dialling

    if audiosocket_port is None and not settings.ami.host:
        audiosocket_port = 0  # the embedded simulator is told the port; a daemon may hold ours
    app = App(settings, clock=clock, load_models=load_models, engines=engines,
              audiosocket_port=audiosocket_port, recover=False)
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
        app.factory.engines = tapped(app.factory.engines, printer)
        if client.state is not ConnectionState.LOGGED_IN:
            return fail(EXIT_ERROR, f"the PBX is not reachable over AMI ({client.state.value})")
        campaign_id = await upsert_campaign(store, campaign)
        try:
            contact_id = await _contact_id(store, campaign, campaign_id, req, e164)
        except CallError as exc:
            return fail(exc.code, str(exc))
        # No dialer loop here: a running campaign in this database stays the daemon's.
        tasks = [asyncio.create_task(app.eventlog.run(), name="eventlog"),
                 asyncio.create_task(runner.pump(), name="outcomes")]
        if interrupt.is_set():
            return fail(EXIT_ERROR, "interrupted before dialling")
        result = await runner.dialer.call_now(contact_id)
        if result.call_id is None:
            refused = fail(EXIT_REFUSED, result.reason)
            refused.originates = _originates(app)
            return refused
        call_id = result.call_id
        print(f"calling {e164} (campaign {campaign.name}, call {call_id})", file=out,
              flush=True)
        summary = await _wait_final(app, call_id, req.timeout_s, printer, interrupt)
        printer.end_line()
        report = CallReport(EXIT_OK, "finished", call_id, summary,
                            originates=_originates(app))
        if summary is None or not is_final_status(summary.status):
            report.exit_code, report.reason = EXIT_ERROR, "the call did not finish in time"
        found = await recordings(store, call_id)
        report.recording = found[0][0] if found else None
        _print_report(report, out)
        return report
    finally:
        printer.end_line()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await app.stop()


def _originates(app: App) -> int | None:
    return len(app.sim.actions_named("Originate")) if app.sim is not None else None


async def _final(store: Store, call_id: str, until: float,
                 interrupt: asyncio.Event | None = None) -> AttemptSummary | None:
    """The attempt once the dialer has fully processed its result (or at `until`, or
    when interrupted)."""
    loop = asyncio.get_running_loop()
    while loop.time() < until and not (interrupt is not None and interrupt.is_set()):
        if await settled(store, [call_id]):
            break
        await asyncio.sleep(0.1)  # results land in the store; poll it
    return await attempt_summary(store, call_id)


async def _wait_final(app: App, call_id: str, timeout_s: float, printer: TranscriptPrinter,
                      interrupt: asyncio.Event) -> AttemptSummary | None:
    """Until the dialer has stored the final result; past the timeout (or on Ctrl-C),
    hang up first."""
    store = app.store
    assert store is not None
    loop = asyncio.get_running_loop()
    await _final(store, call_id, loop.time() + timeout_s, interrupt)
    if await settled(store, [call_id]):
        return await attempt_summary(store, call_id)
    why = "interrupted" if interrupt.is_set() else f"timeout after {timeout_s:g} s"
    printer.note(f"{why}: hanging up")
    with contextlib.suppress(Exception):
        await _hangup(app, call_id)
    return await _final(store, call_id, loop.time() + HANGUP_WAIT_S)


async def _hangup(app: App, call_id: str) -> None:
    """AMI Hangup of the call's channel (found by its uniqueid, the call id)."""
    client = app.client
    assert client is not None
    for msg in await client.status():
        channel = msg.get("Channel")
        if (msg.get("Uniqueid") or "").lower() == call_id.lower() and channel:
            await client.send_action([("Action", "Hangup"), ("Channel", channel),
                                      ("Cause", "16")])


def _print_report(report: CallReport, out: TextIO) -> None:
    s = report.summary
    if s is None:
        print("status: unknown", file=out)
        return
    duration = f"{s.duration_s:.1f} s" if s.duration_s is not None else "-"
    lines = [f"status: {s.status}", f"disposition: {s.disposition or '-'}",
             f"duration: {duration}",
             f"recording: {report.recording if report.recording else '-'}"]
    if s.failure:
        lines.insert(1, f"failure: {s.failure}")
    print("\n".join(lines), file=out, flush=True)
