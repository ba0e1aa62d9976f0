//! The agent's TCP listener (see [`crate::transport`]): every new connection gets its own
//! handshake task with a timeout, so a connection that never speaks (a port scanner, a
//! half-open socket) cannot keep the box's server from getting through.

use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::transport::{AgentKey, AgentState, HANDSHAKE_TIMEOUT, agent_handshake};

/// Handshakes in progress at once. Connections beyond are closed at once, so a flood cannot
/// use up the agent's descriptors; each slot frees within [`HANDSHAKE_TIMEOUT`].
const MAX_PENDING: usize = 32;

/// The first connection that proves it holds `key`, told `state`. Connections that fail are
/// closed without a word; the others still in their handshake when one succeeds are closed
/// too (one connection is served at a time). Accept errors (out of descriptors) are waited
/// out, never fatal: the box must stay reachable.
pub async fn accept(listener: &TcpListener, key: &AgentKey, state: AgentState) -> TcpStream {
    let mut pending = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((mut stream, _)) if pending.len() < MAX_PENDING => {
                    let key = key.clone();
                    pending.spawn(async move {
                        agent_handshake(&mut stream, &key, state, HANDSHAKE_TIMEOUT)
                            .await
                            .map(|()| stream)
                    });
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            },
            Some(done) = pending.join_next(), if !pending.is_empty() => {
                if let Ok(Ok(stream)) = done {
                    return stream;
                }
            }
        }
    }
}
