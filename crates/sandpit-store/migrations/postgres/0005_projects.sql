-- Projects: a user's named set of files (a virtual file system in the database), the
-- CodeForge flow's unit of work; agent jobs name their project (jobs.project_id).
--
-- Conventions as in 0004 (bigint integers, one decoder for both engines). A file is a row;
-- directories are implied by the paths, as in git. Paths are workspace paths, validated by
-- the server (relative, '/'-separated, no '..'), compared byte-wise (COLLATE "C").

CREATE TABLE projects (
    id          uuid PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name        text NOT NULL,
    description text NOT NULL,
    -- What it started from (an environment's default files, or 'empty').
    template    text NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);

-- A user's project names are unique ignoring case; the index also serves "a user's projects".
CREATE UNIQUE INDEX projects_user_id_name_key ON projects (user_id, lower(name));

CREATE TABLE project_files (
    project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    path       text COLLATE "C" NOT NULL,
    content    bytea NOT NULL,
    size       bigint NOT NULL CHECK (size >= 0),
    -- Hex SHA-256 of content: the file's ETag.
    sha256     text NOT NULL CHECK (length(sha256) = 64),
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (project_id, path)
);
