//! A Judge0 CE-compatible API under `/judge0`, for the clients, SDKs and grading scripts
//! written against Judge0: submissions (single and batch, `base64_encoded`, `wait`,
//! `fields`), languages with Judge0's ids, statuses, `/about` and `/config_info`.
//!
//! A submission is a durable job of kind [`KIND`] (any replica's workers run it, any replica
//! answers for it) whose result is its [`Outcome`]. Callers authenticate with a sandpit token
//! in `X-Auth-Token` (Judge0's header) or `Authorization: Bearer`; a submission is its
//! submitter's alone (another user's token is not found). Errors come in Judge0's shapes:
//! `422 {"field": ["message"]}` for a bad submission, `{"error": "..."}` otherwise.
//! `docs/compat.md` lists what is and is not Judge0's behaviour.

pub(crate) mod catalog;
pub mod config;
mod files;
mod outcome;
mod submission;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{Next, from_fn};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use sandpit_jobs::{Failure, Handler, JobContext};
use sandpit_store::{Job, JobState, NewJob};

use crate::auth::CurrentUser;
use crate::error::ApiError;
use crate::state::AppState;
use catalog::{STATUSES, Status};
pub use config::Judge0Config;
use outcome::{Outcome, View};
use submission::{Context, Errors, Submission};

pub const KIND: &str = "judge0";

/// Longest a `wait=true` request waits beyond the submission's own time limits.
const WAIT_SLACK: Duration = Duration::from_secs(30);

pub fn router(state: &AppState) -> Router<AppState> {
    let routes = Router::new()
        .route("/judge0/about", get(about))
        .route("/judge0/config_info", get(config_info))
        .route("/judge0/statuses", get(statuses))
        .route("/judge0/languages", get(languages))
        .route("/judge0/languages/{id}", get(language))
        .route("/judge0/submissions", post(create))
        .route(
            "/judge0/submissions/batch",
            post(create_batch).get(get_batch),
        )
        .route("/judge0/submissions/{token}", get(get_one));
    super::with_api_layers(routes, state).layer(from_fn(auth_token_header))
}

/// Judge0's `X-Auth-Token` is read as a bearer token when no `Authorization` is sent.
async fn auth_token_header(mut req: Request, next: Next) -> Response {
    if !req.headers().contains_key(header::AUTHORIZATION)
        && let Some(token) = req.headers().get("x-auth-token").cloned()
        && let Ok(token) = token.to_str()
        && let Ok(value) = HeaderValue::from_str(&format!("Bearer {token}"))
    {
        req.headers_mut().insert(header::AUTHORIZATION, value);
    }
    next.run(req).await
}

/// An error in the shape Judge0's clients read.
enum Judge0Error {
    Invalid(Errors),
    Bad(String),
    Api(ApiError),
}

impl From<ApiError> for Judge0Error {
    fn from(e: ApiError) -> Self {
        Judge0Error::Api(e)
    }
}

impl IntoResponse for Judge0Error {
    fn into_response(self) -> Response {
        match self {
            Judge0Error::Invalid(errors) => {
                (StatusCode::UNPROCESSABLE_ENTITY, axum::Json(errors)).into_response()
            }
            Judge0Error::Bad(message) => (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"error": message})),
            )
                .into_response(),
            Judge0Error::Api(e) => {
                // Status and Retry-After as sandpit answers them; the body as Judge0's.
                let status = e.status();
                let message = match &e {
                    ApiError::Internal(_) => "internal error".to_owned(),
                    other => other.to_string(),
                };
                let mut response = e.into_response();
                *response.body_mut() =
                    axum::body::Body::from(json!({"error": message}).to_string());
                *response.status_mut() = status;
                response
            }
        }
    }
}

type Result<T> = std::result::Result<T, Judge0Error>;

fn not_found(what: &str) -> Judge0Error {
    Judge0Error::Api(ApiError::NotFound(what.to_owned()))
}

#[derive(Debug, Deserialize)]
struct Options {
    base64_encoded: Option<String>,
    wait: Option<String>,
    fields: Option<String>,
    tokens: Option<String>,
}

