//! sandpit's sandbox engine. It knows nothing of HTTP or databases, so it can be used and tested
//! alone.
//!
//! - [`spec`]: what a sandbox and a process are asked to be (limits, root, stdio).
//! - [`backend`]: the [`Backend`]/[`Sandbox`] seam every backend implements.
//! - [`protocol`] and [`client`]: the agent protocol and the server's side of it;
//!   [`transport`]: the authenticated TCP handshake in front of it.
//! - [`agent`]: the program inside every sandbox (`sandpit agent`).
//! - [`native`]: the default backend (namespaces, cgroups, seccomp), built on [`cgroup`],
//!   [`seccomp`] and [`host`].
//! - [`pool`]: warm sandboxes, reset between uses.

pub mod agent;
pub mod backend;
pub mod cgroup;
pub mod client;
pub mod error;
pub mod host;
pub mod images;
pub mod loopdev;
pub mod native;
pub mod pool;
pub mod protocol;
pub mod screen;
pub mod seccomp;
pub mod spec;
pub mod transport;

pub use backend::{Backend, BackendReport, Sandbox, Usage};
pub use client::{Attached, Output, Process, ProcessControl, ProcessEvent};
pub use error::SandboxError;
pub use native::{AgentTransport, NativeBackend, NativeConfig, NativeSandbox};
pub use pool::{Lease, Pool};
pub use protocol::{ExitInfo, LimitKind, OUTPUT_WINDOW, Stream};
pub use spec::{
    ContainersSpec, Hold, NetworkPolicy, ProcessLimits, ProcessSpec, RootSpec, SandboxLimits,
    SandboxSpec, StdioMode, Volume, VolumeTarget, WorkspacePath, WorkspaceSpec,
};
pub use transport::{AgentEndpoint, AgentKey};
