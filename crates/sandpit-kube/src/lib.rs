//! sandpit's Kubernetes sandbox backend: every sandbox is a pod running `sandpit agent
//! --listen`, driven over the agent's authenticated TCP transport (no HTTP routes, no
//! database).
//!
//! - [`config`]: the `kubernetes` section of `sandpit.toml`.
//! - [`objects`]: the Pod, Secret and claim, built as plain values.
//! - [`state`]: what a pod's status means; [`reconcile`]: which pods are orphans.
//! - [`cluster`]: the few API calls, each bounded by a timeout.
//! - [`backend`]: [`KubeBackend`] and [`KubeSandbox`].

pub mod backend;
pub mod cluster;
pub mod config;
pub mod objects;
pub mod reconcile;
pub mod state;

pub use backend::{AgentAddr, KubeBackend, KubeOptions, KubeSandbox, Reconciled};
pub use config::{KubeConfig, WorkspaceStorage};
pub use objects::OwnerId;
