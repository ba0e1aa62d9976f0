//! What the backend's suites share: a backend against a fresh fake API server, and waits
//! that fail instead of hanging.

#![expect(clippy::unwrap_used, reason = "test fixture")]

use std::future::Future;
use std::time::Duration;

use sandpit_kube::{KubeBackend, KubeConfig, KubeOptions};
use sandpit_sandbox::{Output, ProcessSpec, Sandbox, SandboxLimits, SandboxSpec};

use crate::fake::Fake;

pub const NS: &str = "sandpit-test";
pub const OWNER: &str = "server-a";
const MIB: u64 = 1 << 20;
/// Upper bound for anything a test waits for: a defect shows as a failure, not a hang.
pub const PATIENCE: Duration = Duration::from_secs(60);

pub fn limits() -> SandboxLimits {
    SandboxLimits {
        memory_bytes: 256 * MIB,
        pids: 64,
        cpu_millicores: Some(1000),
        workspace_bytes: 16 * MIB,
        tmp_bytes: 8 * MIB,
        shm_bytes: 8 * MIB,
    }
}

pub fn spec() -> SandboxSpec {
    SandboxSpec::new(limits())
}

pub fn config(fake: &Fake, warm_pods: usize) -> KubeConfig {
    KubeConfig {
        namespace: NS.into(),
        image: "sandpit:test".into(),
        warm_pods,
        api_url: Some(fake.url()),
        ready_timeout_ms: 30_000,
        api_timeout_ms: 5_000,
        ..KubeConfig::default()
    }
}

pub fn options(fake: &Fake) -> KubeOptions {
    KubeOptions {
        warm_spec: spec(),
        live_owners: None,
        live_workspaces: Vec::new(),
        agent_addr: Some(fake.agent_addr()),
    }
}

pub async fn backend(fake: &Fake, warm_pods: usize) -> KubeBackend {
    KubeBackend::start(config(fake, warm_pods), OWNER, options(fake))
        .await
        .unwrap()
}

pub async fn patiently<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, fut)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {PATIENCE:?}"))
}

/// Waits until `cond` holds, failing after [`PATIENCE`].
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    patiently(what, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

pub async fn run(sandbox: &dyn Sandbox, argv: &[&str]) -> Output {
    patiently(&format!("{argv:?}"), async {
        sandbox
            .spawn(ProcessSpec::new(argv.iter().copied()))
            .await
            .unwrap()
            .output(b"")
            .await
            .unwrap()
    })
    .await
}

pub fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap()
}
