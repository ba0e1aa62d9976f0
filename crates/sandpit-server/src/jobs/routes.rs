//! `/api/v1/jobs`: a user's jobs, one job, cancelling it, and its events as server-sent events
//! that a reconnecting client resumes with `Last-Event-ID`.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use sandpit_store::{CancelOutcome, Job, JobEvent, JobEventKind, JobFilter, JobState};
use tokio::sync::broadcast;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::model::{EventsQuery, JobEventView, JobList, JobQuery, JobView};
use crate::auth::CurrentUser;
use crate::error::{ApiError, ApiResult, ErrorEnvelope, Json, Path, Query};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_jobs))
        .routes(routes!(get_job))
        .routes(routes!(cancel_job))
        .routes(routes!(job_events))
}

/// The caller's job, or 404 (another user's too).
pub async fn owned_job(state: &AppState, user: Uuid, id: Uuid) -> ApiResult<Job> {
    state
        .store
        .job(id)
        .await?
        .filter(|j| j.user_id == user)
        .ok_or_else(|| ApiError::not_found("job"))
}

/// The caller's jobs, newest first.
#[utoipa::path(get, path = "/api/v1/jobs", tag = "jobs",
    security(("session_cookie" = []), ("bearer" = [])),
    params(JobQuery),
    responses(
        (status = 200, body = JobList),
        (status = 422, description = "`limit` out of range", body = ErrorEnvelope),
    ))]
async fn list_jobs(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
    Query(query): Query<JobQuery>,
) -> ApiResult<Json<JobList>> {
    let limit = query.limit.unwrap_or(50);
    if !(1..=sandpit_store::JOBS_LIMIT_MAX).contains(&limit) {
        return Err(ApiError::Validation {
            field: "limit",
            message: format!("must be between 1 and {}", sandpit_store::JOBS_LIMIT_MAX),
        });
    }
    let filter = JobFilter {
        project_id: query.project,
        state: query.state.map(Into::into),
        kind: query.kind,
        limit,
    };
    let jobs = state.store.jobs_of(principal.user.id, &filter).await?;
    Ok(Json(JobList {
        jobs: jobs.into_iter().map(JobView::from).collect(),
    }))
}

