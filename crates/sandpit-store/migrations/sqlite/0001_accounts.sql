-- Accounts: users, their linked external identities (GitHub) and credentials (login sessions,
-- personal API tokens).
--
-- Conventions (see src/lib.rs): ids are hyphenated UUID text; timestamps are written by the
-- application as fixed-width RFC 3339 UTC text, `YYYY-MM-DDTHH:MM:SS.ffffffZ`, so that comparing
-- and ordering the text compares the instants. The CHECKs refuse any other shape, because a
-- single row in another format (say without fraction) would silently break `expires_at > ?`.
-- Tables are STRICT so a value of the wrong type is an error, not a silent conversion.

CREATE TABLE users (
    id            TEXT NOT NULL PRIMARY KEY,
    -- NOCASE makes both the unique constraint and `username = ?` case-insensitive (ASCII).
    username      TEXT NOT NULL COLLATE NOCASE UNIQUE,
    email         TEXT,
    password_hash TEXT,
    role          TEXT NOT NULL CHECK (role IN ('learner', 'author', 'admin')),
    created_at    TEXT NOT NULL CHECK (created_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    updated_at    TEXT NOT NULL CHECK (updated_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z')
) STRICT;

CREATE TABLE external_identities (
    id         TEXT NOT NULL PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider   TEXT NOT NULL,
    subject    TEXT NOT NULL,
    login      TEXT NOT NULL,
    profile    TEXT NOT NULL CHECK (json_valid(profile)),
    created_at TEXT NOT NULL CHECK (created_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    updated_at TEXT NOT NULL CHECK (updated_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    UNIQUE (provider, subject)
) STRICT;

CREATE INDEX external_identities_user_id_idx ON external_identities (user_id);

CREATE TABLE credentials (
    id           TEXT NOT NULL PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind         TEXT NOT NULL CHECK (kind IN ('session', 'api_token')),
    name         TEXT NOT NULL,
    prefix       TEXT NOT NULL,
    -- SHA-256 of the secret value; the value itself is never stored.
    token_hash   BLOB NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    created_at   TEXT NOT NULL CHECK (created_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    expires_at   TEXT CHECK (expires_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    last_used_at TEXT CHECK (last_used_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    revoked_at   TEXT CHECK (revoked_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z')
) STRICT;

-- Serves "the API tokens of a user, newest first" and the cascade from users.
CREATE INDEX credentials_user_id_kind_idx ON credentials (user_id, kind, created_at);
