-- Sessions: a learner's sandbox and persistent workspace, live until it expires (the TTL can
-- be extended) or is ended; an ended session stays as history and never becomes live again.
--
-- Conventions as in 0001: hyphenated UUID text ids; fixed-width RFC 3339 UTC text timestamps
-- (the GLOB CHECKs), so `expires_at <= ?` compares instants; STRICT tables.
--
-- `status` is 'live' or 'ended'; `ended_at` and `end_reason` are set exactly when it is
-- 'ended'. The cap on live sessions per user is not a constraint here (it is a parameter):
-- src/sqlite.rs checks it in the same statement as the insert, under SQLite's write lock.
-- Queries spell `status = 'live'` literally so SQLite can use the partial index below.

CREATE TABLE sessions (
    id          TEXT NOT NULL PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The runtime environment of the sandbox (a runtime registry name).
    environment TEXT NOT NULL,
    -- The lab the session was started for; NULL for a free-form playground.
    lab         TEXT,
    status      TEXT NOT NULL CHECK (status IN ('live', 'ended')),
    created_at  TEXT NOT NULL CHECK (created_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    expires_at  TEXT NOT NULL CHECK (expires_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    ended_at    TEXT CHECK (ended_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    end_reason  TEXT CHECK (end_reason IN ('user', 'expired', 'failed', 'shutdown')),
    CHECK ((status = 'live' AND ended_at IS NULL AND end_reason IS NULL)
        OR (status = 'ended' AND ended_at IS NOT NULL AND end_reason IS NOT NULL))
) STRICT;

-- Serves "a user's live sessions" (the cap's count), "a user's sessions, newest first" and
-- the cascade from users.
CREATE INDEX sessions_user_id_status_idx ON sessions (user_id, status, created_at);
-- Serves "live sessions by expiry" (the reaper) and "every live session"; ended sessions,
-- the bulk of the table over time, are not in it.
CREATE INDEX sessions_live_expires_at_idx ON sessions (expires_at) WHERE status = 'live';
