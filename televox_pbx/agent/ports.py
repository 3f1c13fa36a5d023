"""What the agent needs from the rest of the system, injected by the composition root."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from televox_pbx.config.campaign import TransferConfig


class DncPort(Protocol):
    async def add(self, phone: str, *, reason: str, source: str) -> None:
        """Put the number on the do-not-call list now (idempotent)."""


class CallbackPort(Protocol):
    async def schedule(self, call_id: str, due_at: datetime, zone: str | None) -> None:
        """Book a callback for this attempt's contact; `due_at` is timezone-aware."""


class TransferPort(Protocol):
    async def transfer(self, call_id: str, target: TransferConfig) -> None:
        """Move the live channel to the target (AMI Redirect); raise if it failed."""
