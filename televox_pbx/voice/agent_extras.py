"""What an agent file adds to a call: its knowledge lookup and its custom HTTP tools."""

from __future__ import annotations

from televox_pbx.agent.custom_tools import CustomTool, HttpToolRunner
from televox_pbx.agent.tools import ToolAction
from televox_pbx.clock import Clock
from televox_pbx.knowledge.grounding import Grounding
from televox_pbx.voice.call_setup import CallInfo, CallPorts
from televox_pbx.voice.interfaces import ToolCall


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
