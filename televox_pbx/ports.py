"""Interfaces between the campaign engine and the PBX side, wired in app.py."""

from __future__ import annotations

from typing import Protocol

from televox_pbx.domain import OriginateRequest


class Originator(Protocol):
    async def originate(self, req: OriginateRequest) -> None:
        """Send exactly one Originate for this attempt. Never retried by the transport."""


class ChannelProbe(Protocol):
    async def live_call_ids(self) -> set[str]:
        """Attempt UUIDs that still have a channel on the PBX (CoreShowChannels)."""
