-- Issue 19: the locked part of a cluster claim in one statement (store/cluster_claim.py).
-- The caller has picked its contacts (FOR UPDATE SKIP LOCKED, in the same transaction,
-- before this lock: the pick never waits) and passes them in. Then, as the claim did
-- statement by statement before: lock the campaign's pacing row, read the database's clock
-- once the lock is held, refill the token bucket, check the node's lease and the live count
-- against max_concurrent, insert the attempt under the one-live-attempt-per-number index,
-- and back off a contact whose number is live elsewhere (its attempt id, unused, goes to
-- the next one). Run server-side (static SQL: its plans are cached), the pacing row every
-- node queues for is held over no client round trip but the COMMIT's.
-- PostgreSQL only: SQLite claims through the dialer's own path.
-- @postgresql
CREATE FUNCTION televox_take(
    p_campaign INTEGER, p_pinned DOUBLE PRECISION, p_rate DOUBLE PRECISION, p_max INTEGER,
    p_burst DOUBLE PRECISION, p_overdraw BOOLEAN, p_node TEXT, p_epoch INTEGER, p_backoff_s DOUBLE PRECISION,
    p_id TEXT, p_contacts INTEGER[], p_phones TEXT[], p_positions INTEGER[],
    p_passes INTEGER[])
RETURNS TABLE (out_reason TEXT, out_contact INTEGER, out_backed INTEGER)
LANGUAGE plpgsql AS $$
DECLARE
    v_pacing RECORD;
    v_now DOUBLE PRECISION;
    v_tokens DOUBLE PRECISION;
    v_live BIGINT;
    v_stamp TEXT;
    v_later TEXT;
    v_took INTEGER;
    v_backed INTEGER := 0;
BEGIN
    SELECT cp.tokens, cp.refilled_s INTO v_pacing FROM campaign_pacing cp
     WHERE cp.campaign_id = p_campaign FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO campaign_pacing(campaign_id, tokens, refilled_s)
        VALUES (p_campaign, p_burst,
                COALESCE(p_pinned, EXTRACT(EPOCH FROM clock_timestamp())))
        ON CONFLICT (campaign_id) DO NOTHING;
        SELECT cp.tokens, cp.refilled_s INTO v_pacing FROM campaign_pacing cp
         WHERE cp.campaign_id = p_campaign FOR UPDATE;
    END IF;
    -- The bucket's time never goes back (a pinned time older than the last claim's would
    -- refill the same seconds twice).
    v_now := GREATEST(COALESCE(p_pinned, EXTRACT(EPOCH FROM clock_timestamp())),
                      v_pacing.refilled_s);
    v_tokens := LEAST(p_burst, v_pacing.tokens + (v_now - v_pacing.refilled_s) * p_rate / 60.0);
    -- An overdraw (run-now: an operator asked for now) may take the bucket into debt down
    -- to -max_concurrent: it skips the wait, never the count.
    IF v_tokens < (CASE WHEN p_overdraw THEN 1.0 - p_max ELSE 1.0 END) THEN
        RETURN QUERY SELECT 'paced'::TEXT, NULL::INTEGER, 0;
        RETURN;
    END IF;
    IF p_node IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM nodes n WHERE n.node_id = p_node AND n.epoch = p_epoch
               AND n.lease_until > EXTRACT(EPOCH FROM clock_timestamp())) THEN
        RETURN QUERY SELECT 'no_lease'::TEXT, NULL::INTEGER, 0;
        RETURN;
    END IF;
    SELECT COUNT(*) INTO v_live FROM call_attempts a WHERE a.campaign_id = p_campaign
       AND a.status IN ('intent', 'originated', 'ringing', 'answered');
    IF v_live >= p_max THEN
        RETURN QUERY SELECT 'full'::TEXT, NULL::INTEGER, 0;
        RETURN;
    END IF;
    v_stamp := to_char(to_timestamp(v_now) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"');
    v_later := to_char(to_timestamp(v_now + p_backoff_s) AT TIME ZONE 'UTC',
                       'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"');
    FOR v_i IN 1 .. COALESCE(array_length(p_contacts, 1), 0) LOOP
        INSERT INTO call_attempts(id, campaign_id, contact_id, phone, phone_position,
                                  retry_pass, status, created_at, gate_reason, node_id,
                                  node_epoch)
        VALUES (p_id, p_campaign, p_contacts[v_i], p_phones[v_i], p_positions[v_i],
                p_passes[v_i], 'intent', v_stamp, 'cluster claim', p_node, p_epoch)
        ON CONFLICT (phone) WHERE status IN ('intent', 'originated', 'ringing', 'answered')
        DO NOTHING;
        GET DIAGNOSTICS v_took = ROW_COUNT;
        IF v_took = 1 THEN
            UPDATE contacts SET status = 'calling', last_attempt_at = v_stamp,
                   updated_at = v_stamp WHERE id = p_contacts[v_i];
            UPDATE campaign_pacing SET tokens = v_tokens - 1.0, refilled_s = v_now
             WHERE campaign_id = p_campaign;
            RETURN QUERY SELECT 'claimed'::TEXT, p_contacts[v_i], v_backed;
            RETURN;
        END IF;
        -- The number is live elsewhere (another campaign, inbound): this contact waits.
        v_backed := v_backed + 1;
        UPDATE contacts SET next_eligible_at = v_later, updated_at = v_stamp
         WHERE id = p_contacts[v_i];
    END LOOP;
    RETURN QUERY SELECT 'empty'::TEXT, NULL::INTEGER, v_backed;
END $$;
-- @end
