"""Call tracker: every capture replays to its README outcome; orderings and reconcile."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from televox_pbx.ami.codec import AmiMessage
from televox_pbx.ami.fixtures import (
    Direction,
    default_fixture_dir,
    load_transcript,
    timed_messages,
)
from televox_pbx.ami.tracker import CallTracker, classify_failure
from televox_pbx.clock import FakeClock
from televox_pbx.domain import AmdStatus, CallOutcome, CallStatus, FailureKind

FIXTURES = default_fixture_dir(Path(__file__).resolve().parents[1])

S, F = CallStatus, FailureKind
# file -> final status, failure, Hangup Cause, SIP code, AMD status (README table)
OUTCOMES: dict[str, tuple[CallStatus, FailureKind | None, int | None, int | None,
                          AmdStatus | None]] = {
    "success.raw.txt": (S.COMPLETED, None, 16, None, None),
    "success-channelid.raw.txt": (S.COMPLETED, None, 16, None, None),
    "amd.raw.txt": (S.VOICEMAIL, None, 16, None, AmdStatus.MACHINE),
    "busy.raw.txt": (S.BUSY, None, 17, 486, None),
    "503.raw.txt": (S.FAILED, F.CONGESTION, 34, 503, None),
    "404.raw.txt": (S.FAILED, F.INVALID_NUMBER, 1, 404, None),
    "noanswer.raw.txt": (S.NO_ANSWER, None, 19, 480, None),
    "dead.raw.txt": (S.NO_ANSWER, None, 18, 408, None),
    "noendpoint.raw.txt": (S.FAILED, F.NO_CHANNEL, None, None, None),
    "farend-bye.raw.txt": (S.COMPLETED, None, 0, None, None),
    "amd-human.raw.txt": (S.COMPLETED, None, 16, None, AmdStatus.HUMAN),
    "amd-voicemail.raw.txt": (S.VOICEMAIL, None, 16, None, AmdStatus.MACHINE),
}
ANSWERED = {k for k, v in OUTCOMES.items() if v[0] in (S.COMPLETED, S.VOICEMAIL)}


async def replay(name: str) -> tuple[str, list[CallOutcome], CallTracker, FakeClock]:
    """Feed the capture through codec + tracker, moving a fake clock to each block's time."""
    clock = FakeClock()
    tracker = CallTracker(clock)
    call_id = ""
    now = 0.0
    emitted: list[CallOutcome] = []
    for block, item in timed_messages(load_transcript(FIXTURES / name)):
        if block.at_s > now:
            await clock.advance(block.at_s - now)
            now = block.at_s
        if not isinstance(item, AmiMessage):
            continue
        if block.direction == Direction.SENT:
            if item.action == "Originate":
                # Our call id is the UUID variable; the captures used short ActionIDs.
                call_id = item.variables()["UUID"]
                tracker.register(call_id, action_id=item.action_id)
            continue
        emitted += tracker.feed(item)
    return call_id, emitted, tracker, clock


@pytest.mark.parametrize("name", sorted(OUTCOMES))
async def test_every_capture_replays_to_its_readme_outcome(name: str) -> None:
    status, failure, cause, sip, amd = OUTCOMES[name]
    call_id, emitted, tracker, _ = await replay(name)
    assert emitted, "no outcome at all"
    assert all(o.call_id == call_id for o in emitted)
    final = emitted[-1]
    assert (final.status, final.failure) == (status, failure)
    assert (final.hangup_cause, final.sip_code, final.amd_status) == (cause, sip, amd)
    # Exactly one final outcome, and it is the last one; nothing left pending.
    assert [o.status.is_final for o in emitted].count(True) == 1
    assert tracker.pending() == []
    # Statuses only move forward.
    order = [S.RINGING, S.ANSWERED, status]
    seen = [o.status for o in emitted]
    assert seen == sorted(seen, key=order.index)
    assert final.originated_at is not None and final.hangup_at is not None
    if name in ANSWERED:
        assert S.ANSWERED in seen
        assert final.answered_at is not None and final.ringing_at is not None
        assert final.originated_at <= final.ringing_at <= final.answered_at <= final.hangup_at
    else:
        assert final.answered_at is None


async def test_timestamps_follow_the_capture_clock() -> None:
    _, emitted, _, clock = await replay("success-channelid.raw.txt")
    final = emitted[-1]
    assert final.originated_at is not None and final.ringing_at is not None
    assert final.ringing_at - final.originated_at == timedelta(seconds=0.002)
    assert final.duration_s == pytest.approx(12.513 - 0.508)
    assert final.hangup_at is not None and final.hangup_at <= clock.now()


async def test_amd_verdict_is_reported_while_answered() -> None:
    _, emitted, _, _ = await replay("amd-voicemail.raw.txt")
    early = [o for o in emitted if o.status == S.ANSWERED and o.amd_status is not None]
    assert early and early[-1].amd_status == AmdStatus.MACHINE
    assert early[-1].amd_cause == "MAXWORDS-3-2"


