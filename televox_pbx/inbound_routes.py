"""Inbound calls routed by the number dialled: the dialplan's TelevoxInbound UserEvent
carries it (Dialed), the settings' numbers name the agent that answers on it, and a call to
any other number is refused (not let in at the AudioSocket server) with an entry in the
AMI event log. Built at start: a number whose agent does not load stops the daemon."""

from __future__ import annotations

import logging
from collections.abc import Callable

from televox_pbx.ami.codec import AmiMessage
from televox_pbx.campaigns.phones import caller_e164
from televox_pbx.config.campaign import Campaign
from televox_pbx.config.inbound import inbound_campaign
from televox_pbx.config.loader import ConfigError, find_agent
from televox_pbx.config.settings import Settings

log = logging.getLogger(__name__)

INBOUND_EVENT = "televoxinbound"
REFUSED_EVENT = "TelevoxInboundRefused"


class InboundRoutes:
    def __init__(self, settings: Settings) -> None:
        self.default_country = settings.default_country
        self.campaigns: dict[str, Campaign] = {}  # number (E.164) -> its inbound campaign
        for n in settings.numbers:
            if n.agent is None:
                continue
            try:
                agent = find_agent(settings, n.agent)
            except ConfigError as exc:
                raise RuntimeError(f"numbers: agent {n.agent!r} of {n.number} does not "
                                   f"load: {exc}") from exc
            if agent is None:
                raise RuntimeError(f"numbers: agent {n.agent!r} of {n.number}: no "
                                   f"{n.agent}.yaml in {settings.agents_dir}")
            self.campaigns[n.number] = inbound_campaign(agent, n.number)
        self._dialled: dict[str, str] = {}  # announced call id -> number dialled

    def __bool__(self) -> bool:
        return bool(self.campaigns)

    def on_event(self, msg: AmiMessage, announce: Callable[[str, str | None], None],
                 record: Callable[[AmiMessage], None]) -> None:
        """A TelevoxInbound UserEvent: let the call in when its number has an agent."""
        if msg.event != "UserEvent" or (msg.get("UserEvent") or "").lower() != INBOUND_EVENT:
            return
        call_id = (msg.get("CallId") or "").lower()
        if not call_id:
            return
        number = self.number_of(msg.get("Dialed"))
        if number is None:
            record(AmiMessage((("Event", REFUSED_EVENT), ("CallId", call_id),
                               ("Dialed", msg.get("Dialed") or ""),
                               ("Reason", "no agent answers this number"))))
            log.warning("inbound call refused: no agent for the number dialled",
                        extra={"call_id": call_id})
            return
        self._dialled[call_id] = number
        announce(call_id, msg.get("CallerID"))

    def number_of(self, dialled: str | None) -> str | None:
        """The configured number the call was made to; without a Dialed field (a dialplan
        from before issue 18) the one number, when only one has an agent."""
        if not dialled:
            return next(iter(self.campaigns)) if len(self.campaigns) == 1 else None
        e164 = caller_e164(dialled, self.default_country)
        return e164 if e164 in self.campaigns else None

    def route_for(self, call_id: str) -> tuple[str, Campaign] | None:
        """The number the announced call was made to, and its agent's campaign."""
        number = self._dialled.pop(call_id.lower(), None)
        if number is None or number not in self.campaigns:
            return None
        return number, self.campaigns[number]
