"""First audio after the callee stops speaking, one call at a time, real models.

Runs `--calls` calls one after another (each `--lines` callee lines, the callee waiting for
every reply; see capacity.py) and prints p50/p95 of the first audio as the line carries it
(callee's last voiced frame -> agent's first voiced frame) and of the session's own
first_audio_ms, against the targets (p50 <= 0.8 s, p95 <= 1.2 s). `--save` keeps the
figures; `--compare FILE` prints saved ones (e.g. today's main) beside these.

Usage: .venv/bin/python bench/bench_first_audio.py [--calls 3] [--lines 5] [--no-scheduler]
       [--save FILE] [--compare FILE] [--label NAME]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_voice_latency import CAMPAIGN, SCRIPTS, pct
from capacity import rss_mb, run_n, session_engines
from repo_models import model_settings

from televox_pbx.agent.warmup import warm_prompts
from televox_pbx.clock import SystemClock
from televox_pbx.sim.speech import speech_from_tts
from televox_pbx.store.db import Store
from televox_pbx.voice.engines.holder import Engines as ModelHolder

TARGET_P50_S, TARGET_P95_S = 0.8, 1.2


async def main(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    models = ModelHolder(model_settings())
    await models.preload()
    print(f"models loaded in {time.perf_counter() - started:.1f} s; RSS {rss_mb():.0f} MB; "
          f"load average {os.getloadavg()[0]:.1f}")
    tts = speech_from_tts(models.tts())
    speech = {line: await tts(line) for script in SCRIPTS for line in script[:args.lines]}
    # As the daemon does before its first dial: the campaign's stable prompt evaluated.
    await warm_prompts(models.llm(), [CAMPAIGN])
    engines = session_engines(models, not args.no_scheduler, SystemClock())
    line: list[float] = []
    session: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        store = await Store.open(Path(tmp) / "bench.db")
        for i in range(args.calls):  # one call at a time, each another callee's script
            r = await run_n(1, args.lines, engines, store, speech, offset=i)
            line += r.first_audio
            session += r.stages.get("first_audio_ms", [])
        await store.close()
    models.close()
    return {"label": args.label, "turns": len(line), "line_p50": pct(line, 0.5),
            "line_p95": pct(line, 0.95), "session_p50": pct(session, 0.5) / 1000,
            "session_p95": pct(session, 0.95) / 1000, "load": os.getloadavg()[0]}


def show(rows: list[dict[str, Any]]) -> None:
    print(f"\nfirst audio, one call (targets: p50 <= {TARGET_P50_S} s, "
          f"p95 <= {TARGET_P95_S} s)")
    print(f"{'':<22}{'turns':>6}{'line p50':>10}{'line p95':>10}{'session p50':>13}"
          f"{'session p95':>13}{'load':>6}")
    for row in rows:
        print(f"{row['label']:<22}{row['turns']:>6}{row['line_p50']:>9.2f}s"
              f"{row['line_p95']:>9.2f}s{row['session_p50']:>12.2f}s"
              f"{row['session_p95']:>12.2f}s{row['load']:>6.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3)
    parser.add_argument("--lines", type=int, default=5)
    parser.add_argument("--no-scheduler", action="store_true")
    parser.add_argument("--label", default="this tree")
    parser.add_argument("--save", default=None)
    parser.add_argument("--compare", default=None)
    options = parser.parse_args()
    figures = asyncio.run(main(options))
    rows = [figures]
    if options.compare:
        rows.insert(0, json.loads(Path(options.compare).read_text(encoding="utf-8")))
    show(rows)
    if options.save:
        Path(options.save).write_text(json.dumps(figures), encoding="utf-8")
