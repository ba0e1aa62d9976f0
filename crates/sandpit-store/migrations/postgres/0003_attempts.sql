-- Attempts: one judge run of a lab step in a session, kept as history; and lab progress: the
-- steps each user has passed, with the first time each passed.
--
-- Conventions as in 0001: uuid ids (attempt ids are UUIDv7), timestamptz written by the
-- application, jsonb for JSON. Constraint names are spelled out where src/postgres.rs maps
-- them. Labs and steps are COLLATE "C" (byte order) so that ORDER BY lab sorts as SQLite's
-- BINARY does, whatever the database locale (en_US, say, ignores hyphens in slugs).

-- The target of the attempts -> sessions foreign key below. The id alone is already unique;
-- the pair lets the database, not each caller, guarantee that an attempt's session belongs to
-- the attempt's user. (Building it locks sessions briefly; the table is small at this point.)
ALTER TABLE sessions ADD CONSTRAINT sessions_id_user_id_key UNIQUE (id, user_id);

CREATE TABLE attempts (
    id           uuid PRIMARY KEY,
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    session_id   uuid NOT NULL,
    -- The lab's slug and the step's id within it (as in the lab's manifest).
    lab          text COLLATE "C" NOT NULL,
    step         text COLLATE "C" NOT NULL,
    passed       boolean NOT NULL,
    -- What the judge reported: failures and notes are arrays, metrics an object.
    failures     jsonb NOT NULL CHECK (jsonb_typeof(failures) = 'array'),
    metrics      jsonb NOT NULL CHECK (jsonb_typeof(metrics) = 'object'),
    notes        jsonb NOT NULL CHECK (jsonb_typeof(notes) = 'array'),
    submitted_at timestamptz NOT NULL,
    CONSTRAINT attempts_session_id_fkey FOREIGN KEY (session_id, user_id)
        REFERENCES sessions (id, user_id) ON DELETE CASCADE
);

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
CREATE TABLE lab_progress (
    user_id   uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    lab       text COLLATE "C" NOT NULL,
    step      text COLLATE "C" NOT NULL,
    passed_at timestamptz NOT NULL,
    PRIMARY KEY (user_id, lab, step)
);
