"""What answers each call's AudioSocket connection, kept apart from the wiring in app.py.

An outbound call gets its campaign's voice agent (or its IVR) with the API's extras for
that contact; an inbound call to a number with an agent gets that agent, once the
dialplan's UserEvent has announced it. The handlers are handed out before the App has
built the parts they use (the audio socket needs the inbound handler before the voice
factory exists), so each reads the App's parts when its call arrives.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING

from televox_pbx.ami.codec import AmiMessage
from televox_pbx.app_ports import ResultLog
from televox_pbx.audiosocket.session import CallAudio, SessionHandler
from televox_pbx.campaigns.phones import caller_e164
from televox_pbx.campaigns.runner import SessionResult
from televox_pbx.config.campaign import Campaign
from televox_pbx.domain import AmdStatus, CallOutcome, OriginateRequest
from televox_pbx.inbound_routes import InboundRoutes
from televox_pbx.store.attempts import finish_inbound, record_inbound
from televox_pbx.store.campaigns import get_campaign
from televox_pbx.store.person_history import record_inbound_route
from televox_pbx.voice.amd import await_verdict
from televox_pbx.web.call_extras import CallExtras

if TYPE_CHECKING:
    from televox_pbx.app import App

log = logging.getLogger(__name__)

# After the PBX reports a hang-up, how long the voice session may take to save its result.
SESSION_RESULT_WAIT_S = 60.0
_VAR_PREFIX = "TELEVOX_VAR_"


class CallHandlers:
    """The App's per-call handlers. Built at start (the settings' inbound numbers are
    checked here: an agent that does not load stops the daemon)."""

    def __init__(self, app: App, results: ResultLog) -> None:
        self._app = app
        self._results = results
        self.routes = InboundRoutes(app.settings)
        self.inbound_live = 0  # inbound conversations: they count against the capacity

    # -- outbound ------------------------------------------------------------------------

    async def _campaign_for(self, req: OriginateRequest) -> Campaign | None:
        name = req.variables.get("TELEVOX_CAMPAIGN")
        store = self._app.store
        if not name or store is None:
            return None
        row = await get_campaign(store, name)
        return row.config() if row is not None else None

    def outbound(self, req: OriginateRequest) -> SessionHandler:
        """The handler for the call `req` dials, readied before it dials."""
        app = self._app
        variables = {k.removeprefix(_VAR_PREFIX): v for k, v in req.variables.items()
                     if k.startswith(_VAR_PREFIX)}
        call_id = req.call_id.lower()
        extras = app.call_extras.pop(req.variables.get("TELEVOX_CONTACT_ID", ""), None) \
            or CallExtras()
        variables.update(extras.variables)

        async def handle(call: CallAudio) -> None:
            campaign = await self._campaign_for(req)
            if campaign is not None and campaign.kind == "ivr" and app.ivr is not None:
                results = self._results
                await app.ivr.handle(campaign, call_id, req.phone, call,
                                     lambda r: results.report(call_id, r))
                return
            if campaign is None or app.factory is None:
                log.error("no campaign for answered call", extra={"call_id": call_id})
                await call.hangup()
                return
            session = app.factory.create(
                campaign=extras.campaign(campaign), call_id=call_id, phone=req.phone,
                variables=variables, zone=req.variables.get("TELEVOX_ZONE") or None,
                amd_wait=lambda timeout_s: await_verdict(
                    lambda: self._amd_status(req.call_id), app.clock, timeout_s),
                opening=extras.opening, answered_at=lambda: self._answered_at(req.call_id))
            await session(call)
        return handle

    def _amd_status(self, call_id: str) -> AmdStatus | None:
        """AMD() ran in the dialplan; the call tracker reads its UserEvent, which may come
        after the audio has connected (the session waits for it, bounded)."""
        runner = self._app.runner
        outcome = runner.tracker.outcome(call_id) if runner is not None else None
        return outcome.amd_status if outcome is not None else None

    def _answered_at(self, call_id: str) -> datetime | None:
        """When the call tracker saw the answer (AMD() runs after it, before the audio)."""
        runner = self._app.runner
        outcome = runner.tracker.outcome(call_id) if runner is not None else None
        return outcome.answered_at if outcome is not None else None

    async def session_results(self, req: OriginateRequest,
                              outcome: CallOutcome) -> SessionResult:
        """What the call's session heard and decided, once the PBX has hung up."""
        app = self._app
        if app.audiosocket is not None:
            app.audiosocket.discard(req.call_id.lower())
        if outcome.answered_at is None or app.factory is None:
            return (None, None)
        return await self._results.wait(req.call_id.lower(), SESSION_RESULT_WAIT_S)

    # -- inbound -------------------------------------------------------------------------

    def on_event(self, msg: AmiMessage) -> None:
        """The inbound dialplan announces each call's AudioSocket UUID before connecting;
        only a call to a number with an agent is let in."""
        app = self._app
        if app.audiosocket is not None and app.eventlog is not None:
            self.routes.on_event(msg, app.audiosocket.announce_inbound, app.eventlog.record)

    def inbound(self) -> SessionHandler | None:
        """The handler for announced inbound calls; None without a number with an agent."""
        routes = self.routes
        if not routes:
            return None
        app = self._app

        async def handle(call: CallAudio) -> None:
            route = routes.route_for(call.call_id)
            if app.factory is None or route is None:
                await call.hangup()
                return
            number, campaign = route
            assert app.store is not None
            store = app.store
            caller = caller_e164(call.caller_id or "", app.settings.default_country)
            # Counted against the capacity before its row exists (the capacity counts
            # outbound rows only), so no tick in between sees a free place that is not.
            self.inbound_live += 1
            try:
                await record_inbound(store, call.call_id, caller, app.clock.now())
                await record_inbound_route(store, call.call_id, number,
                                           campaign.agent.name_of_profile())
                await app.factory.inbound_handler(campaign)(call)
            finally:
                self.inbound_live -= 1
                await finish_inbound(store, call.call_id, app.clock.now())
                self._results.forget(call.call_id)
        return handle
