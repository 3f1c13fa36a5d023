"""One call now, whoever places it: the daemon for a `televox call` that reached it over
the control channel, or the CLI's own App when no daemon runs. Both turn a number and a
campaign into a contact (through the importer) and dial it with `Dialer.call_now`, the
dial path campaigns use; this module holds what they share."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from televox_pbx.ami.client import AmiClient
from televox_pbx.campaigns.importer import RowStatus, import_records
from televox_pbx.campaigns.mapping import MappingError
from televox_pbx.clock import Clock
from televox_pbx.config.campaign import Campaign
from televox_pbx.config.loader import ConfigError, campaign_files, find_campaign, load_campaign
from televox_pbx.config.settings import Settings
from televox_pbx.store import Store
from televox_pbx.store.attempts import has_live_attempt
from televox_pbx.store.call_lookup import (
    AttemptSummary,
    attempt_summary,
    contact_for_phone,
    settled,
)

ADHOC_CAMPAIGN = "adhoc-call"
# Used for ad-hoc calls on the embedded simulator when nothing better is known.
SIM_CALLER_ID = "+15550100000"
SIM_TRUNK = "trunk"
DEFAULT_TIMEOUT_S = 900.0
MAX_TIMEOUT_S = 24 * 3600.0
# After the timeout hangs the call up, how long the PBX gets to report the hang-up.
HANGUP_WAIT_S = 15.0
HANGUP_RETRY_S = 1.0
# How often the store is asked whether the call's result has landed.
POLL_S = 0.1
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

    def to_wire(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_wire(cls, args: Mapping[str, Any]) -> CallRequest:
        """Checked field by field: the daemon takes nothing it did not expect."""
        known = {f.name for f in fields(cls)}
        extra = sorted(set(args) - known)
        if extra:
            raise CallError(f"unknown request fields: {', '.join(extra)}")
        kw: dict[str, Any] = {}
        for name in ("phone", "campaign", "opening", "goal", "name", "timezone",
                     "caller_id", "trunk", "persona", "business"):
            value = args.get(name)  # null: the default
            if value is not None:
                if not isinstance(value, str):
                    raise CallError(f"{name}: expected text")
                kw[name] = value
        if "phone" not in kw:
            raise CallError("phone: required")
        variables = args.get("variables", {})
        if not isinstance(variables, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in variables.items()):
            raise CallError("variables: expected an object of text values")
        kw["variables"] = dict(variables)
        timeout = args.get("timeout_s", DEFAULT_TIMEOUT_S)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or \
                not 0 < timeout <= MAX_TIMEOUT_S:
            raise CallError(f"timeout_s: expected seconds in (0, {MAX_TIMEOUT_S:g}]")
        kw["timeout_s"] = float(timeout)
        return cls(**kw)


def check_request(req: CallRequest) -> None:
    """What can be told wrong before anything is asked of the store."""
    if req.timezone is not None:
        try:
            ZoneInfo(req.timezone.strip())
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise CallError(f"--timezone {req.timezone!r}: not a known time zone (use an "
                            "IANA name such as America/Chicago)") from exc


def campaign_for(settings: Settings, req: CallRequest) -> Campaign:
    """The named campaign's YAML, or an ad-hoc one (default calling window and zones)."""
    check_request(req)
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


async def live_call(store: Store, e164: str) -> bool:
    """A quick look for a refusal in words before anything loads; the dialer's claim is
    what decides (with the store's one-live-attempt-per-number guard)."""
    return await has_live_attempt(store, e164)


async def contact_id_for(store: Store, campaign: Campaign, campaign_id: int, req: CallRequest,
                         e164: str, *, actor: str) -> int:
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
                                          actor=actor, explicit=explicit)
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


# --- until the call's result is stored ---------------------------------------------------


async def _until_settled(store: Store, clock: Clock, call_id: str, until: float,
                         interrupt: asyncio.Event | None = None) -> None:
    while clock.monotonic() < until and not (interrupt is not None and interrupt.is_set()):
        if await settled(store, [call_id]):
            return
        await clock.sleep(POLL_S)  # results land in the store; poll it


async def wait_final(store: Store, clock: Clock, call_id: str, timeout_s: float,
                     interrupt: asyncio.Event, hangup: Callable[[], Awaitable[None]],
                     note: Callable[[str], None]) -> AttemptSummary | None:
    """The attempt once the dialer has fully processed its result; past the timeout (or
    when interrupted) the call is hung up first, and its result still awaited."""
    await _until_settled(store, clock, call_id, clock.monotonic() + timeout_s, interrupt)
    if await settled(store, [call_id]):
        return await attempt_summary(store, call_id)
    note(("interrupted" if interrupt.is_set() else f"timeout after {timeout_s:g} s")
         + ": hanging up")
    deadline = clock.monotonic() + HANGUP_WAIT_S
    # Again and again: just after the Originate the PBX may not list the channel yet.
    while not await settled(store, [call_id]) and clock.monotonic() < deadline:
        with contextlib.suppress(Exception):
            await hangup()
        await _until_settled(store, clock, call_id,
                             min(deadline, clock.monotonic() + HANGUP_RETRY_S))
    return await attempt_summary(store, call_id)


async def hangup(client: AmiClient, call_id: str) -> None:
    """AMI Hangup of the call's channel (found by its uniqueid, the call id)."""
    for msg in await client.status():
        channel = msg.get("Channel")
        if (msg.get("Uniqueid") or "").lower() == call_id.lower() and channel:
            await client.send_action([("Action", "Hangup"), ("Channel", channel),
                                      ("Cause", "16")])


def summary_to_wire(summary: AttemptSummary | None) -> dict[str, Any] | None:
    if summary is None:
        return None
    return {"status": summary.status, "disposition": summary.disposition,
            "duration_s": summary.duration_s, "failure": summary.failure,
            "hangup_cause": summary.hangup_cause, "turns": summary.turns}


def summary_from_wire(data: object) -> AttemptSummary | None:
    if not isinstance(data, dict):
        return None
    try:
        duration = data.get("duration_s")
        cause = data.get("hangup_cause")
        return AttemptSummary(
            status=str(data["status"]), disposition=_opt_str(data.get("disposition")),
            duration_s=float(duration) if duration is not None else None,
            failure=_opt_str(data.get("failure")),
            hangup_cause=int(cause) if cause is not None else None,
            turns=int(data.get("turns") or 0))
    except (KeyError, TypeError, ValueError):
        return None


def _opt_str(value: object) -> str | None:
    return None if value is None else str(value)
