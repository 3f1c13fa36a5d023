"""The knowledge set with the real LLM (an evaluation, not in CI until it meets its bars):
    .venv/bin/pytest -q -s -p no:cacheprovider bench/eval_knowledge_set.py

 callers ask the front-desk agent
(config/agents/front-desk.yaml) the questions of tests/fixtures/knowledge/questions.yaml,
phrased differently from its FAQ and policy document, on an inbound call. Each question
is one fresh call (the agent's prompt prefix is shared and cached) through the agent's
real reply path (agent/dialogue.py) with the knowledge lookup the session uses.

- answerable: the reply holds the right fact (the question's regex);
- unanswerable: the reply says it does not know, offers a follow-up, and states no number
  it was not given (agent/guard.py's invented-number check).
Prints both rates and the retrieval top-3 hit rate. Marked `models`: one model load and
up to 68 short replies (clear FAQ matches are spoken as stored, without the LLM), each
~150 prompt tokens after the cached agent prefix plus ~30 generated. Measured on this
2-core box under other agents' load: median 14 s a question, 40 min for 60 questions
(about 7-10 min expected on an idle box).

It fails today, so it is not in the test suite (an xfail would cost CI 10-40 min and
prove nothing). Measured with Qwen2.5-1.5B on 43 of the
answerable and all 17 unanswerable questions: answered 28/43 (65 %), declined 4/17
(24 %). The model declines some questions its note answers, copies a second chunk of the
note, and invents ("No, we do not offer Botox", "Dr. Patel has been practising for 10
years") when the note does not answer. The bars below are the issue's.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from knowledge_support import REPO, front_desk, new_index_async, question_set

from televox_pbx.agent.dialogue import TextDialogue
from televox_pbx.agent.guard import ReplyGuard
from televox_pbx.config.inbound import inbound_campaign
from televox_pbx.config.settings import ModelSettings
from televox_pbx.knowledge.grounding import Grounding
from televox_pbx.voice.engines import Engines
from televox_pbx.voice.engines.llm_llama import LlamaLlm
from televox_pbx.voice.engines.manifest import load_manifest

pytestmark = pytest.mark.models

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=ZoneInfo("UTC"))
DECLINE = re.compile(r"\b(don'?t|do not) (know|have)|\bnot sure\b|\bno information\b|"
                     r"\bcan'?t (say|tell|confirm)|\bunable\b|\bnot able\b", re.IGNORECASE)
FOLLOW_UP = re.compile(r"call (you )?back|callback|front desk|\bteam\b|transfer|colleague|"
                       r"someone|get back to you", re.IGNORECASE)


@pytest.fixture(scope="module")
def llm() -> Iterator[LlamaLlm]:
    cache = Path(os.environ.get("TELEVOX_MODELS_DIR", REPO / "var" / "models"))
    engines = Engines(ModelSettings(cache_dir=cache),
                      manifest=load_manifest(REPO / "models" / "manifest.json"))
    yield engines.llm()
    engines.close()


async def test_knowledge_set(llm: LlamaLlm, tmp_path: Path) -> None:
    agent = front_desk()
    index = await new_index_async(tmp_path)
    index.build(agent)
    campaign = inbound_campaign(agent, "+15550100200")
    answerable, unanswerable = question_set()
    started = time.monotonic()

    async def ask(question: str) -> tuple[str, TextDialogue]:
        d = TextDialogue(campaign, {}, llm, now=NOW, zone="America/New_York",
                         ground=Grounding(index, agent.name))
        return (await d.callee(question)).text, d

    top3 = right = 0
    for item in answerable:
        fact = re.compile(item["fact"], re.IGNORECASE)
        top3 += any(fact.search(h.body) for h in index.search(agent.name, item["q"], 3))
        reply, _ = await ask(item["q"])
        ok = fact.search(reply) is not None
        right += ok
        print(f"{'ok  ' if ok else 'FAIL'} {item['q']!r} -> {reply!r}", flush=True)
    declined = 0
    for question in unanswerable:
        reply, d = await ask(question)
        known = [m.content for m in d.messages if m.role in ("system", "user")]
        invents = ReplyGuard.build(question, known)._invents(reply)
        ok = bool(DECLINE.search(reply) and FOLLOW_UP.search(reply)) and not invents
        declined += ok
        print(f"{'ok  ' if ok else 'FAIL'} {question!r} -> {reply!r}", flush=True)
    answered_rate, declined_rate = right / len(answerable), declined / len(unanswerable)
    print(f"knowledge set: answered {right}/{len(answerable)} ({answered_rate:.1%}), "
          f"declined {declined}/{len(unanswerable)} ({declined_rate:.1%}), retrieval top-3 "
          f"{top3}/{len(answerable)} ({top3 / len(answerable):.1%}), "
          f"{time.monotonic() - started:.0f} s")
    assert len(answerable) >= 45 and len(unanswerable) >= 15
    assert answered_rate >= 0.90
    assert declined_rate >= 0.95
