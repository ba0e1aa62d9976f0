//! Projects and their files (a virtual file system in the database): the rows, the
//! [`ProjectStore`] trait, and its SQL, written once for both engines ([`project_store_impl!`])
//! as the job queue's is.
//!
//! A file is a row keyed by (project, path); directories are implied by paths, as in git, so
//! a path is either a file or a directory, never both: a write where a directory is, or under
//! a file, is refused. Every change to a project's files first touches the project's row,
//! which serialises them (PostgreSQL's row lock; SQLite's single writer), so a precondition
//! (`If-Match`) and the project's limits hold under concurrent writes. Paths under a
//! directory are found with a range (`dir/` ≤ path < `dir0`, `0` being the byte after `/`),
//! which byte-wise collations agree on and no character in a path can escape (unlike `LIKE`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::Result;

#[derive(Debug, Clone)]
pub struct NewProject {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    pub description: String,
    pub template: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Project {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    pub description: String,
    pub template: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// How many files, and their bytes.
    pub files: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectFileMeta {
    pub path: String,
    pub size: u64,
    /// Hex SHA-256 of the content.
    pub sha256: String,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectFile {
    pub meta: ProjectFileMeta,
    pub content: Vec<u8>,
}

/// What a write expects to find at its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    Anything,
    /// Nothing (`If-None-Match: *`).
    Absent,
    /// This version (`If-Match`): a hex SHA-256.
    Sha256(String),
}

/// A project's size limits, checked on every write.
#[derive(Debug, Clone, Copy)]
pub struct ProjectLimits {
    pub max_files: u64,
    pub max_bytes: u64,
}

/// A file to write: its path, content and the content's hex SHA-256.
#[derive(Debug, Clone)]
pub struct FileWrite {
    pub path: String,
    pub content: Vec<u8>,
    pub sha256: String,
}

/// Many changes to a project's files, made all or none.
#[derive(Debug, Clone, Default)]
pub struct FileBatch {
    /// Files to write, each if its expectation holds.
    pub writes: Vec<(FileWrite, Expect)>,
    /// Paths to delete (a file, or a directory's files), each if its expectation holds: for
    /// `Expect::Sha256`, the file must be that version.
    pub deletes: Vec<(String, Expect)>,
    /// Delete every file first (then `deletes` are moot).
    pub replace: bool,
}

impl FileBatch {
    /// Writes that replace whatever is at their paths.
    pub fn writes(files: Vec<FileWrite>) -> Self {
        Self {
            writes: files.into_iter().map(|f| (f, Expect::Anything)).collect(),
            ..Self::default()
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Written; `created` when nothing was at its path before (for a batch: always false).
    Written { created: bool },
    /// The expectation did not hold; nothing written.
    PreconditionFailed,
    /// The path is a directory (files are under it).
    IsADirectory,
    /// A parent of the path is a file.
    NotADirectory,
    /// It would go over the project's limits; nothing written.
    Full,
    /// The project does not exist.
    NoProject,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoveOutcome {
    /// This many files moved.
    Moved(u64),
    NotFound,
    /// Something is at the destination (and overwriting was not asked).
    Exists,
    /// A parent of the destination is a file.
    NotADirectory,
}

/// The [`crate::StoreError::Conflict`] constraint of [`ProjectStore::create_project`] when the
/// user has `max_per_user` projects.
pub const PROJECTS_PER_USER: &str = "projects.per_user";

#[async_trait]
pub trait ProjectStore: Send + Sync {
    /// A user's name taken (ignoring case) → [`crate::StoreError::Conflict`] with
    /// `constraint = "projects.name"`; at the cap → [`PROJECTS_PER_USER`]; an unknown user →
    /// [`crate::StoreError::NotFound`].
    async fn create_project(&self, new: NewProject, max_per_user: u32) -> Result<Project>;
    async fn project(&self, id: Uuid) -> Result<Option<Project>>;
    /// A user's projects, newest first.
    async fn projects_of(&self, user_id: Uuid) -> Result<Vec<Project>>;
    /// Renames and/or redescribes. `None` when there is no such project; a taken name →
    /// `Conflict { constraint: "projects.name" }`.
    async fn update_project(
        &self,
        id: Uuid,
        name: Option<&str>,
        description: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<Option<Project>>;
    /// Deletes it with its files. False when there was none.
    async fn delete_project(&self, id: Uuid) -> Result<bool>;
    /// Every file's metadata, in path order.
    async fn project_files(&self, id: Uuid) -> Result<Vec<ProjectFileMeta>>;
    async fn project_file(&self, id: Uuid, path: &str) -> Result<Option<ProjectFile>>;
    /// Writes one file if `expect` holds and the limits allow.
    async fn put_project_file(
        &self,
        id: Uuid,
        file: FileWrite,
        expect: Expect,
        limits: ProjectLimits,
        at: DateTime<Utc>,
    ) -> Result<WriteOutcome>;
    /// Makes a batch of changes, all or none (deletes first, then writes): merged with what
    /// is there, or replacing it all. The paths must not collide with each other (the caller
    /// checks). The first refusal is the outcome.
    async fn write_project_files(
        &self,
        id: Uuid,
        batch: FileBatch,
        limits: ProjectLimits,
        at: DateTime<Utc>,
    ) -> Result<WriteOutcome>;
    /// Deletes the file at `path`, or every file under the directory `path`. Returns how many.
    async fn delete_project_path(&self, id: Uuid, path: &str, at: DateTime<Utc>) -> Result<u64>;
    /// Moves the file or directory `from` to `to` (the caller refuses `to` inside `from`).
    async fn move_project_path(
        &self,
        id: Uuid,
        from: &str,
        to: &str,
        overwrite: bool,
        at: DateTime<Utc>,
    ) -> Result<MoveOutcome>;
}

/// The directories above a path: `a/b/c` → `a`, `a/b`.
pub(crate) fn ancestors(path: &str) -> Vec<&str> {
    path.match_indices('/').map(|(i, _)| &path[..i]).collect()
}

/// The upper bound of the paths under directory `dir`: `dir0` (`0` follows `/`).
pub(crate) fn below(dir: &str) -> (String, String) {
    (format!("{dir}/"), format!("{dir}0"))
}

/// In a creation's transaction: locks the user's row (so two creations cannot both pass the
/// cap), then refuses with `$constraint` when the user already has `$max` rows in `$table`.
/// Expanded inside the engine macros, in their terms (`id_arg`, `map_err`).
macro_rules! under_user_cap {
    ($tx:ident, $user:expr, $table:literal, $max:expr, $constraint:expr) => {
        let user = sqlx::query("UPDATE users SET updated_at = updated_at WHERE id = $1")
            .bind(id_arg($user))
            .execute(&mut *$tx)
            .await
            .map_err(map_err)?;
        if user.rows_affected() == 0 {
            return Err($crate::StoreError::NotFound);
        }
        let count = sqlx::query(concat!(
            "SELECT COUNT(*) FROM ",
            $table,
            " WHERE user_id = $1"
        ))
        .bind(id_arg($user))
        .fetch_one(&mut *$tx)
        .await
        .map_err(map_err)?;
        if $crate::jobs::Columns::int(&count, 0)? >= i64::from($max) {
            return Err($crate::StoreError::Conflict {
                constraint: $constraint,
            });
        }
    };
}

macro_rules! project_cols {
    () => {
        "p.id, p.user_id, p.name, p.description, p.template, p.created_at, p.updated_at, \
         (SELECT COUNT(*) FROM project_files f WHERE f.project_id = p.id), \
         (SELECT CAST(COALESCE(SUM(f.size), 0) AS BIGINT) FROM project_files f WHERE f.project_id = p.id)"
    };
}

/// Decodes [`project_cols!`].
pub(crate) fn project_at(row: &impl crate::jobs::Columns) -> Result<Project> {
    let count = |v: i64| u64::try_from(v).unwrap_or(0);
    Ok(Project {
        id: row.uuid(0, "projects.id")?,
        user_id: row.uuid(1, "projects.user_id")?,
        name: row.text(2)?,
        description: row.text(3)?,
        template: row.text(4)?,
        created_at: row.time(5, "projects.created_at")?,
        updated_at: row.time(6, "projects.updated_at")?,
        files: count(row.int(7)?),
        bytes: count(row.int(8)?),
    })
}

/// Decodes `path, size, sha256, updated_at`.
pub(crate) fn file_meta_at(row: &impl crate::jobs::Columns) -> Result<ProjectFileMeta> {
    Ok(ProjectFileMeta {
        path: row.text(0)?,
        size: u64::try_from(row.int(1)?).unwrap_or(0),
        sha256: row.text(2)?,
        updated_at: row.time(3, "project_files.updated_at")?,
    })
}

/// The [`ProjectStore`] implementation of one engine, written once, in the terms
/// `job_store_impl!` uses (the engine module's `id_arg`, `ts_arg`, `map_err`, `micros`,
/// [`crate::jobs::Columns`] and `bytes_at` for its row type).
macro_rules! project_store_impl {
    ($store:ty, $db:ty) => {
        impl $store {
            /// Locks the project's row (and bumps `updated_at`): writes to one project's files
            /// run one at a time. False when there is no such project.
            async fn lock_project(
                conn: &mut <$db as sqlx::Database>::Connection,
                id: uuid::Uuid,
                at: chrono::DateTime<chrono::Utc>,
            ) -> $crate::Result<bool> {
                let done = sqlx::query("UPDATE projects SET updated_at = $2 WHERE id = $1")
                    .bind(id_arg(id))
                    .bind(ts_arg(at))
                    .execute(&mut *conn)
                    .await
                    .map_err(map_err)?;
                Ok(done.rows_affected() == 1)
            }

            async fn file_count_and_bytes(
                conn: &mut <$db as sqlx::Database>::Connection,
                id: uuid::Uuid,
            ) -> $crate::Result<(u64, u64)> {
                let row = sqlx::query(
                    "SELECT COUNT(*), CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM project_files \
                     WHERE project_id = $1",
                )
                .bind(id_arg(id))
                .fetch_one(&mut *conn)
                .await
                .map_err(map_err)?;
                let n = |v: i64| u64::try_from(v).unwrap_or(0);
                Ok((
                    n($crate::jobs::Columns::int(&row, 0)?),
                    n($crate::jobs::Columns::int(&row, 1)?),
                ))
            }

            /// The size and SHA-256 of the file at `path`, if one is there.
            async fn existing_file(
                conn: &mut <$db as sqlx::Database>::Connection,
                id: uuid::Uuid,
                path: &str,
            ) -> $crate::Result<Option<(u64, String)>> {
                let row = sqlx::query(
                    "SELECT size, sha256 FROM project_files WHERE project_id = $1 AND path = $2",
                )
                .bind(id_arg(id))
                .bind(path)
                .fetch_optional(&mut *conn)
                .await
                .map_err(map_err)?;
                row.map(|r| {
                    Ok((
                        u64::try_from($crate::jobs::Columns::int(&r, 0)?).unwrap_or(0),
                        $crate::jobs::Columns::text(&r, 1)?,
                    ))
                })
                .transpose()
            }

            /// Whether any file lies under the directory `path`.
            async fn has_files_below(
                conn: &mut <$db as sqlx::Database>::Connection,
                id: uuid::Uuid,
                path: &str,
            ) -> $crate::Result<bool> {
                let (low, high) = $crate::projects::below(path);
                let row = sqlx::query(
                    "SELECT 1 FROM project_files WHERE project_id = $1 AND path >= $2 AND path < $3 \
                     LIMIT 1",
                )
                .bind(id_arg(id))
                .bind(low)
                .bind(high)
                .fetch_optional(&mut *conn)
                .await
                .map_err(map_err)?;
                Ok(row.is_some())
            }

            /// Whether a directory above `path` is a file.
            async fn parent_is_file(
                conn: &mut <$db as sqlx::Database>::Connection,
                id: uuid::Uuid,
                path: &str,
            ) -> $crate::Result<bool> {
                for parent in $crate::projects::ancestors(path) {
                    if Self::existing_file(conn, id, parent).await?.is_some() {
                        return Ok(true);
                    }
                }
                Ok(false)
            }

            /// Deletes the file `path`, or every file under the directory `path`.
            async fn delete_at_or_below(
                conn: &mut <$db as sqlx::Database>::Connection,
                id: uuid::Uuid,
                path: &str,
            ) -> $crate::Result<u64> {
                let (low, high) = $crate::projects::below(path);
                let done = sqlx::query(
                    "DELETE FROM project_files WHERE project_id = $1 \
                     AND (path = $2 OR (path >= $3 AND path < $4))",
                )
                .bind(id_arg(id))
                .bind(path)
                .bind(low)
                .bind(high)
                .execute(&mut *conn)
                .await
                .map_err(map_err)?;
                Ok(done.rows_affected())
            }

            async fn upsert_file(
                conn: &mut <$db as sqlx::Database>::Connection,
                id: uuid::Uuid,
                file: &$crate::projects::FileWrite,
                at: chrono::DateTime<chrono::Utc>,
            ) -> $crate::Result<()> {
                sqlx::query(
                    "INSERT INTO project_files (project_id, path, content, size, sha256, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) \
                     ON CONFLICT (project_id, path) DO UPDATE SET content = excluded.content, \
                     size = excluded.size, sha256 = excluded.sha256, updated_at = excluded.updated_at",
                )
                .bind(id_arg(id))
                .bind(&file.path)
                .bind(&file.content)
                .bind(i64::try_from(file.content.len()).unwrap_or(i64::MAX))
                .bind(&file.sha256)
                .bind(ts_arg(at))
                .execute(&mut *conn)
                .await
                .map_err(map_err)?;
                Ok(())
            }

            /// One file's write inside a transaction holding the project's lock; `Ok(None)`
            /// when written.
            async fn write_one(
                conn: &mut <$db as sqlx::Database>::Connection,
                id: uuid::Uuid,
                file: &$crate::projects::FileWrite,
                expect: &$crate::projects::Expect,
                at: chrono::DateTime<chrono::Utc>,
            ) -> $crate::Result<Result<bool, $crate::projects::WriteOutcome>> {
                use $crate::projects::{Expect, WriteOutcome};
                let existing = Self::existing_file(conn, id, &file.path).await?;
                let holds = match (expect, &existing) {
                    (Expect::Anything, _) => true,
                    (Expect::Absent, existing) => existing.is_none(),
                    (Expect::Sha256(sha), Some((_, current))) => sha == current,
                    (Expect::Sha256(_), None) => false,
                };
                if !holds {
                    return Ok(Err(WriteOutcome::PreconditionFailed));
                }
                if existing.is_none() {
                    if Self::has_files_below(conn, id, &file.path).await? {
                        return Ok(Err(WriteOutcome::IsADirectory));
                    }
                    if Self::parent_is_file(conn, id, &file.path).await? {
                        return Ok(Err(WriteOutcome::NotADirectory));
                    }
                }
                Self::upsert_file(conn, id, file, at).await?;
                Ok(Ok(existing.is_none()))
            }
        }

        #[async_trait::async_trait]
        impl $crate::projects::ProjectStore for $store {
            async fn create_project(
                &self,
                new: $crate::projects::NewProject,
                max_per_user: u32,
            ) -> $crate::Result<$crate::projects::Project> {
                let at = micros(new.created_at);
                let mut tx = self.pool.begin().await.map_err(map_err)?;
                under_user_cap!(tx, new.user_id, "projects", max_per_user,
                    $crate::projects::PROJECTS_PER_USER);
                sqlx::query(
                    "INSERT INTO projects (id, user_id, name, description, template, created_at, \
                     updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6)",
                )
                .bind(id_arg(new.id))
                .bind(id_arg(new.user_id))
                .bind(&new.name)
                .bind(&new.description)
                .bind(&new.template)
                .bind(ts_arg(at))
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                tx.commit().await.map_err(map_err)?;
                Ok($crate::projects::Project {
                    id: new.id,
                    user_id: new.user_id,
                    name: new.name,
                    description: new.description,
                    template: new.template,
                    created_at: at,
                    updated_at: at,
                    files: 0,
                    bytes: 0,
                })
            }

            async fn project(&self, id: uuid::Uuid) -> $crate::Result<Option<$crate::projects::Project>> {
                let row = sqlx::query(concat!("SELECT ", project_cols!(), " FROM projects p WHERE p.id = $1"))
                    .bind(id_arg(id))
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(map_err)?;
                row.as_ref().map($crate::projects::project_at).transpose()
            }

            async fn projects_of(&self, user_id: uuid::Uuid) -> $crate::Result<Vec<$crate::projects::Project>> {
                let rows = sqlx::query(concat!(
                    "SELECT ", project_cols!(),
                    " FROM projects p WHERE p.user_id = $1 ORDER BY p.created_at DESC, p.id DESC"
                ))
                .bind(id_arg(user_id))
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
                rows.iter().map($crate::projects::project_at).collect()
            }

            async fn update_project(
                &self,
                id: uuid::Uuid,
                name: Option<&str>,
                description: Option<&str>,
                at: chrono::DateTime<chrono::Utc>,
            ) -> $crate::Result<Option<$crate::projects::Project>> {
                let done = sqlx::query(
                    "UPDATE projects SET name = COALESCE($2, name), \
                     description = COALESCE($3, description), updated_at = $4 WHERE id = $1",
                )
                .bind(id_arg(id))
                .bind(name)
                .bind(description)
                .bind(ts_arg(micros(at)))
                .execute(&self.pool)
                .await
                .map_err(map_err)?;
                if done.rows_affected() == 0 {
                    return Ok(None);
                }
                $crate::projects::ProjectStore::project(self, id).await
            }

            async fn delete_project(&self, id: uuid::Uuid) -> $crate::Result<bool> {
                let done = sqlx::query("DELETE FROM projects WHERE id = $1")
                    .bind(id_arg(id))
                    .execute(&self.pool)
                    .await
                    .map_err(map_err)?;
                Ok(done.rows_affected() == 1)
            }

            async fn project_files(
                &self,
                id: uuid::Uuid,
            ) -> $crate::Result<Vec<$crate::projects::ProjectFileMeta>> {
                let rows = sqlx::query(
                    "SELECT path, size, sha256, updated_at FROM project_files \
                     WHERE project_id = $1 ORDER BY path",
                )
                .bind(id_arg(id))
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
                rows.iter().map($crate::projects::file_meta_at).collect()
            }

            async fn project_file(
                &self,
                id: uuid::Uuid,
                path: &str,
            ) -> $crate::Result<Option<$crate::projects::ProjectFile>> {
                let row = sqlx::query(
                    "SELECT path, size, sha256, updated_at, content FROM project_files \
                     WHERE project_id = $1 AND path = $2",
                )
                .bind(id_arg(id))
                .bind(path)
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
                row.map(|r| {
                    Ok($crate::projects::ProjectFile {
                        meta: $crate::projects::file_meta_at(&r)?,
                        content: bytes_at(&r, 4)?,
                    })
                })
                .transpose()
            }

            async fn put_project_file(
                &self,
                id: uuid::Uuid,
                file: $crate::projects::FileWrite,
                expect: $crate::projects::Expect,
                limits: $crate::projects::ProjectLimits,
                at: chrono::DateTime<chrono::Utc>,
            ) -> $crate::Result<$crate::projects::WriteOutcome> {
                use $crate::projects::WriteOutcome;
                let at = micros(at);
                let mut tx = self.pool.begin().await.map_err(map_err)?;
                if !Self::lock_project(&mut tx, id, at).await? {
                    return Ok(WriteOutcome::NoProject);
                }
                let created = match Self::write_one(&mut tx, id, &file, &expect, at).await? {
                    Ok(created) => created,
                    Err(refused) => return Ok(refused),
                };
                let (files, bytes) = Self::file_count_and_bytes(&mut tx, id).await?;
                if files > limits.max_files || bytes > limits.max_bytes {
                    return Ok(WriteOutcome::Full);
                }
                tx.commit().await.map_err(map_err)?;
                Ok(WriteOutcome::Written { created })
            }

            async fn write_project_files(
                &self,
                id: uuid::Uuid,
                batch: $crate::projects::FileBatch,
                limits: $crate::projects::ProjectLimits,
                at: chrono::DateTime<chrono::Utc>,
            ) -> $crate::Result<$crate::projects::WriteOutcome> {
                use $crate::projects::{Expect, WriteOutcome};
                let at = micros(at);
                let mut tx = self.pool.begin().await.map_err(map_err)?;
                if !Self::lock_project(&mut tx, id, at).await? {
                    return Ok(WriteOutcome::NoProject);
                }
                if batch.replace {
                    sqlx::query("DELETE FROM project_files WHERE project_id = $1")
                        .bind(id_arg(id))
                        .execute(&mut *tx)
                        .await
                        .map_err(map_err)?;
                }
                for (path, expect) in &batch.deletes {
                    let holds = match expect {
                        Expect::Anything => true,
                        Expect::Absent => Self::existing_file(&mut tx, id, path).await?.is_none(),
                        Expect::Sha256(sha) => Self::existing_file(&mut tx, id, path)
                            .await?
                            .is_some_and(|(_, current)| &current == sha),
                    };
                    if !holds {
                        return Ok(WriteOutcome::PreconditionFailed);
                    }
                    Self::delete_at_or_below(&mut tx, id, path).await?;
                }
                for (file, expect) in &batch.writes {
                    if let Err(refused) = Self::write_one(&mut tx, id, file, expect, at).await? {
                        return Ok(refused);
                    }
                }
                let (count, bytes) = Self::file_count_and_bytes(&mut tx, id).await?;
                if count > limits.max_files || bytes > limits.max_bytes {
                    return Ok(WriteOutcome::Full);
                }
                tx.commit().await.map_err(map_err)?;
                Ok(WriteOutcome::Written { created: false })
            }

            async fn delete_project_path(
                &self,
                id: uuid::Uuid,
                path: &str,
                at: chrono::DateTime<chrono::Utc>,
            ) -> $crate::Result<u64> {
                let mut tx = self.pool.begin().await.map_err(map_err)?;
                if !Self::lock_project(&mut tx, id, micros(at)).await? {
                    return Ok(0);
                }
                let deleted = Self::delete_at_or_below(&mut tx, id, path).await?;
                tx.commit().await.map_err(map_err)?;
                Ok(deleted)
            }

            async fn move_project_path(
                &self,
                id: uuid::Uuid,
                from: &str,
                to: &str,
                overwrite: bool,
                at: chrono::DateTime<chrono::Utc>,
            ) -> $crate::Result<$crate::projects::MoveOutcome> {
                use $crate::projects::MoveOutcome;
                let at = micros(at);
                let mut tx = self.pool.begin().await.map_err(map_err)?;
                if !Self::lock_project(&mut tx, id, at).await? {
                    return Ok(MoveOutcome::NotFound);
                }
                let is_file = Self::existing_file(&mut tx, id, from).await?.is_some();
                if !is_file && !Self::has_files_below(&mut tx, id, from).await? {
                    return Ok(MoveOutcome::NotFound);
                }
                if Self::parent_is_file(&mut tx, id, to).await? {
                    return Ok(MoveOutcome::NotADirectory);
                }
                let taken = Self::existing_file(&mut tx, id, to).await?.is_some()
                    || Self::has_files_below(&mut tx, id, to).await?;
                if taken {
                    if !overwrite {
                        return Ok(MoveOutcome::Exists);
                    }
                    Self::delete_at_or_below(&mut tx, id, to).await?;
                }
                let (low, high) = $crate::projects::below(from);
                // `from` itself (a file) or everything under it (a directory) takes `to` as
                // its prefix; `length` and `substr` count characters in both engines.
                let done = sqlx::query(
                    "UPDATE project_files SET path = $3 || substr(path, length($2) + 1), \
                     updated_at = $6 \
                     WHERE project_id = $1 AND (path = $2 OR (path >= $4 AND path < $5))",
                )
                .bind(id_arg(id))
                .bind(from)
                .bind(to)
                .bind(low)
                .bind(high)
                .bind(ts_arg(at))
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                tx.commit().await.map_err(map_err)?;
                Ok(MoveOutcome::Moved(done.rows_affected()))
            }
        }
    };
}
