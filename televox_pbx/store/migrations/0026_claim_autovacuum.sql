-- Issue 19: autovacuum that keeps up with claims (PostgreSQL only).
-- Every claim writes a contact and an attempt, and every state of a call writes the
-- attempt again; each write leaves a dead version behind, with index entries in the very
-- ranges each claim reads (the due contacts, the campaign's live attempts). By default a
-- table is vacuumed only once a fifth of it is dead, so those reads grew slower with every
-- claim: three nodes claiming flat out fell to 550 claims/s within 40 s on the 2-core box,
-- where vacuuming after a thousand or so dead rows kept them at 2,300/s (bench/
-- bench_cluster_claims.py; README "Several boxes" also sets autovacuum_naptime).
-- @postgresql
ALTER TABLE call_attempts SET (autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000, autovacuum_vacuum_insert_scale_factor = 0.01,
    autovacuum_vacuum_insert_threshold = 1000, autovacuum_analyze_scale_factor = 0.02);
ALTER TABLE contacts SET (autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000, autovacuum_vacuum_insert_scale_factor = 0.01,
    autovacuum_vacuum_insert_threshold = 1000);
-- @end
