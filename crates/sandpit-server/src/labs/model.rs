//! JSON shapes of the labs, judge, progress and hints API.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::sessions::model::SessionView;

/// A learner's progress in one lab.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct LabProgressView {
    pub lab: String,
    pub title: String,
    /// Ids of the steps passed, in the lab's order.
    pub steps_passed: Vec<String>,
    pub steps_total: usize,
    /// Every step passed.
    pub completed: bool,
    /// When the last step still missing was passed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<DateTime<Utc>>,
    pub attempts: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_attempt_at: Option<DateTime<Utc>>,
}

/// What the catalog and a lab's own page both say of a lab.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LabInfo {
    pub slug: String,
    pub title: String,
    pub summary: String,
    /// `beginner`, `intermediate` or `advanced`.
    #[schema(example = "beginner")]
    pub difficulty: &'static str,
    pub tags: Vec<String>,
    pub environment: String,
    /// The caller's progress.
    pub progress: LabProgressView,
}

/// A lab in the catalog.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LabSummary {
    #[serde(flatten)]
    pub info: LabInfo,
    /// How many steps it has.
    pub steps: usize,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StepView {
    pub id: String,
    pub title: String,
    /// The step's instructions (GitHub-flavoured markdown).
    pub markdown: String,
    /// How many checks the judge runs for it.
    pub checks: usize,
    /// How many authored hints it has.
    pub hints: usize,
    /// The caller has passed it.
    pub passed: bool,
}

/// A lab with its steps.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LabView {
    #[serde(flatten)]
    pub info: LabInfo,
    pub ttl_minutes: Option<u64>,
    pub steps: Vec<StepView>,
    /// The caller's live session for this lab, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_session: Option<SessionView>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LabList {
    pub labs: Vec<LabSummary>,
}

/// `POST /labs/{slug}/start`: the session, and whether it was just created.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StartedLab {
    pub session: SessionView,
    pub created: bool,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JudgeRequest {
    /// The step to judge; the caller's first step not yet passed when absent.
    pub step: Option<String>,
}

/// One failed expectation.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct FailureView {
    /// Stable, machine-readable (`calc_missing`, `dockerfile.pinned_base`, `tests.timeout`).
    pub code: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: String,
}

/// One judge run of a step.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AttemptView {
    pub id: Uuid,
    pub lab: String,
    pub step: String,
    pub session_id: Uuid,
    pub passed: bool,
    pub failures: Vec<FailureView>,
    /// `total_ms`, `program_ms` (time in the learner's programs), `overhead_ms` (the judge's
    /// own), and per check `{code, kind, status, elapsed_ms, program_ms, reason?, sizes?}`.
    #[schema(value_type = Object)]
    pub metrics: serde_json::Value,
    /// Logs: a failing check's output, an app's last lines, skipped checks.
    pub notes: Vec<String>,
    pub submitted_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AttemptList {
    pub attempts: Vec<AttemptView>,
}

#[derive(Debug, Default, Deserialize, ToSchema, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AttemptQuery {
    /// Only this lab's attempts.
    pub lab: Option<String>,
    /// Only this session's attempts.
    pub session: Option<Uuid>,
    /// At most this many (1-500, default 50), newest first.
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProgressList {
    pub labs: Vec<LabProgressView>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HintRequest {
    /// The step; the caller's first step not yet passed when absent.
    pub step: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExplainRequest {
    /// What to explain (`"list comprehensions"`, `"HEALTHCHECK"`).
    pub topic: Option<String>,
    /// Code to explain.
    pub code: Option<String>,
    /// An error message to explain.
    pub error: Option<String>,
}

/// An answer to a hint or explain request, and who gave it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HintView {
    pub text: String,
    /// `llm` (a language model), `authored` (the lab's hints) or `failures` (the hints of the
    /// last judge failures).
    #[schema(example = "authored")]
    pub source: &'static str,
    pub step: String,
    /// The provider that answered (`source: llm`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Why a configured provider did not answer (the ladder answered instead).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback_reason: Option<String>,
    /// For ladder answers: which rung (1-based) and how many there are.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub levels: Option<usize>,
}
