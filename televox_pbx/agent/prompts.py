"""The system prompt and the fixed lines the agent speaks.

The system prompt depends only on the campaign and the contact, never on the turn, so it
stays byte-identical across the call and llama.cpp can reuse its cached prompt prefix.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from televox_pbx.agent.variables import render
from televox_pbx.config.campaign import AI_DISCLOSURE, Campaign

DISCLOSURE_PREFIX = "I'm an AI assistant."

_RULES = """\
Rules:
- You are on a phone call. Speak in short, plain sentences (one or two per turn). No lists,
  no markdown, no emojis, no stage directions.
- Always be honest that you are an AI assistant if asked, and never pretend to be human.
- If the person asks not to be called again, call the opt_out tool at once; do not argue.
- If they want to talk later, agree on a day and time and call schedule_callback.
- When the outcome is clear, call set_disposition. Call end_call when the conversation is over.
- If you did not understand, ask them to repeat briefly.
- Lines in [brackets] in the conversation are notes from the phone system, not speech."""


def ensure_disclosure(text: str) -> str:
    """Prepend the AI disclosure to a line that lacks one (inbound or --opening lines)."""
    text = text.strip()
    if AI_DISCLOSURE.search(text):
        return text
    return f"{DISCLOSURE_PREFIX} {text}" if text else DISCLOSURE_PREFIX


def opening_line(campaign: Campaign, variables: Mapping[str, object],
                 override: str | None = None) -> str:
    """The first words. Campaign lines are checked at load time; overrides are fixed here."""
    if override is not None:
        return ensure_disclosure(render(override, variables))
    line = render(campaign.agent.opening_line, variables)
    if campaign.agent.allow_no_ai_disclosure:
        return line
    return ensure_disclosure(line)


def system_prompt(campaign: Campaign, variables: Mapping[str, object],
                  local_now: datetime | None = None) -> str:
    """Built once per call. `local_now` (the callee's local time) lets the model turn
    "Tuesday at three" into a date for schedule_callback."""
    agent = campaign.agent
    parts = [
        f"You are {agent.persona_name}, an AI phone assistant calling on behalf of "
        f"{agent.business}.",
        f"Goal of this call: {render(agent.goal, variables)}",
    ]
    context = render(agent.context, variables)
    if context:
        parts.append(f"Background: {context}")
    name = render("{{NAME}}", variables)
    if name != "there":
        parts.append(f"You are speaking with {name}.")
    parts.append(_RULES)
    if local_now is not None:
        parts.append(f"It is now {local_now:%A %Y-%m-%d %H:%M} in the person's time zone; "
                     "give schedule_callback times in that zone.")
    return "\n".join(parts)


@dataclass(frozen=True, slots=True)
class Lines:
    """Fixed things the agent says without asking the LLM."""

    reprompt: str = "Sorry, are you still there?"
    silence_goodbye: str = "It seems I've lost you. Thank you for your time. Goodbye."
    max_duration_goodbye: str = "I'm sorry, I have to end the call now. Thank you, goodbye."
    opt_out_confirm: str = ("I understand. I've removed your number from our list, and you "
                            "won't be called again. Goodbye.")
    goodbye: str = "Thank you for your time. Goodbye."
    transfer: str = "Please hold while I transfer you."
    transfer_unavailable: str = "I'm sorry, I can't transfer you right now."
    not_understood: str = "Sorry, could you say that again?"


LINES = Lines()
