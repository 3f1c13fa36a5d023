"""What an agent file adds to a call: its knowledge lookup, its custom HTTP tools and
its voice."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from televox_pbx.agent.custom_tools import CustomTool, HttpToolRunner
from televox_pbx.agent.tools import ToolAction
from televox_pbx.clock import Clock
from televox_pbx.config.loader import load_agents
from televox_pbx.knowledge.grounding import Grounding
from televox_pbx.voice.call_setup import CallInfo, CallPorts
from televox_pbx.voice.interfaces import ToolCall, Tts

if TYPE_CHECKING:
    from televox_pbx.voice.engines.holder import Engines as ModelHolder

log = logging.getLogger(__name__)


def grounding_for(info: CallInfo, ports: CallPorts) -> Grounding | None:
    """The knowledge lookup for an agent file with knowledge, when the index is there."""
    profile = info.campaign.agent.profile
    if profile is None or not profile.knowledge or ports.knowledge is None:
        return None
    return Grounding(ports.knowledge, profile.name, variables=info.variables)


def runner_for(info: CallInfo, clock: Clock) -> HttpToolRunner | None:
    profile = info.campaign.agent.profile
    if profile is None or not profile.tools:
        return None
    return HttpToolRunner(profile.tools, clock)


def as_custom(call: ToolCall, runner: HttpToolRunner | None) -> ToolAction | None:
    """The model's call of one of the agent's own tools, or None for a built-in one."""
    if runner is None or runner.tool(call.name) is None:
        return None
    return CustomTool(call.name, dict(call.arguments))


def agent_voices(holder: ModelHolder, agents_dir: Path) -> dict[str, Tts]:
    """One Piper engine per distinct voice the agent files name, loaded now (at start,
    off the event loop) and shared by their calls. A voice that cannot load is logged
    and its agents speak with the settings' voice (`televox check` names bad voices)."""
    voices: dict[str, Tts] = {}
    for name in sorted({a.voice for a in load_agents(agents_dir)[0].values() if a.voice}):
        try:
            voices[name] = holder.tts_voice(name)
        except Exception:
            log.warning("agent voice not loaded; the default voice speaks", exc_info=True,
                        extra={"model": name})
    return voices
