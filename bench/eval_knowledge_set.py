"""The knowledge set through the agent's reply path, per question (the test of the bars
is tests/test_knowledge_set.py; this prints every reply and times each part):
    PYTHONPATH=. .venv/bin/python bench/eval_knowledge_set.py [--no-llm]

--no-llm: a model that fails when asked, to show which turns the knowledge verdict
answers alone (all of them, today) without loading the real LLM.

Before the knowledge verdicts (the LLM answering from a two-chunk note; measured with
Qwen2.5-1.5B on 43 answerable and 17 unanswerable questions, 10-40 min): answered 65 %,
declined 24 %, retrieval top-3 88.2 %. Now (seconds, no LLM turn): tuning set answered
49/51, declined 17/17, top-3 50/51; held-out set answered 15/16, declined 7/8, top-3
16/16. Of the answers, 35 + 11 are confident (stored answer or best sentence) and 16 + 5
the nearest fact said as such ("I'm not sure about that exactly. Here is what I can tell
you: ..."); of the declines, 9 + 4 are the fixed decline line and 8 + 3 that hedge.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from knowledge_support import (
    HELD_OUT,
    QUESTIONS,
    REPO,
    evaluate,
    front_desk,
    new_index_async,
)

from televox_pbx.config.settings import ModelSettings
from televox_pbx.voice.engines import Engines
from televox_pbx.voice.engines.manifest import load_manifest
from televox_pbx.voice.interfaces import ChatMessage, Llm, LlmDelta


class NoLlm:
    async def stream(self, messages: Sequence[ChatMessage],
                     tools: dict[str, Any] | None = None) -> AsyncIterator[LlmDelta]:
        raise AssertionError("this turn needed the LLM")
        yield LlmDelta()  # pragma: no cover


async def main() -> None:
    engines = None
    started = time.monotonic()
    if "--no-llm" in sys.argv:
        llm: Llm = NoLlm()  # type: ignore[assignment]
    else:
        cache = Path(os.environ.get("TELEVOX_MODELS_DIR", REPO / "var" / "models"))
        engines = Engines(ModelSettings(cache_dir=cache),
                          manifest=load_manifest(REPO / "models" / "manifest.json"))
        llm = engines.llm()
    print(f"model load {time.monotonic() - started:.1f} s")
    with tempfile.TemporaryDirectory() as tmp:
        index = await new_index_async(Path(tmp))
        index.build(front_desk())
        for name, path in (("tuning set", QUESTIONS), ("held-out set", HELD_OUT)):
            t0 = time.monotonic()
            part = await evaluate(llm, index, name, path)
            print("\n".join(part.lines))
            print(f"{part.summary()}; {time.monotonic() - t0:.1f} s")
        await index.close()
    if engines is not None:
        engines.close()


if __name__ == "__main__":
    asyncio.run(main())
