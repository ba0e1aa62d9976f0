//! JSON shapes of the jobs API.

use chrono::{DateTime, Utc};
use sandpit_store::{Job, JobState};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// A job's state: `queued` → `running` → `completed` | `failed` | `cancelled` (a failed
/// attempt that may be retried goes back to `queued`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobStateName {
    Queued,
    Running,
    Completed,
    Failed,
    Cancelled,
}

impl From<JobState> for JobStateName {
    fn from(s: JobState) -> Self {
        match s {
            JobState::Queued => Self::Queued,
            JobState::Running => Self::Running,
            JobState::Completed => Self::Completed,
            JobState::Failed => Self::Failed,
            JobState::Cancelled => Self::Cancelled,
        }
    }
}

impl From<JobStateName> for JobState {
    fn from(s: JobStateName) -> Self {
        match s {
            JobStateName::Queued => Self::Queued,
            JobStateName::Running => Self::Running,
            JobStateName::Completed => Self::Completed,
            JobStateName::Failed => Self::Failed,
            JobStateName::Cancelled => Self::Cancelled,
        }
    }
}

/// Why a job's last attempt failed.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobErrorView {
    /// Stable (`timeout`, `lease_expired`, `llm_not_configured` …).
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobView {
    pub id: Uuid,
    /// `run` (an asynchronous run) …
    pub kind: String,
    pub project_id: Option<Uuid>,
    pub state: JobStateName,
    /// 0–100, with what the job is doing.
    pub progress: u8,
    pub progress_message: Option<String>,
    /// Attempts started, and the most it gets.
    pub attempts: u32,
    pub max_attempts: u32,
    /// Cancellation was asked while it runs.
    pub cancel_requested: bool,
    /// Set when completed; its shape depends on the kind.
    #[schema(value_type = Option<Object>)]
    pub result: Option<serde_json::Value>,
    /// The last failed attempt's error (also while queued for a retry).
    pub error: Option<JobErrorView>,
    pub created_at: DateTime<Utc>,
    /// Not started before this (a retry waits its backoff).
    pub run_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<Job> for JobView {
    fn from(j: Job) -> Self {
        Self {
            id: j.id,
            kind: j.kind,
            project_id: j.project_id,
            state: j.state.into(),
            progress: j.progress,
            progress_message: j.progress_message,
            attempts: j.attempts,
            max_attempts: j.max_attempts,
            cancel_requested: j.cancel_requested,
            result: j.result,
            error: j.error.map(|e| JobErrorView {
                code: e.code,
                message: e.message,
            }),
            created_at: j.created_at,
            run_at: j.run_at,
            started_at: j.started_at,
            finished_at: j.finished_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobList {
    pub jobs: Vec<JobView>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct JobQuery {
    /// Only this project's jobs.
    pub project: Option<Uuid>,
    /// Only jobs in this state.
    pub state: Option<JobStateName>,
    /// Only jobs of this kind.
    pub kind: Option<String>,
    /// At most this many (1-500, default 50), newest first.
    pub limit: Option<u32>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Resume after this event (as `Last-Event-ID` does; the header wins).
    pub after: Option<u64>,
}

/// One event of a job's stream (also the SSE `data`; the SSE `event` is `kind`, its `id` is
/// `seq`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobEventView {
    pub seq: u64,
    pub at: DateTime<Utc>,
    /// `state` `{state, attempt?, error?, retry_at?, cancel_requested?}`, `progress`
    /// `{percent, message}`, `log` `{line}`, `result` `{result}`.
    #[schema(example = "progress")]
    pub kind: &'static str,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}
