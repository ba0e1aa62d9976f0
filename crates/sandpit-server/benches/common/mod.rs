//! Helpers shared by the benches: knobs from the environment, the host's load, the agent built
//! in the bench's own profile, and latency samples.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|e| format!("unknown ({e})"))
}

/// The agent next to this bench's profile directory, built in the same profile first (cargo is a
/// no-op when it is up to date), so a release bench never measures a debug agent.
pub fn agent_argv() -> Vec<String> {
    let exe = std::env::current_exe().expect("bench executable path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("bench executable is in target/<profile>/deps");
    let release = profile_dir.file_name().is_some_and(|n| n == "release");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut args = vec![
        "build",
        "-q",
        "-p",
        "sandpit-sandbox",
        "--bin",
        "sandpit-agent",
    ];
    if release {
        args.push("--release");
    }
    let status = Command::new(cargo)
        .args(&args)
        .status()
        .expect("running cargo to build sandpit-agent");
    assert!(status.success(), "building sandpit-agent failed");
    sandpit_testkit::agent_argv()
}

// ---------------------------------------------------------------------------------------------
// Statistics

pub struct Samples(pub Vec<Duration>);

impl Samples {
    pub fn new() -> Self {
        Self(Vec::new())
    }
    pub fn push(&mut self, d: Duration) {
        self.0.push(d);
    }
    pub fn quantile_ms(&self, q: f64) -> f64 {
        let mut v = self.0.clone();
        v.sort_unstable();
        if v.is_empty() {
            return f64::NAN;
        }
        let idx = ((q * v.len() as f64).ceil() as usize)
            .saturating_sub(1)
            .min(v.len() - 1);
        v[idx].as_secs_f64() * 1000.0
    }
    pub fn median_ms(&self) -> f64 {
        self.quantile_ms(0.5)
    }
    pub fn p99_ms(&self) -> f64 {
        self.quantile_ms(0.99)
    }
}

/// Request logs go through the real JSON formatter into a sink: the server pays for logging as
/// it would in production, and the bench's table stays readable.
pub fn logs_to_sink() {
    use tracing_subscriber::layer::SubscriberExt;
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::EnvFilter::new("info"))
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_span_list(true)
                .with_writer(std::io::sink),
        );
    tracing::subscriber::set_global_default(subscriber).expect("subscriber");
}

/// A server config for a bench: a data directory in `dir`, port 0, no rate limits, `agent`.
pub fn bench_config(dir: &Path, agent: Vec<String>) -> sandpit_server::Config {
    let mut config = sandpit_server::Config {
        data_dir: dir.join("data"),
        ..sandpit_server::Config::default()
    };
    config.server.bind = "127.0.0.1:0".parse().expect("addr");
    config.rate_limit.api_per_minute = u32::MAX;
    config.rate_limit.auth_per_minute = u32::MAX;
    config.sandbox.agent = agent;
    config
}

/// Starts the server in this runtime and signs a user up: its address and the user's token.
pub async fn serve_signed_up(config: sandpit_server::Config) -> (std::net::SocketAddr, String) {
    let app = sandpit_server::App::build(config).await.expect("server");
    let addr = app.addr();
    tokio::spawn(app.run_until(std::future::pending()));
    (addr, signup(&format!("http://{addr}")).await)
}

/// Signs the user `bench` up on the server at `base`: their token.
pub async fn signup(base: &str) -> String {
    let res: serde_json::Value = reqwest::Client::new()
        .post(format!("{base}/api/v1/auth/signup"))
        .json(&serde_json::json!({"username": "bench", "password": "bench password"}))
        .send()
        .await
        .expect("signup")
        .json()
        .await
        .expect("json");
    res["token"].as_str().expect("token").to_owned()
}
