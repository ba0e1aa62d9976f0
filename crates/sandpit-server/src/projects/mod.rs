//! Projects: a user's named files kept in the store (a virtual file system with the same path
//! rules and ETags as workspace files), opened as a session and saved back from one; agent
//! jobs work on them. `routes.rs` is the HTTP side, `archive.rs` the `.tar.gz` both ways.

pub mod archive;
pub mod model;
pub mod routes;

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::Utc;
use sandpit_store::{
    Expect, FileBatch, FileWrite, MoveOutcome, NewProject, PROJECTS_PER_USER, Project, ProjectFile,
    ProjectLimits, Store, StoreError, WriteOutcome,
};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use self::archive::{Limits, Others, UnpackError};
use self::model::{
    CreateProject, OpenedProject, ProjectEntry, ProjectTree, ProjectView, SavedProject,
    UpdateProject,
};
use crate::config::ProjectsConfig;
use crate::error::ApiError;
use crate::sessions::Sessions;
use crate::sessions::files::{FilePath, etag};

/// The files a new project starts with, by template name.
const TEMPLATES: &[(&str, &[(&str, &str)])] = &[
    ("empty", &[]),
    (
        "python",
        &[
            (
                "main.py",
                "def greet(name):\n    \"\"\"A greeting for `name`.\"\"\"\n    return f\"Hello, {name}!\"\n\n\nif __name__ == \"__main__\":\n    print(greet(\"world\"))\n",
            ),
            (
                "test_main.py",
                "import unittest\n\nfrom main import greet\n\n\nclass GreetTest(unittest.TestCase):\n    def test_greets_by_name(self):\n        self.assertEqual(greet(\"Ada\"), \"Hello, Ada!\")\n\n\nif __name__ == \"__main__\":\n    unittest.main()\n",
            ),
        ],
    ),
    (
        "web",
        &[
            (
                "index.html",
                "<!doctype html>\n<html lang=\"en\">\n<head>\n  <meta charset=\"utf-8\">\n  <title>My page</title>\n  <link rel=\"stylesheet\" href=\"style.css\">\n</head>\n<body>\n  <h1>Hello</h1>\n</body>\n</html>\n",
            ),
            (
                "style.css",
                "body { font-family: system-ui, sans-serif; margin: 2rem; }\n",
            ),
        ],
    ),
];

