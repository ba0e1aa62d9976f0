//! The agent protocol over TCP: a mutual challenge–response that both ends run before the
//! first frame, so an agent listening on a network port serves only whoever holds its box's
//! key, and a server talks only to the agent that holds it too.
//!
//! Three fixed-size messages, keyed by a per-sandbox secret ([`AgentKey`], 32 random bytes):
//!
//! 1. agent → client, *hello*: `"sandpit\0"`, the protocol version (u16 LE) and a random
//!    nonce `Na`.
//! 2. client → agent, *proof*: a random nonce `Nc` and
//!    `HMAC-SHA256(key, "sandpit-agent/1 client" ‖ Na ‖ Nc)`.
//! 3. agent → client, *proof*: a state byte `S` and
//!    `HMAC-SHA256(key, "sandpit-agent/1 agent" ‖ Nc ‖ Na ‖ S)`. `S` says what comes next:
//!    [`AgentState::AwaitingSetup`] (the client sends the [`AgentSetup`](crate::protocol::AgentSetup)
//!    frame, the agent answers `Ready` or `SetupFailed`) or [`AgentState::Serving`] (the box was
//!    set up by an earlier connection: the agent sends `Ready` at once and no set-up is sent).
//!
//! Fresh nonces on both sides make a recorded proof worthless on the next connection; the
//! distinct labels stop a proof from being reflected back as the other side's. A wrong proof
//! is answered by closing the connection and nothing else. Messages have fixed sizes, so no
//! length a peer sends ever decides what is allocated.
//!
//! This authenticates the ends when a connection starts; it does not encrypt or sign the
//! frames that follow. It is meant for networks where nobody can hijack a TCP connection
//! (the host's loopback, a cluster's pod network); anything wider needs TLS or a tunnel
//! around it.
//!
//! The message logic ([`AgentHandshake`], [`ClientHandshake`]) is pure; [`agent_handshake`]
//! and [`client_handshake`] are the thin async drivers.

use std::fmt;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::time::Duration;

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The version this build speaks; the hello carries the agent's.
pub const VERSION: u16 = 1;
const MAGIC: [u8; 8] = *b"sandpit\0";
pub const KEY_LEN: usize = 32;
pub const NONCE_LEN: usize = 32;
const MAC_LEN: usize = 32;
pub const HELLO_LEN: usize = MAGIC.len() + 2 + NONCE_LEN;
pub const CLIENT_PROOF_LEN: usize = NONCE_LEN + MAC_LEN;
pub const AGENT_PROOF_LEN: usize = 1 + MAC_LEN;
/// How long the agent gives a new connection to prove itself.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

const CLIENT_LABEL: &[u8] = b"sandpit-agent/1 client";
const AGENT_LABEL: &[u8] = b"sandpit-agent/1 agent";

type Nonce = [u8; NONCE_LEN];

/// A box's secret: whoever holds it may drive the box. `Debug` never shows it.
#[derive(Clone)]
pub struct AgentKey([u8; KEY_LEN]);

impl AgentKey {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Self {
        let mut key = [0u8; KEY_LEN];
        rand::rngs::OsRng.fill_bytes(&mut key);
        Self(key)
    }

    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// The raw key, to hand it to an agent. Never log it.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    fn mac(&self, label: &[u8], parts: &[&[u8]]) -> Hmac<Sha256> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(label);
        for part in parts {
            mac.update(part);
        }
        mac
    }
}

impl fmt::Debug for AgentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AgentKey(<redacted>)")
    }
}

/// Where an agent listens and the key it expects: everything needed to drive its box.
#[derive(Clone)]
pub struct AgentEndpoint {
    pub addr: SocketAddr,
    pub key: AgentKey,
}

impl fmt::Debug for AgentEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentEndpoint")
            .field("addr", &self.addr)
            .field("key", &self.key)
            .finish()
    }
}

/// What the agent expects after the handshake (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentState {
    /// The first connection: the client sends the set-up frame next.
    AwaitingSetup,
    /// The box is set up: the agent sends `Ready` and serves.
    Serving,
}

