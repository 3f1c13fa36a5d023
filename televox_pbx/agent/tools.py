"""Tool schema offered to the LLM, and validation of the calls it makes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from televox_pbx.agent.dispositions import parse_disposition
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


def tools_schema(*, transfer_available: bool) -> dict[str, Any]:
    """OpenAI-style tool list under {"tools": [...]}; stable per campaign for prompt caching."""
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
    return {"tools": tools}


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
    zone: str | None


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


ToolAction = SetDisposition | OptOut | ScheduleCallback | Transfer | EndCall | InvalidTool


def parse_tool_call(call: ToolCall, *, zone: str | None, now: datetime) -> ToolAction:
    """Turn a model's tool call into a typed action, or say exactly what was wrong."""
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
            return _parse_callback(args.get("when"), zone, now)
        case ToolName.TRANSFER:
            return Transfer()
        case ToolName.END_CALL:
            return EndCall(str(args.get("reason", "")))
    return InvalidTool(call.name, "no such tool")


def _parse_callback(raw: object, zone: str | None, now: datetime) -> ToolAction:
    if not isinstance(raw, str):
        return InvalidTool(ToolName.SCHEDULE_CALLBACK, "'when' must be an ISO date-time")
    try:
        when = datetime.fromisoformat(raw.strip())
    except ValueError:
        return InvalidTool(ToolName.SCHEDULE_CALLBACK, f"cannot read {raw!r} as a date-time")
    tz = ZoneInfo(zone) if zone else ZoneInfo("UTC")
    if when.tzinfo is None:
        when = when.replace(tzinfo=tz)  # the callee's own local time
    if when <= now:
        return InvalidTool(ToolName.SCHEDULE_CALLBACK, "that time is in the past")
    return ScheduleCallback(when, zone)
