-- Issue 19 item 7: each node's voice capacity (capacity.conversations, issue 14), written
-- when it registers, so that `televox nodes list`, /status and /metrics show what every
-- box can hold. NULL: a node without voice engines (no conversations to bound).
ALTER TABLE nodes ADD COLUMN capacity INTEGER;
