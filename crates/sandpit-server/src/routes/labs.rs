//! `/api/v1/labs`: the catalog with the caller's progress, one lab with its steps, starting
//! a lab (or resuming the caller's live session of it).

use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::CurrentUser;
use crate::error::{ApiError, ApiResult, ErrorEnvelope, Json, Path};
use crate::labs::model::{LabList, LabView, StartedLab};
use crate::sessions::model::SessionView;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_labs))
        .routes(routes!(get_lab))
        .routes(routes!(start_lab))
        .routes(routes!(active_session))
}

/// Every lab, with the caller's progress in each.
#[utoipa::path(get, path = "/api/v1/labs", tag = "labs",
    security(("session_cookie" = []), ("bearer" = [])),
    responses((status = 200, body = LabList), (status = 401, body = ErrorEnvelope)))]
async fn list_labs(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
) -> ApiResult<Json<LabList>> {
    let labs = state.labs.list(principal.user.id).await?;
    Ok(Json(LabList { labs }))
}

/// A lab with its steps (markdown), the caller's progress and live session.
#[utoipa::path(get, path = "/api/v1/labs/{slug}", tag = "labs",
    security(("session_cookie" = []), ("bearer" = [])),
    params(("slug" = String, Path)),
    responses((status = 200, body = LabView), (status = 401, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope)))]
async fn get_lab(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
    Path(slug): Path<String>,
) -> ApiResult<Json<LabView>> {
    Ok(Json(state.labs.view(principal.user.id, &slug).await?))
}

/// Starts the lab: a new session with the lab's environment, limits and starter files (201),
/// or the caller's live session of it (200).
#[utoipa::path(post, path = "/api/v1/labs/{slug}/start", tag = "labs",
    security(("session_cookie" = []), ("bearer" = [])),
    params(("slug" = String, Path)),
    responses(
        (status = 200, description = "The caller's live session of the lab", body = StartedLab),
        (status = 201, description = "A new session", body = StartedLab),
        (status = 401, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 409, description = "`session_limit`", body = ErrorEnvelope),
        (status = 503, body = ErrorEnvelope),
    ))]
async fn start_lab(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
    Path(slug): Path<String>,
) -> ApiResult<(StatusCode, Json<StartedLab>)> {
    let started = state.labs.start(principal.user.id, &slug).await?;
    let status = if started.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(started)))
}

/// The caller's live session of the lab (404 when there is none).
#[utoipa::path(get, path = "/api/v1/labs/{slug}/active", tag = "labs",
    security(("session_cookie" = []), ("bearer" = [])),
    params(("slug" = String, Path)),
    responses((status = 200, body = SessionView), (status = 401, body = ErrorEnvelope),
        (status = 404, description = "No such lab, or no live session of it", body = ErrorEnvelope)))]
async fn active_session(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
    Path(slug): Path<String>,
) -> ApiResult<Json<SessionView>> {
    state.labs.lab(&slug)?;
    match state.labs.active(principal.user.id, &slug).await? {
        Some(session) => Ok(Json(state.sessions.view(&session))),
        None => Err(ApiError::NotFound(
            "you have no live session of this lab; start it".into(),
        )),
    }
}