async def test_noanswer_rings_first() -> None:
    _, emitted, _, _ = await replay("noanswer.raw.txt")
    assert [o.status for o in emitted] == [S.RINGING, S.NO_ANSWER]
    assert emitted[-1].ringing_at is not None


# -- synthetic streams -------------------------------------------------------------------

CID = "0d7b5c1e-2f3a-4b5c-9d6e-7f8091a2b3c4"


def ev(event: str, **kw: str) -> AmiMessage:
    return AmiMessage((("Event", event), *((k.replace("_", "-"), v) for k, v in kw.items())))


def hangup(cause: str, tech: str | None = None, uid: str = CID) -> AmiMessage:
    extra = {"TechCause": tech} if tech else {}
    return ev("Hangup", Uniqueid=uid, Linkedid=uid, Cause=cause, **extra)


def originate_response(ok: bool, reason: str, uid: str = CID, aid: str = CID) -> AmiMessage:
    return ev("OriginateResponse", ActionID=aid, Response="Success" if ok else "Failure",
              Reason=reason, Uniqueid=uid)


def newchannel(uid: str = CID) -> AmiMessage:
    return ev("Newchannel", Uniqueid=uid, Linkedid=uid, ChannelStateDesc="Down")


def feed_all(tracker: CallTracker, msgs: list[AmiMessage]) -> list[CallOutcome]:
    return [o for m in msgs for o in tracker.feed(m)]


@pytest.mark.parametrize("failure_first", [True, False])
def test_failed_originate_before_or_after_hangup_gives_one_final(failure_first: bool) -> None:
    tracker = CallTracker(FakeClock())
    tracker.register(CID)
    resp = originate_response(False, "0", uid="<unknown>")
    hup = hangup("17", "486")
    stream = [newchannel(), resp, hup] if failure_first else [newchannel(), hup, resp]
    out = feed_all(tracker, stream)
    assert [o.status for o in out] == [S.BUSY]
    assert tracker.pending() == []
    assert tracker.feed(hup) == [] and tracker.feed(resp) == []  # late repeats: nothing


def test_failure_waits_for_the_hangup_when_a_channel_exists() -> None:
    tracker = CallTracker(FakeClock())
    tracker.register(CID)
    assert feed_all(tracker, [newchannel(), originate_response(False, "3")]) == []
    assert tracker.pending() == [CID]
    [final] = tracker.feed(hangup("19", "480"))
    assert final.status == S.NO_ANSWER


def test_failed_originate_echoing_channel_id_without_channel_is_no_channel() -> None:
    tracker = CallTracker(FakeClock())
    tracker.register(CID)
    [final] = tracker.feed(originate_response(False, "0", uid=CID))
    assert (final.status, final.failure) == (S.FAILED, F.NO_CHANNEL)


def test_cause_zero_after_answer_is_completed_and_before_answer_is_not() -> None:
    tracker = CallTracker(FakeClock())
    tracker.register(CID)
    out = feed_all(tracker, [newchannel(), ev("Newstate", Uniqueid=CID, ChannelStateDesc="Up"),
                             hangup("0")])
    assert [o.status for o in out] == [S.ANSWERED, S.COMPLETED]
    assert out[-1].failure is None


def test_unrelated_and_unregistered_events_are_ignored() -> None:
    tracker = CallTracker(FakeClock())
    tracker.register(CID)
    other = "1795352529.9"
    assert feed_all(tracker, [
        ev("FullyBooted"), AmiMessage((("Response", "Success"), ("ActionID", CID))),
        newchannel(other), hangup("16", uid=other), originate_response(True, "4", other, "f1"),
        ev("VarSet", Uniqueid=other, Variable="UUID", Value="someone-else"),
    ]) == []
    assert tracker.pending() == [CID]


def test_second_channel_of_the_call_does_not_decide_it() -> None:
    tracker = CallTracker(FakeClock())
    tracker.register(CID)
    feed_all(tracker, [newchannel(), ev("Newstate", Uniqueid=CID, ChannelStateDesc="Up")])
    # e.g. a transfer leg carrying our UUID variable, then hanging up
    leg = "1795352529.5"
    assert feed_all(tracker, [ev("VarSet", Uniqueid=leg, Variable="UUID", Value=CID),
                              hangup("16", uid=leg)]) == []
    assert tracker.pending() == [CID]


def test_channel_learned_from_televox_call_id_var() -> None:
    tracker = CallTracker(FakeClock())
    tracker.register(CID, action_id="a1")
    uid = "1795352529.0"
    out = feed_all(tracker, [
        newchannel(uid),  # not ours yet: no ChannelId
        ev("VarSet", Uniqueid=uid, Variable="TELEVOX_CALL_ID", Value=CID),
        ev("Newstate", Uniqueid=uid, ChannelStateDesc="Ringing"),
        ev("DialEnd", DestUniqueid=uid, DialStatus="ANSWER"),
        ev("UserEvent", Uniqueid=uid, UserEvent="TeleVoxAMD", AMDSTATUS="HUMAN",
           AMDCAUSE="HUMAN-800-800"),
        hangup("16", uid=uid),
        originate_response(True, "4", uid, "a1"),
    ])
    assert [o.status for o in out] == [S.RINGING, S.ANSWERED, S.ANSWERED, S.COMPLETED]
    assert out[-1].amd_status == AmdStatus.HUMAN


