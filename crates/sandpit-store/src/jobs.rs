//! Durable jobs: the rows, the [`JobStore`] trait, and the SQL both engines share.
//!
//! A job is `queued → running → completed | failed | cancelled`. Workers take jobs with a
//! *lease* ([`JobStore::lease_jobs`]): the job is theirs until `lease_expires_at`, which they
//! push forward while they run ([`JobStore::renew_lease`]). Every write a worker makes to its
//! job names the lease owner, so a worker whose lease was lost (it stalled, and the job was
//! reclaimed and taken by another) changes nothing: a result is never recorded twice. A job
//! whose worker died is found by [`JobStore::reclaim_expired_jobs`] and queued again.
//!
//! Every change also appends a [`JobEvent`], numbered per job under the job row's lock (the
//! `last_event` counter), so an event stream resumed with `Last-Event-ID` misses nothing.
//!
//! The SQL is written once ([`job_store_impl!`]) with `$N` parameters, which sqlx accepts on
//! both engines; what differs — how ids and timestamps are bound and read, and the lease
//! statement (`FOR UPDATE SKIP LOCKED` on PostgreSQL, one atomic `UPDATE … RETURNING` under
//! SQLite's single writer) — comes from the engine's module. No crate does this for both
//! sqlx engines (sqlxmq and apalis-sql are PostgreSQL-first or pull in their own runtime and
//! schema), and the queue is a dozen statements.

use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::{Result, StoreError};

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Queued,
    Running,
    Completed,
    Failed,
    Cancelled,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Completed => "completed",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    /// Completed, failed or cancelled: it will not change again.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            JobState::Completed | JobState::Failed | JobState::Cancelled
        )
    }
}

impl FromStr for JobState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "queued" => JobState::Queued,
            "running" => JobState::Running,
            "completed" => JobState::Completed,
            "failed" => JobState::Failed,
            "cancelled" => JobState::Cancelled,
            other => return Err(format!("unknown job state {other:?}")),
        })
    }
}

/// Why an attempt failed: a stable code and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobError {
    pub code: String,
    pub message: String,
}

impl JobError {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewJob {
    pub id: Uuid,
    pub kind: String,
    pub user_id: Uuid,
    pub project_id: Option<Uuid>,
    pub input: Value,
    /// Higher is taken first.
    pub priority: i32,
    /// At least 1.
    pub max_attempts: u32,
    /// Per attempt; at least 1.
    pub timeout_ms: u64,
    /// Not taken before this.
    pub run_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: Uuid,
    pub kind: String,
    pub user_id: Uuid,
    pub project_id: Option<Uuid>,
    pub state: JobState,
    pub priority: i32,
    pub input: Value,
    pub result: Option<Value>,
    /// The last failed attempt's error (also on a job queued again for a retry).
    pub error: Option<JobError>,
    /// 0–100.
    pub progress: u8,
    pub progress_message: Option<String>,
    /// Attempts started (a lease counts one).
    pub attempts: u32,
    pub max_attempts: u32,
    pub timeout_ms: u64,
    pub run_at: DateTime<Utc>,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// Someone asked a running job to stop; its worker sees it at its next renewal.
    pub cancel_requested: bool,
    /// The seq of its newest event.
    pub last_event: u64,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

/// What an event says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobEventKind {
    /// `{state, attempt?, error?, retry_at?, cancel_requested?}`
    State,
    /// `{percent, message?}`
    Progress,
    /// `{line}`
    Log,
    /// `{result}`
    Result,
}

impl JobEventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobEventKind::State => "state",
            JobEventKind::Progress => "progress",
            JobEventKind::Log => "log",
            JobEventKind::Result => "result",
        }
    }
}

impl FromStr for JobEventKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "state" => JobEventKind::State,
            "progress" => JobEventKind::Progress,
            "log" => JobEventKind::Log,
            "result" => JobEventKind::Result,
            other => return Err(format!("unknown job event kind {other:?}")),
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct JobEvent {
    pub job_id: Uuid,
    /// 1, 2, 3 … per job, in the order the changes were made.
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub kind: JobEventKind,
    pub data: Value,
}

/// Which of a user's jobs to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub project_id: Option<Uuid>,
    pub state: Option<JobState>,
    pub kind: Option<String>,
    /// Capped at [`JOBS_LIMIT_MAX`]; 0 means the cap.
    pub limit: u32,
}

