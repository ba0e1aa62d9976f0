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
