-- Contact imports and DNC audit lookups (engineer G).

-- One row per import run: counts only (the rejected rows go to a rejects CSV / the summary).
CREATE TABLE import_runs (
    id            INTEGER PRIMARY KEY,
    campaign_id   INTEGER REFERENCES campaigns(id) ON DELETE CASCADE,
    source        TEXT NOT NULL,
    origin        TEXT NOT NULL DEFAULT '',
    rows          INTEGER NOT NULL,
    added         INTEGER NOT NULL,
    phones_added  INTEGER NOT NULL,
    invalid       INTEGER NOT NULL,
    duplicate     INTEGER NOT NULL,
    dnc           INTEGER NOT NULL,
    actor         TEXT NOT NULL DEFAULT 'system',
    at            TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
);
CREATE INDEX import_runs_campaign ON import_runs(campaign_id, at);

CREATE INDEX dnc_audit_number ON dnc_audit(workspace, e164, at);
