-- Jobs: durable background work (asynchronous runs, deploys, agent jobs), leased by workers of
-- any server process sharing the database; and each job's events, kept so a client that
-- reconnects to a job's event stream (Last-Event-ID) misses nothing.
--
-- Conventions as in 0001: hyphenated UUID text ids (UUIDv7); fixed-width RFC 3339 UTC text
-- timestamps (the GLOB CHECKs), so comparing them compares instants; JSON as TEXT; STRICT.
--
-- Lifecycle: queued -> running -> completed | failed | cancelled; a running job whose attempt
-- failed but may be retried goes back to queued with a later run_at. A running job is held by
-- its lease (lease_owner, lease_expires_at); a worker extends it while it runs, and a job
-- whose lease expired (its server died) is queued again or, out of attempts, failed.

CREATE TABLE jobs (
    id               TEXT NOT NULL PRIMARY KEY,
    kind             TEXT NOT NULL,
    user_id          TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    project_id       TEXT,
    state            TEXT NOT NULL
        CHECK (state IN ('queued', 'running', 'completed', 'failed', 'cancelled')),
    -- Higher first; then the earliest run_at.
    priority         INTEGER NOT NULL,
    input            TEXT NOT NULL CHECK (json_valid(input)),
    -- Set when completed; error ({code, message}) when the last attempt failed.
    result           TEXT CHECK (result IS NULL OR json_valid(result)),
    error            TEXT CHECK (error IS NULL OR json_valid(error)),
    progress         INTEGER NOT NULL CHECK (progress BETWEEN 0 AND 100),
    progress_message TEXT,
    attempts         INTEGER NOT NULL CHECK (attempts >= 0),
    max_attempts     INTEGER NOT NULL CHECK (max_attempts >= 1),
    timeout_ms       INTEGER NOT NULL CHECK (timeout_ms > 0),
    -- Not leased before this (a retry's backoff).
    run_at           TEXT NOT NULL CHECK (run_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    lease_owner      TEXT,
    lease_expires_at TEXT,
    -- STRICT has no boolean type; sqlx writes bool as 0/1.
    cancel_requested INTEGER NOT NULL CHECK (cancel_requested IN (0, 1)),
    -- The seq of the job's newest event; events are numbered under the write lock.
    last_event       INTEGER NOT NULL,
    created_at       TEXT NOT NULL CHECK (created_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    started_at       TEXT,
    finished_at      TEXT,
    updated_at       TEXT NOT NULL,
    CHECK ((state = 'running') = (lease_owner IS NOT NULL)
        AND (lease_owner IS NULL) = (lease_expires_at IS NULL)),
    CHECK ((state IN ('completed', 'failed', 'cancelled')) = (finished_at IS NOT NULL))
) STRICT;

-- The lease's scan: queued jobs in the order they are taken.
CREATE INDEX jobs_queued_idx ON jobs (priority DESC, run_at, id) WHERE state = 'queued';
-- Expired leases.
CREATE INDEX jobs_running_lease_idx ON jobs (lease_expires_at) WHERE state = 'running';
-- "A user's jobs, newest first" (by project too) and the cascade from users.
CREATE INDEX jobs_user_id_created_at_idx ON jobs (user_id, created_at, id);
CREATE INDEX jobs_project_id_created_at_idx ON jobs (project_id, created_at, id)
    WHERE project_id IS NOT NULL;

-- WITHOUT ROWID: the rows are read by their key, in key order.
CREATE TABLE job_events (
    job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    seq    INTEGER NOT NULL CHECK (seq >= 1),
    at     TEXT NOT NULL,
    kind   TEXT NOT NULL CHECK (kind IN ('state', 'progress', 'log', 'result')),
    data   TEXT NOT NULL CHECK (json_valid(data)),
    PRIMARY KEY (job_id, seq)
) STRICT, WITHOUT ROWID;
