"""`televox knowledge build [AGENT]` and `televox knowledge search AGENT "question"`:
index the agents' sources, and show what an agent would find for a question."""

from __future__ import annotations

import argparse
from typing import Any

from televox_pbx.cli.common import run, settings_from_args
from televox_pbx.config.loader import load_agents
from televox_pbx.config.settings import Settings
from televox_pbx.knowledge.grounding import Grounding
from televox_pbx.knowledge.index import KnowledgeIndex, knowledge_db_path, open_index
from televox_pbx.store import Store


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("knowledge",
                                                help="build and search agents' knowledge")
    ksub = p.add_subparsers(dest="knowledge_command", required=True, metavar="ACTION")
    b = ksub.add_parser("build", help="index changed sources (all agents, or one)")
    b.add_argument("agent", nargs="?", default=None)
    b.set_defaults(func=_build)
    s = ksub.add_parser("search", help="the chunks an agent finds for a question")
    s.add_argument("agent")
    s.add_argument("question")
    s.add_argument("--limit", type=int, default=3)
    s.set_defaults(func=_search)


async def _migrated(settings: Settings) -> None:
    # applies 0011 on an older store
    store = await Store.open(settings.database.target(), password=settings.database.password())
    await store.close()


def _index(settings: Settings) -> KnowledgeIndex:
    settings.database.path.parent.mkdir(parents=True, exist_ok=True)
    run(_migrated(settings))
    return KnowledgeIndex(open_index(knowledge_db_path(settings.database)))


def _build(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    agents, issues = load_agents(settings.agents_dir)
    for issue in issues:
        print(issue)
    if args.agent is not None and args.agent not in agents:
        print(f"no agent {args.agent!r}")
        return 1
    index = _index(settings)
    failed = bool(issues)
    for name, agent in sorted(agents.items()):
        if args.agent not in (None, name):
            continue
        report = index.build(agent)
        print(f"{name}: {report.chunks} chunks; {len(report.indexed)} source(s) indexed, "
              f"{len(report.unchanged)} unchanged, {len(report.removed)} removed")
        for error in report.errors:
            print(f"  error: {error}")
        failed = failed or bool(report.errors)
    return 1 if failed else 0


def _search(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    index = _index(settings)
    if not index.count(args.agent):
        print(f"agent {args.agent!r} has no indexed knowledge (televox knowledge build)")
        return 1
    ground = Grounding(index, args.agent)  # the ranking and verdict a call uses
    ranked = ground.ranked(args.question)[:args.limit]
    if not ranked:
        print("nothing found")
    for n, r in enumerate(ranked, 1):
        hit = r.hit
        kind = "FAQ" if hit.question else "text"
        print(f"{n}. score {hit.score:.2f} (covers {r.coverage:.0%}) {kind} {hit.source}")
        print(f"   {hit.body}")
    verdict = ground.verdict(args.question)
    print(f"agent says ({verdict.kind}): {verdict.text}" if verdict is not None
          else "agent says: (the LLM answers, with the best chunk as a note)")
    return 0
