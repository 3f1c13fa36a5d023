"""The app's side of voice sessions: one `VoiceSession` per answered call, outbound or
inbound, all sharing one set of engines (kept apart from session.py, the loop itself)."""

from __future__ import annotations

from collections.abc import Mapping

from televox_pbx.audiosocket.session import CallAudio, SessionHandler
from televox_pbx.clock import Clock
from televox_pbx.config.campaign import Campaign
from televox_pbx.domain import AmdStatus
from televox_pbx.voice.call_setup import (
    AmdWait,
    AnsweredAt,
    CallInfo,
    CallPorts,
    Engines,
    SessionConfig,
)
from televox_pbx.voice.session import VoiceSession


class VoiceSessionFactory:
    """What the app calls per answered call; returns the server's SessionHandler."""

    def __init__(self, engines: Engines, ports: CallPorts, clock: Clock,
                 config: SessionConfig | None = None) -> None:
        self.engines = engines
        self.ports = ports
        self.clock = clock
        self.config = config or SessionConfig()

    def create(self, *, campaign: Campaign, call_id: str, phone: str,
               variables: Mapping[str, str] | None = None, zone: str | None = None,
               amd: AmdStatus | None = None, amd_wait: AmdWait | None = None,
               opening: str | None = None,
               answered_at: AnsweredAt | None = None) -> VoiceSession:
        """One session (a SessionHandler) per call. For inbound calls pass phone="" and
        the caller's number is taken from the connection."""
        info = CallInfo(call_id=call_id, phone=phone, campaign=campaign,
                        variables=dict(variables or {}), zone=zone, amd=amd,
                        amd_wait=amd_wait, opening=opening, answered_at=answered_at)
        profile = campaign.agent.profile
        engines = self.engines.for_voice(profile.voice if profile is not None else None)
        return VoiceSession(info, engines, self.ports, self.clock, self.config)

    def inbound_handler(self, campaign: Campaign, *, opening: str | None = None,
                        variables: Mapping[str, str] | None = None) -> SessionHandler:
        """The AudioSocket server's handler for inbound calls: one session per call, the
        caller's number taken from the announcement. `opening` gets a disclosure if it
        lacks one."""
        async def handle(call: CallAudio) -> None:
            session = self.create(campaign=campaign, call_id=call.call_id, phone="",
                                  variables=variables, opening=opening)
            await session(call)
        return handle

