"""Sending and receiving texts: campaign sends, single sends, STOP/START and replies.

Every text to a person goes through the compliance gate (DNC, calling window) and the
one-live-attempt claim, except the one confirmation of an opt-out (it must reach a number
that is now on the DNC list). STOP words put the number on the DNC list for every channel
with source 'sms'; START/UNSTOP remove only an entry that source made. Any other reply is
answered by the campaign's agent (the local LLM) within one segment and the window.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from televox_pbx.ami.client import AmiNotConnected
from televox_pbx.ami.codec import AmiMessage
from televox_pbx.campaigns import gate
from televox_pbx.campaigns.dnc import DncService
from televox_pbx.campaigns.phones import normalize_phone
from televox_pbx.clock import Clock
from televox_pbx.config.campaign import Campaign, SmsConfig
from televox_pbx.sms import keywords
from televox_pbx.sms.ami import InboundMessage, Messenger, parse_inbound
from televox_pbx.sms.segments import SegmentError, fit, measure, render_one_segment
from televox_pbx.store import sms as sms_store
from televox_pbx.store.attempts import ClaimRefused, cancel_unsent
from televox_pbx.store.campaigns import get_campaign_by_id
from televox_pbx.store.db import Store
from televox_pbx.store.dnc import SMS_SOURCE

log = logging.getLogger(__name__)


class Responder(Protocol):
    async def reply(self, campaign: Campaign, thread: Sequence[tuple[str, str]]) -> str:
        """The agent's answer to the last inbound text of `thread` ((direction, body))."""


@dataclass(frozen=True, slots=True)
class SendResult:
    ok: bool
    # sent, failed, dnc, window, unknown_tz, invalid, in_call, not_sent, too_long, sender
    code: str
    reason: str = ""
    attempt_id: str | None = None


# How often replies held outside the calling window are looked at again.
HELD_CHECK_S = 60.0
_GATE_CODES = {gate.GateReason.DNC: "dnc", gate.GateReason.OUTSIDE_WINDOW: "window",
               gate.GateReason.UNKNOWN_TIMEZONE: "unknown_tz",
               gate.GateReason.INVALID_NUMBER: "invalid"}


