"""Tool schema offered to the LLM, and validation of the calls it makes."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from televox_pbx.agent.custom_tools import CustomTool, custom_tools_schema
from televox_pbx.agent.dispositions import parse_disposition
from televox_pbx.campaigns.windows import in_window_everywhere
from televox_pbx.config.calling_window import CallingWindow
from televox_pbx.config.campaign import Campaign
from televox_pbx.domain import Disposition
from televox_pbx.voice.interfaces import ToolCall


class ToolName(StrEnum):
    SET_DISPOSITION = "set_disposition"
    OPT_OUT = "opt_out"
    SCHEDULE_CALLBACK = "schedule_callback"
    TRANSFER = "transfer"
    END_CALL = "end_call"


def _fn(name: ToolName, description: str, properties: dict[str, Any],
        required: list[str]) -> dict[str, Any]:
    return {"type": "function", "function": {
        "name": name.value, "description": description,
        "parameters": {"type": "object", "properties": properties, "required": required,
                       "additionalProperties": False}}}


def tools_schema(*, transfer_available: bool, allowed: Collection[str] | None = None,
                 custom: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """OpenAI-style tool list under {"tools": [...]}; stable per campaign for prompt caching.
    `allowed`: the built-in tools an agent file lets its agent use (None: all);
    `custom`: the agent's own tools, already in this format."""
    tools = [
        _fn(ToolName.SET_DISPOSITION, "Record the outcome of the call.",
            {"disposition": {"type": "string", "enum": [d.value for d in Disposition]},
             "note": {"type": "string"}}, ["disposition"]),
        _fn(ToolName.OPT_OUT, "The person asked not to be called again. Adds the number to "
            "the do-not-call list and ends the call politely.", {}, []),
        _fn(ToolName.SCHEDULE_CALLBACK, "Book a call back at a time the person chose, in "
            "their own local time.",
            {"when": {"type": "string",
                      "description": "Local date and time, ISO 8601, e.g. 2026-03-03T15:00"}},
            ["when"]),
        _fn(ToolName.END_CALL, "Say goodbye and hang up.", {"reason": {"type": "string"}}, []),
    ]
    if transfer_available:
        tools.insert(3, _fn(ToolName.TRANSFER, "Transfer the person to a human colleague.",
                            {}, []))
    if allowed is not None:
        tools = [t for t in tools if t["function"]["name"] in allowed]
    return {"tools": [*tools, *custom]}


def tools_for(campaign: Campaign, *, transfer_port: bool) -> dict[str, Any]:
    """The tools a call of `campaign` offers. A campaign naming an agent file gets that
    agent's list whatever the campaign (transfer included when the agent allows it; a
    campaign without a target says it cannot transfer): the list sits before the agent's
    fixed part in the prompt, so every call of the agent shares one cached prefix."""
    profile = campaign.agent.profile
    if profile is None:
        return tools_schema(transfer_available=campaign.transfer is not None and transfer_port)
    return tools_schema(transfer_available=True, allowed=profile.builtin_tools,
                        custom=custom_tools_schema(profile.tools))


@dataclass(frozen=True, slots=True)
class SetDisposition:
    disposition: Disposition
    note: str = ""


@dataclass(frozen=True, slots=True)
class OptOut:
    pass


@dataclass(frozen=True, slots=True)
class ScheduleCallback:
    due_at: datetime  # aware
    zone: str | None  # the candidate zone the callee's words were read in


@dataclass(frozen=True, slots=True)
class Transfer:
    pass


@dataclass(frozen=True, slots=True)
class EndCall:
    reason: str = ""


@dataclass(frozen=True, slots=True)
class InvalidTool:
    name: str
    error: str


ToolAction = (SetDisposition | OptOut | ScheduleCallback | Transfer | EndCall | InvalidTool
              | CustomTool)


def parse_tool_call(call: ToolCall, *, now: datetime, zones: Sequence[str] = (),
                    window: CallingWindow | None = None) -> ToolAction:
    """Turn a model's tool call into a typed action, or say exactly what was wrong.

    `zones` are the callee's candidate zones, the ones the gate checks the window in for
    that number; `window` the campaign's calling window a callback must fall inside."""
    args = call.arguments
    match call.name:
        case ToolName.SET_DISPOSITION:
            disp = parse_disposition(args.get("disposition"))
            if disp is None:
                return InvalidTool(call.name, "unknown disposition")
            return SetDisposition(disp, str(args.get("note", "")))
        case ToolName.OPT_OUT:
            return OptOut()
        case ToolName.SCHEDULE_CALLBACK:
            return _parse_callback(args.get("when"), zones, window, now)
        case ToolName.TRANSFER:
            return Transfer()
        case ToolName.END_CALL:
            return EndCall(str(args.get("reason", "")))
    return InvalidTool(call.name, "no such tool")


_DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _parse_callback(raw: object, zones: Sequence[str], window: CallingWindow | None,
                    now: datetime) -> ToolAction:
    """A local time, read in each candidate zone of the callee (never in UTC by default).
    When the zones disagree, the latest reading that is inside the calling window in
    every zone is booked (the latest, so that it is early only where the window leaves
    no other choice); when no reading is, the booking is refused with a reason the agent
    can say, and it offers another time."""
    name = ToolName.SCHEDULE_CALLBACK
    if not isinstance(raw, str):
        return InvalidTool(name, "'when' must be an ISO date-time")
    try:
        when = datetime.fromisoformat(raw.strip())
    except ValueError:
        return InvalidTool(name, f"cannot read {raw!r} as a date-time")
    try:
        tzs = [ZoneInfo(z) for z in zones]
    except (ZoneInfoNotFoundError, ValueError):
        tzs = []  # one unknown candidate makes the whole answer unsafe
    if not tzs:
        return InvalidTool(name, "the person's time zone is not known, so no call back can "
                                 "be booked; ask them to call us back instead")
    if when.tzinfo is not None:
        readings = [(when, tzs[0].key)]
    else:  # the callee's own local time, in whichever candidate zone they are
        readings = [(when.replace(tzinfo=tz), tz.key) for tz in tzs]
    future = [r for r in readings if r[0] > now]
    if not future:
        return InvalidTool(name, "that time is in the past")
    if window is not None:
        future = [r for r in future if in_window_everywhere(window, tuple(tzs), r[0])]
        if not future:
            return InvalidTool(name, _outside_hours(window, [tz.key for tz in tzs]))
    due, zone = max(future)
    return ScheduleCallback(due, zone)


def _outside_hours(window: CallingWindow, zones: list[str]) -> str:
    days = [d.index for d in window.weekdays]
    names = ", ".join(_DAY_NAMES[i] for i in sorted(days))
    where = (f"in the person's time zone ({zones[0]})" if len(zones) == 1 else
             f"in every time zone the person may be in ({', '.join(zones)})")
    return (f"that time is outside the hours we may call: {window.start:%H:%M} to "
            f"{window.end:%H:%M}, {names}, {where}. Offer a time inside those hours.")
