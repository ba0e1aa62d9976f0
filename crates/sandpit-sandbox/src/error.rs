//! Errors of the sandbox engine.

use crate::protocol::{FileError, ProtocolError};
use crate::spec::SpecError;

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The backend cannot create sandboxes on this host; the message says what is missing.
    #[error("sandboxes are unavailable: {0}")]
    Unavailable(String),
    #[error("sandbox set-up failed: {0}")]
    Setup(String),
    #[error("cgroup: {0}")]
    Cgroup(#[from] crate::cgroup::CgroupError),
    #[error("{0}")]
    Spawn(String),
    #[error(transparent)]
    File(FileError),
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The agent connection closed: the sandbox is gone.
    #[error("the sandbox is gone")]
    Lost,
    /// An agent reached over the network did not authenticate (or was not an agent).
    #[error("connecting to the agent: {0}")]
    Handshake(#[from] crate::transport::HandshakeError),
    #[error("agent protocol: {0}")]
    Protocol(#[from] ProtocolError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

impl From<std::io::Error> for SandboxError {
    fn from(source: std::io::Error) -> Self {
        Self::Io {
            context: "sandbox I/O".into(),
            source,
        }
    }
}
