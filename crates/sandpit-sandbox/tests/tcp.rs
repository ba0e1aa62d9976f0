#![expect(clippy::unwrap_used, reason = "tests")]
//! The native backend with the TCP transport, against real boxes (run as root): the agent
//! listens on a host port handed to it by the server, serves only connections that prove they
//! hold the box's key, and outlives the connections it serves. Each test starts its own
//! backend and removes everything when it ends.

#[path = "common/agent.rs"]
mod agent;
#[expect(
    dead_code,
    reason = "the shared fixture has helpers this suite does not use"
)]
mod common;
#[expect(
    dead_code,
    reason = "the shared fixture has helpers this suite does not use"
)]
#[path = "common/process.rs"]
mod process;
use agent::{CONNECT, limits, patiently, reconnect, run, sh};
use common::{Host, path, text};
use process::{describe, eventually, host_pids_with_arg};

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use sandpit_sandbox::client::AgentConnection;
use sandpit_sandbox::native::NativeSandbox;
use sandpit_sandbox::transport::{HELLO_LEN, HandshakeError};
use sandpit_sandbox::{
    AgentEndpoint, AgentKey, AgentTransport, Backend, ProcessSpec, Sandbox, SandboxError,
    SandboxSpec,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MIB: u64 = 1 << 20;
const UIDS: std::ops::Range<u32> = 64_500..64_600;
const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

async fn tcp_host() -> Host {
    Host::with_transport(UIDS, limits(), AgentTransport::Tcp { bind: LOOPBACK }).await
}

async fn native(host: &Host) -> NativeSandbox {
    host.backend
        .create_native(&SandboxSpec::new(limits()))
        .await
        .unwrap()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn a_box_over_tcp_runs_processes_and_round_trips_files() {
    let host = tcp_host().await;
    let sandbox = native(&host).await;
    let endpoint = sandbox.agent_endpoint().unwrap();
    assert_eq!(endpoint.addr.ip(), LOOPBACK);
    assert_ne!(endpoint.addr.port(), 0);
    // The backend's self-test ran over TCP too, and the agent reported its isolation.
    let features = host.backend.report().features;
    for feature in ["network_namespace", "seccomp", "cgroup"] {
        assert!(features.iter().any(|f| f == feature), "{features:?}");
    }

    let data: Vec<u8> = (0..=255u8).cycle().take(3 * MIB as usize).collect();
    sandbox
        .write_file(&path("in.bin"), data.clone(), 0o644)
        .await
        .unwrap();
    let out = sh(
        sandbox.agent(),
        "sha256sum in.bin; cp in.bin out.bin; echo err >&2",
    )
    .await;
    assert_eq!(out.exit.code, Some(0), "{}", describe(&out));
    assert!(
        text(&out.stdout).starts_with(&hex::encode(sha2_of(&data))),
        "{}",
        describe(&out)
    );
    assert_eq!(text(&out.stderr), "err\n");
    assert!(
        sandbox.read_file(&path("out.bin"), 4 * MIB).await.unwrap() == data,
        "the file came back changed"
    );
    // The box itself still has nothing but its own loopback.
    let out = sh(
        sandbox.agent(),
        "cat /proc/net/dev | tail -n +3 | cut -d: -f1",
    )
    .await;
    assert_eq!(text(&out.stdout).trim(), "lo", "{}", describe(&out));
}

fn sha2_of(data: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(data).to_vec()
}

#[tokio::test]
async fn the_listener_is_bound_to_the_configured_address_only() {
    let host = tcp_host().await;
    let sandbox = native(&host).await;
    let endpoint = sandbox.agent_endpoint().unwrap();
    let port = endpoint.addr.port();
    // Another loopback address of the host reaches a socket bound to every address, not one
    // bound to 127.0.0.1.
    let elsewhere = SocketAddr::from(([127, 0, 0, 2], port));
    let refused = tokio::net::TcpStream::connect(elsewhere).await;
    assert!(
        refused.is_err(),
        "{elsewhere} reached the agent's listener: it is not bound to {LOOPBACK} only"
    );
    // The host's table of listening sockets agrees (state 0A, local address 0100007F).
    let v4 = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let listening: Vec<&str> = v4
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields[1].ends_with(&format!(":{port:04X}")) && fields[3] == "0A"
        })
        .collect();
    assert_eq!(listening.len(), 1, "{listening:?}");
    assert!(
        listening[0].split_whitespace().nth(1).unwrap() == format!("0100007F:{port:04X}"),
        "{listening:?}"
    );
    let v6 = std::fs::read_to_string("/proc/net/tcp6").unwrap_or_default();
    assert!(
        !v6.lines()
            .any(|line| line.contains(&format!(":{port:04X} ")) && line.contains(" 0A ")),
        "also listening on IPv6: {v6}"
    );

    // The default transport opens no port at all.
    let pair_host = Host::with(UIDS, limits()).await;
    let paired = native(&pair_host).await;
    assert!(paired.agent_endpoint().is_none());
}

