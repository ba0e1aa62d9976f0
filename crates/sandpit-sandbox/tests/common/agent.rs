//! Helpers for the suites that drive an agent connection directly (tcp, pod): a bounded wait
//! and a process run to its end.

use std::time::Duration;

use sandpit_sandbox::client::AgentConnection;
use sandpit_sandbox::{Output, ProcessSpec};

/// Upper bound for anything a test waits for, so a defect shows as a failure, not a hang.
pub const PATIENCE: Duration = Duration::from_secs(30);

pub async fn patiently<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, fut)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {PATIENCE:?}"))
}

/// Runs `argv` to its end with no stdin.
pub async fn run(conn: &AgentConnection, argv: &[&str]) -> Output {
    patiently(&format!("{argv:?}"), async {
        conn.spawn(ProcessSpec::new(argv.iter().copied()))
            .await
            .unwrap()
            .output(b"")
            .await
            .unwrap()
    })
    .await
}

pub async fn sh(conn: &AgentConnection, script: &str) -> Output {
    run(conn, &["/bin/sh", "-c", script]).await
}
