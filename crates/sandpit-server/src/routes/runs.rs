//! `/api/v1/runs` and `/api/v1/runtimes`: stateless code execution.

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use sandpit_store::NewJob;

use crate::auth::CurrentUser;
use crate::error::{ApiError, ApiResult, ErrorEnvelope, Json, Path, Query};
use crate::runs::job;
use crate::runs::model::{RunRequest, RunResult};
use crate::runs::runtimes::RuntimeInfo;
use crate::state::AppState;

pub fn router(state: &AppState) -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_run))
        .layer(DefaultBodyLimit::max(state.config.runs.max_request_bytes))
        .routes(routes!(get_run))
        .routes(routes!(list_runtimes))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RuntimeList {
    pub runtimes: Vec<RuntimeInfo>,
}

/// The languages this server can run (detected on first use).
#[utoipa::path(get, path = "/api/v1/runtimes", tag = "runs",
    security(("session_cookie" = []), ("bearer" = [])),
    responses(
        (status = 200, body = RuntimeList),
        (status = 401, body = ErrorEnvelope),
        (status = 503, description = "No sandbox backend on this host", body = ErrorEnvelope),
    ))]
async fn list_runtimes(
    State(state): State<AppState>,
    _user: CurrentUser,
) -> ApiResult<Json<RuntimeList>> {
    let registry = state.runs.registry().await?;
    Ok(Json(RuntimeList {
        runtimes: registry.list(),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunQuery {
    /// `false`: answer 202 at once and poll `GET /api/v1/runs/{id}`.
    #[serde(default = "yes")]
    pub wait: bool,
}

fn yes() -> bool {
    true
}

/// Run code: compile once (compiled languages), then run once or once per test case.
#[utoipa::path(post, path = "/api/v1/runs", tag = "runs",
    security(("session_cookie" = []), ("bearer" = [])),
    params(RunQuery),
    request_body = RunRequest,
    responses(
        (status = 200, description = "Finished", body = RunResult),
        (status = 202, description = "Accepted (`wait=false`); poll the id", body = RunResult),
        (status = 401, body = ErrorEnvelope),
        (status = 413, body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope),
        (status = 503, description = "Too many runs waiting (Retry-After) or no sandbox backend", body = ErrorEnvelope),
    ))]
async fn create_run(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
    Query(query): Query<RunQuery>,
    Json(req): Json<RunRequest>,
) -> ApiResult<Response> {
    let mut input = serde_json::to_value(&req).map_err(ApiError::internal)?;
    let registry = state.runs.registry().await?;
    let plan = req.validate(registry, &state.config.runs)?;
    if query.wait {
        let result = state.runs.execute(Uuid::now_v7(), plan).await?;
        return Ok(Json(result).into_response());
    }
    // Stored with the canonical runtime name, which the pending answer reports.
    input["runtime"] = serde_json::Value::String(plan.runtime.name.clone());
    let now = chrono::Utc::now();
    let job = state
        .queue
        .enqueue(NewJob {
            id: Uuid::now_v7(),
            kind: job::KIND.into(),
            user_id: principal.user.id,
            project_id: None,
            input,
            priority: 0,
            max_attempts: state.config.jobs.max_attempts,
            timeout_ms: millis(state.config.jobs.timeout(job::KIND)),
            run_at: now,
            created_at: now,
        })
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(job::result_of(&job, &plan.runtime.name)),
    )
        .into_response())
}

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// An asynchronous run's state or result, from any server sharing the store (finished runs
/// are kept `jobs.keep_finished_days`).
#[utoipa::path(get, path = "/api/v1/runs/{id}", tag = "runs",
    security(("session_cookie" = []), ("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, body = RunResult),
        (status = 401, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
    ))]
async fn get_run(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<RunResult>> {
    let job = state
        .store
        .job(id)
        .await?
        .filter(|j| j.user_id == principal.user.id && j.kind == job::KIND)
        .ok_or_else(|| ApiError::not_found("run"))?;
    let runtime = job.input["runtime"].as_str().unwrap_or_default().to_owned();
    Ok(Json(job::result_of(&job, &runtime)))
}
