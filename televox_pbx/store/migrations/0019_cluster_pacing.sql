-- Issue 19 (several nodes on one PostgreSQL): each campaign's pacing, shared by every node.
-- A claim locks its campaign's row (FOR UPDATE) and spends one token of a bucket refilled
-- at calls_per_minute; the live count against max_concurrent is read under the same lock.
-- Numbered 0019 (the issue) so that it never clashes with migrations added beside it: the
-- runner applies whatever version a store has not recorded, in any order.
CREATE TABLE campaign_pacing (
    campaign_id   INTEGER NOT NULL PRIMARY KEY REFERENCES campaigns(id) ON DELETE CASCADE,
    tokens        REAL NOT NULL,
    refilled_s    REAL NOT NULL     -- epoch seconds of the last refill
);

-- The dial queue reads never-tried contacts first (next_eligible_at NULLS FIRST, SQLite's
-- own order); PostgreSQL's default index order puts NULLs last, so it gets an index in
-- the order the queue reads (SQLite's contacts_dial_queue already serves it).
-- @postgresql
CREATE INDEX contacts_dial_queue_nulls_first
    ON contacts(campaign_id, status, retry_pass, next_eligible_at NULLS FIRST, id);
-- @end