/// One of the caller's jobs.
#[utoipa::path(get, path = "/api/v1/jobs/{id}", tag = "jobs",
    security(("session_cookie" = []), ("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = JobView), (status = 404, body = ErrorEnvelope)))]
async fn get_job(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<JobView>> {
    Ok(Json(owned_job(&state, principal.user.id, id).await?.into()))
}

/// Cancels a queued job at once, or stops a running one (its state turns `cancelled` when its
/// worker has stopped it: at once on the server running it, within a lease renewal on
/// another). Answers the job as it is now.
#[utoipa::path(post, path = "/api/v1/jobs/{id}/cancel", tag = "jobs",
    security(("session_cookie" = []), ("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, body = JobView),
        (status = 404, body = ErrorEnvelope),
        (status = 409, description = "`job_finished`: it completed, failed or was cancelled already", body = ErrorEnvelope),
    ))]
async fn cancel_job(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<JobView>> {
    owned_job(&state, principal.user.id, id).await?;
    match state.queue.cancel(id).await? {
        None => Err(ApiError::not_found("job")),
        Some(CancelOutcome::Finished(finished)) => Err(ApiError::Refused {
            code: "job_finished",
            message: format!("the job has already {}", finished.as_str()),
        }),
        Some(CancelOutcome::Cancelled(job)) => Ok(Json((*job).into())),
        Some(CancelOutcome::Requested) => {
            Ok(Json(owned_job(&state, principal.user.id, id).await?.into()))
        }
    }
}

/// The job's events as server-sent events, from the first (or after `Last-Event-ID` /
/// `?after=`), live as they happen; the stream ends after the job's final state. Each SSE
/// has `id` = the event's `seq` and `event` = its kind (`state`, `progress`, `log`,
/// `result`); `data` is the event as JSON.
#[utoipa::path(get, path = "/api/v1/jobs/{id}/events", tag = "jobs",
    security(("session_cookie" = []), ("bearer" = [])),
    params(("id" = Uuid, Path), EventsQuery,
        ("Last-Event-ID" = Option<u64>, Header, description = "Resume after this event")),
    responses(
        (status = 200, description = "The events", content(
            (JobEventView = "text/event-stream"),
        )),
        (status = 400, description = "`bad_request`: a malformed `Last-Event-ID`", body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
    ))]
async fn job_events(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
    Path(id): Path<Uuid>,
    Query(query): Query<EventsQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    owned_job(&state, principal.user.id, id).await?;
    let after = match headers.get("last-event-id") {
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .ok_or_else(|| ApiError::BadRequest("Last-Event-ID must be an event's seq".into()))?,
        None => query.after.unwrap_or(0),
    };
    let changes = state.queue.subscribe();
    let stream = events_stream(Cursor {
        state,
        id,
        after,
        changes,
        pending: VecDeque::new(),
        done: false,
    });
    Ok((
        StatusCode::OK,
        Sse::new(stream).keep_alive(KeepAlive::default()),
    )
        .into_response())
}

/// How often a stream looks for events written by another server process (this process's own
/// writes wake it at once).
const POLL: Duration = Duration::from_secs(1);

struct Cursor {
    state: AppState,
    id: Uuid,
    after: u64,
    changes: broadcast::Receiver<Uuid>,
    pending: VecDeque<JobEvent>,
    done: bool,
}

fn final_state(event: &JobEvent) -> bool {
    event.kind == JobEventKind::State
        && event.data["state"]
            .as_str()
            .and_then(|s| s.parse::<JobState>().ok())
            .is_some_and(JobState::is_finished)
}

fn sse(event: &JobEvent) -> Event {
    let view = JobEventView {
        seq: event.seq,
        at: event.at,
        kind: event.kind.as_str(),
        data: event.data.clone(),
    };
    Event::default()
        .id(event.seq.to_string())
        .event(event.kind.as_str())
        .json_data(&view)
        .unwrap_or_else(|_| Event::default().event(event.kind.as_str()))
}

fn events_stream(cursor: Cursor) -> impl Stream<Item = Result<Event, Infallible>> {
    futures::stream::unfold(cursor, |mut c| async move {
        loop {
            if let Some(event) = c.pending.pop_front() {
                c.after = event.seq;
                c.done |= final_state(&event);
                return Some((Ok(sse(&event)), c));
            }
            if c.done {
                return None;
            }
            let store = &c.state.store;
            let fetched = match store.job_events(c.id, c.after, 100).await {
                Ok(events) => events,
                Err(e) => {
                    c.done = true;
                    let envelope = ApiError::from(e).into_envelope();
                    let event = Event::default()
                        .event("error")
                        .json_data(&envelope)
                        .unwrap_or_default();
                    return Some((Ok(event), c));
                }
            };
            if !fetched.is_empty() {
                c.pending.extend(fetched);
                continue;
            }
            // Nothing new: a job already over (the client resumed after its end) ends here.
            match store.job(c.id).await {
                Ok(Some(job)) if !(job.state.is_finished() && job.last_event <= c.after) => {}
                _ => return None,
            }
            wait_for_change(&mut c.changes, c.id).await;
        }
    })
}

/// Until this process writes an event of job `id`, or [`POLL`] passes.
async fn wait_for_change(changes: &mut broadcast::Receiver<Uuid>, id: Uuid) {
    let deadline = tokio::time::sleep(POLL);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            changed = changes.recv() => match changed {
                Ok(changed) if changed != id => continue,
                // The queue is gone (shutting down): only the poll is left.
                Err(broadcast::error::RecvError::Closed) => {
                    (&mut deadline).await;
                    return;
                }
                // Ours, or missed some (lagged): look again.
                _ => return,
            },
            _ = &mut deadline => return,
        }
    }
}