impl Options {
    fn flag(value: Option<&String>, name: &str) -> Result<bool> {
        match value.map(String::as_str) {
            None | Some("false") | Some("0") | Some("") => Ok(false),
            Some("true") | Some("1") => Ok(true),
            Some(_) => Err(Judge0Error::Bad(format!("{name} must be true or false"))),
        }
    }

    fn base64(&self) -> Result<bool> {
        Self::flag(self.base64_encoded.as_ref(), "base64_encoded")
    }

    fn fields(&self) -> Result<Vec<&'static str>> {
        outcome::fields(self.fields.as_deref()).map_err(Judge0Error::Bad)
    }
}

async fn about() -> axum::Json<Value> {
    axum::Json(json!({
        "version": catalog::VERSION,
        "homepage": "https://github.com/sandpit",
        "source_code": "https://github.com/sandpit",
        "maintainer": "sandpit: a Judge0 CE-compatible API over sandpit's runs engine",
    }))
}

async fn config_info(
    State(state): State<AppState>,
    user: std::result::Result<CurrentUser, ApiError>,
) -> Result<axum::Json<Value>> {
    user?;
    let runs = &state.config.runs;
    let (d, m) = (&runs.default_limits, &runs.max_limits);
    let seconds = |ms: u64| ms as f64 / 1000.0;
    Ok(axum::Json(json!({
        "maintenance_mode": false,
        "enable_wait_result": true,
        "enable_compiler_options": true,
        "allowed_languages_for_compile_options": ["C", "C++"],
        "enable_command_line_arguments": true,
        "enable_submission_delete": false,
        "enable_callbacks": !state.config.judge0.callback_hosts.is_empty(),
        "callbacks_max_tries": CALLBACK_TRIES,
        "callbacks_timeout": CALLBACK_TIMEOUT.as_secs_f64(),
        "enable_additional_files": true,
        "max_queue_size": state.runs.max_concurrent() * 8,
        "cpu_time_limit": seconds(d.cpu_ms),
        "max_cpu_time_limit": seconds(m.cpu_ms),
        "cpu_extra_time": 0.0,
        "max_cpu_extra_time": seconds(m.cpu_ms),
        "wall_time_limit": seconds(d.wall_ms),
        "max_wall_time_limit": seconds(m.wall_ms),
        "memory_limit": d.memory_mb << 10,
        "max_memory_limit": m.memory_mb << 10,
        "stack_limit": submission::STACK_KB,
        "max_stack_limit": submission::MAX_STACK_KB,
        "max_processes_and_or_threads": d.processes,
        "max_max_processes_and_or_threads": m.processes,
        "enable_per_process_and_thread_time_limit": false,
        "allow_enable_per_process_and_thread_time_limit": false,
        "enable_per_process_and_thread_memory_limit": false,
        "allow_enable_per_process_and_thread_memory_limit": false,
        "max_file_size": d.file_size_bytes >> 10,
        "max_max_file_size": m.file_size_bytes >> 10,
        "number_of_runs": 1,
        "max_number_of_runs": submission::MAX_RUNS,
        "redirect_stderr_to_stdout": false,
        "max_extract_size": state.config.judge0.max_extract_kb,
        "enable_batched_submissions": true,
        "max_submission_batch_size": state.config.judge0.max_batch_size,
        "submission_cache_duration": 0.0,
        "use_docs_as_homepage": false,
        "allow_enable_network": false,
        "enable_network": false,
    })))
}

async fn statuses() -> axum::Json<Value> {
    axum::Json(json!(STATUSES.iter().map(|s| s.view()).collect::<Vec<_>>()))
}

async fn languages(
    State(state): State<AppState>,
    user: std::result::Result<CurrentUser, ApiError>,
) -> Result<axum::Json<Value>> {
    user?;
    let registry = state.runs.registry().await?;
    let list: Vec<Value> = catalog::languages(registry)
        .into_iter()
        .map(|l| json!({"id": l.id, "name": l.name}))
        .collect();
    Ok(axum::Json(json!(list)))
}

