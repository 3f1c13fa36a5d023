"""The simulated calls: an Originate dialled, rung, answered (AMD first when asked) and
played on an AudioSocket leg, and inbound calls arriving on the trunk.

Apart from the AMI actions in pbx.py because this is the call/channel model: which events
a call raises, in the order and with the fields the fixtures show, as it goes along.
Ring times, AMD and SIP timer B run on the injected clock; audio on `audio_clock`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import uuid
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, Protocol

from televox_pbx.ami.codec import AmiMessage
from televox_pbx.clock import Clock
from televox_pbx.sim.audio_leg import AudioLeg, LegConfig, LegEnd, LegResult
from televox_pbx.sim.callee_voice import CalleeVoice
from televox_pbx.sim.channel import Fields, SimChannel, cause_fields
from televox_pbx.sim.event_stream import EventStream
from televox_pbx.sim.scenario import Behaviour, Callee, Scenario
from televox_pbx.sim.speech import write_wav_8k

log = logging.getLogger(__name__)

# UserEvents of the shipped asterisk/extensions.conf, spelled and keyed as it sends them.
AMD_EVENT = "TelevoxAMD"
INBOUND_EVENT = "TelevoxInbound"
_KEEP_RESULTS = 2000
_DIAL = re.compile(r"^PJSIP/(?P<num>[^@]+)@(?P<trunk>.+)$")
# Failures without an answer: (HangupRequest cause, SIP code, DialStatus).
_REJECT = {
    Behaviour.BUSY: (17, 486, "BUSY"),
    Behaviour.UNAVAILABLE: (34, 503, "CONGESTION"),
    Behaviour.NOT_FOUND: (1, 404, "NOANSWER"),
    Behaviour.NO_LISTENER: (18, 408, "NOANSWER"),
}

Spawn = Callable[[Coroutine[Any, Any, None], str], None]


class CallSetup(Protocol):
    """The simulator's settings, read as each call runs (a test may swap the scenario
    between calls)."""

    scenario: Scenario
    audiosocket: tuple[str, int] | None
    out_dir: Path | None


class SimCalls:
    """The live channels and every call's result; `spawn` runs a call's task."""

    def __init__(self, setup: CallSetup, events: EventStream, voice: CalleeVoice, *,
                 clock: Clock, audio_clock: Clock, spawn: Spawn) -> None:
        self._setup = setup
        self._events = events
        self._voice = voice
        self._clock = clock
        self._audio_clock = audio_clock
        self._spawn = spawn
        self._seq = itertools.count(1)
        self._legs: dict[str, AudioLeg] = {}
        self._ended: dict[str, asyncio.Event] = {}
        self.channels: dict[str, SimChannel] = {}  # by channel name
        self.results: dict[str, LegResult] = {}

    def end_leg(self, ch: SimChannel) -> None:
        leg = self._legs.get(ch.call_id)
        if leg is not None:
            leg.hangup()

    def hangup_all(self) -> None:
        for leg in list(self._legs.values()):
            leg.hangup()

    async def wait_call_ended(self, call_id: str) -> LegResult | None:
        ev = self._ended.setdefault(call_id, asyncio.Event())
        await ev.wait()
        return self.results.get(call_id)

    # -- outbound ---------------------------------------------------------------------

    async def outbound(self, msg: AmiMessage) -> None:
        dial = msg.get("Channel") or ""
        m = _DIAL.match(dial)
        variables = _parse_variables(msg.getall("Variable"))
        channel_id = msg.get("ChannelId")
        timeout_s = int(msg.get("Timeout") or "30000") / 1000
        context, exten = msg.get("Context") or "default", msg.get("Exten") or "s"
        aid: Fields = [("ActionID", msg.action_id)] if msg.action_id is not None else []

        cid_name, cid_num = _parse_callerid(msg.get("CallerID"))

        def originate_response(ok: bool, reason: int, channel: str, uniqueid: str) -> None:
            self._events.emit("OriginateResponse", [
                *aid, ("Response", "Success" if ok else "Failure"), ("Channel", channel),
                ("Context", context), ("Exten", exten), ("Reason", str(reason)),
                ("Uniqueid", uniqueid), ("CallerIDNum", cid_num or "<unknown>"),
                ("CallerIDName", cid_name or cid_num or "<unknown>")])

        trunks = self._setup.scenario.trunks
        if m is None or (trunks is not None and m["trunk"] not in trunks):
            originate_response(False, 0, dial, "<unknown>")
            return
        number, trunk = m["num"], m["trunk"]
        callee = self._setup.scenario.callee_for(number)
        if callee.behaviour == Behaviour.NO_ENDPOINT:
            originate_response(False, 0, dial, "<unknown>")
            return
        uniqueid = channel_id or f"{int(self._clock.now().timestamp())}.{next(self._seq)}"
        call_id = variables.get("TELEVOX_CALL_ID") or channel_id or str(uuid.uuid4())
        ch = SimChannel(name=f"PJSIP/{trunk}-{next(self._seq):08x}", uniqueid=uniqueid,
                        call_id=call_id, created_at=self._clock.monotonic(),
                        variables=variables)
        self.channels[ch.name] = ch
        failed_uid = channel_id or "<unknown>"
        try:
            self._events.channel("Newchannel", ch)
            for name, value in variables.items():
                self._events.channel("VarSet", ch, [("Variable", name), ("Value", value)],
                                     "dialplan,all")
            if cid_num:
                ch.caller_num, ch.caller_name = cid_num, cid_name or cid_num
                ch.connected_num, ch.connected_name = ch.caller_num, ch.caller_name
            self._events.emit("DialBegin",
                              [*ch.dest_fields(), ("DialString", f"{number}@{trunk}")])
            if callee.behaviour in _REJECT:
                cause, sip, dial_status = _REJECT[callee.behaviour]
                if callee.behaviour == Behaviour.NO_LISTENER:
                    await self._clock.sleep(self._setup.scenario.timer_b_s)
                self._reject(ch, cause, sip, dial_status,
                             lambda: originate_response(False, 0, dial, failed_uid))
                return
            ch.state = 5
            self._events.channel("Newstate", ch)
            self._events.emit("DialState", [*ch.dest_fields(), ("DialStatus", "RINGING")])
            ring = callee.ring_s if callee.behaviour != Behaviour.RING_OUT else timeout_s
            if ring >= timeout_s:
                await self._clock.sleep(timeout_s)
                originate_response(False, 3, dial, failed_uid)
                self._events.channel("Hangup", ch, cause_fields(19, 480))
                return
            await self._clock.sleep(ring)
            ch.state = 6
            self._events.channel("Newstate", ch)
            self._events.emit("DialEnd", [*ch.dest_fields(), ("DialStatus", "ANSWER")])
            originate_response(True, 4, ch.name, uniqueid)
            ch.context, ch.exten, ch.priority = context, exten, 1
            amd = exten == "amd" or variables.get("TELEVOX_AMD") == "1"
            await self._answered(ch, callee, amd=amd)
        finally:
            self.channels.pop(ch.name, None)
            if call_id not in self.results:
                self._mark_ended(call_id)  # never answered: no audio leg result

    def _reject(self, ch: SimChannel, cause: int, sip: int, dial_status: str,
                originate_failed: Callable[[], None]) -> None:
        """Order per the fixtures: 404 sends Hangup before OriginateResponse, others after."""
        self._events.channel("HangupRequest", ch,
                             [("Cause", str(cause)), ("TechCause", str(sip))])
        if cause == 18:  # timer B: OriginateResponse, then DialEnd
            originate_failed()
            self._events.emit("DialEnd", [*ch.dest_fields(), ("DialStatus", dial_status)])
            self._events.channel("Hangup", ch, cause_fields(cause, sip))
            return
        self._events.emit("DialEnd", [*ch.dest_fields(), ("DialStatus", dial_status)])
        if cause == 1:
            self._events.channel("Hangup", ch, cause_fields(cause, sip))
            originate_failed()
            return
        originate_failed()
        self._events.channel("Hangup", ch, cause_fields(cause, sip))

    async def _answered(self, ch: SimChannel, callee: Callee, *, amd: bool) -> None:
        consumed = 0.0
        if amd:
            ch.priority, ch.application, ch.app_data = 4, "AMD", ""
            await self._clock.sleep(callee.amd_delay_s)
            consumed = callee.amd_delay_s
            machine = callee.behaviour == Behaviour.VOICEMAIL
            status = callee.amd_status or ("MACHINE" if machine else "HUMAN")
            # Causes as seen with the shipped amd.conf (maximum_number_of_words = 5).
            cause = callee.amd_cause or ("MAXWORDS-6-5" if machine else "HUMAN-800-800")
            ch.priority = 5
            self._events.channel("UserEvent", ch, [
                ("UserEvent", AMD_EVENT), ("CallId", ch.call_id), ("AMDSTATUS", status),
                ("AMDCAUSE", cause)], "user,all")
        ch.priority = 6  # (connect): AudioSocket, as in the shipped dialplan
        ch.application = "AudioSocket"
        await self._run_leg(ch, callee, consumed)

    async def _run_leg(self, ch: SimChannel, callee: Callee, consumed_s: float) -> None:
        result = LegResult(LegEnd.CONNECT_FAILED)
        try:
            if self._setup.audiosocket is None:
                log.warning("sim has no AudioSocket target; hanging up")
            else:
                host, port = self._setup.audiosocket
                ch.app_data = f"{ch.call_id},{host}:{port}"
                segments = await self._voice.render(callee)
                cfg = LegConfig(host=host, port=port, frame_ms=self._setup.scenario.frame_ms,
                                no_traffic_timeout_s=self._setup.scenario.no_traffic_timeout_s,
                                turn_gap_s=self._setup.scenario.turn_gap_s,
                                max_turn_wait_s=self._setup.scenario.max_turn_wait_s,
                                hangup_after_s=callee.hangup_after_s, consumed_s=consumed_s,
                                await_reply=callee.await_reply)
                leg = AudioLeg(ch.call_id, segments, cfg, self._audio_clock)
                self._legs[ch.call_id] = leg
                try:
                    result = await leg.run()
                finally:
                    self._legs.pop(ch.call_id, None)
        finally:
            self._finish_answered(ch, result)

    def _finish_answered(self, ch: SimChannel, result: LegResult) -> None:
        self.results[ch.call_id] = result
        self._save_audio(ch.call_id, result)
        if result.reason == LegEnd.CALLEE_HANGUP:
            # A SIP BYE while AudioSocket runs (farend-bye.raw.txt): Cause 0 on the Hangup.
            self._events.channel("HangupRequest", ch)
            self._events.channel("SoftHangupRequest", ch, [("Cause", "16")])
            ch.exten, ch.priority = "h", 2
            self._events.channel("Hangup", ch, cause_fields(0))
        elif result.reason == LegEnd.PBX_HANGUP:
            ch.exten, ch.priority = "h", 2
            self._events.channel("Hangup", ch, cause_fields(16))
        else:
            ch.priority += 2
            self._events.channel("SoftHangupRequest", ch, [("Cause", "16")])
            ch.exten, ch.priority = "h", 2
            self._events.channel("Hangup", ch, cause_fields(16))
        self._mark_ended(ch.call_id)

    def _mark_ended(self, call_id: str) -> None:
        self._ended.setdefault(call_id, asyncio.Event()).set()
        # Bounded memory for a long-running simulator: keep the latest calls only.
        for table in (self.results, self._ended):
            while len(table) > _KEEP_RESULTS:
                table.pop(next(iter(table)))

    def _save_audio(self, call_id: str, result: LegResult) -> None:
        if self._setup.out_dir is None or result.reason == LegEnd.CONNECT_FAILED:
            return
        try:
            write_wav_8k(self._setup.out_dir / f"{call_id}-heard.wav", result.heard)
            write_wav_8k(self._setup.out_dir / f"{call_id}-said.wav", result.said)
        except OSError:
            log.exception("sim could not save call audio", extra={"call_id": call_id})

    # -- inbound ----------------------------------------------------------------------

    async def start_inbound(self, caller_id: str, callee: Callee | None = None,
                            trunk: str = "trunk", dialed: str | None = None) -> str:
        """A call from `caller_id` (to the DID `dialed`) arrives; returns the AudioSocket
        UUID it will use."""
        call_id = str(uuid.uuid4())
        who = callee or self._setup.scenario.inbound
        if who.behaviour == Behaviour.VOICEMAIL:
            who = replace_behaviour(who)
        # Asterisk names the channel itself: only the UserEvent carries our UUID.
        uniqueid = f"{int(self._clock.now().timestamp())}.{next(self._seq)}"
        ch = SimChannel(name=f"PJSIP/{trunk}-{next(self._seq):08x}", uniqueid=uniqueid,
                        call_id=call_id, caller_num=caller_id, caller_name=caller_id,
                        state=4, created_at=self._clock.monotonic(),
                        application="AudioSocket",
                        variables={"TELEVOX_CALL_ID": call_id})  # the dialplan's Set()
        self.channels[ch.name] = ch
        self._events.channel("Newchannel", ch)
        ch.state = 6
        self._events.channel("Newstate", ch)
        fields = [("UserEvent", INBOUND_EVENT), ("CallId", call_id), ("CallerID", caller_id)]
        if dialed is not None:
            fields.append(("Dialed", dialed))
        self._events.channel("UserEvent", ch, fields, "user,all")

        async def go() -> None:
            try:
                await self._run_leg(ch, who, 0.0)
            finally:
                self.channels.pop(ch.name, None)
        self._spawn(go(), f"sim-inbound-{call_id}")
        return call_id


def replace_behaviour(callee: Callee) -> Callee:
    """An inbound caller is a person; voicemail makes no sense there."""
    return callee.model_copy(update={"behaviour": Behaviour.ANSWER})


def _parse_variables(values: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        for part in value.split(","):
            name, sep, val = part.partition("=")
            if sep and name.strip():
                out[name.strip()] = val
    return out


def _parse_callerid(value: str | None) -> tuple[str, str]:
    """'"TeleVox" <15550000>' -> ('TeleVox', '15550000')."""
    if not value:
        return "", ""
    m = re.match(r'^\s*"?([^"<]*)"?\s*<([^>]*)>\s*$', value)
    if m:
        return m.group(1).strip(), m.group(2).strip()
    return "", value.strip()

