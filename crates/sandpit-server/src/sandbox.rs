//! The sandbox backend the server uses, chosen once at start-up. When it cannot work on this
//! host the reason is kept: start-up logs it, `/readyz` reports it, and anything that needs a
//! sandbox is refused with it — nothing ever runs unsandboxed.

use std::sync::Arc;
use std::time::Duration;

use sandpit_sandbox::{Backend, BackendReport, NativeBackend, NativeConfig};

use crate::config::{SandboxBackend, SandboxConfig};

pub struct Sandboxes {
    backend: Result<Arc<dyn Backend>, String>,
    /// The same backend when it is Kubernetes: its API server is asked for `/readyz`.
    #[cfg(feature = "kubernetes")]
    kube: Option<Arc<sandpit_kube::KubeBackend>>,
}

/// What the Kubernetes backend needs beyond `[sandbox]`.
pub struct KubeSettings<'a> {
    /// `[kubernetes]`, read into the backend's own `KubeConfig` (which checks every key).
    pub table: &'a std::collections::BTreeMap<String, serde_json::Value>,
    /// Labels this process's pods: the replica's id.
    pub instance_id: String,
    /// Replicas known to be live: their pods survive this process's start-up reconciliation.
    /// `None`: only this process's own left-overs are removed.
    pub live_owners: Option<std::collections::HashSet<String>>,
    /// The workspaces of the live sessions: a sandbox pod on one survives the start-up
    /// reconciliation whoever made it, for the replica that takes its session over.
    pub live_workspaces: Vec<std::path::PathBuf>,
    /// The shape of warm pods (the runs' sandboxes).
    pub warm_spec: sandpit_sandbox::SandboxSpec,
}

impl Sandboxes {
    pub async fn start(config: &SandboxConfig, kube: KubeSettings<'_>) -> Self {
        #[cfg(feature = "kubernetes")]
        let mut kube_backend = None;
        let backend = match config.backend {
            SandboxBackend::Native => Self::native(config).await,
            #[cfg(feature = "kubernetes")]
            SandboxBackend::Kubernetes => match Self::kubernetes(kube).await {
                Ok(b) => {
                    kube_backend = Some(b.clone());
                    Ok(b as Arc<dyn Backend>)
                }
                Err(e) => Err(e),
            },
            #[cfg(not(feature = "kubernetes"))]
            SandboxBackend::Kubernetes => {
                let _ = kube;
                Err(
                    "sandbox.backend = \"kubernetes\" needs a sandpit built with the \
                     `kubernetes` feature (cargo build --release --features kubernetes)"
                        .to_owned(),
                )
            }
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
        Self {
            backend,
            #[cfg(feature = "kubernetes")]
            kube: kube_backend,
        }
    }

    #[cfg(feature = "kubernetes")]
    async fn kubernetes(kube: KubeSettings<'_>) -> Result<Arc<sandpit_kube::KubeBackend>, String> {
        let table = serde_json::Value::Object(kube.table.clone().into_iter().collect());
        let config: sandpit_kube::KubeConfig = serde_json::from_value(table)
            .map_err(|e| format!("invalid [kubernetes] configuration: {e}"))?;
        let options = sandpit_kube::KubeOptions {
            warm_spec: kube.warm_spec,
            live_owners: kube.live_owners,
            live_workspaces: kube.live_workspaces,
            agent_addr: None,
        };
        let backend = sandpit_kube::KubeBackend::start(config, &kube.instance_id, options)
            .await
            .map_err(|e| e.to_string())?;
        Ok(Arc::new(backend))
    }

    /// A cheap round trip to what the backend depends on (the Kubernetes API server), for
    /// `/readyz`; the native backend has nothing to ask.
    pub async fn check(&self) -> Result<(), String> {
        #[cfg(feature = "kubernetes")]
        if let Some(kube) = &self.kube {
            return kube.check().await.map_err(|e| e.to_string());
        }
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(table: &std::collections::BTreeMap<String, serde_json::Value>) -> KubeSettings<'_> {
        KubeSettings {
            table,
            instance_id: "test".into(),
            live_owners: None,
            live_workspaces: Vec::new(),
            warm_spec: sandpit_sandbox::SandboxSpec::new(sandpit_sandbox::SandboxLimits::default()),
        }
    }

    fn kubernetes() -> SandboxConfig {
        SandboxConfig {
            backend: SandboxBackend::Kubernetes,
            ..SandboxConfig::default()
        }
    }

    #[cfg(not(feature = "kubernetes"))]
    #[tokio::test]
    async fn kubernetes_without_the_feature_says_how_to_build_it() {
        let table = std::collections::BTreeMap::new();
        let sandboxes = Sandboxes::start(&kubernetes(), settings(&table)).await;
        let why = sandboxes.backend().err().unwrap_or_default();
        assert!(why.contains("--features kubernetes"), "{why}");
    }

    #[cfg(feature = "kubernetes")]
    #[tokio::test]
    async fn a_bad_kubernetes_table_is_refused_with_the_key() {
        let table =
            std::collections::BTreeMap::from([("agent_prot".to_owned(), serde_json::json!(7070))]);
        let sandboxes = Sandboxes::start(&kubernetes(), settings(&table)).await;
        let why = sandboxes.backend().err().unwrap_or_default();
        assert!(
            why.contains("invalid [kubernetes]") && why.contains("agent_prot"),
            "{why}"
        );
    }
}
