"""Evaluate each running campaign's shared prompt prefix before its first call.

The prefix (reply format, agent, rules, examples: agent/prompts.py) is ~1000 tokens and
the same for every call of a campaign. Evaluated cold it took longer than the opening
plays, so the first call after a start answered late (FINDINGS: ~8 s after "Hello?");
once evaluated, llama.cpp's saved states serve it to every call.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable

from televox_pbx.agent.prompts import stable_prompt
from televox_pbx.agent.tools import tools_for
from televox_pbx.config.campaign import Campaign
from televox_pbx.voice.interfaces import ChatMessage, Llm

log = logging.getLogger(__name__)


async def warm_prompts(llm: Llm, campaigns: Iterable[Campaign], *,
                       transfer_port: bool = True) -> int:
    """Prefill the stable prompt of each campaign (with the tools its calls get: transfer
    needs the campaign's target and a transfer port). Returns how many were warmed."""
    prefill = getattr(llm, "prefill", None)
    if prefill is None:
        return 0
    warmed = 0
    for campaign in campaigns:
        tools = tools_for(campaign, transfer_port=transfer_port)
        try:
            await prefill([ChatMessage("system", stable_prompt(campaign))], tools)
        except Exception:
            log.warning("prompt warm-up failed", exc_info=True,
                        extra={"campaign": campaign.name})
            continue
        warmed += 1
    return warmed


def campaign_warmer(llm: Llm) -> Callable[[Campaign], Awaitable[int] | None]:
    """Warms one campaign's prompt before its first call (campaigns/prompt_warmups.py);
    None for campaigns whose calls no agent speaks in (SMS, IVR)."""
    def warm(campaign: Campaign) -> Awaitable[int] | None:
        if campaign.channel != "voice" or campaign.kind != "conversation":
            return None
        return warm_prompts(llm, [campaign])
    return warm
