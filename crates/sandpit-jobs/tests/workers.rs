//! The worker pool against a real store, on both engines: jobs run exactly once (also with
//! two pools on one database, as two server processes would be), progress and logs become
//! events, failures are retried with backoff or fail, timeouts, panics, cancellation (in this
//! process and from another), and a pool that dies mid-job: its job runs again elsewhere.

#![expect(
    clippy::unwrap_used,
    reason = "in a test, a failed unwrap is a failed test"
)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use sandpit_jobs::{Config, Failure, Handler, JobContext, Queue, Workers};
use sandpit_store::{CancelOutcome, Job, JobEventKind, JobState, NewJob, NewUser, Role, Store};
use serde_json::{Value, json};
use uuid::Uuid;

/// Hang guard only; never a speed target.
const PATIENCE: Duration = Duration::from_secs(60);

/// Short leases and polls, so lost workers are noticed within a test's patience.
fn config() -> Config {
    Config {
        lease: Duration::from_millis(600),
        poll: Duration::from_millis(50),
        reclaim_every: Duration::from_millis(100),
        backoff_base: Duration::from_millis(20),
        backoff_max: Duration::from_millis(100),
        batch: 8,
    }
}

async fn user(store: &dyn Store) -> Uuid {
    let id = Uuid::now_v7();
    store
        .create_user(NewUser {
            id,
            username: format!("u{}", &id.simple().to_string()[24..]),
            email: None,
            password_hash: None,
            role: Role::Learner,
            created_at: Utc::now(),
        })
        .await
        .unwrap();
    id
}

fn new_job(user_id: Uuid, kind: &str, input: Value) -> NewJob {
    NewJob {
        id: Uuid::now_v7(),
        kind: kind.to_owned(),
        user_id,
        project_id: None,
        input,
        priority: 0,
        max_attempts: 3,
        timeout_ms: 30_000,
        run_at: Utc::now(),
        created_at: Utc::now(),
    }
}

