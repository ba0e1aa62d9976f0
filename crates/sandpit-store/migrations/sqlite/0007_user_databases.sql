-- Per-user databases: at most one per user, a SQLite file in the server's data directory or
-- a database and role on a configured PostgreSQL server. `secret` is the PostgreSQL role's
-- current password (the user's apps are given it); NULL for SQLite.
--
-- Conventions as in 0004.

CREATE TABLE user_databases (
    user_id     TEXT NOT NULL PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    engine      TEXT NOT NULL CHECK (engine IN ('sqlite', 'postgres')),
    name        TEXT NOT NULL,
    secret      TEXT,
    created_at  TEXT NOT NULL,
    rotated_at  TEXT
) STRICT;
