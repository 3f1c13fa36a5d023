"""The call summary by the real local LLM on a short transcript (marked `models`; loads
only the LLM; ~30 s of CPU on 2 cores)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from test_call_summaries import Live, seed_call

from televox_pbx.agent.call_summary import MAX_SUMMARY_CHARS, SummaryWorker
from televox_pbx.clock import FakeClock
from televox_pbx.config.settings import ModelSettings
from televox_pbx.store import Store
from televox_pbx.store.call_summaries import get_summary
from televox_pbx.voice.engines import Engines
from televox_pbx.voice.engines.manifest import load_manifest

pytestmark = pytest.mark.models

REPO = Path(__file__).resolve().parents[1]
TURNS = [("agent", "Hi Ann, I'm Ava, an AI assistant calling for Acme Solar about a free "
                   "roof survey."),
         ("callee", "Oh, I'm driving right now. Can you call me back on Tuesday afternoon?"),
         ("agent", "Of course. I'll call you back on Tuesday afternoon. Goodbye!")]


@pytest.fixture(scope="module")
def engines() -> Iterator[Engines]:
    eng = Engines(ModelSettings(cache_dir=REPO / "var" / "models"),
                  manifest=load_manifest(REPO / "models" / "manifest.json"))
    yield eng
    eng.close()


async def test_the_local_llm_summarises_a_short_call(engines: Engines, store: Store) -> None:
    llm = engines.llm()
    llm.temperature, llm.max_tokens = 0.0, 80
    await seed_call(store, "call-1", turns=TURNS)
    worker = SummaryWorker(store, llm, FakeClock(), Live().busy, settle_s=0)
    assert await worker.step() == 1
    summary = await get_summary(store, "call-1")
    assert summary is not None and summary.status == "done" and summary.text
    text = summary.text.lower()
    assert "tuesday" in text and ("call" in text or "back" in text), summary.text
    assert 20 < len(summary.text) <= MAX_SUMMARY_CHARS
