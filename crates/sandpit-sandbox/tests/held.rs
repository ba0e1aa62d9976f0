#![expect(clippy::unwrap_used, reason = "tests")]
//! Held processes ([`Hold`]): a terminal's shell that outlives the connection that started it,
//! against real boxes over the TCP transport (run as root). The agent keeps reading the
//! shell's terminal into a screen model of its own, so the next connection attaches to the
//! same shell and gets its screen back; the connection's other processes still end with it,
//! and a held shell nobody comes back for ends after its grace period.

#[expect(
    dead_code,
    reason = "the shared fixture has helpers this suite does not use"
)]
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
use agent::{PATIENCE, limits, patiently, reconnect};
use common::{Host, path};
use process::{eventually, eventually_async, exit_ignoring_output, host_pids_with_arg};

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use sandpit_sandbox::native::NativeSandbox;
use sandpit_sandbox::{
    AgentEndpoint, AgentTransport, Hold, Process, ProcessEvent, ProcessLimits, ProcessSpec,
    Sandbox, SandboxSpec, StdioMode,
};

const UIDS: std::ops::Range<u32> = 64_700..64_800;
const ROWS: u16 = 24;
const COLS: u16 = 80;

async fn box_over_tcp() -> (Host, NativeSandbox, AgentEndpoint) {
    let host = Host::with_transport(
        UIDS,
        limits(),
        AgentTransport::Tcp {
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
        },
    )
    .await;
    let sandbox = host
        .backend
        .create_native(&SandboxSpec::new(limits()))
        .await
        .unwrap();
    let endpoint = sandbox.agent_endpoint().unwrap().clone();
    (host, sandbox, endpoint)
}

/// A process on a terminal, held under `name`, with no wall, CPU or output limit.
fn held(argv: &[&str], name: &str, grace_ms: u64) -> ProcessSpec {
    let mut spec = ProcessSpec::new(argv.iter().copied());
    spec.stdio = StdioMode::Pty {
        rows: ROWS,
        cols: COLS,
    };
    spec.limits = ProcessLimits {
        wall_ms: None,
        cpu_ms: None,
        output_bytes: None,
        ..ProcessLimits::default()
    };
    spec.env.insert("PS1".into(), "$ ".into());
    spec.hold = Some(Hold {
        name: name.into(),
        grace_ms,
        scrollback: 100,
    });
    spec
}

fn shell(grace_ms: u64) -> ProcessSpec {
    held(
        &["/bin/bash", "--norc", "--noprofile", "-i"],
        "terminal",
        grace_ms,
    )
}

/// Reads output until it holds `needle`.
async fn read_until(process: &mut Process, needle: &str) -> String {
    patiently(&format!("output {needle:?}"), async {
        let mut seen = Vec::new();
        loop {
            match process.next_event().await {
                Some(ProcessEvent::Output(_, bytes)) => seen.extend_from_slice(&bytes),
                other => panic!(
                    "{other:?} before {needle:?}; so far: {}",
                    String::from_utf8_lossy(&seen)
                ),
            }
            let text = String::from_utf8_lossy(&seen).into_owned();
            if text.contains(needle) {
                return text;
            }
        }
    })
    .await
}

/// What a terminal shows after replaying `snapshot` on a fresh one of `rows`×`cols`.
fn screen_text(snapshot: &[u8], rows: u16, cols: u16) -> String {
    let mut parser = vt100::Parser::new(rows, cols, 100);
    parser.process(snapshot);
    parser.screen().contents()
}

