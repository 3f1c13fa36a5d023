-- HTTP API (issue 15): the audit log of API changes, call notes, and outgoing webhooks.

-- Who changed what through the API, and when. `actor` is the token's name.
CREATE TABLE api_audit (
    id            INTEGER PRIMARY KEY,
    at            TEXT NOT NULL,
    actor         TEXT NOT NULL,
    action        TEXT NOT NULL,   -- e.g. campaign.start, dnc.add, call.disposition
    target        TEXT NOT NULL DEFAULT '',
    detail_json   TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX api_audit_at ON api_audit(at, id);

-- Feedback notes on a call, one row per note (the attempt's own `notes` column holds the
-- system's notes: recovery, unsent originates).
CREATE TABLE call_notes (
    id            INTEGER PRIMARY KEY,
    attempt_id    TEXT NOT NULL REFERENCES call_attempts(id) ON DELETE CASCADE,
    author        TEXT NOT NULL,
    text          TEXT NOT NULL,
    at            TEXT NOT NULL
);
CREATE INDEX call_notes_attempt ON call_notes(attempt_id, id);

-- Every campaign state change, written by the database in the same transaction as the
-- change (whoever made it: the API, the CLI, the dialer). The webhook outbox reads it.
CREATE TABLE campaign_state_log (
    id            INTEGER PRIMARY KEY,
    campaign_id   INTEGER NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    from_state    TEXT,
    to_state      TEXT NOT NULL,
    at            TEXT NOT NULL
);
-- The two dialects write triggers differently (store/sqlport.py keeps one block each).
-- @sqlite
CREATE TRIGGER campaign_state_logged AFTER UPDATE OF state ON campaigns
WHEN OLD.state IS NOT NEW.state
BEGIN
    INSERT INTO campaign_state_log(campaign_id, from_state, to_state, at)
    VALUES (NEW.id, OLD.state, NEW.state,
            COALESCE(NEW.state_changed_at, strftime('%Y-%m-%dT%H:%M:%fZ','now')));
END;
-- @end
-- @postgresql
CREATE FUNCTION campaign_state_logged() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO campaign_state_log(campaign_id, from_state, to_state, at)
    VALUES (NEW.id, OLD.state, NEW.state,
            COALESCE(NEW.state_changed_at, strftime('%Y-%m-%dT%H:%M:%fZ','now')));
    RETURN NULL;
END $$;
CREATE TRIGGER campaign_state_logged AFTER UPDATE OF state ON campaigns
FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state)
EXECUTE FUNCTION campaign_state_logged();
-- @end

-- webhook_deliveries (0001) is the outbox: one row per event and subscriber, retried until
-- acknowledged or too old. Every attempt goes to webhook_attempts (the delivery log).
ALTER TABLE webhook_deliveries ADD COLUMN event_id TEXT;
ALTER TABLE webhook_deliveries ADD COLUMN subscription TEXT NOT NULL DEFAULT '';
ALTER TABLE webhook_deliveries ADD COLUMN campaign_id INTEGER;
ALTER TABLE webhook_deliveries ADD COLUMN next_attempt_at TEXT;
CREATE UNIQUE INDEX webhook_deliveries_once ON webhook_deliveries(event_id, subscription);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(status, next_attempt_at);

CREATE TABLE webhook_attempts (
    id            INTEGER PRIMARY KEY,
    delivery_id   INTEGER NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
    attempt       INTEGER NOT NULL,
    at            TEXT NOT NULL,
    status_code   INTEGER,
    error         TEXT,
    duration_ms   REAL
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts(delivery_id, attempt);

-- How far the outbox has read each source table (contact_events, campaign_state_log).
CREATE TABLE webhook_cursors (
    source        TEXT PRIMARY KEY,
    last_id       INTEGER NOT NULL
);
-- Events from before this migration are history, not news: start after them.
INSERT INTO webhook_cursors(source, last_id)
SELECT 'contact_events', COALESCE(MAX(id), 0) FROM contact_events;
INSERT INTO webhook_cursors(source, last_id) VALUES ('campaign_state_log', 0);
