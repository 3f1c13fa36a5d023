"""Knowledge sources read into chunks: Markdown and text (chunked at headings and
paragraphs, about 300-500 characters), PDF (its text, through pypdf), and FAQ YAML (one
chunk per question/answer pair). A bad source raises SourceError naming the file."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

MAX_SOURCE_BYTES = 5 * 1024 * 1024
CHUNK_MIN, CHUNK_MAX = 300, 500
SUFFIXES = (".md", ".markdown", ".txt", ".pdf", ".yaml", ".yml")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


class SourceError(Exception):
    """A source that cannot be indexed; the message names the file."""


@dataclass(frozen=True, slots=True)
class Chunk:
    body: str
    question: str = ""  # an FAQ pair's question
    answer: str = ""  # an FAQ pair's answer, spoken as is on a clear match


def expand(paths: list[Path]) -> list[Path]:
    """Files as listed; a folder becomes the source files in it (recursively, sorted)."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower()
                          in SUFFIXES)
        else:
            out.append(path)
    return out


def read_bytes(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_SOURCE_BYTES:
            raise SourceError(f"{path}: {size} bytes, over the {MAX_SOURCE_BYTES} byte limit")
        return path.read_bytes()
    except OSError as exc:
        raise SourceError(f"{path}: cannot read ({exc.strerror or type(exc).__name__})") \
            from exc


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def chunks_of(path: Path, data: bytes) -> list[Chunk]:
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        chunks = _faq(path, data)
    elif suffix == ".pdf":
        chunks = chunk_text(_pdf_text(path, data))
    elif suffix in (".md", ".markdown", ".txt"):
        try:
            chunks = chunk_text(data.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise SourceError(f"{path}: not UTF-8 text") from exc
    else:
        raise SourceError(f"{path}: unknown kind of source (use {', '.join(SUFFIXES)})")
    if not chunks:
        raise SourceError(f"{path}: no text in it")
    return chunks


def _faq(path: Path, data: bytes) -> list[Chunk]:
    try:
        pairs = yaml.safe_load(data.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise SourceError(f"{path}: not a YAML file ({type(exc).__name__})") from exc
    if pairs is None:
        return []
    if not isinstance(pairs, list):
        raise SourceError(f"{path}: an FAQ file is a list of question/answer pairs")
    out = []
    for n, pair in enumerate(pairs, 1):
        q = pair.get("question") if isinstance(pair, dict) else None
        a = pair.get("answer") if isinstance(pair, dict) else None
        if not (isinstance(q, str) and q.strip() and isinstance(a, str) and a.strip()):
            raise SourceError(f"{path}: entry {n} needs a question and an answer (text)")
        q, a = " ".join(q.split()), " ".join(a.split())
        out.append(Chunk(body=f"{q} {a}", question=q, answer=a))
    return out


def _pdf_text(path: Path, data: bytes) -> str:
    import io

    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        return "\n\n".join(page.extract_text() or "" for page in reader.pages)
    except Exception as exc:  # pypdf raises many kinds on a broken file
        raise SourceError(f"{path}: unreadable PDF ({type(exc).__name__})") from exc


def chunk_text(text: str) -> list[Chunk]:
    """Paragraphs under their heading, packed into chunks of at most CHUNK_MAX characters
    (a chunk closes once it has CHUNK_MIN and the next paragraph would overflow it). Each
    chunk starts with its heading, which carries the words a question uses ("refund")."""
    out: list[Chunk] = []
    heading, current = "", ""

    def flush() -> None:
        nonlocal current
        if current.strip():
            out.append(Chunk(body=f"{heading}: {current}" if heading else current))
        current = ""

    for block in re.split(r"\n\s*\n", text):
        lines = [ln for ln in block.strip().splitlines() if ln.strip()]
        while lines and (m := _HEADING.match(lines[0])):
            flush()
            heading = m.group(1)
            lines = lines[1:]
        para = " ".join(" ".join(lines).split())
        for piece in _pieces(para):
            if current and len(current) + 1 + len(piece) > CHUNK_MAX:
                flush()
            current = f"{current} {piece}".strip()
            if len(current) >= CHUNK_MIN:
                flush()
    flush()
    return out


def _pieces(para: str) -> list[str]:
    """A paragraph, or its sentences packed up to CHUNK_MAX when it is longer."""
    if len(para) <= CHUNK_MAX:
        return [para] if para else []
    out, cur = [], ""
    for sentence in _SENTENCE_END.split(para):
        while len(sentence) > CHUNK_MAX:  # one endless sentence: cut at a space
            cut = sentence.rfind(" ", 0, CHUNK_MAX)
            cut = cut if cut > 0 else CHUNK_MAX
            out.append(sentence[:cut])
            sentence = sentence[cut:].strip()
        if cur and len(cur) + 1 + len(sentence) > CHUNK_MAX:
            out.append(cur)
            cur = ""
        cur = f"{cur} {sentence}".strip()
    if cur:
        out.append(cur)
    return out
