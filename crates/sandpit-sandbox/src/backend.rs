//! The backend seam. A [`Backend`] creates sandboxes; a [`Sandbox`] is one box. Every backend
//! runs the same agent inside its boxes and talks to it over [`AgentConnection`], so process and
//! file operations are provided here once; a backend only says how a box is started, measured
//! and destroyed (native namespaces today; a container engine or a Kubernetes pod later).

use std::path::Path;

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
    /// The sandbox a server that is gone left running on `spec`'s persistent workspace, taken
    /// over with its processes (and the terminal the agent holds); `Ok(None)` when there is
    /// none to take, after clearing away what cannot be taken, so that [`Backend::create`]
    /// may follow. The caller must hold the workspace's session (no other live server may
    /// drive it). Native sandboxes die with their server: nothing is ever left to take.
    async fn adopt(&self, spec: &SandboxSpec) -> Result<Option<Box<dyn Sandbox>>, SandboxError> {
        let _ = spec;
        Ok(None)
    }
    /// Whether the persistent workspace at `dir` still holds its files (checked when a
    /// server starts, for the sessions it finds live). Native: its disk image is there.
    async fn has_workspace(&self, dir: &Path) -> Result<bool, SandboxError> {
        Ok(dir.join(crate::loopdev::IMAGE_NAME).is_file())
    }
    /// Releases what the backend keeps for the persistent workspace at `dir` beyond the
    /// directory itself, which the caller removes (its session ended): a Kubernetes claim,
    /// and any sandbox still running on it. Missing is fine.
    async fn remove_workspace(&self, dir: &Path) -> Result<(), SandboxError> {
        let _ = dir;
        Ok(())
    }
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

    /// Ends this server's hold on the box as it stops gracefully: a box that another server
    /// can take over ([`Backend::adopt`]) is left running for it, with what its agent holds
    /// (the terminal, for its grace period); any other box is destroyed.
    async fn leave(&self) -> Result<(), SandboxError> {
        self.destroy().await
    }

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
