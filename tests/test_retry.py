"""Result classification and the breadth-first retry plan (pure functions)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from televox_pbx.campaigns.retry import Result, classify, next_step
from televox_pbx.config.campaign import RetryPolicy
from televox_pbx.domain import AmdStatus, CallStatus, Disposition

NOW = datetime(2026, 1, 5, 15, tzinfo=UTC)
POLICY = RetryPolicy(retry_interval_minutes=30, max_attempts_per_phone=2)


@pytest.mark.parametrize(("status", "disp", "turns", "amd", "want"), [
    (CallStatus.COMPLETED, Disposition.OPT_OUT, 2, None, Result.OPTED_OUT),
    (CallStatus.COMPLETED, Disposition.INTERESTED, 1, None, Result.COMPLETED),
    (CallStatus.COMPLETED, Disposition.NOT_INTERESTED, 5, None, Result.COMPLETED),
    (CallStatus.COMPLETED, Disposition.COMPLETED, 5, None, Result.COMPLETED),
    (CallStatus.COMPLETED, Disposition.COMPLETED, 1, None, Result.NO_ANSWER),
    (CallStatus.COMPLETED, None, 1, None, Result.NO_ANSWER),
    (CallStatus.COMPLETED, None, None, None, Result.NO_ANSWER),
    (CallStatus.COMPLETED, None, 3, None, Result.COMPLETED),
    (CallStatus.COMPLETED, None, 0, AmdStatus.MACHINE, Result.VOICEMAIL),
    (CallStatus.COMPLETED, Disposition.WRONG_NUMBER, 2, None, Result.WRONG_NUMBER),
    (CallStatus.COMPLETED, Disposition.CALLBACK, 3, None, Result.CALLBACK),
    (CallStatus.BUSY, None, None, None, Result.BUSY),
    (CallStatus.NO_ANSWER, None, None, None, Result.NO_ANSWER),
    (CallStatus.VOICEMAIL, None, None, None, Result.VOICEMAIL),
    (CallStatus.FAILED, None, None, None, Result.FAILED),
])
def test_classify(status: CallStatus, disp: Disposition | None, turns: int | None,
                  amd: AmdStatus | None, want: Result) -> None:
    assert classify(status, disp, turns, amd) is want


def step(result: Result, position: int, live: list[int], rpass: int, **kw: object) -> tuple[
        str, int, int]:
    u = next_step(result, position=position, live_positions=live, retry_pass=rpass,
                  policy=POLICY, last_disposition=None, now=NOW, **kw)  # type: ignore[arg-type]
    return u.status, u.phone_index, u.retry_pass


def test_next_phone_then_next_pass_then_exhausted() -> None:
    assert step(Result.NO_ANSWER, 1, [1, 2, 3], 1) == ("pending", 2, 1)
    assert step(Result.BUSY, 2, [1, 2, 3], 1) == ("pending", 3, 1)
    assert step(Result.VOICEMAIL, 3, [1, 2, 3], 1) == ("pending", 1, 2)
    assert step(Result.NO_ANSWER, 3, [1, 2, 3], 2) == ("no_answer", 3, 2)
    assert step(Result.BUSY, 1, [1], 2) == ("busy", 1, 2)


def test_wrong_number_phone_is_skipped_later() -> None:
    # Phone 1 was marked dead, so the live list no longer has it.
    assert step(Result.WRONG_NUMBER, 1, [2], 1) == ("pending", 2, 1)
    assert step(Result.WRONG_NUMBER, 2, [], 1) == ("failed", 2, 1)


def test_finals() -> None:
    assert step(Result.OPTED_OUT, 1, [1, 2], 1)[0] == "opted_out"
    assert step(Result.COMPLETED, 1, [1, 2], 1)[0] == "completed"
    assert step(Result.CALLBACK, 1, [1], 1, has_callback=True)[0] == "callback"
    assert step(Result.CALLBACK, 1, [1], 1)[0] == "completed"
    assert step(Result.DNC, 1, [], 1)[0] == "dnc"


def test_skip_recently_answered_holds_the_retry() -> None:
    policy = RetryPolicy(max_attempts_per_phone=2, skip_answered_within_hours=4)
    u = next_step(Result.NO_ANSWER, position=1, live_positions=[1, 2], retry_pass=1,
                  policy=policy, last_disposition=None, now=NOW,
                  answered_at=NOW - timedelta(hours=1))
    assert u.next_eligible_at == NOW + timedelta(hours=3)
