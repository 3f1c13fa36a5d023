"""Helpers for the knowledge tests: a migrated store, a built index, a tiny PDF, and the
knowledge set's evaluation (tests/test_knowledge_set.py, bench/eval_knowledge_set.py)."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml

from televox_pbx.agent.dialogue import TextDialogue
from televox_pbx.agent.guard import ReplyGuard
from televox_pbx.config.agent import AgentFile
from televox_pbx.config.inbound import inbound_campaign
from televox_pbx.config.loader import load_agents
from televox_pbx.knowledge.grounding import Grounding
from televox_pbx.knowledge.index import KnowledgeIndex, open_index
from televox_pbx.store import Store
from televox_pbx.voice.interfaces import Llm

REPO = Path(__file__).resolve().parents[1]
QUESTIONS = REPO / "tests" / "fixtures" / "knowledge" / "questions.yaml"


async def _migrate(path: Path) -> None:
    store = await Store.open(path)
    await store.close()


def new_index(tmp: Path) -> KnowledgeIndex:
    path = tmp / "store.db"
    asyncio.run(_migrate(path))
    return KnowledgeIndex(open_index(path))


async def new_index_async(tmp: Path) -> KnowledgeIndex:
    path = tmp / "store.db"
    await _migrate(path)
    return KnowledgeIndex(open_index(path))


def front_desk() -> AgentFile:
    return load_agents(REPO / "config" / "agents")[0]["front-desk"]


def question_set() -> tuple[list[dict[str, str]], list[str]]:
    data = yaml.safe_load(QUESTIONS.read_text(encoding="utf-8"))
    return data["answerable"], data["unanswerable"]


def tiny_pdf(text: str) -> bytes:
    """A one-page PDF showing `text` in Helvetica, with a correct xref table."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, xref)
    return bytes(out)


HELD_OUT = REPO / "tests" / "fixtures" / "knowledge" / "heldout.yaml"
DECLINED = re.compile(r"\b(don'?t|do not) (know|have)|\bnot sure\b|\bno information\b|"
                      r"\bcan'?t (say|tell|confirm)|\bunable\b|\bnot able\b", re.IGNORECASE)
FOLLOW_UP = re.compile(r"call (you )?back|callback|front desk|\bteam\b|transfer|colleague|"
                       r"someone|get back to you", re.IGNORECASE)
EVAL_NOW = datetime(2026, 3, 2, 15, 0, tzinfo=ZoneInfo("UTC"))


@dataclass
class SetResult:
    """One part of the knowledge set through the agent's reply path."""

    name: str
    answered: int = 0
    answerable: int = 0
    declined: int = 0
    unanswerable: int = 0
    top3: int = 0
    by_llm: int = 0  # turns the LLM answered (the rest: knowledge verdicts, no LLM)
    verdicts: Counter[str] = field(default_factory=Counter)
    lines: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"{self.name}: answered {self.answered}/{self.answerable} "
                f"({self.answered / self.answerable:.1%}), declined {self.declined}/"
                f"{self.unanswerable} ({self.declined / self.unanswerable:.1%}), retrieval "
                f"top-3 {self.top3}/{self.answerable} ({self.top3 / self.answerable:.1%}); "
                f"verdicts {dict(self.verdicts)}, LLM turns {self.by_llm}")


def load_set(path: Path) -> tuple[list[dict[str, str]], list[str]]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data["answerable"], data["unanswerable"]


async def evaluate(llm: Llm, index: KnowledgeIndex, name: str, path: Path) -> SetResult:
    """Each question is one fresh inbound call of the front-desk agent, through the
    agent's reply path (agent/dialogue.py) with the knowledge lookup the session uses.
    Answerable: the reply holds the fact (the question's regex). Unanswerable: the reply
    says it does not know, offers a follow-up and states no number it was not given."""
    agent = front_desk()
    campaign = inbound_campaign(agent, "+15550100200")
    answerable, unanswerable = load_set(path)
    out = SetResult(name, answerable=len(answerable), unanswerable=len(unanswerable))

    async def ask(question: str, part: str) -> tuple[str, TextDialogue]:
        ground = Grounding(index, agent.name)
        d = TextDialogue(campaign, {}, llm, now=EVAL_NOW, zone="America/New_York",
                         ground=ground)
        verdict = ground.verdict(question)
        out.verdicts[f"{part} {verdict.kind if verdict else 'llm'}"] += 1
        out.by_llm += verdict is None
        return (await d.callee(question)).text, d

    for item in answerable:
        fact = re.compile(item["fact"], re.IGNORECASE)
        out.top3 += any(fact.search(h.body) for h in
                        Grounding(index, agent.name).hits(item["q"])[:3])
        reply, _ = await ask(item["q"], "answerable")
        ok = fact.search(reply) is not None
        out.answered += ok
        out.lines.append(f"{'ok  ' if ok else 'FAIL'} {item['q']!r} -> {reply!r}")
    for question in unanswerable:
        reply, d = await ask(question, "unanswerable")
        known = [m.content for m in d.messages if m.role in ("system", "user")]
        invents = ReplyGuard.build(question, known)._invents(reply)
        ok = bool(DECLINED.search(reply) and FOLLOW_UP.search(reply)) and not invents
        out.declined += ok
        out.lines.append(f"{'ok  ' if ok else 'FAIL'} {question!r} -> {reply!r}")
    return out
