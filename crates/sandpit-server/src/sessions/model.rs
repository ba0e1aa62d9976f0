//! JSON shapes of the sessions API.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use sandpit_store::{Session, SessionStatus};

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct SessionView {
    pub id: Uuid,
    /// `running` (its sandbox is up), `suspended` (live, its sandbox starts on next use — e.g.
    /// after a server restart) or `ended`.
    #[schema(example = "running")]
    pub status: &'static str,
    pub environment: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lab: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<DateTime<Utc>>,
    /// `user`, `expired`, `failed` or `shutdown`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<&'static str>,
}

impl SessionView {
    pub fn new(session: &Session, running: bool) -> Self {
        let status = match (session.status, running) {
            (SessionStatus::Ended, _) => "ended",
            (SessionStatus::Live, true) => "running",
            (SessionStatus::Live, false) => "suspended",
        };
        Self {
            id: session.id,
            status,
            environment: session.environment.clone(),
            lab: session.lab.clone(),
            created_at: session.created_at,
            expires_at: session.expires_at,
            ended_at: session.ended_at,
            end_reason: session.end_reason.map(|r| r.as_str()),
        }
    }
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSession {
    /// `default` (the host's tools; when absent) or `docker` (the same, and a container
    /// engine of the session's own: `docker build`, `docker run` … in its terminal; 503
    /// `docker_unavailable` with the reason when this server cannot run one).
    pub environment: Option<String>,
    /// Time to live in seconds (60 .. `sessions.max_ttl_seconds`); the configured default
    /// when absent.
    pub ttl_seconds: Option<u64>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtendSession {
    /// New time to live from now (never shortens the session); the default when absent.
    pub ttl_seconds: Option<u64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecRequest {
    /// Program and arguments, executed as they are (never through a shell); `argv[0]` is an
    /// absolute path or found on the sandbox's `PATH`.
    #[schema(min_items = 1, max_items = 256, example = json!(["python3", "main.py"]))]
    pub argv: Vec<String>,
    /// Text fed to standard input.
    pub stdin: Option<String>,
    /// Wall-clock limit (default `sessions.exec_default_timeout_ms`, at most
    /// `sessions.exec_max_timeout_ms`).
    pub timeout_ms: Option<u64>,
    /// Working directory relative to the workspace.
    pub cwd: Option<String>,
}
