//! Helpers about processes shared by the suites that watch them from the host (native,
//! hostile); a separate module so a suite that needs none of it does not carry dead code.

use std::time::Duration;

use sandpit_sandbox::Output;

use crate::common::text;

/// Upper bound for a condition to come true.
const PATIENCE: Duration = Duration::from_secs(30);

pub fn describe(out: &Output) -> String {
    format!(
        "{:?}\nstdout: {}\nstderr: {}",
        out.exit,
        text(&out.stdout),
        text(&out.stderr)
    )
}

/// Whether host process `pid` exists and has not ended (zombies have).
pub fn is_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let (_, rest) = stat.rsplit_once(')')?;
            rest.split_whitespace().next().map(|state| state != "Z")
        })
        .unwrap_or(false)
}

/// Polls `check` until it holds; panics with `what` if it never does.
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
