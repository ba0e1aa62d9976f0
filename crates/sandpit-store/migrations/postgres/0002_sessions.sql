-- Sessions: a learner's sandbox and persistent workspace, live until it expires (the TTL can
-- be extended) or is ended; an ended session stays as history and never becomes live again.
--
-- Conventions as in 0001: uuid ids, timestamptz written by the application. src/postgres.rs
-- maps the primary key's default name, sessions_pkey, to `sessions.id`.
--
-- `status` is 'live' or 'ended'; `ended_at` and `end_reason` are set exactly when it is
-- 'ended'. The cap on live sessions per user is not a constraint here (it is a parameter):
-- src/postgres.rs checks it in a transaction holding the user's row lock.

CREATE TABLE sessions (
    id          uuid PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The runtime environment of the sandbox (a runtime registry name).
    environment text NOT NULL,
    -- The lab the session was started for; NULL for a free-form playground.
    lab         text,
    status      text NOT NULL CHECK (status IN ('live', 'ended')),
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    ended_at    timestamptz,
    end_reason  text CHECK (end_reason IN ('user', 'expired', 'failed', 'shutdown')),
    CONSTRAINT sessions_ended_check
        CHECK ((status = 'live' AND ended_at IS NULL AND end_reason IS NULL)
            OR (status = 'ended' AND ended_at IS NOT NULL AND end_reason IS NOT NULL))
);

-- Serves "a user's live sessions" (the cap's count), "a user's sessions, newest first" and
-- the cascade from users.
CREATE INDEX sessions_user_id_status_idx ON sessions (user_id, status, created_at);
-- Serves "live sessions by expiry" (the reaper) and "every live session"; ended sessions,
-- the bulk of the table over time, are not in it.
CREATE INDEX sessions_live_expires_at_idx ON sessions (expires_at) WHERE status = 'live';
