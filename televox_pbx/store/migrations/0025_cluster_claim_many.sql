-- Issue 19: a claim takes up to p_want contacts in one statement (store/cluster_claim.py),
-- so a node with several free conversation slots (run-now, a node catching up) fills them
-- in one round trip and one hold of the campaign's pacing lock, not one of each per call.
-- Everything else is televox_take's (0024): the pacing lock, the database's clock read
-- once it is held, the token bucket, the node's lease, the live count against
-- max_concurrent, the attempt under the one-live-attempt-per-number index, and a backoff
-- for a contact whose number is live elsewhere. Each claimed contact spends one token and
-- one place under max_concurrent; the batch stops where either would run out, exactly
-- where the same claims made one by one would have stopped. The k-th claimed contact
-- gets the k-th id of p_ids. The claims of this version go through it (one claim is
-- p_want 1); televox_take stays for nodes still on the previous version during a rolling
-- upgrade (a later migration may drop it).
-- PostgreSQL only: SQLite claims through the dialer's own path.
-- @postgresql
CREATE FUNCTION televox_take_many(
    p_campaign INTEGER, p_pinned DOUBLE PRECISION, p_rate DOUBLE PRECISION, p_max INTEGER,
    p_burst DOUBLE PRECISION, p_overdraw BOOLEAN, p_node TEXT, p_epoch INTEGER,
    p_backoff_s DOUBLE PRECISION, p_want INTEGER, p_ids TEXT[], p_contacts INTEGER[],
    p_phones TEXT[], p_positions INTEGER[], p_passes INTEGER[])
RETURNS TABLE (out_reason TEXT, out_contact INTEGER, out_id TEXT, out_backed INTEGER)
LANGUAGE plpgsql AS $$
DECLARE
    v_pacing RECORD;
    v_now DOUBLE PRECISION;
    v_tokens DOUBLE PRECISION;
    v_floor DOUBLE PRECISION;
    v_live BIGINT;
    v_room INTEGER;
    v_stamp TEXT;
    v_later TEXT;
    v_took INTEGER;
    v_count INTEGER := 0;
    v_backed INTEGER := 0;
BEGIN
    IF p_want IS NULL OR p_want < 1 OR COALESCE(array_length(p_ids, 1), 0) < p_want THEN
        RAISE EXCEPTION 'televox_take_many: want % needs as many ids (got %)', p_want,
            COALESCE(array_length(p_ids, 1), 0);
    END IF;
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
    v_floor := CASE WHEN p_overdraw THEN 1.0 - p_max ELSE 1.0 END;
    IF v_tokens < v_floor THEN
        RETURN QUERY SELECT 'paced'::TEXT, NULL::INTEGER, NULL::TEXT, 0;
        RETURN;
    END IF;
    IF p_node IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM nodes n WHERE n.node_id = p_node AND n.epoch = p_epoch
               AND n.lease_until > EXTRACT(EPOCH FROM clock_timestamp())) THEN
        RETURN QUERY SELECT 'no_lease'::TEXT, NULL::INTEGER, NULL::TEXT, 0;
        RETURN;
    END IF;
    SELECT COUNT(*) INTO v_live FROM call_attempts a WHERE a.campaign_id = p_campaign
       AND a.status IN ('intent', 'originated', 'ringing', 'answered');
    IF v_live >= p_max THEN
        RETURN QUERY SELECT 'full'::TEXT, NULL::INTEGER, NULL::TEXT, 0;
        RETURN;
    END IF;
    -- As many as one-by-one claims would take now: each needs the bucket at or above the
    -- floor before its token is spent, and a place under max_concurrent.
    v_room := LEAST(p_want, (p_max - v_live)::INTEGER,
                    FLOOR(v_tokens - v_floor)::INTEGER + 1);
    v_stamp := to_char(to_timestamp(v_now) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"');
    v_later := to_char(to_timestamp(v_now + p_backoff_s) AT TIME ZONE 'UTC',
                       'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"');
    FOR v_i IN 1 .. COALESCE(array_length(p_contacts, 1), 0) LOOP
        EXIT WHEN v_count >= v_room;
        INSERT INTO call_attempts(id, campaign_id, contact_id, phone, phone_position,
                                  retry_pass, status, created_at, gate_reason, node_id,
                                  node_epoch)
        VALUES (p_ids[v_count + 1], p_campaign, p_contacts[v_i], p_phones[v_i],
                p_positions[v_i], p_passes[v_i], 'intent', v_stamp, 'cluster claim', p_node,
                p_epoch)
        ON CONFLICT (phone) WHERE status IN ('intent', 'originated', 'ringing', 'answered')
        DO NOTHING;
        GET DIAGNOSTICS v_took = ROW_COUNT;
        IF v_took = 1 THEN
            v_count := v_count + 1;
            UPDATE contacts SET status = 'calling', last_attempt_at = v_stamp,
                   updated_at = v_stamp WHERE id = p_contacts[v_i];
            RETURN QUERY SELECT 'claimed'::TEXT, p_contacts[v_i], p_ids[v_count], v_backed;
        ELSE
            -- The number is live elsewhere (another campaign, inbound): this contact waits.
            v_backed := v_backed + 1;
            UPDATE contacts SET next_eligible_at = v_later, updated_at = v_stamp
             WHERE id = p_contacts[v_i];
        END IF;
    END LOOP;
    IF v_count > 0 THEN
        UPDATE campaign_pacing SET tokens = v_tokens - v_count, refilled_s = v_now
         WHERE campaign_id = p_campaign;
        RETURN;
    END IF;
    RETURN QUERY SELECT 'empty'::TEXT, NULL::INTEGER, NULL::TEXT, v_backed;
END $$;
-- @end
