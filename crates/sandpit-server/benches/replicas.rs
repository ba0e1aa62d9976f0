//! What a second replica costs: requests for one session through the replica that holds its
//! sandbox (A) and through another (B), which forwards them to A — a small file read, an exec
//! of `true`, a keystroke's echo over the terminal WebSocket — and file-read throughput at
//! concurrency 8 with one replica vs two on the same PostgreSQL (each replica holding half the
//! sessions, requests spread over both as a load balancer would).
//!
//! `cargo bench -p sandpit-server --bench replicas` (release; needs root for the native
//! backend; PostgreSQL from `SANDPIT_TEST_PG_URL` or a throwaway server). Knobs: `BENCH_N`
//! (requests per latency row, default 500), `BENCH_ECHO` (keystrokes, default 300),
//! `BENCH_SECS` (seconds per throughput row, default 5).
//!
//! Both replicas run in this process, each with its own data directory, sandbox uids and
//! listener; they share the database, the signing secret and the workspaces directory, as
//! replicas on one host would.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

#[expect(dead_code, reason = "shared by the benches")]
mod common;
#[path = "common/terminal.rs"]
mod terminal;
use common::{Samples, agent_argv, bench_config, env_or, load_average, logs_to_sink};

struct Replica {
    base: String,
}

async fn replica(
    root: &std::path::Path,
    name: &str,
    pg: &str,
    uid: u32,
    agent: Vec<String>,
) -> Replica {
    let mut config = bench_config(&root.join(name), agent);
    config.database.url = Some(pg.to_owned().into());
    config.auth.secret = Some("bench-replicas-signing-secret-0123456789".to_owned().into());
    config.cluster.workspaces_dir = root.join("workspaces");
    config.sandbox.uid = uid;
    config.sandbox.uids = 500;
    config.runs.warm_pool = 0;
    config.docker.enabled = false;
    config.sessions.max_per_user = 100;
    let app = sandpit_server::App::build(config).await.expect("server");
    let base = format!("http://{}", app.addr());
    tokio::spawn(app.run_until(std::future::pending()));
    Replica { base }
}

struct Client {
    http: reqwest::Client,
    token: String,
}

impl Client {
    async fn post(&self, url: String, body: Value) -> Value {
        let res = self
            .http
            .post(url)
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .expect("request");
        assert!(res.status().is_success(), "{}", res.status());
        res.json().await.expect("json")
    }

    async fn read(&self, url: &str) {
        let res = self
            .http
            .get(url)
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("read");
        assert!(res.status().is_success(), "{}", res.status());
        res.bytes().await.expect("body");
    }
}

/// Times `n` calls of `f`.
async fn sample<F, Fut>(n: usize, mut f: F) -> Samples
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut samples = Samples::new();
    for _ in 0..n {
        let t = Instant::now();
        f().await;
        samples.push(t.elapsed());
    }
    samples
}

/// Keystroke → echo round trips over a terminal reached through `base`.
async fn echo(base: &str, token: &str, session: &str, n: usize) -> Samples {
    let mut ws = terminal::open(base, token, session).await;
    terminal::keystroke_echo(&mut ws, n).await
}

/// File reads per second at concurrency 8 for `secs`; each worker reads its session's file
/// through the replica `bases[worker % bases.len()]`.
async fn throughput(client: &Client, targets: &[String], secs: u64) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let workers = (0..8).map(|w| {
        let url = targets[w % targets.len()].clone();
        async move {
            let mut n = 0u64;
            while Instant::now() < deadline {
                client.read(&url).await;
                n += 1;
            }
            n
        }
    });
    let total: u64 = futures::future::join_all(workers).await.into_iter().sum();
    total as f64 / secs as f64
}

fn row(name: &str, owner: &Samples, other: &Samples) -> String {
    format!(
        "| {name} | {:.2} / {:.2} ms | {:.2} / {:.2} ms | +{:.2} / +{:.2} ms |",
        owner.median_ms(),
        owner.p99_ms(),
        other.median_ms(),
        other.p99_ms(),
        other.median_ms() - owner.median_ms(),
        other.p99_ms() - owner.p99_ms(),
    )
}

