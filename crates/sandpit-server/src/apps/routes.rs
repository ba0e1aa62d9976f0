//! `/api/v1/apps`: a user's apps, deploying them (a durable job per version: follow it at
//! `/api/v1/jobs/{id}/events`), their status, logs (a live stream with `follow=true`),
//! stopping, starting, versions and rollbacks. Serving them is `proxy.rs`.

use std::convert::Infallible;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use tokio::sync::broadcast;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::model::{
    AppList, AppLogs, AppStatus, AppView, CreateApp, DeployRequest, Deployment, LogLine, LogsQuery,
    RollbackRequest, UpdateApp, VersionList,
};
use crate::auth::CurrentUser;
use crate::error::{ApiError, ApiResult, ErrorEnvelope, Json, OptionalJson, Path, Query};
use crate::state::AppState;

pub fn router(state: &AppState) -> OpenApiRouter<AppState> {
    // A deploy's files travel as JSON text: a little over the limit, so the limit answers
    // with its own message.
    let deploy_body = usize::try_from(state.apps.config().max_bytes)
        .unwrap_or(usize::MAX)
        .saturating_mul(2)
        .saturating_add(64 << 10);
    OpenApiRouter::new()
        .routes(routes!(create_app, list_apps))
        .routes(routes!(get_app, update_app, delete_app))
        .routes(routes!(app_status))
        .routes(routes!(app_logs))
        .routes(routes!(stop_app))
        .routes(routes!(start_app))
        .routes(routes!(app_versions))
        .routes(routes!(rollback_app))
        .merge(
            OpenApiRouter::new()
                .routes(routes!(deploy_app))
                .layer(DefaultBodyLimit::max(deploy_body)),
        )
}

/// Create an app (nothing runs until it is deployed).
#[utoipa::path(post, path = "/api/v1/apps", tag = "apps",
    security(("session_cookie" = []), ("bearer" = [])),
    request_body = CreateApp,
    responses(
        (status = 201, body = AppView),
        (status = 409, description = "`conflict`: the name is taken; `app_limit`: too many apps", body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope),
    ))]
async fn create_app(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
    Json(req): Json<CreateApp>,
) -> ApiResult<(StatusCode, Json<AppView>)> {
    let user = &principal.user;
    let app = state.apps.create(user.id, &user.username, req).await?;
    Ok((StatusCode::CREATED, Json(app)))
}

/// The caller's apps, newest first.
#[utoipa::path(get, path = "/api/v1/apps", tag = "apps",
    security(("session_cookie" = []), ("bearer" = [])),
    responses((status = 200, body = AppList)))]
async fn list_apps(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
) -> ApiResult<Json<AppList>> {
    let user = &principal.user;
    Ok(Json(AppList {
        apps: state.apps.list(user.id, &user.username).await?,
    }))
}

