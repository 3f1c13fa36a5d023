"""The daemon's knowledge index: every agent's changed sources re-indexed at start (in a
thread: reading a PDF takes a while), bad sources logged by file, never fatal."""

from __future__ import annotations

import asyncio
import logging

from televox_pbx.config.loader import load_agents
from televox_pbx.config.settings import Settings
from televox_pbx.knowledge.index import KnowledgeIndex, knowledge_db_path, open_index

log = logging.getLogger(__name__)


def build_all(settings: Settings) -> KnowledgeIndex:
    """The store (already migrated) opened for knowledge; agents with sources built."""
    index = KnowledgeIndex(open_index(knowledge_db_path(settings.database)))
    agents, _ = load_agents(settings.agents_dir)  # `televox check` reports bad files
    for name, agent in sorted(agents.items()):
        if not agent.knowledge:
            continue
        report = index.build(agent)
        log.info("knowledge ready", extra={"agent": name, "chunks": report.chunks,
                                           "indexed": len(report.indexed),
                                           "errors": len(report.errors)})
    return index


async def start_knowledge(settings: Settings) -> KnowledgeIndex:
    return await asyncio.to_thread(build_all, settings)
