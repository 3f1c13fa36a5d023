"""An agent's knowledge base: sources read into chunks, indexed with SQLite FTS5."""
