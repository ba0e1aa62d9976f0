//! The fixture the sandbox crate's integration suites share: a native backend whose cgroups are
//! all removed when the test ends, however it ends.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use sandpit_sandbox::{
    AgentTransport, Backend, NativeBackend, NativeConfig, Sandbox, SandboxLimits, SandboxSpec,
    WorkspacePath,
};

pub struct Host {
    pub backend: Arc<NativeBackend>,
    /// What [`Host::sandbox`] gives a new sandbox.
    limits: SandboxLimits,
}

impl Host {
    /// A backend handing out `uids`, whose plain sandboxes get `limits`.
    pub async fn with(uids: Range<u32>, limits: SandboxLimits) -> Self {
        Self::with_transport(uids, limits, AgentTransport::default()).await
    }

    /// [`Host::with`], the server reaching its agents over `transport`.
    pub async fn with_transport(
        uids: Range<u32>,
        limits: SandboxLimits,
        transport: AgentTransport,
    ) -> Self {
        let config = NativeConfig {
            agent_argv: vec![env!("CARGO_BIN_EXE_sandpit-agent").into(), "agent".into()],
            uids,
            seccomp: true,
            ready_timeout: Duration::from_secs(10),
        };
        let backend = NativeBackend::with_transport(config, transport)
            .await
            .unwrap();
        Self {
            backend: Arc::new(backend),
            limits,
        }
    }

    pub async fn sandbox(&self) -> Box<dyn Sandbox> {
        self.sandbox_with(self.limits).await
    }

    pub async fn sandbox_with(&self, limits: SandboxLimits) -> Box<dyn Sandbox> {
        self.backend
            .create(&SandboxSpec::new(limits))
            .await
            .unwrap()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Err(error) = self.backend.cleanup() {
            eprintln!("cleanup failed: {error}");
        }
    }
}

pub fn path(p: &str) -> WorkspacePath {
    WorkspacePath::parse(p).unwrap()
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
