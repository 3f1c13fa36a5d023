"""The daemon's control operations. `call` places one call now through the daemon's own
gate and dialer (`Dialer.call_now`, the path campaigns use) and streams back what
happens: a refusal in words, or "calling", the live transcript, and the stored result.

Events sent for a call: refused {code, reason} | error {reason} | allowed {detail} (a
check_only request) | calling {call_id, phone, campaign} then say {speaker, text} and
note {text} lines, then done {call_id, finished, summary, recording}.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from functools import partial
from typing import TYPE_CHECKING, Any

from televox_pbx.ami.client import ConnectionState
from televox_pbx.campaigns import gate
from televox_pbx.control import refusals
from televox_pbx.control.callnow import (
    EXIT_REFUSED,
    CallError,
    CallRequest,
    campaign_for,
    contact_id_for,
    hangup,
    live_call,
    summary_to_wire,
    wait_final,
)
from televox_pbx.control.protocol import PROTOCOL_VERSION, socket_path, token_path
from televox_pbx.control.server import Channel, ControlServer, Handler
from televox_pbx.control.taps import TappingFactory, TranscriptTaps
from televox_pbx.store.attempts import is_final_status
from televox_pbx.store.campaigns import upsert_campaign
from televox_pbx.store.transcripts import recordings

if TYPE_CHECKING:
    from televox_pbx.app import App

log = logging.getLogger(__name__)


async def start_control(app: App) -> ControlServer:
    """The control channel of this daemon, listening (App.start calls this first: a
    second daemon on the same database stops here, before it binds anything else)."""
    service = CallService(app)
    server = ControlServer(socket_path(app.settings), token_path(app.settings), app.clock,
                           service.handlers())
    await server.start()
    return server


class CallService:
    def __init__(self, app: App) -> None:
        self._app = app
        self._taps = TranscriptTaps()

    def handlers(self) -> dict[str, Handler]:
        return {"ping": self.ping, "call": self.call}

    async def ping(self, args: dict[str, Any], chan: Channel) -> None:
        await chan.send({"event": "pong", "version": PROTOCOL_VERSION,
                         "ami": self._app.ami_mode})

    async def call(self, args: dict[str, Any], chan: Channel) -> None:
        # From the start: a client that hangs up or leaves before the Originate stops it.
        interrupt = asyncio.Event()
        watcher = asyncio.create_task(_watch(chan, interrupt), name="control-call-watch")
        try:
            await self._call(args, chan, interrupt)
        except CallError as exc:
            if exc.code == EXIT_REFUSED:
                await chan.send({"event": "refused", "code": refusals.OTHER,
                                 "reason": str(exc)})
            else:
                await chan.send({"event": "error", "reason": str(exc)})
        finally:
            watcher.cancel()

    async def _call(self, args: dict[str, Any], chan: Channel,
                    interrupt: asyncio.Event) -> None:
        app = self._app
        store, runner, client = app.store, app.runner, app.client
        if store is None or runner is None or client is None:
            raise CallError("the daemon is still starting; try again in a moment")
        request = args.get("request")
        if not isinstance(request, dict):
            raise CallError("request: expected an object")
        req = CallRequest.from_wire(request)
        actor = args.get("actor")
        actor = actor if isinstance(actor, str) and actor else "televox call"
        ws = app.settings.workspace
        campaign = campaign_for(app.settings, req)
        ctx = gate.GateContext(campaign=campaign, phone=req.phone, now=app.clock.now(),
                               workspace=ws, contact_tz=req.timezone, purpose="call_now")
        decision = await gate.check(store, ctx)
        if not decision.allowed or decision.e164 is None:
            await _refuse(chan, refusals.from_gate(decision, campaign, ws))
            return
        e164 = decision.e164
        if await live_call(store, e164):
            await _refuse(chan, refusals.in_call())
            return
        if args.get("check_only") is True:
            await chan.send({"event": "allowed", "detail": decision.detail})
            return
        if app.factory is None:
            raise CallError("the daemon runs without the voice models (serve --no-models): "
                            "nobody would talk on the call; not dialling")
        if client.state is not ConnectionState.LOGGED_IN:
            raise CallError(f"the PBX is not reachable over AMI ({client.state.value})")
        if not isinstance(app.factory, TappingFactory):
            app.factory = TappingFactory(app.factory, self._taps)
        campaign_id = await upsert_campaign(store, campaign)
        contact_id = await contact_id_for(store, campaign, campaign_id, req, e164, actor=actor)
        if interrupt.is_set():
            raise CallError("interrupted before dialling")
        result = await runner.dialer.call_now(contact_id)
        if result.call_id is None:
            def recheck() -> gate.GateDecision:
                return gate.decide_window(dataclasses.replace(ctx, now=app.clock.now()), e164)
            await _refuse(chan, refusals.from_call_now(
                result.reason, getattr(result, "code", None), campaign, ws, recheck))
            return
        call_id = result.call_id
        log.info("call placed for the control channel",
                 extra={"call_id": call_id, "campaign": campaign.name})
        await chan.send({"event": "calling", "call_id": call_id, "phone": e164,
                         "campaign": campaign.name})
        unfollow = self._taps.follow(call_id, partial(_say, chan))
        try:
            summary = await wait_final(
                store, app.clock, call_id, req.timeout_s, interrupt,
                partial(hangup, client, call_id),
                lambda text: chan.send_nowait({"event": "note", "text": text}))
        finally:
            unfollow()
        found = await recordings(store, call_id)
        await chan.send({
            "event": "done", "call_id": call_id,
            "finished": summary is not None and is_final_status(summary.status),
            "summary": summary_to_wire(summary),
            "recording": str(found[0][0]) if found else None})


async def _refuse(chan: Channel, refusal: refusals.Refusal) -> None:
    await chan.send({"event": "refused", "code": refusal.code, "reason": refusal.reason})


def _say(chan: Channel, speaker: str, text: str) -> None:
    chan.send_nowait({"event": "say", "speaker": speaker, "text": text})


async def _watch(chan: Channel, interrupt: asyncio.Event) -> None:
    """The client asked to hang up, or went away (Ctrl-C, killed): end the call."""
    while True:
        msg = await chan.receive()
        if msg is None or msg.get("op") == "hangup":
            interrupt.set()
            return
