"""The daemon's adapters between its parts: where a call's result goes (ResultLog, which
also tells the outcome pump), how a call is transferred (AMI), and the campaign runner
that readies each attempt's voice agent before it dials (VoiceRunner)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from televox_pbx.ami.client import AmiClient
from televox_pbx.ami.codec import AmiMessage
from televox_pbx.audiosocket.server import AudioSocketServer
from televox_pbx.audiosocket.session import SessionHandler
from televox_pbx.campaigns.runner import CampaignRunner, SessionResult
from televox_pbx.clock import Clock, wait_for
from televox_pbx.domain import Disposition, OriginateRequest
from televox_pbx.store import Store
from televox_pbx.store.transcripts import CallRecord, StoreCallLog, callee_turns

log = logging.getLogger(__name__)


class ResultLog:
    """The sessions' CallLogPort: saves to the store and tells the runner what happened."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self._inner = StoreCallLog(store)
        self._clock = clock
        self._results: dict[str, asyncio.Future[SessionResult]] = {}

    def _future(self, call_id: str) -> asyncio.Future[SessionResult]:
        fut = self._results.get(call_id)
        if fut is None:
            fut = asyncio.get_running_loop().create_future()
            self._results[call_id] = fut
        return fut

    async def save_call(self, record: CallRecord) -> None:
        try:
            await self._inner.save_call(record)
        finally:
            turns = callee_turns(record.turns)
            disposition = Disposition(record.disposition) if record.disposition else None
            fut = self._future(record.attempt_id)
            if not fut.done():
                fut.set_result((turns, disposition))

    def report(self, call_id: str, result: SessionResult) -> None:
        """A session that keeps no CallRecord (an IVR call) hands its result over here."""
        fut = self._future(call_id)
        if not fut.done():
            fut.set_result(result)

    def forget(self, call_id: str) -> None:
        """Nobody will wait for this call's result (inbound calls have no dialer)."""
        self._results.pop(call_id, None)

    async def wait(self, call_id: str, timeout_s: float) -> SessionResult:
        """The session's result, or (None, None) after `timeout_s` on the clock."""
        try:
            return await wait_for(self._clock, asyncio.shield(self._future(call_id)),
                                  timeout_s)
        except TimeoutError:
            log.warning("voice session result missing", extra={"call_id": call_id})
            return (None, None)
        finally:
            self._results.pop(call_id, None)


class AmiTransfer:
    """The sessions' TransferPort: an AMI Redirect of the call's channel."""

    def __init__(self, client: AmiClient) -> None:
        self._client = client

    async def transfer(self, call_id: str, target: Any) -> None:
        # An outbound channel's Uniqueid is the call id (the Originate's ChannelId); an
        # inbound one has its own, and only TELEVOX_CALL_ID (set by the dialplan, and by
        # the Originate too) names the call.
        channels = await self._client.status(variables=(CALL_ID_VAR,))
        name = next((m.get("Channel") for m in channels if _is_call(m, call_id)), None)
        if name is None:
            raise RuntimeError("no live channel for this call")
        await self._client.send_action([
            ("Action", "Redirect"), ("Channel", name), ("Context", target.context),
            ("Exten", target.exten), ("Priority", str(target.priority))])


CALL_ID_VAR = "TELEVOX_CALL_ID"


def _is_call(status: AmiMessage, call_id: str) -> bool:
    if status.get("Uniqueid") == call_id:
        return True
    return f"{CALL_ID_VAR}={call_id}" in status.getall("Variable")


class VoiceRunner(CampaignRunner):
    """The campaign runner, plus: every attempt's AudioSocket handler is registered
    before its Originate goes out, so the answered call finds its agent waiting."""

    def __init__(self, *args: Any, handler_for: Callable[[OriginateRequest], SessionHandler]
                 | None, audiosocket: AudioSocketServer, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._handler_for = handler_for
        self._audiosocket = audiosocket

    async def originate(self, req: OriginateRequest) -> None:
        if self._handler_for is not None:
            self._audiosocket.expect(req.call_id, self._handler_for(req))
        await super().originate(req)
