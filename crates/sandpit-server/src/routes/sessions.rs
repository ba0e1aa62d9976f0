//! `/api/v1/sessions`: a learner's sandbox with a persistent workspace and a time to live.

use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use sandpit_sandbox::{ProcessSpec, WorkspacePath};

use crate::auth::CurrentUser;
use crate::error::{ApiError, ApiResult, ErrorEnvelope, Json, OptionalJson, Path, Query};
use crate::runs::model::Stage;
use crate::sessions::model::{CreateSession, ExecRequest, ExtendSession, SessionView};
use crate::sessions::sandbox_error;
use crate::state::AppState;
use crate::terminal::protocol::clamp_size;
use crate::terminal::socket;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_session, list_sessions))
        .routes(routes!(get_session, end_session))
        .routes(routes!(extend_session))
        .routes(routes!(exec))
        .routes(routes!(terminal))
        .routes(routes!(share))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TerminalQuery {
    /// Initial size when this attach starts the shell (default 24 × 80).
    pub rows: Option<u16>,
    pub cols: Option<u16>,
    /// A share token (`POST …/share`): watch someone else's terminal, read-only.
    pub share: Option<String>,
}

/// The session's terminal, a WebSocket (protocol: `docs/terminal-protocol.md`). One login
/// shell per session, shared by every client; it outlives a dropped connection for
/// `sessions.terminal.grace_secs`, and a reconnect gets the screen back. With the session
/// cookie, only this server's own pages may open it (`Origin`, see `docs/API.md`).
#[utoipa::path(get, path = "/api/v1/sessions/{id}/terminal", tag = "sessions",
    security(("session_cookie" = []), ("bearer" = [])),
    params(("id" = Uuid, Path), TerminalQuery),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol"),
        (status = 400, description = "Not a WebSocket upgrade", body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope),
        (status = 403, description = "`forbidden`: a wrong share token", body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 409, description = "`session_ended`", body = ErrorEnvelope),
        (status = 503, description = "`sandbox_unavailable`: this host cannot start the session's sandbox", body = ErrorEnvelope),
    ))]
async fn terminal(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
    Path(id): Path<Uuid>,
    Query(query): Query<TerminalQuery>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    let upgrade = upgrade.map_err(|_| {
        ApiError::BadRequest("the terminal is a WebSocket: send an upgrade request".into())
    })?;
    let (session, read_only) = match &query.share {
        Some(token) => {
            if !state.sessions.check_share_token(id, token) {
                return Err(ApiError::Forbidden("this share link is not valid"));
            }
            let session = state.sessions.get_live_any(id).await?;
            let owner = session.user_id == principal.user.id;
            (session, !owner)
        }
        None => (state.sessions.get_live(principal.user.id, id).await?, false),
    };
    let (rows, cols) = clamp_size(
        u64::from(query.rows.unwrap_or(24)),
        u64::from(query.cols.unwrap_or(80)),
    );
    let hub = state.sessions.terminal(&session, rows, cols).await?;
    Ok(socket::limit(upgrade)
        .on_upgrade(move |socket| socket::serve(socket, hub, read_only))
        .into_response())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ShareLink {
    /// Pass as `?share=` to the terminal route; valid while the session lives.
    pub token: String,
    /// The read-only terminal's path (a WebSocket).
    pub terminal: String,
}

/// A read-only link to this session's terminal, for an instructor to watch (they must be
/// signed in).
#[utoipa::path(post, path = "/api/v1/sessions/{id}/share", tag = "sessions",
    security(("session_cookie" = []), ("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, body = ShareLink),
        (status = 401, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 409, description = "`session_ended`", body = ErrorEnvelope),
    ))]
async fn share(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<ShareLink>> {
    state.sessions.get_live(principal.user.id, id).await?;
    let token = state.sessions.share_token(id);
    Ok(Json(ShareLink {
        terminal: format!("/api/v1/sessions/{id}/terminal?share={token}"),
        token,
    }))
}

/// Start a session: a sandbox with an empty persistent workspace.
#[utoipa::path(post, path = "/api/v1/sessions", tag = "sessions",
    security(("session_cookie" = []), ("bearer" = [])),
    request_body = CreateSession,
    responses(
        (status = 201, body = SessionView),
        (status = 401, body = ErrorEnvelope),
        (status = 409, description = "`session_limit`: too many live sessions", body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope),
        (status = 503, description = "`sandbox_unavailable`: no sandbox backend on this host; `docker_unavailable`: the docker environment cannot run here (the message says why; Retry-After while it is being checked)", body = ErrorEnvelope),
    ))]
