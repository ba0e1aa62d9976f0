-- Server replicas sharing this database, and where each session's sandbox runs.
--
-- `replicas`: one row per running `sandpit serve` process, refreshed by its heartbeat; a row
-- whose heartbeat is older than the cluster's dead-after interval belongs to a replica that is
-- gone (killed, or cut off), and so do its placements.
-- `session_placements`: which replica holds a session's sandbox (at most one: the primary key).
-- No row, or a row naming a dead replica, means the session is suspended: the next replica to
-- use it claims it (one statement, see src/cluster.rs) and starts a sandbox on its workspace.
-- `cluster_events`: what every replica must hear about (a credential revoked, a role changed),
-- read by each replica after the last sequence number it saw; pruned by age.
--
-- Conventions as in 0004.

CREATE TABLE replicas (
    id            uuid PRIMARY KEY,
    advertise_url text NOT NULL,
    started_at    timestamptz NOT NULL,
    heartbeat_at  timestamptz NOT NULL
);

CREATE TABLE session_placements (
    session_id  uuid PRIMARY KEY REFERENCES sessions (id) ON DELETE CASCADE,
    -- Not a foreign key: a replica's row goes when it is declared dead, its placements stay
    -- (naming no live replica) until a claim takes them over or the session ends.
    replica_id  uuid NOT NULL,
    claimed_at  timestamptz NOT NULL
);
CREATE INDEX session_placements_replica_idx ON session_placements (replica_id);

CREATE TABLE cluster_events (
    seq      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind     text NOT NULL CHECK (kind IN ('credential_revoked', 'user_changed')),
    subject  uuid NOT NULL,
    at       timestamptz NOT NULL
);
