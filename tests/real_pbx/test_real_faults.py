"""Faults on a real Asterisk 22: the PBX restarted under an answered call, and the daemon
killed with SIGKILL during one. These run last: they restart the shared processes."""

from __future__ import annotations

import contextlib
import time
from datetime import datetime

from daemon import Daemon
from far_end import BUSY, LONG_CALL, number
from procs import Pbx, wait_until


def _answered(daemon: Daemon, phone: str, timeout_s: float = 60) -> dict[str, object]:
    def up() -> dict[str, object] | None:
        rows = daemon.attempts(phone)
        return rows[-1] if rows and rows[-1]["answered_at"] else None
    row = wait_until(f"{phone} to be answered", up, timeout_s, 0.2)
    assert isinstance(row, dict)
    return row


def _ts(value: object) -> float:
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def test_asterisk_restart_during_an_answered_call(daemon: Daemon, pbx: Pbx) -> None:
    """The daemon survives, the call is `dropped`, no Originate is duplicated, and dialing
    resumes with the next contact once Asterisk is back."""
    talking, after = number(20, LONG_CALL), number(21, BUSY)
    daemon.add_campaign("restart", [{"name": "Sam", "phone": talking},
                                    {"name": "Kim", "phone": after}],
                        pacing={"calls_per_minute": 120, "max_concurrent": 1},
                        silence={"reprompt_after_s": 20, "hangup_after_s": 40,
                                 "max_call_duration_s": 60})
    _answered(daemon, talking)
    time.sleep(4.0)  # a few seconds into the conversation
    assert daemon.attempts(after) == []  # precondition: one line, still busy with the call
    pbx.asterisk.rx("core restart now")
    pbx.asterisk.wait_booted(60)

    rows = daemon.wait_final(talking, timeout_s=60)
    assert rows[0]["status"] == "dropped", rows[0]
    daemon.wait_final(after, timeout_s=90)  # dialing resumed after the restart
    assert daemon.alive()
    invites = pbx.far_end.invites()
    for phone in (talking, after):  # an Originate refused while Asterisk shut down is none
        assert invites[phone] == len(daemon.calls(phone)), (phone, daemon.attempts(phone))
    _quiet(daemon, pbx, "restart")


def test_daemon_killed_during_a_call_and_restarted(daemon: Daemon, pbx: Pbx) -> None:
    """SIGKILL 4 s into an answered call, then a restart: that contact is not redialed,
    and the stored duration is the call's, from AMI, not the time of recovery."""
    phone = number(22, LONG_CALL)
    daemon.add_campaign("killed", [{"name": "Sam", "phone": phone}],
                        silence={"reprompt_after_s": 20, "hangup_after_s": 40,
                                 "max_call_duration_s": 60})
    answered = _ts(_answered(daemon, phone)["answered_at"])
    time.sleep(4.0)
    killed = time.time()
    daemon.kill9()
    try:
        # Asterisk sees the AudioSocket connection drop and hangs up the channel.
        wait_until("the channel to be hung up", lambda: not _channels(pbx), 15)
        time.sleep(2.0)
    finally:
        daemon.start()
    daemon.wait_campaign_done("killed", 60)

    [attempt] = daemon.attempts(phone)
    assert pbx.far_end.invites()[phone] == 1
    assert attempt["status"] not in ("answered", "intent"), attempt
    real = killed - answered
    duration = attempt["duration_s"]
    assert duration is None or abs(duration - real) <= 2.0, (
        f"stored duration {duration} s, the call lasted {real:.1f} s")


def _quiet(daemon: Daemon, pbx: Pbx, campaign: str) -> None:
    """Leave no call behind for the next test: stop the campaign, end every channel."""
    with contextlib.suppress(AssertionError):  # already completed
        daemon.cli("campaign", "pause", campaign)
    pbx.asterisk.rx("channel request hangup all", check=False)


def _channels(pbx: Pbx) -> bool:
    out = pbx.asterisk.rx("core show channels count", check=False)
    return not out.strip().startswith("0 active channels")
