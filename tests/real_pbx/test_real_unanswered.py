"""Calls the far end never answers, on a real Asterisk 22: SIP 486, 180 until CANCEL, 503
and 404 from SIPp. Asserted on the store and on what reached the far end."""

from __future__ import annotations

from daemon import Daemon
from far_end import BUSY, NOT_FOUND, RING_FOREVER, UNAVAILABLE, number
from procs import Pbx

RETRY = {"max_attempts_per_phone": 2, "retry_interval_minutes": 0}


def test_busy_no_answer_and_503_are_retried_by_the_policy(daemon: Daemon, pbx: Pbx) -> None:
    busy, ring, down = number(10, BUSY), number(11, RING_FOREVER), number(12, UNAVAILABLE)
    daemon.add_campaign("retries", [{"name": f"Lead {i}", "phone": p}
                                    for i, p in enumerate((busy, ring, down))],
                        retry=RETRY, ring_timeout_s=5,
                        pacing={"calls_per_minute": 120, "max_concurrent": 3})
    daemon.wait_campaign_done("retries", 90)

    expected = {busy: ("busy", None, 486, 17), ring: ("no_answer", None, 480, 19),
                down: ("failed", "congestion", 503, 34)}
    for phone, (status, failure, sip, cause) in expected.items():
        attempts = daemon.attempts(phone)
        assert [a["retry_pass"] for a in attempts] == [1, 2], attempts
        for a in attempts:
            assert (a["status"], a["failure"], a["sip_code"], a["hangup_cause"]) == (
                status, failure, sip, cause), a
            assert a["answered_at"] is None and a["disposition"] in (None, ""), a
        assert pbx.far_end.invites()[phone] == 2, phone  # one INVITE per attempt
        contact = daemon.phone_status(phone, "retries")
        assert contact["attempts"] == 2 and contact["contact_status"] == status, contact


def test_404_is_not_retried_and_the_phone_is_marked_invalid(daemon: Daemon, pbx: Pbx) -> None:
    """A 404 phone is never dialed again; the contact's next phone is."""
    invalid, other = number(13, NOT_FOUND), number(14, BUSY)
    daemon.add_campaign("invalid", [{"name": "Sam", "phone1": invalid, "phone2": other}],
                        retry=RETRY)
    daemon.wait_campaign_done("invalid", 60)

    attempts = daemon.attempts(invalid)
    assert len(attempts) == 1, f"the 404 phone was dialed {len(attempts)} times"
    attempt = attempts[0]
    assert (attempt["status"], attempt["failure"], attempt["sip_code"],
            attempt["hangup_cause"]) == ("failed", "invalid_number", 404, 1), attempt
    assert pbx.far_end.invites()[invalid] == 1
    assert daemon.phone_status(invalid, "invalid")["last_status"] in (
        "invalid", "invalid_number"), "the 404 phone is not marked invalid"
    assert len(daemon.attempts(other)) == 2  # the next phone gets its own retries
