"""Scenario file for the PBX simulator: how each called number behaves."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from televox_pbx.config.loader import load_model


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Behaviour(StrEnum):
    ANSWER = "answer"
    BUSY = "busy"  # SIP 486, Q.850 17
    RING_OUT = "ring_out"  # rings until the Originate Timeout: Q.850 19 / SIP 480
    NOT_FOUND = "not_found"  # SIP 404, Q.850 1
    UNAVAILABLE = "unavailable"  # SIP 503, Q.850 34
    NO_LISTENER = "no_listener"  # SIP 408 after timer B, Q.850 18
    VOICEMAIL = "voicemail"  # answers; AMD says MACHINE; greeting + beep, then listens
    NO_ENDPOINT = "no_endpoint"  # the trunk is not configured: no channel at all


class ScriptItem(_Strict):
    """One thing the callee does. Exactly one of say / wav / pause_s / dtmf."""

    say: str | None = None
    wav: Path | None = None
    pause_s: float | None = Field(default=None, ge=0)
    dtmf: str | None = Field(default=None, pattern=r"^[0-9*#A-D]+$")
    at_s: float | None = Field(default=None, ge=0)  # earliest start, seconds after audio connects
    barge_in: bool = False  # start on time even while the agent is talking

    @model_validator(mode="after")
    def _one_action(self) -> ScriptItem:
        chosen = [n for n in ("say", "wav", "pause_s", "dtmf") if getattr(self, n) is not None]
        if len(chosen) != 1:
            raise ValueError("each script item needs exactly one of say, wav, pause_s, dtmf")
        return self


class Callee(_Strict):
    behaviour: Behaviour = Behaviour.ANSWER
    ring_s: float = Field(default=0.5, ge=0)
    script: list[ScriptItem] = Field(default_factory=list)
    hangup_after_s: float | None = Field(default=None, gt=0)  # seconds after answer
    greeting: str = "Hi, you have reached my voicemail. Please leave a message after the tone."
    amd_status: str | None = None  # overrides HUMAN / MACHINE
    amd_cause: str | None = None
    amd_delay_s: float = Field(default=1.9, ge=0)  # how long AMD() listens before deciding
    # Wait to be answered: before each line (unless barge_in), wait for the agent to speak
    # after the callee's previous words and then to pause, as a person on the phone does.
    await_reply: bool = False


class Scenario(_Strict):
    default: Callee = Callee()
    numbers: dict[str, Callee] = Field(default_factory=dict)
    inbound: Callee = Callee()  # how a caller behaves on start_inbound()
    timer_b_s: float = Field(default=32.0, gt=0)
    frame_ms: int = Field(default=20, description="AudioSocket audio frame length: 20 or 30 ms")
    no_traffic_timeout_s: float = Field(default=2.0, gt=0)
    turn_gap_s: float = Field(default=0.6, ge=0)  # polite callee waits this much agent silence
    max_turn_wait_s: float = Field(default=8.0, ge=0)
    trunks: list[str] | None = None  # None = every trunk exists

    @model_validator(mode="after")
    def _frame(self) -> Scenario:
        if self.frame_ms not in (20, 30):
            raise ValueError("frame_ms must be 20 or 30")
        return self

    def callee_for(self, number: str) -> Callee:
        digits = number.lstrip("+")
        return self.numbers.get(number) or self.numbers.get(digits) or \
            self.numbers.get("+" + digits) or self.default


def load_scenario(path: Path) -> Scenario:
    """Raises ConfigError with file:line: field messages."""
    return load_model(path, Scenario)
