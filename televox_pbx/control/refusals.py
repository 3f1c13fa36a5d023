"""Why a call was not placed, in words an operator can act on.

A refusal has a stable code (the first word of the CLI's "call refused: CODE: ..." line)
and a sentence. Codes: in_call, dnc, outside_window, unknown_timezone, invalid_number,
capacity, and refused for anything else the dialer says.

The dialer's answer (`CallNowResult`) carries only a sentence today; when it gains a
machine-readable `code`, `from_call_now` reads that first and only falls back to the
sentence for results without one (`_DIALER_CODES` maps its names onto ours).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from televox_pbx.campaigns.gate import GateDecision, GateReason
from televox_pbx.config.campaign import Campaign

IN_CALL, DNC, WINDOW, UNKNOWN_TZ = "in_call", "dnc", "outside_window", "unknown_timezone"
INVALID, CAPACITY, OTHER = "invalid_number", "capacity", "refused"

# The dialer's codes (CallNowResult.code) -> ours.
_DIALER_CODES = {"in_call": IN_CALL, "dnc": DNC, "opted_out": DNC, "window": WINDOW,
                 "outside_window": WINDOW, "unknown_tz": UNKNOWN_TZ,
                 "unknown_timezone": UNKNOWN_TZ, "invalid_number": INVALID,
                 "capacity": CAPACITY}
_GATE_CODES = {GateReason.DNC: DNC, GateReason.OUTSIDE_WINDOW: WINDOW,
               GateReason.UNKNOWN_TIMEZONE: UNKNOWN_TZ, GateReason.INVALID_NUMBER: INVALID}
# How many candidate zones a sentence names before it says "and N more".
_ZONES_NAMED = 4


@dataclass(frozen=True, slots=True)
class Refusal:
    code: str
    text: str

    @property
    def reason(self) -> str:
        return f"{self.code}: {self.text}"


def in_call() -> Refusal:
    return Refusal(IN_CALL, "already in a call: this number has a call in progress (one "
                            "live call per number); try again once it has ended")


def from_gate(decision: GateDecision, campaign: Campaign, workspace: str) -> Refusal:
    """The gate said no (`decision.allowed` is False)."""
    code = _GATE_CODES.get(decision.reason, OTHER)
    if code == DNC:
        return Refusal(DNC, f"the number is on the DNC list (workspace {workspace}); it is "
                            "never called")
    if code == WINDOW:
        return Refusal(WINDOW, _window_text(decision))
    if code == UNKNOWN_TZ:
        return Refusal(UNKNOWN_TZ, _unknown_zone_text(campaign))
    if code == INVALID:
        return Refusal(INVALID, "not a valid phone number")
    return Refusal(OTHER, decision.detail)


def _window_text(decision: GateDecision) -> str:
    zones = decision.zones
    if len(zones) == 1:
        where = f"zone {zones[0]}"
    elif zones:
        named = ", ".join(zones[:_ZONES_NAMED])
        more = len(zones) - _ZONES_NAMED
        where = f"zones {named}" + (f" and {more} more" if more > 0 else "")
    else:
        where = "the callee's zone"
    text = f"outside the calling window in {where}"
    opens = decision.next_open_at
    if opens is None:
        return text + ("; the window is never open in all of them at once (give the "
                       "callee's own zone with --timezone or the contact's timezone column)")
    text += f"; the window opens at {opens.isoformat()}"
    if len(zones) == 1:
        text += f" ({opens.astimezone(ZoneInfo(zones[0])):%a %H:%M} local time)"
    return text


def _unknown_zone_text(campaign: Campaign) -> str:
    text = "unknown time zone: nothing tells where this number rings"
    if campaign.timezone_policy.source == "number":
        return text + (f"; campaign {campaign.name} takes zones only from the number "
                       "(timezone_policy.source: number): set source to 'contact' and give "
                       "the contact's timezone, or use 'fixed' with a fixed_zone")
    return text + ("; set one with --timezone ZONE (an IANA name such as America/Chicago) "
                   "or in the contact's timezone column")


def from_call_now(reason: str, code: str | None, campaign: Campaign, workspace: str,
                  recheck: Callable[[], GateDecision]) -> Refusal:
    """The dialer did not dial. `recheck` asks the pure window half of the gate again, for
    the zone and opening time a window refusal should name."""
    ours = _DIALER_CODES.get(code or "") or _code_from_words(reason)
    if ours in (WINDOW, UNKNOWN_TZ):
        decision = recheck()
        if not decision.allowed:
            return from_gate(decision, campaign, workspace)
    if ours == IN_CALL:
        return in_call()
    if ours == DNC:
        return Refusal(DNC, f"the number is on the DNC list or opted out ({reason})")
    if ours == CAPACITY:
        return Refusal(CAPACITY, "all lines are busy (concurrency limit); try again when a "
                                 "call has ended")
    return Refusal(ours, reason)


def _code_from_words(reason: str) -> str:
    """For dialer answers without a code: today's sentences."""
    words = reason.lower()
    if "already" in words and "call" in words:
        return IN_CALL
    if "dnc" in words or "opted_out" in words:
        return DNC
    if "outside window" in words:
        return WINDOW
    if "no time zone" in words:
        return UNKNOWN_TZ
    if "concurrency" in words or "lines busy" in words:
        return CAPACITY
    if "not a valid phone" in words:
        return INVALID
    return OTHER
