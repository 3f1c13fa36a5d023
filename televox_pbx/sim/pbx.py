"""The PBX simulator: answers AMI actions and plays calls the way Asterisk 22 does.

Event order and fields follow /work/shared/fixtures/asterisk-22 (noise such as Newexten,
RTCP and Cdr is left out; FullyBooted after login is kept). This module is the AMI side
and the test controls; the calls are played in sim/calls.py (ring times, AMD and SIP
timer B on the injected clock, AudioSocket audio paced on `audio_clock`), what a callee
says in sim/callee_voice.py, and every event goes out through sim/event_stream.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from televox_pbx.ami.codec import AmiMessage
from televox_pbx.clock import Clock, SystemClock
from televox_pbx.sim.ami_server import AmiServer, AmiSession, Fields
from televox_pbx.sim.audio_leg import LegResult
from televox_pbx.sim.callee_voice import CalleeVoice
from televox_pbx.sim.calls import SimCalls
from televox_pbx.sim.channel import SimChannel, duration_hms
from televox_pbx.sim.event_stream import EventStream
from televox_pbx.sim.messages import SentMessage, inbound_fields, parse_message_send
from televox_pbx.sim.scenario import Callee, Scenario
from televox_pbx.sim.speech import SpeechSource

log = logging.getLogger(__name__)

# Event classes the shipped asterisk/manager.conf lets the televox user read (`read =`).
SHIPPED_READ = frozenset({"call", "user"})


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
        self.out_dir = out_dir
        self._username = username
        self._secret = secret
        self._server = AmiServer(self._handle)
        self._stream = EventStream(self._clock, self._server.broadcast, read)
        voice = CalleeVoice(speech, allow_placeholder_speech)
        self._tasks: set[asyncio.Task[None]] = set()
        self._calls = SimCalls(self, self._stream, voice, clock=self._clock,
                               audio_clock=audio_clock or SystemClock(), spawn=self._spawn)
        self.channels = self._calls.channels  # by channel name
        self.actions: list[AmiMessage] = []
        self.events = self._stream.log
        self.results = self._calls.results
        self.messages: list[SentMessage] = []  # every text MessageSend handed over
        self.refuse_messages_to: set[str] = set()  # numbers whose texts fail
        self.ping_enabled = True
        # Test control: after handling these actions, cut the AMI socket before the reply
        # reaches the client (the action itself still takes effect, the worst case).
        self.abort_after_action: set[str] = set()
        self.ami_port = 0
        voice.check(self.scenario)

    # -- lifecycle and test controls --------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self.ami_port = await self._server.start(host, port)
        return self.ami_port

    async def close(self) -> None:
        self._calls.hangup_all()
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
        return await self._calls.wait_call_ended(call_id)

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
        self._stream.emit(event, fields, privilege)

    def _chan_event(self, event: str, ch: SimChannel, extra: Fields | None = None,
                    privilege: str = "call,all") -> None:
        self._stream.channel(event, ch, extra, privilege)

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
        self._calls.end_leg(ch)

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
        self._calls.end_leg(ch)  # the AudioSocket app returns when the channel leaves it

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
        self._spawn(self._calls.outbound(msg), f"sim-originate-{msg.action_id}")

    # -- inbound ----------------------------------------------------------------------

    async def start_inbound(self, caller_id: str, callee: Callee | None = None,
                            trunk: str = "trunk", dialed: str | None = None) -> str:
        """A call from `caller_id` (to the DID `dialed`) arrives; returns the AudioSocket
        UUID it will use."""
        return await self._calls.start_inbound(caller_id, callee, trunk, dialed)
