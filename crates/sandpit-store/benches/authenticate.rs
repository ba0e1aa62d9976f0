//! Throughput of the authentication hot path on SQLite, by pool size and concurrency:
//! `authenticate` alone, and followed by `touch_credential` on every request.
//!
//! `cargo bench -p sandpit-store --bench authenticate` (a release build) prints a table.
//! With `SANDPIT_BENCH_PG_URL` set to a fresh database URL it measures PostgreSQL too.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use sandpit_store::{CredentialKind, NewCredential, NewUser, Role, Store};
use uuid::Uuid;

const USERS: u8 = 200;
const RUN: Duration = Duration::from_secs(2);

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = format!("sqlite://{}/bench.db?mode=rwc", dir.path().display());
    let mut targets = vec![("sqlite", url)];
    if let Ok(url) = std::env::var("SANDPIT_BENCH_PG_URL") {
        targets.push(("postgres", url));
    }
    println!(
        "{:<10} {:>5} {:>6} {:>14} {:>8} {:>14} {:>8}",
        "backend", "pool", "tasks", "auth/s", "p99 µs", "auth+touch/s", "p99 µs"
    );
    for (backend, url) in targets {
        for (pool, tasks) in [(1, 1), (2, 8), (4, 16), (8, 32)] {
            let store = sandpit_store::connect(&url, pool).await.expect("connect");
            store.migrate().await.expect("migrate");
            let hashes = Arc::new(seed(&*store).await);
            let (rate, p99) = measure(store.clone(), hashes.clone(), tasks, false).await;
            let (touch_rate, touch_p99) = measure(store, hashes, tasks, true).await;
            println!(
                "{backend:<10} {pool:>5} {tasks:>6} {rate:>14.0} {p99:>8} {touch_rate:>14.0} {touch_p99:>8}"
            );
        }
    }
}

/// One user with one session each (idempotent across runs on the same database).
async fn seed(store: &dyn Store) -> Vec<[u8; 32]> {
    let mut hashes = Vec::new();
    for n in 0..USERS {
        let hash = [n; 32];
        let now = Utc::now();
        if store
            .authenticate(&hash, now)
            .await
            .expect("auth")
            .is_none()
        {
            let user = store
                .create_user(NewUser {
                    id: Uuid::now_v7(),
                    username: format!("bench{n}-{}", Uuid::now_v7().simple()),
                    email: None,
                    password_hash: None,
                    role: Role::Learner,
                    created_at: now,
                })
                .await
                .expect("create user");
            store
                .create_credential(NewCredential {
                    id: Uuid::now_v7(),
                    user_id: user.id,
                    kind: CredentialKind::Session,
                    name: "bench".into(),
                    prefix: "sp_bench".into(),
                    token_hash: hash,
                    created_at: now,
                    expires_at: Some(now + TimeDelta::days(1)),
                })
                .await
                .expect("create credential");
        }
        hashes.push(hash);
    }
    hashes
}

/// Requests per second and the 99th percentile latency in µs. With `touch`, every request
/// also calls `touch_credential`, which writes at most once a minute per credential.
async fn measure(
    store: Arc<dyn Store>,
    hashes: Arc<Vec<[u8; 32]>>,
    tasks: usize,
    touch: bool,
) -> (f64, u128) {
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for t in 0..tasks {
        let store = store.clone();
        let hashes = hashes.clone();
        set.spawn(async move {
            let mut latencies = Vec::new();
            let mut i = t;
            while start.elapsed() < RUN {
                let began = Instant::now();
                let now = Utc::now();
                let (credential, _user) = store
                    .authenticate(&hashes[i % hashes.len()], now)
                    .await
                    .expect("authenticate")
                    .expect("live credential");
                if touch {
                    store
                        .touch_credential(credential.id, now)
                        .await
                        .expect("touch");
                }
                latencies.push(began.elapsed().as_micros());
                i += tasks;
            }
            latencies
        });
    }
    let mut all = Vec::new();
    while let Some(latencies) = set.join_next().await {
        all.extend(latencies.expect("task"));
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.sort_unstable();
    let p99 = all.get(all.len() * 99 / 100).copied().unwrap_or_default();
    (all.len() as f64 / elapsed, p99)
}