#[utoipa::path(get, path = "/api/v1/apps/{id}", tag = "apps",
    security(("session_cookie" = []), ("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = AppView), (status = 404, body = ErrorEnvelope)))]
async fn get_app(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<AppView>> {
    let user = &principal.user;
    Ok(Json(state.apps.get(user.id, &user.username, id).await?))
}

/// Change an app's name, entry, visibility, pinning, variables or secrets (they apply from
/// the next deploy or start).
#[utoipa::path(patch, path = "/api/v1/apps/{id}", tag = "apps",
    security(("session_cookie" = []), ("bearer" = [])),
    params(("id" = Uuid, Path)),
    request_body = UpdateApp,
    responses(
        (status = 200, body = AppView),
        (status = 404, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope),
    ))]
async fn update_app(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
    Path(id): Path<Uuid>,
    Json(req): Json<UpdateApp>,
) -> ApiResult<Json<AppView>> {
    let user = &principal.user;
    Ok(Json(
        state.apps.update(user.id, &user.username, id, req).await?,
    ))
}

/// Delete an app: its instance stops and its versions are gone.
#[utoipa::path(delete, path = "/api/v1/apps/{id}", tag = "apps",
    security(("session_cookie" = []), ("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = ErrorEnvelope)))]
async fn delete_app(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    state.apps.delete(principal.user.id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deploy files as a new version: from the request, a live session's workspace, or a
/// project. The deploy is a job: validating → installing → starting → healthy.
#[utoipa::path(post, path = "/api/v1/apps/{id}/deploy", tag = "apps",
    security(("session_cookie" = []), ("bearer" = [])),
    params(("id" = Uuid, Path)),
    request_body = DeployRequest,
    responses(
        (status = 202, body = Deployment),
        (status = 404, description = "no such app, session or project", body = ErrorEnvelope),
        (status = 413, description = "`app_too_large`", body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope),
    ))]
async fn deploy_app(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
    Path(id): Path<Uuid>,
    Json(req): Json<DeployRequest>,
) -> ApiResult<(StatusCode, Json<Deployment>)> {
    let deployment = state.apps.deploy(principal.user.id, id, req).await?;
    Ok((StatusCode::ACCEPTED, Json(deployment)))
}

/// How the app is doing: its state, the version serving, restarts, the latest deploy.
#[utoipa::path(get, path = "/api/v1/apps/{id}/status", tag = "apps",
    security(("session_cookie" = []), ("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = AppStatus), (status = 404, body = ErrorEnvelope)))]
async fn app_status(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<AppStatus>> {
    let user = &principal.user;
    Ok(Json(state.apps.status(user.id, &user.username, id).await?))
}

/// The app's log on this server: its output and what the platform did. With `follow=true`,
/// server-sent events (`line`), resumable with `Last-Event-ID` while the lines are kept.
#[utoipa::path(get, path = "/api/v1/apps/{id}/logs", tag = "apps",
    security(("session_cookie" = []), ("bearer" = [])),
    params(("id" = Uuid, Path), LogsQuery),
    responses(
        (status = 200, body = AppLogs, content(
            (AppLogs = "application/json"),
            (LogLine = "text/event-stream"),
        )),
        (status = 400, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
    ))]
async fn app_logs(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
    Path(id): Path<Uuid>,
    Query(query): Query<LogsQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    state.apps.owned(principal.user.id, id).await?;
    let tail = query.tail.unwrap_or(200).min(10_000);
    let logs = state.apps.slot(id).logs.clone();
    if !query.follow {
        return Ok(Json(logs.tail(tail)).into_response());
    }
    let resume = match headers.get("last-event-id") {
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| ApiError::BadRequest("Last-Event-ID must be a line's seq".into()))?,
        ),
        None => None,
    };
    // Subscribe first, so no line falls between the backlog and the live feed.
    let live = logs.subscribe();
    let backlog = match resume {
        Some(seq) => logs.since(seq),
        None => logs.tail(tail).lines,
    };
    let last = backlog.last().map_or(resume.unwrap_or(0), |l| l.seq);
    let live = futures::stream::unfold((live, last), |(mut rx, last)| async move {
        loop {
            match rx.recv().await {
                Ok(line) if line.seq <= last => continue,
                Ok(line) => {
                    let seq = line.seq;
                    return Some((line, (rx, seq)));
                }
                // Fell behind a flood: go on from what comes next.
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    let stream = futures::stream::iter(backlog)
        .chain(live)
        .map(|line| Ok::<_, Infallible>(event(&line)));
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

fn event(line: &LogLine) -> Event {
    Event::default()
        .id(line.seq.to_string())
        .event("line")
        .json_data(line)
        .unwrap_or_else(|_| Event::default().event("line"))
}

/// Stop the app until it is started again (requests get a page saying so).
#[utoipa::path(post, path = "/api/v1/apps/{id}/stop", tag = "apps",
    security(("session_cookie" = []), ("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = ErrorEnvelope)))]
async fn stop_app(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    state.apps.set_desired(principal.user.id, id, false).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Start a stopped app again (its next request starts its live version).
#[utoipa::path(post, path = "/api/v1/apps/{id}/start", tag = "apps",
    security(("session_cookie" = []), ("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = ErrorEnvelope)))]
async fn start_app(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    state.apps.set_desired(principal.user.id, id, true).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The app's versions, newest first (at most `apps.keep_versions` ended ones are kept).
#[utoipa::path(get, path = "/api/v1/apps/{id}/versions", tag = "apps",
    security(("session_cookie" = []), ("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = VersionList), (status = 404, body = ErrorEnvelope)))]
async fn app_versions(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<VersionList>> {
    Ok(Json(VersionList {
        versions: state.apps.versions(principal.user.id, id).await?,
    }))
}

/// Deploy an earlier version's files again: `version`, or the one live before the current.
#[utoipa::path(post, path = "/api/v1/apps/{id}/rollback", tag = "apps",
    security(("session_cookie" = []), ("bearer" = [])),
    params(("id" = Uuid, Path)),
    request_body = RollbackRequest,
    responses(
        (status = 202, body = Deployment),
        (status = 404, body = ErrorEnvelope),
        (status = 409, description = "`no_previous_version`, `version_pending`", body = ErrorEnvelope),
    ))]
async fn rollback_app(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
    Path(id): Path<Uuid>,
    OptionalJson(req): OptionalJson<RollbackRequest>,
) -> ApiResult<(StatusCode, Json<Deployment>)> {
    let deployment = state.apps.rollback(principal.user.id, id, req).await?;
    Ok((StatusCode::ACCEPTED, Json(deployment)))
}
