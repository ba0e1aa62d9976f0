-- Deployed apps: a user's small web app, its immutable versions (a bundle of files each) and
-- which version is live. The running instances live in the server's memory; this is what a
-- restart or another server needs to bring them back.
--
-- Conventions as in 0004 (bigint integers, one decoder for both engines). env and secrets
-- are JSON objects of strings (secrets are never sent back by the API).

CREATE TABLE apps (
    id              uuid PRIMARY KEY,
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- A DNS label: the app's URL path segment and host name part.
    name            text NOT NULL,
    runtime         text NOT NULL,
    entry           text NOT NULL,
    public          boolean NOT NULL,
    pinned          boolean NOT NULL,
    env             jsonb NOT NULL,
    secrets         jsonb NOT NULL,
    -- 'running' or 'stopped': what the owner asked for.
    desired         text NOT NULL,
    live_version    bigint,
    last_request_at timestamptz,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);

CREATE UNIQUE INDEX apps_user_id_name_key ON apps (user_id, name);

CREATE TABLE app_versions (
    app_id      uuid NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    version     bigint NOT NULL CHECK (version > 0),
    -- The files as a .tar.gz.
    bundle      bytea NOT NULL,
    files       bigint NOT NULL,
    bytes       bigint NOT NULL,
    -- Where the files came from: 'request', 'session:<id>', 'project:<id>', 'version:<n>'.
    source      text NOT NULL,
    -- 'pending' → 'live' → 'superseded', or 'failed' | 'cancelled'.
    state       text NOT NULL,
    job_id      uuid,
    error       jsonb,
    -- How to run it, found by its deploy: {"interface": "asgi3"} (set when it goes live).
    launch      jsonb,
    created_at  timestamptz NOT NULL,
    finished_at timestamptz,
    PRIMARY KEY (app_id, version)
);
