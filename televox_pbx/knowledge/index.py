"""The knowledge index in the store: SQLite FTS5, bm25 ranking, tokenizer porter unicode61.

Synchronous on its own sqlite3 connection (the store's database, WAL): a query takes a
few milliseconds, and a build runs at start or from the CLI, never during a call. A
source is re-read only when its content hash changed; a bad one is recorded with its
error and the rest of the index stays in use.
"""

from __future__ import annotations

import logging
import math
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from televox_pbx.config.agent import AgentFile
from televox_pbx.config.settings import DatabaseSettings
from televox_pbx.knowledge.query import expanded, group, query_terms, stems
from televox_pbx.knowledge.sources import (
    SourceError,
    chunks_of,
    content_hash,
    expand,
    read_bytes,
)

log = logging.getLogger(__name__)

# bm25 weights per column (agent, source, question, body, answer). An FAQ pair's question
# is indexed twice (its own column and the body): weighting it higher did not rank the
# test set's questions better (tests/fixtures/knowledge/questions.yaml).
_BM25 = "bm25(knowledge_chunks, 0.0, 0.0, 1.0, 1.0, 0.0)"
BUSINESS_INFO = "business_info"  # the source name of the agent's business_info chunk


@dataclass(frozen=True, slots=True)
class Hit:
    source: str
    body: str
    question: str
    answer: str
    score: float  # bm25 made positive: larger is better
    matched: float  # share of the query's words found in the chunk (0..1)


@dataclass(slots=True)
class BuildReport:
    indexed: list[str] = field(default_factory=list)  # sources read again
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # one line per bad source, naming it
    chunks: int = 0


# The FTS5 tables as migration 0011 makes them in a SQLite store; a PostgreSQL store has no
# FTS5, so there the index is a SQLite file of the box's own, made here.
_OWN_INDEX_DDL = """
CREATE TABLE IF NOT EXISTS knowledge_sources (
    agent TEXT NOT NULL, path TEXT NOT NULL, sha256 TEXT,
    chunks INTEGER NOT NULL DEFAULT 0, error TEXT, indexed_at TEXT NOT NULL,
    PRIMARY KEY (agent, path));
CREATE VIRTUAL TABLE IF NOT EXISTS knowledge_chunks USING fts5(
    agent UNINDEXED, source UNINDEXED, question, body, answer UNINDEXED,
    tokenize = 'porter unicode61');
"""


def knowledge_db_path(database: DatabaseSettings) -> Path:
    """The SQLite store itself, or beside its configured path when the store is PostgreSQL
    (knowledge is derived from this box's files: every box indexes its own)."""
    if database.is_postgres:
        return database.path.with_name("knowledge.db")
    return database.path


