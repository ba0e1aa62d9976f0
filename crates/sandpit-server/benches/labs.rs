//! Judge latency: how long `POST /api/v1/sessions/{id}/judge` takes for the Python lab and
//! the HTTP lab, split into time spent in sandboxed processes (the learner's program, the test
//! run, the app starting) and the judge's own overhead (everything else: HTTP, the agent round
//! trips, reading files, the store).
//!
//! `cargo bench -p sandpit-server --bench labs` (release; needs root for the native backend).
//! Knob: `BENCH_JUDGES` (judge runs per row, default 30). Target: overhead ≤ 100 ms a judge.

use std::time::Instant;

use serde_json::{Value, json};

mod common;
use common::{
    Samples, agent_argv, bench_config, env_or, load_average, logs_to_sink, serve_signed_up,
};

struct Row {
    name: String,
    wall: Samples,
    program: Samples,
    overhead: Samples,
    passed: bool,
}

fn main() {
    let n: usize = env_or("BENCH_JUDGES", 30);
    let load_before = load_average();
    logs_to_sink();
    let agent = agent_argv();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::TempDir::new().expect("tempdir");
    let (catalog, _) = sandpit_labs::Catalog::load(&[], &["default"]);
    rt.block_on(async {
        let mut config = bench_config(dir.path(), agent);
        config.runs.warm_pool = 0;
        let (addr, token) = serve_signed_up(config).await;
        let http = reqwest::Client::new();
        let url = |path: &str| format!("http://{addr}{path}");

        let mut rows = Vec::new();
        for (slug, files) in [("python-functions", "solution"), ("python-functions", "starter"), ("http-health", "solution")] {
            let lab = catalog.get(slug).expect("built-in lab");
            let started: Value = http
                .post(url(&format!("/api/v1/labs/{slug}/start")))
                .bearer_auth(&token)
                .send()
                .await
                .expect("start")
                .json()
                .await
                .expect("json");
            let session = started["session"]["id"].as_str().expect("session").to_owned();
            let written = if files == "solution" { lab.solved_files() } else { lab.starter.clone() };
            for (path, data) in &written {
                http.put(url(&format!("/api/v1/sessions/{session}/files/{path}")))
                    .bearer_auth(&token)
                    .body(data.clone())
                    .send()
                    .await
                    .expect("put");
            }
            for step in &lab.steps {
                let mut row = Row {
                    name: format!("{slug} / {} ({files})", step.id),
                    wall: Samples::new(),
                    program: Samples::new(),
                    overhead: Samples::new(),
                    passed: true,
                };
                for _ in 0..n {
                    let t = Instant::now();
                    let attempt: Value = http
                        .post(url(&format!("/api/v1/sessions/{session}/judge")))
                        .bearer_auth(&token)
                        .json(&json!({"step": step.id}))
                        .send()
                        .await
                        .expect("judge")
                        .json()
                        .await
                        .expect("json");
                    let wall = t.elapsed();
                    let program = attempt["metrics"]["program_ms"].as_f64().unwrap_or_else(|| panic!("no metrics: {attempt}"));
                    row.passed &= attempt["passed"] == true;
                    row.wall.push(wall);
                    row.program.push(std::time::Duration::from_secs_f64(program / 1e3));
                    row.overhead.push(wall.saturating_sub(std::time::Duration::from_secs_f64(program / 1e3)));
                }
                rows.push(row);
            }
            http.delete(url(&format!("/api/v1/sessions/{session}")))
                .bearer_auth(&token)
                .send()
                .await
                .expect("end");
        }

        println!("## sandpit judge bench (release build)\n");
        println!(
            "Host: {} CPUs, load average {load_before} at start. {n} judge runs per row, one \
             after another, through `POST /api/v1/sessions/{{id}}/judge`.\n",
            std::thread::available_parallelism().map_or(0, |x| x.get()),
        );
        println!("| lab / step (files) | passed | judge p50 | in sandboxed programs p50 | judge overhead p50 | overhead p99 | target |");
        println!("|---|---|---|---|---|---|---|");
        for row in &rows {
            let overhead = row.overhead.median_ms();
            println!(
                "| {} | {} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | ≤ 100 ms: {} |",
                row.name,
                if row.passed { "yes" } else { "no" },
                row.wall.median_ms(),
                row.program.median_ms(),
                overhead,
                row.overhead.p99_ms(),
                if overhead <= 100.0 { "met" } else { "MISSED" },
            );
        }
    });
}
