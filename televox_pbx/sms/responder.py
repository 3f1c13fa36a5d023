"""The campaign's agent answering a text, with the local LLM (no tools, one segment)."""

from __future__ import annotations

from collections.abc import Sequence

from televox_pbx.config.campaign import Campaign
from televox_pbx.sms.segments import GSM7_LIMIT
from televox_pbx.voice.interfaces import ChatMessage, Llm

_MAX_CHARS = GSM7_LIMIT - 10  # room for the cut to land on a word


def system_prompt(campaign: Campaign) -> str:
    a = campaign.agent
    return (f"You are {a.persona_name}, an AI assistant texting on behalf of {a.business}. "
            f"Your goal: {a.goal}. {a.context}".strip() +
            f"\nAnswer the person's last text message in one short SMS of at most "
            f"{_MAX_CHARS} characters: plain text, no emoji, no links you were not given. "
            "If they ask to stop, tell them to reply STOP.")


class LlmResponder:
    def __init__(self, llm: Llm) -> None:
        self._llm = llm

    async def reply(self, campaign: Campaign, thread: Sequence[tuple[str, str]]) -> str:
        messages = [ChatMessage("system", system_prompt(campaign))]
        messages += [ChatMessage("assistant" if d == "out" else "user", body)
                     for d, body in thread]
        parts: list[str] = []
        async for delta in self._llm.stream(messages):
            parts.append(delta.text)
            if sum(map(len, parts)) > 2 * GSM7_LIMIT:
                break  # the cut keeps one segment anyway; stop generating
        return "".join(parts).strip()
