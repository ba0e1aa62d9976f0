//! The job queue's throughput and pickup latency on each engine, printed as a table.
//!
//! `cargo bench -p sandpit-jobs --bench queue` (release). For each engine (SQLite in a temporary
//! file; PostgreSQL on `SANDPIT_TEST_PG_URL`, else a throwaway server — see
//! `scripts/pg-test-server`) and each worker count: `BENCH_JOBS` no-op jobs are enqueued by 4
//! concurrent producers, and the time from the first enqueue until every job is `completed`
//! gives jobs/s (enqueue → complete, each job written as enqueue + lease + finish with their
//! events). Then `BENCH_PICKUPS` jobs are enqueued one at a time into an idle pool: the time
//! from the enqueue call until the handler starts is the pickup latency. Knobs: `BENCH_JOBS`
//! (2000), `BENCH_PICKUPS` (200), `BENCH_ENGINES` (`sqlite,postgres`), `BENCH_WORKERS`
//! (`1,4,16`).

#![expect(
    clippy::unwrap_used,
    reason = "a bench that cannot set up should stop loudly"
)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::Utc;
use sandpit_jobs::{Config, Failure, Handler, JobContext, Queue, Workers};
use sandpit_store::{JobFilter, JobState, NewJob, NewUser, Role, Store};
use serde_json::{Value, json};
use uuid::Uuid;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Noop {
    concurrency: usize,
    ran: AtomicUsize,
    started: Mutex<HashMap<Uuid, Instant>>,
}

#[async_trait]
impl Handler for Noop {
    fn concurrency(&self) -> usize {
        self.concurrency
    }
    async fn run(&self, ctx: JobContext) -> Result<Value, Failure> {
        self.started
            .lock()
            .unwrap()
            .insert(ctx.job().id, Instant::now());
        self.ran.fetch_add(1, Ordering::Relaxed);
        Ok(Value::Null)
    }
}

fn config() -> Config {
    Config {
        // The bench enqueues in this process: workers are woken at once; polling only matters
        // for other processes.
        poll: Duration::from_millis(200),
        batch: 32,
        ..Config::default()
    }
}

fn new_job(user: Uuid) -> NewJob {
    NewJob {
        id: Uuid::now_v7(),
        kind: "noop".into(),
        user_id: user,
        project_id: None,
        input: json!({}),
        priority: 0,
        max_attempts: 1,
        timeout_ms: 60_000,
        run_at: Utc::now(),
        created_at: Utc::now(),
    }
}

async fn open(engine: &str, dir: &tempfile::TempDir) -> Arc<dyn Store> {
    let url = match engine {
        "sqlite" => sandpit_testkit::sqlite_url(dir.path()),
        _ => sandpit_testkit::postgres_url().await,
    };
    let store = sandpit_store::connect(&url, 16).await.unwrap();
    store.migrate().await.unwrap();
    store
}

async fn user(store: &dyn Store) -> Uuid {
    let id = Uuid::now_v7();
    store
        .create_user(NewUser {
            id,
            username: format!("bench{}", &id.simple().to_string()[24..]),
            email: None,
            password_hash: None,
            role: Role::Learner,
            created_at: Utc::now(),
        })
        .await
        .unwrap();
    id
}

async fn unfinished(store: &dyn Store, user: Uuid) -> usize {
    let mut n = 0;
    for state in [JobState::Queued, JobState::Running] {
        let filter = JobFilter {
            state: Some(state),
            limit: 1,
            ..JobFilter::default()
        };
        n += store.jobs_of(user, &filter).await.unwrap().len();
    }
    n
}

fn pool(queue: &Queue, workers: usize) -> (Workers, Arc<Noop>) {
    let noop = Arc::new(Noop {
        concurrency: workers,
        ran: AtomicUsize::new(0),
        started: Mutex::default(),
    });
    let mut handlers: HashMap<String, Arc<dyn Handler>> = HashMap::new();
    handlers.insert("noop".into(), noop.clone());
    (Workers::start(queue, handlers, config()), noop)
}

async fn throughput(engine: &str, workers: usize, jobs: usize) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let store = open(engine, &dir).await;
    let user = user(store.as_ref()).await;
    let queue = Queue::new(store.clone());
    let (pool, noop) = pool(&queue, workers);
    let started = Instant::now();
    let producers: Vec<_> = (0..4)
        .map(|p| {
            let queue = queue.clone();
            tokio::spawn(async move {
                for _ in (p..jobs).step_by(4) {
                    queue.enqueue(new_job(user)).await.unwrap();
                }
            })
        })
        .collect();
    for p in producers {
        p.await.unwrap();
    }
    while noop.ran.load(Ordering::Relaxed) < jobs || unfinished(store.as_ref(), user).await > 0 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let elapsed = started.elapsed();
    pool.stop(Duration::from_secs(10)).await;
    jobs as f64 / elapsed.as_secs_f64()
}

async fn pickup(engine: &str, samples: usize) -> (Duration, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(engine, &dir).await;
    let user = user(store.as_ref()).await;
    let queue = Queue::new(store.clone());
    let (pool, noop) = pool(&queue, 4);
    let mut latencies = Vec::with_capacity(samples);
    for _ in 0..samples {
        let job = new_job(user);
        let id = job.id;
        let sent = Instant::now();
        queue.enqueue(job).await.unwrap();
        let started = loop {
            if let Some(at) = noop.started.lock().unwrap().get(&id).copied() {
                break at;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        };
        latencies.push(started - sent);
        while unfinished(store.as_ref(), user).await > 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    pool.stop(Duration::from_secs(10)).await;
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    (at(0.5), at(0.99))
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let jobs: usize = env_or("BENCH_JOBS", 2000);
    let samples: usize = env_or("BENCH_PICKUPS", 200);
    let engines: String = env_or("BENCH_ENGINES", "sqlite,postgres".to_owned());
    let workers: Vec<usize> = env_or("BENCH_WORKERS", "1,4,16".to_owned())
        .split(',')
        .filter_map(|w| w.trim().parse().ok())
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!("| engine | workers | jobs | enqueue → complete (jobs/s) |");
    println!("|---|---|---|---|");
    let mut pickups = Vec::new();
    for engine in engines.split(',').map(str::trim) {
        for &w in &workers {
            let rate = runtime.block_on(throughput(engine, w, jobs));
            println!("| {engine} | {w} | {jobs} | {rate:.0} |");
        }
        pickups.push((engine, runtime.block_on(pickup(engine, samples))));
    }
    println!();
    println!("| engine | pickups | enqueue → running p50 | p99 |");
    println!("|---|---|---|---|");
    for (engine, (p50, p99)) in pickups {
        println!("| {engine} | {samples} | {} | {} |", ms(p50), ms(p99));
    }
}
