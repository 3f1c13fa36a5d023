-- Contact groups, SMS threads and IVR answers (issue 16).

-- Named groups of people, reused across campaigns. A member is not a campaign contact:
-- a campaign that targets the group gets a contact row per member when it starts, and
-- later members join a running campaign as they are added.
CREATE TABLE contact_groups (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
);

CREATE TABLE group_members (
    id            INTEGER PRIMARY KEY,
    group_id      INTEGER NOT NULL REFERENCES contact_groups(id) ON DELETE CASCADE,
    name          TEXT,
    first_name    TEXT,
    last_name     TEXT,
    email         TEXT,
    timezone      TEXT,
    variables_json TEXT NOT NULL DEFAULT '{}',
    added_at      TEXT NOT NULL
);
CREATE INDEX group_members_group ON group_members(group_id, id);

-- A member's numbers, deduplicated by E.164 inside each group.
CREATE TABLE group_member_phones (
    member_id     INTEGER NOT NULL REFERENCES group_members(id) ON DELETE CASCADE,
    group_id      INTEGER NOT NULL REFERENCES contact_groups(id) ON DELETE CASCADE,
    position      INTEGER NOT NULL CHECK (position BETWEEN 1 AND 10),
    e164          TEXT NOT NULL,
    UNIQUE (member_id, position),
    UNIQUE (group_id, e164)
);

-- SMS: an attempt is a call or a message; both hold the one-live-attempt claim on the
-- number while they are in flight.
ALTER TABLE call_attempts ADD COLUMN channel TEXT NOT NULL DEFAULT 'voice';

-- Every text sent or received, in order per number: the thread the agent answers in.
-- kind: campaign | single | reply | confirmation (out), inbound (in).
CREATE TABLE sms_messages (
    id            INTEGER PRIMARY KEY,
    campaign_id   INTEGER REFERENCES campaigns(id) ON DELETE SET NULL,
    contact_id    INTEGER REFERENCES contacts(id) ON DELETE SET NULL,
    attempt_id    TEXT,
    e164          TEXT NOT NULL,
    direction     TEXT NOT NULL CHECK (direction IN ('out', 'in')),
    kind          TEXT NOT NULL,
    body          TEXT NOT NULL,
    -- held: a reply waiting for the calling window; superseded: a held reply made stale
    -- by a newer text, sent later (its own row), or dropped (the number opted out).
    status        TEXT NOT NULL CHECK (status IN ('sent', 'failed', 'received', 'held',
                                                  'superseded')),
    reason        TEXT,
    at            TEXT NOT NULL
);
CREATE INDEX sms_messages_number ON sms_messages(e164, id);
CREATE INDEX sms_messages_contact ON sms_messages(campaign_id, contact_id, id);

-- IVR answers: one row per question answered on a call (a key, or a recorded answer).
CREATE TABLE ivr_answers (
    id            INTEGER PRIMARY KEY,
    attempt_id    TEXT NOT NULL REFERENCES call_attempts(id) ON DELETE CASCADE,
    campaign_id   INTEGER REFERENCES campaigns(id) ON DELETE SET NULL,
    contact_id    INTEGER REFERENCES contacts(id) ON DELETE SET NULL,
    question      TEXT NOT NULL,
    digit         TEXT,
    recording     TEXT,
    at            TEXT NOT NULL
);
CREATE INDEX ivr_answers_attempt ON ivr_answers(attempt_id, id);
CREATE INDEX ivr_answers_campaign ON ivr_answers(campaign_id, attempt_id);

-- "Skip contacts answered in the last N days, across campaigns": one indexed lookup.
CREATE INDEX call_attempts_phone_answered ON call_attempts(phone, answered_at);
