//! Deployed apps: deploy → healthy, what the platform's proxy adds over a direct connection to
//! the same running app, and a cold start after an idle stop — for a FastAPI and an Express
//! hello app, printed as tables.
//!
//! `cargo bench -p sandpit-server --bench apps` (release; needs root for the native sandbox
//! backend, and Debian's FastAPI/uvicorn and Express as `scripts/deps` installs them).
//!
//! - deploy → healthy: `POST /apps/{id}/deploy` until its job is `completed` (polled every
//!   5 ms), `BENCH_DEPLOYS` times per app; each is a redeploy beside the running version, as a
//!   learner's second and later deploys are.
//! - proxied vs direct: the same hyper client, the same running instance, in the same run.
//!   Direct is a TCP connection into the app's sandbox made as the proxy's connector makes it
//!   (`Sandbox::connect` on the app's port), `GET /`; proxied is `GET /user/bench/app/{app}/`
//!   on the server's port. Latency: `BENCH_LATENCY` sequential requests on one connection;
//!   throughput: 16 connections for `BENCH_SECONDS`; each in ten rounds taken in turn by the
//!   two sides, so a change in the machine's load falls on both.
//! - cold start: an idle stop (`Apps::sweep` with the clock moved past `idle_stop_minutes`),
//!   then one proxied `GET /` until its answer, `BENCH_COLD` times.
//!
//! The app's sandbox has the server's `[apps]` limits; `BENCH_APP_CPU` (millicores, default
//! the config's 500) changes its CPU share — on the default, the app's half core bounds both
//! paths' throughput. The server runs in this process with JSON logs to a sink.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use sandpit_sandbox::Sandbox;
use sandpit_server::apps::instance::PORT;
use sandpit_server::state::AppState;
use serde_json::{Value, json};

#[expect(
    dead_code,
    reason = "shared by the benches; this one starts the server itself to reach its state"
)]
mod common;
use common::{Samples, agent_argv, bench_config, env_or, load_average, logs_to_sink};

const CONNECTIONS: usize = 16;

const FASTAPI_HELLO: &str = r#"from fastapi import FastAPI

app = FastAPI()


@app.get("/")
def root():
    return {"message": "hello"}
"#;

const EXPRESS_HELLO: &str = r#"const express = require('express');

const app = express();
app.get('/', (req, res) => res.json({ message: 'hello' }));
app.listen(process.env.PORT);
"#;

struct Bench {
    http: reqwest::Client,
    addr: SocketAddr,
    token: String,
    state: AppState,
}

impl Bench {
    async fn start(config: sandpit_server::Config) -> Self {
        let app = sandpit_server::App::build(config).await.expect("server");
        let addr = app.addr();
        let state = app.state().clone();
        tokio::spawn(app.run_until(std::future::pending()));
        let http = reqwest::Client::new();
        let res: Value = http
            .post(format!("http://{addr}/api/v1/auth/signup"))
            .json(&json!({"username": "bench", "password": "bench password"}))
            .send()
            .await
            .expect("signup")
            .json()
            .await
            .expect("json");
        let token = res["token"].as_str().expect("token").to_owned();
        Self {
            http,
            addr,
            token,
            state,
        }
    }

    async fn api(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self
            .http
            .request(method, format!("http://{}{path}", self.addr))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("the API answers");
        let status = res.status();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }

    async fn create(&self, name: &str, runtime: &str) -> String {
        self.api(
            reqwest::Method::POST,
            "/api/v1/apps",
            Some(json!({"name": name, "runtime": runtime})),
        )
        .await["id"]
            .as_str()
            .expect("an app id")
            .to_owned()
    }

