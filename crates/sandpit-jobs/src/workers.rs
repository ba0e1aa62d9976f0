//! The worker pool: one leasing loop per process takes jobs for the kinds with a free slot and
//! runs each on its own task, renewing its lease until it ends.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use chrono::Utc;
use sandpit_store::{Job, JobError, JobOutcome, Lease};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::handler::{Failure, Handler, JobContext};
use crate::queue::Queue;

/// How the pool works; the defaults suit a server.
#[derive(Debug, Clone)]
pub struct Config {
    /// A lease lasts this long unless renewed; renewed every third of it. A job whose server
    /// died runs again about this long after.
    pub lease: Duration,
    /// How often to look for jobs when not woken (jobs enqueued by another process, retries
    /// coming due).
    pub poll: Duration,
    /// How often to reclaim jobs whose lease expired.
    pub reclaim_every: Duration,
    /// Backoff of retries: the first delay, and the most.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// At most this many jobs per lease statement.
    pub batch: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(30),
            poll: Duration::from_millis(500),
            reclaim_every: Duration::from_secs(5),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            batch: 32,
        }
    }
}

struct Kind {
    name: String,
    handler: Arc<dyn Handler>,
    running: AtomicUsize,
}

/// A running pool; [`Workers::stop`] ends it.
pub struct Workers {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    owner: Arc<str>,
}

impl Workers {
    /// Starts the pool for these handlers (kind name → handler) on `queue`.
    pub fn start(
        queue: &Queue,
        handlers: HashMap<String, Arc<dyn Handler>>,
        config: Config,
    ) -> Self {
        let owner: Arc<str> = format!(
            "{}:{}:{:08x}",
            hostname(),
            std::process::id(),
            rand::random::<u32>()
        )
        .into();
        let kinds: Vec<Arc<Kind>> = handlers
            .into_iter()
            .map(|(name, handler)| {
                Arc::new(Kind {
                    name,
                    handler,
                    running: AtomicUsize::new(0),
                })
            })
            .collect();
        let (stop, stopped) = watch::channel(false);
        let pool = Pool {
            queue: queue.clone(),
            kinds,
            config,
            owner: owner.clone(),
        };
        let task = tokio::spawn(pool.run(stopped));
        Self { stop, task, owner }
    }

    /// The lease owner this pool writes (host:pid:random).
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Stops leasing, waits up to `grace` for running jobs, then stops the rest: their
    /// leases expire and another worker (or this server's next start) runs them again.
    pub async fn stop(self, grace: Duration) {
        let _ = self.stop.send(true);
        let mut task = self.task;
        if tokio::time::timeout(grace, &mut task).await.is_err() {
            task.abort();
            let _ = task.await;
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "host".into())
}

struct Pool {
    queue: Queue,
    kinds: Vec<Arc<Kind>>,
    config: Config,
    owner: Arc<str>,
}

impl Pool {
    async fn run(self, mut stopped: watch::Receiver<bool>) {
        let mut jobs = JoinSet::new();
        let mut last_reclaim: Option<tokio::time::Instant> = None;
        loop {
            if *stopped.borrow() {
                break;
            }
            if last_reclaim.is_none_or(|at| at.elapsed() >= self.config.reclaim_every) {
                last_reclaim = Some(tokio::time::Instant::now());
                match self.queue.store.reclaim_expired_jobs(Utc::now()).await {
                    Ok(0) => {}
                    Ok(n) => tracing::warn!(jobs = n, "reclaimed jobs whose lease expired"),
                    Err(e) => tracing::warn!(error = %e, "reclaiming expired jobs"),
                }
            }
            let full = match self.lease_some(&mut jobs).await {
                Ok(full) => full,
                Err(e) => {
                    tracing::warn!(error = %e, "leasing jobs");
                    false
                }
            };
            // Reap finished job tasks so the set does not grow.
            while jobs.try_join_next().is_some() {}
            if full {
                // Took all it asked for: there may be more right away.
                continue;
            }
            tokio::select! {
                _ = self.queue.wake.notified() => {}
                _ = tokio::time::sleep(self.config.poll) => {}
                _ = stopped.changed() => {}
            }
        }
        // Stopping: let the running jobs finish (the caller bounds the wait).
        while jobs.join_next().await.is_some() {}
    }

