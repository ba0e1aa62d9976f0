-- Deployed apps: a user's small web app, its immutable versions (a bundle of files each) and
-- which version is live. The running instances live in the server's memory; this is what a
-- restart or another server needs to bring them back.
--
-- Conventions as in 0004. Booleans are INTEGER 0/1; env and secrets are JSON objects of
-- strings (secrets are never sent back by the API).

CREATE TABLE apps (
    id              TEXT NOT NULL PRIMARY KEY,
    user_id         TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- A DNS label: the app's URL path segment and host name part.
    name            TEXT NOT NULL,
    runtime         TEXT NOT NULL,
    entry           TEXT NOT NULL,
    public          INTEGER NOT NULL CHECK (public IN (0, 1)),
    pinned          INTEGER NOT NULL CHECK (pinned IN (0, 1)),
    env             TEXT NOT NULL,
    secrets         TEXT NOT NULL,
    -- 'running' or 'stopped': what the owner asked for.
    desired         TEXT NOT NULL,
    live_version    INTEGER,
    last_request_at TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
) STRICT;

CREATE UNIQUE INDEX apps_user_id_name_key ON apps (user_id, name);

CREATE TABLE app_versions (
    app_id      TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    version     INTEGER NOT NULL CHECK (version > 0),
    -- The files as a .tar.gz.
    bundle      BLOB NOT NULL,
    files       INTEGER NOT NULL,
    bytes       INTEGER NOT NULL,
    -- Where the files came from: 'request', 'session:<id>', 'project:<id>', 'version:<n>'.
    source      TEXT NOT NULL,
    -- 'pending' → 'live' → 'superseded', or 'failed' | 'cancelled'.
    state       TEXT NOT NULL,
    job_id      TEXT,
    error       TEXT,
    -- How to run it, found by its deploy: {"interface": "asgi3"} (set when it goes live).
    launch      TEXT,
    created_at  TEXT NOT NULL,
    finished_at TEXT,
    PRIMARY KEY (app_id, version)
) STRICT, WITHOUT ROWID;
