"""Helpers for the knowledge tests: a migrated store, a built index, a tiny PDF."""

from __future__ import annotations

import asyncio
from pathlib import Path

import yaml

from televox_pbx.config.agent import AgentFile
from televox_pbx.config.loader import load_agents
from televox_pbx.knowledge.index import KnowledgeIndex, open_index
from televox_pbx.store import Store

REPO = Path(__file__).resolve().parents[1]
QUESTIONS = REPO / "tests" / "fixtures" / "knowledge" / "questions.yaml"


async def _migrate(path: Path) -> None:
    store = await Store.open(path)
    await store.close()


def new_index(tmp: Path) -> KnowledgeIndex:
    path = tmp / "store.db"
    asyncio.run(_migrate(path))
    return KnowledgeIndex(open_index(path))


async def new_index_async(tmp: Path) -> KnowledgeIndex:
    path = tmp / "store.db"
    await _migrate(path)
    return KnowledgeIndex(open_index(path))


def front_desk() -> AgentFile:
    return load_agents(REPO / "config" / "agents")[0]["front-desk"]


def question_set() -> tuple[list[dict[str, str]], list[str]]:
    data = yaml.safe_load(QUESTIONS.read_text(encoding="utf-8"))
    return data["answerable"], data["unanswerable"]


def tiny_pdf(text: str) -> bytes:
    """A one-page PDF showing `text` in Helvetica, with a correct xref table."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, xref)
    return bytes(out)
