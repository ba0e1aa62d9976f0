//! Judging: `POST /api/v1/sessions/{id}/judge` (JSON, or progress as server-sent events),
//! `/api/v1/attempts` (+ `/{id}`) and `/api/v1/progress`.

use std::convert::Infallible;

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream::{Stream, StreamExt};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::CurrentUser;
use crate::error::{ApiError, ApiResult, ErrorEnvelope, Json, OptionalJson, Path, Query};
use sandpit_labs::judge::JudgeEvent;

use crate::labs::LabStep;
use crate::labs::model::{AttemptList, AttemptQuery, AttemptView, JudgeRequest, ProgressList};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(judge))
        .routes(routes!(list_attempts))
        .routes(routes!(get_attempt))
        .routes(routes!(progress))
}

/// Judges a step of a lab session (the caller's first step not yet passed when `step` is
/// absent) and records the attempt. With `Accept: text/event-stream` the answer is a stream of
/// server-sent events: `started`, `check_started`, `check_finished` as the checks run, then
/// `attempt` (the attempt, as the JSON answer would be) or `error` (an error envelope).
#[utoipa::path(post, path = "/api/v1/sessions/{id}/judge", tag = "labs",
    security(("session_cookie" = []), ("bearer" = [])),
    params(("id" = Uuid, Path)),
    request_body(content = JudgeRequest, description = "May be empty"),
    responses(
        (status = 200, description = "The attempt; with `Accept: text/event-stream`, its progress as server-sent events (`started`, `check_started`, `check_finished`, then `attempt` or `error`)", content(
            (AttemptView = "application/json"),
            (String = "text/event-stream"),
        )),
        (status = 401, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 409, description = "`session_ended`, `not_a_lab_session`, `judge_busy`", body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope),
        (status = 503, description = "`sandbox_lost` (the sandbox stopped mid-judge), `sandbox_unavailable`", body = ErrorEnvelope),
    ))]
async fn judge(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    OptionalJson(req): OptionalJson<JudgeRequest>,
) -> ApiResult<Response> {
    let user = principal.user.id;
    let wants_events = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"));
    // Refused here, before a stream starts, what can be refused with a status code.
    let target = state
        .labs
        .session_step(user, id, req.step.as_deref())
        .await?;
    if !wants_events {
        let attempt = state.labs.judge(user, target, None).await?;
        return Ok(Json(attempt).into_response());
    }
    Ok(Sse::new(judge_events(state, user, target))
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// Runs the judge in its own task (a client that goes away does not cut an attempt short)
/// and streams its progress as it comes, then the attempt or the error.
fn judge_events(
    state: AppState,
    user: Uuid,
    target: LabStep,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let (progress, progress_rx) = tokio::sync::mpsc::unbounded_channel();
    // The progress sender lives as long as the judge: the stream of events ends with it.
    let judged = tokio::spawn(async move { state.labs.judge(user, target, Some(&progress)).await });
    let events = futures::stream::unfold(progress_rx, |mut rx| async move {
        let event = rx.recv().await?;
        let name = match &event {
            JudgeEvent::Started { .. } => "started",
            JudgeEvent::CheckStarted { .. } => "check_started",
            JudgeEvent::CheckFinished { .. } => "check_finished",
            JudgeEvent::CheckOutput { .. } => "check_output",
        };
        Some((Ok(sse_json(name, &event)), rx))
    });
    let last = futures::stream::once(async move {
        Ok(match judged.await {
            Ok(Ok(attempt)) => sse_json("attempt", &attempt),
            Ok(Err(e)) => sse_json("error", &e.into_envelope()),
            Err(e) => sse_json("error", &ApiError::internal(e).into_envelope()),
        })
    });
    events.chain(last)
}

fn sse_json(name: &str, value: &impl serde::Serialize) -> Event {
    Event::default()
        .event(name)
        .json_data(value)
        .unwrap_or_else(|_| Event::default().event(name))
}

/// The caller's attempts, newest first, optionally of one lab and/or one session.
#[utoipa::path(get, path = "/api/v1/attempts", tag = "labs",
    security(("session_cookie" = []), ("bearer" = [])),
    params(AttemptQuery),
    responses((status = 200, body = AttemptList), (status = 401, body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope)))]
async fn list_attempts(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
    Query(query): Query<AttemptQuery>,
) -> ApiResult<Json<AttemptList>> {
    let attempts = state.labs.attempts(principal.user.id, query).await?;
    Ok(Json(AttemptList { attempts }))
}

/// One of the caller's attempts (another user's is not found).
#[utoipa::path(get, path = "/api/v1/attempts/{id}", tag = "labs",
    security(("session_cookie" = []), ("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = AttemptView), (status = 401, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope)))]
async fn get_attempt(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<AttemptView>> {
    Ok(Json(state.labs.attempt(principal.user.id, id).await?))
}

/// The caller's progress in every lab they have attempted.
#[utoipa::path(get, path = "/api/v1/progress", tag = "labs",
    security(("session_cookie" = []), ("bearer" = [])),
    responses((status = 200, body = ProgressList), (status = 401, body = ErrorEnvelope)))]
async fn progress(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
) -> ApiResult<Json<ProgressList>> {
    let labs = state.labs.progress(principal.user.id).await?;
    Ok(Json(ProgressList { labs }))
}
