"""Interfaces between the campaign engine and the PBX side, wired in app.py."""

from __future__ import annotations

from typing import Protocol

from televox_pbx.domain import OriginateRequest


class Originator(Protocol):
    async def originate(self, req: OriginateRequest) -> None:
        """Send exactly one Originate for this attempt. Never retried by the transport."""

    def ready(self) -> bool:
        """May an Originate go out now? True only while the PBX link is up (AMI logged
        in) AND the attempts left from before the latest login have been reconciled
        with the PBX (CoreShowChannels). The dialer asks before each tick and dials
        nothing while it is False; it turns True again on its own after a reconnect."""


class ChannelProbe(Protocol):
    async def live_call_ids(self) -> set[str]:
        """Attempt UUIDs that still have a channel on the PBX (CoreShowChannels)."""
