"""`televox agents list|show NAME`: the agents in config/agents/ and what each one is."""

from __future__ import annotations

import argparse
from typing import Any

from televox_pbx.cli.common import settings_from_args
from televox_pbx.config.agent import AgentFile
from televox_pbx.config.loader import load_agents, load_campaigns


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("agents", help="list and show agents")
    asub = p.add_subparsers(dest="agents_command", required=True, metavar="ACTION")
    ls = asub.add_parser("list", help="every agent, with its campaigns")
    ls.set_defaults(func=_list)
    show = asub.add_parser("show", help="one agent: persona, knowledge, tools, inbound")
    show.add_argument("name", help="agent name (config/agents/NAME.yaml)")
    show.set_defaults(func=_show)


def _campaigns_of(args: argparse.Namespace) -> tuple[dict[str, AgentFile], dict[str, list[str]],
                                                     list[str]]:
    settings = settings_from_args(args)
    agents, issues = load_agents(settings.agents_dir)
    campaigns, _ = load_campaigns(settings.campaigns_dir, settings.agents_dir)
    uses: dict[str, list[str]] = {}
    for name, campaign in sorted(campaigns.items()):
        if campaign.agent.profile is not None:
            uses.setdefault(campaign.agent.profile.name, []).append(name)
    return agents, uses, [str(i) for i in issues]


def _list(args: argparse.Namespace) -> int:
    agents, uses, problems = _campaigns_of(args)
    for name, agent in sorted(agents.items()):
        used = ", ".join(uses.get(name, [])) or "-"
        print(f"{name}\t{agent.persona_name} at {agent.business}\tknowledge: "
              f"{len(agent.knowledge)}\ttools: {len(agent.tools)}\tcampaigns: {used}")
    if not agents:
        print("no agents (config/agents/NAME.yaml)")
    for line in problems:
        print(line)
    return 1 if problems else 0


def describe(agent: AgentFile, campaigns: list[str]) -> list[str]:
    out = [f"agent: {agent.name}",
           f"persona: {agent.persona_name}, business: {agent.business}",
           f"voice: {agent.voice or '(settings models.tts)'}"]
    if agent.business_info:
        out.append(f"business_info: {agent.business_info.strip()}")
    for path in agent.knowledge_paths():
        out.append(f"knowledge: {path}{'' if path.exists() else '  (MISSING)'}")
    out.append(f"built-in tools: {', '.join(agent.builtin_tools) or '-'}")
    for tool in agent.tools:
        out.append(f"tool: {tool.name} ({tool.method} {tool.url}, timeout "
                   f"{tool.timeout_s:g} s): {tool.description}")
    out.append(f"examples: {len(agent.examples)}")
    out.append(f"inbound first message: {agent.greeting()}")
    out.append(f"inbound goal: {agent.inbound.goal}")
    out.append(f"campaigns: {', '.join(campaigns) or '-'}")
    return out


def _show(args: argparse.Namespace) -> int:
    agents, uses, problems = _campaigns_of(args)
    agent = agents.get(args.name)
    if agent is None:
        print(f"no agent {args.name!r} (known: {', '.join(sorted(agents)) or 'none'})")
        for line in problems:
            print(line)
        return 1
    print("\n".join(describe(agent, uses.get(args.name, []))))
    return 0
