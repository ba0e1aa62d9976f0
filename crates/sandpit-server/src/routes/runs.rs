//! `/api/v1/runs` and `/api/v1/runtimes`: stateless code execution.

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::CurrentUser;
use crate::error::{ApiError, ApiResult, ErrorEnvelope, Json, Path, Query};
use crate::runs::model::{RunRequest, RunResult, RunState, Stage, StageStatus};
use crate::runs::runtimes::RuntimeInfo;
use crate::runs::service::busy;
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
    let registry = state.runs.registry().await?;
    let plan = req.validate(registry, &state.config.runs)?;
    let id = Uuid::now_v7();
    if query.wait {
        let result = state.runs.execute(id, plan).await?;
        return Ok(Json(result).into_response());
    }
    if state.runs.saturated() {
        return Err(busy());
    }
    let owner = principal.user.id;
    let pending = RunResult {
        id,
        state: RunState::Pending,
        runtime: plan.runtime.name.clone(),
        compile: None,
        run: None,
        tests: None,
    };
    state.runs.remember(owner, pending.clone());
    let runs = state.runs.clone();
    let runtime = plan.runtime.name.clone();
    tokio::spawn(async move {
        let result = match runs.execute(id, plan).await {
            Ok(result) => result,
            Err(e) => {
                tracing::warn!(run.id = %id, error = %e, "asynchronous run failed");
                RunResult {
                    id,
                    state: RunState::Done,
                    runtime,
                    compile: None,
                    run: Some(failed_stage(&e)),
                    tests: None,
                }
            }
        };
        runs.remember(owner, result);
    });
    Ok((StatusCode::ACCEPTED, Json(pending)).into_response())
}

/// What an asynchronous run that could not be carried out reports.
fn failed_stage(e: &ApiError) -> Stage {
    let message = match e {
        ApiError::Internal(_) => "internal error".to_owned(),
        other => other.to_string(),
    };
    Stage::not_run(StageStatus::InternalError, message)
}

/// An asynchronous run's state or result. Results are kept for a limited time.
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
    state
        .runs
        .result(principal.user.id, id)
        .map(Json)
        .ok_or_else(|| ApiError::not_found("run"))
}
