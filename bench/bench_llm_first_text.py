"""Time from asking the LLM for a reply to its first words, with the real model.

One scripted conversation as the voice session drives it: the campaign's system prompt
and tools, the opening line prefilled, then for each callee line the user message is
appended, `LlamaLlm.stream` is timed to the first delta with text and to its end, the
reply goes back into the history, and we pause 1.5 s (the next prompt is warmed then).

The tool value is read off the logits by default; `--grammar-tool-step` forces the old
grammar-sampled tool step. `--both` compares them in one process: it runs the conversation
twice, switching path every turn (grammar first, then logits first), so both see the same
turns and the same load from anything else on the machine (2 shared cores: a busy
neighbour stalls llama.cpp's threads for seconds, so alternating matters).

Usage: .venv/bin/python bench/bench_llm_first_text.py [--grammar-tool-step | --both]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from repo_models import model_settings

from televox_pbx.agent.prompts import opening_line, system_prompt
from televox_pbx.agent.tools import tools_schema
from televox_pbx.voice.engines.holder import Engines
from televox_pbx.voice.engines.llm_llama import LlamaLlm
from televox_pbx.voice.interfaces import ChatMessage

sys.path.insert(0, "bench")
from bench_voice_latency import CAMPAIGN

LINES = ["Hi, sorry, who is this?", "What does the consultation involve?",
         "How long does it take?", "Is it really free?",
         "We have a pretty old roof. Is that a problem?", "Do I need to be at home for it?",
         "Could the engineer come on a Saturday?", "What does it cost?"]
VARIABLES = {"NAME": "Sam"}


async def conversation(llm: LlamaLlm, *, grammar: Callable[[int], bool],
                       run: int) -> dict[str, list[float]]:
    """`grammar(i)`: whether turn i takes the grammar path. First-text ms by path."""
    # A different clock per run makes the system prompt end differently, so a run never
    # resumes from KV states the previous run saved.
    now = datetime(2026, 3, 2, 10, 0) + timedelta(minutes=run)
    tools = tools_schema(transfer_available=False)
    messages = [ChatMessage("system", system_prompt(CAMPAIGN, VARIABLES, now)),
                ChatMessage("assistant", opening_line(CAMPAIGN, VARIABLES))]
    await llm.prefill(messages, tools)
    firsts: dict[str, list[float]] = {"grammar": [], "logits": []}
    for i, line in enumerate(LINES):
        llm.logit_tool_step = not grammar(i)
        label = "logits" if llm.logit_tool_step else "grammar"
        messages.append(ChatMessage("user", line))
        fast_before = llm.null_by_logits
        started = time.monotonic()
        first: float | None = None
        said: list[str] = []
        calls: list[str] = []
        async for delta in llm.stream(messages, tools):
            if delta.tool_call is not None:
                calls.append(delta.tool_call.name)
            if delta.text:
                if first is None:
                    first = time.monotonic() - started
                said.append(delta.text)
        total = time.monotonic() - started
        reply = " ".join("".join(said).split())
        if first is not None:
            firsts[label].append(first * 1000)
        fast = "fast" if llm.null_by_logits > fast_before else "grammar"
        print(f"[{label:7}] first text {first * 1000 if first else float('nan'):6.0f} ms  "
              f"end {total * 1000:6.0f} ms  {fast:7}  tools={calls}  {reply[:60]!r}")
        if reply:
            messages.append(ChatMessage("assistant", reply))
        await asyncio.sleep(1.5)  # the callee listens; the next prompt is warmed meanwhile
    return firsts


def summary(label: str, ms: list[float]) -> None:
    if ms:
        print(f"[{label:7}] first text p50 {statistics.median(ms):.0f} ms over {len(ms)} "
              f"turns (min {min(ms):.0f}, max {max(ms):.0f})")


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = ap.add_mutually_exclusive_group()
    group.add_argument("--grammar-tool-step", action="store_true",
                       help="sample the tool value under its grammar (the old path)")
    group.add_argument("--both", action="store_true",
                       help="run the grammar path, then the logits path")
    args = ap.parse_args()
    engines = Engines(model_settings())
    await engines.preload(("llm",))
    llm = engines.llm()
    try:
        if args.both:
            firsts = await conversation(llm, grammar=lambda i: i % 2 == 0, run=0)
            more = await conversation(llm, grammar=lambda i: i % 2 == 1, run=1)
            for label in ("grammar", "logits"):
                summary(label, firsts[label] + more[label])
        else:
            firsts = await conversation(llm, grammar=lambda _: args.grammar_tool_step, run=0)
            for label, ms in firsts.items():
                summary(label, ms)
    finally:
        engines.close()


if __name__ == "__main__":
    asyncio.run(main())
