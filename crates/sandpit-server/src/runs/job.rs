//! Asynchronous runs are jobs of kind [`KIND`]: stored with the request as their input, run by
//! any server's workers, and their result read back by any server sharing the store.

use std::sync::Arc;

use async_trait::async_trait;
use sandpit_jobs::{Failure, Handler, JobContext};
use sandpit_store::{Job, JobState};
use serde_json::Value;

use super::model::{RunRequest, RunResult, RunState, Stage, StageStatus};
use super::service::Runs;
use crate::error::ApiError;

pub const KIND: &str = "run";

/// Runs a stored [`RunRequest`], like `POST /runs` does synchronously.
pub struct RunJob(pub Arc<Runs>);

#[async_trait]
impl Handler for RunJob {
    fn concurrency(&self) -> usize {
        self.0.max_concurrent()
    }

    async fn run(&self, ctx: JobContext) -> Result<Value, Failure> {
        let req: RunRequest = serde_json::from_value(ctx.job().input.clone())
            .map_err(|e| Failure::fatal("invalid_request", e.to_string()))?;
        let registry = self.0.registry().await.map_err(failure)?;
        // Validated again: the runtimes or limits may have changed since it was accepted.
        let plan = req.validate(registry, self.0.config()).map_err(failure)?;
        let result = self.0.execute(ctx.job().id, plan).await.map_err(failure)?;
        serde_json::to_value(result)
            .map_err(|e| Failure::retryable("internal_error", e.to_string()))
    }
}

/// Refusals of the request are final; a busy or missing sandbox may come back.
fn failure(e: ApiError) -> Failure {
    match e {
        e @ (ApiError::Validation { .. } | ApiError::TooLarge { .. } | ApiError::BadRequest(_)) => {
            Failure::fatal(e.code(), e.to_string())
        }
        ApiError::Unavailable { code, message, .. } => Failure::retryable(code, message),
        other => {
            let public = other.to_string();
            tracing::warn!(error = %other, "an asynchronous run failed");
            Failure::retryable(other.code(), public)
        }
    }
}

/// A run job as `GET /runs/{id}` answers it: pending until it finished; a run that could not
/// be carried out reports why as an `internal_error` stage.
pub fn result_of(job: &Job, runtime: &str) -> RunResult {
    let pending = || RunResult {
        id: job.id,
        state: RunState::Pending,
        runtime: runtime.to_owned(),
        compile: None,
        run: None,
        tests: None,
    };
    match job.state {
        JobState::Queued | JobState::Running => pending(),
        JobState::Completed => job
            .result
            .clone()
            .and_then(|r| serde_json::from_value::<RunResult>(r).ok())
            .unwrap_or_else(|| not_run(pending(), "the run's result could not be read".into())),
        JobState::Failed => {
            let message = job
                .error
                .as_ref()
                .map_or_else(|| "the run failed".to_owned(), |e| e.message.clone());
            not_run(pending(), message)
        }
        JobState::Cancelled => not_run(pending(), "the run was cancelled".into()),
    }
}

fn not_run(mut result: RunResult, message: String) -> RunResult {
    result.state = RunState::Done;
    result.run = Some(Stage::not_run(StageStatus::InternalError, message));
    result
}
