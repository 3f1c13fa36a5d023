"""The agents, the numbers, a knowledge search and one person's history (issue 18 item 6):
what `televox agents list|show`, `televox knowledge search`, the settings' numbers and
`televox contacts show` print, as JSON. Agent files are read from disk on each request
(as the CLI does); the knowledge index is the daemon's own (ApiContext.knowledge)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from televox_pbx.campaigns.phones import normalize_phone
from televox_pbx.config.agent import AgentFile
from televox_pbx.config.loader import load_agents, load_campaigns
from televox_pbx.knowledge.grounding import Grounding
from televox_pbx.knowledge.index import KnowledgeIndex
from televox_pbx.store.person_history import person_history
from televox_pbx.store.person_texts import person_texts, sms_attempt_ids
from televox_pbx.web.context import ApiContext, ctx
from televox_pbx.web.errors import ApiError, not_found
from televox_pbx.web.routes import (
    PREFIX,
    Param,
    Route,
    int_param,
    json_response,
    path_str,
    query_int,
    str_param,
)

TAG = "agents"
MAX_QUESTION = 500
_OLDEST = datetime.min.replace(tzinfo=UTC)


def agent_files(c: ApiContext) -> dict[str, AgentFile]:
    agents, _ = load_agents(c.settings.agents_dir)  # `televox check` reports bad files
    return agents


def _agent(c: ApiContext, name: str) -> AgentFile:
    agent = agent_files(c).get(name)
    if agent is None:
        raise not_found("agent")
    return agent


def campaigns_by_agent(c: ApiContext) -> dict[str, list[str]]:
    """The campaigns naming each agent file (as `televox agents list`)."""
    campaigns, _ = load_campaigns(c.settings.campaigns_dir, c.settings.agents_dir)
    uses: dict[str, list[str]] = {}
    for name, campaign in sorted(campaigns.items()):
        if campaign.agent.profile is not None:
            uses.setdefault(campaign.agent.profile.name, []).append(name)
    return uses


def _sources(agent: AgentFile, index: KnowledgeIndex | None) -> list[dict[str, Any]]:
    """Each indexed source (chunks, or the error that kept it out), then each configured
    path the index has nothing from (missing on disk, or not built yet)."""
    rows = [] if index is None else index.conn.execute(
        "SELECT path, chunks, error, indexed_at FROM knowledge_sources WHERE agent = ?"
        " ORDER BY path", (agent.name,)).fetchall()
    out: list[dict[str, Any]] = [
        {"path": str(r[0]), "chunks": int(r[1]), "status": "error" if r[2] else "indexed",
         "error": r[2], "indexed_at": r[3]} for r in rows]
    indexed = [str(r[0]) for r in rows]
    for path in agent.knowledge_paths():
        key = str(path)
        if any(p == key or p.startswith(key.rstrip("/") + "/") for p in indexed):
            continue
        out.append({"path": key, "chunks": 0,
                    "status": "not_indexed" if path.exists() else "missing",
                    "error": None, "indexed_at": None})
    return out


def describe(c: ApiContext, agent: AgentFile, campaigns: list[str]) -> dict[str, Any]:
    index = c.knowledge
    return {
        "name": agent.name, "persona": agent.persona_name, "business": agent.business,
        "voice": agent.voice, "business_info": agent.business_info.strip() or None,
        "knowledge": {"chunks": index.count(agent.name) if index is not None else None,
                      "sources": _sources(agent, index)},
        "builtin_tools": list(agent.builtin_tools),
        "tools": [t.name for t in agent.tools],
        "numbers": [n.number for n in c.settings.numbers if n.agent == agent.name],
        "inbound": {"first_message": agent.greeting(), "goal": agent.inbound.goal},
        "campaigns": campaigns,
    }


async def agents_list(request: web.Request) -> web.Response:
    c = ctx(request)
    uses = campaigns_by_agent(c)
    return json_response({"agents": [describe(c, a, uses.get(name, [])) for name, a in
                                     sorted(agent_files(c).items())]})


async def agent_show(request: web.Request) -> web.Response:
    c = ctx(request)
    agent = _agent(c, request.match_info["name"])
    return json_response(describe(c, agent, campaigns_by_agent(c).get(agent.name, [])))


def search(index: KnowledgeIndex, agent: str, question: str, limit: int) -> dict[str, Any]:
    """What `televox knowledge search` prints: the top chunks, each with its bm25 score and
    how much of the question it covers, and what the agent would say (the verdict of
    knowledge/grounding.py, or the LLM with the best chunk as a note)."""
    ground = Grounding(index, agent)  # the ranking and verdict a call uses
    chunks = [{"rank": n, "score": round(r.hit.score, 4), "coverage": round(r.coverage, 4),
               "kind": "faq" if r.hit.question else "text", "source": r.hit.source,
               "question": r.hit.question or None, "body": r.hit.body,
               "answer": r.hit.answer or None}
              for n, r in enumerate(ground.ranked(question)[:limit], 1)]
    verdict = ground.verdict(question)
    reply = ({"kind": verdict.kind, "text": verdict.text, "note": None} if verdict is not None
             else {"kind": "llm", "text": None, "note": ground.note(question)})
    return {"agent": agent, "question": question, "chunks": chunks, "reply": reply}


async def agent_knowledge(request: web.Request) -> web.Response:
    c = ctx(request)
    agent = _agent(c, request.match_info["name"])
    question = str_param(request, "q", max_len=MAX_QUESTION)
    if question is None or not question.strip():
        raise ApiError(422, "invalid_parameter", "q: the question to search for")
    limit = int_param(request, "limit", 3, 1, 20)
    if c.knowledge is None:
        raise ApiError(503, "unavailable", "the knowledge index is not loaded")
    if not c.knowledge.count(agent.name):
        raise ApiError(409, "no_knowledge",
                       f"agent {agent.name!r} has no indexed knowledge (televox knowledge "
                       "build)")
    return json_response(search(c.knowledge, agent.name, question.strip(), limit))


async def numbers_list(request: web.Request) -> web.Response:
    c = ctx(request)
    known = agent_files(c)
    return json_response({"numbers": [
        {"number": n.number, "agent": n.agent, "agent_known": n.agent in known,
         "caller_id": n.caller_id, "sms": n.sms} for n in c.settings.numbers]})


def phone_of(c: ApiContext, raw: str) -> str:
    e164 = normalize_phone(raw, c.settings.default_country).e164
    if e164 is None:
        raise ApiError(422, "invalid_phone", "not a phone number (E.164, or national for "
                                             f"{c.settings.default_country})")
    return e164


def _at(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


async def person_show(request: web.Request) -> web.Response:
    """Every call and text with a number, newest first; each call links to its API URL
    (status, transcript, recordings, summary)."""
    c = ctx(request)
    e164 = phone_of(c, request.match_info["phone"])
    limit = int_param(request, "limit", 200, 1, 1000)
    texts = await person_texts(c.store, e164, limit)
    sms_ids = await sms_attempt_ids(c.store, e164) | {t.attempt_id for t in texts
                                                       if t.attempt_id}
    calls = [r for r in await person_history(c.store, e164, limit) if r.call_id not in sms_ids]
    items: list[tuple[datetime, dict[str, Any]]] = [
        (r.at or _OLDEST, {
            "type": "call", "at": _at(r.at), "direction": r.direction,
            "campaign": r.campaign, "agent": r.agent, "number": r.number,
            "status": r.status, "disposition": r.disposition, "duration_s": r.duration_s,
            "turns": r.turns, "call_id": r.call_id, "url": f"{PREFIX}/calls/{r.call_id}"})
        for r in calls]
    items += [(t.at or _OLDEST, {
        "type": "sms", "at": _at(t.at), "direction": "outbound" if t.direction == "out"
        else "inbound", "campaign": t.campaign, "kind": t.kind, "body": t.body,
        "status": t.status, "reason": t.reason}) for t in texts]
    items.sort(key=lambda x: x[0], reverse=True)  # stable: each source is newest first
    names = sorted({r.contact_name for r in calls if r.contact_name})
    return json_response({"phone": e164, "names": names, "calls": len(calls),
                          "texts": len(texts), "history": [i for _, i in items[:limit]]})


_NAME = path_str("name", "agent name (config/agents/NAME.yaml)")
_AGENT_SCHEMA = {"type": "object", "required": ["name", "persona", "business", "knowledge",
                                                "tools", "numbers"]}

ROUTES: list[Route] = [
    Route("GET", "/agents", agents_list,
          "Every agent: persona, business, voice, knowledge sources with their chunk counts "
          "and status, custom tools, and the numbers it answers", TAG,
          ok_schema={"type": "object", "required": ["agents"]}),
    Route("GET", "/agents/{name}", agent_show, "One agent", TAG, params=(_NAME,),
          ok_schema=_AGENT_SCHEMA),
    Route("GET", "/agents/{name}/knowledge", agent_knowledge,
          "What the agent finds for a question: the top chunks with their scores, and what "
          "it would say (a knowledge answer, a hedge, a decline, or the LLM with a note)",
          TAG, params=(_NAME, Param("q", "query", {"type": "string", "minLength": 1,
                                                   "maxLength": MAX_QUESTION},
                                    "the caller's question", True),
                       query_int("limit", 3, 1, 20, "chunks shown")),
          ok_schema={"type": "object", "required": ["chunks", "reply"]}, errors=(409, 503)),
    Route("GET", "/numbers", numbers_list,
          "The business's numbers: the agent answering each, caller ID and SMS use", TAG,
          ok_schema={"type": "object", "required": ["numbers"]}),
    Route("GET", "/people/{phone}", person_show,
          "One person's history, newest first: calls inbound and outbound across campaigns "
          "and agents (each with its API URL), texts, dispositions", TAG,
          params=(path_str("phone", "the phone number, E.164 or national"),
                  query_int("limit", 200, 1, 1000, "entries of each kind")),
          ok_schema={"type": "object", "required": ["phone", "history"]}, errors=(422,)),
]
