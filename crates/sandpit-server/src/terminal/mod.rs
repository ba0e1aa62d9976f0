//! The web terminal engine: one login shell on a PTY in a sandbox, shared by any number of
//! WebSocket clients (several viewers, some read-only), kept alive for a grace period when all
//! of them leave, and redrawn for whoever (re)attaches.
//!
//! - [`hub`]: [`TerminalHub`] owns the shell [`Process`](sandpit_sandbox::Process), keeps a
//!   server-side screen model (`vt100`), fans output out and ends the shell after the grace.
//! - [`protocol`]: the pure parts: control messages, flow control ([`protocol::Flow`]), the
//!   output pacing bucket.
//! - [`screen`] (in `sandpit-sandbox`, shared with the agent): the snapshot that redraws the
//!   current screen on a fresh terminal.
//! - [`socket`]: the WebSocket driver, [`socket::serve`]. The wire protocol is described in
//!   `docs/terminal-protocol.md`.
//!
//! Auth, the Origin check and finding the session's hub belong to the route handler.

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub mod hub;
pub mod protocol;
pub mod socket;

/// The screen model and snapshot live with the sandbox engine: a held shell's agent keeps one too.
pub use sandpit_sandbox::screen;

pub use hub::{Attachment, HubEvent, ShellEnd, TerminalHub};

/// How terminals behave; one per server (the sessions config carries it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TerminalConfig {
    /// How long a shell outlives its last client; a client attaching meanwhile gets the
    /// current screen back.
    pub grace_secs: u64,
    /// Bytes of output a client may have unacknowledged; beyond that it misses output and gets
    /// a snapshot once it catches up. xterm.js stays responsive with a few hundred KiB in flight.
    pub window_bytes: u64,
    /// How fast the hub consumes a shell's output. A flood (`yes`) costs at most this much
    /// screen-model work; beyond it the PTY blocks the flooding program.
    pub output_rate_bytes_per_sec: u64,
    /// Lines of history kept in the screen model and replayed to a client that attaches.
    pub scrollback: usize,
}

impl Default for TerminalConfig {
    fn default() -> Self {
        Self {
            grace_secs: 300,
            window_bytes: 256 << 10,
            output_rate_bytes_per_sec: 4 << 20,
            scrollback: 1000,
        }
    }
}

impl TerminalConfig {
    pub fn grace(&self) -> Duration {
        Duration::from_secs(self.grace_secs)
    }

    /// Rejects values that would make a terminal useless or unbounded.
    pub fn validate(&self) -> Result<(), TerminalError> {
        if self.window_bytes < 4096 || self.output_rate_bytes_per_sec < 4096 {
            return Err(TerminalError::Config(
                "window_bytes and output_rate_bytes_per_sec must be at least 4096",
            ));
        }
        if self.scrollback > 100_000 {
            return Err(TerminalError::Config(
                "scrollback must be at most 100000 lines",
            ));
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TerminalError {
    /// The shell has ended (or the hub was closed); start a new one.
    #[error("the terminal has ended")]
    Closed,
    #[error("talking to the sandbox: {0}")]
    Sandbox(#[from] sandpit_sandbox::SandboxError),
    #[error("terminal config: {0}")]
    Config(&'static str),
}