class SmsService:
    def __init__(self, store: Store, messenger: Messenger, clock: Clock, *,
                 workspace: str = "default", responder: Responder | None = None,
                 new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
                 sms_from: frozenset[str] | None = None) -> None:
        """`sms_from`: the numbers (E.164) texts may be sent from, the settings' numbers
        marked `sms: true`; None when the settings list no numbers (no restriction)."""
        self._store = store
        self._sms_from = sms_from
        self._messenger = messenger
        self._clock = clock
        self._workspace = workspace
        self._responder = responder
        self._new_id = new_id
        self._inbox: asyncio.Queue[InboundMessage] = asyncio.Queue()

    # ---- outbound ----------------------------------------------------------------------

    async def send_claimed(self, campaign_id: int, cfg: Campaign, contact_id: int,
                           variables: Mapping[str, object], attempt_id: str,
                           phone: str) -> SendResult:
        """A campaign contact the dialer has gated and claimed: render, send, settle."""
        assert cfg.sms is not None
        msg = sms_store.OutMessage(phone, "", "campaign", campaign_id, contact_id, attempt_id)
        try:
            body = render_one_segment(cfg.sms.message, variables, f"contact {contact_id}")
        except SegmentError as exc:
            await sms_store.finish_message(self._store, msg, False, str(exc),
                                           self._clock.now())
            return SendResult(False, "too_long", str(exc), attempt_id)
        msg = sms_store.OutMessage(phone, body, "campaign", campaign_id, contact_id,
                                   attempt_id)
        return await self._deliver(cfg, msg, contact_id)

    def _from_refused(self, cfg: Campaign) -> str | None:
        """Why texts may not go out from the campaign's caller ID, or None."""
        if self._sms_from is None:
            return None
        sender = normalize_phone(cfg.caller_id, cfg.default_country).e164
        if sender in self._sms_from:
            return None
        return "the campaign's caller_id is not one of the numbers that may send SMS " \
               "(settings numbers with sms: true)"

    async def _deliver(self, cfg: Campaign, msg: sms_store.OutMessage,
                       contact_id: int | None) -> SendResult:
        if (refused := self._from_refused(cfg)) is not None:
            # Nothing goes out; the attempt ends failed (the retry policy bounds it), and
            # `televox check` names the campaign file and line before it ever runs.
            log.warning("message not sent: sender not allowed",
                        extra={"attempt_id": msg.attempt_id, "campaign": cfg.name})
            await sms_store.finish_message(self._store, msg, False, refused,
                                           self._clock.now())
            return SendResult(False, "sender", refused, msg.attempt_id)
        try:
            await self._messenger.send_message(cfg.trunk, msg.e164, cfg.caller_id, msg.body)
        except AmiNotConnected as exc:  # nothing went out: back in line
            assert msg.attempt_id is not None
            if contact_id is not None:
                await cancel_unsent(self._store, msg.attempt_id, contact_id,
                                    self._clock.now(), str(exc))
            else:
                await sms_store.cancel_message(self._store, msg.attempt_id, str(exc))
            return SendResult(False, "not_sent", "the PBX link is down", msg.attempt_id)
        except Exception as exc:
            reason = str(exc) or type(exc).__name__
            log.warning("message not sent", extra={"attempt_id": msg.attempt_id,
                                                   "error": reason})
            await sms_store.finish_message(self._store, msg, False, reason, self._clock.now())
            return SendResult(False, "failed", reason, msg.attempt_id)
        await sms_store.finish_message(self._store, msg, True, None, self._clock.now())
        log.info("message sent", extra={"attempt_id": msg.attempt_id, "kind": msg.kind})
        return SendResult(True, "sent", "", msg.attempt_id)

    async def send_single(self, cfg: Campaign, campaign_id: int | None, phone: str,
                          body: str, *, kind: str = "single",
                          purpose: str = "sms") -> SendResult:
        """One text (CLI, API, a reply): the gate, the claim, one segment."""
        seg = measure(body)
        if not body.strip() or not seg.fits:
            return SendResult(False, "too_long", f"the message is {seg.describe()}")
        now = self._clock.now()
        decision = await gate.check(self._store, gate.GateContext(
            campaign=cfg, phone=phone, now=now, workspace=self._workspace,
            campaign_id=campaign_id, purpose=purpose))
        if not decision.allowed or decision.e164 is None:
            return SendResult(False, _GATE_CODES.get(decision.reason, "refused"),
                              decision.detail)
        attempt_id = self._new_id()
        try:
            await sms_store.claim_message(self._store, attempt_id, decision.e164, now,
                                          self._workspace, campaign_id)
        except ClaimRefused as refused:
            return SendResult(False, refused.code, str(refused))
        return await self._deliver(cfg, sms_store.OutMessage(
            decision.e164, body, kind, campaign_id, None, attempt_id), None)

    # ---- inbound -----------------------------------------------------------------------

    def on_event(self, msg: AmiMessage) -> None:
        """AMI subscriber: queue each inbound text for `run()`."""
        found = parse_inbound(msg)
        if found is not None:
            self._inbox.put_nowait(found)

    async def run(self) -> None:
        """Handle queued inbound texts one at a time, and send held replies once the
        window opens, forever."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._held_loop(), name="sms-held")
            while True:
                msg = await self._inbox.get()
                try:
                    await self.on_inbound(msg)
                except Exception:
                    log.exception("inbound message not handled")

    async def _held_loop(self) -> None:
        while True:
            await self._clock.sleep(HELD_CHECK_S)
            try:
                await self.send_held()
            except Exception:
                log.exception("held replies not sent")

    async def send_held(self) -> int:
        """Send the replies held outside the window whose window is open now; a reply
        to a number that opted out meanwhile is dropped. Returns how many went out."""
        sent = 0
        for row_id, e164, body, campaign_id in await sms_store.held_replies(self._store):
            row = await get_campaign_by_id(self._store, campaign_id) if campaign_id else None
            cfg = row.config() if row is not None else None
            if cfg is None:
                await sms_store.supersede_held(self._store, row_id=row_id, reason="no campaign")
                continue
            result = await self.send_single(cfg, campaign_id, e164, body, kind="reply",
                                            purpose="sms_reply")
            if result.ok:
                sent += 1
                await sms_store.supersede_held(self._store, row_id=row_id, reason="sent")
            elif result.code in ("dnc", "invalid", "too_long"):
                await sms_store.supersede_held(self._store, row_id=row_id,
                                               reason=result.code)
        return sent

    async def _owner(self, e164: str) -> tuple[int | None, int | None, Campaign | None]:
        owner = await sms_store.thread_owner(self._store, e164)
        if owner is None or owner[0] is None:
            return None, None, None
        row = await get_campaign_by_id(self._store, owner[0])
        return owner[0], owner[1], row.config() if row is not None else None

    async def on_inbound(self, msg: InboundMessage) -> str:
        """What the text did: opted_out, opted_in, answered, held, ignored, invalid."""
        e164 = normalize_phone(msg.sender, "US").e164
        if e164 is None:
            log.warning("inbound message from a sender that is not a number")
            return "invalid"
        campaign_id, contact_id, cfg = await self._owner(e164)
        now = self._clock.now()
        await sms_store.record(self._store, e164, "in", "inbound", msg.body, "received", now,
                               campaign_id=campaign_id, contact_id=contact_id)
        # A newer text makes an answer still waiting for the window stale.
        await sms_store.supersede_held(self._store, e164=e164, reason="a newer text came")
        sms_cfg = cfg.sms if cfg is not None and cfg.sms is not None else SmsConfig(
            message="-")
        word = keywords.classify(msg.body)
        dnc = DncService(self._store, self._workspace, clock=self._clock)
        if word is keywords.Keyword.STOP:
            added = await dnc.add([e164], reason=f"texted {msg.body.strip()[:20]}",
                                  source=SMS_SOURCE, actor="sms")
            if added.changed:  # one confirmation, not one per repeated STOP
                await self._confirm(cfg, campaign_id, e164, sms_cfg.stop_confirmation)
            log.info("opted out by text", extra={"new": bool(added.changed)})
            return "opted_out"
        if word is keywords.Keyword.START:
            if await sms_store.dnc_source(self._store, e164, self._workspace) != SMS_SOURCE:
                return "ignored"  # not on the list, or listed by someone else: it stays
            await dnc.remove([e164], reason="texted START", source=SMS_SOURCE, actor="sms")
            await self._confirm(cfg, campaign_id, e164, sms_cfg.start_confirmation)
            return "opted_in"
        if cfg is None or self._responder is None:
            return "ignored"
        thread = await sms_store.thread(self._store, e164)
        answer = fit(await self._responder.reply(cfg, thread))
        if not answer:
            return "ignored"
        result = await self.send_single(cfg, campaign_id, e164, answer, kind="reply",
                                        purpose="sms_reply")
        if not result.ok:
            await sms_store.record(self._store, e164, "out", "reply", answer, "held", now,
                                   campaign_id=campaign_id, reason=result.reason)
            return "held"
        return "answered"

    async def _confirm(self, cfg: Campaign | None, campaign_id: int | None, e164: str,
                       text: str) -> None:
        if cfg is None:
            log.warning("no campaign thread for this number: no confirmation sent")
            return
        msg = sms_store.OutMessage(e164, text, "confirmation", campaign_id)
        try:
            await self._messenger.send_message(cfg.trunk, e164, cfg.caller_id, text)
        except Exception as exc:
            await sms_store.finish_message(self._store, msg, False, str(exc),
                                           self._clock.now())
            return
        await sms_store.finish_message(self._store, msg, True, None, self._clock.now())