async def test_reconcile_after_reconnect() -> None:
    clock = FakeClock()
    tracker = CallTracker(clock)
    for cid in ("gone-answered", "gone-ringing", "live", "gone-hungup"):
        tracker.register(cid)
    feed_all(tracker, [
        newchannel("gone-answered"), ev("Newstate", Uniqueid="gone-answered",
                                        ChannelStateDesc="Up"),
        newchannel("gone-ringing"), ev("Newstate", Uniqueid="gone-ringing",
                                       ChannelStateDesc="Ringing"),
        newchannel("live"),
        newchannel("gone-hungup"), hangup("17", "486", uid="gone-hungup"),
    ])
    assert sorted(tracker.pending()) == ["gone-answered", "gone-hungup", "gone-ringing", "live"]
    await clock.advance(5)
    assert tracker.reconcile("live", live=True) is None
    answered = tracker.reconcile("gone-answered", live=False)
    # Answered, then gone without a Hangup: cut under us (PBX restart), end time unknown.
    assert answered is not None and (answered.status, answered.failure) == (S.DROPPED,
                                                                            F.PBX_FAULT)
    assert answered.hangup_at is None and answered.duration_s is None
    ringing = tracker.reconcile("gone-ringing", live=False)
    assert ringing is not None and (ringing.status, ringing.failure) == (S.FAILED, F.OTHER)
    hung = tracker.reconcile("gone-hungup", live=False)
    assert hung is not None and hung.status == S.BUSY
    assert tracker.reconcile("gone-answered", live=False) is None  # already final
    assert tracker.reconcile("unknown", live=False) is None
    assert tracker.pending() == ["live"]


def test_register_twice_is_an_error() -> None:
    tracker = CallTracker(FakeClock())
    first = tracker.register(CID)
    assert first.status == S.ORIGINATED and first.originated_at is not None
    with pytest.raises(ValueError):
        tracker.register(CID)
    with pytest.raises(ValueError):
        tracker.register("other", action_id=CID)
    assert tracker.outcome(CID) == first


@pytest.mark.parametrize(("cause", "sip", "reason", "dial", "rang", "expected"), [
    (17, 486, 0, None, False, (S.BUSY, None)),
    (34, 503, 0, None, False, (S.FAILED, F.CONGESTION)),
    (1, 404, 0, "NOANSWER", False, (S.FAILED, F.INVALID_NUMBER)),
    (38, None, 0, None, False, (S.FAILED, F.NETWORK)),
    (19, 480, 3, None, True, (S.NO_ANSWER, None)),
    (18, 408, 0, None, False, (S.NO_ANSWER, None)),
    (16, None, 3, None, True, (S.NO_ANSWER, None)),  # Reason 3 trusted as a fallback
    (16, None, 0, None, True, (S.NO_ANSWER, None)),
    (0, None, 0, "CONGESTION", False, (S.FAILED, F.CONGESTION)),
    (21, None, 0, None, False, (S.FAILED, F.OTHER)),
    (None, None, None, None, False, (S.FAILED, F.OTHER)),
])
def test_classify_failure(cause: int | None, sip: int | None, reason: int | None,
                          dial: str | None, rang: bool,
                          expected: tuple[CallStatus, FailureKind | None]) -> None:
    assert classify_failure(cause=cause, sip_code=sip, reason=reason, dial_status=dial,
                            rang=rang) == expected


# -- a real `core restart now` (tests/fixtures/asterisk22-restart) -----------------------------

RESTART = Path(__file__).resolve().parent / "fixtures" / "asterisk22-restart"


@pytest.mark.parametrize("name", ["core-restart-now.raw.txt",
                                  "core-restart-now-all-classes.raw.txt"])
async def test_a_real_pbx_restart_under_an_answered_call_is_dropped(name: str) -> None:
    clock = FakeClock()
    tracker = CallTracker(clock)
    blocks = load_transcript(RESTART / name)
    # The Originate carried ChannelId: the channel's Uniqueid is the call id.
    call_id = next(m.get("Uniqueid") for _, m in timed_messages(blocks)
                   if isinstance(m, AmiMessage) and m.event == "Newchannel")
    assert call_id is not None
    tracker.register(call_id, action_id=f"orig-{call_id}")
    now, emitted = 0.0, []
    for block, item in timed_messages(blocks):
        await clock.advance(max(0.0, block.at_s - now))
        now = max(now, block.at_s)
        if isinstance(item, AmiMessage) and block.direction == Direction.RECEIVED:
            emitted += tracker.feed(item)
    final = emitted[-1]
    assert (final.status, final.failure) == (S.DROPPED, F.PBX_FAULT)
    assert final.hangup_cause == 0  # the same Cause a far-end BYE gives (farend-bye)
    assert final.answered_at is not None and final.hangup_at is not None
    assert final.duration_s == pytest.approx(9.419 - 5.234, abs=0.01)  # the PBX's times
    assert [o.status.is_final for o in emitted].count(True) == 1
    assert tracker.pending() == []