async fn create_session(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
    OptionalJson(req): OptionalJson<CreateSession>,
) -> ApiResult<(StatusCode, Json<SessionView>)> {
    let view = state
        .sessions
        .create(principal.user.id, req.environment, req.ttl_seconds)
        .await?;
    Ok((StatusCode::CREATED, Json(view)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Include ended sessions.
    #[serde(default)]
    pub all: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionList {
    pub sessions: Vec<SessionView>,
}

/// The caller's sessions, newest first (live ones only unless `all=true`).
#[utoipa::path(get, path = "/api/v1/sessions", tag = "sessions",
    security(("session_cookie" = []), ("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, body = SessionList),
        (status = 401, body = ErrorEnvelope),
    ))]
async fn list_sessions(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
    Query(query): Query<ListQuery>,
) -> ApiResult<Json<SessionList>> {
    let sessions = state.sessions.list(principal.user.id, query.all).await?;
    Ok(Json(SessionList { sessions }))
}

/// One of the caller's sessions (ended ones too).
#[utoipa::path(get, path = "/api/v1/sessions/{id}", tag = "sessions",
    security(("session_cookie" = []), ("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, body = SessionView),
        (status = 401, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
    ))]
async fn get_session(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<SessionView>> {
    let session = state.sessions.get(principal.user.id, id).await?;
    Ok(Json(state.sessions.view(&session)))
}

/// End a session: its processes stop and its workspace is deleted.
#[utoipa::path(delete, path = "/api/v1/sessions/{id}", tag = "sessions",
    security(("session_cookie" = []), ("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses(
        (status = 204, description = "Ended"),
        (status = 401, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 409, description = "`session_ended`: already ended", body = ErrorEnvelope),
    ))]
async fn end_session(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    state.sessions.end(principal.user.id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Give a live session more time: it expires `ttl_seconds` from now (never earlier than it
/// would have).
#[utoipa::path(post, path = "/api/v1/sessions/{id}/extend", tag = "sessions",
    security(("session_cookie" = []), ("bearer" = [])),
    params(("id" = Uuid, Path)),
    request_body = ExtendSession,
    responses(
        (status = 200, body = SessionView),
        (status = 401, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 409, description = "`session_ended`", body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope),
    ))]
async fn extend_session(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
    Path(id): Path<Uuid>,
    OptionalJson(req): OptionalJson<ExtendSession>,
) -> ApiResult<Json<SessionView>> {
    let view = state
        .sessions
        .extend(principal.user.id, id, req.ttl_seconds)
        .await?;
    Ok(Json(view))
}

const MAX_EXEC_ARGS: usize = 256;
const MAX_EXEC_BYTES: usize = 256 << 10;

/// Run a program inside the session's sandbox (same processes, files and loopback network as
/// its terminal) and wait for it.
#[utoipa::path(post, path = "/api/v1/sessions/{id}/exec", tag = "sessions",
    security(("session_cookie" = []), ("bearer" = [])),
    params(("id" = Uuid, Path)),
    request_body = ExecRequest,
    responses(
        (status = 200, body = Stage),
        (status = 401, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 409, description = "`session_ended`", body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope),
        (status = 503, body = ErrorEnvelope),
    ))]
async fn exec(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
    Path(id): Path<Uuid>,
    Json(req): Json<ExecRequest>,
) -> ApiResult<Json<Stage>> {
    let config = state.sessions.config();
    let invalid = |field, message: &str| ApiError::Validation {
        field,
        message: message.to_owned(),
    };
    if req.argv.is_empty() || req.argv[0].is_empty() {
        return Err(invalid("argv", "must name a program"));
    }
    if req.argv.len() > MAX_EXEC_ARGS
        || req.argv.iter().map(String::len).sum::<usize>() > MAX_EXEC_BYTES
    {
        return Err(invalid("argv", "too many or too long arguments"));
    }
    if req.argv.iter().any(|a| a.contains('\0')) {
        return Err(invalid("argv", "arguments cannot contain NUL bytes"));
    }
    let timeout_ms = req.timeout_ms.unwrap_or(config.exec_default_timeout_ms);
    if timeout_ms == 0 || timeout_ms > config.exec_max_timeout_ms {
        return Err(ApiError::Validation {
            field: "timeout_ms",
            message: format!("must be between 1 and {}", config.exec_max_timeout_ms),
        });
    }
    let mut spec = ProcessSpec::new(req.argv);
    // `.` and an empty string name the workspace itself.
    if let Some(cwd) = req
        .cwd
        .as_deref()
        .filter(|c| !matches!(*c, "" | "." | "./"))
    {
        let path = WorkspacePath::parse(cwd).map_err(|e| ApiError::Validation {
            field: "cwd",
            message: e.to_string(),
        })?;
        spec.cwd = path.in_sandbox();
    }
    spec.limits = state.sessions.process_limits(Some(timeout_ms));
    let session = state.sessions.get_live(principal.user.id, id).await?;
    state.sessions.apply_environment(&session, &mut spec);
    let sandbox = state.sessions.sandbox_of_session(&session).await?;
    let stdin = req.stdin.unwrap_or_default();
    let stage = crate::runs::service::execute(sandbox.as_ref(), spec, stdin.as_bytes())
        .await
        .map_err(sandbox_error)?;
    Ok(Json(stage))
}
