//! `/api/v1/projects/{id}/jobs` (start an agent job, list a project's jobs) and
//! `/api/v1/jobs/{id}/accept` (apply a code job's change set).

use axum::extract::State;
use axum::http::StatusCode;
use chrono::Utc;
use sandpit_store::{JobFilter, NewJob};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::output::ChangeAction;
use super::{CreateAgentJob, apply, change_set};
use crate::auth::CurrentUser;
use crate::error::{ApiError, ApiResult, ErrorEnvelope, Json, Path};
use crate::jobs::model::{JobList, JobView};
use crate::jobs::routes::owned_job;
use crate::projects::model::ProjectView;
use crate::projects::sha256_hex;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_agent_job, list_project_jobs))
        .routes(routes!(accept_changes))
}

/// Start an agent job on the project: `research`, `wireframe`, `code`, `qa` or `pedagogy`.
/// It runs in the background (202); follow `GET /api/v1/jobs/{id}/events`.
#[utoipa::path(post, path = "/api/v1/projects/{id}/jobs", tag = "projects",
    security(("session_cookie" = []), ("bearer" = [])),
    params(("id" = Uuid, Path)),
    request_body = CreateAgentJob,
    responses(
        (status = 202, description = "Queued", body = JobView),
        (status = 404, body = ErrorEnvelope),
        (status = 422, description = "An unknown kind, or input it cannot take", body = ErrorEnvelope),
    ))]
async fn create_agent_job(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
    Path(id): Path<Uuid>,
    Json(req): Json<CreateAgentJob>,
) -> ApiResult<(StatusCode, Json<JobView>)> {
    let user = principal.user.id;
    state.projects.owned(user, id).await?;
    req.input.validate(req.kind)?;
    let kind = req.kind.as_str();
    let now = Utc::now();
    let timeout = state.config.jobs.timeout(kind);
    let job = state
        .queue
        .enqueue(NewJob {
            id: Uuid::now_v7(),
            kind: kind.to_owned(),
            user_id: user,
            project_id: Some(id),
            input: serde_json::to_value(&req.input).map_err(ApiError::internal)?,
            priority: 0,
            max_attempts: state.config.jobs.max_attempts,
            timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            run_at: now,
            created_at: now,
        })
        .await?;
    Ok((StatusCode::ACCEPTED, Json(job.into())))
}

/// The project's jobs, newest first.
#[utoipa::path(get, path = "/api/v1/projects/{id}/jobs", tag = "projects",
    security(("session_cookie" = []), ("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = JobList), (status = 404, body = ErrorEnvelope)))]
async fn list_project_jobs(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<JobList>> {
    let user = principal.user.id;
    state.projects.owned(user, id).await?;
    let filter = JobFilter {
        project_id: Some(id),
        limit: 100,
        ..JobFilter::default()
    };
    let jobs = state.store.jobs_of(user, &filter).await?;
    Ok(Json(JobList {
        jobs: jobs.into_iter().map(JobView::from).collect(),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    /// The paths written or deleted.
    pub changed: Vec<String>,
    /// The change set was already in place (accepted before): nothing was written.
    pub already: bool,
    pub project: ProjectView,
}

/// Apply a completed code job's change set to its project: all of it, and only if every
/// file it touches is still the version the job read (else 409 `change_set_stale`, naming
/// them). Accepting again answers `already: true`.
#[utoipa::path(post, path = "/api/v1/jobs/{id}/accept", tag = "jobs",
    security(("session_cookie" = []), ("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, body = Accepted),
        (status = 404, description = "No such job of the caller's, or its project is gone", body = ErrorEnvelope),
        (status = 409, description = "`not_a_change_set` (not a completed code job, or it applied its changes itself), `change_set_stale`, `is_a_directory`, `not_a_directory`", body = ErrorEnvelope),
        (status = 413, description = "`project_full`", body = ErrorEnvelope),
    ))]
async fn accept_changes(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Accepted>> {
    let user = principal.user.id;
    let job = owned_job(&state, user, id).await?;
    let changes = change_set(&job)?;
    let project_id = job
        .project_id
        .ok_or_else(|| ApiError::not_found("project"))?;
    state.projects.owned(user, project_id).await?;
    let changed: Vec<String> = changes.iter().map(|c| c.path.clone()).collect();
    let already = match apply(&state.projects, project_id, &changes).await {
        Ok(()) => false,
        Err(ApiError::Refused {
            code: "change_set_stale",
            message,
        }) => {
            // Stale because it is in place already (accepted before)? Then say so.
            let current = state.projects.contents(project_id).await?;
            let in_place = changes.iter().all(|c| {
                let now = current.iter().find(|f| f.meta.path == c.path);
                match c.action {
                    ChangeAction::Delete => now.is_none(),
                    ChangeAction::Write => now.is_some_and(|f| {
                        f.meta.sha256
                            == sha256_hex(c.content.as_deref().unwrap_or_default().as_bytes())
                    }),
                }
            });
            if !in_place {
                return Err(ApiError::Refused {
                    code: "change_set_stale",
                    message,
                });
            }
            true
        }
        Err(other) => return Err(other),
    };
    Ok(Json(Accepted {
        changed,
        already,
        project: state.projects.owned(user, project_id).await?.into(),
    }))
}
