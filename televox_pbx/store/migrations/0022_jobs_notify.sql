-- Issue 19 items 5 and 6: jobs that run once across the nodes, and every node's events
-- reaching every node.

-- A job that must run on one node at a time (the retention purge) is held under a lease
-- row, taken and renewed by one conditional UPSERT on the DATABASE's clock (epoch seconds,
-- like nodes.lease_until). next_run_at is the job's schedule, shared by the nodes: whoever
-- takes the lease once it is due runs it. No session advisory locks: they break behind
-- pgbouncer's transaction pooling.
CREATE TABLE job_leases (
    name          TEXT NOT NULL PRIMARY KEY,
    holder_node   TEXT NOT NULL,
    holder_epoch  INTEGER NOT NULL,
    expires_at    REAL NOT NULL,
    next_run_at   REAL NOT NULL
);

-- A webhook delivery being sent is claimed by one node ("node:epoch") until claim_until
-- (database clock): two nodes never send the same delivery, and a dead node's claim lapses.
ALTER TABLE webhook_deliveries ADD COLUMN claim_node TEXT;
ALTER TABLE webhook_deliveries ADD COLUMN claim_until REAL;

-- The outbox's cursor on PostgreSQL is (transaction id, row id), not the row id alone: ids
-- are handed out at insert but become visible at commit, so with several writers a smaller
-- id can appear after a bigger one was read. Rows are read only once every transaction
-- older than them has ended (pg_snapshot_xmin), in (tx, id) order: none is ever skipped.
-- Rows from before this migration carry tx 0 and are read by id, as before.
ALTER TABLE webhook_cursors ADD COLUMN last_tx BIGINT NOT NULL DEFAULT 0;
-- @postgresql
ALTER TABLE contact_events ADD COLUMN tx BIGINT NOT NULL DEFAULT 0;
ALTER TABLE contact_events ALTER COLUMN tx SET DEFAULT (pg_current_xact_id()::text::bigint);
CREATE INDEX contact_events_tx ON contact_events(tx, id);
ALTER TABLE campaign_state_log ADD COLUMN tx BIGINT NOT NULL DEFAULT 0;
ALTER TABLE campaign_state_log ALTER COLUMN tx SET DEFAULT (pg_current_xact_id()::text::bigint);
CREATE INDEX campaign_state_log_tx ON campaign_state_log(tx, id);

-- Wake the other nodes (their dashboards' SSE hub and webhook outbox) when an event is
-- written: one NOTIFY per statement on channel televox_events, delivered at commit, with
-- the table's name and the highest new id only (a payload is limited to 8000 bytes, and a
-- notification is not durable: the readers poll as well). Not on call_attempts: every
-- claim would then take NOTIFY's commit-time lock, which serialises the notifying commits.
CREATE FUNCTION televox_notify_rows() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE top BIGINT;
BEGIN
    SELECT MAX(id) INTO top FROM new_rows;
    IF top IS NOT NULL THEN
        PERFORM pg_notify('televox_events', TG_TABLE_NAME || ':' || top);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER contact_events_notify AFTER INSERT ON contact_events
REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION televox_notify_rows();
CREATE TRIGGER campaign_state_log_notify AFTER INSERT ON campaign_state_log
REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION televox_notify_rows();
-- @end
