-- Jobs: durable background work (asynchronous runs, deploys, agent jobs), leased by workers of
-- any server process sharing the database; and each job's events, kept so a client that
-- reconnects to a job's event stream (Last-Event-ID) misses nothing.
--
-- Conventions as in 0001: uuid ids (UUIDv7), timestamptz written by the application, jsonb;
-- integers are bigint, so one decoder (i64) serves both engines.
--
-- Lifecycle: queued -> running -> completed | failed | cancelled; a running job whose attempt
-- failed but may be retried goes back to queued with a later run_at. A running job is held by
-- its lease (lease_owner, lease_expires_at); a worker extends it while it runs, and a job
-- whose lease expired (its server died) is queued again or, out of attempts, failed.

CREATE TABLE jobs (
    id               uuid PRIMARY KEY,
    kind             text COLLATE "C" NOT NULL,
    user_id          uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    project_id       uuid,
    state            text NOT NULL
        CHECK (state IN ('queued', 'running', 'completed', 'failed', 'cancelled')),
    -- Higher first; then the earliest run_at.
    priority         bigint NOT NULL,
    input            jsonb NOT NULL,
    -- Set when completed; error ({code, message}) when the last attempt failed.
    result           jsonb,
    error            jsonb,
    progress         bigint NOT NULL CHECK (progress BETWEEN 0 AND 100),
    progress_message text,
    attempts         bigint NOT NULL CHECK (attempts >= 0),
    max_attempts     bigint NOT NULL CHECK (max_attempts >= 1),
    timeout_ms       bigint NOT NULL CHECK (timeout_ms > 0),
    -- Not leased before this (a retry's backoff).
    run_at           timestamptz NOT NULL,
    lease_owner      text,
    lease_expires_at timestamptz,
    cancel_requested boolean NOT NULL,
    -- The seq of the job's newest event; events are numbered under the job's row lock.
    last_event       bigint NOT NULL,
    created_at       timestamptz NOT NULL,
    started_at       timestamptz,
    finished_at      timestamptz,
    updated_at       timestamptz NOT NULL,
    CONSTRAINT jobs_lease_check CHECK ((state = 'running') = (lease_owner IS NOT NULL)
        AND (lease_owner IS NULL) = (lease_expires_at IS NULL)),
    CONSTRAINT jobs_finished_check
        CHECK ((state IN ('completed', 'failed', 'cancelled')) = (finished_at IS NOT NULL))
);

-- The lease's scan: queued jobs in the order they are taken.
CREATE INDEX jobs_queued_idx ON jobs (priority DESC, run_at, id) WHERE state = 'queued';
-- Expired leases.
CREATE INDEX jobs_running_lease_idx ON jobs (lease_expires_at) WHERE state = 'running';
-- "A user's jobs, newest first" (by project too) and the cascade from users.
CREATE INDEX jobs_user_id_created_at_idx ON jobs (user_id, created_at, id);
CREATE INDEX jobs_project_id_created_at_idx ON jobs (project_id, created_at, id)
    WHERE project_id IS NOT NULL;

CREATE TABLE job_events (
    job_id uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    seq    bigint NOT NULL CHECK (seq >= 1),
    at     timestamptz NOT NULL,
    kind   text NOT NULL CHECK (kind IN ('state', 'progress', 'log', 'result')),
    data   jsonb NOT NULL,
    PRIMARY KEY (job_id, seq)
);
