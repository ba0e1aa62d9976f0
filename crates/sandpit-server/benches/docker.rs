#![expect(
    clippy::unwrap_used,
    reason = "a bench stops loudly at the first step that does not work"
)]
//! The docker environment: a docker session's first container, the Docker track's judge with
//! the build split out, and the memory an idle docker session holds — printed as tables.
//!
//! `cargo bench -p sandpit-server --bench docker` (release; root for the native backend; the
//! base images of `sandpit images build` in `SANDPIT_BENCH_IMAGES_DIR`, default
//! `/var/cache/sandpit-images`).
//!
//! - create → first container: `POST /sessions {"environment": "docker"}`, then
//!   `POST /sessions/{id}/exec` of `docker run --rm debian:bookworm-slim echo hello` until it
//!   prints `hello`; the time from the create to that answer, `BENCH_SESSIONS` times (default 5),
//!   each a new session ended afterwards. The exec's own time is shown apart.
//! - judge: the Dockerfile lab's `health` step on its solution, `BENCH_JUDGES` times (default
//!   5) in one session: the first with a cold layer cache, the rest warm. The image check's
//!   share is split out, and so is `docker build` alone (an exec of it, warm).
//! - idle memory: `BENCH_IDLE` docker sessions (default 3, one user each) started and left
//!   idle for 5 s; each box's cgroup memory, beside a plain session's.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

#[expect(dead_code, reason = "shared by the benches")]
mod common;
use common::{Samples, agent_argv, bench_config, env_or, load_average, logs_to_sink};

const LAB: &str = "docker-dockerignore-health";

struct Bench {
    http: reqwest::Client,
    addr: SocketAddr,
    state: sandpit_server::state::AppState,
}

