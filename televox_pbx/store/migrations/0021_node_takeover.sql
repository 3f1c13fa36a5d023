-- Issue 19 item 4: a dead node's calls (store/node_takeover.py, campaigns/node_reconcile.py).
-- A survivor takes a node whose lease expired over once: it bumps that node's epoch and
-- records itself here, in one conditional UPDATE (two survivors cannot both win). A new
-- start of the node clears both columns.
ALTER TABLE nodes ADD COLUMN taken_over_by TEXT;
ALTER TABLE nodes ADD COLUMN taken_over_s REAL;

-- An attempt a survivor adopted: its channel lives on pbx_node's Asterisk (not on that of
-- node_id, its owner now), and lost_at is when pbx_node's lease ran out (database clock,
-- epoch seconds): the bound from which an unreachable node's calls are given up.
ALTER TABLE call_attempts ADD COLUMN pbx_node TEXT;
ALTER TABLE call_attempts ADD COLUMN lost_at REAL;
