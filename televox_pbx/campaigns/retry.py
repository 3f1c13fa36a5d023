"""What one attempt's result means for its lead: final, next phone, or next pass.

Breadth-first: within a pass each lead moves through its phones; a lead that has tried
every phone waits for the next pass, which the dialer opens retry_interval_minutes after
the whole pass is done, up to max_attempts_per_phone passes. Busy is retried like
no-answer (the person exists and may pick up later).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from televox_pbx.config.campaign import RetryPolicy
from televox_pbx.domain import AmdStatus, CallStatus, Disposition, FailureKind
from televox_pbx.store.dial_queue import ContactUpdate


class Result(StrEnum):
    COMPLETED = "completed"
    OPTED_OUT = "opted_out"
    CALLBACK = "callback"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    FAILED = "failed"
    VOICEMAIL = "voicemail"
    WRONG_NUMBER = "wrong_number"
    INVALID = "invalid"  # the network says the number does not exist (404, cause 1)
    DROPPED = "dropped"  # answered, then cut by the PBX
    DNC = "dnc"


# Final contact status once a retryable result has used up every phone and pass.
_EXHAUSTED = {Result.NO_ANSWER: "no_answer", Result.BUSY: "busy", Result.FAILED: "failed",
              Result.VOICEMAIL: "voicemail", Result.WRONG_NUMBER: "failed",
              Result.INVALID: "failed", Result.DNC: "dnc"}
RETRYABLE = frozenset(_EXHAUSTED)
# "Did not answer": what retry.redial_no_answer: false never dials again.
_UNANSWERED = frozenset({Result.NO_ANSWER, Result.BUSY, Result.VOICEMAIL})
# Results that say nothing about whether the phone rings: they don't count as an attempt.
UNCOUNTED = frozenset({Result.DNC})


def classify(status: CallStatus, disposition: Disposition | None, turns: int | None,
             amd: AmdStatus | None = None, failure: FailureKind | None = None) -> Result:
    """One attempt's result. An explicit agent disposition wins over the call status,
    except that a 'completed' call of one turn or less is a no-answer."""
    if status is CallStatus.FAILED and failure is FailureKind.INVALID_NUMBER:
        return Result.INVALID
    if disposition is Disposition.OPT_OUT:
        return Result.OPTED_OUT
    if disposition in (Disposition.INTERESTED, Disposition.NOT_INTERESTED):
        return Result.COMPLETED
    if disposition is Disposition.CALLBACK:
        return Result.CALLBACK
    if disposition is Disposition.WRONG_NUMBER:
        return Result.WRONG_NUMBER
    if disposition is Disposition.VOICEMAIL:
        return Result.VOICEMAIL
    if disposition is Disposition.NO_ANSWER:
        return Result.NO_ANSWER
    if status is CallStatus.COMPLETED:
        if amd is AmdStatus.MACHINE:
            return Result.VOICEMAIL
        return Result.COMPLETED if (turns or 0) > 1 else Result.NO_ANSWER
    return {CallStatus.NO_ANSWER: Result.NO_ANSWER, CallStatus.BUSY: Result.BUSY,
            CallStatus.VOICEMAIL: Result.VOICEMAIL,
            CallStatus.DROPPED: Result.DROPPED}.get(status, Result.FAILED)


def next_step(result: Result, *, position: int, live_positions: list[int], retry_pass: int,
              policy: RetryPolicy, last_disposition: str | None, now: datetime,
              answered_at: datetime | None = None,
              has_callback: bool = False, dropped_before: int = 0) -> ContactUpdate:
    """The contact's next state. `live_positions` are its phones still worth dialling
    (wrong numbers, invalid and DNC phones already removed). `dropped_before`: earlier
    attempts of this contact the PBX cut after answer (this one not included)."""
    if result is Result.OPTED_OUT:
        return ContactUpdate("opted_out", position, retry_pass, None, last_disposition)
    if result is Result.COMPLETED or (result is Result.CALLBACK and not has_callback):
        return ContactUpdate("completed", position, retry_pass, None, last_disposition)
    if result is Result.CALLBACK:
        return ContactUpdate("callback", position, retry_pass, None, last_disposition)
    if result is Result.DROPPED:
        # The person was reached and cut off by our side of the trunk: the same phone again
        # after the retry interval, as often as the policy allows; then they count as reached.
        if dropped_before < policy.dropped_retries:
            again = now + timedelta(minutes=policy.retry_interval_minutes)
            return ContactUpdate("pending", position, retry_pass, again, last_disposition)
        return ContactUpdate("completed", position, retry_pass, None, last_disposition)
    if not policy.redial_no_answer and result in _UNANSWERED:
        return ContactUpdate(_EXHAUSTED[result], position, retry_pass, None, last_disposition)
    hold: datetime | None = None
    if policy.skip_answered_within_hours and answered_at is not None:
        hold = answered_at + timedelta(hours=policy.skip_answered_within_hours)
        hold = hold if hold > now else None
    later = [p for p in live_positions if p > position]
    if later:  # next phone, same pass, back of the line
        return ContactUpdate("pending", later[0], retry_pass, hold or now, last_disposition)
    if live_positions and retry_pass < policy.max_attempts_per_phone:
        # The next pass opens for everyone at once; the dialer enforces the interval.
        return ContactUpdate("pending", live_positions[0], retry_pass + 1, hold,
                             last_disposition)
    return ContactUpdate(_EXHAUSTED[result], position, retry_pass, None, last_disposition)
