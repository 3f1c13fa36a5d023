"""Shared by the SMS tests: an SMS campaign, a recording messenger, a canned responder."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from dialer_support import make_campaign

from televox_pbx.config.campaign import Campaign

ALWAYS = {"start": "08:00", "end": "21:00",
          "weekdays": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]}


def sms_campaign(**overrides: Any) -> Campaign:
    base: dict[str, Any] = {
        "channel": "sms",
        "sms": {"message": "Hi {{NAME}}, your Acme appointment is on {{DATE}}. "
                           "Reply STOP to opt out."},
        "calling_window": ALWAYS,
        "timezone_policy": {"source": "fixed", "fixed_zone": "America/New_York"},
        "pacing": {"calls_per_minute": 60, "max_concurrent": 2},
    }
    base.update(overrides)
    return make_campaign(**base)


@dataclass
class Texts:
    """A Messenger that records what it was handed (or refuses numbers in `refuse`)."""

    sent: list[tuple[str, str, str, str]] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)

    async def send_message(self, trunk: str, to: str, from_number: str, body: str) -> None:
        if to in self.refuse:
            raise RuntimeError("Message failed to send.")
        self.sent.append((trunk, to, from_number, body))


@dataclass
class CannedResponder:
    answer: str = "Sure, we are open 9 to 5 on weekdays. Anything else I can help with?"
    threads: list[list[tuple[str, str]]] = field(default_factory=list)

    async def reply(self, campaign: Campaign, thread: Sequence[tuple[str, str]]) -> str:
        self.threads.append(list(thread))
        return self.answer