async fn language(
    State(state): State<AppState>,
    user: std::result::Result<CurrentUser, ApiError>,
    Path(id): Path<String>,
) -> Result<axum::Json<catalog::Language>> {
    user?;
    let registry = state.runs.registry().await?;
    let id: i64 = id
        .parse()
        .map_err(|_| Judge0Error::Bad("a language id is a number".into()))?;
    catalog::language(registry, id)
        .map(|(l, _)| axum::Json(l))
        .ok_or_else(|| not_found("language not found"))
}

fn parse_body(body: &Bytes) -> Result<Value> {
    serde_json::from_slice(body)
        .map_err(|e| Judge0Error::Bad(format!("the body is not valid JSON: {e}")))
}

/// Reads and stores one submission: its job, or what is wrong with it.
async fn enqueue(
    state: &AppState,
    user: Uuid,
    body: &Value,
    base64: bool,
) -> Result<(Job, Submission)> {
    let registry = state.runs.registry().await?;
    let cx = Context {
        registry,
        runs: &state.config.runs,
        judge0: &state.config.judge0,
        base64_encoded: base64,
    };
    let submission = submission::read(body, &cx).map_err(Judge0Error::Invalid)?;
    let now = Utc::now();
    let input = serde_json::to_value(&submission).map_err(ApiError::internal)?;
    let job = state
        .queue
        .enqueue(NewJob {
            // Judge0's clients check that a token is a version 4 UUID.
            id: Uuid::new_v4(),
            kind: KIND.into(),
            user_id: user,
            project_id: None,
            input,
            priority: 0,
            max_attempts: state.config.jobs.max_attempts,
            timeout_ms: u64::try_from(state.config.jobs.timeout(KIND).as_millis())
                .unwrap_or(u64::MAX),
            run_at: now,
            created_at: now,
        })
        .await
        .map_err(ApiError::from)?;
    Ok((job, submission))
}

/// `POST /judge0/submissions`: 201 with the token, or with the finished submission when
/// `wait=true`.
async fn create(
    State(state): State<AppState>,
    user: std::result::Result<CurrentUser, ApiError>,
    Query(options): Query<Options>,
    body: Bytes,
) -> Result<Response> {
    let CurrentUser(principal) = user?;
    let base64 = options.base64()?;
    let wait = Options::flag(options.wait.as_ref(), "wait")?;
    let fields = options.fields()?;
    let body = parse_body(&body)?;
    let (job, submission) = enqueue(&state, principal.user.id, &body, base64).await?;
    if !wait {
        return Ok((StatusCode::CREATED, axum::Json(json!({"token": job.id}))).into_response());
    }
    let job = wait_for(&state, job, &submission).await?;
    let view = render(&state, &job, &fields, base64).await?;
    Ok((StatusCode::CREATED, axum::Json(view)).into_response())
}

/// Until the job has finished (woken by this process's job changes; polled, for a job another
/// replica runs), within the submission's limits and some slack.
async fn wait_for(state: &AppState, job: Job, submission: &Submission) -> Result<Job> {
    let mut changes = state.queue.subscribe();
    let runs = f64::from(submission.number_of_runs);
    let limit = Duration::from_secs_f64(submission.wall_time_limit * runs)
        + Duration::from_millis(state.config.runs.compile_limits.wall_ms)
        + WAIT_SLACK;
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let current = state
            .store
            .job(job.id)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| not_found("submission not found"))?;
        if !matches!(current.state, JobState::Queued | JobState::Running) {
            return Ok(current);
        }
        if tokio::time::Instant::now() >= deadline {
            // Still running: answered as it is; the token finds the result later.
            return Ok(current);
        }
        let poll = tokio::time::sleep(Duration::from_millis(250));
        tokio::select! {
            () = poll => {}
            _ = async {
                while let Ok(id) = changes.recv().await {
                    if id == job.id { break; }
                }
            } => {}
        }
    }
}

