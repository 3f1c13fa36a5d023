"""The knowledge set through the agent's reply path, per question (the test of the bars
is tests/test_knowledge_set.py; this prints every reply and times each part):
    PYTHONPATH=. .venv/bin/python bench/eval_knowledge_set.py [--no-llm]

--no-llm: a model that fails when asked, to show which turns the knowledge verdict
answers alone (all of them, today) without loading the real LLM.
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