impl AgentState {
    fn byte(self) -> u8 {
        match self {
            Self::AwaitingSetup => 0,
            Self::Serving => 1,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("the peer is not a sandpit agent")]
    NotAnAgent,
    #[error("the agent speaks protocol version {0}, this side speaks {VERSION}")]
    Version(u16),
    /// The agent closed the connection after the client's proof: the client's key is wrong.
    #[error("the agent refused the credentials")]
    Refused,
    /// The peer's proof does not match: it does not hold the key (or replays an old proof).
    #[error("the peer's proof is wrong: it does not hold the sandbox's key")]
    BadProof,
    #[error("a handshake message of {got} bytes where {expected} were expected")]
    Length { expected: usize, got: usize },
    #[error("malformed handshake message: {0}")]
    Malformed(&'static str),
    #[error("the handshake did not finish within {0:?}")]
    Timeout(Duration),
    #[error("handshake I/O: {0}")]
    Io(#[from] std::io::Error),
}

fn exact<const N: usize>(msg: &[u8]) -> Result<&[u8; N], HandshakeError> {
    msg.try_into().map_err(|_| HandshakeError::Length {
        expected: N,
        got: msg.len(),
    })
}

/// The agent's side: says hello, then checks the client's proof.
pub struct AgentHandshake {
    key: AgentKey,
    nonce: Nonce,
}

impl AgentHandshake {
    pub fn new(key: &AgentKey, nonce: Nonce) -> Self {
        Self {
            key: key.clone(),
            nonce,
        }
    }

    pub fn hello(&self) -> [u8; HELLO_LEN] {
        let mut out = [0u8; HELLO_LEN];
        out[..8].copy_from_slice(&MAGIC);
        out[8..10].copy_from_slice(&VERSION.to_le_bytes());
        out[10..].copy_from_slice(&self.nonce);
        out
    }

    /// Checks the client's proof (in constant time); on success, the agent's own proof,
    /// announcing `state`.
    pub fn check_client(
        self,
        msg: &[u8],
        state: AgentState,
    ) -> Result<[u8; AGENT_PROOF_LEN], HandshakeError> {
        let msg = exact::<CLIENT_PROOF_LEN>(msg)?;
        let (client_nonce, mac) = msg.split_at(NONCE_LEN);
        self.key
            .mac(CLIENT_LABEL, &[&self.nonce, client_nonce])
            .verify_slice(mac)
            .map_err(|_| HandshakeError::BadProof)?;
        let mut out = [0u8; AGENT_PROOF_LEN];
        out[0] = state.byte();
        let mac = self
            .key
            .mac(AGENT_LABEL, &[client_nonce, &self.nonce, &[state.byte()]])
            .finalize()
            .into_bytes();
        out[1..].copy_from_slice(&mac);
        Ok(out)
    }
}

/// The client's side: answers the hello with its proof.
pub struct ClientHandshake {
    key: AgentKey,
    nonce: Nonce,
}

impl ClientHandshake {
    pub fn new(key: &AgentKey, nonce: Nonce) -> Self {
        Self {
            key: key.clone(),
            nonce,
        }
    }

    /// Checks that the hello is a sandpit agent's of this version; returns the proof to send
    /// and the state that checks the agent's answer.
    pub fn answer(
        self,
        hello: &[u8],
    ) -> Result<(AwaitingAgentProof, [u8; CLIENT_PROOF_LEN]), HandshakeError> {
        let hello = exact::<HELLO_LEN>(hello)?;
        if hello[..8] != MAGIC {
            return Err(HandshakeError::NotAnAgent);
        }
        let version = u16::from_le_bytes([hello[8], hello[9]]);
        if version != VERSION {
            return Err(HandshakeError::Version(version));
        }
        let mut agent_nonce = [0u8; NONCE_LEN];
        agent_nonce.copy_from_slice(&hello[10..]);
        let mut out = [0u8; CLIENT_PROOF_LEN];
        out[..NONCE_LEN].copy_from_slice(&self.nonce);
        let mac = self
            .key
            .mac(CLIENT_LABEL, &[&agent_nonce, &self.nonce])
            .finalize()
            .into_bytes();
        out[NONCE_LEN..].copy_from_slice(&mac);
        Ok((
            AwaitingAgentProof {
                key: self.key,
                nonce: self.nonce,
                agent_nonce,
            },
            out,
        ))
    }
}

/// The client after its proof: checks the agent's.
pub struct AwaitingAgentProof {
    key: AgentKey,
    nonce: Nonce,
    agent_nonce: Nonce,
}

impl AwaitingAgentProof {
    pub fn check_agent(self, msg: &[u8]) -> Result<AgentState, HandshakeError> {
        let msg = exact::<AGENT_PROOF_LEN>(msg)?;
        let (state, mac) = (msg[0], &msg[1..]);
        self.key
            .mac(AGENT_LABEL, &[&self.nonce, &self.agent_nonce, &[state]])
            .verify_slice(mac)
            .map_err(|_| HandshakeError::BadProof)?;
        match state {
            0 => Ok(AgentState::AwaitingSetup),
            1 => Ok(AgentState::Serving),
            _ => Err(HandshakeError::Malformed("unknown agent state")),
        }
    }
}

fn nonce() -> Nonce {
    let mut n = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut n);
    n
}

async fn within<T>(
    timeout: Duration,
    fut: impl Future<Output = Result<T, HandshakeError>>,
) -> Result<T, HandshakeError> {
    tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| HandshakeError::Timeout(timeout))?
}

/// The agent's handshake on a new connection, within `timeout`. On any error the caller
/// closes the connection without a word.
pub async fn agent_handshake<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    key: &AgentKey,
    state: AgentState,
    timeout: Duration,
) -> Result<(), HandshakeError> {
    within(timeout, async {
        let agent = AgentHandshake::new(key, nonce());
        stream.write_all(&agent.hello()).await?;
        let mut proof = [0u8; CLIENT_PROOF_LEN];
        stream.read_exact(&mut proof).await?;
        let answer = agent.check_client(&proof, state)?;
        stream.write_all(&answer).await?;
        stream.flush().await?;
        Ok(())
    })
    .await
}

