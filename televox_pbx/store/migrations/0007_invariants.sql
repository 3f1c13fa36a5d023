-- The store enforces the invariants (issue 12). Standard SQL that PostgreSQL also takes.

-- What the PBX said when the call ended, kept as soon as the Hangup is seen and before the
-- voice session's result arrives: a crash in between then still knows the real end time.
ALTER TABLE call_attempts ADD COLUMN end_status TEXT;
ALTER TABLE call_attempts ADD COLUMN end_failure TEXT;

-- Inbound caller IDs are stored in E.164 from now on; older rows may hold raw caller IDs.
-- A store that already holds two live attempts to one number (the defect this fixes) keeps
-- the newest live and closes the others, so the unique index below can be built.
UPDATE call_attempts SET status = 'failed', failure = 'other',
       notes = 'closed by migration 0007: a second live attempt to the same number'
 WHERE status IN ('intent', 'originated', 'ringing', 'answered')
   AND EXISTS (SELECT 1 FROM call_attempts b
                WHERE b.phone = call_attempts.phone
                  AND b.status IN ('intent', 'originated', 'ringing', 'answered')
                  AND (b.created_at > call_attempts.created_at
                       OR (b.created_at = call_attempts.created_at AND b.id > call_attempts.id)));

-- At most one live attempt per number, across campaigns, callbacks, call-now and inbound.
CREATE UNIQUE INDEX call_attempts_one_live ON call_attempts(phone)
    WHERE status IN ('intent', 'originated', 'ringing', 'answered');

-- One row per change an outcome, a refusal or recovery makes to a contact: the audit trail
-- written in the same transaction as the change itself.
CREATE TABLE contact_events (
    id            INTEGER PRIMARY KEY,
    contact_id    INTEGER NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    attempt_id    TEXT,
    event         TEXT NOT NULL,
    from_status   TEXT,
    to_status     TEXT NOT NULL,
    detail        TEXT NOT NULL DEFAULT '',
    at            TEXT NOT NULL
);
CREATE INDEX contact_events_contact ON contact_events(contact_id, id);
