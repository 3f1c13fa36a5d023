"""When a campaign may call: its calling window and how each callee's time zone is found
(the `calling_window` and `timezone` blocks of a campaign file)."""

from __future__ import annotations

import re
from datetime import time
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Field,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)

from televox_pbx.config.strict import Strict as _Strict

# TCPA quiet hours: never before 08:00 or after 21:00 local time without a legal override.
LEGAL_EARLIEST = time(8, 0)
LEGAL_LATEST = time(21, 0)


class Weekday(StrEnum):
    MON = "mon"
    TUE = "tue"
    WED = "wed"
    THU = "thu"
    FRI = "fri"
    SAT = "sat"
    SUN = "sun"

    @property
    def index(self) -> int:  # type: ignore[override]  # shadows str.index on purpose
        """Monday is 0, as datetime.weekday()."""
        return list(Weekday).index(self)


_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")


def _clock_time(value: Any) -> Any:
    """Accept 'H:MM' as well as 'HH:MM[:SS]'; refuse bare numbers (seconds? minutes?)."""
    if isinstance(value, str) and (m := _CLOCK.match(value.strip())):
        return f"{int(m.group(1)):02d}:{m.group(2)}:{m.group(3) or '00'}"
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError("write a clock time as 'HH:MM', e.g. '09:00'")
    return value


# A local wall-clock time, written 'HH:MM' in YAML. The schema says so explicitly because
# JSON Schema's "format: time" demands seconds and a UTC offset, which editors would flag.
ClockTime = Annotated[
    time,
    BeforeValidator(_clock_time),
    WithJsonSchema({"type": "string", "pattern": r"^([01]?\d|2[0-3]):[0-5]\d(:[0-5]\d)?$",
                    "examples": ["09:00", "20:30"]}),
]




class CallingWindow(_Strict):
    # Field validators below (not one model validator) so each error names the field it is
    # about; legal_override comes first so they can see it.
    legal_override: bool = Field(
        default=False,
        description="Allow a window wider than 08:00-21:00 (you own the legal risk).")
    start: ClockTime = Field(default=time(9, 0), description="Earliest local time, 'HH:MM'.")
    end: ClockTime = Field(default=time(20, 0), validate_default=True,
                           description="Latest local time to start a call, 'HH:MM'.")
    weekdays: list[Weekday] = Field(
        default_factory=lambda: [Weekday.MON, Weekday.TUE, Weekday.WED, Weekday.THU,
                                 Weekday.FRI, Weekday.SAT],
        min_length=1, description="Days calls may be placed (mon..sun).")

    @field_validator("start")
    @classmethod
    def _start(cls, v: time, info: ValidationInfo) -> time:
        if v < LEGAL_EARLIEST and not info.data.get("legal_override", False):
            raise ValueError("earlier than 08:00 needs calling_window.legal_override: true")
        return v

    @field_validator("end")
    @classmethod
    def _end(cls, v: time, info: ValidationInfo) -> time:
        if v > LEGAL_LATEST and not info.data.get("legal_override", False):
            raise ValueError("later than 21:00 needs calling_window.legal_override: true")
        start = info.data.get("start")
        if start is not None and start >= v:
            raise ValueError(f"must be after start ({start:%H:%M})")
        return v


class TimezonePolicy(_Strict):
    source: Literal["contact", "number", "fixed"] = Field(
        default="contact",
        description="contact: the contact's timezone column where it is one of the "
                    "number's zones, else the number's zones; number: only the number's "
                    "zones; fixed: fixed_zone for everyone.")
    fixed_zone: str | None = Field(default=None, validate_default=True,
                                   description="IANA zone, e.g. America/New_York.")
    trust_contact_timezone: bool = Field(
        default=False, validate_default=True,
        description="source contact only: use the contact's timezone even where the "
                    "number says otherwise (a moved mobile). Off: such a contact is held.")

    @field_validator("fixed_zone")
    @classmethod
    def _zone(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is None:
            if info.data.get("source") == "fixed":
                raise ValueError("required when source is 'fixed'")
            return v
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {v!r}") from exc
        return v

    @field_validator("trust_contact_timezone")
    @classmethod
    def _trust(cls, v: bool, info: ValidationInfo) -> bool:
        if v and info.data.get("source", "contact") != "contact":
            raise ValueError("only applies when source is 'contact'")
        return v
