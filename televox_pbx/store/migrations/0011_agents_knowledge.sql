-- Issue 18: each agent's knowledge base (SQLite FTS5, bm25) and the custom tool calls.

-- One row per source file of an agent: its content hash decides whether it is re-read.
-- The knowledge index is SQLite FTS5. With a PostgreSQL store it lives in a SQLite file of
-- each box's own (knowledge/index.py knowledge_db_path): the sources are that box's files.
-- @sqlite
CREATE TABLE knowledge_sources (
    agent TEXT NOT NULL,
    path TEXT NOT NULL,
    sha256 TEXT,                 -- NULL while the source is in error
    chunks INTEGER NOT NULL DEFAULT 0,
    error TEXT,                  -- why the source could not be indexed (names no content)
    indexed_at TEXT NOT NULL,
    PRIMARY KEY (agent, path)
);

-- The chunks. `question` holds an FAQ pair's question (indexed, weighted higher), `body`
-- the text that enters the prompt, `answer` an FAQ answer the agent may speak as is.
CREATE VIRTUAL TABLE knowledge_chunks USING fts5(
    agent UNINDEXED,
    source UNINDEXED,
    question,
    body,
    answer UNINDEXED,
    tokenize = 'porter unicode61'
);
-- @end

-- Every custom tool call, kept with its call: never the response's content.
CREATE TABLE tool_calls (
    id INTEGER PRIMARY KEY,
    call_id TEXT NOT NULL,
    agent TEXT NOT NULL,
    tool TEXT NOT NULL,
    arguments TEXT NOT NULL,     -- JSON, as the model gave them
    status TEXT NOT NULL,        -- ok | timeout | http_error | bad_response | too_large | error
    http_status INTEGER,
    latency_ms INTEGER NOT NULL,
    response_bytes INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);
CREATE INDEX tool_calls_call ON tool_calls(call_id);

-- Which number an inbound call was made to and which agent answered it (the attempt row
-- of an inbound call has no campaign): for one history per person.
CREATE TABLE inbound_routes (
    call_id TEXT PRIMARY KEY,
    number TEXT NOT NULL,
    agent TEXT NOT NULL
);
