-- Projects: a user's named set of files (a virtual file system in the database), the
-- CodeForge flow's unit of work; agent jobs name their project (jobs.project_id).
--
-- Conventions as in 0004. A file is a row; directories are implied by the paths, as in git.
-- Paths are workspace paths, validated by the server (relative, '/'-separated, no '..'),
-- compared byte-wise (BINARY, the default).

CREATE TABLE projects (
    id          TEXT NOT NULL PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    description TEXT NOT NULL,
    -- What it started from (an environment's default files, or 'empty').
    template    TEXT NOT NULL,
    created_at  TEXT NOT NULL CHECK (created_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    updated_at  TEXT NOT NULL
) STRICT;

-- A user's project names are unique ignoring case; the index also serves "a user's projects".
CREATE UNIQUE INDEX projects_user_id_name_key ON projects (user_id, lower(name));

-- WITHOUT ROWID: read by (project, path), in path order.
CREATE TABLE project_files (
    project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    path       TEXT NOT NULL,
    content    BLOB NOT NULL,
    size       INTEGER NOT NULL CHECK (size >= 0),
    -- Hex SHA-256 of content: the file's ETag.
    sha256     TEXT NOT NULL CHECK (length(sha256) = 64),
    updated_at TEXT NOT NULL,
    PRIMARY KEY (project_id, path)
) STRICT, WITHOUT ROWID;
