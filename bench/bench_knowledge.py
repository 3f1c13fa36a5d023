"""Knowledge retrieval at scale: the p95 query time over 10,000 chunks.

Builds an index of the front-desk agent's real sources (52 chunks) plus synthetic text
chunks (300-500 characters: Zipf-distributed words from a 20,000-word vocabulary of
pseudo-words, with one word in ten taken from the sources' own words and a list of
common business words, so many chunks compete with the real ones for the questions'
terms) in a fresh store, then runs the knowledge
test set's questions (tests/fixtures/knowledge/questions.yaml) round after round and
prints p50/p95/max query time (process CPU time and wall time), the build time, and the
top-3 hit rate of the answerable questions at that size.

    .venv/bin/python bench/bench_knowledge.py [--chunks 10000] [--rounds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import itertools
import random
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

from televox_pbx.config.loader import load_agents
from televox_pbx.knowledge.index import KnowledgeIndex, open_index
from televox_pbx.store import Store

REPO = Path(__file__).resolve().parents[1]
GENERAL = (  # noqa: SIM905 (a word list reads better as text)
    "account answer appointment arrive billing booking building call card care change check "
    "clinic close cost date day desk detail doctor email family fee file floor form friday "
    "garden help home hour insurance lunch manager meeting message monday morning name note "
    "number office online order parking patient payment phone plan policy price question "
    "receipt record refund repair report request room schedule service staff street team "
    "time today tomorrow visit wait week window work year "
).split()


async def _migrate(path: Path) -> None:
    store = await Store.open(path)
    await store.close()


def _synthetic(n: int, vocab: list[str], rng: random.Random) -> list[tuple[str, str]]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    pseudo = ["".join(rng.choice(letters) for _ in range(rng.randint(3, 9)))
              for _ in range(20_000)]
    cum = list(itertools.accumulate(1 / (rank + 1) for rank in range(len(pseudo))))  # Zipf
    out = []
    for i in range(n):
        words: list[str] = []
        target = rng.randint(300, 500)
        while sum(len(w) + 1 for w in words) < target:
            words.append(rng.choice(vocab) if rng.random() < 0.1
                         else pseudo[bisect.bisect(cum, rng.random() * cum[-1])])
        out.append((f"bench/doc{i // 8}.md", f"Section {i}: " + " ".join(words) + "."))
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chunks", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=20)
    args = ap.parse_args()
    agent = load_agents(REPO / "config" / "agents")[0]["front-desk"]
    questions = yaml.safe_load((REPO / "tests" / "fixtures" / "knowledge" /
                                "questions.yaml").read_text(encoding="utf-8"))
    answerable = questions["answerable"]
    texts = [a["q"] for a in answerable] + list(questions["unanswerable"])
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        asyncio.run(_migrate(db))
        index = KnowledgeIndex(open_index(db))
        t0 = time.perf_counter()
        index.build(agent)
        real = index.count(agent.name)
        vocab = sorted({w.lower() for w in re.findall(r"[A-Za-z]{3,}", " ".join(
            r[0] for r in index.conn.execute("SELECT body FROM knowledge_chunks")))}) + GENERAL
        rows = _synthetic(max(0, args.chunks - real), vocab, random.Random(18))
        with index.conn:
            index.conn.executemany(
                "INSERT INTO knowledge_chunks(agent, source, question, body, answer) "
                "VALUES (?, ?, '', ?, '')", [(agent.name, s, b) for s, b in rows])
        build_s = time.perf_counter() - t0
        total = index.count(agent.name)
        cpu_ms, wall_ms = [], []
        for _ in range(args.rounds):
            for text in texts:
                c0, w0 = time.process_time(), time.perf_counter()
                index.search(agent.name, text, limit=3)
                cpu_ms.append((time.process_time() - c0) * 1000)
                wall_ms.append((time.perf_counter() - w0) * 1000)
        hits = sum(any(re.search(a["fact"], h.body, re.IGNORECASE)
                       for h in index.search(agent.name, a["q"], 3)) for a in answerable)
        index.conn.close()

    def q(values: list[float], p: float) -> float:
        return statistics.quantiles(values, n=100)[int(p) - 1]
    print(f"chunks: {total} ({real} real, {total - real} synthetic); build {build_s:.1f} s")
    print(f"queries: {len(wall_ms)}; wall ms p50 {q(wall_ms, 50):.2f} p95 {q(wall_ms, 95):.2f} "
          f"max {max(wall_ms):.2f}; cpu ms p50 {q(cpu_ms, 50):.2f} p95 {q(cpu_ms, 95):.2f}")
    print(f"top-3 hit rate at this size: {hits}/{len(answerable)} "
          f"({hits / len(answerable):.1%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
