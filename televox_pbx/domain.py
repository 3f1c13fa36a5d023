"""Domain types shared across packages (calls, outcomes, dispositions).

Kept dependency-free so every package can import it without cycles.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class CallStatus(StrEnum):
    """What happened to one attempt, as decided by the call tracker."""

    ORIGINATED = "originated"  # Originate sent, nothing heard back yet
    RINGING = "ringing"
    ANSWERED = "answered"  # answered, still in progress
    COMPLETED = "completed"  # answered and then hung up
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    FAILED = "failed"
    VOICEMAIL = "voicemail"
    DROPPED = "dropped"  # answered, then cut by a PBX restart or fault (or our own crash)

    @property
    def is_final(self) -> bool:
        return self in _FINAL


_FINAL = {CallStatus.COMPLETED, CallStatus.NO_ANSWER, CallStatus.BUSY, CallStatus.FAILED,
          CallStatus.VOICEMAIL, CallStatus.DROPPED}


class FailureKind(StrEnum):
    INVALID_NUMBER = "invalid_number"  # Q.850 1 / SIP 404
    CONGESTION = "congestion"  # Q.850 34 / SIP 503
    NETWORK = "network"  # Q.850 38
    NO_CHANNEL = "no_channel"  # endpoint not configured, originate never made a channel
    PBX_FAULT = "pbx_fault"  # the PBX restarted or the link died under the call
    DAEMON_RESTART = "daemon_restart"  # our process died; what followed is not known
    OTHER = "other"


class Disposition(StrEnum):
    INTERESTED = "INTERESTED"
    NOT_INTERESTED = "NOT_INTERESTED"
    CALLBACK = "CALLBACK"
    VOICEMAIL = "VOICEMAIL"
    WRONG_NUMBER = "WRONG_NUMBER"
    NO_ANSWER = "NO_ANSWER"
    OPT_OUT = "OPT_OUT"
    COMPLETED = "COMPLETED"


class AmdStatus(StrEnum):
    HUMAN = "HUMAN"
    MACHINE = "MACHINE"
    NOTSURE = "NOTSURE"
    HANGUP = "HANGUP"


@dataclass(frozen=True, slots=True)
class OriginateRequest:
    """Everything the AMI layer needs to place one attempt.

    `call_id` is the attempt's UUID: AMI ActionID, ChannelId, TELEVOX_CALL_ID and the
    AudioSocket UUID all carry it.
    """

    call_id: str
    phone: str  # E.164
    trunk: str  # PJSIP endpoint name of the SIP trunk
    caller_id: str
    context: str = "televox-outbound"
    exten: str = "s"
    priority: int = 1
    ring_timeout_s: int = 30
    variables: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CallOutcome:
    """One attempt's result, produced by the tracker from the AMI event stream."""

    call_id: str
    status: CallStatus
    failure: FailureKind | None = None
    hangup_cause: int | None = None  # Q.850
    sip_code: int | None = None  # from TechCause
    amd_status: AmdStatus | None = None
    amd_cause: str | None = None
    originated_at: datetime | None = None
    ringing_at: datetime | None = None
    answered_at: datetime | None = None
    hangup_at: datetime | None = None

    @property
    def duration_s(self) -> float | None:
        if self.answered_at is None or self.hangup_at is None:
            return None
        return (self.hangup_at - self.answered_at).total_seconds()
