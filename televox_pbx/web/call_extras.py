"""What a CRM may add to one call placed through the API: a first message, extra context
for the agent, and variables for this call only."""

from __future__ import annotations

from dataclasses import dataclass, field

from televox_pbx.config.campaign import Campaign


@dataclass(frozen=True, slots=True)
class CallExtras:
    opening: str | None = None  # replaces the campaign's opening line (AI disclosure kept)
    context: str | None = None  # appended to the campaign's background for the agent
    variables: dict[str, str] = field(default_factory=dict)

    def campaign(self, campaign: Campaign) -> Campaign:
        if not self.context:
            return campaign
        context = f"{campaign.agent.context}\n{self.context}".strip()
        return campaign.model_copy(
            update={"agent": campaign.agent.model_copy(update={"context": context})})