fn main() {
    let n: usize = env_or("BENCH_N", 500);
    let echo_n: usize = env_or("BENCH_ECHO", 300);
    let secs: u64 = env_or("BENCH_SECS", 5);
    let load_before = load_average();
    logs_to_sink();
    let agent = agent_argv();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::TempDir::new().expect("tempdir");
    rt.block_on(async {
        let pg = sandpit_testkit::postgres_url().await;
        let a = replica(dir.path(), "a", &pg, 1_900_400_000, agent.clone()).await;
        let b = replica(dir.path(), "b", &pg, 1_900_400_500, agent).await;
        let client = Client {
            http: reqwest::Client::new(),
            token: common::signup(&a.base).await,
        };
        // Sessions made through A are held by A; through B, by B.
        let mut on_a = Vec::new();
        let mut on_b = Vec::new();
        for i in 0..8 {
            let base = if i % 2 == 0 { &a.base } else { &b.base };
            let made = client
                .post(format!("{base}/api/v1/sessions"), json!({}))
                .await;
            let id = made["id"].as_str().expect("id").to_owned();
            client
                .http
                .put(format!("{base}/api/v1/sessions/{id}/files/data.txt"))
                .bearer_auth(&client.token)
                .body("x".repeat(1024))
                .send()
                .await
                .expect("write");
            if i % 2 == 0 {
                on_a.push(id);
            } else {
                on_b.push(id);
            }
        }
        let session = on_a[0].clone();
        let file = |base: &str, id: &str| format!("{base}/api/v1/sessions/{id}/files/data.txt");

        println!("## sandpit replicas bench (release build)\n");
        println!(
            "Host: {} CPUs, load average {load_before} at start; two replicas in one process on \
             one PostgreSQL. BENCH_N={n}, BENCH_ECHO={echo_n}, BENCH_SECS={secs}.\n",
            std::thread::available_parallelism().map_or(0, |n| n.get()),
        );
        println!(
            "| request for a session held by A | through A (p50 / p99) | through B, forwarded \
             (p50 / p99) | added by forwarding |"
        );
        println!("|---|---|---|---|");
        for _ in 0..20 {
            client.read(&file(&a.base, &session)).await;
            client.read(&file(&b.base, &session)).await;
        }
        let (url_a, url_b) = (file(&a.base, &session), file(&b.base, &session));
        let via_a = sample(n, || client.read(&url_a)).await;
        let via_b = sample(n, || client.read(&url_b)).await;
        println!("{}", row("read a 1 KiB file", &via_a, &via_b));
        let exec = |base: String| {
            let url = format!("{base}/api/v1/sessions/{session}/exec");
            let client = &client;
            move || {
                let url = url.clone();
                async move {
                    client.post(url, json!({"argv": ["true"]})).await;
                }
            }
        };
        let via_a = sample(n / 2, exec(a.base.clone())).await;
        let via_b = sample(n / 2, exec(b.base.clone())).await;
        println!("{}", row("exec `true`", &via_a, &via_b));
        let via_a = echo(&a.base, &client.token, &session, echo_n).await;
        let via_b = echo(&b.base, &client.token, &session, echo_n).await;
        println!("{}", row("keystroke → echo (terminal)", &via_a, &via_b));

        println!("\n| file reads at concurrency 8, {secs} s | reads/s |");
        println!("|---|---|");
        // One replica: A serves its own sessions.
        let one: Vec<String> = on_a.iter().map(|id| file(&a.base, id)).collect();
        let one = throughput(&client, &one, secs).await;
        println!("| 1 replica (A, its own sessions) | {one:.0} |");
        // Two: every session of either, each request to either replica (half forwarded).
        let mut two = Vec::new();
        for (i, id) in on_a.iter().chain(&on_b).enumerate() {
            let base = if i % 2 == 0 { &a.base } else { &b.base };
            two.push(file(base, id));
        }
        let both = throughput(&client, &two, secs).await;
        println!(
            "| 2 replicas (A and B, sessions on both, requests spread; half forwarded) | {both:.0} \
             ({:.0} % of 1) |",
            100.0 * both / one
        );
        println!("\nLoad average at the end: {}", load_average());
    });
}
