//! The sandbox backend the server uses, chosen once at start-up. When it cannot work on this
//! host the reason is kept: start-up logs it, `/readyz` reports it, and anything that needs a
//! sandbox is refused with it — nothing ever runs unsandboxed.

use std::sync::Arc;
use std::time::Duration;

use sandpit_sandbox::{Backend, BackendReport, NativeBackend, NativeConfig};

use crate::config::{SandboxBackend, SandboxConfig};

pub struct Sandboxes {
    backend: Result<Arc<dyn Backend>, String>,
}

impl Sandboxes {
    pub async fn start(config: &SandboxConfig) -> Self {
        let backend = match config.backend {
            SandboxBackend::Native => Self::native(config).await,
        };
        match &backend {
            Ok(b) => {
                let report = b.report();
                tracing::info!(
                    backend = report.backend,
                    features = %report.features.join(","),
                    details = ?report.details,
                    "sandboxes ready"
                );
            }
            Err(e) => {
                tracing::error!(error = %e, "sandboxes are unavailable; runs will be refused")
            }
        }
        Self { backend }
    }

    async fn native(config: &SandboxConfig) -> Result<Arc<dyn Backend>, String> {
        let agent_argv = if config.agent.is_empty() {
            sandpit_sandbox::native::current_exe_agent()
                .map_err(|e| format!("cannot locate this program to start the agent: {e}"))?
        } else {
            config.agent.clone()
        };
        let backend = NativeBackend::new(NativeConfig {
            agent_argv,
            uids: config.uid..config.uid.saturating_add(config.uids),
            seccomp: config.seccomp,
            ready_timeout: Duration::from_secs(10),
        })
        .await
        .map_err(|e| e.to_string())?;
        Ok(Arc::new(backend))
    }

    /// The backend, or why there is none.
    pub fn backend(&self) -> Result<&Arc<dyn Backend>, &str> {
        self.backend.as_ref().map_err(String::as_str)
    }

    pub fn report(&self) -> Result<BackendReport, &str> {
        self.backend().map(|b| b.report())
    }
}
