//! What a job kind does: a [`Handler`], given a [`JobContext`], returns the result or a
//! [`Failure`].

use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use sandpit_store::{Job, JobError, JobStore};
use serde_json::Value;
use tokio::sync::watch;

use crate::queue::Changes;

/// Runs the jobs of one kind.
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    /// How many jobs of this kind one worker pool runs at once.
    fn concurrency(&self) -> usize {
        4
    }

    /// Does the job. Dropping the future (timeout, cancellation, a lost lease) must leave
    /// nothing behind, as with any async Rust.
    async fn run(&self, ctx: JobContext) -> Result<Value, Failure>;
}

/// Why an attempt failed, and whether another attempt could succeed.
#[derive(Debug, Clone)]
pub struct Failure {
    pub error: JobError,
    /// Retried (with backoff, while attempts remain) rather than failed at once.
    pub retryable: bool,
}

impl Failure {
    /// A failure another attempt will not fix (bad input, a missing configuration).
    pub fn fatal(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            error: JobError::new(code, message),
            retryable: false,
        }
    }

    /// A failure another attempt may not meet (a timeout, an unavailable service).
    pub fn retryable(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            error: JobError::new(code, message),
            retryable: true,
        }
    }
}

/// A running job as its handler sees it: its row, and how to report progress and log lines.
#[derive(Clone)]
pub struct JobContext {
    pub(crate) job: Arc<Job>,
    pub(crate) owner: Arc<str>,
    pub(crate) store: Arc<dyn JobStore>,
    pub(crate) changes: Changes,
    pub(crate) cancelled: watch::Receiver<bool>,
}

impl JobContext {
    /// The job as it was leased (its input, attempt number …).
    pub fn job(&self) -> &Job {
        &self.job
    }

    /// Records progress (0–100) and an optional message, as an event. A failure to record is
    /// logged, not returned: progress is advice, and a lost lease stops the job anyway.
    pub async fn progress(&self, percent: u8, message: Option<&str>) {
        match self
            .store
            .report_progress(self.job.id, &self.owner, percent, message, Utc::now())
            .await
        {
            Ok(_) => self.changes.changed(self.job.id),
            Err(e) => tracing::warn!(job.id = %self.job.id, error = %e, "recording progress"),
        }
    }

    /// Appends a log line, as an event (like [`progress`](Self::progress), best effort).
    pub async fn log(&self, line: &str) {
        match self
            .store
            .log_job(self.job.id, &self.owner, line, Utc::now())
            .await
        {
            Ok(_) => self.changes.changed(self.job.id),
            Err(e) => tracing::warn!(job.id = %self.job.id, error = %e, "recording a log line"),
        }
    }

    /// Whether cancellation was asked (the worker also stops the handler by itself).
    pub fn is_cancelled(&self) -> bool {
        *self.cancelled.borrow()
    }
}