/// The client's handshake, within `timeout`; returns what the agent expects next.
pub async fn client_handshake<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    key: &AgentKey,
    timeout: Duration,
) -> Result<AgentState, HandshakeError> {
    let eof_means = |error: HandshakeError, meaning: HandshakeError| match error {
        HandshakeError::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => meaning,
        other => other,
    };
    within(timeout, async {
        let mut hello = [0u8; HELLO_LEN];
        stream
            .read_exact(&mut hello)
            .await
            .map_err(|e| eof_means(e.into(), HandshakeError::NotAnAgent))?;
        let (awaiting, proof) = ClientHandshake::new(key, nonce()).answer(&hello)?;
        stream.write_all(&proof).await?;
        stream.flush().await?;
        let mut answer = [0u8; AGENT_PROOF_LEN];
        stream
            .read_exact(&mut answer)
            .await
            // An agent says nothing to a wrong proof; it only closes the connection.
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::ConnectionReset => HandshakeError::Refused,
                _ => eof_means(e.into(), HandshakeError::Refused),
            })?;
        awaiting.check_agent(&answer)
    })
    .await
}

/// Socket options for an agent connection, on both ends: no Nagle delay (frames are small
/// requests and answers), and keep-alive probes so a peer that vanished without closing (a
/// crashed host, a cut network) ends the connection within about half a minute instead of
/// holding the box's one connection for good.
pub fn tune(stream: &impl AsFd) -> std::io::Result<()> {
    use nix::sys::socket::{setsockopt, sockopt};
    let fd = stream.as_fd();
    setsockopt(&fd, sockopt::TcpNoDelay, &true)?;
    setsockopt(&fd, sockopt::KeepAlive, &true)?;
    setsockopt(&fd, sockopt::TcpKeepIdle, &10)?;
    setsockopt(&fd, sockopt::TcpKeepInterval, &5)?;
    setsockopt(&fd, sockopt::TcpKeepCount, &3)?;
    // Data unacknowledged this long (milliseconds) ends the connection too.
    setsockopt(&fd, sockopt::TcpUserTimeout, &30_000)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> AgentKey {
        AgentKey::from_bytes([byte; KEY_LEN])
    }

    /// Runs the three messages in memory; returns what each side concluded.
    fn exchange(agent_key: &AgentKey, client_key: &AgentKey) -> Result<AgentState, HandshakeError> {
        let agent = AgentHandshake::new(agent_key, [1; NONCE_LEN]);
        let (awaiting, proof) =
            ClientHandshake::new(client_key, [2; NONCE_LEN]).answer(&agent.hello())?;
        let answer = agent.check_client(&proof, AgentState::Serving)?;
        awaiting.check_agent(&answer)
    }

    #[test]
    fn the_right_key_passes_both_ways() {
        assert_eq!(exchange(&key(7), &key(7)).unwrap(), AgentState::Serving);
        let agent = AgentHandshake::new(&key(7), [3; NONCE_LEN]);
        let (awaiting, proof) = ClientHandshake::new(&key(7), [4; NONCE_LEN])
            .answer(&agent.hello())
            .unwrap();
        let answer = agent
            .check_client(&proof, AgentState::AwaitingSetup)
            .unwrap();
        assert_eq!(
            awaiting.check_agent(&answer).unwrap(),
            AgentState::AwaitingSetup
        );
    }

    #[test]
    fn a_wrong_key_fails_on_the_agent_side() {
        assert!(matches!(
            exchange(&key(7), &key(8)),
            Err(HandshakeError::BadProof)
        ));
    }

    #[test]
    fn a_wrong_key_fails_on_the_client_side() {
        // An impostor agent without the key: whatever it answers, the client does not accept.
        let impostor = AgentHandshake::new(&key(9), [1; NONCE_LEN]);
        let (awaiting, proof) = ClientHandshake::new(&key(7), [2; NONCE_LEN])
            .answer(&impostor.hello())
            .unwrap();
        // It cannot check the proof; suppose it forges its answer with its own key.
        let forged = AgentHandshake::new(&key(9), [1; NONCE_LEN]);
        let mut answer = [0u8; AGENT_PROOF_LEN];
        answer[1..].copy_from_slice(
            &forged
                .key
                .mac(AGENT_LABEL, &[&proof[..NONCE_LEN], &[1; NONCE_LEN], &[1]])
                .finalize()
                .into_bytes(),
        );
        answer[0] = 1;
        assert!(matches!(
            awaiting.check_agent(&answer),
            Err(HandshakeError::BadProof)
        ));
    }

    #[test]
    fn a_replayed_proof_fails_against_a_new_nonce() {
        let first = AgentHandshake::new(&key(7), [1; NONCE_LEN]);
        let (_, recorded) = ClientHandshake::new(&key(7), [2; NONCE_LEN])
            .answer(&first.hello())
            .unwrap();
        assert!(first.check_client(&recorded, AgentState::Serving).is_ok());
        let next = AgentHandshake::new(&key(7), [5; NONCE_LEN]);
        assert!(matches!(
            next.check_client(&recorded, AgentState::Serving),
            Err(HandshakeError::BadProof)
        ));
        // Nor does a recorded agent answer convince a client with a new nonce.
        let agent = AgentHandshake::new(&key(7), [1; NONCE_LEN]);
        let (_, proof) = ClientHandshake::new(&key(7), [2; NONCE_LEN])
            .answer(&agent.hello())
            .unwrap();
        let recorded_answer = agent.check_client(&proof, AgentState::Serving).unwrap();
        let (awaiting, _) = ClientHandshake::new(&key(7), [6; NONCE_LEN])
            .answer(&AgentHandshake::new(&key(7), [1; NONCE_LEN]).hello())
            .unwrap();
        assert!(matches!(
            awaiting.check_agent(&recorded_answer),
            Err(HandshakeError::BadProof)
        ));
    }

    #[test]
    fn a_proof_reflected_to_the_other_side_fails() {
        // With equal nonces the two MACs would cover the same bytes but for the label.
        let agent = AgentHandshake::new(&key(7), [1; NONCE_LEN]);
        let (awaiting, proof) = ClientHandshake::new(&key(7), [1; NONCE_LEN])
            .answer(&agent.hello())
            .unwrap();
        let mut reflected = [0u8; AGENT_PROOF_LEN];
        reflected[1..].copy_from_slice(&proof[NONCE_LEN..]);
        assert!(matches!(
            awaiting.check_agent(&reflected),
            Err(HandshakeError::BadProof)
        ));
    }

    #[test]
    fn a_tampered_state_byte_fails() {
        let agent = AgentHandshake::new(&key(7), [1; NONCE_LEN]);
        let (awaiting, proof) = ClientHandshake::new(&key(7), [2; NONCE_LEN])
            .answer(&agent.hello())
            .unwrap();
        let mut answer = agent.check_client(&proof, AgentState::Serving).unwrap();
        answer[0] = AgentState::AwaitingSetup.byte();
        assert!(matches!(
            awaiting.check_agent(&answer),
            Err(HandshakeError::BadProof)
        ));
    }

    #[test]
    fn truncated_oversized_and_garbage_messages_fail() {
        let agent = || AgentHandshake::new(&key(7), [1; NONCE_LEN]);
        let client = || ClientHandshake::new(&key(7), [2; NONCE_LEN]);
        let hello = agent().hello();
        assert!(matches!(
            client().answer(&hello[..HELLO_LEN - 1]),
            Err(HandshakeError::Length { .. })
        ));
        let mut long = hello.to_vec();
        long.push(0);
        assert!(matches!(
            client().answer(&long),
            Err(HandshakeError::Length { .. })
        ));
        assert!(matches!(
            client().answer(&[0x47; HELLO_LEN]),
            Err(HandshakeError::NotAnAgent)
        ));
        let mut future = hello;
        future[8..10].copy_from_slice(&2u16.to_le_bytes());
        assert!(matches!(
            client().answer(&future),
            Err(HandshakeError::Version(2))
        ));
        let (_, proof) = client().answer(&hello).unwrap();
        for bad in [
            &proof[..CLIENT_PROOF_LEN - 1],
            &[proof.as_slice(), &[0]].concat(),
        ] {
            assert!(matches!(
                agent().check_client(bad, AgentState::Serving),
                Err(HandshakeError::Length { .. })
            ));
        }
        assert!(matches!(
            agent().check_client(&[0xAB; CLIENT_PROOF_LEN], AgentState::Serving),
            Err(HandshakeError::BadProof)
        ));
        let (awaiting, _) = client().answer(&hello).unwrap();
        assert!(matches!(
            awaiting.check_agent(&[0; AGENT_PROOF_LEN + 1]),
            Err(HandshakeError::Length { .. })
        ));
    }

    #[test]
    fn debug_output_never_shows_the_key() {
        let endpoint = AgentEndpoint {
            addr: "127.0.0.1:9".parse().unwrap(),
            key: key(0xAB),
        };
        let shown = format!("{endpoint:?} {:?}", endpoint.key);
        assert!(shown.contains("127.0.0.1:9"), "{shown}");
        assert!(!shown.to_lowercase().contains("ab, "), "{shown}");
        assert!(!shown.contains("171"), "{shown}");
        assert!(shown.contains("redacted"), "{shown}");
    }

    #[tokio::test]
    async fn the_drivers_agree_over_a_stream() {
        let (mut a, mut c) = tokio::io::duplex(1024);
        let k = AgentKey::generate();
        let agent = agent_handshake(&mut a, &k, AgentState::AwaitingSetup, HANDSHAKE_TIMEOUT);
        let client = client_handshake(&mut c, &k, HANDSHAKE_TIMEOUT);
        let (agent, client) = tokio::join!(agent, client);
        agent.unwrap();
        assert_eq!(client.unwrap(), AgentState::AwaitingSetup);
    }

    #[tokio::test]
    async fn a_client_with_the_wrong_key_is_told_it_was_refused() {
        let (mut a, mut c) = tokio::io::duplex(1024);
        let agent = async {
            let result =
                agent_handshake(&mut a, &key(1), AgentState::Serving, HANDSHAKE_TIMEOUT).await;
            drop(a); // what the agent does on failure: close, nothing more
            result
        };
        let wrong = key(2);
        let client = client_handshake(&mut c, &wrong, HANDSHAKE_TIMEOUT);
        let (agent, client) = tokio::join!(agent, client);
        assert!(matches!(agent, Err(HandshakeError::BadProof)), "{agent:?}");
        assert!(matches!(client, Err(HandshakeError::Refused)), "{client:?}");
    }

    #[tokio::test]
    async fn a_flood_of_garbage_is_read_no_further_than_one_proof() {
        let (mut a, mut c) = tokio::io::duplex(2 << 20);
        let flood = vec![0x5Au8; 1 << 20];
        c.write_all(&flood).await.unwrap();
        let result = agent_handshake(&mut a, &key(1), AgentState::Serving, HANDSHAKE_TIMEOUT).await;
        assert!(
            matches!(result, Err(HandshakeError::BadProof)),
            "{result:?}"
        );
        // Everything past the proof's fixed size is still unread.
        drop(c);
        let mut rest = Vec::new();
        a.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest.len(), flood.len() - CLIENT_PROOF_LEN);
    }

    #[tokio::test]
    async fn silence_and_strangers_end_in_errors() {
        // A peer that never speaks: both sides give up.
        let (mut a, _quiet) = tokio::io::duplex(1024);
        let result = agent_handshake(
            &mut a,
            &key(1),
            AgentState::Serving,
            Duration::from_millis(50),
        )
        .await;
        assert!(
            matches!(result, Err(HandshakeError::Timeout(_))),
            "{result:?}"
        );
        let (mut c, _quiet) = tokio::io::duplex(1024);
        let result = client_handshake(&mut c, &key(1), Duration::from_millis(50)).await;
        assert!(
            matches!(result, Err(HandshakeError::Timeout(_))),
            "{result:?}"
        );
        // Something else that talks first and hangs up.
        let (mut c, mut other) = tokio::io::duplex(1024);
        other.write_all(b"SSH-2.0-OpenSSH_9.2\r\n").await.unwrap();
        drop(other);
        let result = client_handshake(&mut c, &key(1), HANDSHAKE_TIMEOUT).await;
        assert!(
            matches!(result, Err(HandshakeError::NotAnAgent)),
            "{result:?}"
        );
        let (mut c, mut other) = tokio::io::duplex(1024);
        other.write_all(&[b'x'; HELLO_LEN]).await.unwrap();
        let result = client_handshake(&mut c, &key(1), HANDSHAKE_TIMEOUT).await;
        assert!(
            matches!(result, Err(HandshakeError::NotAnAgent)),
            "{result:?}"
        );
    }
}