impl Bench {
    async fn user(&self, name: &str) -> String {
        let res: Value = self
            .http
            .post(format!("http://{}/api/v1/auth/signup", self.addr))
            .json(&json!({"username": name, "password": "bench password"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        res["token"].as_str().expect("signed up").to_owned()
    }

    async fn post(&self, token: &str, path: &str, body: Value) -> (u16, Value) {
        let res = self
            .http
            .post(format!("http://{}{path}", self.addr))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    async fn end(&self, token: &str, session: &str) {
        self.http
            .delete(format!("http://{}/api/v1/sessions/{session}", self.addr))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
    }

    async fn exec(&self, token: &str, session: &str, argv: &[&str]) -> Value {
        let (status, body) = self
            .post(
                token,
                &format!("/api/v1/sessions/{session}/exec"),
                json!({"argv": argv, "timeout_ms": 120_000}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

fn main() {
    let images = std::env::var("SANDPIT_BENCH_IMAGES_DIR")
        .unwrap_or_else(|_| "/var/cache/sandpit-images".into());
    let sessions: usize = env_or("BENCH_SESSIONS", 5);
    let judges: usize = env_or("BENCH_JUDGES", 5);
    let idle: usize = env_or("BENCH_IDLE", 3);
    logs_to_sink();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let mut config = bench_config(dir.path(), agent_argv());
        config.docker.images_dir = images.into();
        config.sessions.max_per_user = 10;
        let app = sandpit_server::App::build(config).await.expect("server");
        let addr = app.addr();
        let state = app.state().clone();
        tokio::spawn(app.run_until(std::future::pending()));
        let bench = Bench {
            http: reqwest::Client::new(),
            addr,
            state,
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            match bench.state.docker.status() {
                sandpit_server::docker::Status::Available { .. } => break,
                sandpit_server::docker::Status::Checking if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                other => panic!("the docker environment: {other:?}"),
            }
        }
        let token = bench.user("bench").await;
        println!("load average before: {}", load_average());

        // Create → first container.
        let (mut first, mut run_only) = (Samples::new(), Samples::new());
        for _ in 0..sessions {
            let t = Instant::now();
            let (status, created) = bench
                .post(&token, "/api/v1/sessions", json!({"environment": "docker"}))
                .await;
            assert_eq!(status, 201, "{created}");
            let id = created["id"].as_str().unwrap().to_owned();
            let r = Instant::now();
            let out = bench
                .exec(
                    &token,
                    &id,
                    &["docker", "run", "--rm", "debian:bookworm-slim", "echo", "hello"],
                )
                .await;
            assert_eq!(out["stdout"], "hello\n", "{out}");
            run_only.push(r.elapsed());
            first.push(t.elapsed());
            bench.end(&token, &id).await;
        }
        println!(
            "\n| docker session: create → first `docker run` | p50 ms | p99 ms | n |\n|---|---|---|---|"
        );
        println!(
            "| create + first container | {:.0} | {:.0} | {sessions} |",
            first.median_ms(),
            first.p99_ms()
        );
        println!(
            "| of which `docker run --rm … echo hello` | {:.0} | {:.0} | {sessions} |",
            run_only.median_ms(),
            run_only.p99_ms()
        );

        // The judge.
        let (status, started) = bench
            .post(&token, &format!("/api/v1/labs/{LAB}/start"), json!({}))
            .await;
        assert!((200..300).contains(&status), "{started}");
        let session = started["session"]["id"].as_str().unwrap().to_owned();
        let lab = sandpit_labs::Catalog::load(&[], sandpit_server::sessions::ENVIRONMENTS)
            .0
            .get(LAB)
            .unwrap()
            .clone();
        for (file, data) in lab.solved_files() {
            bench
                .http
                .put(format!(
                    "http://{addr}/api/v1/sessions/{session}/files/{}",
                    file.as_str()
                ))
                .bearer_auth(&token)
                .body(data)
                .send()
                .await
                .unwrap();
        }
        let (mut total, mut image, mut cold) = (Samples::new(), Samples::new(), None);
        for i in 0..judges {
            let (status, attempt) = bench
                .post(
                    &token,
                    &format!("/api/v1/sessions/{session}/judge"),
                    json!({"step": "health"}),
                )
                .await;
            assert_eq!(status, 200, "{attempt}");
            assert_eq!(attempt["passed"], true, "{attempt}");
            let ms = |v: &Value| Duration::from_secs_f64(v.as_f64().unwrap_or(0.0) / 1000.0);
            let judged = ms(&attempt["metrics"]["total_ms"]);
            let check = attempt["metrics"]["checks"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["kind"] == "image")
                .map(|c| ms(&c["elapsed_ms"]))
                .unwrap_or_default();
            if i == 0 {
                cold = Some((judged, check));
            } else {
                total.push(judged);
                image.push(check);
            }
        }
        let b = Instant::now();
        let built = bench
            .exec(&token, &session, &["docker", "build", "-q", "-t", "warm", "."])
            .await;
        assert_eq!(built["exit_code"], 0, "{built}");
        let build = b.elapsed();
        bench.end(&token, &session).await;
        let (cold_total, cold_image) = cold.unwrap();
        println!("\n| Docker track judge (`{LAB}`, step `health`) | ms |\n|---|---|");
        println!(
            "| cold layer cache: whole step / image check | {:.0} / {:.0} |",
            cold_total.as_secs_f64() * 1e3,
            cold_image.as_secs_f64() * 1e3
        );
        println!(
            "| warm, p50 of {}: whole step | {:.0} |",
            judges - 1,
            total.median_ms()
        );
        println!("| warm, p50: image check (build, inspect, run, probe, stop) | {:.0} |", image.median_ms());
        println!(
            "| warm `docker build` alone (exec) | {:.0} |",
            build.as_secs_f64() * 1e3
        );

        // Idle memory.
        let mut docker_mem = Vec::new();
        let mut ids = Vec::new();
        for i in 0..idle {
            let user = bench.user(&format!("idle{i}")).await;
            let (status, created) = bench
                .post(&user, "/api/v1/sessions", json!({"environment": "docker"}))
                .await;
            assert_eq!(status, 201, "{created}");
            // A shell as a learner has one, and the engine used once.
            let id = created["id"].as_str().unwrap().to_owned();
            bench.exec(&user, &id, &["docker", "images", "-q"]).await;
            ids.push((user, id));
        }
        let (status, plain) = bench.post(&token, "/api/v1/sessions", json!({})).await;
        assert_eq!(status, 201, "{plain}");
        let plain_id = plain["id"].as_str().unwrap().to_owned();
        tokio::time::sleep(Duration::from_secs(5)).await;
        let memory = |id: &str| {
            let state = bench.state.clone();
            let id: uuid::Uuid = id.parse().unwrap();
            async move {
                let session = state.store.session(id).await.unwrap().unwrap();
                let sandbox = state.sessions.sandbox_of_session(&session).await.unwrap();
                sandbox.usage().await.unwrap().memory_bytes
            }
        };
        for (_, id) in &ids {
            docker_mem.push(memory(id).await);
        }
        let plain_mem = memory(&plain_id).await;
        let avg = docker_mem.iter().sum::<u64>() as f64 / docker_mem.len().max(1) as f64;
        println!("\n| idle session memory (cgroup) | MiB |\n|---|---|");
        println!("| docker session, mean of {idle} | {:.1} |", avg / (1 << 20) as f64);
        println!("| plain session | {:.1} |", mb(plain_mem));
        for (user, id) in &ids {
            bench.end(user, id).await;
        }
        bench.end(&token, &plain_id).await;
        println!("\nload average after: {}", load_average());
    });
}
