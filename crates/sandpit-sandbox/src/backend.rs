//! The backend seam. A [`Backend`] creates sandboxes; a [`Sandbox`] is one box. Every backend
//! runs the same agent inside its boxes and talks to it over [`AgentConnection`], so process and
//! file operations are provided here once; a backend only says how a box is started, measured
//! and destroyed (native namespaces today; a container engine or a Kubernetes pod later).

use async_trait::async_trait;
use serde::Serialize;

use crate::client::{AgentConnection, Process};
use crate::error::SandboxError;
use crate::protocol::{DirEntry, Precondition, TreeEntry, TreeListing, UnpackLimits, Unpacked};
use crate::spec::{ProcessSpec, SandboxSpec, WorkspacePath};

/// What a backend can do on this host, for start-up logs and `/readyz`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct BackendReport {
    pub backend: &'static str,
    /// Isolation features active in every sandbox (reported by the agent).
    pub features: Vec<String>,
    /// Details such as the cgroup version.
    pub details: Vec<(String, String)>,
}

/// Resource usage of a whole sandbox.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Usage {
    pub memory_bytes: u64,
    pub memory_peak_bytes: Option<u64>,
    pub cpu_ms: u64,
    pub pids: u64,
    pub oom_kills: u64,
}

#[async_trait]
pub trait Backend: Send + Sync {
    fn report(&self) -> BackendReport;
    async fn create(&self, spec: &SandboxSpec) -> Result<Box<dyn Sandbox>, SandboxError>;
    /// Releases what the backend holds beyond its sandboxes (server shutdown).
    async fn shutdown(&self) -> Result<(), SandboxError> {
        Ok(())
    }
}

#[async_trait]
pub trait Sandbox: Send + Sync {
    /// A stable identifier (also the cgroup or container name).
    fn id(&self) -> &str;
    /// The connection to the agent inside.
    fn agent(&self) -> &AgentConnection;
    async fn usage(&self) -> Result<Usage, SandboxError>;
    /// Kills everything in the box and releases what it held. Idempotent.
    async fn destroy(&self) -> Result<(), SandboxError>;

    async fn spawn(&self, spec: ProcessSpec) -> Result<Process, SandboxError> {
        self.agent().spawn(spec).await
    }

    async fn write_file(
        &self,
        path: &WorkspacePath,
        data: Vec<u8>,
        mode: u32,
    ) -> Result<(), SandboxError> {
        self.agent().write_file(path, data, mode).await
    }

    async fn read_file(
        &self,
        path: &WorkspacePath,
        max_bytes: u64,
    ) -> Result<Vec<u8>, SandboxError> {
        self.agent().read_file(path, max_bytes).await
    }

    /// See [`AgentConnection::write_file_if`].
    async fn write_file_if(
        &self,
        path: &WorkspacePath,
        data: Vec<u8>,
        mode: u32,
        expect: Option<Precondition>,
    ) -> Result<String, SandboxError> {
        self.agent().write_file_if(path, data, mode, expect).await
    }

    async fn read_file_with_hash(
        &self,
        path: &WorkspacePath,
        max_bytes: u64,
    ) -> Result<(Vec<u8>, String), SandboxError> {
        self.agent().read_file_with_hash(path, max_bytes).await
    }

    async fn tree(
        &self,
        dir: Option<&WorkspacePath>,
        max_entries: u32,
    ) -> Result<TreeListing, SandboxError> {
        self.agent().tree(dir, max_entries).await
    }

    async fn stat(&self, path: &WorkspacePath) -> Result<TreeEntry, SandboxError> {
        self.agent().stat(path).await
    }

    async fn rename(
        &self,
        from: &WorkspacePath,
        to: &WorkspacePath,
        overwrite: bool,
    ) -> Result<(), SandboxError> {
        self.agent().rename(from, to, overwrite).await
    }

    async fn pack(
        &self,
        dir: Option<&WorkspacePath>,
        max_bytes: u64,
    ) -> Result<Vec<u8>, SandboxError> {
        self.agent().pack(dir, max_bytes).await
    }

    async fn unpack(
        &self,
        dir: Option<&WorkspacePath>,
        archive: Vec<u8>,
        limits: UnpackLimits,
    ) -> Result<Unpacked, SandboxError> {
        self.agent().unpack(dir, archive, limits).await
    }

    async fn list(&self, dir: Option<&WorkspacePath>) -> Result<Vec<DirEntry>, SandboxError> {
        self.agent().list(dir).await
    }

    async fn remove(&self, path: &WorkspacePath) -> Result<(), SandboxError> {
        self.agent().remove(path).await
    }

    async fn mkdir(&self, path: &WorkspacePath) -> Result<(), SandboxError> {
        self.agent().mkdir(path).await
    }

    /// Kills every process and empties the workspace, `/tmp` and `/dev/shm`.
    async fn reset(&self) -> Result<(), SandboxError> {
        self.agent().reset().await
    }

    /// A TCP connection to `port` on the sandbox's own loopback interface: how the app proxy
    /// reaches a server that sandboxed code listens on, the sandbox having no other network.
    async fn connect(&self, port: u16) -> Result<tokio::net::TcpStream, SandboxError> {
        let _ = port;
        Err(SandboxError::Unavailable(
            "this sandbox backend cannot reach ports inside its sandboxes".into(),
        ))
    }

    /// The TCP ports something listens on inside the sandbox, ascending (to tell a user that
    /// their app listens on the wrong port). Empty where the backend cannot tell.
    async fn listening_ports(&self) -> Vec<u16> {
        Vec::new()
    }
}
