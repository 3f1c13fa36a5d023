"""One campaign, as written in config/campaigns/<name>.yaml."""

from __future__ import annotations

import re
from datetime import datetime, time
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# Words that tell the callee they are talking to a machine. An opening line must contain
# one unless the campaign explicitly opts out (agent.allow_no_ai_disclosure).
AI_DISCLOSURE = re.compile(
    r"\b(AI|A\.I\.|artificial intelligence|automated (assistant|agent|call|system)|"
    r"virtual (assistant|agent)|a robot|a bot)\b",
    re.IGNORECASE,
)

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
    def index(self) -> int:
        """Monday is 0, as datetime.weekday()."""
        return list(Weekday).index(self)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AgentConfig(_Strict):
    persona_name: str = Field(min_length=1)
    business: str = Field(min_length=1)
    opening_line: str = Field(min_length=1, description="First words; {{NAME}}-style vars.")
    goal: str = Field(min_length=1)
    context: str = ""
    allow_no_ai_disclosure: bool = Field(
        False, description="Explicit override: allow an opening line with no AI disclosure.")

    @model_validator(mode="after")
    def _disclose_ai(self) -> AgentConfig:
        if not self.allow_no_ai_disclosure and not AI_DISCLOSURE.search(self.opening_line):
            raise ValueError(
                "opening_line must disclose that the caller is an AI (e.g. 'I'm an AI "
                "assistant'); set agent.allow_no_ai_disclosure: true to override")
        return self


class CallingWindow(_Strict):
    start: time = time(9, 0)
    end: time = time(20, 0)
    weekdays: list[Weekday] = Field(
        default_factory=lambda: [Weekday.MON, Weekday.TUE, Weekday.WED, Weekday.THU,
                                 Weekday.FRI, Weekday.SAT])
    legal_override: bool = Field(
        False, description="Allow a window wider than 08:00-21:00 (you own the legal risk).")

    @model_validator(mode="after")
    def _check(self) -> CallingWindow:
        if self.start >= self.end:
            raise ValueError("start must be before end")
        if not self.legal_override and (self.start < LEGAL_EARLIEST or self.end > LEGAL_LATEST):
            raise ValueError("window wider than 08:00-21:00 needs legal_override: true")
        if not self.weekdays:
            raise ValueError("weekdays must list at least one day")
        return self


class TimezonePolicy(_Strict):
    # contact: the contact's timezone column, falling back to the number's zones.
    # number: only the zones of the number. fixed: one zone for everyone.
    source: Literal["contact", "number", "fixed"] = "contact"
    fixed_zone: str | None = None

    @model_validator(mode="after")
    def _check(self) -> TimezonePolicy:
        if self.source == "fixed" and not self.fixed_zone:
            raise ValueError("fixed_zone is required when source is 'fixed'")
        if self.fixed_zone is not None:
            from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

            try:
                ZoneInfo(self.fixed_zone)
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise ValueError(f"unknown time zone {self.fixed_zone!r}") from exc
        return self


class Pacing(_Strict):
    calls_per_minute: float = Field(10.0, gt=0, le=600)
    max_concurrent: int = Field(2, ge=1, le=500)


class RetryPolicy(_Strict):
    retry_interval_minutes: int = Field(60, ge=0)
    max_attempts_per_phone: int = Field(3, ge=1, le=20)
    skip_answered_within_hours: int | None = Field(None, ge=1)


class VoicemailConfig(_Strict):
    action: Literal["hangup", "leave_message"] = "hangup"
    message: str | None = None

    @model_validator(mode="after")
    def _check(self) -> VoicemailConfig:
        if self.action == "leave_message" and not self.message:
            raise ValueError("message is required when action is 'leave_message'")
        return self


class SilenceConfig(_Strict):
    reprompt_after_s: float = Field(6.0, gt=0)
    hangup_after_s: float = Field(15.0, gt=0)
    max_call_duration_s: float = Field(600.0, gt=0)


class TransferConfig(_Strict):
    context: str = "from-internal"
    exten: str = Field(min_length=1)
    priority: int = 1


DtmfAction = Literal["opt_out", "transfer", "end_call", "interested", "callback"]


class Campaign(_Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    agent: AgentConfig
    caller_id: str = Field(min_length=1)
    trunk: str = Field(min_length=1, description="PJSIP endpoint of the SIP trunk")
    default_country: str = Field("US", pattern=r"^[A-Z]{2}$")
    calling_window: CallingWindow = CallingWindow()
    timezone_policy: TimezonePolicy = TimezonePolicy()
    pacing: Pacing = Pacing()
    retry: RetryPolicy = RetryPolicy()
    voicemail: VoicemailConfig = VoicemailConfig()
    amd: bool = Field(True, description="Run AMD() before the agent speaks")
    ring_timeout_s: int = Field(30, ge=5, le=120)
    silence: SilenceConfig = SilenceConfig()
    transfer: TransferConfig | None = None
    dtmf_actions: dict[str, DtmfAction] = Field(default_factory=dict)
    # CSV header -> field (name, first_name, last_name, email, phone1..phone10, timezone).
    import_mapping: dict[str, str] = Field(default_factory=dict)
    scheduled_start: datetime | None = None

    @field_validator("dtmf_actions")
    @classmethod
    def _digits(cls, v: dict[str, DtmfAction]) -> dict[str, DtmfAction]:
        for key in v:
            if key not in "0123456789*#" or len(key) != 1:
                raise ValueError(f"{key!r} is not a DTMF digit")
        return v

    @model_validator(mode="after")
    def _check(self) -> Campaign:
        if "transfer" in self.dtmf_actions.values() and self.transfer is None:
            raise ValueError("a dtmf 'transfer' action needs a transfer: section")
        if self.scheduled_start is not None and self.scheduled_start.tzinfo is None:
            raise ValueError("scheduled_start needs a UTC offset, e.g. 2026-12-01T09:00:00-05:00")
        return self
