"""The knowledge base: sources chunked, indexed in SQLite FTS5 (bm25, porter unicode61),
re-indexed on a content change only, bad sources named while the rest stays searchable,
`televox knowledge build|search`, and the retrieval top-3 hit rate of the test set."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from knowledge_support import REPO, front_desk, new_index, question_set, tiny_pdf

from televox_pbx.cli import main
from televox_pbx.config.agent import AgentFile
from televox_pbx.knowledge import sources
from televox_pbx.knowledge.grounding import Grounding
from televox_pbx.knowledge.sources import CHUNK_MAX, chunk_text


def _agent(base: Path, *paths: str) -> AgentFile:
    return AgentFile(name="a", persona_name="Ava", business="B", knowledge=list(paths),
                     base_dir=base)


def test_text_is_chunked_at_headings_and_paragraphs() -> None:
    para = "The clinic is bright and friendly. " * 5  # ~175 characters
    long = "Every sentence here is short. " * 40  # ~1200 characters, one paragraph
    text = f"# Visits\n\n{para}\n\n{para}\n\n{para}\n\n## Billing\n\n{long}\n"
    chunks = chunk_text(text)
    assert all(len(c.body) <= CHUNK_MAX + len("Billing: ") for c in chunks)
    assert [c.body.split(":")[0] for c in chunks] == ["Visits", "Visits", "Billing",
                                                      "Billing", "Billing"]
    assert all(len(c.body) >= 150 for c in chunks)
    assert " ".join(c.body.removeprefix("Billing: ") for c in chunks[2:]).split() \
        == long.split()


def test_faq_pairs_are_one_chunk_each_with_their_question(tmp_path: Path) -> None:
    path = tmp_path / "faq.yaml"
    path.write_text("- question: Do you open late?\n  answer: Until 8 pm on Thursdays.\n")
    [chunk] = sources.chunks_of(path, path.read_bytes())
    assert (chunk.question, chunk.answer) == ("Do you open late?", "Until 8 pm on Thursdays.")


def test_bad_sources_are_named_and_the_rest_stays_in_use(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "good.md").write_text("# Parking\n\nFree parking behind the building.\n")
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4 not really a pdf")
    (docs / "empty.txt").write_text("\n\n")
    (docs / "big.txt").write_text("x" * 2000)
    (docs / "scan.pdf").write_bytes(tiny_pdf("Saturday hours are 9 to 1."))
    monkeypatch.setattr(sources, "MAX_SOURCE_BYTES", 1000)
    index = new_index(tmp_path)
    report = index.build(_agent(tmp_path, "docs"))
    assert sorted(e.split(":")[0] for e in report.errors) == sorted(
        str(docs / n) for n in ("big.txt", "broken.pdf", "empty.txt"))
    assert any("over the 1000 byte limit" in e for e in report.errors)
    assert any("unreadable PDF" in e for e in report.errors)
    assert index.errors("a") == sorted(report.errors)
    assert index.search("a", "where do I park")[0].body.startswith("Parking:")
    assert "Saturday hours are 9 to 1." in index.search("a", "saturday hours")[0].body


def test_a_source_is_read_again_only_when_its_content_changes(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("Whitening costs 350 dollars.\n")
    (tmp_path / "b.md").write_text("Crowns cost 1,100 dollars.\n")
    index = new_index(tmp_path)
    agent = _agent(tmp_path, "a.md", "b.md")
    first = index.build(agent)
    assert (len(first.indexed), first.unchanged, first.chunks) == (2, [], 2)
    again = index.build(agent)
    assert (again.indexed, len(again.unchanged)) == ([], 2)
    (tmp_path / "a.md").write_text("Whitening costs 390 dollars.\n")
    changed = index.build(agent)
    assert changed.indexed == [str(tmp_path / "a.md")]
    assert "390" in index.search("a", "whitening price")[0].body
    assert all("350" not in h.body for h in index.search("a", "whitening"))
    gone = index.build(_agent(tmp_path, "b.md"))
    assert gone.removed == [str(tmp_path / "a.md")] and gone.chunks == 1


def test_queries_of_stop_words_or_quotes_find_nothing_and_never_fail(tmp_path: Path) -> None:
    index = new_index(tmp_path)
    index.build(front_desk())
    assert index.search("front-desk", "what is it you") == []
    assert index.search("front-desk", 'crown" OR NEAR(') != []
    assert index.search("other-agent", "crown") == []


def test_retrieval_top3_hit_rate_on_the_test_set(tmp_path: Path) -> None:
    index = new_index(tmp_path)
    index.build(front_desk())
    answerable, _ = question_set()
    ground = Grounding(index, "front-desk")  # full-text candidates, ranked by coverage
    found = [any(re.search(item["fact"], h.body, re.IGNORECASE)
                 for h in ground.hits(item["q"])[:3])
             for item in answerable]
    rate = sum(found) / len(found)
    print(f"retrieval top-3 hit rate: {rate:.1%} ({sum(found)}/{len(found)})")
    assert rate >= 0.95  # 50/51 measured


def test_cli_build_and_search(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copytree(REPO / "config", tmp_path / "config")
    monkeypatch.chdir(tmp_path)
    assert main(["-c", "config/televox.yaml", "knowledge", "build"]) == 0
    assert "front-desk: 53 chunks; 3 source(s) indexed" in capsys.readouterr().out
    assert main(["-c", "config/televox.yaml", "knowledge", "search", "front-desk",
                 "how much is a porcelain crown"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("1. score ") and "FAQ config/knowledge/front-desk/faq.yaml" in out[0]
    assert "1,100 dollars" in out[1] and len(out) == 7
    assert out[-1] == ("agent says (answer): A porcelain crown costs 1,100 dollars per tooth "
                       "without insurance.")
