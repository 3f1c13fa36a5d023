"""Sans-IO call tracker: AMI events in, one CallOutcome per status change out.

Register an attempt when its Originate is sent, then feed every AMI message. Events are
tied to an attempt by, in order: the Originate's ActionID (OriginateResponse); a Uniqueid
already learned for it; a Uniqueid equal to the call id (Originate carried ChannelId); or a
VarSet/UserEvent that names the call id (UUID / TELEVOX_CALL_ID), which teaches the
channel's Uniqueid when the Originate had no ChannelId.

Classification follows the Asterisk 22 captures, not the docs: OriginateResponse Reason is
0 for busy, congestion and 404 alike, so a failed attempt is classified from the Hangup
Cause (Q.850) and TechCause (SIP code) first, Reason and DialStatus only as fallbacks. A
failed OriginateResponse may come before or after the Hangup; the final outcome waits for
both (or for an OriginateResponse with no channel ever seen) and is emitted exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from televox_pbx.ami.codec import AmiMessage
from televox_pbx.clock import Clock
from televox_pbx.domain import AmdStatus, CallOutcome, CallStatus, FailureKind

# Channel variables / UserEvent headers that carry our attempt id.
CALL_ID_VARS = frozenset({"TELEVOX_CALL_ID", "UUID", "CallId"})
_UNKNOWN_IDS = frozenset({"", "<unknown>"})

# SIP response code -> (status, failure). Checked before the Q.850 cause: it is more precise.
_BY_SIP: dict[int, tuple[CallStatus, FailureKind | None]] = {
    486: (CallStatus.BUSY, None),
    600: (CallStatus.BUSY, None),
    603: (CallStatus.BUSY, None),  # Decline: the callee refused now, retry like busy
    480: (CallStatus.NO_ANSWER, None),
    408: (CallStatus.NO_ANSWER, None),  # timer B: nobody responding (dead.raw.txt)
    487: (CallStatus.NO_ANSWER, None),  # our CANCEL after the ring timeout
    404: (CallStatus.FAILED, FailureKind.INVALID_NUMBER),
    410: (CallStatus.FAILED, FailureKind.INVALID_NUMBER),
    484: (CallStatus.FAILED, FailureKind.INVALID_NUMBER),
    604: (CallStatus.FAILED, FailureKind.INVALID_NUMBER),
    503: (CallStatus.FAILED, FailureKind.CONGESTION),
    502: (CallStatus.FAILED, FailureKind.NETWORK),
    504: (CallStatus.FAILED, FailureKind.NETWORK),
}
# Q.850 hangup cause -> (status, failure).
_BY_CAUSE: dict[int, tuple[CallStatus, FailureKind | None]] = {
    17: (CallStatus.BUSY, None),
    18: (CallStatus.NO_ANSWER, None),
    19: (CallStatus.NO_ANSWER, None),
    1: (CallStatus.FAILED, FailureKind.INVALID_NUMBER),
    3: (CallStatus.FAILED, FailureKind.INVALID_NUMBER),
    22: (CallStatus.FAILED, FailureKind.INVALID_NUMBER),
    28: (CallStatus.FAILED, FailureKind.INVALID_NUMBER),
    34: (CallStatus.FAILED, FailureKind.CONGESTION),
    42: (CallStatus.FAILED, FailureKind.CONGESTION),
    27: (CallStatus.FAILED, FailureKind.NETWORK),
    38: (CallStatus.FAILED, FailureKind.NETWORK),
    41: (CallStatus.FAILED, FailureKind.NETWORK),
}
# OriginateResponse Reason (only 3 is trustworthy with chan_pjsip; 5 and 8 from others).
_BY_REASON: dict[int, tuple[CallStatus, FailureKind | None]] = {
    3: (CallStatus.NO_ANSWER, None),
    5: (CallStatus.BUSY, None),
    8: (CallStatus.FAILED, FailureKind.CONGESTION),
}
# SoftHangupRequest's Cause is an AST_SOFTHANGUP_* flag when the core asks a channel to go
# (ast_softhangup), a Q.850 cause when a hangup with a cause was asked for (dialplan
# Hangup(), the AMI Hangup action). Flag 4, AST_SOFTHANGUP_SHUTDOWN, comes only from
# `core stop now` / `core restart now` cutting every channel (ast_softhangup_all): the
# PBX, not the callee, ends the call. Its Hangup then says Cause 0, like a far-end BYE
# (tests/fixtures/asterisk22-restart/).
SOFTHANGUP_SHUTDOWN = 4
_BY_DIALSTATUS: dict[str, tuple[CallStatus, FailureKind | None]] = {
    "BUSY": (CallStatus.BUSY, None),
    "CONGESTION": (CallStatus.FAILED, FailureKind.CONGESTION),
    "NOANSWER": (CallStatus.NO_ANSWER, None),
}


def classify_failure(*, cause: int | None, sip_code: int | None, reason: int | None,
                     dial_status: str | None, rang: bool) -> tuple[CallStatus, FailureKind | None]:
    """Final status of an attempt that was never answered."""
    if sip_code is not None and sip_code in _BY_SIP:
        return _BY_SIP[sip_code]
    if cause is not None and cause in _BY_CAUSE:
        return _BY_CAUSE[cause]
    if reason is not None and reason in _BY_REASON:
        return _BY_REASON[reason]
    if dial_status is not None and dial_status in _BY_DIALSTATUS:
        return _BY_DIALSTATUS[dial_status]
    if rang:  # e.g. Cause 16 while ringing: cleared before answer
        return CallStatus.NO_ANSWER, None
    return CallStatus.FAILED, FailureKind.OTHER


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value.strip())
    except ValueError:
        return None


@dataclass(slots=True)
class _Call:
    outcome: CallOutcome
    action_id: str
    uniqueid: str | None = None
    channel_seen: bool = False
    answered: bool = False
    hangup_seen: bool = False
    originate_failed: bool = False
    reason: int | None = None
    dial_status: str | None = None
    request_cause: int | None = None  # from (Soft)HangupRequest, a fallback for Hangup's
    pbx_fault: bool = False  # the PBX cut the call: it is shutting down or restarting

    @property
    def call_id(self) -> str:
        return self.outcome.call_id


class CallTracker:
    """Follows registered attempts through the AMI event stream. Not thread-safe; no I/O."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._calls: dict[str, _Call] = {}
        self._by_action: dict[str, str] = {}
        self._by_uniqueid: dict[str, str] = {}

    # -- public API ---------------------------------------------------------------------

    def register(self, call_id: str, *, action_id: str | None = None) -> CallOutcome:
        """Start tracking an attempt; call it before the Originate goes on the wire."""
        if call_id in self._calls:
            raise ValueError("call id already tracked")
        aid = action_id if action_id is not None else call_id
        if aid in self._by_action:
            raise ValueError("ActionID already used by a tracked call")
        outcome = CallOutcome(call_id=call_id, status=CallStatus.ORIGINATED,
                              originated_at=self._clock.now())
        self._calls[call_id] = _Call(outcome=outcome, action_id=aid)
        self._by_action[aid] = call_id
        return outcome

    def pending(self) -> list[str]:
        """Call ids with no final outcome yet (finished calls are forgotten)."""
        return list(self._calls)

    def outcome(self, call_id: str) -> CallOutcome | None:
        call = self._calls.get(call_id)
        return call.outcome if call is not None else None

    def feed(self, msg: AmiMessage) -> list[CallOutcome]:
        """Apply one AMI message; return the outcome of the attempt it changed, if any."""
        if msg.event == "Shutdown":
            # The PBX is going away: a call still up is being cut by it. Only an AMI user
            # with the `system` class gets this event, and on `core restart now` it comes
            # after the Hangups; those calls are told by SoftHangupRequest (see _apply).
            for c in self._calls.values():
                c.pbx_fault = c.pbx_fault or c.answered
            return []
        call = self._match(msg)
        if call is None:
            return []
        before = call.outcome
        self._apply(call, msg)
        after = self._advance(call)
        # Status changes, plus the AMD verdict (still ANSWERED) which callers act on early.
        if (after.status, after.amd_status, after.amd_cause) != (
                before.status, before.amd_status, before.amd_cause):
            return [after]
        return []

    def reconcile(self, call_id: str, live: bool) -> CallOutcome | None:
        """After an AMI reconnect: close an attempt whose channel is gone.

        Events may have been lost while disconnected, so decide from what was seen. An
        answered call that vanished without its Hangup was cut under us (the PBX restarted
        or the link died): `dropped`, with no end time, since none was seen.
        Returns the final outcome, or None when the call is live or not tracked.
        """
        call = self._calls.get(call_id)
        if call is None or live:
            return None
        if call.answered and call.hangup_seen:
            return self._finish(call, self._answered_status(call), None)
        if call.answered:
            call.outcome = replace(call.outcome, status=CallStatus.DROPPED,
                                   failure=FailureKind.PBX_FAULT)
            self._forget(call)
            return call.outcome
        if call.hangup_seen or call.originate_failed:
            return self._finish_failed(call)
        return self._finish(call, CallStatus.FAILED, FailureKind.OTHER)

    # -- correlation --------------------------------------------------------------------

    def _match(self, msg: AmiMessage) -> _Call | None:
        event = msg.event
        if event is None:
            return None  # responses to actions: the client handles those
        if event == "OriginateResponse":
            cid = self._by_action.get(msg.action_id or "")
            if cid is None:
                return None
            call = self._calls[cid]
            self._learn(call, msg.get("Uniqueid"))
            return call
        uid = msg.get("Uniqueid")
        if event.startswith("Dial"):
            uid = msg.get("DestUniqueid")
        if uid is not None:
            cid = self._by_uniqueid.get(uid)
            if cid is not None:
                return self._calls[cid]
            direct = self._calls.get(uid)  # Originate carried ChannelId: Uniqueid == call id
            if direct is not None:
                self._learn(direct, uid)
                return direct if direct.uniqueid == uid else None
        named = self._named_call(event, msg)
        if named is not None:
            self._learn(named, uid)
            return named if uid is not None and named.uniqueid == uid else None
        return None

    def _named_call(self, event: str, msg: AmiMessage) -> _Call | None:
        if event == "VarSet" and msg.get("Variable") in CALL_ID_VARS:
            return self._calls.get(msg.get("Value") or "")
        if event == "UserEvent":
            for key in CALL_ID_VARS:
                value = msg.get(key)
                if value is not None and value in self._calls:
                    return self._calls[value]
        return None

    def _learn(self, call: _Call, uid: str | None) -> None:
        # The first channel tied to the attempt is its channel; later ones (transfers,
        # Local legs) share the Linkedid but do not decide the attempt's outcome.
        if uid is None or uid in _UNKNOWN_IDS or call.uniqueid is not None:
            return
        call.uniqueid = uid
        self._by_uniqueid[uid] = call.call_id

    # -- state --------------------------------------------------------------------------

    def _apply(self, call: _Call, msg: AmiMessage) -> None:
        event = msg.event
        now = self._clock.now()
        if event == "OriginateResponse":
            call.reason = _int(msg.get("Reason"))
            if (msg.response or "").lower() == "success":
                self._answer(call, now)
            else:
                call.originate_failed = True
            return
        # Only channel events prove a channel exists: a failed OriginateResponse may echo
        # the ChannelId as Uniqueid even when no channel was ever made.
        call.channel_seen = True
        if event in ("Newchannel", "Newstate"):
            state = msg.get("ChannelStateDesc")
            if state == "Ringing":
                self._ring(call, now)
            elif state == "Up":
                self._answer(call, now)
        elif event in ("DialBegin", "DialState", "DialEnd"):
            status = msg.get("DialStatus")
            if status == "RINGING" or msg.get("DestChannelStateDesc") == "Ringing":
                self._ring(call, now)
            if status == "ANSWER":
                self._answer(call, now)
            elif status:
                call.dial_status = status
        elif event in ("HangupRequest", "SoftHangupRequest"):
            cause = _int(msg.get("Cause"))
            if event == "SoftHangupRequest" and cause == SOFTHANGUP_SHUTDOWN:
                call.pbx_fault = True  # a flag, not a Q.850 cause
            elif cause:
                call.request_cause = cause
            self._tech_cause(call, msg)
        elif event == "Hangup":
            call.hangup_seen = True
            call.outcome = replace(call.outcome, hangup_cause=_int(msg.get("Cause")),
                                   hangup_at=now)
            self._tech_cause(call, msg)
        elif event == "VarSet":
            name = msg.get("Variable")
            if name == "AMDSTATUS":
                self._amd(call, msg.get("Value"), call.outcome.amd_cause)
            elif name == "AMDCAUSE":
                call.outcome = replace(call.outcome, amd_cause=msg.get("Value"))
        elif event == "UserEvent" and msg.get("AMDSTATUS") is not None:
            self._amd(call, msg.get("AMDSTATUS"), msg.get("AMDCAUSE") or call.outcome.amd_cause)

    @staticmethod
    def _ring(call: _Call, now: datetime) -> None:
        if call.outcome.ringing_at is None and not call.answered:
            call.outcome = replace(call.outcome, ringing_at=now)

    @staticmethod
    def _answer(call: _Call, now: datetime) -> None:
        if not call.answered:
            call.answered = True
            call.outcome = replace(call.outcome, answered_at=now)

    def _tech_cause(self, call: _Call, msg: AmiMessage) -> None:
        code = _int(msg.get("TechCause"))
        if code:
            call.outcome = replace(call.outcome, sip_code=code)

    def _amd(self, call: _Call, status: str | None, cause: str | None) -> None:
        try:
            amd = AmdStatus((status or "").strip().upper())
        except ValueError:
            return
        call.outcome = replace(call.outcome, amd_status=amd, amd_cause=cause)

    def _advance(self, call: _Call) -> CallOutcome:
        """Move the attempt's status forward from what has been seen; finish if decided."""
        o = call.outcome
        if call.answered:
            if call.hangup_seen:
                return self._finish(call, self._answered_status(call), None)
            if o.status != CallStatus.ANSWERED:
                call.outcome = replace(o, status=CallStatus.ANSWERED)
            return call.outcome
        if call.originate_failed and (call.hangup_seen or not call.channel_seen):
            return self._finish_failed(call)
        if o.ringing_at is not None and o.status == CallStatus.ORIGINATED:
            call.outcome = replace(o, status=CallStatus.RINGING)
        return call.outcome

    @staticmethod
    def _answered_status(call: _Call) -> CallStatus:
        # Cause 0 after an answer is the far end's BYE, a normal end, not a failure,
        # unless the PBX said it was shutting down while the call was up.
        if call.pbx_fault:
            return CallStatus.DROPPED
        if call.outcome.amd_status == AmdStatus.MACHINE:
            return CallStatus.VOICEMAIL
        return CallStatus.COMPLETED

    def _finish_failed(self, call: _Call) -> CallOutcome:
        if not call.channel_seen and not call.hangup_seen:
            return self._finish(call, CallStatus.FAILED, FailureKind.NO_CHANNEL)
        o = call.outcome
        cause = o.hangup_cause or call.request_cause
        status, failure = classify_failure(cause=cause, sip_code=o.sip_code, reason=call.reason,
                                           dial_status=call.dial_status,
                                           rang=o.ringing_at is not None)
        return self._finish(call, status, failure)

    def _finish(self, call: _Call, status: CallStatus, failure: FailureKind | None) -> CallOutcome:
        o = call.outcome
        if status is CallStatus.DROPPED:
            failure = FailureKind.PBX_FAULT
        hangup_at = o.hangup_at if o.hangup_at is not None else self._clock.now()
        call.outcome = replace(o, status=status, failure=failure, hangup_at=hangup_at)
        self._forget(call)
        return call.outcome

    def _forget(self, call: _Call) -> None:
        # Late events (an OriginateResponse after the Hangup) then match nothing: the final
        # outcome is emitted once and memory stays bounded by the calls in flight.
        self._calls.pop(call.call_id, None)
        self._by_action.pop(call.action_id, None)
        if call.uniqueid is not None:
            self._by_uniqueid.pop(call.uniqueid, None)
