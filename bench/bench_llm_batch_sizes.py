"""What one llama.cpp pass costs for n prompt tokens, with the real model.

The LLM engine pads a prompt slice up to a size the CPU kernels handle faster
(`televox_pbx/voice/engines/llm_eval.py`: slices of up to 32, padded to a multiple of 16
when 10-15 past one). This prints the table behind that rule, median of 5 passes per
size, so it can be checked on other hardware. On the 2-core AVX2 box: 1 -> 52 ms,
7 -> 187, 8 -> 265, 15 -> 400, 16 -> 297, 17 -> 345, 24 -> 494, 31 -> 635, 32 -> 537.

Usage: .venv/bin/python bench/bench_llm_batch_sizes.py [--max 32]
"""

from __future__ import annotations

import argparse
import statistics
import time

from repo_models import model_settings

from televox_pbx.voice.engines.holder import Engines
from televox_pbx.voice.engines.llm_eval import plan_slices


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max", type=int, default=32)
    args = parser.parse_args()
    llama = Engines(model_settings()).llm()._llama
    base = llama.tokenize(b"<|im_start|>system\nYou are a phone assistant.<|im_end|>\n"
                          b"<|im_start|>user\nHello there<|im_end|>\n", special=True)
    llama.reset()
    llama.eval(base)
    filler = llama.tokenize(b" the consultation is free and takes about thirty minutes" * 4,
                            add_bos=False)
    cost: dict[int, float] = {}
    for n in range(1, args.max + 1):
        times = []
        for _ in range(5):
            start = time.perf_counter()
            llama.eval(filler[:n])
            times.append(time.perf_counter() - start)
            llama._ctx.kv_cache_seq_rm(-1, len(base), -1)
            llama.n_tokens = len(base)
        cost[n] = statistics.median(times)
    print(" n   one pass   per token   as planned (slices <= 32, padded to 16k from +10)")
    for n, seconds in cost.items():
        planned = sum(cost[padded] for _, padded in plan_slices(n))
        print(f"{n:2d} {seconds * 1000:8.0f} ms {seconds * 1000 / n:7.1f} ms "
              f"{planned * 1000:9.0f} ms")


if __name__ == "__main__":
    main()