def open_index(path: Path) -> sqlite3.Connection:
    """A connection of its own on the index's SQLite file (the store's, migrated, or the
    box's own file beside a PostgreSQL store, made here)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, check_same_thread=False, timeout=10)
    conn.execute("PRAGMA busy_timeout=10000")
    conn.executescript(_OWN_INDEX_DDL)
    return conn


class KnowledgeIndex:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._vocab: dict[str, Vocabulary] = {}

    async def close(self) -> None:
        self.conn.close()

    # --- building ------------------------------------------------------------------

    def build(self, agent: AgentFile, now: datetime | None = None) -> BuildReport:
        report = BuildReport()
        self._vocab.pop(agent.name, None)
        stamp = (now or datetime.now(UTC)).isoformat()
        known = dict(self.conn.execute(
            "SELECT path, sha256 FROM knowledge_sources WHERE agent = ?", (agent.name,)))
        files = expand(agent.knowledge_paths())
        info = " ".join(agent.business_info.split()) if agent.knowledge else ""
        listed = {str(p) for p in files} | ({BUSINESS_INFO} if info else set())
        with self.conn:
            for gone in sorted(set(known) - listed):
                self._drop(agent.name, gone)
                report.removed.append(gone)
            for path in files:
                self._one(agent.name, path, known.get(str(path)), stamp, report)
            if info:
                self._info(agent.name, info, known.get(BUSINESS_INFO), stamp, report)
        report.chunks = self.count(agent.name)
        return report

    def _one(self, agent: str, path: Path, old_hash: str | None, stamp: str,
             report: BuildReport) -> None:
        key = str(path)
        try:
            data = read_bytes(path)
            digest = content_hash(data)
            if digest == old_hash:
                report.unchanged.append(key)
                return
            chunks = chunks_of(path, data)
        except SourceError as exc:
            self._drop(agent, key)
            self.conn.execute(
                "INSERT INTO knowledge_sources(agent, path, sha256, chunks, error, indexed_at)"
                " VALUES (?, ?, NULL, 0, ?, ?)", (agent, key, str(exc), stamp))
            report.errors.append(str(exc))
            log.warning("knowledge source not indexed", extra={"agent": agent,
                                                               "error": str(exc)})
            return
        self._drop(agent, key)
        self.conn.executemany(
            "INSERT INTO knowledge_chunks(agent, source, question, body, answer) "
            "VALUES (?, ?, ?, ?, ?)",
            [(agent, key, c.question, c.body, c.answer) for c in chunks])
        self.conn.execute(
            "INSERT INTO knowledge_sources(agent, path, sha256, chunks, error, indexed_at) "
            "VALUES (?, ?, ?, ?, NULL, ?)", (agent, key, digest, len(chunks), stamp))
        report.indexed.append(key)

    def _info(self, agent: str, info: str, old_hash: str | None, stamp: str,
              report: BuildReport) -> None:
        """business_info, one chunk: the agent answers from it as from its knowledge."""
        digest = content_hash(info.encode("utf-8"))
        if digest == old_hash:
            report.unchanged.append(BUSINESS_INFO)
            return
        self._drop(agent, BUSINESS_INFO)
        self.conn.execute(
            "INSERT INTO knowledge_chunks(agent, source, question, body, answer) "
            "VALUES (?, ?, '', ?, '')", (agent, BUSINESS_INFO, info))
        self.conn.execute(
            "INSERT INTO knowledge_sources(agent, path, sha256, chunks, error, indexed_at) "
            "VALUES (?, ?, ?, 1, NULL, ?)", (agent, BUSINESS_INFO, digest, stamp))
        report.indexed.append(BUSINESS_INFO)

    def _drop(self, agent: str, source: str) -> None:
        self.conn.execute("DELETE FROM knowledge_chunks WHERE agent = ? AND source = ?",
                          (agent, source))
        self.conn.execute("DELETE FROM knowledge_sources WHERE agent = ? AND path = ?",
                          (agent, source))

    def count(self, agent: str) -> int:
        row = self.conn.execute("SELECT COUNT(*) FROM knowledge_chunks WHERE agent = ?",
                                (agent,)).fetchone()
        return int(row[0])

    def errors(self, agent: str) -> list[str]:
        return [str(r[0]) for r in self.conn.execute(
            "SELECT error FROM knowledge_sources WHERE agent = ? AND error IS NOT NULL "
            "ORDER BY path", (agent,))]

    # --- searching -----------------------------------------------------------------

    def search(self, agent: str, text: str, limit: int = 3) -> list[Hit]:
        """The best chunks for what the caller said, best first by bm25; [] when no word
        of it (other than stop words) is in the index. The query holds the question's
        words and their everyday synonyms (knowledge/query.py)."""
        terms = query_terms(text)
        if not terms:
            return []
        match = " OR ".join('"' + t.replace('"', "") + '"' for t in expanded(terms))
        rows = self.conn.execute(
            f"SELECT source, body, question, answer, {_BM25} AS rank FROM knowledge_chunks "
            "WHERE knowledge_chunks MATCH ? AND agent = ? ORDER BY rank LIMIT ?",
            (f"{{question body}}: ({match})", agent, limit)).fetchall()
        return [Hit(str(r[0]), str(r[1]), str(r[2]), str(r[3]), -float(r[4]),
                    matched(terms, str(r[2]) + " " + str(r[1])))
                for r in rows]

    def vocabulary(self, agent: str) -> Vocabulary:
        """How many of the agent's chunks hold each stem (kept until the next build)."""
        vocab = self._vocab.get(agent)
        if vocab is None:
            df: dict[str, int] = {}
            n = 0
            for question, body in self.conn.execute(
                    "SELECT question, body FROM knowledge_chunks WHERE agent = ?", (agent,)):
                n += 1
                for s in stems(f"{question} {body}"):
                    df[s] = df.get(s, 0) + 1
            vocab = self._vocab[agent] = Vocabulary(n, df)
        return vocab


@dataclass(frozen=True, slots=True)
class Vocabulary:
    chunks: int
    df: dict[str, int]  # stem -> chunks that hold it

    def weight(self, group: frozenset[str]) -> float:
        """A word's weight in a question: rarer in the knowledge is more telling, and a
        word the knowledge never uses weighs most (it is what the knowledge lacks)."""
        df = max((self.df.get(s, 0) for s in group), default=0)
        return math.log((self.chunks + 1) / (df + 0.5))


def matched(terms: list[str], text: str) -> float:
    """The share of the query's words (roughly stemmed, with synonyms) found in `text`."""
    held = stems(text)
    return sum(bool(group(t) & held) for t in terms) / len(terms) if terms else 0.0