fn template_names() -> String {
    TEMPLATES
        .iter()
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Hex SHA-256, a file's version (its ETag is this in quotes, as for workspace files).
pub fn sha256_hex(content: &[u8]) -> String {
    hex::encode(Sha256::digest(content))
}

fn not_found() -> ApiError {
    ApiError::not_found("project")
}

pub struct Projects {
    store: Arc<dyn Store>,
    config: ProjectsConfig,
    sessions: Arc<Sessions>,
}

impl Projects {
    pub fn new(store: Arc<dyn Store>, config: ProjectsConfig, sessions: Arc<Sessions>) -> Self {
        Self {
            store,
            config,
            sessions,
        }
    }

    pub fn config(&self) -> &ProjectsConfig {
        &self.config
    }

    fn limits(&self) -> ProjectLimits {
        ProjectLimits {
            max_files: self.config.max_files,
            max_bytes: self.config.max_bytes,
        }
    }

    fn full(&self) -> ApiError {
        ApiError::TooLarge {
            code: "project_full",
            message: format!(
                "the project would be over its limits: {} files, {} bytes \
                 (projects.max_files, projects.max_bytes)",
                self.config.max_files, self.config.max_bytes
            ),
        }
    }

    /// The caller's project, or 404 (another user's too).
    pub async fn owned(&self, user: Uuid, id: Uuid) -> Result<Project, ApiError> {
        self.store
            .project(id)
            .await?
            .filter(|p| p.user_id == user)
            .ok_or_else(not_found)
    }

    pub async fn create(&self, user: Uuid, req: CreateProject) -> Result<ProjectView, ApiError> {
        let name = project_name(&req.name)?;
        let description = description(&req.description)?;
        let template = req.template.unwrap_or_else(|| "empty".into());
        let Some((_, files)) = TEMPLATES.iter().find(|(t, _)| *t == template) else {
            return Err(ApiError::Validation {
                field: "template",
                message: format!("unknown template; available: {}", template_names()),
            });
        };
        let new = NewProject {
            id: Uuid::now_v7(),
            user_id: user,
            name,
            description,
            template,
            created_at: Utc::now(),
        };
        let project = self
            .store
            .create_project(new, self.config.max_per_user)
            .await
            .map_err(|e| self.create_error(e))?;
        if !files.is_empty() {
            let writes = files
                .iter()
                .map(|(path, content)| file_write(path, content.as_bytes().to_vec()))
                .collect();
            self.write_all(project.id, writes, false).await?;
        }
        Ok(self.owned(user, project.id).await?.into())
    }

    fn create_error(&self, e: StoreError) -> ApiError {
        match e {
            StoreError::Conflict { constraint } if constraint == PROJECTS_PER_USER => {
                ApiError::Refused {
                    code: "project_limit",
                    message: format!(
                        "you have {} projects (projects.max_per_user); delete one first",
                        self.config.max_per_user
                    ),
                }
            }
            other => name_taken(other),
        }
    }

    pub async fn list(&self, user: Uuid) -> Result<Vec<ProjectView>, ApiError> {
        Ok(self
            .store
            .projects_of(user)
            .await?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    pub async fn update(
        &self,
        user: Uuid,
        id: Uuid,
        req: UpdateProject,
    ) -> Result<ProjectView, ApiError> {
        self.owned(user, id).await?;
        let name = req.name.as_deref().map(project_name).transpose()?;
        let description = req.description.as_deref().map(description).transpose()?;
        self.store
            .update_project(id, name.as_deref(), description.as_deref(), Utc::now())
            .await
            .map_err(name_taken)?
            .map(Into::into)
            .ok_or_else(not_found)
    }

    pub async fn delete(&self, user: Uuid, id: Uuid) -> Result<(), ApiError> {
        self.owned(user, id).await?;
        self.store.delete_project(id).await?;
        Ok(())
    }

    /// The files and the directories they imply, in path order; only under `dir` when given.
    pub async fn tree(
        &self,
        user: Uuid,
        id: Uuid,
        dir: Option<&FilePath>,
    ) -> Result<ProjectTree, ApiError> {
        self.owned(user, id).await?;
        let files = self.store.project_files(id).await?;
        let prefix = dir.map(|d| format!("{}/", d.workspace().as_str()));
        let mut dirs = BTreeSet::new();
        let mut entries = Vec::new();
        for file in files {
            if prefix.as_ref().is_some_and(|p| !file.path.starts_with(p)) {
                continue;
            }
            for (i, _) in file.path.match_indices('/') {
                let parent = &file.path[..i];
                if prefix.as_ref().is_none_or(|p| parent.len() >= p.len())
                    && dirs.insert(parent.to_owned())
                {
                    entries.push(ProjectEntry {
                        path: parent.to_owned(),
                        kind: "dir",
                        size: 0,
                        etag: None,
                        modified: None,
                    });
                }
            }
            entries.push(ProjectEntry {
                etag: Some(etag(&file.sha256)),
                path: file.path,
                kind: "file",
                size: file.size,
                modified: Some(file.updated_at),
            });
        }
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(ProjectTree { entries })
    }

    /// A file, or `None` when `path` is a directory (files lie under it); 404 when neither.
    pub async fn read(
        &self,
        user: Uuid,
        id: Uuid,
        path: &FilePath,
    ) -> Result<Option<ProjectFile>, ApiError> {
        self.owned(user, id).await?;
        let key = path.workspace().as_str();
        if let Some(file) = self.store.project_file(id, key).await? {
            return Ok(Some(file));
        }
        let under = format!("{key}/");
        let is_dir = self
            .store
            .project_files(id)
            .await?
            .iter()
            .any(|f| f.path.starts_with(&under));
        if is_dir {
            Ok(None)
        } else {
            Err(ApiError::NotFound("no such file or directory".into()))
        }
    }

    /// Writes a file; true when it was created.
    pub async fn write(
        &self,
        user: Uuid,
        id: Uuid,
        path: &FilePath,
        content: Vec<u8>,
        expect: Expect,
    ) -> Result<(bool, String), ApiError> {
        self.owned(user, id).await?;
        if content.len() as u64 > self.config.max_file_bytes {
            return Err(ApiError::TooLarge {
                code: "file_too_large",
                message: format!(
                    "files are limited to {} bytes (projects.max_file_bytes)",
                    self.config.max_file_bytes
                ),
            });
        }
        let write = file_write(path.workspace().as_str(), content);
        let sha = write.sha256.clone();
        let outcome = self
            .store
            .put_project_file(id, write, expect, self.limits(), Utc::now())
            .await?;
        match outcome {
            WriteOutcome::Written { created } => Ok((created, sha)),
            other => Err(self.refused(other)),
        }
    }

    pub fn refused(&self, outcome: WriteOutcome) -> ApiError {
        match outcome {
            WriteOutcome::PreconditionFailed => ApiError::PreconditionFailed(
                "the file changed since you read it (its ETag no longer matches)".into(),
            ),
            WriteOutcome::IsADirectory => ApiError::Refused {
                code: "is_a_directory",
                message: "the path is a directory".into(),
            },
            WriteOutcome::NotADirectory => ApiError::Refused {
                code: "not_a_directory",
                message: "a part of the path is a file, not a directory".into(),
            },
            WriteOutcome::Full => self.full(),
            WriteOutcome::NoProject | WriteOutcome::Written { .. } => not_found(),
        }
    }

    async fn write_all(
        &self,
        id: Uuid,
        files: Vec<FileWrite>,
        replace: bool,
    ) -> Result<(), ApiError> {
        let batch = FileBatch {
            replace,
            ..FileBatch::writes(files)
        };
        self.write_batch(id, batch).await
    }

    /// Makes a batch of changes, all or none.
    pub async fn write_batch(&self, id: Uuid, batch: FileBatch) -> Result<(), ApiError> {
        match self
            .store
            .write_project_files(id, batch, self.limits(), Utc::now())
            .await?
        {
            WriteOutcome::Written { .. } => Ok(()),
            other => Err(self.refused(other)),
        }
    }

    pub async fn delete_path(&self, user: Uuid, id: Uuid, path: &FilePath) -> Result<(), ApiError> {
        self.owned(user, id).await?;
        match self
            .store
            .delete_project_path(id, path.workspace().as_str(), Utc::now())
            .await?
        {
            0 => Err(ApiError::NotFound("no such file or directory".into())),
            _ => Ok(()),
        }
    }

    pub async fn move_path(
        &self,
        user: Uuid,
        id: Uuid,
        from: &FilePath,
        to: &FilePath,
        overwrite: bool,
    ) -> Result<u64, ApiError> {
        self.owned(user, id).await?;
        let (from, to) = (from.workspace().as_str(), to.workspace().as_str());
        if to == from || to.starts_with(&format!("{from}/")) {
            return Err(ApiError::Validation {
                field: "to",
                message: "cannot move a path onto or into itself".into(),
            });
        }
        match self
            .store
            .move_project_path(id, from, to, overwrite, Utc::now())
            .await?
        {
            MoveOutcome::Moved(n) => Ok(n),
            MoveOutcome::NotFound => Err(ApiError::NotFound("no such file or directory".into())),
            MoveOutcome::Exists => Err(ApiError::Refused {
                code: "already_exists",
                message: "something already exists at that path (overwrite=true replaces it)"
                    .into(),
            }),
            MoveOutcome::NotADirectory => Err(self.refused(WriteOutcome::NotADirectory)),
        }
    }

    /// Every file with its content, in path order.
    pub async fn contents(&self, id: Uuid) -> Result<Vec<ProjectFile>, ApiError> {
        let mut out = Vec::new();
        for meta in self.store.project_files(id).await? {
            // Deleted meanwhile: left out.
            if let Some(file) = self.store.project_file(id, &meta.path).await? {
                out.push(file);
            }
        }
        Ok(out)
    }

    pub async fn archive(&self, user: Uuid, id: Uuid) -> Result<Vec<u8>, ApiError> {
        self.owned(user, id).await?;
        let files = self.contents(id).await?;
        archive::pack(files.iter().map(|f| {
            (
                f.meta.path.as_str(),
                f.content.as_slice(),
                f.meta.updated_at,
            )
        }))
        .map_err(ApiError::internal)
    }

    fn unpack_limits(&self) -> Limits {
        Limits {
            max_entries: self.config.max_files,
            max_file_bytes: self.config.max_file_bytes,
            max_total_bytes: self.config.max_bytes,
        }
    }

    /// Unpacks an upload into the project (merged); refused whole on any bad entry.
    pub async fn upload(
        &self,
        user: Uuid,
        id: Uuid,
        bytes: &[u8],
    ) -> Result<(usize, u64), ApiError> {
        self.owned(user, id).await?;
        if bytes.len() as u64 > self.config.max_archive_bytes {
            return Err(ApiError::TooLarge {
                code: "archive_too_large",
                message: format!(
                    "archives are limited to {} bytes (projects.max_archive_bytes)",
                    self.config.max_archive_bytes
                ),
            });
        }
        let unpacked =
            archive::unpack(bytes, self.unpack_limits(), Others::Refuse).map_err(unpack_error)?;
        let count = unpacked.files.len();
        let total = unpacked.files.values().map(|c| c.len() as u64).sum();
        let writes = unpacked
            .files
            .into_iter()
            .map(|(path, content)| file_write(&path, content))
            .collect();
        self.write_all(id, writes, false).await?;
        Ok((count, total))
    }

    /// A new session of the caller's whose workspace holds the project's files.
    pub async fn open(
        &self,
        user: Uuid,
        id: Uuid,
        ttl_seconds: Option<u64>,
    ) -> Result<OpenedProject, ApiError> {
        self.owned(user, id).await?;
        let files = self
            .contents(id)
            .await?
            .into_iter()
            .map(|f| {
                let path = FilePath::parse(&f.meta.path)?.workspace().clone();
                Ok((path, f.content))
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
        let count = files.len();
        let session = self
            .sessions
            .create_with_files(user, ttl_seconds, files)
            .await?;
        Ok(OpenedProject {
            session,
            files: count,
        })
    }

    /// Replaces the project's files with a live session's workspace (files only).
    pub async fn save(
        &self,
        user: Uuid,
        id: Uuid,
        session_id: Uuid,
    ) -> Result<SavedProject, ApiError> {
        self.owned(user, id).await?;
        let sandbox = self.sessions.sandbox(user, session_id).await?;
        let packed = sandbox
            .pack(None, self.config.max_archive_bytes)
            .await
            .map_err(|e| match e {
                sandpit_sandbox::SandboxError::File(
                    sandpit_sandbox::protocol::FileError::TooLarge(_),
                ) => ApiError::TooLarge {
                    code: "archive_too_large",
                    message: format!(
                        "the workspace packs to more than {} bytes (projects.max_archive_bytes)",
                        self.config.max_archive_bytes
                    ),
                },
                other => crate::sessions::sandbox_error(other),
            })?;
        let unpacked =
            archive::unpack(&packed, self.unpack_limits(), Others::Skip).map_err(unpack_error)?;
        let writes = unpacked
            .files
            .into_iter()
            .map(|(path, content)| file_write(&path, content))
            .collect();
        self.write_all(id, writes, true).await?;
        Ok(SavedProject {
            project: self.owned(user, id).await?.into(),
            skipped: unpacked.skipped,
        })
    }
}

pub fn file_write(path: &str, content: Vec<u8>) -> FileWrite {
    FileWrite {
        path: path.to_owned(),
        sha256: sha256_hex(&content),
        content,
    }
}

fn unpack_error(e: UnpackError) -> ApiError {
    match e {
        UnpackError::TooLarge(detail) => ApiError::TooLarge {
            code: "archive_too_large",
            message: format!("the archive unpacks beyond the project's limits: {detail}"),
        },
        other => ApiError::Validation {
            field: "archive",
            message: other.to_string(),
        },
    }
}

fn name_taken(e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict {
            constraint: "projects.name",
        } => ApiError::Conflict("you already have a project of that name".into()),
        other => other.into(),
    }
}

fn project_name(raw: &str) -> Result<String, ApiError> {
    let name = raw.trim();
    let len = name.chars().count();
    if len == 0 || len > 100 || name.chars().any(char::is_control) {
        return Err(ApiError::Validation {
            field: "name",
            message: "must be 1 to 100 characters, without control characters".into(),
        });
    }
    Ok(name.to_owned())
}

fn description(raw: &str) -> Result<String, ApiError> {
    if raw.chars().count() > 2000 {
        return Err(ApiError::Validation {
            field: "description",
            message: "must be at most 2000 characters".into(),
        });
    }
    Ok(raw.to_owned())
}
