-- Server replicas sharing this database, and where each session's sandbox runs. SQLite is one
-- machine's store, so there is one replica; the tables exist so both engines run the same code
-- (see migrations/postgres/0008_cluster.sql for what each means).
--
-- Conventions as in 0004.

CREATE TABLE replicas (
    id            TEXT NOT NULL PRIMARY KEY,
    advertise_url TEXT NOT NULL,
    started_at    TEXT NOT NULL,
    heartbeat_at  TEXT NOT NULL
) STRICT;

CREATE TABLE session_placements (
    session_id  TEXT NOT NULL PRIMARY KEY REFERENCES sessions (id) ON DELETE CASCADE,
    replica_id  TEXT NOT NULL,
    claimed_at  TEXT NOT NULL
) STRICT;
CREATE INDEX session_placements_replica_idx ON session_placements (replica_id);

CREATE TABLE cluster_events (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    kind     TEXT NOT NULL CHECK (kind IN ('credential_revoked', 'user_changed')),
    subject  TEXT NOT NULL,
    at       TEXT NOT NULL
) STRICT;