#[tokio::test]
async fn a_wrong_key_is_refused_and_the_right_one_still_gets_in() {
    let host = tcp_host().await;
    let sandbox = native(&host).await;
    let endpoint = sandbox.agent_endpoint().unwrap().clone();
    sandbox
        .write_file(&path("kept.txt"), b"still here".to_vec(), 0o644)
        .await
        .unwrap();
    sandbox.agent().close();

    let wrong = AgentEndpoint {
        addr: endpoint.addr,
        key: AgentKey::generate(),
    };
    for _ in 0..3 {
        let err = patiently(
            "a wrong key",
            AgentConnection::connect_tcp(&wrong, None, CONNECT),
        )
        .await
        .err()
        .unwrap();
        assert!(
            matches!(err, SandboxError::Handshake(HandshakeError::Refused)),
            "{err:?}"
        );
        assert!(err.to_string().contains("refused the credentials"), "{err}");
    }
    let conn = reconnect(&endpoint).await;
    assert_eq!(
        conn.read_file(&path("kept.txt"), 100).await.unwrap(),
        b"still here"
    );
    let out = run(&conn, &["/bin/echo", "hello"]).await;
    assert_eq!(text(&out.stdout), "hello\n", "{}", describe(&out));
}

#[tokio::test]
async fn silent_and_garbage_connections_do_not_block_a_real_client() {
    let host = tcp_host().await;
    let sandbox = native(&host).await;
    let endpoint = sandbox.agent_endpoint().unwrap().clone();
    sandbox.agent().close();

    // Each would hold a one-at-a-time handshake for its whole timeout (5 s): together far
    // longer than the real client's patience below.
    let mut silent = Vec::new();
    for _ in 0..6 {
        silent.push(tokio::net::TcpStream::connect(endpoint.addr).await.unwrap());
    }
    let mut garbage = tokio::net::TcpStream::connect(endpoint.addr).await.unwrap();
    garbage.write_all(&[0xFF; 64 << 10]).await.unwrap();
    let mut partial = tokio::net::TcpStream::connect(endpoint.addr).await.unwrap();
    partial.write_all(&[0x00; 10]).await.unwrap();

    let conn = reconnect(&endpoint).await;
    let out = run(&conn, &["/bin/echo", "through"]).await;
    assert_eq!(text(&out.stdout), "through\n", "{}", describe(&out));

    // The garbage got the hello and then the connection closed: nothing else.
    let mut heard = Vec::new();
    patiently(
        "the garbage connection closing",
        garbage.read_to_end(&mut heard),
    )
    .await
    .ok();
    assert_eq!(heard.len(), HELLO_LEN, "{heard:?}");
    assert!(heard.starts_with(b"sandpit\0"), "{heard:?}");
    drop(silent);
}

