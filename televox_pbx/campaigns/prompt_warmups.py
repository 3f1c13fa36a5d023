"""A campaign dials once its agent's shared prompt is evaluated, or once the wait is over.

The daemon warms the prompts of the campaigns running when it starts. A campaign started
(or edited) later had its first calls pay the cold prompt (~1000 tokens) themselves: on
the real PBX, with two calls at once, that prefill held the LLM for 16 s from the answer,
and the agent never got a word in before the callee's next line (8 s later). So the
dialer asks here before each campaign's tick: the first ask starts the warm-up in the
background and the campaign waits (the others dial on); it dials once the warm-up has
ended, well or not, or after `max_wait_s`, so a slow or busy engine delays a campaign's
first calls but never stops them. Call-now does not wait: the operator asked for now.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from televox_pbx.clock import Clock
from televox_pbx.config.campaign import Campaign
from televox_pbx.supervise import OwnedTasks

log = logging.getLogger(__name__)

# Cold, the shared prompt took 8.5 s on an idle 2-core box and 16 s beside two calls.
DEFAULT_MAX_WAIT_S = 30.0

# What warms one campaign's prompt (None: nothing to warm, e.g. an SMS campaign).
Warm = Callable[[Campaign], Awaitable[object] | None]


@dataclass(slots=True)
class _WarmUp:
    config_json: str
    started: float
    task: asyncio.Task[None] | None  # None: nothing to warm


class PromptWarmups:
    def __init__(self, warm: Warm, clock: Clock, *,
                 max_wait_s: float = DEFAULT_MAX_WAIT_S) -> None:
        self._warm = warm
        self._clock = clock
        self._max_wait_s = max_wait_s
        self._by_campaign: dict[int, _WarmUp] = {}
        self._tasks = OwnedTasks("prompt-warmups")

    def ready(self, campaign_id: int, config_json: str, cfg: Campaign) -> bool:
        """Whether the campaign may dial now; starts its warm-up on first sight of this
        configuration (an edit changes the prompt, so it is warmed again)."""
        entry = self._by_campaign.get(campaign_id)
        if entry is None or entry.config_json != config_json:
            entry = self._start(campaign_id, config_json, cfg)
        if entry.task is None or entry.task.done():
            return True
        return self._clock.monotonic() - entry.started >= self._max_wait_s

    def _start(self, campaign_id: int, config_json: str, cfg: Campaign) -> _WarmUp:
        old = self._by_campaign.get(campaign_id)
        if old is not None and old.task is not None:
            old.task.cancel()  # an outdated prompt: no use finishing it
        pending = self._warm(cfg)
        task = None
        if pending is not None:
            task = self._tasks.spawn(self._run(pending, campaign_id), "prompt-warm-up",
                                     {"campaign_id": campaign_id})
        entry = _WarmUp(config_json, self._clock.monotonic(), task)
        self._by_campaign[campaign_id] = entry
        return entry

    async def _run(self, pending: Awaitable[object], campaign_id: int) -> None:
        started = self._clock.monotonic()
        try:
            await pending
        except Exception:
            # The calls warm it themselves then; dialling must not hang on it.
            log.warning("campaign prompt warm-up failed", exc_info=True,
                        extra={"campaign_id": campaign_id})
            return
        log.info("campaign prompt warmed", extra={
            "campaign_id": campaign_id,
            "seconds": round(self._clock.monotonic() - started, 2)})

    async def aclose(self) -> None:
        await self._tasks.aclose()
