"""Asyncio AMI client: a thin adapter over the sans-IO codec in `ami/codec.py`.

Why our own adapter and not panoramisk: panoramisk re-sends actions that were not answered
when the connection comes back (after FullyBooted). For an Originate that is a second call
to a real person. We need per-action control: an Originate is written at most once, and if
the connection drops before its "queued" Response the attempt is reported as *unknown* so
the caller reconciles it against CoreShowChannels instead of dialing again.

Owned tasks: one supervisor (connect, log in, reconnect with jittered exponential backoff)
and, per connection, a reader and a pinger. `close()` cancels them all. Opening and
watching a connection are in `ami/connection.py`, matching replies to actions in
`ami/inflight.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from enum import StrEnum
from typing import TypeVar

from pydantic import SecretStr

from televox_pbx.ami.codec import AmiMessage, AmiParser, AmiProtocolError, encode
from televox_pbx.ami.connection import backoff_s, open_ami, watch
from televox_pbx.ami.errors import (
    AmiActionError,
    AmiConnectionLost,
    AmiError,
    AmiLoginError,
    AmiNotConnected,
    AmiTimeout,
    OriginateRefused,
    OriginateUnknown,
)
from televox_pbx.ami.inflight import InFlight, Reply
from televox_pbx.ami.originate import looks_like_uuid, originate_fields, sanitize_variable
from televox_pbx.clock import Clock, SystemClock, wait_for
from televox_pbx.config.settings import AmiSettings
from televox_pbx.domain import OriginateRequest

# The errors and the Originate's wire fields live in their own modules; they are named
# here too, where every caller of the client has always found them.
__all__ = ["AmiActionError", "AmiClient", "AmiConnectionLost", "AmiError", "AmiLoginError",
           "AmiNotConnected", "AmiTimeout", "ConnectionState", "OriginateRefused",
           "OriginateUnknown", "looks_like_uuid", "originate_fields", "sanitize_variable"]

log = logging.getLogger(__name__)

T = TypeVar("T")

_READ_CHUNK = 65536
# `Response: Error` messages with which Asterisk refuses an action before acting on it
# (manager.c checks ast_shutting_down() first; seen during `core restart now`), and the
# answer to an action on a session that is not logged in.
_REFUSED_BEFORE_DIAL = re.compile(r"shutting down|authentication required", re.IGNORECASE)


class ConnectionState(StrEnum):
    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    LOGGED_IN = "logged_in"
    RECONNECTING = "reconnecting"


EventCallback = Callable[[AmiMessage], None]
StateCallback = Callable[[ConnectionState], None]


class AmiClient:
    """Implements `ChannelProbe` (televox_pbx/ports.py); `CampaignRunner` wraps it as the
    dialer's `Originator`."""

    def __init__(self, settings: AmiSettings, *, clock: Clock | None = None,
                 host: str | None = None, port: int | None = None,
                 secret: SecretStr | None = None, amd_contexts: Iterable[str] = ("amd",),
                 action_timeout_s: float = 10.0, rng: random.Random | None = None) -> None:
        self._settings = settings
        self._clock = clock or SystemClock()
        self._host = host or settings.host or "127.0.0.1"
        self._port = port or settings.port
        self._secret = secret
        self._amd_exts = frozenset(amd_contexts)
        self._action_timeout = action_timeout_s
        self._rng = rng or random.Random()
        self._state = ConnectionState.DISCONNECTED
        self._state_listeners: list[StateCallback] = []
        self._subscribers: list[EventCallback] = []
        self._inflight = InFlight()
        self._writer: asyncio.StreamWriter | None = None
        self._reader: asyncio.StreamReader | None = None
        self._parser: AmiParser | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._read_task: asyncio.Task[None] | None = None
        self._closing = False
        self._logged_in = asyncio.Event()
        self.banner: str | None = None
        self.connections = 0  # successful logins so far (tests, health)

    # -- observable state -------------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        return self._state

    def add_state_listener(self, callback: StateCallback) -> Callable[[], None]:
        self._state_listeners.append(callback)
        return lambda: self._state_listeners.remove(callback)

    def _set_state(self, state: ConnectionState) -> None:
        if state == self._state:
            return
        self._state = state
        if state == ConnectionState.LOGGED_IN:
            self._logged_in.set()
        else:
            self._logged_in.clear()
        log.info("ami state", extra={"ami_state": state.value})
        for cb in list(self._state_listeners):
            try:
                cb(state)
            except Exception:
                log.exception("AMI state listener failed")

    async def wait_logged_in(self, timeout_s: float | None = None) -> None:
        if timeout_s is None:
            await self._logged_in.wait()
        else:
            await wait_for(self._clock, self._logged_in.wait(), timeout_s)

    # -- events -----------------------------------------------------------------------

    def subscribe(self, callback: EventCallback) -> Callable[[], None]:
        """Call `callback(msg)` for every event; returns an unsubscribe function."""
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback)

    async def events(self, max_queue: int = 10000) -> AsyncIterator[AmiMessage]:
        """Async iterator over events; events beyond `max_queue` unread are dropped."""
        queue: asyncio.Queue[AmiMessage] = asyncio.Queue(max_queue)

        def put(msg: AmiMessage) -> None:
            try:
                queue.put_nowait(msg)
            except asyncio.QueueFull:
                log.warning("AMI event iterator is behind; event dropped")

        unsubscribe = self.subscribe(put)
        try:
            while True:
                yield await queue.get()
        finally:
            unsubscribe()

    def _dispatch(self, msg: AmiMessage) -> None:
        for cb in list(self._subscribers):
            try:
                cb(msg)
            except Exception:
                log.exception("AMI event subscriber failed", extra={"ami_event": msg.event})

    # -- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        """Connect and log in once (errors raise), then keep the connection alive."""
        if self._supervisor is not None:
            raise RuntimeError("AMI client already started")
        self._closing = False
        self._set_state(ConnectionState.CONNECTING)
        try:
            await self._connect()
        except BaseException:
            self._set_state(ConnectionState.DISCONNECTED)
            raise
        self._supervisor = asyncio.create_task(self._supervise(), name="ami-supervisor")

    async def close(self) -> None:
        self._closing = True
        if self._writer is not None and self._state == ConnectionState.LOGGED_IN:
            with contextlib.suppress(Exception):
                self._writer.write(encode([("Action", "Logoff"), ("ActionID", "logoff")]))
        task, self._supervisor = self._supervisor, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._drop_connection("client closed")
        self._set_state(ConnectionState.DISCONNECTED)

    async def __aenter__(self) -> AmiClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _connect(self) -> None:
        secret = self._secret or self._settings.secret()
        if secret is None:
            raise AmiLoginError(
                f"no AMI secret: set ${self._settings.secret_env} or ami.secret_file")
        reader, writer, parser, banner = await open_ami(self._host, self._port, self._clock,
                                                        self._action_timeout)
        self._reader, self._writer, self._parser = reader, writer, parser
        self.banner = banner
        # The reader must run for the login Response to arrive.
        login_id = self._inflight.next_id("login")
        self._read_task = asyncio.create_task(
            self._read_loop(reader, parser), name="ami-reader")
        try:
            resp, _ = await self._request([
                ("Action", "Login"), ("Username", self._settings.username),
                ("Secret", secret.get_secret_value()), ("Events", "on"),
                ("ActionID", login_id)], None, self._action_timeout, login=True)
        except BaseException:
            await self._drop_connection("login failed")
            raise
        if (resp.response or "").lower() != "success":
            await self._drop_connection("login rejected")
            raise AmiLoginError(f"AMI login rejected for user {self._settings.username!r}: "
                                f"{resp.get('Message') or 'no message'}")
        if self._read_task is None or self._read_task.done():
            await self._drop_connection("closed right after login")
            raise ConnectionError("AMI connection closed right after login")
        self.connections += 1
        self._set_state(ConnectionState.LOGGED_IN)

    async def _supervise(self) -> None:
        attempt = 0
        while not self._closing:
            try:
                if self._read_task is not None:  # a connection from the last login
                    attempt = 0
                    reason = await self._serve_connection()
                    log.warning("AMI connection lost", extra={"reason": reason})
                    await self._drop_connection(reason)
                    if self._closing:
                        break
                    self._set_state(ConnectionState.RECONNECTING)
                delay = backoff_s(attempt, self._settings, self._rng)
                attempt += 1
                await self._clock.sleep(delay)
                await self._connect()
            except AmiLoginError:
                log.error("AMI login rejected on reconnect; will retry")
            except (OSError, AmiError, AmiProtocolError, TimeoutError) as exc:
                log.warning("AMI reconnect failed", extra={"error": repr(exc),
                                                           "attempt": attempt})
            except Exception:
                # Never let the one task that keeps AMI alive die: the daemon would be
                # up but deaf. Drop whatever is half-open and try again after a backoff.
                log.exception("AMI supervisor failed unexpectedly; will retry",
                              extra={"attempt": attempt})
                with contextlib.suppress(Exception):
                    await self._drop_connection("supervisor error")
                if not self._closing:
                    self._set_state(ConnectionState.RECONNECTING)

    async def _serve_connection(self) -> str:
        """Run until the connection fails; returns why."""
        read_task = self._read_task
        if read_task is None:
            return "no reader"
        return await watch(read_task, self._ping, self._settings, self._clock)

    async def _ping(self) -> None:
        await self._request([("Action", "Ping"), ("ActionID", self._inflight.next_id("ping"))],
                            None, self._settings.ping_timeout_s)

    async def _read_loop(self, reader: asyncio.StreamReader, parser: AmiParser) -> None:
        try:
            while True:
                data = await reader.read(_READ_CHUNK)
                if not data:
                    return
                for item in parser.feed(data):  # AmiProtocolError ends this connection
                    if isinstance(item, AmiMessage):
                        self._on_message(item)
        finally:
            # This connection is done: no action may be written to it from now on (a
            # write would be reported as unknown instead of not sent), and whatever was
            # in flight on it will never be answered.
            if self._state == ConnectionState.LOGGED_IN and not self._closing:
                self._set_state(ConnectionState.RECONNECTING)
            self._inflight.fail_all("connection closed")

    def _on_message(self, msg: AmiMessage) -> None:
        self._inflight.settle(msg)
        if msg.event is not None:  # a Response goes only to the action it answers
            self._dispatch(msg)

    async def _drop_connection(self, reason: str) -> None:
        writer, self._writer = self._writer, None
        self._reader = self._parser = None
        task, self._read_task = self._read_task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._inflight.fail_all(reason)
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    # -- actions ----------------------------------------------------------------------

    async def _request(self, fields: list[tuple[str, str]], complete_event: str | None,
                       timeout_s: float, *, login: bool = False,
                       ) -> Reply:
        """Write one action and await its Response. Only the Login itself may be written
        before the login has completed: anything else raises AmiNotConnected, which
        proves that nothing went on the wire."""
        writer = self._writer
        if writer is None or (not login and self._state != ConnectionState.LOGGED_IN):
            raise AmiNotConnected(f"AMI is not logged in ({self._state.value})")
        aid, fields = self._inflight.with_id(fields)
        data = encode(fields)
        future = self._inflight.add(aid, complete_event)
        try:
            writer.write(data)
            return await wait_for(self._clock, asyncio.shield(future), timeout_s)
        except TimeoutError:
            raise AmiTimeout(f"no AMI response within {timeout_s}s") from None
        finally:
            self._inflight.discard(aid, future)

    async def send_action(self, fields: Mapping[str, str] | Iterable[tuple[str, str]],
                          timeout_s: float | None = None) -> AmiMessage:
        """Send one action, await its Response. `Response: Error` raises AmiActionError."""
        pairs = list(fields.items()) if isinstance(fields, Mapping) else list(fields)
        resp, _ = await self._request(pairs, None, timeout_s or self._action_timeout)
        if (resp.response or "").lower() == "error":
            raise AmiActionError(resp)
        return resp

    async def send_collecting(self, fields: Mapping[str, str] | Iterable[tuple[str, str]],
                              complete_event: str, timeout_s: float | None = None,
                              ) -> tuple[AmiMessage, list[AmiMessage]]:
        """Send a list action (CoreShowChannels, Status) and gather its events."""
        pairs = list(fields.items()) if isinstance(fields, Mapping) else list(fields)
        resp, events = await self._request(pairs, complete_event,
                                           timeout_s or self._action_timeout)
        if (resp.response or "").lower() == "error":
            raise AmiActionError(resp)
        return resp, events

    async def core_show_channels(self) -> list[AmiMessage]:
        _, events = await self.send_collecting({"Action": "CoreShowChannels"},
                                               "CoreShowChannelsComplete")
        return events

    async def status(self, channel: str | None = None, *,
                     variables: tuple[str, ...] = ()) -> list[AmiMessage]:
        """One Status event per channel; each `variables` name comes back as a
        `Variable: NAME=value` field."""
        fields = {"Action": "Status"}
        if channel:
            fields["Channel"] = channel
        if variables:
            fields["Variables"] = ",".join(variables)
        _, events = await self.send_collecting(fields, "StatusComplete")
        return events

    async def live_call_ids(self) -> set[str]:
        """ChannelProbe: attempt UUIDs with a live channel (Uniqueid/Linkedid)."""
        live: set[str] = set()
        for ev in await self.core_show_channels():
            for key in ("Uniqueid", "Linkedid"):
                value = ev.get(key)
                if value and looks_like_uuid(value):
                    live.add(value.lower())
        return live

    async def originate(self, req: OriginateRequest, *, amd: bool | None = None) -> None:
        """Originator: write exactly one Originate. Never retried here.

        Raises AmiNotConnected (nothing sent: safe to try later; OriginateRefused when
        Asterisk refused it before dialling, e.g. while shutting down), AmiActionError
        (Asterisk refused it: no call), OriginateUnknown (sent, fate unknown: reconcile).
        """
        use_amd = amd if amd is not None else req.exten in self._amd_exts
        fields = originate_fields(req, amd=use_amd)
        log.info("originate", extra={"call_id": req.call_id, "phone": req.phone})
        try:
            resp, _ = await self._request(fields, None, self._action_timeout)
        except (AmiConnectionLost, AmiTimeout) as exc:
            raise OriginateUnknown(req.call_id, str(exc)) from exc
        if (resp.response or "").lower() == "error":
            if _REFUSED_BEFORE_DIAL.search(resp.get("Message") or ""):
                raise OriginateRefused(resp)
            raise AmiActionError(resp)
