-- Dialer controls and crash-safe bookkeeping (engineer H).
ALTER TABLE campaigns ADD COLUMN run_now_requested INTEGER NOT NULL DEFAULT 0;
ALTER TABLE campaigns ADD COLUMN state_changed_at TEXT;
CREATE INDEX callbacks_contact ON callbacks(contact_id, status);
