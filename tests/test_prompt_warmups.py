"""A campaign waits for its agent's prompt to warm before its first call, never forever."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from datetime import UTC, datetime

import pytest
from dialer_support import FakeOriginator, make_campaign, seed

from televox_pbx.agent.warmup import campaign_warmer
from televox_pbx.campaigns.dialer import Dialer
from televox_pbx.campaigns.prompt_warmups import PromptWarmups
from televox_pbx.clock import FakeClock
from televox_pbx.config.campaign import Campaign
from televox_pbx.store import Store

START = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)  # Monday 10:00 in New York
WINDOW = {"start": "08:00", "end": "21:00",
          "weekdays": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]}


class Warmer:
    """A warm-up the test finishes (or fails) by hand; counts what it was asked."""

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.release = asyncio.Event()
        self.fail = False

    def __call__(self, cfg: Campaign) -> Awaitable[None] | None:
        self.asked.append(cfg.agent.goal)
        return self._run()

    async def _run(self) -> None:
        await self.release.wait()
        if self.fail:
            raise RuntimeError("the LLM is gone")


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def voice(goal: str = "book a demo", **kw: object) -> Campaign:
    agent = {"persona_name": "Ava", "business": "Acme", "goal": goal,
             "opening_line": "Hi, I'm Ava, an AI assistant calling for Acme."}
    return make_campaign(agent=agent, **kw)


async def test_waits_for_the_warm_up_then_dials() -> None:
    clock, warm = FakeClock(), Warmer()
    w = PromptWarmups(warm, clock, max_wait_s=30)
    cfg = voice()
    assert not w.ready(1, "v1", cfg)
    await settle()
    assert not w.ready(1, "v1", cfg) and warm.asked == ["book a demo"]  # started once
    warm.release.set()
    await settle()
    assert w.ready(1, "v1", cfg) and len(warm.asked) == 1
    await w.aclose()


async def test_an_edited_campaign_is_warmed_again_and_the_old_warm_up_dropped() -> None:
    clock, warm = FakeClock(), Warmer()
    w = PromptWarmups(warm, clock)
    assert not w.ready(1, "v1", voice("book a demo"))
    await settle()
    assert not w.ready(1, "v2", voice("confirm the visit"))
    assert warm.asked == ["book a demo", "confirm the visit"]
    warm.release.set()
    await settle()
    assert w.ready(1, "v2", voice("confirm the visit"))
    await w.aclose()


async def test_a_slow_warm_up_delays_the_first_call_but_never_stops_it() -> None:
    clock, warm = FakeClock(), Warmer()
    w = PromptWarmups(warm, clock, max_wait_s=30)
    assert not w.ready(1, "v1", voice())
    await clock.advance(29.9)
    assert not w.ready(1, "v1", voice())
    await clock.advance(0.1)
    assert w.ready(1, "v1", voice())
    await w.aclose()


async def test_a_failed_warm_up_lets_the_campaign_dial(caplog: pytest.LogCaptureFixture) -> None:
    clock, warm = FakeClock(), Warmer()
    warm.fail = True
    w = PromptWarmups(warm, clock)
    assert not w.ready(1, "v1", voice())
    with caplog.at_level(logging.WARNING):
        warm.release.set()
        await settle()
    assert w.ready(1, "v1", voice())
    assert "campaign prompt warm-up failed" in caplog.text
    await w.aclose()


async def test_campaigns_no_agent_speaks_in_dial_at_once() -> None:
    class NoLlmCalls:
        async def prefill(self, *a: object, **kw: object) -> None:
            raise AssertionError("nothing to warm for an SMS or IVR campaign")

    w = PromptWarmups(campaign_warmer(NoLlmCalls()), FakeClock())  # type: ignore[arg-type]
    sms = make_campaign(channel="sms", sms={"message": "Hi {{name}}, reply STOP to opt out."})
    assert w.ready(1, "sms", sms)
    await w.aclose()


@pytest.mark.both_backends
async def test_the_dialer_originates_only_once_the_prompt_is_warm(store: Store) -> None:
    clock = FakeClock(START)
    originator = FakeOriginator(clock)
    cfg = voice(calling_window=WINDOW,
                timezone_policy={"source": "fixed", "fixed_zone": "America/New_York"},
                pacing={"calls_per_minute": 60, "max_concurrent": 2})
    await seed(store, cfg, [["+12125550101"], ["+12125550102"]])
    dialer = Dialer(store, originator, clock)
    warm = Warmer()
    dialer.warmups = PromptWarmups(warm, clock, max_wait_s=60)
    for _ in range(5):
        await dialer.tick()
        await clock.advance(1)
    assert originator.sent == [] and len(warm.asked) == 1
    warm.release.set()
    await settle()
    await dialer.tick()
    assert len(originator.sent) == 1
    await dialer.warmups.aclose()


async def test_the_real_warmer_reports_a_failed_prefill_as_failed(
        caplog: pytest.LogCaptureFixture) -> None:
    class BrokenLlm:
        async def prefill(self, *a: object, **kw: object) -> None:
            raise RuntimeError("the context is gone")

    w = PromptWarmups(campaign_warmer(BrokenLlm()), FakeClock())  # type: ignore[arg-type]
    with caplog.at_level(logging.INFO):
        assert not w.ready(1, "v1", voice())
        await settle()
    assert w.ready(1, "v1", voice())
    assert "campaign prompt warm-up failed" in caplog.text
    assert "campaign prompt warmed" not in caplog.text
    await w.aclose()
