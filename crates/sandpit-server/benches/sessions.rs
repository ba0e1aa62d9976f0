//! What a session costs: create → ready, a keystroke's round trip over the terminal WebSocket,
//! bulk terminal output with the server's peak memory, memory per idle session with a terminal
//! attached, and how many such sessions the machine holds while the API stays responsive.
//!
//! `cargo bench -p sandpit-server --bench sessions` (release; needs root for the native
//! backend). Knobs: `BENCH_CREATE` (sessions created for the latency row, default 50),
//! `BENCH_ECHO` (keystrokes, default 300), `BENCH_BULK_MB` (size of the file `cat` prints,
//! default 200), `BENCH_SESSIONS` (concurrent sessions with a terminal, default 500),
//! `BENCH_OUTPUT_RATE` (the terminal's `output_rate_bytes_per_sec` for the bulk row; default
//! the server's default).
//!
//! The server runs in this process (JSON logs to a sink), so "server memory" is this process's
//! resident set, the WebSocket clients' small buffers included.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

mod common;
use common::{
    Samples, agent_argv, bench_config, env_or, load_average, logs_to_sink, serve_signed_up,
};

#[path = "common/terminal.rs"]
mod terminal;
use terminal::{Socket, read_until};

/// This process's resident and peak resident memory, in MiB.
fn memory_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Memory the machine has in use (total − available), MiB.
fn host_used_mib() -> f64 {
    let info = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let field = |name: &str| {
        info.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    (field("MemTotal:") - field("MemAvailable:")) / 1024.0
}

struct Api {
    http: reqwest::Client,
    addr: SocketAddr,
    token: String,
}

impl Api {
    async fn create(&self) -> String {
        let res: Value = self
            .http
            .post(format!("http://{}/api/v1/sessions", self.addr))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("create")
            .json()
            .await
            .expect("json");
        res["id"]
            .as_str()
            .unwrap_or_else(|| panic!("create failed: {res}"))
            .to_owned()
    }

    async fn end(&self, id: &str) {
        let res = self
            .http
            .delete(format!("http://{}/api/v1/sessions/{id}", self.addr))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("end");
        assert!(res.status().is_success(), "end: {}", res.status());
    }

    async fn exec(&self, id: &str, script: &str) -> Value {
        self.http
            .post(format!("http://{}/api/v1/sessions/{id}/exec", self.addr))
            .bearer_auth(&self.token)
            .json(&json!({"argv": ["/bin/sh", "-c", script], "timeout_ms": 120000}))
            .send()
            .await
            .expect("exec")
            .json()
            .await
            .expect("json")
    }

    async fn terminal(&self, id: &str) -> Socket {
        terminal::open(&format!("http://{}", self.addr), &self.token, id).await
    }
}

fn main() {
    let create_n: usize = env_or("BENCH_CREATE", 50);
    let echo_n: usize = env_or("BENCH_ECHO", 300);
    let bulk_mb: u64 = env_or("BENCH_BULK_MB", 200);
    let sessions_n: usize = env_or("BENCH_SESSIONS", 500);
    let output_rate: u64 = env_or("BENCH_OUTPUT_RATE", 0);
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
        let mut config = bench_config(dir.path(), agent);
        config.runs.warm_pool = 0;
        config.sessions.max_per_user = u32::MAX;
        config.sessions.workspace_mb = bulk_mb + 64;
        // Many small sessions: the machine's memory is the limit being measured.
        config.sessions.memory_mb = 256;
        if output_rate > 0 {
            config.sessions.terminal.output_rate_bytes_per_sec = output_rate;
        }
        let rate = config.sessions.terminal.output_rate_bytes_per_sec;
        let (addr, token) = serve_signed_up(config).await;
        let api = Api {
            http: reqwest::Client::new(),
            addr,
            token,
        };

        println!("## sandpit sessions bench (release build)\n");
        println!(
            "Host: {} CPUs, load average {load_before} at start. Knobs: BENCH_CREATE={create_n}, \
             BENCH_ECHO={echo_n}, BENCH_BULK_MB={bulk_mb}, BENCH_SESSIONS={sessions_n}; terminal \
             output rate {} MiB/s.\n",
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            rate >> 20
        );

        // 1. Create → ready (the sandbox runs and the default files are written).
        for _ in 0..3 {
            let id = api.create().await;
            api.end(&id).await;
        }
        let mut create = Samples::new();
        for _ in 0..create_n {
            let t = Instant::now();
            let id = api.create().await;
            create.push(t.elapsed());
            api.end(&id).await;
        }

        // 2. Keystroke → echo over the WebSocket (bash's line editor echoes each key).
        let id = api.create().await;
        let mut ws = api.terminal(&id).await;
        let echo = terminal::keystroke_echo(&mut ws, echo_n).await;

        // 3. Bulk output: `cat` of a large file, every byte acknowledged by the client.
        let made = api
            .exec(
                &id,
                &format!("yes 'the quick brown fox jumps over the lazy dog 0123456789' | head -c {}M > big.txt && wc -c < big.txt", bulk_mb),
            )
            .await;
        let bytes: f64 = made["stdout"].as_str().unwrap_or("0").trim().parse().unwrap_or(0.0);
        let (_, peak_before) = memory_mib();
        let t = Instant::now();
        ws.send(Message::binary(b"cat big.txt; echo do$((1+1))ne\r".to_vec()))
            .await
            .expect("send");
        let delivered = read_until(&mut ws, b"do2ne").await;
        let bulk_secs = t.elapsed().as_secs_f64();
        let (_, peak_after) = memory_mib();
        drop(ws);
        api.end(&id).await;

        // 4. Many idle sessions, each with a terminal attached; API latency meanwhile.
        let (rss_before, _) = memory_mib();
        let host_before = host_used_mib();
        let mut held = Vec::new();
        let mut failed = None;
        let started = Instant::now();
        for n in 0..sessions_n {
            let res = api
                .http
                .post(format!("http://{addr}/api/v1/sessions"))
                .bearer_auth(&api.token)
                .send()
                .await;
            let body: Value = match res {
                Ok(r) => r.json().await.unwrap_or(Value::Null),
                Err(e) => json!({"error": e.to_string()}),
            };
            let Some(id) = body["id"].as_str().map(str::to_owned) else {
                failed = Some(format!("session {n}: {body}"));
                break;
            };
            let mut ws = api.terminal(&id).await;
            // The hello and the first screen.
            let _ = ws.next().await;
            let _ = ws.next().await;
            held.push((id, ws));
        }
        let fill_secs = started.elapsed().as_secs_f64();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (rss_after, _) = memory_mib();
        let host_after = host_used_mib();
        let mut api_latency = Samples::new();
        for i in 0..500 {
            let (id, _) = &held[i % held.len().max(1)];
            let t = Instant::now();
            let res = api
                .http
                .get(format!("http://{addr}/api/v1/sessions/{id}/files/README.md"))
                .bearer_auth(&api.token)
                .send()
                .await
                .expect("read");
            assert!(res.status().is_success(), "{}", res.status());
            let _ = res.bytes().await;
            api_latency.push(t.elapsed());
        }
        let live = held.len();
        for (id, ws) in held {
            drop(ws);
            api.end(&id).await;
        }

        let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
        println!("| measure | result | target |");
        println!("|---|---|---|");
        println!(
            "| session create → ready ({create_n}) | p50 {:.1} ms, p99 {:.1} ms | p50 ≤ 25 ms: {} |",
            create.median_ms(),
            create.p99_ms(),
            verdict(create.median_ms() <= 25.0)
        );
        println!(
            "| keystroke → echo over the WebSocket ({echo_n}) | p50 {:.2} ms, p99 {:.2} ms | p50 ≤ 1 ms, p99 ≤ 5 ms: {} |",
            echo.median_ms(),
            echo.p99_ms(),
            verdict(echo.median_ms() <= 1.0 && echo.p99_ms() <= 5.0)
        );
        let mbps = bytes / bulk_secs / 1e6;
        println!(
            "| `cat` of a {:.0} MB file | {:.1} MB/s ({:.1} s; {:.1} MB sent to the client, output and screen snapshots); peak RSS {:.0} → {:.0} MiB | ≥ 100 MB/s, memory bounded: {} |",
            bytes / 1e6,
            mbps,
            bulk_secs,
            delivered as f64 / 1e6,
            peak_before,
            peak_after,
            verdict(mbps >= 100.0 && peak_after - peak_before < 256.0)
        );
        println!(
            "| memory per idle session with a terminal attached | server {:.2} MiB, host {:.1} MiB (sandbox processes, page cache and kernel included) | — |",
            (rss_after - rss_before) / live.max(1) as f64,
            (host_after - host_before) / live.max(1) as f64,
        );
        println!(
            "| concurrent sessions with a terminal attached | {live} (created in {fill_secs:.0} s){} | ≥ 500: {} |",
            failed.map(|f| format!("; stopped: {f}")).unwrap_or_default(),
            verdict(live >= 500)
        );
        println!(
            "| API latency with them attached (GET a file, 500 requests) | p50 {:.1} ms, p99 {:.1} ms | p99 ≤ 50 ms: {} |",
            api_latency.median_ms(),
            api_latency.p99_ms(),
            verdict(api_latency.p99_ms() <= 50.0)
        );
        println!("\nLoad average at the end: {}", load_average());
    });
}
