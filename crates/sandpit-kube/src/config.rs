//! `[kubernetes]`: how sandbox pods are made. The key names are the ones the Helm chart renders
//! (`deploy/helm/sandpit/templates/_helpers.tpl`, `sandpit.configMap`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Where a session's (persistent) workspace lives. Ephemeral workspaces are always an
/// `emptyDir`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkspaceStorage {
    /// A PersistentVolumeClaim per workspace, kept across the session's pods.
    #[default]
    Pvc,
    /// An `emptyDir` in the pod: the files live as long as the pod does. They survive the
    /// loss of a server replica (the next one adopts the pod) but not the pod's loss (an
    /// eviction, a node's failure): for clusters without a StorageClass, or classrooms
    /// where a session is a sitting.
    Pod,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KubeConfig {
    /// The namespace sandbox pods, their Secrets and claims live in.
    pub namespace: String,
    /// The sandbox pods' image (the server's own, whose entrypoint is `sandpit`).
    pub image: String,
    /// The agent's TCP port in a sandbox pod.
    pub agent_port: u16,
    /// A RuntimeClass (gVisor, Kata) for every sandbox pod; `None`: the cluster's default.
    pub runtime_class_name: Option<String>,
    /// Pods kept started and idle (see [`crate::KubeBackend`]).
    pub warm_pods: usize,
    pub workspace: WorkspaceStorage,
    /// The StorageClass of workspace claims; `None`: the cluster's default class.
    pub storage_class: Option<String>,
    /// The size of a workspace claim.
    pub workspace_size_mb: u64,
    /// How long a new pod may take to be scheduled, pulled, started and ready.
    pub ready_timeout_ms: u64,
    /// How long one call to the API server may take before it counts as unreachable.
    pub api_timeout_ms: u64,
    /// The API server's URL (tests, or a server outside the cluster without a kubeconfig).
    /// `None`: inferred (`KUBECONFIG`/`~/.kube/config`, else the in-cluster service account).
    pub api_url: Option<String>,
    /// The sandbox pods' ServiceAccount (its token is never mounted); `None`: the namespace's
    /// `default`.
    pub service_account: Option<String>,
    /// `Always`, `IfNotPresent` or `Never`; `None`: Kubernetes' default for the tag.
    pub image_pull_policy: Option<String>,
}

impl Default for KubeConfig {
    fn default() -> Self {
        Self {
            namespace: "sandpit-sandboxes".into(),
            image: "sandpit:latest".into(),
            agent_port: 7070,
            runtime_class_name: None,
            warm_pods: 2,
            workspace: WorkspaceStorage::Pvc,
            storage_class: None,
            workspace_size_mb: 256,
            ready_timeout_ms: 120_000,
            api_timeout_ms: 10_000,
            api_url: None,
            service_account: None,
            image_pull_policy: None,
        }
    }
}

impl KubeConfig {
    pub fn ready_timeout(&self) -> Duration {
        Duration::from_millis(self.ready_timeout_ms)
    }

    pub fn api_timeout(&self) -> Duration {
        Duration::from_millis(self.api_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_charts_rendered_table_loads() {
        // What `helm template` renders for [kubernetes] with every option set.
        let rendered = r#"
            agent_port = 7070
            image = "registry.example.com/sandpit:0.1.0"
            namespace = "sandpit-sandboxes"
            runtime_class_name = "gvisor"
            storage_class = "fast-ssd"
            warm_pods = 3
            workspace = "pod"
            workspace_size_mb = 512
        "#;
        let config: KubeConfig = toml::from_str(rendered).unwrap();
        assert_eq!(config.runtime_class_name.as_deref(), Some("gvisor"));
        assert_eq!(config.workspace, WorkspaceStorage::Pod);
        assert_eq!(config.warm_pods, 3);
        assert_eq!(config.workspace_size_mb, 512);
        assert_eq!(
            config.ready_timeout_ms,
            KubeConfig::default().ready_timeout_ms
        );
    }

    #[test]
    fn unknown_keys_and_workspace_kinds_are_refused() {
        assert!(toml::from_str::<KubeConfig>("agentPort = 7070").is_err());
        assert!(toml::from_str::<KubeConfig>("workspace = \"nfs\"").is_err());
    }
}
