//! Helpers for the suites that drive an agent connection directly (tcp, held, pod): a bounded wait
//! and a process run to its end.

use std::time::Duration;

use sandpit_sandbox::client::AgentConnection;
use sandpit_sandbox::{AgentEndpoint, Output, ProcessSpec, SandboxLimits};

/// Upper bound for anything a test waits for, so a defect shows as a failure, not a hang.
pub const PATIENCE: Duration = Duration::from_secs(30);

const MIB: u64 = 1 << 20;

/// A box's limits in these suites: room for a shell and small programs.
pub fn limits() -> SandboxLimits {
    SandboxLimits {
        memory_bytes: 256 * MIB,
        pids: 64,
        cpu_millicores: Some(1000),
        workspace_bytes: 32 * MIB,
        tmp_bytes: 8 * MIB,
        shm_bytes: 8 * MIB,
    }
}

/// What a client gives a connection's handshake, and then its set-up.
pub const CONNECT: Duration = Duration::from_secs(10);

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

/// A later connection to a box that is set up already; a box of the native backend's says it
/// filters system calls.
pub async fn reconnect(endpoint: &AgentEndpoint) -> AgentConnection {
    let (conn, features) = patiently(
        "reconnecting",
        AgentConnection::connect_tcp(endpoint, None, CONNECT),
    )
    .await
    .unwrap();
    assert!(features.contains(&"seccomp".to_string()), "{features:?}");
    conn
}
