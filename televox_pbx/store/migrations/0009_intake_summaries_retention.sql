-- Issue 15: call summaries written by the local LLM after hang-up, the webhook intake's
-- replay guard, and the indexes the retention purge and the campaign detail read by.

-- One row per answered call once the summary worker has dealt with it: `done` with the
-- text, or `failed` after its tries (the worker then leaves the call alone).
CREATE TABLE call_summaries (
    attempt_id    TEXT PRIMARY KEY REFERENCES call_attempts(id) ON DELETE CASCADE,
    status        TEXT NOT NULL CHECK (status IN ('done','failed')),
    summary       TEXT,
    tries         INTEGER NOT NULL DEFAULT 0,
    at            TEXT NOT NULL
);
-- The worker's queue: answered calls that have hung up, oldest first.
CREATE INDEX call_attempts_answered_hangup ON call_attempts(hangup_at)
    WHERE answered_at IS NOT NULL;

-- Signed intake requests already accepted, per campaign: a second request with the same
-- event id (or signature) inside the timestamp tolerance is a replay. Rows older than the
-- tolerance are useless (a stale timestamp is refused anyway) and are purged.
CREATE TABLE intake_seen (
    campaign      TEXT NOT NULL,
    key           TEXT NOT NULL,
    at            TEXT NOT NULL,
    PRIMARY KEY (campaign, key)
);
CREATE INDEX intake_seen_at ON intake_seen(at);

-- Retention: finished deliveries older than the setting go, oldest first.
CREATE INDEX webhook_deliveries_created ON webhook_deliveries(created_at);

-- The campaign detail and contact pages on a 100,000-contact campaign (bench/bench_api.py):
-- KPIs read only this covering index, not every attempt row (a plain SEARCH by
-- call_attempts_campaign fetched each row: ~58 ms -> ~20 ms), and a contact page in id
-- order stops at its LIMIT instead of sorting the whole campaign first.
CREATE INDEX call_attempts_kpis
    ON call_attempts(campaign_id, status, answered_at, disposition, duration_s);
-- Its prefix (campaign_id, status) serves everything the old index did (calls in flight).
DROP INDEX call_attempts_campaign;
CREATE INDEX contacts_campaign ON contacts(campaign_id);