    /// One deploy, from the request until its job completed.
    async fn deploy(&self, id: &str, files: &[(&str, &str)]) -> Duration {
        let files: serde_json::Map<String, Value> = files
            .iter()
            .map(|(p, c)| ((*p).to_owned(), Value::String((*c).to_owned())))
            .collect();
        let start = Instant::now();
        let deployment = self
            .api(
                reqwest::Method::POST,
                &format!("/api/v1/apps/{id}/deploy"),
                Some(json!({ "files": files })),
            )
            .await;
        let job = deployment["job_id"].as_str().expect("a job id").to_owned();
        loop {
            let j = self
                .api(reqwest::Method::GET, &format!("/api/v1/jobs/{job}"), None)
                .await;
            match j["state"].as_str() {
                Some("completed") => return start.elapsed(),
                Some("failed" | "cancelled") => panic!("the deploy failed: {j}"),
                _ => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    }

    /// The running instance's sandbox, to dial the app directly.
    fn sandbox(&self, id: &str) -> Arc<dyn Sandbox> {
        let id = id.parse().expect("a uuid");
        self.state
            .apps
            .slot(id)
            .current()
            .expect("a running instance")
            .sandbox()
            .clone()
    }
}

/// Where the client sends its requests.
#[derive(Clone)]
enum Target {
    Proxied {
        addr: SocketAddr,
        path: String,
    },
    Direct {
        sandbox: Arc<dyn Sandbox>,
    },
    /// The platform's own `GET /healthz`: what any request to the server costs.
    Platform {
        addr: SocketAddr,
    },
}

impl Target {
    async fn connect(&self) -> SendRequest<Empty<Bytes>> {
        let stream = match self {
            Target::Proxied { addr, .. } | Target::Platform { addr } => {
                tokio::net::TcpStream::connect(addr)
                    .await
                    .expect("connect to the server")
            }
            Target::Direct { sandbox } => sandbox
                .connect(PORT)
                .await
                .expect("connect into the sandbox"),
        };
        stream.set_nodelay(true).expect("nodelay");
        let (sender, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(conn);
        sender
    }

    async fn hello(&self, sender: &mut SendRequest<Empty<Bytes>>) {
        let (path, host) = match self {
            Target::Proxied { addr, path } => (path.as_str(), addr.to_string()),
            Target::Direct { .. } => ("/", "localhost".to_owned()),
            Target::Platform { addr } => ("/healthz", addr.to_string()),
        };
        sender.ready().await.expect("ready");
        let request = http::Request::get(path)
            .header("host", host)
            .body(Empty::new())
            .expect("a request");
        let response = sender.send_request(request).await.expect("a response");
        assert_eq!(response.status(), 200);
        let body = response.into_body().collect().await.expect("a body");
        if !matches!(self, Target::Platform { .. }) {
            assert_eq!(body.to_bytes(), r#"{"message":"hello"}"#);
        }
    }
}

/// Rounds each side takes in turn, so a change in the machine's load falls on both.
const ROUNDS: usize = 10;

/// Latency of sequential requests on one connection per side, in alternating rounds.
async fn latency(direct: &Target, proxied: &Target, requests: usize) -> (Samples, Samples) {
    let mut senders = [direct.connect().await, proxied.connect().await];
    let targets = [direct, proxied];
    let mut samples = [Samples::new(), Samples::new()];
    for (target, sender) in targets.iter().zip(senders.iter_mut()) {
        for _ in 0..requests / 10 {
            target.hello(sender).await;
        }
    }
    for _ in 0..ROUNDS {
        for (i, target) in targets.iter().enumerate() {
            for _ in 0..requests.div_ceil(ROUNDS) {
                let start = Instant::now();
                target.hello(&mut senders[i]).await;
                samples[i].push(start.elapsed());
            }
        }
    }
    let [d, p] = samples;
    (d, p)
}

/// Requests per second with [`CONNECTIONS`] busy connections, for `seconds` per side in
/// alternating rounds.
async fn throughput(direct: &Target, proxied: &Target, seconds: u64) -> (f64, f64) {
    let slice = Duration::from_secs(seconds).div_f64(ROUNDS as f64 / 2.0);
    let mut done = [0u64, 0u64];
    let mut spent = [Duration::ZERO, Duration::ZERO];
    for round in 0..ROUNDS {
        let side = round % 2;
        let target = [direct, proxied][side];
        let start = Instant::now();
        let deadline = start + slice;
        let mut tasks = Vec::new();
        for _ in 0..CONNECTIONS {
            let target = target.clone();
            tasks.push(tokio::spawn(async move {
                let mut sender = target.connect().await;
                let mut n = 0u64;
                while Instant::now() < deadline {
                    target.hello(&mut sender).await;
                    n += 1;
                }
                n
            }));
        }
        for task in tasks {
            done[side] += task.await.expect("a client task");
        }
        spent[side] += start.elapsed();
    }
    (
        done[0] as f64 / spent[0].as_secs_f64(),
        done[1] as f64 / spent[1].as_secs_f64(),
    )
}

struct Row {
    app: &'static str,
    deploys: Samples,
    direct: Samples,
    proxied: Samples,
    direct_rps: f64,
    proxied_rps: f64,
    cold: Samples,
}

fn main() {
    let deploys: usize = env_or("BENCH_DEPLOYS", 10);
    let latency_requests: usize = env_or("BENCH_LATENCY", 2000);
    let seconds: u64 = env_or("BENCH_SECONDS", 5);
    let colds: usize = env_or("BENCH_COLD", 10);
    let agent = agent_argv();
    logs_to_sink();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let dir = tempfile::TempDir::new().expect("a temporary directory");
    let mut config = bench_config(dir.path(), agent);
    config.apps.cpu_millicores = env_or("BENCH_APP_CPU", config.apps.cpu_millicores);
    let app_cpu = config.apps.cpu_millicores;
    let load_before = load_average();
    let rows = runtime.block_on(async {
        let bench = Bench::start(config).await;
        let mut rows = Vec::new();
        for (app, runtime, files) in [
            ("fastapi", "python", [("main.py", FASTAPI_HELLO)]),
            ("express", "node", [("server.js", EXPRESS_HELLO)]),
        ] {
            let id = bench.create(app, runtime).await;
            let mut deploy_times = Samples::new();
            for _ in 0..deploys {
                deploy_times.push(bench.deploy(&id, &files).await);
            }
            // The versions replaced drain and stop in the background: let them go first.
            tokio::time::sleep(Duration::from_secs(2)).await;

            let direct = Target::Direct {
                sandbox: bench.sandbox(&id),
            };
            let proxied = Target::Proxied {
                addr: bench.addr,
                path: format!("/user/bench/app/{app}/"),
            };
            let (direct_latency, proxied_latency) =
                latency(&direct, &proxied, latency_requests).await;
            let (direct_rps, proxied_rps) = throughput(&direct, &proxied, seconds).await;

            let mut cold = Samples::new();
            let mut sender = proxied.connect().await;
            for _ in 0..colds {
                bench
                    .state
                    .apps
                    .sweep(
                        Instant::now() + Duration::from_secs(24 * 3600),
                        chrono::Utc::now(),
                    )
                    .await;
                let start = Instant::now();
                proxied.hello(&mut sender).await;
                cold.push(start.elapsed());
            }
            rows.push(Row {
                app,
                deploys: deploy_times,
                direct: direct_latency,
                proxied: proxied_latency,
                direct_rps,
                proxied_rps,
                cold,
            });
        }
        let platform = Target::Platform { addr: bench.addr };
        let (healthz, _) = latency(&platform, &platform, latency_requests).await;
        (rows, healthz)
    });
    let (rows, healthz) = rows;

    println!(
        "deployed apps: hello apps on this machine; load before {load_before}, after {}; the \
         app's sandbox has {app_cpu} millicores",
        load_average()
    );
    println!();
    println!(
        "| app | deploy → healthy p50 / p90 ms (n={deploys}) | cold start after idle stop p50 / max ms (n={colds}) |"
    );
    println!("|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {:.0} / {:.0} | {:.0} / {:.0} |",
            r.app,
            r.deploys.median_ms(),
            r.deploys.quantile_ms(0.9),
            r.cold.median_ms(),
            r.cold.quantile_ms(1.0),
        );
    }
    println!();
    println!(
        "proxied vs direct, GET / of the same instance with the same client ({latency_requests} \
         sequential requests on one connection; {CONNECTIONS} connections for {seconds} s; each \
         side in turn, {ROUNDS} rounds)"
    );
    println!();
    println!("| app | path | p50 ms | p99 ms | req/s at {CONNECTIONS} conns |");
    println!("|---|---|---|---|---|");
    for r in &rows {
        for (name, s, rps) in [
            ("direct", &r.direct, r.direct_rps),
            ("through the proxy", &r.proxied, r.proxied_rps),
        ] {
            println!(
                "| {} | {name} | {:.3} | {:.3} | {rps:.0} |",
                r.app,
                s.median_ms(),
                s.p99_ms()
            );
        }
    }
    println!(
        "| — | the platform's own GET /healthz, for reference | {:.3} | {:.3} | — |",
        healthz.median_ms(),
        healthz.p99_ms()
    );
    println!();
    for r in &rows {
        println!(
            "{}: added p50 {:.3} ms (target ≤ 0.3); proxied throughput {:.0} % of direct (target ≥ 80)",
            r.app,
            r.proxied.median_ms() - r.direct.median_ms(),
            100.0 * r.proxied_rps / r.direct_rps
        );
    }
}
