-- Attempts: one judge run of a lab step in a session, kept as history; and lab progress: the
-- steps each user has passed, with the first time each passed.
--
-- Conventions as in 0001: hyphenated UUID text ids (attempt ids are UUIDv7); fixed-width
-- RFC 3339 UTC text timestamps (the GLOB CHECKs), so `ORDER BY submitted_at` is time order;
-- JSON as TEXT; STRICT tables. Labs and steps are compared with the default BINARY collation
-- (byte order), which is what the PostgreSQL migration asks for with COLLATE "C".

-- The target of the attempts -> sessions foreign key below: SQLite requires a parent key to be
-- the primary key or carry a UNIQUE index. The id alone is already unique; the pair lets the
-- database, not each caller, guarantee that an attempt's session belongs to the attempt's user.
CREATE UNIQUE INDEX sessions_id_user_id_key ON sessions (id, user_id);

CREATE TABLE attempts (
    id           TEXT NOT NULL PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    session_id   TEXT NOT NULL,
    -- The lab's slug and the step's id within it (as in the lab's manifest).
    lab          TEXT NOT NULL,
    step         TEXT NOT NULL,
    -- STRICT has no boolean type; sqlx writes bool as 0/1.
    passed       INTEGER NOT NULL CHECK (passed IN (0, 1)),
    -- What the judge reported: failures and notes are arrays, metrics an object. json_valid
    -- first, because json_type raises an error (not false) on malformed text.
    failures     TEXT NOT NULL CHECK (json_valid(failures) AND json_type(failures) = 'array'),
    metrics      TEXT NOT NULL CHECK (json_valid(metrics) AND json_type(metrics) = 'object'),
    notes        TEXT NOT NULL CHECK (json_valid(notes) AND json_type(notes) = 'array'),
    submitted_at TEXT NOT NULL CHECK (submitted_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    FOREIGN KEY (session_id, user_id) REFERENCES sessions (id, user_id) ON DELETE CASCADE
) STRICT;

-- Serve "a user's attempts, newest first", unfiltered and by lab (the id breaks ties, so the
-- ORDER BY needs no sort step), and the cascade from users.
CREATE INDEX attempts_user_id_submitted_at_idx ON attempts (user_id, submitted_at, id);
CREATE INDEX attempts_user_id_lab_submitted_at_idx ON attempts (user_id, lab, submitted_at, id);
-- Serves "a user's attempts in a session, newest first" (also by lab: a session is for one
-- lab) and the cascade from sessions, which looks up (session_id, user_id).
CREATE INDEX attempts_session_id_user_id_submitted_at_idx
    ON attempts (session_id, user_id, submitted_at, id);

-- One row per step a user has passed. Written in the same transaction as the passing attempt,
-- with ON CONFLICT DO NOTHING, so passed_at stays the first time the step passed. Not derived
-- from attempts on each read: progress is read on every lab page, attempts grow without bound.
-- WITHOUT ROWID: the table is its primary key plus one column, so storing it as the key's
-- B-tree saves a second index.
CREATE TABLE lab_progress (
    user_id   TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    lab       TEXT NOT NULL,
    step      TEXT NOT NULL,
    passed_at TEXT NOT NULL CHECK (passed_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    PRIMARY KEY (user_id, lab, step)
) STRICT, WITHOUT ROWID;