/// A submission job as Judge0 shows it.
async fn render(state: &AppState, job: &Job, fields: &[&str], base64: bool) -> Result<Value> {
    let submission: Submission = serde_json::from_value(job.input.clone())
        .map_err(|e| ApiError::internal(anyhow::anyhow!("a stored submission: {e}")))?;
    let outcome = match job.state {
        JobState::Queued | JobState::Running => None,
        JobState::Completed => Some(
            job.result
                .clone()
                .and_then(|r| serde_json::from_value::<Outcome>(r).ok())
                .unwrap_or_else(|| Outcome::internal("the result could not be read".into())),
        ),
        JobState::Failed | JobState::Cancelled => {
            Some(Outcome::internal(job.error.as_ref().map_or_else(
                || "the submission could not be run".into(),
                |e| e.message.clone(),
            )))
        }
    };
    let pending = match job.state {
        JobState::Queued => Some(Status::InQueue),
        JobState::Running => Some(Status::Processing),
        _ => None,
    };
    let language_name = if fields.contains(&"language") {
        state
            .runs
            .registry()
            .await
            .ok()
            .and_then(|r| catalog::language(r, submission.language_id))
            .map(|(l, _)| l.name)
    } else {
        None
    };
    Ok(View {
        token: job.id,
        submission: &submission,
        pending,
        outcome: outcome.as_ref(),
        language_name,
    }
    .render(fields, base64))
}

/// The caller's submission job `token`; another user's, or another kind's, is not found.
async fn owned(state: &AppState, user: Uuid, token: &str) -> Result<Option<Job>> {
    let Ok(id) = Uuid::parse_str(token.trim()) else {
        return Ok(None);
    };
    Ok(state
        .store
        .job(id)
        .await
        .map_err(ApiError::from)?
        .filter(|j| j.user_id == user && j.kind == KIND))
}

async fn get_one(
    State(state): State<AppState>,
    user: std::result::Result<CurrentUser, ApiError>,
    Path(token): Path<String>,
    Query(options): Query<Options>,
) -> Result<axum::Json<Value>> {
    let CurrentUser(principal) = user?;
    let base64 = options.base64()?;
    let fields = options.fields()?;
    let job = owned(&state, principal.user.id, &token)
        .await?
        .ok_or_else(|| not_found("submission not found"))?;
    Ok(axum::Json(render(&state, &job, &fields, base64).await?))
}

/// `POST /judge0/submissions/batch`: `{"submissions": [...]}` → one entry per submission, a
/// token or its errors, as Judge0 answers a batch.
async fn create_batch(
    State(state): State<AppState>,
    user: std::result::Result<CurrentUser, ApiError>,
    Query(options): Query<Options>,
    body: Bytes,
) -> Result<Response> {
    let CurrentUser(principal) = user?;
    let base64 = options.base64()?;
    let body = parse_body(&body)?;
    let Some(list) = body.get("submissions").and_then(Value::as_array) else {
        return Err(Judge0Error::Invalid(Errors::one(
            "submissions",
            "give an array of submissions",
        )));
    };
    let max = state.config.judge0.max_batch_size;
    if list.is_empty() || list.len() > max {
        return Err(Judge0Error::Invalid(Errors::one(
            "submissions",
            format!("give 1 to {max} submissions"),
        )));
    }
    let mut answers = Vec::with_capacity(list.len());
    for item in list {
        answers.push(
            match enqueue(&state, principal.user.id, item, base64).await {
                Ok((job, _)) => json!({"token": job.id}),
                Err(Judge0Error::Invalid(errors)) => json!(errors),
                Err(other) => return Err(other),
            },
        );
    }
    Ok((StatusCode::CREATED, axum::Json(json!(answers))).into_response())
}

/// `GET /judge0/submissions/batch?tokens=a,b`: `{"submissions": [...]}`, `null` for a token
/// that names none of the caller's submissions.
async fn get_batch(
    State(state): State<AppState>,
    user: std::result::Result<CurrentUser, ApiError>,
    Query(options): Query<Options>,
) -> Result<axum::Json<Value>> {
    let CurrentUser(principal) = user?;
    let base64 = options.base64()?;
    let fields = options.fields()?;
    let tokens: Vec<&str> = options
        .tokens
        .as_deref()
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    let max = state.config.judge0.max_batch_size;
    if tokens.is_empty() || tokens.len() > max {
        return Err(Judge0Error::Bad(format!("give 1 to {max} tokens")));
    }
    let mut out = Vec::with_capacity(tokens.len());
    for token in tokens {
        out.push(match owned(&state, principal.user.id, token).await? {
            Some(job) => render(&state, &job, &fields, base64).await?,
            None => Value::Null,
        });
    }
    Ok(axum::Json(json!({"submissions": out})))
}

