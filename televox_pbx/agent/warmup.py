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


async def warm_prompt(llm: Llm, campaign: Campaign, *, transfer_port: bool = True) -> None:
    """Prefill one campaign's stable prompt (with the tools its calls get: transfer needs
    the campaign's target and a transfer port); a failure is raised to the caller."""
    prefill = getattr(llm, "prefill", None)
    if prefill is not None:
        tools = tools_for(campaign, transfer_port=transfer_port)
        await prefill([ChatMessage("system", stable_prompt(campaign))], tools)


async def warm_prompts(llm: Llm, campaigns: Iterable[Campaign], *,
                       transfer_port: bool = True) -> int:
    """`warm_prompt` for each campaign, a failure logged and passed over. Returns how many
    were warmed."""
    if getattr(llm, "prefill", None) is None:
        return 0
    warmed = 0
    for campaign in campaigns:
        try:
            await warm_prompt(llm, campaign, transfer_port=transfer_port)
        except Exception:
            log.warning("prompt warm-up failed", exc_info=True,
                        extra={"campaign": campaign.name})
            continue
        warmed += 1
    return warmed


def campaign_warmer(llm: Llm) -> Callable[[Campaign], Awaitable[None] | None]:
    """Warms one campaign's prompt before its first call (campaigns/prompt_warmups.py,
    which logs a failure); None for campaigns whose calls no agent speaks in (SMS, IVR)."""
    def warm(campaign: Campaign) -> Awaitable[None] | None:
        if campaign.channel != "voice" or campaign.kind != "conversation":
            return None
        return warm_prompt(llm, campaign)
    return warm