#[tokio::test]
async fn a_dropped_connection_ends_its_processes_but_not_the_box() {
    let host = tcp_host().await;
    let sandbox = native(&host).await;
    let endpoint = sandbox.agent_endpoint().unwrap().clone();
    let marker = format!("1000.{}", std::process::id());
    sandbox
        .write_file(&path("before.txt"), b"written before".to_vec(), 0o644)
        .await
        .unwrap();
    let mut sleeper = sandbox
        .spawn(ProcessSpec::new(["/bin/sleep", marker.as_str()]))
        .await
        .unwrap();
    eventually("the sleeper runs", || {
        !host_pids_with_arg(&marker).is_empty()
    })
    .await;

    sandbox.agent().close();
    assert!(sandbox.agent().is_closed());
    assert!(
        sleeper.next_event().await.is_none(),
        "the closed connection still delivers events"
    );
    assert!(matches!(
        sandbox.read_file(&path("before.txt"), 100).await,
        Err(SandboxError::Lost)
    ));

    let conn = reconnect(&endpoint).await;
    assert_eq!(
        conn.read_file(&path("before.txt"), 100).await.unwrap(),
        b"written before"
    );
    eventually("the sleeper is killed with its connection", || {
        host_pids_with_arg(&marker).is_empty()
    })
    .await;
    // Process ids start again at 1 on the new connection; they do not meet the old ones.
    let out = sh(&conn, "echo again > after.txt; cat before.txt").await;
    assert_eq!(text(&out.stdout), "written before", "{}", describe(&out));

    // Dropping every handle of a connection ends it as well.
    drop(conn);
    let conn = reconnect(&endpoint).await;
    assert_eq!(
        conn.read_file(&path("after.txt"), 100).await.unwrap(),
        b"again\n"
    );

    // Destroying the box takes the agent and its listener.
    sandbox.destroy().await.unwrap();
    let gone = AgentConnection::connect_tcp(&endpoint, None, CONNECT).await;
    assert!(gone.is_err(), "the destroyed box's agent still answers");
    assert!(conn.is_closed() || conn.read_file(&path("after.txt"), 100).await.is_err());
}

#[tokio::test]
async fn sandboxed_code_never_sees_the_key_or_the_listener() {
    let host = tcp_host().await;
    let sandbox = native(&host).await;
    let key = sandbox.agent_endpoint().unwrap().key.as_bytes().to_vec();
    let key_hex = hex::encode(&key);
    let conn = sandbox.agent();

    // PID 1 is the agent: its environment and descriptors are out of reach, and hold no key.
    let out = run(conn, &["/bin/cat", "/proc/1/environ"]).await;
    assert!(
        out.exit.code != Some(0) || !contains(&out.stdout, &key),
        "{}",
        describe(&out)
    );
    assert!(!text(&out.stdout).contains(&key_hex));
    let out = sh(conn, "ls /proc/1/fd").await;
    assert_ne!(out.exit.code, Some(0), "{}", describe(&out));
    // A process's own environment is its spec's, and it holds no socket.
    let out = run(conn, &["/usr/bin/env"]).await;
    assert!(
        !contains(&out.stdout, &key) && !text(&out.stdout).contains(&key_hex),
        "{}",
        describe(&out)
    );
    assert!(!text(&out.stdout).contains("SANDPIT"), "{}", describe(&out));
    let out = sh(conn, "ls -l /proc/self/fd/").await;
    assert_eq!(out.exit.code, Some(0), "{}", describe(&out));
    assert!(!text(&out.stdout).contains("socket:"), "{}", describe(&out));

    // On the host, no agent process carries the key in its environment or arguments.
    let agents = host_pids_with_arg(sandpit_sandbox::agent::LISTEN_INHERITED);
    assert!(agents.len() >= 2, "the agent and PID 1: {agents:?}");
    for pid in agents {
        for file in ["environ", "cmdline"] {
            let Ok(bytes) = std::fs::read(format!("/proc/{pid}/{file}")) else {
                continue;
            };
            assert!(
                !contains(&bytes, &key) && !text(&bytes).contains(&key_hex),
                "the key is in /proc/{pid}/{file}"
            );
        }
    }
}
