//! JSON shapes of the projects API.

use chrono::{DateTime, Utc};
use sandpit_store::Project;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::sessions::model::SessionView;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProjectView {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    /// What it started from: `empty`, `python`, `web`.
    pub template: String,
    /// How many files, and their bytes.
    pub files: u64,
    pub bytes: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Project> for ProjectView {
    fn from(p: Project) -> Self {
        Self {
            id: p.id,
            name: p.name,
            description: p.description,
            template: p.template,
            files: p.files,
            bytes: p.bytes,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProjectList {
    pub projects: Vec<ProjectView>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProject {
    /// 1–100 characters, unique among the caller's projects (ignoring case).
    #[schema(example = "Snake game", min_length = 1, max_length = 100)]
    pub name: String,
    /// At most 2000 characters.
    #[serde(default)]
    #[schema(max_length = 2000)]
    pub description: String,
    /// `empty` (default), `python` (a module and its unittest tests) or `web` (a static
    /// page).
    #[schema(example = "python")]
    pub template: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProject {
    #[schema(min_length = 1, max_length = 100)]
    pub name: Option<String>,
    #[schema(max_length = 2000)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProjectEntry {
    pub path: String,
    /// `file` or `dir` (directories exist by the files in them).
    #[schema(example = "file")]
    pub kind: &'static str,
    pub size: u64,
    /// A file's entity tag (send it as `If-Match`).
    pub etag: Option<String>,
    pub modified: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProjectTree {
    pub entries: Vec<ProjectEntry>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProjectWritten {
    pub path: String,
    pub size: u64,
    pub etag: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ProjectFileOp {
    /// `move` (rename a file or a directory).
    pub op: String,
    /// The destination path.
    pub to: Option<String>,
    /// Replace what is at `to`.
    #[serde(default)]
    pub overwrite: bool,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Moved {
    pub path: String,
    /// Files moved (one for a file, every file under a directory).
    pub files: u64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProjectUploaded {
    /// Files written.
    pub files: usize,
    pub bytes: u64,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenProject {
    /// The session's time to live (default `sessions.default_ttl_seconds`).
    pub ttl_seconds: Option<u64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OpenedProject {
    pub session: SessionView,
    /// Files copied into its workspace.
    pub files: usize,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SaveProject {
    /// One of the caller's live sessions: its workspace replaces the project's files.
    pub session_id: Uuid,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SavedProject {
    pub project: ProjectView,
    /// Workspace entries left out: links, FIFOs, devices (a project holds files only).
    pub skipped: Vec<String>,
}
