-- Televox PBX schema v1. Timestamps are ISO-8601 UTC text; phones are E.164.

CREATE TABLE campaigns (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    state         TEXT NOT NULL DEFAULT 'IDLE'
                  CHECK (state IN ('IDLE','SCHEDULED','RUNNING','PAUSED','COMPLETED')),
    scheduled_at  TEXT,
    config_json   TEXT NOT NULL DEFAULT '{}',
    current_pass  INTEGER NOT NULL DEFAULT 1,
    pass_started_at TEXT,
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    updated_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
);

CREATE TABLE contacts (
    id            INTEGER PRIMARY KEY,
    campaign_id   INTEGER NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    name          TEXT,
    first_name    TEXT,
    last_name     TEXT,
    email         TEXT,
    timezone      TEXT,
    variables_json TEXT NOT NULL DEFAULT '{}',
    status        TEXT NOT NULL DEFAULT 'pending',
    phone_index   INTEGER NOT NULL DEFAULT 1,
    retry_pass    INTEGER NOT NULL DEFAULT 1,
    last_disposition TEXT,
    last_attempt_at TEXT,
    last_answered_at TEXT,
    next_eligible_at TEXT,
    callback_at   TEXT,
    notes         TEXT,
    source        TEXT NOT NULL DEFAULT 'csv',
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    updated_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
);
CREATE INDEX contacts_dial_queue ON contacts(campaign_id, status, retry_pass, next_eligible_at, id);

CREATE TABLE contact_phones (
    id            INTEGER PRIMARY KEY,
    contact_id    INTEGER NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    campaign_id   INTEGER NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    position      INTEGER NOT NULL CHECK (position BETWEEN 1 AND 10),
    e164          TEXT NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    last_status   TEXT,
    UNIQUE (contact_id, position),
    UNIQUE (campaign_id, e164)
);
CREATE INDEX contact_phones_e164 ON contact_phones(e164);

CREATE TABLE call_attempts (
    id            TEXT PRIMARY KEY,           -- the attempt UUID
    campaign_id   INTEGER REFERENCES campaigns(id) ON DELETE SET NULL,
    contact_id    INTEGER REFERENCES contacts(id) ON DELETE SET NULL,
    phone         TEXT NOT NULL,
    phone_position INTEGER,
    retry_pass    INTEGER,
    direction     TEXT NOT NULL DEFAULT 'outbound' CHECK (direction IN ('outbound','inbound')),
    status        TEXT NOT NULL DEFAULT 'intent',
    failure       TEXT,
    hangup_cause  INTEGER,
    sip_code      INTEGER,
    amd_status    TEXT,
    amd_cause     TEXT,
    disposition   TEXT,
    notes         TEXT,
    turns         INTEGER NOT NULL DEFAULT 0,
    duration_s    REAL,
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    originated_at TEXT,
    ringing_at    TEXT,
    answered_at   TEXT,
    hangup_at     TEXT,
    gate_reason   TEXT
);
CREATE INDEX call_attempts_status ON call_attempts(status);
CREATE INDEX call_attempts_campaign ON call_attempts(campaign_id, status);
CREATE INDEX call_attempts_contact ON call_attempts(contact_id);

CREATE TABLE dnc (
    e164          TEXT NOT NULL,
    workspace     TEXT NOT NULL DEFAULT 'default',
    reason        TEXT NOT NULL DEFAULT '',
    source        TEXT NOT NULL DEFAULT 'manual',
    added_by      TEXT NOT NULL DEFAULT 'system',
    added_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    PRIMARY KEY (workspace, e164)
);

CREATE TABLE dnc_audit (
    id            INTEGER PRIMARY KEY,
    workspace     TEXT NOT NULL DEFAULT 'default',
    e164          TEXT NOT NULL,
    action        TEXT NOT NULL CHECK (action IN ('add','remove')),
    reason        TEXT NOT NULL DEFAULT '',
    source        TEXT NOT NULL DEFAULT 'manual',
    actor         TEXT NOT NULL DEFAULT 'system',
    at            TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
);

CREATE TABLE gate_decisions (
    id            INTEGER PRIMARY KEY,
    campaign_id   INTEGER,
    contact_id    INTEGER,
    phone         TEXT NOT NULL,
    allowed       INTEGER NOT NULL,
    reason        TEXT NOT NULL,
    detail        TEXT NOT NULL DEFAULT '',
    at            TEXT NOT NULL
);
CREATE INDEX gate_decisions_contact ON gate_decisions(contact_id);

CREATE TABLE transcripts (
    id            INTEGER PRIMARY KEY,
    attempt_id    TEXT NOT NULL REFERENCES call_attempts(id) ON DELETE CASCADE,
    turn          INTEGER NOT NULL,
    speaker       TEXT NOT NULL CHECK (speaker IN ('agent','callee','system')),
    text          TEXT NOT NULL,
    started_at    TEXT,
    ended_at      TEXT,
    interrupted   INTEGER NOT NULL DEFAULT 0,
    latency_json  TEXT
);
CREATE INDEX transcripts_attempt ON transcripts(attempt_id, turn);

CREATE TABLE recordings (
    id            INTEGER PRIMARY KEY,
    attempt_id    TEXT NOT NULL REFERENCES call_attempts(id) ON DELETE CASCADE,
    path          TEXT NOT NULL,
    seconds       REAL,
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
);

CREATE TABLE callbacks (
    id            INTEGER PRIMARY KEY,
    attempt_id    TEXT REFERENCES call_attempts(id) ON DELETE SET NULL,
    contact_id    INTEGER REFERENCES contacts(id) ON DELETE CASCADE,
    due_at        TEXT NOT NULL,
    zone          TEXT,
    status        TEXT NOT NULL DEFAULT 'pending',
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
);
CREATE INDEX callbacks_due ON callbacks(status, due_at);

CREATE TABLE ami_events (
    id            INTEGER PRIMARY KEY,
    received_at   TEXT NOT NULL,
    event         TEXT,
    call_id       TEXT,
    fields_json   TEXT NOT NULL
);
CREATE INDEX ami_events_time ON ami_events(received_at);
CREATE INDEX ami_events_call ON ami_events(call_id);

CREATE TABLE webhook_deliveries (
    id            INTEGER PRIMARY KEY,
    url           TEXT NOT NULL,
    event         TEXT NOT NULL,
    payload_json  TEXT NOT NULL,
    status        TEXT NOT NULL DEFAULT 'pending',
    attempts      INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT,
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    delivered_at  TEXT
);

CREATE TABLE daemon_state (
    key           TEXT PRIMARY KEY,
    value         TEXT NOT NULL
);