#[tokio::test]
async fn a_held_shell_survives_its_connection_and_the_next_gets_its_screen_back() {
    let (_host, sandbox, endpoint) = box_over_tcp().await;
    let mut shell_proc = sandbox.spawn(shell(60_000)).await.unwrap();
    let pid = shell_proc.pid();
    shell_proc
        .write_stdin(b"export X=kept-$((40+2)); cd /tmp; echo marker-$((6*7))\n")
        .await
        .unwrap();
    read_until(&mut shell_proc, "marker-42").await;
    // An ordinary process of the same connection, a job of the shell's, and a process that
    // left the shell's session.
    let marker = format!("1000.{}", std::process::id());
    let _sleeper = sandbox
        .spawn(ProcessSpec::new(["/bin/sleep", marker.as_str()]))
        .await
        .unwrap();
    let job = format!("1001.{}", std::process::id());
    let escaped = format!("1002.{}", std::process::id());
    shell_proc
        .write_stdin(
            format!("sleep {job} & setsid sleep {escaped} & echo started-$((1+1))\n").as_bytes(),
        )
        .await
        .unwrap();
    read_until(&mut shell_proc, "started-2").await;
    eventually("the three sleepers run", || {
        [&marker, &job, &escaped]
            .iter()
            .all(|m| !host_pids_with_arg(m).is_empty())
    })
    .await;

    sandbox.agent().close();
    // The old handle ends (after what was already delivered), with no exit.
    patiently("the old handle's end", async {
        while let Some(event) = shell_proc.next_event().await {
            assert!(matches!(event, ProcessEvent::Output(..)), "{event:?}");
        }
    })
    .await;
    let conn = reconnect(&endpoint).await;
    eventually("the connection's own processes are ended", || {
        host_pids_with_arg(&marker).is_empty() && host_pids_with_arg(&escaped).is_empty()
    })
    .await;
    let mut attached = patiently("attaching", conn.attach("terminal"))
        .await
        .unwrap()
        .expect("the shell is held");
    assert_eq!(attached.process.pid(), pid, "the same shell");
    assert_eq!((attached.rows, attached.cols), (ROWS, COLS));
    let screen = screen_text(&attached.snapshot, attached.rows, attached.cols);
    assert!(screen.contains("marker-42"), "{screen}");
    assert!(screen.contains("started-2"), "{screen}");
    // Its job is in its session and stays with it.
    assert!(
        !host_pids_with_arg(&job).is_empty(),
        "the shell's job ended"
    );
    // The same shell: its variables and working directory.
    attached
        .process
        .write_stdin(b"echo \"$X:$PWD\"\n")
        .await
        .unwrap();
    read_until(&mut attached.process, "kept-42:/tmp").await;
    // A resize reaches the terminal and the agent's screen model.
    attached.process.resize(30, 100).await.unwrap();
    attached
        .process
        .write_stdin(b"echo size-$(stty size | tr ' ' x)\n")
        .await
        .unwrap();
    read_until(&mut attached.process, "size-30x100").await;
    conn.close();
    let conn = reconnect(&endpoint).await;
    let again = conn.attach("terminal").await.unwrap().unwrap();
    assert_eq!((again.rows, again.cols), (30, 100));

    assert!(conn.attach("other").await.unwrap().is_none());
    // The shell exits: nothing is held any more.
    let mut process = again.process;
    process.write_stdin(b"exit 3\n").await.unwrap();
    let exit = exit_ignoring_output(&mut process).await;
    assert_eq!(exit.code, Some(3));
    assert!(conn.attach("terminal").await.unwrap().is_none());
}

#[tokio::test]
async fn output_written_while_nobody_is_attached_reaches_the_screen() {
    let (_host, sandbox, endpoint) = box_over_tcp().await;
    let mut shell_proc = sandbox.spawn(shell(60_000)).await.unwrap();
    shell_proc
        .write_stdin(b"sleep 0.3; echo late-$((1+1)); echo > done.txt\n")
        .await
        .unwrap();
    // The terminal echoes the line: it reached the shell before the connection goes.
    read_until(&mut shell_proc, "done.txt").await;
    sandbox.agent().close();
    let mut conn = reconnect(&endpoint).await;
    eventually_async("the command ran", async || {
        conn.read_file(&path("done.txt"), 10).await.is_ok()
    })
    .await;
    // The agent reads the terminal a moment after the shell wrote it: attach until the
    // snapshot (taken by the agent, with no client reading) shows it.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let attached = conn.attach("terminal").await.unwrap().unwrap();
        let screen = screen_text(&attached.snapshot, attached.rows, attached.cols);
        if screen.contains("late-2") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{screen}");
        conn.close();
        tokio::time::sleep(Duration::from_millis(20)).await;
        conn = reconnect(&endpoint).await;
    }
}

#[tokio::test]
async fn a_held_process_ends_when_its_grace_runs_out_with_nobody_back() {
    let (_host, sandbox, endpoint) = box_over_tcp().await;
    let marker = format!("1003.{}", std::process::id());
    let _proc = sandbox
        .spawn(held(&["/bin/sleep", &marker], "terminal", 200))
        .await
        .unwrap();
    eventually("it runs", || !host_pids_with_arg(&marker).is_empty()).await;
    sandbox.agent().close();
    let conn = reconnect(&endpoint).await;
    eventually("its grace runs out", || {
        host_pids_with_arg(&marker).is_empty()
    })
    .await;
    eventually_async("it is no longer held", async || {
        conn.attach("terminal").await.unwrap().is_none()
    })
    .await;
}

#[tokio::test]
async fn a_name_holds_one_process_and_a_reset_ends_held_ones() {
    let (_host, sandbox, _endpoint) = box_over_tcp().await;
    let (first, second) = (
        format!("1004.{}", std::process::id()),
        format!("1005.{}", std::process::id()),
    );
    let _a = sandbox
        .spawn(held(&["/bin/sleep", &first], "job", 60_000))
        .await
        .unwrap();
    eventually("the first runs", || !host_pids_with_arg(&first).is_empty()).await;
    let _b = sandbox
        .spawn(held(&["/bin/sleep", &second], "job", 60_000))
        .await
        .unwrap();
    eventually("the first is replaced", || {
        host_pids_with_arg(&first).is_empty() && !host_pids_with_arg(&second).is_empty()
    })
    .await;

    sandbox.reset().await.unwrap();
    assert!(host_pids_with_arg(&second).is_empty());
    assert!(sandbox.agent().attach("job").await.unwrap().is_none());

    // Only a process on a terminal can be held, under a name of the allowed shape.
    let mut piped = held(&["/bin/true"], "job", 1000);
    piped.stdio = StdioMode::Pipes;
    assert!(sandbox.spawn(piped).await.is_err());
    assert!(
        sandbox
            .spawn(held(&["/bin/true"], "Bad Name", 1000))
            .await
            .is_err()
    );
}