async fn finished(store: &dyn Store, id: Uuid) -> Job {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let job = store.job(id).await.unwrap().unwrap();
        if job.state.is_finished() {
            return job;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "job {id} still {:?}",
            job.state
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Counts runs per job; answers what its input says: `{"fail": "retryable"|"fatal"|"panic"|
/// "slow", "times": n}` fails the first n attempts, `{"hang": true}` never returns, else echoes.
#[derive(Default)]
struct Scripted {
    runs: Mutex<HashMap<Uuid, u32>>,
    concurrency: usize,
}

impl Scripted {
    fn new(concurrency: usize) -> Arc<Self> {
        Arc::new(Self {
            runs: Mutex::default(),
            concurrency,
        })
    }

    fn runs(&self, id: Uuid) -> u32 {
        self.runs.lock().unwrap().get(&id).copied().unwrap_or(0)
    }
}

#[async_trait]
impl Handler for Scripted {
    fn concurrency(&self) -> usize {
        self.concurrency
    }

    async fn run(&self, ctx: JobContext) -> Result<Value, Failure> {
        let job = ctx.job().clone();
        *self.runs.lock().unwrap().entry(job.id).or_default() += 1;
        let input = &job.input;
        if input["hang"] == true {
            std::future::pending::<()>().await;
        }
        if input["progress"] == true {
            ctx.progress(50, Some("halfway")).await;
            ctx.log("a line").await;
        }
        // By the job's attempt number, which the store keeps across pools.
        if job.attempts <= input["times"].as_u64().unwrap_or(0) as u32 {
            match input["fail"].as_str() {
                Some("retryable") => return Err(Failure::retryable("flaky", "try again")),
                Some("fatal") => return Err(Failure::fatal("bad_input", "no")),
                Some("panic") => panic!("a handler bug"),
                Some("slow") => tokio::time::sleep(Duration::from_secs(30)).await,
                _ => {}
            }
        }
        Ok(json!({"echo": input, "attempt": job.attempts}))
    }
}

fn workers(queue: &Queue, handler: Arc<Scripted>) -> Workers {
    let mut handlers: HashMap<String, Arc<dyn Handler>> = HashMap::new();
    handlers.insert("test".into(), handler);
    Workers::start(queue, handlers, config())
}

async fn every_job_runs_exactly_once_across_two_pools(store: Arc<dyn Store>) {
    let alice = user(store.as_ref()).await;
    // Two queues on one store: two server processes.
    let (a, b) = (Queue::new(store.clone()), Queue::new(store.clone()));
    let handler = Scripted::new(4);
    let (wa, wb) = (workers(&a, handler.clone()), workers(&b, handler.clone()));
    let mut ids = Vec::new();
    for i in 0..80 {
        let queue = if i % 2 == 0 { &a } else { &b };
        ids.push(
            queue
                .enqueue(new_job(alice, "test", json!(i)))
                .await
                .unwrap()
                .id,
        );
    }
    for (i, id) in ids.iter().enumerate() {
        let job = finished(store.as_ref(), *id).await;
        assert_eq!(job.state, JobState::Completed, "{job:?}");
        assert_eq!(job.result.unwrap()["echo"], json!(i));
        assert_eq!(
            (job.attempts, handler.runs(*id)),
            (1, 1),
            "job {i} ran once"
        );
    }
    wa.stop(PATIENCE).await;
    wb.stop(PATIENCE).await;
}

async fn progress_and_logs_are_events(store: Arc<dyn Store>) {
    let alice = user(store.as_ref()).await;
    let queue = Queue::new(store.clone());
    let mut changes = queue.subscribe();
    let pool = workers(&queue, Scripted::new(1));
    let job = queue
        .enqueue(new_job(alice, "test", json!({"progress": true})))
        .await
        .unwrap();
    finished(store.as_ref(), job.id).await;
    let events = store.job_events(job.id, 0, 100).await.unwrap();
    let kinds: Vec<(JobEventKind, Value)> = events
        .iter()
        .map(|e| (e.kind, e.data.get("state").cloned().unwrap_or_default()))
        .collect();
    assert_eq!(
        kinds,
        [
            (JobEventKind::State, json!("queued")),
            (JobEventKind::State, json!("running")),
            (JobEventKind::Progress, Value::Null),
            (JobEventKind::Log, Value::Null),
            (JobEventKind::Result, Value::Null),
            (JobEventKind::State, json!("completed")),
        ]
    );
    assert_eq!(events[2].data, json!({"percent": 50, "message": "halfway"}));
    // Readers in this process were told.
    assert_eq!(changes.recv().await.unwrap(), job.id);
    pool.stop(PATIENCE).await;
}

async fn failures_retry_with_backoff_or_fail(store: Arc<dyn Store>) {
    let alice = user(store.as_ref()).await;
    let queue = Queue::new(store.clone());
    let handler = Scripted::new(4);
    let pool = workers(&queue, handler.clone());
    let flaky = queue
        .enqueue(new_job(
            alice,
            "test",
            json!({"fail": "retryable", "times": 2}),
        ))
        .await
        .unwrap();
    let fatal = queue
        .enqueue(new_job(alice, "test", json!({"fail": "fatal", "times": 1})))
        .await
        .unwrap();
    let hopeless = queue
        .enqueue(new_job(
            alice,
            "test",
            json!({"fail": "retryable", "times": 9}),
        ))
        .await
        .unwrap();
    let buggy = queue
        .enqueue(new_job(alice, "test", json!({"fail": "panic", "times": 1})))
        .await
        .unwrap();

    let job = finished(store.as_ref(), flaky.id).await;
    assert_eq!((job.state, job.attempts), (JobState::Completed, 3));
    assert_eq!(job.result.unwrap()["attempt"], 3);
    let retries: Vec<_> = store
        .job_events(flaky.id, 0, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.data["state"] == "queued" && e.data.get("retry_at").is_some())
        .collect();
    assert_eq!(
        retries.len(),
        2,
        "two retries, each with its error and time"
    );
    assert_eq!(retries[0].data["error"]["code"], "flaky");

    let job = finished(store.as_ref(), fatal.id).await;
    assert_eq!(
        (job.state, job.attempts),
        (JobState::Failed, 1),
        "not retried"
    );
    assert_eq!(job.error.unwrap().code, "bad_input");

    let job = finished(store.as_ref(), hopeless.id).await;
    assert_eq!(
        (job.state, job.attempts),
        (JobState::Failed, 3),
        "max_attempts"
    );
    assert_eq!(job.error.unwrap().code, "flaky");

    let job = finished(store.as_ref(), buggy.id).await;
    assert_eq!((job.state, job.attempts), (JobState::Completed, 2));
    assert_eq!(
        handler.runs(buggy.id),
        2,
        "the panic was an attempt, then a retry"
    );
    pool.stop(PATIENCE).await;
}

async fn an_attempt_past_its_timeout_is_stopped(store: Arc<dyn Store>) {
    let alice = user(store.as_ref()).await;
    let queue = Queue::new(store.clone());
    let pool = workers(&queue, Scripted::new(2));
    let mut new = new_job(alice, "test", json!({"fail": "slow", "times": 1}));
    new.timeout_ms = 200;
    let job = queue.enqueue(new).await.unwrap();
    let job = finished(store.as_ref(), job.id).await;
    assert_eq!((job.state, job.attempts), (JobState::Completed, 2));
    let timed_out = store
        .job_events(job.id, 0, 100)
        .await
        .unwrap()
        .into_iter()
        .any(|e| e.data["error"]["code"] == "timeout");
    assert!(timed_out);
    pool.stop(PATIENCE).await;
}

async fn cancel_reaches_queued_and_running_jobs(store: Arc<dyn Store>) {
    let alice = user(store.as_ref()).await;
    let here = Queue::new(store.clone());
    let elsewhere = Queue::new(store.clone());
    // No pool for "later": it stays queued.
    let mut later = new_job(alice, "test", json!({}));
    later.run_at = Utc::now() + chrono::TimeDelta::hours(1);
    let later = here.enqueue(later).await.unwrap();
    match here.cancel(later.id).await.unwrap() {
        Some(CancelOutcome::Cancelled(job)) => assert_eq!(job.state, JobState::Cancelled),
        other => panic!("{other:?}"),
    }

    let pool = workers(&here, Scripted::new(4));
    let mine = here
        .enqueue(new_job(alice, "test", json!({"hang": true})))
        .await
        .unwrap();
    let theirs = here
        .enqueue(new_job(alice, "test", json!({"hang": true})))
        .await
        .unwrap();
    for id in [mine.id, theirs.id] {
        wait_for_state(store.as_ref(), id, JobState::Running).await;
    }
    // In the process that runs it: stopped at once. From another: at the next renewal.
    assert_eq!(
        here.cancel(mine.id).await.unwrap(),
        Some(CancelOutcome::Requested)
    );
    assert_eq!(
        elsewhere.cancel(theirs.id).await.unwrap(),
        Some(CancelOutcome::Requested)
    );
    for id in [mine.id, theirs.id] {
        let job = finished(store.as_ref(), id).await;
        assert_eq!(job.state, JobState::Cancelled);
        assert_eq!(
            here.cancel(id).await.unwrap(),
            Some(CancelOutcome::Finished(JobState::Cancelled))
        );
    }
    assert_eq!(here.cancel(Uuid::now_v7()).await.unwrap(), None);
    pool.stop(PATIENCE).await;
}

async fn wait_for_state(store: &dyn Store, id: Uuid, state: JobState) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while store.job(id).await.unwrap().unwrap().state != state {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{id} never {state:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn a_job_whose_pool_died_runs_again_elsewhere(store: Arc<dyn Store>) {
    let alice = user(store.as_ref()).await;
    let first = Queue::new(store.clone());
    let hanging = Scripted::new(1);
    let dying = workers(&first, hanging.clone());
    let job = first
        .enqueue(new_job(alice, "test", json!({"fail": "slow", "times": 1})))
        .await
        .unwrap();
    wait_for_state(store.as_ref(), job.id, JobState::Running).await;
    // The pool dies without a word: no outcome written, the lease left to expire.
    dying.stop(Duration::ZERO).await;
    assert_eq!(
        store.job(job.id).await.unwrap().unwrap().state,
        JobState::Running
    );

    let second = Queue::new(store.clone());
    let survivor = Scripted::new(1);
    let pool = workers(&second, survivor.clone());
    let done = finished(store.as_ref(), job.id).await;
    assert_eq!((done.state, done.attempts), (JobState::Completed, 2));
    assert_eq!((hanging.runs(job.id), survivor.runs(job.id)), (1, 1));
    let reclaimed = store
        .job_events(job.id, 0, 100)
        .await
        .unwrap()
        .into_iter()
        .any(|e| e.data["error"]["code"] == "lease_expired");
    assert!(reclaimed);
    pool.stop(PATIENCE).await;
}

macro_rules! engine_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let dir = tempfile::tempdir().unwrap();
                    let store = super::open(&sandpit_testkit::sqlite_url(dir.path())).await;
                    super::$name(store).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let store = super::open(&sandpit_testkit::postgres_url().await).await;
                    super::$name(store).await;
                }
            )*
        }
    };
}

async fn open(url: &str) -> Arc<dyn Store> {
    let store = sandpit_store::connect(url, 8).await.unwrap();
    store.migrate().await.unwrap();
    store
}

engine_tests!(
    every_job_runs_exactly_once_across_two_pools,
    progress_and_logs_are_events,
    failures_retry_with_backoff_or_fail,
    an_attempt_past_its_timeout_is_stopped,
    cancel_reaches_queued_and_running_jobs,
    a_job_whose_pool_died_runs_again_elsewhere,
);
