-- Issue 19 item 3: the nodes (daemons) sharing one database, each next to its own Asterisk.
-- epoch grows by one at each start of a node; lease_until is in epoch seconds on the
-- DATABASE's clock (never a node's), so that nodes whose clocks drift agree on who is alive.
CREATE TABLE nodes (
    node_id      TEXT NOT NULL PRIMARY KEY,
    ami_address  TEXT NOT NULL,
    epoch        INTEGER NOT NULL,
    started_s    REAL NOT NULL,
    lease_until  REAL NOT NULL
);

-- Which node, in which of its lives, made (and owns) each attempt. NULL on a single box and
-- on rows older than this migration. Every write to an attempt checks both (issue 19):
-- a node given up for dead that comes back cannot overwrite what a survivor decided.
ALTER TABLE call_attempts ADD COLUMN node_id TEXT;
ALTER TABLE call_attempts ADD COLUMN node_epoch INTEGER;
CREATE INDEX call_attempts_node ON call_attempts(node_id, node_epoch);