/// Tries and per-try timeout of a callback.
const CALLBACK_TRIES: u32 = 3;
const CALLBACK_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs stored submissions, like Judge0's workers.
pub struct SubmissionJob {
    state: AppState,
    /// Sends callbacks: no redirects (an allowed host must not bounce the call to one that
    /// is not), a timeout per try. `None`: it could not be built, and callbacks are not sent.
    callbacks: Option<reqwest::Client>,
}

#[async_trait]
impl Handler for SubmissionJob {
    fn concurrency(&self) -> usize {
        self.state.runs.max_concurrent()
    }

    async fn run(&self, ctx: JobContext) -> std::result::Result<Value, Failure> {
        let state = &self.state;
        let submission: Submission = serde_json::from_value(ctx.job().input.clone())
            .map_err(|e| Failure::fatal("invalid_submission", e.to_string()))?;
        let registry = state.runs.registry().await.map_err(failure)?;
        let outcome = match submission.plan(registry, &state.config.runs, &state.config.judge0) {
            // Accepted once but not runnable now (a runtime gone, limits lowered).
            Err(errors) => Outcome::internal(
                serde_json::to_string(&errors).unwrap_or_else(|_| "not runnable".into()),
            ),
            Ok(plan) => {
                let result = state
                    .runs
                    .execute(ctx.job().id, plan)
                    .await
                    .map_err(failure)?;
                Outcome::of_run(&result, &submission)
            }
        };
        if let (Some(url), Some(client)) = (&submission.callback_url, &self.callbacks) {
            callback(state, client, ctx.job(), &submission, &outcome, url).await;
        }
        serde_json::to_value(&outcome)
            .map_err(|e| Failure::retryable("internal_error", e.to_string()))
    }
}

/// A busy or missing sandbox may come back: retried; anything else is final.
fn failure(e: ApiError) -> Failure {
    match e {
        ApiError::Unavailable { code, message, .. } => Failure::retryable(code, message),
        other => Failure::fatal(other.code(), other.to_string()),
    }
}

/// `PUT`s the finished submission to its callback URL (checked against the allowlist again:
/// it may have changed), as Judge0 does, a few tries; a callback that fails is logged, never
/// the submission's failure.
async fn callback(
    state: &AppState,
    client: &reqwest::Client,
    job: &Job,
    submission: &Submission,
    outcome: &Outcome,
    url: &str,
) {
    if let Err(why) = submission::check_callback(url, &state.config.judge0.callback_hosts) {
        tracing::warn!(job.id = %job.id, reason = %why, "judge0 callback not sent");
        return;
    }
    let body = View {
        token: job.id,
        submission,
        pending: None,
        outcome: Some(outcome),
        language_name: None,
    }
    .render(outcome::DEFAULT_FIELDS, submission.base64_encoded);
    for attempt in 1..=CALLBACK_TRIES {
        match client.put(url).json(&body).send().await {
            Ok(res) if res.status().is_success() => return,
            Ok(res) => {
                tracing::info!(job.id = %job.id, http.status = res.status().as_u16(), attempt, "judge0 callback refused")
            }
            Err(e) => {
                tracing::info!(job.id = %job.id, error = %e, attempt, "judge0 callback failed")
            }
        }
        tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
    }
}

/// The handler, for the worker pool.
pub fn handler(state: &AppState) -> Arc<dyn Handler> {
    let callbacks = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(CALLBACK_TIMEOUT)
        .build()
        .inspect_err(|e| tracing::warn!(error = %e, "judge0 callbacks are off: no HTTP client"))
        .ok();
    Arc::new(SubmissionJob {
        state: state.clone(),
        callbacks,
    })
}
