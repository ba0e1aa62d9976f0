//! JSON shapes of the apps API, and the validated parts of an app (its name, runtime, entry).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::error::ApiError;

/// What serves an app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    /// An ASGI or WSGI application (FastAPI, Starlette, Flask, plain), served by uvicorn.
    Python,
    /// A Node program that listens on `$PORT` (Express or `http`).
    Node,
    /// Files served as they are (`index.html` at the root).
    Static,
}

impl Runtime {
    pub fn as_str(self) -> &'static str {
        match self {
            Runtime::Python => "python",
            Runtime::Node => "node",
            Runtime::Static => "static",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Runtime::Python, Runtime::Node, Runtime::Static]
            .into_iter()
            .find(|r| r.as_str() == raw)
    }

    pub fn default_entry(self) -> &'static str {
        match self {
            Runtime::Python => "main:app",
            Runtime::Node => "server.js",
            Runtime::Static => "index.html",
        }
    }
}

/// An app's name: a DNS label (it is a path segment and part of a host name), 1–40
/// characters of `a-z`, `0-9` and inner `-`.
pub fn app_name(raw: &str) -> Result<String, ApiError> {
    let ok = (1..=40).contains(&raw.len())
        && raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !raw.starts_with('-')
        && !raw.ends_with('-');
    if ok {
        Ok(raw.to_owned())
    } else {
        Err(ApiError::Validation {
            field: "name",
            message: "must be 1 to 40 lowercase letters, digits and inner hyphens (it is part \
                      of the app's URL)"
                .into(),
        })
    }
}

/// Checks an entry for its runtime: `module:attribute` for Python, a relative file for the
/// others.
pub fn entry(runtime: Runtime, raw: Option<&str>) -> Result<String, ApiError> {
    let raw = raw.unwrap_or(runtime.default_entry());
    let invalid = |message: &str| ApiError::Validation {
        field: "entry",
        message: message.to_owned(),
    };
    match runtime {
        Runtime::Python => {
            let (module, attr) = raw.split_once(':').unwrap_or((raw, "app"));
            let ident = |s: &str| {
                !s.is_empty()
                    && !s.starts_with(|c: char| c.is_ascii_digit())
                    && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            };
            if module.split('.').all(ident) && ident(attr) {
                Ok(format!("{module}:{attr}"))
            } else {
                Err(invalid(
                    "must be module:attribute, such as main:app (the module main.py, its \
                     variable app)",
                ))
            }
        }
        Runtime::Node | Runtime::Static => {
            crate::sessions::files::FilePath::parse(raw)
                .map_err(|_| invalid("must be a relative file path such as server.js"))?;
            Ok(raw.to_owned())
        }
    }
}

