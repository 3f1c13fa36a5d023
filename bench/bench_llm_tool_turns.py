"""Time to the first words of a reply that calls a tool: written freely vs under the grammar.

A tool call comes before the reply's speech ({"tool": {...}, "say": "..."}), so every token
of it is on the callee's wait. LlamaLlm lets the model write it with no grammar and keeps
it when it fits the schema (`free_tool_step`, engines/llm_tool_check.py); the grammar
checks every candidate token against the whole vocabulary. Each line below is played on a
fresh call (the campaign's prompt prefilled, the callee's line, the reply streamed), with
each path in turn, alternating which goes first, twice over. Prints each reply's first
text and tools, then the p50 and mean per path over the replies that called a tool.

Usage: .venv/bin/python bench/bench_llm_tool_turns.py [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from datetime import datetime

from repo_models import model_settings

from televox_pbx.agent.prompts import opening_line, system_prompt
from televox_pbx.agent.tools import tools_schema
from televox_pbx.voice.engines.holder import Engines
from televox_pbx.voice.engines.llm_llama import LlamaLlm
from televox_pbx.voice.interfaces import ChatMessage

sys.path.insert(0, "bench")
from bench_voice_latency import CAMPAIGN

LINES = ["No thanks, I'm not interested.", "Wrong number, there's no Sam here.",
         "Call me back tomorrow at 5 pm.", "Please stop calling me. Take me off your list.",
         "Sure, book me in. Thanks, bye."]
VARIABLES = {"NAME": "Sam"}


async def one_reply(llm: LlamaLlm, line: str) -> tuple[float | None, list[str], str]:
    tools = tools_schema(transfer_available=False)
    messages = [ChatMessage("system", system_prompt(CAMPAIGN, VARIABLES,
                                                    datetime(2026, 3, 2, 10, 0))),
                ChatMessage("assistant", opening_line(CAMPAIGN, VARIABLES))]
    await llm.prefill(messages, tools)
    messages.append(ChatMessage("user", line))
    started = time.monotonic()
    first: float | None = None
    calls: list[str] = []
    said = ""
    async for delta in llm.stream(messages, tools):
        if delta.tool_call is not None:
            calls.append(delta.tool_call.name)
        if delta.text:
            first = time.monotonic() - started if first is None else first
            said += delta.text
    return first, calls, said


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    engines = Engines(model_settings())
    await engines.preload(("llm",))
    llm = engines.llm()
    firsts: dict[str, list[float]] = {"free": [], "grammar": []}
    try:
        for rnd in range(args.rounds):
            for i, line in enumerate(LINES):
                order = (True, False) if (i + rnd) % 2 == 0 else (False, True)
                for free in order:
                    llm.free_tool_step = free
                    label = "free" if free else "grammar"
                    first, calls, said = await one_reply(llm, line)
                    if calls and first is not None:
                        firsts[label].append(first * 1000)
                    shown = f"{first * 1000:5.0f}" if first is not None else "  nan"
                    print(f"[{label:7}] first text {shown} ms  tools={calls}  {said[:50]!r}")
    finally:
        engines.close()
    for label, ms in firsts.items():
        if ms:
            print(f"[{label:7}] {len(ms)} tool turns: first text p50 {statistics.median(ms):.0f} "
                  f"ms, mean {statistics.mean(ms):.0f} ms")
    print(f"tool calls kept as written: {llm.tools_written_freely}")


if __name__ == "__main__":
    asyncio.run(main())