    /// Leases for every kind with a free slot; true when some lease came back full.
    async fn lease_some(&self, jobs: &mut JoinSet<()>) -> sandpit_store::Result<bool> {
        let mut full = false;
        for kind in &self.kinds {
            let free = kind
                .handler
                .concurrency()
                .saturating_sub(kind.running.load(Ordering::SeqCst));
            let limit = u32::try_from(free)
                .unwrap_or(u32::MAX)
                .min(self.config.batch);
            if limit == 0 {
                continue;
            }
            let now = Utc::now();
            let until = now + self.config.lease;
            let leased = self
                .queue
                .store
                .lease_jobs(Lease {
                    owner: &self.owner,
                    kinds: std::slice::from_ref(&kind.name),
                    now,
                    until,
                    limit,
                })
                .await?;
            full |= leased.len() as u32 == limit && free > leased.len();
            for job in leased {
                kind.running.fetch_add(1, Ordering::SeqCst);
                self.queue.changes.changed(job.id);
                let runner = Runner {
                    queue: self.queue.clone(),
                    kind: kind.clone(),
                    config: self.config.clone(),
                    owner: self.owner.clone(),
                };
                jobs.spawn(runner.run(job));
            }
        }
        Ok(full)
    }
}

struct Runner {
    queue: Queue,
    kind: Arc<Kind>,
    config: Config,
    owner: Arc<str>,
}

/// How the handler's run ended, before it is written.
enum Ended {
    Returned(Result<serde_json::Value, Failure>),
    Panicked,
    TimedOut,
    Cancelled,
    LeaseLost,
}

impl Runner {
    async fn run(self, job: Job) {
        let id = job.id;
        let (cancel, cancelled) = watch::channel(job.cancel_requested);
        self.queue
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, cancel.clone());
        let ended = self.attempt(job.clone(), cancel, cancelled).await;
        let outcome = self.outcome(&job, ended);
        if let Some(outcome) = outcome {
            match self
                .queue
                .store
                .finish_job(id, &self.owner, outcome, Utc::now())
                .await
            {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!(job.id = %id, "the job's lease was lost; its outcome is discarded")
                }
                Err(e) => tracing::error!(job.id = %id, error = %e, "recording a job's outcome"),
            }
        }
        self.queue
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
        self.kind.running.fetch_sub(1, Ordering::SeqCst);
        self.queue.changes.changed(id);
        // A slot is free.
        self.queue.wake.notify_one();
    }

    /// Runs the handler on its own task (a panic stays there) while renewing the lease.
    async fn attempt(
        &self,
        job: Job,
        cancel: watch::Sender<bool>,
        mut cancelled: watch::Receiver<bool>,
    ) -> Ended {
        let id = job.id;
        let timeout = Duration::from_millis(job.timeout_ms);
        let ctx = JobContext {
            job: Arc::new(job),
            owner: self.owner.clone(),
            store: self.queue.store.clone(),
            changes: self.queue.changes.clone(),
            cancelled: cancelled.clone(),
        };
        if ctx.is_cancelled() {
            return Ended::Cancelled;
        }
        let handler = self.kind.handler.clone();
        // Aborted when this attempt ends in any way, also when the runner itself is dropped
        // (the pool stopped without grace): a handler never outlives its attempt.
        let mut task = AbortOnDrop(tokio::spawn(async move { handler.run(ctx).await }));
        let renew_every = self.config.lease / 3;
        let mut renewal =
            tokio::time::interval_at(tokio::time::Instant::now() + renew_every, renew_every);
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let ended = loop {
            tokio::select! {
                joined = &mut task.0 => {
                    break match joined {
                        Ok(result) => Ended::Returned(result),
                        Err(e) if e.is_panic() => Ended::Panicked,
                        Err(_) => Ended::Cancelled,
                    };
                }
                _ = &mut deadline => break Ended::TimedOut,
                changed = cancelled.changed() => {
                    if changed.is_err() || *cancelled.borrow() {
                        break Ended::Cancelled;
                    }
                }
                _ = renewal.tick() => {
                    let now = Utc::now();
                    match self.queue.store.renew_lease(id, &self.owner, now, now + self.config.lease).await {
                        Ok(Some(false)) => {}
                        Ok(Some(true)) => { let _ = cancel.send(true); }
                        Ok(None) => break Ended::LeaseLost,
                        // The store is unreachable: keep running; the lease decides.
                        Err(e) => tracing::warn!(job.id = %id, error = %e, "renewing a job's lease"),
                    }
                }
            }
        };
        drop(task);
        ended
    }

    /// What to record; `None` when nothing may be (the lease was lost).
    fn outcome(&self, job: &Job, ended: Ended) -> Option<JobOutcome> {
        let failure = match ended {
            Ended::Returned(Ok(result)) => return Some(JobOutcome::Completed(result)),
            Ended::Returned(Err(failure)) => failure,
            Ended::Panicked => {
                tracing::error!(job.id = %job.id, job.kind = %job.kind, "a job's handler panicked");
                Failure::retryable("internal_error", "the job failed unexpectedly")
            }
            Ended::TimedOut => Failure::retryable(
                "timeout",
                format!("the attempt took longer than {} ms", job.timeout_ms),
            ),
            Ended::Cancelled => return Some(JobOutcome::Cancelled),
            Ended::LeaseLost => return None,
        };
        // A cancellation asked meanwhile wins over a retry.
        if self.queue.running_cancelled(job.id) {
            return Some(JobOutcome::Cancelled);
        }
        Some(retry_or_fail(
            job,
            failure.error,
            failure.retryable,
            &self.config,
        ))
    }
}

struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn retry_or_fail(job: &Job, error: JobError, retryable: bool, config: &Config) -> JobOutcome {
    if retryable && job.attempts < job.max_attempts {
        let delay = crate::backoff::delay(
            job.attempts,
            config.backoff_base,
            config.backoff_max,
            &mut rand::thread_rng(),
        );
        JobOutcome::Retry {
            error,
            run_at: Utc::now() + delay,
        }
    } else {
        JobOutcome::Failed(error)
    }
}

impl Queue {
    fn running_cancelled(&self, id: uuid::Uuid) -> bool {
        self.running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
            .is_some_and(|tx| *tx.borrow())
    }
}
