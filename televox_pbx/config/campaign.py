"""One campaign, as written in config/campaigns/<name>.yaml."""

from __future__ import annotations

import os
import re
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Field,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from televox_pbx.config.agent import AgentFile
from televox_pbx.config.calling_window import CallingWindow, TimezonePolicy
from televox_pbx.config.ivr import IvrConfig
from televox_pbx.config.strict import Strict as _Strict
from televox_pbx.sms.segments import check_template

# The words that tell the callee they are talking to an AI: "AI" as a word (upper case:
# TTS reads a lower-case "ai" as "eye") or "artificial intelligence". "An automated
# assistant" or "a virtual agent" does not say it, and our promise is that the agent does.
# An opening line must contain one unless the campaign explicitly opts out
# (agent.allow_no_ai_disclosure).
AI_DISCLOSURE = re.compile(r"\bAI\b|\b(?i:artificial intelligence)\b")

AI_DISCLOSURE_MESSAGE = (
    "must disclose that the caller is an AI, with the word 'AI' or 'artificial "
    "intelligence' (e.g. 'I'm an AI assistant'); set agent.allow_no_ai_disclosure: true "
    "to override")

def has_ai_disclosure(text: str) -> bool:
    return AI_DISCLOSURE.search(text) is not None




class AgentConfig(_Strict):
    persona_name: str = Field(min_length=1)
    business: str = Field(min_length=1)
    # Declared before opening_line so its validator can see it (pydantic validates in order).
    allow_no_ai_disclosure: bool = Field(
        default=False,
        description="Explicit override: allow an opening line with no AI disclosure.")
    opening_line: str = Field(min_length=1, description="First words; {{NAME}}-style vars.")
    goal: str = Field(min_length=1)
    context: str = ""
    # The agent file a campaign names (`agent: NAME`), set by the loader; stored with the
    # campaign (its JSON in the store), so the dialer's calls keep its knowledge and tools.
    profile: SkipJsonSchema[AgentFile | None] = None

    def name_of_profile(self) -> str:
        return self.profile.name if self.profile is not None else ""

    # A field validator, not a model validator: it still runs (and reports at
    # agent.opening_line) when other fields of the campaign have errors.
    @field_validator("opening_line")
    @classmethod
    def _disclose_ai(cls, v: str, info: ValidationInfo) -> str:
        if not info.data.get("allow_no_ai_disclosure", False) and not has_ai_disclosure(v):
            raise ValueError(AI_DISCLOSURE_MESSAGE)
        return v


class Pacing(_Strict):
    calls_per_minute: float = Field(default=10.0, gt=0, le=600)
    max_concurrent: int = Field(default=2, ge=1, le=500)


class RetryPolicy(_Strict):
    retry_interval_minutes: int = Field(default=60, ge=0)
    max_attempts_per_phone: int = Field(default=3, ge=1, le=20)
    skip_answered_within_hours: int | None = Field(default=None, ge=1)
    skip_answered_within_days: int | None = Field(
        default=None, ge=1, le=3650,
        description="Skip a contact whose number any campaign reached in the last N days.")
    redial_no_answer: bool = Field(
        default=True,
        description="false: a contact who did not answer (no answer, busy, voicemail) is "
                    "not dialled again, on any of its phones.")
    dropped_retries: int = Field(
        default=1, ge=0, le=5,
        description="Redials of a contact whose answered call the PBX cut (restart, fault).")