/// Environment variable names: what a shell would accept, and none the platform sets.
pub fn env_vars(
    field: &'static str,
    vars: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, ApiError> {
    const RESERVED: &[&str] = &["PORT", "HOST", "HOME", "PATH", "PYTHONPATH", "NODE_PATH"];
    if vars.len() > 50 {
        return Err(ApiError::Validation {
            field,
            message: "at most 50 variables".into(),
        });
    }
    for (name, value) in vars {
        let valid = !name.is_empty()
            && name.len() <= 100
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(ApiError::Validation {
                field,
                message: format!("{name:?} is not a variable name (letters, digits, _)"),
            });
        }
        if RESERVED.contains(&name.as_str()) {
            return Err(ApiError::Validation {
                field,
                message: format!("{name} is set by the platform"),
            });
        }
        if value.len() > 4096 || value.contains('\0') {
            return Err(ApiError::Validation {
                field,
                message: format!("{name}: values are at most 4096 bytes, without NUL"),
            });
        }
    }
    Ok(vars.clone())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApp {
    /// Unique among the caller's apps; part of its URL.
    #[schema(example = "hello")]
    pub name: String,
    pub runtime: Runtime,
    /// Python: `module:attribute` (default `main:app`); Node: the file to run (default
    /// `server.js`); static: ignored (`index.html`).
    pub entry: Option<String>,
    /// Anyone may call it (default); private: only its owner, signed in.
    #[serde(default = "yes")]
    pub public: bool,
    /// Not deleted when idle.
    #[serde(default)]
    pub pinned: bool,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Like `env`, but never shown again (only their names).
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
}

fn yes() -> bool {
    true
}

/// A change; absent fields stay. `secrets` replaces them all (send `{}` to remove them).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateApp {
    pub name: Option<String>,
    pub entry: Option<String>,
    pub public: Option<bool>,
    pub pinned: Option<bool>,
    pub env: Option<BTreeMap<String, String>>,
    pub secrets: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AppView {
    pub id: Uuid,
    pub name: String,
    pub runtime: Runtime,
    pub entry: String,
    pub public: bool,
    pub pinned: bool,
    pub env: BTreeMap<String, String>,
    /// Names only: values are write-only.
    pub secrets: Vec<String>,
    /// Where it is served.
    #[schema(example = "http://localhost:8080/user/ada/app/hello/")]
    pub url: String,
    /// `running` or `stopped`: what the owner asked for.
    pub desired: String,
    pub live_version: Option<i64>,
    pub last_request_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AppList {
    pub apps: Vec<AppView>,
}

/// Where a deploy's files come from: exactly one of `files`, `session_id`, `project_id`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeployRequest {
    /// Path → UTF-8 text.
    pub files: Option<BTreeMap<String, String>>,
    /// A live session of the caller's: its workspace.
    pub session_id: Option<Uuid>,
    /// A project of the caller's: its files.
    pub project_id: Option<Uuid>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct VersionView {
    pub version: i64,
    pub files: u64,
    pub bytes: u64,
    /// `request`, `session:<id>`, `project:<id>` or `version:<n>` (a rollback).
    pub source: String,
    /// `pending`, `live`, `superseded`, `failed` or `cancelled`.
    pub state: String,
    /// The deploy job (its progress and events: `/api/v1/jobs/{id}`).
    pub job_id: Option<Uuid>,
    /// Why it failed: `{stage, code, message, file?, line?, logs?}`.
    pub error: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<sandpit_store::AppVersion> for VersionView {
    fn from(v: sandpit_store::AppVersion) -> Self {
        Self {
            version: v.version,
            files: v.files,
            bytes: v.bytes,
            source: v.source,
            state: v.state,
            job_id: v.job_id,
            error: v.error,
            created_at: v.created_at,
            finished_at: v.finished_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct VersionList {
    pub versions: Vec<VersionView>,
}

/// A deploy that was queued.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Deployment {
    pub version: VersionView,
    /// Follow it at `/api/v1/jobs/{job_id}/events`.
    pub job_id: Uuid,
}

/// `POST /apps/{id}/rollback`: to `version`, or the one live before the current.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    pub version: Option<i64>,
}

/// How an app is doing on the server that answers.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AppStatus {
    /// `not_deployed`, `deploying` (first deploy), `starting`, `running`, `crashed`
    /// (restarting after a crash), `idle` (stopped for want of requests; the next one starts
    /// it), `stopped` (by its owner) or `failed` (its last deploy failed and none is live).
    pub state: String,
    pub live_version: Option<i64>,
    /// The version the running instance serves.
    pub serving_version: Option<i64>,
    pub restarts: u32,
    pub started_at: Option<DateTime<Utc>>,
    /// The newest version's deploy, while it runs or when it failed.
    pub deploy: Option<VersionView>,
    pub url: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LogLine {
    /// Increasing per app; `Last-Event-ID` of the follow stream.
    pub seq: u64,
    pub at: DateTime<Utc>,
    /// `stdout`, `stderr` or `platform` (what sandpit did: started, exited, restarting).
    pub stream: String,
    pub text: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AppLogs {
    pub lines: Vec<LogLine>,
    /// Lines that were not kept (a flood, or beyond `apps.log_lines`).
    pub dropped: u64,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogsQuery {
    /// Keep the response open and stream new lines as server-sent events.
    #[serde(default)]
    pub follow: bool,
    /// The last lines to send first (default 200).
    pub tail: Option<usize>,
}
