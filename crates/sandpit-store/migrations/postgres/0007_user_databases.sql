-- Per-user databases: at most one per user, a SQLite file in the server's data directory or
-- a database and role on a configured PostgreSQL server. `secret` is the PostgreSQL role's
-- current password (the user's apps are given it); NULL for SQLite.
--
-- Conventions as in 0004.

CREATE TABLE user_databases (
    user_id     uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    engine      text NOT NULL CHECK (engine IN ('sqlite', 'postgres')),
    name        text NOT NULL,
    secret      text,
    created_at  timestamptz NOT NULL,
    rotated_at  timestamptz
);