class VoicemailConfig(_Strict):
    action: Literal["hangup", "leave_message"] = "hangup"
    message: str | None = Field(default=None, validate_default=True,
                                description="Spoken after the beep when leaving a message.")

    @field_validator("message")
    @classmethod
    def _message(cls, v: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("action") == "leave_message" and not (v and v.strip()):
            raise ValueError("required when action is 'leave_message'")
        return v


class SilenceConfig(_Strict):
    reprompt_after_s: float = Field(default=6.0, gt=0)
    hangup_after_s: float = Field(default=15.0, gt=0)
    max_call_duration_s: float = Field(default=600.0, gt=0)


class TransferConfig(_Strict):
    context: str = "from-internal"
    exten: str = Field(min_length=1)
    priority: int = 1


# stream: the daemon decides from the callee's first seconds of audio (voice/machine_
# detect.py), the agent ready to speak; asterisk: AMD() in the dialplan before the audio
# connects (asterisk/amd.conf); off: every answer is taken for a person.
AmdMode = Literal["stream", "asterisk", "off"]


def _amd_mode(value: Any) -> Any:
    """`amd: true` meant AMD() in the dialplan before `stream` existed: it still does."""
    if value is True:
        return "asterisk"
    if value is False:
        return "off"
    return value


class SmsConfig(_Strict):
    message: str = Field(
        min_length=1, description="The text sent to each contact; {{VARIABLES}} allowed. "
                                  "Rendered, it must fit one segment (160 GSM-7 or 70 UCS-2).")
    stop_confirmation: str = Field(
        default="You are unsubscribed and will get no more messages or calls from us. "
                "Reply START to undo.", min_length=1,
        description="Sent once when a number opts out by text.")
    start_confirmation: str = Field(
        default="You are subscribed again. Reply STOP to opt out.", min_length=1,
        description="Sent when START or UNSTOP takes a text opt-out back.")

    @field_validator("message", "stop_confirmation", "start_confirmation")
    @classmethod
    def _one_segment(cls, v: str) -> str:
        problem = check_template(v)
        if problem is not None:
            raise ValueError(problem)
        return v


DtmfAction = Literal["opt_out", "transfer", "end_call", "interested", "callback"]


class IntakeConfig(_Strict):
    """Webhook intake: a CRM POSTs leads to /api/v1/intake/<campaign>, signed with
    HMAC-SHA256 over "<timestamp>.<body>". The secret never lives in the YAML: it comes
    from secret_file or the env var secret_env."""

    enabled: bool = False
    secret_env: str | None = None
    secret_file: Path | None = None
    mapping: dict[str, str] = Field(
        default_factory=dict,
        description="Dotted path into the lead's JSON (list items by index: phones.0.number)"
                    " -> name, phone, phone1..10, timezone, email, first_name, last_name,"
                    " var:NAME or skip. Empty: every scalar in the JSON, guessed as for CSV.")
    max_age_s: int = Field(default=300, ge=30, le=3600,
                           description="Oldest timestamp accepted (either way), seconds.")

    @field_validator("secret_file")
    @classmethod
    def _one_source(cls, v: Path | None, info: ValidationInfo) -> Path | None:
        if v is not None and info.data.get("secret_env"):
            raise ValueError("give secret_env or secret_file, not both")
        return v

    @model_validator(mode="after")
    def _enabled_needs_secret(self) -> IntakeConfig:
        if self.enabled and not (self.secret_env or self.secret_file):
            raise ValueError("intake enabled: set secret_env or secret_file")
        return self

    def secret(self) -> bytes | None:
        if self.secret_file is not None:
            value = self.secret_file.read_text(encoding="utf-8").strip()
        else:
            value = os.environ.get(self.secret_env or "", "") if self.secret_env else ""
        return value.encode("utf-8") if value else None


def _agent_ref_schema(schema: dict[str, Any]) -> None:
    """`agent:` is the name of an agent file or, as before, an inline agent block."""
    inline = dict(schema)
    schema.clear()
    schema["anyOf"] = [{"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
                        "description": "The name of an agent in config/agents/."}, inline]


def _known_agent(value: Any) -> Any:
    # A name the model validator below did not resolve: no such agent file.
    if isinstance(value, str):
        raise ValueError(f"no agent {value!r}: expected agents/{value}.yaml (see `televox "
                         "agents list`)")
    return value


class Campaign(_Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
                      description="Must equal the file name without .yaml.")
    agent: Annotated[AgentConfig, BeforeValidator(_known_agent)] = Field(
        json_schema_extra=_agent_ref_schema,
        description="The agent's name (config/agents/NAME.yaml), or an inline agent block.")
    # With a named agent the campaign keeps its own opening line and goal here.
    allow_no_ai_disclosure: bool = Field(
        default=False,
        description="Explicit override: allow an opening line with no AI disclosure.")
    opening_line: str | None = Field(
        default=None, validate_default=True,
        description="With a named agent: first words; {{NAME}}-style vars.")
    goal: str | None = Field(default=None, validate_default=True,
                             description="With a named agent: what the call must achieve.")
    caller_id: str = Field(min_length=1, description="Number shown to the callee (E.164).")
    trunk: str = Field(min_length=1, description="PJSIP endpoint of the SIP trunk")
    channel: Literal["voice", "sms"] = Field(
        default="voice", description="voice: calls; sms: one text per contact (sms: section).")
    sms: SmsConfig | None = Field(default=None, validate_default=True,
                                  description="The message of an SMS campaign.")
    kind: Literal["conversation", "ivr"] = Field(
        default="conversation",
        description="conversation: the AI agent talks; ivr: the ivr: flow plays prompts and "
                    "gathers keys, with no LLM.")
    ivr: IvrConfig | None = Field(default=None, validate_default=True,
                                  description="The flow of an IVR campaign (kind: ivr).")
    default_country: str = Field(default="US", pattern=r"^[A-Z]{2}$",
                                 description="Region for numbers written without +country.")
    calling_window: CallingWindow = CallingWindow()
    timezone_policy: TimezonePolicy = TimezonePolicy()
    pacing: Pacing = Pacing()
    retry: RetryPolicy = RetryPolicy()
    voicemail: VoicemailConfig = VoicemailConfig()
    amd: Annotated[AmdMode, BeforeValidator(_amd_mode), WithJsonSchema(
        {"anyOf": [{"enum": ["stream", "asterisk", "off"]}, {"type": "boolean"}]})] = Field(
        default="stream",
        description="Answering-machine detection: stream (the daemon listens to the "
                    "callee's first words), asterisk (AMD() in the dialplan, 3-4.5 s of "
                    "silence first) or off. true and false from older files mean asterisk "
                    "and off.")
    ring_timeout_s: int = Field(default=30, ge=5, le=120)
    silence: SilenceConfig = SilenceConfig()
    transfer: TransferConfig | None = None
    dtmf_actions: dict[str, DtmfAction] = Field(
        default_factory=dict, description="Keypad digit -> action; quote the keys.")
    import_mapping: dict[str, str] = Field(
        default_factory=dict,
        description="CSV header -> name, first_name, last_name, email, timezone, phone, "
                    "phone1..phone10, var:NAME or skip.")
    scheduled_start: datetime | None = Field(
        default=None, description="Automatic start, with a UTC offset.")
    intake: IntakeConfig = IntakeConfig()
    groups: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list,
        description="Contact groups to call: resolved at start; later members join.")

    @field_validator("sms")
    @classmethod
    def _sms(cls, v: SmsConfig | None, info: ValidationInfo) -> SmsConfig | None:
        if v is None and info.data.get("channel") == "sms":
            raise ValueError("an SMS campaign (channel: sms) needs an sms: section with a "
                             "message")
        return v

    @field_validator("ivr")
    @classmethod
    def _ivr(cls, v: IvrConfig | None, info: ValidationInfo) -> IvrConfig | None:
        if v is None:
            if info.data.get("kind") == "ivr":
                raise ValueError("an IVR campaign (kind: ivr) needs an ivr: flow")
            return v
        agent = info.data.get("agent")
        first = v.first_prompt()
        # A synthetic voice says it is an AI, first, as the agent's opening line must.
        if v.uses_tts() and not (agent is not None and agent.allow_no_ai_disclosure) and (
                first is None or first.say is None or not has_ai_disclosure(first.say)):
            raise ValueError("the flow speaks with the TTS voice: its first prompt must be a "
                             "say: that " + AI_DISCLOSURE_MESSAGE.removeprefix("must "))
        return v

    @model_validator(mode="before")
    @classmethod
    def _resolve_agent(cls, data: Any, info: ValidationInfo) -> Any:
        """`agent: NAME` becomes that agent with this campaign's opening line and goal.
        The agent files come in the validation context (config/loader.py)."""
        agents = (info.context or {}).get("agents") or {}
        if not isinstance(data, dict) or not isinstance(data.get("agent"), str):
            return data
        profile = agents.get(data["agent"])
        if not isinstance(profile, AgentFile):
            return data
        # Placeholders where the campaign lacks a line: its own fields report that.
        line = data.get("opening_line")
        line = line if isinstance(line, str) and line.strip() else "-"
        allow = data.get("allow_no_ai_disclosure") is True
        merged = {"persona_name": profile.persona_name, "business": profile.business,
                  "opening_line": line, "goal": data.get("goal") or "-", "context": "",
                  # A line without disclosure is reported once, at the top-level field,
                  # and the campaign does not load; one that loads keeps its own flag.
                  "allow_no_ai_disclosure": allow or not has_ai_disclosure(line),
                  "profile": profile}
        return {**data, "agent": merged}

    @field_validator("opening_line", "goal")
    @classmethod
    def _own_lines(cls, v: str | None, info: ValidationInfo) -> str | None:
        agent = info.data.get("agent")
        if agent is None:
            return v  # the agent itself failed; that is reported
        field = info.field_name
        if agent.profile is None:
            if v is not None:
                raise ValueError(f"with an inline agent, write {field} inside agent:")
            return v
        if not (v and v.strip()):
            raise ValueError(f"required: the campaign names agent {agent.profile.name!r} "
                             f"and gives its own {field}")
        if (field == "opening_line" and not info.data.get("allow_no_ai_disclosure")
                and not has_ai_disclosure(v)):
            raise ValueError(AI_DISCLOSURE_MESSAGE.replace("agent.allow", "allow"))
        return v

    @field_validator("dtmf_actions", mode="before")
    @classmethod
    def _digit_keys(cls, v: Any) -> Any:
        # YAML reads `1: opt_out` with an integer key.
        if isinstance(v, dict):
            return {str(k) if isinstance(k, int) and not isinstance(k, bool) else k: a
                    for k, a in v.items()}
        return v

    @field_validator("dtmf_actions")
    @classmethod
    def _digits(cls, v: dict[str, DtmfAction],
                info: ValidationInfo) -> dict[str, DtmfAction]:
        for key in v:
            if key not in "0123456789*#" or len(key) != 1:
                raise ValueError(f"{key!r} is not a DTMF digit")
        # Absent from info.data means transfer: itself failed and is reported already.
        if "transfer" in v.values() and "transfer" in info.data and info.data["transfer"] is None:
            raise ValueError("a 'transfer' action needs a transfer: section")
        return v

    @field_validator("scheduled_start")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.tzinfo is None:
            raise ValueError("needs a UTC offset, e.g. 2026-12-01T09:00:00-05:00")
        return v
