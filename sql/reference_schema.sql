-- locktop reference schema: the per-profile ENTRY lock as a TTL lease row.
--
-- Loaded by `locktop demo` and by the tests. A row per (profile_id, symbol) is valid until `expires_at`.
-- Workers call fn_try_acquire_entry_lock_row; it returns false while another owner holds an unexpired row and
-- then records the failed attempt on the row (contention bookkeeping), so that a monitor started in the middle
-- of an incident sees at once how long contention has lasted.
--
-- Contention bookkeeping:
--   contention_count   failed acquisitions in the current contention episode
--   contended_since    when the current episode started (first failure after a quiet TTL)
--   last_contended_at  the latest failure; the episode ends when no failure was seen for one TTL
--
-- Releasing keeps the row (owner_token becomes NULL, expires_at now()) so that the episode's bookkeeping
-- survives a hand-over between workers: contention that persists across owners is one episode.

CREATE TABLE IF NOT EXISTS entry_locks (
    profile_id        text        NOT NULL,
    symbol            text        NOT NULL,
    owner_token       text,
    acquired_at       timestamptz,
    expires_at        timestamptz NOT NULL,
    contention_count  bigint      NOT NULL DEFAULT 0,
    contended_since   timestamptz,
    last_contended_at timestamptz,
    PRIMARY KEY (profile_id, symbol)
);

-- Take a free, released or expired row, or renew one's own. Returns false (and records the failure) when another
-- owner holds an unexpired row. Safe under concurrency: the upsert locks the conflicting row and re-checks the
-- condition on its latest version, so two owners never hold one unexpired row.
CREATE OR REPLACE FUNCTION fn_try_acquire_entry_lock_row(
    p_profile_id text,
    p_symbol     text,
    p_owner      text,
    p_ttl        interval DEFAULT interval '30 seconds'
) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v_now timestamptz := now();
BEGIN
    IF p_owner IS NULL OR p_ttl <= interval '0' THEN
        RAISE EXCEPTION 'fn_try_acquire_entry_lock_row: owner must be set and ttl positive';
    END IF;

    INSERT INTO entry_locks AS l (profile_id, symbol, owner_token, acquired_at, expires_at)
    VALUES (p_profile_id, p_symbol, p_owner, v_now, v_now + p_ttl)
    ON CONFLICT (profile_id, symbol) DO UPDATE
        SET owner_token = excluded.owner_token,
            acquired_at = CASE WHEN l.owner_token IS NOT DISTINCT FROM excluded.owner_token
                               THEN l.acquired_at ELSE excluded.acquired_at END,
            expires_at  = excluded.expires_at
        WHERE l.owner_token IS NULL
           OR l.owner_token = excluded.owner_token
           OR l.expires_at <= v_now;
    IF FOUND THEN
        RETURN true;
    END IF;

    -- Another owner holds it: record the failed attempt. A failure after a quiet TTL starts a new episode.
    UPDATE entry_locks AS l
       SET contention_count  = CASE WHEN l.last_contended_at IS NULL OR l.last_contended_at < v_now - p_ttl
                                    THEN 1 ELSE l.contention_count + 1 END,
           contended_since   = CASE WHEN l.last_contended_at IS NULL OR l.last_contended_at < v_now - p_ttl
                                    THEN v_now ELSE l.contended_since END,
           last_contended_at = v_now
     WHERE l.profile_id = p_profile_id AND l.symbol = p_symbol;
    RETURN false;
END
$$;

-- Release one's own row. Only the owner can release; returns whether it did.
CREATE OR REPLACE FUNCTION fn_release_entry_lock_row(
    p_profile_id text,
    p_symbol     text,
    p_owner      text
) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE entry_locks
       SET owner_token = NULL, expires_at = now()
     WHERE profile_id = p_profile_id AND symbol = p_symbol AND owner_token = p_owner;
    RETURN FOUND;
END
$$;
