"""The campaign an inbound call runs under: its number's agent, with the agent's first
message as the opening line and its inbound goal. Nothing is dialled under it, so the
dialling fields only carry the number that was called."""

from __future__ import annotations

from televox_pbx.config.agent import AgentFile
from televox_pbx.config.campaign import Campaign, has_ai_disclosure

DISCLOSURE = "I'm an AI assistant."
INBOUND_PREFIX = "inbound-"  # the name of an inbound call's campaign: inbound-AGENT


def inbound_campaign(agent: AgentFile, number: str = "+10000000000") -> Campaign:
    """A Campaign for calls that `agent` answers on `number` (E.164)."""
    greeting = agent.greeting()
    if not has_ai_disclosure(greeting):  # the law, as for every opening line
        greeting = f"{DISCLOSURE} {greeting}"
    return Campaign.model_validate(
        {"name": f"{INBOUND_PREFIX}{agent.name}", "agent": agent.name, "opening_line": greeting,
         "goal": agent.inbound.goal, "caller_id": number, "trunk": "inbound"},
        context={"agents": {agent.name: agent}})
