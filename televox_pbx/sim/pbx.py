"""The PBX simulator: answers AMI actions and plays calls the way Asterisk 22 does.

Event order and fields follow /work/shared/fixtures/asterisk-22 (noise such as Newexten,
RTCP and Cdr is left out; FullyBooted after login is kept). Ring times, AMD and SIP
timer B run on the injected clock; AudioSocket audio is paced on `audio_clock`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import uuid
from collections import deque
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from televox_pbx.ami.codec import AmiMessage
from televox_pbx.clock import Clock, SystemClock
from televox_pbx.sim.ami_server import AmiServer, AmiSession, Fields
from televox_pbx.sim.audio_leg import AudioLeg, LegConfig, LegEnd, LegResult, Segment
from televox_pbx.sim.channel import SimChannel, cause_fields, duration_hms
from televox_pbx.sim.messages import SentMessage, inbound_fields, parse_message_send
from televox_pbx.sim.scenario import Behaviour, Callee, Scenario
from televox_pbx.sim.speech import (
    SpeechSource,
    SpeechUnavailable,
    beep,
    placeholder_speech,
    read_wav_8k,
    write_wav_8k,
)

log = logging.getLogger(__name__)

# UserEvents of the shipped asterisk/extensions.conf, spelled and keyed as it sends them.
AMD_EVENT = "TelevoxAMD"
INBOUND_EVENT = "TelevoxInbound"
# Event classes the shipped asterisk/manager.conf lets the televox user read (`read =`).
SHIPPED_READ = frozenset({"call", "user"})
_KEEP_RESULTS = 2000
_DIAL = re.compile(r"^PJSIP/(?P<num>[^@]+)@(?P<trunk>.+)$")
# Failures without an answer: (HangupRequest cause, SIP code, DialStatus).
_REJECT = {
    Behaviour.BUSY: (17, 486, "BUSY"),
    Behaviour.UNAVAILABLE: (34, 503, "CONGESTION"),
    Behaviour.NOT_FOUND: (1, 404, "NOANSWER"),
    Behaviour.NO_LISTENER: (18, 408, "NOANSWER"),
}


class Simulator:
    """AMI server + simulated callees. Embeddable: `await sim.start()`, `await sim.close()`."""

    def __init__(self, scenario: Scenario | None = None, *,
                 audiosocket: tuple[str, int] | None = None, clock: Clock | None = None,
                 audio_clock: Clock | None = None, speech: SpeechSource | None = None,
                 allow_placeholder_speech: bool = False, out_dir: Path | None = None,
                 username: str = "televox", secret: str | None = None,
                 read: frozenset[str] = SHIPPED_READ) -> None:
        self.scenario = scenario or Scenario()
        self.audiosocket = audiosocket
        self._clock = clock or SystemClock()
        self._audio_clock = audio_clock or SystemClock()
        self._speech = speech
        self._placeholder = allow_placeholder_speech
        self.out_dir = out_dir
        self._username = username
        self._secret = secret
        self._read = read
        self._server = AmiServer(self._handle)
        self._seq = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        self._legs: dict[str, AudioLeg] = {}
        self._ended: dict[str, asyncio.Event] = {}
        self.channels: dict[str, SimChannel] = {}  # by channel name
        self.actions: list[AmiMessage] = []
        self.events: deque[AmiMessage] = deque(maxlen=20000)
        self.results: dict[str, LegResult] = {}
        self.messages: list[SentMessage] = []  # every text MessageSend handed over
        self.refuse_messages_to: set[str] = set()  # numbers whose texts fail
        self.ping_enabled = True
        # Test control: after handling these actions, cut the AMI socket before the reply
        # reaches the client (the action itself still takes effect, the worst case).
        self.abort_after_action: set[str] = set()
        self.ami_port = 0
        self._check_speech(self.scenario)

    # -- lifecycle and test controls --------------------------------------------------

    def _check_speech(self, scenario: Scenario) -> None:
        if self._speech is not None or self._placeholder:
            return
        callees = [scenario.default, scenario.inbound, *scenario.numbers.values()]
        for c in callees:
            if any(item.say for item in c.script) or (
                    c.behaviour == Behaviour.VOICEMAIL and not c.script):
                raise SpeechUnavailable(
                    "the scenario has `say:` items (or a voicemail greeting) but no speech "
                    "source is configured: pass speech= (Piper) or allow placeholder tones")

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self.ami_port = await self._server.start(host, port)
        return self.ami_port

    async def close(self) -> None:
        for leg in list(self._legs.values()):
            leg.hangup()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.close()

    def actions_named(self, name: str) -> list[AmiMessage]:
        return [a for a in self.actions if (a.action or "").lower() == name.lower()]

    def kill_ami_connections(self) -> int:
        """Abort every AMI socket (calls go on, like a network cut to the manager port)."""
        sessions = list(self._server.sessions)
        for s in sessions:
            s.abort()
        return len(sessions)

    def send_raw(self, data: bytes) -> None:
        for s in list(self._server.sessions):
            s.send_raw(data)

    @property
    def session_count(self) -> int:
        return len(self._server.sessions)

    async def wait_call_ended(self, call_id: str) -> LegResult | None:
        ev = self._ended.setdefault(call_id, asyncio.Event())
        await ev.wait()
        return self.results.get(call_id)

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        async def guarded() -> None:
            try:
                await coro
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("sim call task failed", extra={"task": name})
        task = asyncio.create_task(guarded(), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- events -----------------------------------------------------------------------

    def _emit(self, event: str, fields: Fields, privilege: str = "call,all") -> None:
        full: Fields = [("Event", event), ("Privilege", privilege),
                        ("Timestamp", f"{self._clock.now().timestamp():.6f}"), *fields]
        self.events.append(AmiMessage(tuple(full)))
        # Like Asterisk's manager: a user hears only the classes its `read =` grants
        # (with the shipped manager.conf, no dialplan events such as VarSet or Newexten).
        if set(privilege.split(",")) & self._read:
            self._server.broadcast(full)

    def _chan_event(self, event: str, ch: SimChannel, extra: Fields | None = None,
                    privilege: str = "call,all") -> None:
        self._emit(event, [*ch.fields(), *(extra or [])], privilege)

    # -- actions ----------------------------------------------------------------------

    async def _handle(self, session: AmiSession, msg: AmiMessage) -> None:
        recorded = tuple((k, "***" if k.lower() == "secret" else v) for k, v in msg.fields)
        self.actions.append(AmiMessage(recorded))
        action = (msg.action or "").lower()
        aid: Fields = [("ActionID", msg.action_id)] if msg.action_id is not None else []
        if action == "login":
            self._login(session, msg, aid)
            return
        if not session.logged_in:
            session.send([("Response", "Error"), *aid, ("Message", "Authentication Required")])
            return
        handler = {
            "ping": self._ping, "logoff": self._logoff, "originate": self._originate,
            "hangup": self._hangup, "redirect": self._redirect,
            "coreshowchannels": self._core_show_channels, "status": self._status,
            "userevent": self._user_event, "messagesend": self._message_send,
        }.get(action)
        if handler is None:
            session.send([("Response", "Error"), *aid, ("Message", "Invalid/unknown command")])
            return
        if action in self.abort_after_action:
            session.abort()
        handler(session, msg, aid)

    def _login(self, session: AmiSession, msg: AmiMessage, aid: Fields) -> None:
        ok = msg.get("Username") == self._username and (
            self._secret is None or msg.get("Secret") == self._secret)
        if not ok:
            session.send([("Response", "Error"), *aid, ("Message", "Authentication failed")])
            return
        session.logged_in = True
        session.events_on = (msg.get("Events") or "on").lower() != "off"
        session.send([("Response", "Success"), *aid, ("Message", "Authentication accepted")])
        if session.events_on:
            session.send([("Event", "FullyBooted"), ("Privilege", "system,all"),
                          ("Uptime", "94"), ("LastReload", "94"), ("Status", "Fully Booted")])

    def _ping(self, session: AmiSession, msg: AmiMessage, aid: Fields) -> None:
        if not self.ping_enabled:
            return  # half-open: the socket stays up but nothing answers
        session.send([("Response", "Success"), *aid, ("Ping", "Pong"),
                      ("Timestamp", f"{self._clock.now().timestamp():.6f}")])

    def _logoff(self, session: AmiSession, msg: AmiMessage, aid: Fields) -> None:
        session.send([("Response", "Goodbye"), *aid, ("Message", "Thanks for all the fish.")])
        session.closed = True

    def _user_event(self, session: AmiSession, msg: AmiMessage, aid: Fields) -> None:
        name = msg.get("UserEvent")
        if not name:
            session.send([("Response", "Error"), *aid, ("Message", "UserEvent needs a name")])
            return
        session.send([("Response", "Success"), *aid, ("Message", "Event Sent")])
        extra = [(k, v) for k, v in msg.fields
                 if k.lower() not in ("action", "actionid", "userevent")]
        self._emit("UserEvent", [("UserEvent", name), *extra], "user,all")

    def _message_send(self, session: AmiSession, msg: AmiMessage, aid: Fields) -> None:
        got = parse_message_send(msg)
        if isinstance(got, str) or got.to in self.refuse_messages_to:
            session.send([("Response", "Error"), *aid, ("Message", got if isinstance(got, str)
                                                        else "Message failed to send.")])
            return
        self.messages.append(got)
        session.send([("Response", "Success"), *aid, ("Message", "Message successfully sent")])

    def deliver_message(self, sender: str, to: str, body: str) -> None:
        """A text from `sender` arrives on the trunk (the dialplan's UserEvent)."""
        self._emit("UserEvent", inbound_fields(sender, to, body), "user,all")

    def _find(self, name: str | None) -> SimChannel | None:
        if not name:
            return None
        return self.channels.get(name) or next(
            (c for c in self.channels.values() if c.uniqueid == name), None)

    def _hangup(self, session: AmiSession, msg: AmiMessage, aid: Fields) -> None:
        ch = self._find(msg.get("Channel"))
        if ch is None:
            session.send([("Response", "Error"), *aid, ("Message", "No such channel")])
            return
        session.send([("Response", "Success"), *aid, ("Message", "Channel Hungup")])
        self._chan_event("HangupRequest", ch, [("Cause", msg.get("Cause") or "16")])
        self._end_leg(ch)

    def _redirect(self, session: AmiSession, msg: AmiMessage, aid: Fields) -> None:
        ch = self._find(msg.get("Channel"))
        if ch is None:
            session.send([("Response", "Error"), *aid, ("Message", "Channel specified does "
                                                                   "not exist")])
            return
        session.send([("Response", "Success"), *aid, ("Message", "Redirect successful")])
        ch.context = msg.get("Context") or ch.context
        ch.exten = msg.get("Exten") or ch.exten
        ch.priority = int(msg.get("Priority") or "1")
        ch.application, ch.app_data = "Dial", "transfer"
        self._chan_event("Newexten", ch, [("Extension", ch.exten), ("Application", "Dial"),
                                          ("AppData", "transfer")], "dialplan,all")
        self._end_leg(ch)  # the AudioSocket app returns when the channel leaves it

    def _end_leg(self, ch: SimChannel) -> None:
        leg = self._legs.get(ch.call_id)
        if leg is not None:
            leg.hangup()

    def _core_show_channels(self, session: AmiSession, msg: AmiMessage, aid: Fields) -> None:
        session.send([("Response", "Success"), *aid, ("EventList", "start"),
                      ("Message", "Channels will follow")])
        now = self._clock.monotonic()
        chans = list(self.channels.values())
        for ch in chans:
            session.send([("Event", "CoreShowChannel"), *aid, *ch.fields(),
                          ("Application", ch.application), ("ApplicationData", ch.app_data),
                          ("Duration", duration_hms(now - ch.created_at)), ("BridgeId", "")])
        session.send([("Event", "CoreShowChannelsComplete"), *aid, ("EventList", "Complete"),
                      ("ListItems", str(len(chans)))])

    def _status(self, session: AmiSession, msg: AmiMessage, aid: Fields) -> None:
        wanted = msg.get("Channel")
        if wanted:
            one = self._find(wanted)
            if one is None:
                session.send([("Response", "Error"), *aid, ("Message", "No such channel")])
                return
            chans = [one]
        else:
            chans = list(self.channels.values())
        session.send([("Response", "Success"), *aid, ("EventList", "start"),
                      ("Message", "Channel status will follow")])
        now = self._clock.monotonic()
        names = [v.strip() for v in (msg.get("Variables") or "").split(",") if v.strip()]
        for ch in chans:
            wanted_vars = [("Variable", f"{n}={ch.variables.get(n, '')}") for n in names]
            session.send([("Event", "Status"), ("Privilege", "Call"), *aid, *ch.fields(),
                          ("Type", "PJSIP"), ("Application", ch.application),
                          ("Data", ch.app_data), ("Seconds", str(int(now - ch.created_at))),
                          *wanted_vars])
        session.send([("Event", "StatusComplete"), *aid, ("EventList", "Complete"),
                      ("ListItems", str(len(chans))), ("Items", str(len(chans)))])

    # -- originate --------------------------------------------------------------------

    def _originate(self, session: AmiSession, msg: AmiMessage, aid: Fields) -> None:
        if (msg.get("Async") or "false").lower() not in ("true", "yes", "1"):
            session.send([("Response", "Error"), *aid,
                          ("Message", "the simulator supports only Async originate")])
            return
        session.send([("Response", "Success"), *aid,
                      ("Message", "Originate successfully queued")])
        self._spawn(self._outbound(msg), f"sim-originate-{msg.action_id}")

    async def _outbound(self, msg: AmiMessage) -> None:
        dial = msg.get("Channel") or ""
        m = _DIAL.match(dial)
        variables = _parse_variables(msg.getall("Variable"))
        channel_id = msg.get("ChannelId")
        timeout_s = int(msg.get("Timeout") or "30000") / 1000
        context, exten = msg.get("Context") or "default", msg.get("Exten") or "s"
        aid: Fields = [("ActionID", msg.action_id)] if msg.action_id is not None else []

        cid_name, cid_num = _parse_callerid(msg.get("CallerID"))

        def originate_response(ok: bool, reason: int, channel: str, uniqueid: str) -> None:
            self._emit("OriginateResponse", [
                *aid, ("Response", "Success" if ok else "Failure"), ("Channel", channel),
                ("Context", context), ("Exten", exten), ("Reason", str(reason)),
                ("Uniqueid", uniqueid), ("CallerIDNum", cid_num or "<unknown>"),
                ("CallerIDName", cid_name or cid_num or "<unknown>")])

        trunks = self.scenario.trunks
        if m is None or (trunks is not None and m["trunk"] not in trunks):
            originate_response(False, 0, dial, "<unknown>")
            return
        number, trunk = m["num"], m["trunk"]
        callee = self.scenario.callee_for(number)
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
            self._chan_event("Newchannel", ch)
            for name, value in variables.items():
                self._chan_event("VarSet", ch, [("Variable", name), ("Value", value)],
                                 "dialplan,all")
            if cid_num:
                ch.caller_num, ch.caller_name = cid_num, cid_name or cid_num
                ch.connected_num, ch.connected_name = ch.caller_num, ch.caller_name
            self._emit("DialBegin", [*ch.dest_fields(), ("DialString", f"{number}@{trunk}")])
            if callee.behaviour in _REJECT:
                cause, sip, dial_status = _REJECT[callee.behaviour]
                if callee.behaviour == Behaviour.NO_LISTENER:
                    await self._clock.sleep(self.scenario.timer_b_s)
                self._reject(ch, cause, sip, dial_status,
                             lambda: originate_response(False, 0, dial, failed_uid))
                return
            ch.state = 5
            self._chan_event("Newstate", ch)
            self._emit("DialState", [*ch.dest_fields(), ("DialStatus", "RINGING")])
            ring = callee.ring_s if callee.behaviour != Behaviour.RING_OUT else timeout_s
            if ring >= timeout_s:
                await self._clock.sleep(timeout_s)
                originate_response(False, 3, dial, failed_uid)
                self._chan_event("Hangup", ch, cause_fields(19, 480))
                return
            await self._clock.sleep(ring)
            ch.state = 6
            self._chan_event("Newstate", ch)
            self._emit("DialEnd", [*ch.dest_fields(), ("DialStatus", "ANSWER")])
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
        self._chan_event("HangupRequest", ch, [("Cause", str(cause)), ("TechCause", str(sip))])
        if cause == 18:  # timer B: OriginateResponse, then DialEnd
            originate_failed()
            self._emit("DialEnd", [*ch.dest_fields(), ("DialStatus", dial_status)])
            self._chan_event("Hangup", ch, cause_fields(cause, sip))
            return
        self._emit("DialEnd", [*ch.dest_fields(), ("DialStatus", dial_status)])
        if cause == 1:
            self._chan_event("Hangup", ch, cause_fields(cause, sip))
            originate_failed()
            return
        originate_failed()
        self._chan_event("Hangup", ch, cause_fields(cause, sip))

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
            self._chan_event("UserEvent", ch, [("UserEvent", AMD_EVENT), ("CallId", ch.call_id),
                                               ("AMDSTATUS", status), ("AMDCAUSE", cause)],
                             "user,all")
        ch.priority = 6  # (connect): AudioSocket, as in the shipped dialplan
        ch.application = "AudioSocket"
        await self._run_leg(ch, callee, consumed)

    async def _run_leg(self, ch: SimChannel, callee: Callee, consumed_s: float) -> None:
        result = LegResult(LegEnd.CONNECT_FAILED)
        try:
            if self.audiosocket is None:
                log.warning("sim has no AudioSocket target; hanging up")
            else:
                host, port = self.audiosocket
                ch.app_data = f"{ch.call_id},{host}:{port}"
                segments = await self._render(callee)
                cfg = LegConfig(host=host, port=port, frame_ms=self.scenario.frame_ms,
                                no_traffic_timeout_s=self.scenario.no_traffic_timeout_s,
                                turn_gap_s=self.scenario.turn_gap_s,
                                max_turn_wait_s=self.scenario.max_turn_wait_s,
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
            self._chan_event("HangupRequest", ch)
            self._chan_event("SoftHangupRequest", ch, [("Cause", "16")])
            ch.exten, ch.priority = "h", 2
            self._chan_event("Hangup", ch, cause_fields(0))
        elif result.reason == LegEnd.PBX_HANGUP:
            ch.exten, ch.priority = "h", 2
            self._chan_event("Hangup", ch, cause_fields(16))
        else:
            ch.priority += 2
            self._chan_event("SoftHangupRequest", ch, [("Cause", "16")])
            ch.exten, ch.priority = "h", 2
            self._chan_event("Hangup", ch, cause_fields(16))
        self._mark_ended(ch.call_id)

    def _mark_ended(self, call_id: str) -> None:
        self._ended.setdefault(call_id, asyncio.Event()).set()
        # Bounded memory for a long-running simulator: keep the latest calls only.
        for table in (self.results, self._ended):
            while len(table) > _KEEP_RESULTS:
                table.pop(next(iter(table)))

    def _save_audio(self, call_id: str, result: LegResult) -> None:
        if self.out_dir is None or result.reason == LegEnd.CONNECT_FAILED:
            return
        try:
            write_wav_8k(self.out_dir / f"{call_id}-heard.wav", result.heard)
            write_wav_8k(self.out_dir / f"{call_id}-said.wav", result.said)
        except OSError:
            log.exception("sim could not save call audio", extra={"call_id": call_id})

    async def _render(self, callee: Callee) -> list[Segment]:
        segments: list[Segment] = []
        if callee.behaviour == Behaviour.VOICEMAIL and not callee.script:
            greeting = await self._say(callee.greeting)
            return [Segment(pcm=greeting + beep(), barge_in=True)]
        for item in callee.script:
            if item.say is not None:
                pcm = await self._say(item.say)
                segments.append(Segment(pcm=pcm, at_s=item.at_s, barge_in=item.barge_in))
            elif item.wav is not None:
                pcm = await asyncio.to_thread(read_wav_8k, item.wav)
                segments.append(Segment(pcm=pcm, at_s=item.at_s, barge_in=item.barge_in))
            elif item.pause_s is not None:
                segments.append(Segment(pause_s=item.pause_s, at_s=item.at_s))
            elif item.dtmf is not None:
                segments.append(Segment(dtmf=item.dtmf, at_s=item.at_s))
        if callee.behaviour == Behaviour.VOICEMAIL:
            segments.append(Segment(pcm=beep(), barge_in=True))
        return segments

    async def _say(self, text: str) -> bytes:
        if self._speech is not None:
            return await self._speech(text)
        if self._placeholder:
            return placeholder_speech(text)
        raise SpeechUnavailable("a `say:` item needs a speech source (Piper); none configured")

    # -- inbound ----------------------------------------------------------------------

    async def start_inbound(self, caller_id: str, callee: Callee | None = None,
                            trunk: str = "trunk", dialed: str | None = None) -> str:
        """A call from `caller_id` (to the DID `dialed`) arrives; returns the AudioSocket
        UUID it will use."""
        call_id = str(uuid.uuid4())
        who = callee or self.scenario.inbound
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
        self._chan_event("Newchannel", ch)
        ch.state = 6
        self._chan_event("Newstate", ch)
        fields = [("UserEvent", INBOUND_EVENT), ("CallId", call_id), ("CallerID", caller_id)]
        if dialed is not None:
            fields.append(("Dialed", dialed))
        self._chan_event("UserEvent", ch, fields, "user,all")

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

