-- Accounts: users, their linked external identities (GitHub) and credentials (login sessions,
-- personal API tokens).
--
-- Conventions (see src/lib.rs): UUID ids, timestamptz written by the application (no
-- DEFAULT now(), so both stores agree to the microsecond), jsonb for free-form JSON.
-- Constraint names are spelled out because src/postgres.rs maps them to domain errors.

CREATE TABLE users (
    id            uuid PRIMARY KEY,
    username      text NOT NULL,
    email         text,
    password_hash text,
    role          text NOT NULL CHECK (role IN ('learner', 'author', 'admin')),
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL
);

-- Case-insensitive uniqueness. COLLATE "C" makes lower() fold ASCII only, whatever the
-- database locale, which is exactly what SQLite's NOCASE does: both stores agree on which
-- usernames collide. Queries must use the same expression to use the index.
CREATE UNIQUE INDEX users_username_key ON users (lower(username COLLATE "C"));

CREATE TABLE external_identities (
    id         uuid PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider   text NOT NULL,
    subject    text NOT NULL,
    login      text NOT NULL,
    profile    jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    CONSTRAINT external_identities_provider_subject_key UNIQUE (provider, subject)
);

CREATE INDEX external_identities_user_id_idx ON external_identities (user_id);

CREATE TABLE credentials (
    id           uuid PRIMARY KEY,
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind         text NOT NULL CHECK (kind IN ('session', 'api_token')),
    name         text NOT NULL,
    prefix       text NOT NULL,
    -- SHA-256 of the secret value; the value itself is never stored.
    token_hash   bytea NOT NULL CHECK (octet_length(token_hash) = 32),
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz,
    last_used_at timestamptz,
    revoked_at   timestamptz,
    CONSTRAINT credentials_token_hash_key UNIQUE (token_hash)
);

-- Serves "the API tokens of a user, newest first" and the cascade from users.
CREATE INDEX credentials_user_id_kind_idx ON credentials (user_id, kind, created_at);