/// The most jobs one [`JobStore::jobs_of`] call returns.
pub const JOBS_LIMIT_MAX: u32 = 500;

/// A worker's request for jobs.
#[derive(Debug, Clone, Copy)]
pub struct Lease<'a> {
    /// Who takes them (unique per worker pool, e.g. host, pid and a random part).
    pub owner: &'a str,
    /// Only these kinds (the ones with a free slot).
    pub kinds: &'a [String],
    pub now: DateTime<Utc>,
    /// The lease ends then unless renewed.
    pub until: DateTime<Utc>,
    pub limit: u32,
}

/// How an attempt ended, as its worker reports it.
#[derive(Debug, Clone)]
pub enum JobOutcome {
    Completed(Value),
    Failed(JobError),
    /// Queued again, not to run before `run_at`.
    Retry {
        error: JobError,
        run_at: DateTime<Utc>,
    },
    Cancelled,
}

/// What [`JobStore::cancel_job`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum CancelOutcome {
    /// It was queued: now cancelled.
    Cancelled(Box<Job>),
    /// It is running: its worker was asked to stop (at its next lease renewal).
    Requested,
    /// It had already finished in this state.
    Finished(JobState),
}

/// The job queue's storage. Part of every [`crate::Store`].
#[async_trait]
pub trait JobStore: Send + Sync {
    /// Inserts a queued job and its first event. A taken id → [`StoreError::Conflict`] with
    /// `constraint = "jobs.id"`; an unknown user → [`StoreError::NotFound`].
    async fn enqueue_job(&self, new: NewJob) -> Result<Job>;
    async fn job(&self, id: Uuid) -> Result<Option<Job>>;
    /// A user's jobs, newest first (`created_at`, then id).
    async fn jobs_of(&self, user_id: Uuid, filter: &JobFilter) -> Result<Vec<Job>>;
    /// Takes up to `limit` queued jobs of the given kinds whose `run_at` has come, highest
    /// priority first, then oldest `run_at`: each becomes `running`, held by `owner` until
    /// `until`, with one more attempt. Two callers never get the same job.
    async fn lease_jobs(&self, lease: Lease<'_>) -> Result<Vec<Job>>;
    /// Extends a lease `owner` holds. `None` when it no longer holds it (the job was
    /// reclaimed or finished); otherwise whether cancellation was requested.
    async fn renew_lease(
        &self,
        id: Uuid,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Option<bool>>;
    /// Records progress (0–100, clamped) of a job `owner` holds; false when it does not.
    async fn report_progress(
        &self,
        id: Uuid,
        owner: &str,
        percent: u8,
        message: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<bool>;
    /// Appends a log line of a job `owner` holds; false when it does not.
    async fn log_job(&self, id: Uuid, owner: &str, line: &str, at: DateTime<Utc>) -> Result<bool>;
    /// Ends the attempt of a job `owner` holds. False when it does not hold it any more:
    /// nothing is written, so a late worker cannot overwrite what another recorded.
    async fn finish_job(
        &self,
        id: Uuid,
        owner: &str,
        outcome: JobOutcome,
        at: DateTime<Utc>,
    ) -> Result<bool>;
    /// Cancels a queued job, or asks a running one to stop. `None` when there is no such job.
    async fn cancel_job(&self, id: Uuid, at: DateTime<Utc>) -> Result<Option<CancelOutcome>>;
    /// Running jobs whose lease expired before `now` (their worker died or stalled): queued
    /// again, or failed with `lease_expired` when out of attempts, or cancelled when that was
    /// asked. Returns how many.
    async fn reclaim_expired_jobs(&self, now: DateTime<Utc>) -> Result<u64>;
    /// A job's events after `after` (a seq), oldest first, at most `limit`.
    async fn job_events(&self, id: Uuid, after: u64, limit: u32) -> Result<Vec<JobEvent>>;
    /// Deletes jobs (and their events) that finished before `before`. Returns how many.
    async fn purge_jobs(&self, before: DateTime<Utc>) -> Result<u64>;
}

/// The error recorded on a job whose worker stopped renewing its lease.
pub fn lease_expired() -> JobError {
    JobError::new(
        "lease_expired",
        "the server running this job stopped (killed or stalled) before it finished",
    )
}

/// Reading a row by column position; each engine implements it for its row type, so the job
/// decoders below are written once.
pub(crate) trait Columns {
    fn uuid(&self, i: usize, column: &'static str) -> Result<Uuid>;
    fn opt_uuid(&self, i: usize, column: &'static str) -> Result<Option<Uuid>>;
    fn time(&self, i: usize, column: &'static str) -> Result<DateTime<Utc>>;
    fn opt_time(&self, i: usize, column: &'static str) -> Result<Option<DateTime<Utc>>>;
    fn text(&self, i: usize) -> Result<String>;
    fn opt_text(&self, i: usize) -> Result<Option<String>>;
    fn int(&self, i: usize) -> Result<i64>;
    fn opt_int(&self, i: usize) -> Result<Option<i64>>;
    fn boolean(&self, i: usize) -> Result<bool>;
    fn json(&self, i: usize) -> Result<Value>;
    fn opt_json(&self, i: usize) -> Result<Option<Value>>;
}

fn corrupt(column: &'static str, detail: impl ToString) -> StoreError {
    StoreError::Corrupt {
        column,
        detail: detail.to_string(),
    }
}

fn small<T: TryFrom<i64>>(v: i64, column: &'static str) -> Result<T> {
    T::try_from(v).map_err(|_| corrupt(column, v))
}

/// The columns [`job_at`] decodes, in order.
macro_rules! job_cols {
    () => {
        "id, kind, user_id, project_id, state, priority, input, result, error, progress, \
         progress_message, attempts, max_attempts, timeout_ms, run_at, lease_owner, \
         lease_expires_at, cancel_requested, last_event, created_at, started_at, finished_at, \
         updated_at"
    };
}

/// Decodes [`job_cols!`].
pub(crate) fn job_at(row: &impl Columns) -> Result<Job> {
    let error = row
        .opt_json(8)?
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| corrupt("jobs.error", e))?;
    Ok(Job {
        id: row.uuid(0, "jobs.id")?,
        kind: row.text(1)?,
        user_id: row.uuid(2, "jobs.user_id")?,
        project_id: row.opt_uuid(3, "jobs.project_id")?,
        state: row.text(4)?.parse().map_err(|e| corrupt("jobs.state", e))?,
        priority: small(row.int(5)?, "jobs.priority")?,
        input: row.json(6)?,
        result: row.opt_json(7)?,
        error,
        progress: small(row.int(9)?, "jobs.progress")?,
        progress_message: row.opt_text(10)?,
        attempts: small(row.int(11)?, "jobs.attempts")?,
        max_attempts: small(row.int(12)?, "jobs.max_attempts")?,
        timeout_ms: small(row.int(13)?, "jobs.timeout_ms")?,
        run_at: row.time(14, "jobs.run_at")?,
        lease_owner: row.opt_text(15)?,
        lease_expires_at: row.opt_time(16, "jobs.lease_expires_at")?,
        cancel_requested: row.boolean(17)?,
        last_event: small(row.int(18)?, "jobs.last_event")?,
        created_at: row.time(19, "jobs.created_at")?,
        started_at: row.opt_time(20, "jobs.started_at")?,
        finished_at: row.opt_time(21, "jobs.finished_at")?,
        updated_at: row.time(22, "jobs.updated_at")?,
    })
}

/// Decodes `job_id, seq, at, kind, data`.
pub(crate) fn event_at(row: &impl Columns) -> Result<JobEvent> {
    Ok(JobEvent {
        job_id: row.uuid(0, "job_events.job_id")?,
        seq: small(row.int(1)?, "job_events.seq")?,
        at: row.time(2, "job_events.at")?,
        kind: row
            .text(3)?
            .parse()
            .map_err(|e| corrupt("job_events.kind", e))?,
        data: row.json(4)?,
    })
}

/// The state event of an attempt's end, and the fields it sets.
pub(crate) struct Finish {
    pub state: JobState,
    pub result: Option<Value>,
    pub error: Option<Value>,
    pub run_at: Option<DateTime<Utc>>,
    pub finished: bool,
    /// Events appended: the result (when completed), then the state.
    pub events: Vec<(JobEventKind, Value)>,
}

pub(crate) fn finish(outcome: JobOutcome) -> Finish {
    let state_event = |state: JobState, extra: Value| {
        let mut data = serde_json::json!({"state": state.as_str()});
        if let (Some(d), Value::Object(extra)) = (data.as_object_mut(), extra) {
            d.extend(extra);
        }
        (JobEventKind::State, data)
    };
    let to_value = |e: &JobError| serde_json::to_value(e).unwrap_or(Value::Null);
    match outcome {
        JobOutcome::Completed(result) => Finish {
            state: JobState::Completed,
            events: vec![
                (JobEventKind::Result, serde_json::json!({"result": result})),
                state_event(JobState::Completed, Value::Null),
            ],
            result: Some(result),
            error: None,
            run_at: None,
            finished: true,
        },
        JobOutcome::Failed(error) => Finish {
            state: JobState::Failed,
            events: vec![state_event(
                JobState::Failed,
                serde_json::json!({"error": to_value(&error)}),
            )],
            result: None,
            error: Some(to_value(&error)),
            run_at: None,
            finished: true,
        },
        JobOutcome::Retry { error, run_at } => Finish {
            state: JobState::Queued,
            events: vec![state_event(
                JobState::Queued,
                serde_json::json!({"error": to_value(&error), "retry_at": run_at}),
            )],
            result: None,
            error: Some(to_value(&error)),
            run_at: Some(run_at),
            finished: false,
        },
        JobOutcome::Cancelled => Finish {
            state: JobState::Cancelled,
            events: vec![state_event(JobState::Cancelled, Value::Null)],
            result: None,
            error: None,
            run_at: None,
            finished: true,
        },
    }
}

/// The [`JobStore`] implementation of one engine, written once (`$db` is its sqlx database).
/// The invoking module provides
/// `id_arg(Uuid)`, `opt_id_arg(Option<Uuid>)`, `ts_arg(DateTime<Utc>)`, `opt_ts_arg(..)`,
/// `map_err(sqlx::Error)`, and [`Columns`] for its row type; `$store` has a `pool` field;
/// `$lease` is an `async fn(&mut Connection, Lease) -> Result<Vec<Job>>`: the engine's lease
/// statement, run inside the transaction that also records the jobs' events.
macro_rules! job_store_impl {
    ($store:ty, $db:ty, $lease:path) => {
        impl $store {
            /// Appends one event with the given seq inside the caller's transaction.
            async fn insert_job_event(
                conn: &mut <$db as sqlx::Database>::Connection,
                job_id: uuid::Uuid,
                seq: i64,
                at: chrono::DateTime<chrono::Utc>,
                kind: $crate::jobs::JobEventKind,
                data: &serde_json::Value,
            ) -> $crate::Result<()> {
                sqlx::query(
                    "INSERT INTO job_events (job_id, seq, at, kind, data) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(id_arg(job_id))
                .bind(seq)
                .bind(ts_arg(at))
                .bind(kind.as_str())
                .bind(sqlx::types::Json(data))
                .execute(&mut *conn)
                .await
                .map_err(map_err)?;
                Ok(())
            }

            /// Appends `events` to a job whose `last_event` is now `last`, numbered up to it.
            async fn insert_job_events(
                conn: &mut <$db as sqlx::Database>::Connection,
                job_id: uuid::Uuid,
                last: i64,
                at: chrono::DateTime<chrono::Utc>,
                events: &[($crate::jobs::JobEventKind, serde_json::Value)],
            ) -> $crate::Result<()> {
                let first = last - events.len() as i64 + 1;
                for (n, (kind, data)) in events.iter().enumerate() {
                    Self::insert_job_event(conn, job_id, first + n as i64, at, *kind, data)
                        .await?;
                }
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl $crate::jobs::JobStore for $store {
            async fn enqueue_job(&self, new: $crate::jobs::NewJob) -> $crate::Result<$crate::jobs::Job> {
                let created_at = micros(new.created_at);
                let run_at = micros(new.run_at);
                let mut tx = self.pool.begin().await.map_err(map_err)?;
                let row = sqlx::query(concat!(
                    "INSERT INTO jobs (id, kind, user_id, project_id, state, priority, input, \
                     progress, attempts, max_attempts, timeout_ms, run_at, cancel_requested, \
                     last_event, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, 'queued', $5, $6, 0, 0, $7, $8, $9, FALSE, 1, $10, $10) \
                     RETURNING ",
                    job_cols!()
                ))
                .bind(id_arg(new.id))
                .bind(&new.kind)
                .bind(id_arg(new.user_id))
                .bind(opt_id_arg(new.project_id))
                .bind(i64::from(new.priority))
                .bind(sqlx::types::Json(&new.input))
                .bind(i64::from(new.max_attempts.max(1)))
                .bind(i64::try_from(new.timeout_ms.max(1)).unwrap_or(i64::MAX))
                .bind(ts_arg(run_at))
                .bind(ts_arg(created_at))
                .fetch_one(&mut *tx)
                .await
                .map_err(map_err)?;
                let job = $crate::jobs::job_at(&row)?;
                let data = serde_json::json!({"state": "queued"});
                Self::insert_job_event(&mut tx, job.id, 1, created_at, $crate::jobs::JobEventKind::State, &data)
                    .await?;
                tx.commit().await.map_err(map_err)?;
                Ok(job)
            }

            async fn job(&self, id: uuid::Uuid) -> $crate::Result<Option<$crate::jobs::Job>> {
                let row = sqlx::query(concat!("SELECT ", job_cols!(), " FROM jobs WHERE id = $1"))
                    .bind(id_arg(id))
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(map_err)?;
                row.as_ref().map($crate::jobs::job_at).transpose()
            }

            async fn jobs_of(
                &self,
                user_id: uuid::Uuid,
                filter: &$crate::jobs::JobFilter,
            ) -> $crate::Result<Vec<$crate::jobs::Job>> {
                let limit = match filter.limit {
                    0 => $crate::jobs::JOBS_LIMIT_MAX,
                    n => n.min($crate::jobs::JOBS_LIMIT_MAX),
                };
                let rows = sqlx::query(concat!(
                    "SELECT ", job_cols!(), " FROM jobs WHERE user_id = $1 \
                     AND ($2 IS NULL OR project_id = $2) AND ($3 IS NULL OR state = $3) \
                     AND ($4 IS NULL OR kind = $4) \
                     ORDER BY created_at DESC, id DESC LIMIT $5"
                ))
                .bind(id_arg(user_id))
                .bind(opt_id_arg(filter.project_id))
                .bind(filter.state.map($crate::jobs::JobState::as_str))
                .bind(filter.kind.as_deref())
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
                rows.iter().map($crate::jobs::job_at).collect()
            }

            async fn lease_jobs(&self, lease: $crate::jobs::Lease<'_>) -> $crate::Result<Vec<$crate::jobs::Job>> {
                if lease.kinds.is_empty() || lease.limit == 0 {
                    return Ok(Vec::new());
                }
                let now = micros(lease.now);
                let mut tx = self.pool.begin().await.map_err(map_err)?;
                let mut jobs = $lease(&mut tx, lease).await?;
                for job in &jobs {
                    let (kind, data) = $crate::jobs::running_event(job);
                    Self::insert_job_event(&mut tx, job.id, job.last_event as i64, now, kind, &data)
                        .await?;
                }
                tx.commit().await.map_err(map_err)?;
                // RETURNING gives no order; callers start the most urgent first.
                jobs.sort_by(|a, b| {
                    b.priority
                        .cmp(&a.priority)
                        .then(a.run_at.cmp(&b.run_at))
                        .then(a.id.cmp(&b.id))
                });
                Ok(jobs)
            }

            async fn renew_lease(
                &self,
                id: uuid::Uuid,
                owner: &str,
                now: chrono::DateTime<chrono::Utc>,
                until: chrono::DateTime<chrono::Utc>,
            ) -> $crate::Result<Option<bool>> {
                let row = sqlx::query(
                    "UPDATE jobs SET lease_expires_at = $3, updated_at = $4 \
                     WHERE id = $1 AND lease_owner = $2 AND state = 'running' \
                     RETURNING cancel_requested",
                )
                .bind(id_arg(id))
                .bind(owner)
                .bind(ts_arg(micros(until)))
                .bind(ts_arg(micros(now)))
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
                row.as_ref().map(|r| $crate::jobs::Columns::boolean(r, 0)).transpose()
            }

            async fn report_progress(
                &self,
                id: uuid::Uuid,
                owner: &str,
                percent: u8,
                message: Option<&str>,
                at: chrono::DateTime<chrono::Utc>,
            ) -> $crate::Result<bool> {
                let at = micros(at);
                let percent = percent.min(100);
                let mut tx = self.pool.begin().await.map_err(map_err)?;
                let row = sqlx::query(
                    "UPDATE jobs SET progress = $3, progress_message = $4, updated_at = $5, \
                     last_event = last_event + 1 \
                     WHERE id = $1 AND lease_owner = $2 AND state = 'running' \
                     RETURNING last_event",
                )
                .bind(id_arg(id))
                .bind(owner)
                .bind(i64::from(percent))
                .bind(message)
                .bind(ts_arg(at))
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
                let Some(row) = row else {
                    return Ok(false);
                };
                let seq = $crate::jobs::Columns::int(&row, 0)?;
                let data = serde_json::json!({"percent": percent, "message": message});
                Self::insert_job_event(&mut tx, id, seq, at, $crate::jobs::JobEventKind::Progress, &data).await?;
                tx.commit().await.map_err(map_err)?;
                Ok(true)
            }

            async fn log_job(
                &self,
                id: uuid::Uuid,
                owner: &str,
                line: &str,
                at: chrono::DateTime<chrono::Utc>,
            ) -> $crate::Result<bool> {
                let at = micros(at);
                let mut tx = self.pool.begin().await.map_err(map_err)?;
                let row = sqlx::query(
                    "UPDATE jobs SET updated_at = $3, last_event = last_event + 1 \
                     WHERE id = $1 AND lease_owner = $2 AND state = 'running' \
                     RETURNING last_event",
                )
                .bind(id_arg(id))
                .bind(owner)
                .bind(ts_arg(at))
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
                let Some(row) = row else {
                    return Ok(false);
                };
                let seq = $crate::jobs::Columns::int(&row, 0)?;
                let data = serde_json::json!({"line": line});
                Self::insert_job_event(&mut tx, id, seq, at, $crate::jobs::JobEventKind::Log, &data).await?;
                tx.commit().await.map_err(map_err)?;
                Ok(true)
            }

            async fn finish_job(
                &self,
                id: uuid::Uuid,
                owner: &str,
                outcome: $crate::jobs::JobOutcome,
                at: chrono::DateTime<chrono::Utc>,
            ) -> $crate::Result<bool> {
                let at = micros(at);
                let f = $crate::jobs::finish(outcome);
                let mut tx = self.pool.begin().await.map_err(map_err)?;
                let row = sqlx::query(
                    "UPDATE jobs SET state = $3, result = $4, error = $5, \
                     progress = CASE WHEN $3 = 'completed' THEN 100 ELSE progress END, \
                     run_at = COALESCE($6, run_at), finished_at = $7, lease_owner = NULL, \
                     lease_expires_at = NULL, updated_at = $8, last_event = last_event + $9 \
                     WHERE id = $1 AND lease_owner = $2 AND state = 'running' \
                     RETURNING last_event",
                )
                .bind(id_arg(id))
                .bind(owner)
                .bind(f.state.as_str())
                .bind(f.result.as_ref().map(sqlx::types::Json))
                .bind(f.error.as_ref().map(sqlx::types::Json))
                .bind(opt_ts_arg(f.run_at.map(micros)))
                .bind(opt_ts_arg(f.finished.then_some(at)))
                .bind(ts_arg(at))
                .bind(f.events.len() as i64)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
                let Some(row) = row else {
                    return Ok(false);
                };
                let last = $crate::jobs::Columns::int(&row, 0)?;
                Self::insert_job_events(&mut tx, id, last, at, &f.events).await?;
                tx.commit().await.map_err(map_err)?;
                Ok(true)
            }

            async fn cancel_job(
                &self,
                id: uuid::Uuid,
                at: chrono::DateTime<chrono::Utc>,
            ) -> $crate::Result<Option<$crate::jobs::CancelOutcome>> {
                let at = micros(at);
                let mut tx = self.pool.begin().await.map_err(map_err)?;
                let queued = sqlx::query(concat!(
                    "UPDATE jobs SET state = 'cancelled', finished_at = $2, updated_at = $2, \
                     last_event = last_event + 1 WHERE id = $1 AND state = 'queued' RETURNING ",
                    job_cols!()
                ))
                .bind(id_arg(id))
                .bind(ts_arg(at))
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
                if let Some(row) = queued {
                    let job = $crate::jobs::job_at(&row)?;
                    let data = serde_json::json!({"state": "cancelled"});
                    Self::insert_job_event(&mut tx, id, job.last_event as i64, at, $crate::jobs::JobEventKind::State, &data)
                        .await?;
                    tx.commit().await.map_err(map_err)?;
                    return Ok(Some($crate::jobs::CancelOutcome::Cancelled(Box::new(job))));
                }
                let running = sqlx::query(
                    "UPDATE jobs SET cancel_requested = TRUE, updated_at = $2, \
                     last_event = last_event + 1 \
                     WHERE id = $1 AND state = 'running' AND cancel_requested = FALSE \
                     RETURNING last_event",
                )
                .bind(id_arg(id))
                .bind(ts_arg(at))
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
                if let Some(row) = running {
                    let seq = $crate::jobs::Columns::int(&row, 0)?;
                    let data = serde_json::json!({"state": "running", "cancel_requested": true});
                    Self::insert_job_event(&mut tx, id, seq, at, $crate::jobs::JobEventKind::State, &data).await?;
                    tx.commit().await.map_err(map_err)?;
                    return Ok(Some($crate::jobs::CancelOutcome::Requested));
                }
                let state = sqlx::query("SELECT state FROM jobs WHERE id = $1")
                    .bind(id_arg(id))
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(map_err)?;
                tx.commit().await.map_err(map_err)?;
                let Some(row) = state else {
                    return Ok(None);
                };
                let state: $crate::jobs::JobState = $crate::jobs::Columns::text(&row, 0)?
                    .parse()
                    .map_err(|e: String| $crate::StoreError::Corrupt { column: "jobs.state", detail: e })?;
                Ok(Some(if state == $crate::jobs::JobState::Running {
                    // Asked already.
                    $crate::jobs::CancelOutcome::Requested
                } else {
                    $crate::jobs::CancelOutcome::Finished(state)
                }))
            }

            async fn reclaim_expired_jobs(&self, now: chrono::DateTime<chrono::Utc>) -> $crate::Result<u64> {
                let now = micros(now);
                let lost = serde_json::to_value($crate::jobs::lease_expired()).unwrap_or_default();
                let mut tx = self.pool.begin().await.map_err(map_err)?;
                let rows = sqlx::query(
                    "UPDATE jobs SET \
                     state = CASE WHEN cancel_requested THEN 'cancelled' \
                         WHEN attempts >= max_attempts THEN 'failed' ELSE 'queued' END, \
                     error = CASE WHEN cancel_requested THEN error ELSE $2 END, \
                     finished_at = CASE WHEN cancel_requested OR attempts >= max_attempts \
                         THEN $1 ELSE NULL END, \
                     run_at = $1, lease_owner = NULL, lease_expires_at = NULL, updated_at = $1, \
                     last_event = last_event + 1 \
                     WHERE state = 'running' AND lease_expires_at < $1 \
                     RETURNING id, state, last_event",
                )
                .bind(ts_arg(now))
                .bind(sqlx::types::Json(&lost))
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)?;
                for row in &rows {
                    let id = $crate::jobs::Columns::uuid(row, 0, "jobs.id")?;
                    let state = $crate::jobs::Columns::text(row, 1)?;
                    let seq = $crate::jobs::Columns::int(row, 2)?;
                    let data = if state == "cancelled" {
                        serde_json::json!({"state": state})
                    } else {
                        serde_json::json!({"state": state, "error": lost})
                    };
                    Self::insert_job_event(&mut tx, id, seq, now, $crate::jobs::JobEventKind::State, &data).await?;
                }
                tx.commit().await.map_err(map_err)?;
                Ok(rows.len() as u64)
            }

            async fn job_events(
                &self,
                id: uuid::Uuid,
                after: u64,
                limit: u32,
            ) -> $crate::Result<Vec<$crate::jobs::JobEvent>> {
                let rows = sqlx::query(
                    "SELECT job_id, seq, at, kind, data FROM job_events \
                     WHERE job_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                )
                .bind(id_arg(id))
                .bind(i64::try_from(after).unwrap_or(i64::MAX))
                .bind(i64::from(limit.max(1)))
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
                rows.iter().map($crate::jobs::event_at).collect()
            }

            async fn purge_jobs(&self, before: chrono::DateTime<chrono::Utc>) -> $crate::Result<u64> {
                let done = sqlx::query("DELETE FROM jobs WHERE finished_at < $1")
                    .bind(ts_arg(micros(before)))
                    .execute(&self.pool)
                    .await
                    .map_err(map_err)?;
                Ok(done.rows_affected())
            }
        }
    };
}

/// The state event of a freshly leased job.
pub(crate) fn running_event(job: &Job) -> (JobEventKind, Value) {
    (
        JobEventKind::State,
        serde_json::json!({"state": "running", "attempt": job.attempts}),
    )
}
