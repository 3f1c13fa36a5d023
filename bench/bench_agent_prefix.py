"""LLM prompt work of a new call with the shared agent prefix, next to without it
(issue 18), real Qwen2.5-1.5B.

Each "call" is a new contact of the recall campaign (the front-desk agent): its system
prompt (the agent's fixed part, then the campaign's, then the contact's variables), the
opening line and the callee's first words, and the agent's first reply with the call's
tools. Measured per call: process CPU seconds (all threads) and wall seconds of that
reply, and the prompt tokens llama.cpp evaluated for it.
- shared prefix: as the daemon runs, the campaign's stable prompt evaluated once
  (agent/warmup.py) and saved as a KV state (engines/llm_states.py); each call restores
  it and evaluates its own part only;
- without: before issue 18 the contact's name and appointment sat inside the system
  prompt, so a new call reused nothing: the context is cleared and no state is saved.
Usage: PYTHONPATH=. .venv/bin/python bench/bench_agent_prefix.py [--calls 3]

Measured here (3 calls each, load average 6-13): without, p50 49.6 CPU s (56 s wall) and
1577 tokens evaluated per new call; shared prefix, p50 6.1 CPU s (9.9 s wall) and 150
tokens (the callee's words, the contact's part and the reply). The prefix itself (~1400
tokens) is evaluated once per campaign at start, before the first dial.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from repo_models import model_settings

from televox_pbx.agent.prompts import opening_line, system_prompt
from televox_pbx.agent.tools import tools_for
from televox_pbx.agent.warmup import warm_prompts
from televox_pbx.config.loader import load_campaign
from televox_pbx.voice.engines.holder import Engines as ModelHolder
from televox_pbx.voice.engines.llm_llama import LlamaLlm
from televox_pbx.voice.interfaces import ChatMessage

REPO = Path(__file__).resolve().parents[1]
CAMPAIGN = load_campaign(REPO / "config" / "campaigns" / "recall.yaml")
NAMES = ["Sam Jones", "Maria Garcia", "Lee Wong", "Ada Brown", "Omar Khan", "Eve Stone"]
NOW = datetime(2026, 3, 2, 10, 0)


class EvalCounter:
    """Counts the tokens llama.cpp decodes (every llama_decode goes through _ctx.decode:
    Llama.eval's and the project's own eval_prompt's, padding included)."""

    def __init__(self, llama: Any) -> None:
        self.tokens = 0
        ctx = llama._ctx
        decode = ctx.decode

        def counted(batch: Any) -> Any:
            self.tokens += int(batch.batch.n_tokens)
            return decode(batch)

        ctx.decode = counted


async def first_reply(llm: LlamaLlm, name: str) -> str:
    variables = {"name": name}
    messages = [ChatMessage("system", system_prompt(CAMPAIGN, variables, NOW)),
                ChatMessage("assistant", opening_line(CAMPAIGN, variables, None)),
                ChatMessage("user", "Oh hi. Yes, it has been a while, hasn't it?")]
    parts = []
    async for delta in llm.stream(messages, tools_for(CAMPAIGN, transfer_port=True)):
        parts.append(delta.text)
    return "".join(parts)


async def run(llm: LlamaLlm, counter: EvalCounter, names: list[str], shared: bool
              ) -> list[tuple[float, float, int]]:
    llama: Any = llm._llama
    states = llm._states
    out = []
    if shared:
        await warm_prompts(llm, [CAMPAIGN])  # once, as the daemon does before dialling
    else:
        llm._states = None
    for name in names:
        if not shared:
            llama.reset()  # nothing of an earlier call's prompt is reused
        counter.tokens = 0
        cpu, wall = time.process_time(), time.perf_counter()
        reply = await first_reply(llm, name)
        out.append((time.process_time() - cpu, time.perf_counter() - wall, counter.tokens))
        print(f"  {'shared' if shared else 'without':>7} {name:<13} CPU {out[-1][0]:5.1f} s, "
              f"wall {out[-1][1]:5.1f} s, evaluated {out[-1][2]:4d} tokens: {reply[:60]!r}")
    llm._states = states
    return out


async def main(args: argparse.Namespace) -> None:
    models = ModelHolder(model_settings())
    llm = models.llm()
    counter = EvalCounter(llm._llama)
    print(f"load average {os.getloadavg()[0]:.1f}")
    names = NAMES[:args.calls]
    without = await run(llm, counter, names, shared=False)
    llm._llama.reset()
    shared = await run(llm, counter, NAMES[args.calls:2 * args.calls] or names, shared=True)
    for label, rows in (("without", without), ("shared", shared)):
        print(f"{label:>7}: CPU s per call p50 {statistics.median(r[0] for r in rows):.1f}, "
              f"wall s p50 {statistics.median(r[1] for r in rows):.1f}, prompt+reply tokens "
              f"evaluated p50 {statistics.median(r[2] for r in rows):.0f}")
    print(f"load average {os.getloadavg()[0]:.1f}")
    models.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=3)
    asyncio.run(main(parser.parse_args()))
