//! A server replica that dies leaves its sandbox pods running: the replica that takes a
//! session over adopts the pod on the session's workspace (its processes, and the terminal
//! its agent holds, come back with it), deletes a pod that cannot be adopted, and deletes a
//! session's pods with its workspace when the session ends. Against the fake API server,
//! whose pods run the real agent.

mod common;
#[expect(
    dead_code,
    reason = "the fake's fault injection beyond eviction is for tests/backend.rs"
)]
mod fake;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use common::{NS, backend, config, eventually, options, patiently, run, spec, text};
use fake::Fake;
use sandpit_kube::objects::{LABEL_WORKSPACE, workspace_digest};
use sandpit_kube::{KubeBackend, KubeOptions};
use sandpit_sandbox::{
    Backend, Hold, Process, ProcessEvent, ProcessSpec, Sandbox, SandboxSpec, StdioMode,
    WorkspaceSpec,
};

const OTHER: &str = "server-b";
const ROWS: u16 = 24;
const COLS: u16 = 80;

fn on_workspace(dir: &Path) -> SandboxSpec {
    SandboxSpec {
        workspace: WorkspaceSpec::Persistent {
            dir: dir.to_owned(),
            max_files: 1000,
        },
        ..spec()
    }
}

/// The session's terminal as the server starts it: a shell on a PTY, held by the agent.
fn held_shell() -> ProcessSpec {
    let mut spec = ProcessSpec::new(["/bin/bash", "--norc", "--noprofile", "-i"]);
    spec.stdio = StdioMode::Pty {
        rows: ROWS,
        cols: COLS,
    };
    spec.limits.wall_ms = None;
    spec.hold = Some(Hold {
        name: "terminal".into(),
        grace_ms: 60_000,
        scrollback: 100,
    });
    spec
}

async fn read_until(process: &mut Process, needle: &str) {
    patiently(&format!("output {needle:?}"), async {
        let mut seen = Vec::new();
        while !String::from_utf8_lossy(&seen).contains(needle) {
            match process.next_event().await {
                Some(ProcessEvent::Output(_, bytes)) => seen.extend_from_slice(&bytes),
                other => panic!(
                    "{other:?} before {needle:?}; so far: {}",
                    String::from_utf8_lossy(&seen)
                ),
            }
        }
    })
    .await;
}

/// The server holding `sandbox` dies: its connection to the agent ends, and it deletes
/// nothing (a killed process runs no clean-up).
fn die(sandbox: Box<dyn Sandbox>, backend: KubeBackend) {
    sandbox.agent().close();
    std::mem::forget(sandbox);
    drop(backend);
}

/// Another replica starting up, knowing the first is gone and which sessions are live.
async fn successor(fake: &Fake, live_workspaces: Vec<PathBuf>) -> KubeBackend {
    successor_with(fake, config(fake, 0), live_workspaces).await
}

async fn successor_with(
    fake: &Fake,
    config: sandpit_kube::KubeConfig,
    live_workspaces: Vec<PathBuf>,
) -> KubeBackend {
    let options = KubeOptions {
        live_owners: Some(HashSet::from([OTHER.to_owned()])),
        live_workspaces,
        ..options(fake)
    };
    patiently("start", KubeBackend::start(config, OTHER, options))
        .await
        .expect("the second server starts")
}

/// `next` finds nothing to adopt on `spec`'s workspace, and deletes the pod it found there.
async fn adopts_nothing(fake: &Fake, next: &KubeBackend, spec: &SandboxSpec, why: &str) {
    let adopted = patiently("adopt", next.adopt(spec))
        .await
        .expect("adopting answers");
    assert!(adopted.is_none(), "{why}: nothing is adopted");
    assert!(fake.names("pods", NS).is_empty(), "{why}");
    assert!(
        fake.names("secrets", NS).is_empty(),
        "{why}: with its Secret"
    );
}

#[tokio::test]
async fn a_gone_servers_pod_is_adopted_with_its_processes_and_its_held_terminal() {
    let fake = Fake::start().await;
    let dir = PathBuf::from("/var/lib/sandpit/workspaces/adopted");
    let spec = on_workspace(&dir);
    let first = backend(&fake, 0).await;
    let sandbox = patiently("create", first.create(&spec)).await.unwrap();
    let id = sandbox.id().to_owned();
    let pod = fake.object("pods", NS, &id).unwrap();
    assert_eq!(
        pod["metadata"]["labels"][LABEL_WORKSPACE],
        workspace_digest(&dir).as_str()
    );
    // /tmp is an emptyDir of this pod alone: finding the file again proves the same box.
    let out = run(
        sandbox.as_ref(),
        &["/bin/sh", "-c", "echo in-this-pod > /tmp/mark"],
    )
    .await;
    assert_eq!(out.exit.code, Some(0));
    let mut shell = sandbox.spawn(held_shell()).await.unwrap();
    let pid = shell.pid();
    shell
        .write_stdin(b"export KEPT=yes; echo marker-$((6*7))\n")
        .await
        .unwrap();
    read_until(&mut shell, "marker-42").await;
    drop(shell);
    die(sandbox, first);

    let next = successor(&fake, vec![dir.clone()]).await;
    assert_eq!(
        fake.names("pods", NS),
        std::slice::from_ref(&id),
        "the pod on a live session's workspace outlives its server"
    );
    assert!(next.has_workspace(&dir).await.unwrap());
    let adopted = patiently("adopt", next.adopt(&spec))
        .await
        .unwrap()
        .expect("the pod is adopted");
    assert_eq!(adopted.id(), id);
    let out = run(adopted.as_ref(), &["/bin/cat", "/tmp/mark"]).await;
    assert_eq!(text(&out.stdout), "in-this-pod\n");

    let mut terminal = patiently("attach", adopted.agent().attach("terminal"))
        .await
        .unwrap()
        .expect("the held terminal");
    assert_eq!(terminal.process.pid(), pid, "the same shell");
    let mut screen = vt100::Parser::new(terminal.rows, terminal.cols, 0);
    screen.process(&terminal.snapshot);
    assert!(
        screen.screen().contents().contains("marker-42"),
        "the screen comes back: {:?}",
        screen.screen().contents()
    );
    terminal
        .process
        .write_stdin(b"echo still-$KEPT\n")
        .await
        .unwrap();
    read_until(&mut terminal.process, "still-yes").await;

    // Held now: nothing more to adopt, and the pod is this server's to end.
    assert!(next.adopt(&spec).await.unwrap().is_none());
    assert_eq!(fake.names("pods", NS), std::slice::from_ref(&id));

    // The session ends: its pod, the pod's Secret and the claim all go.
    patiently("remove", next.remove_workspace(&dir))
        .await
        .unwrap();
    assert!(fake.names("pods", NS).is_empty());
    assert!(fake.names("secrets", NS).is_empty());
    assert!(fake.names("persistentvolumeclaims", NS).is_empty());
    assert!(!next.has_workspace(&dir).await.unwrap());
    eventually("the agent stopped", || fake.running_agents() == 0).await;
    adopted.destroy().await.unwrap();
}

#[tokio::test]
async fn a_gone_servers_pod_goes_at_start_up_once_its_session_has_ended() {
    let fake = Fake::start().await;
    let ended = PathBuf::from("/var/lib/sandpit/workspaces/ended");
    let live = PathBuf::from("/var/lib/sandpit/workspaces/live");
    let first = backend(&fake, 0).await;
    let of_ended = patiently("create", first.create(&on_workspace(&ended)))
        .await
        .unwrap();
    let gone = of_ended.id().to_owned();
    let of_live = patiently("create", first.create(&on_workspace(&live)))
        .await
        .unwrap();
    let kept = of_live.id().to_owned();
    let ephemeral = patiently("create", first.create(&spec())).await.unwrap();
    let plain = ephemeral.id().to_owned();
    die(of_ended, first);
    of_live.agent().close();
    std::mem::forget(of_live);
    ephemeral.agent().close();
    std::mem::forget(ephemeral);

    let _next = successor(&fake, vec![live]).await;
    let pods = fake.names("pods", NS);
    assert_eq!(pods, std::slice::from_ref(&kept), "{gone} and {plain} go");
    assert_eq!(fake.names("secrets", NS), [format!("{kept}-agent")]);
}

#[tokio::test]
async fn a_pod_that_cannot_be_adopted_is_deleted_and_the_workspace_gets_a_new_one() {
    let fake = Fake::start().await;
    let dir = PathBuf::from("/var/lib/sandpit/workspaces/evicted");
    let spec = on_workspace(&dir);
    let first = backend(&fake, 0).await;
    let sandbox = patiently("create", first.create(&spec)).await.unwrap();
    let old = sandbox.id().to_owned();
    die(sandbox, first);
    fake.evict(NS, &old);

    let next = successor(&fake, vec![dir.clone()]).await;
    adopts_nothing(&fake, &next, &spec, "the failed pod is deleted").await;
    let fresh = patiently("create", next.create(&spec)).await.unwrap();
    assert_ne!(fresh.id(), old);
    let out = run(fresh.as_ref(), &["/bin/echo", "fresh"]).await;
    assert_eq!(text(&out.stdout), "fresh\n");
    fresh.destroy().await.unwrap();
}

#[tokio::test]
async fn a_pod_whose_server_still_holds_its_connection_is_never_driven_by_two() {
    let fake = Fake::start().await;
    let dir = PathBuf::from("/var/lib/sandpit/workspaces/contested");
    let spec = on_workspace(&dir);
    let first = backend(&fake, 0).await;
    let sandbox = patiently("create", first.create(&spec)).await.unwrap();
    // The first server is frozen, not dead: its connection stays open. The second took the
    // session (the store says the first is gone) and must not share the box with it.
    let mut impatient = config(&fake, 0);
    impatient.api_timeout_ms = 1_000;
    let next = successor_with(&fake, impatient, vec![dir.clone()]).await;
    adopts_nothing(
        &fake,
        &next,
        &spec,
        "the contested pod is deleted rather than shared",
    )
    .await;
    eventually("the first server's connection ended", || {
        sandbox.agent().is_closed()
    })
    .await;
    let _ = sandbox.destroy().await;
    drop(first);
    eventually("the agent stopped", || fake.running_agents() == 0).await;
}

#[tokio::test]
async fn at_a_graceful_stop_a_workspace_pod_is_left_for_the_next_server_and_others_go() {
    let fake = Fake::start().await;
    let dir = PathBuf::from("/var/lib/sandpit/workspaces/handed-over");
    let spec = on_workspace(&dir);
    let first = backend(&fake, 0).await;
    let kept = patiently("create", first.create(&spec)).await.unwrap();
    let ephemeral = patiently("create", first.create(&common::spec()))
        .await
        .unwrap();
    let id = kept.id().to_owned();
    let mut shell = kept.spawn(held_shell()).await.unwrap();
    shell.write_stdin(b"echo handed-$((1+1))\n").await.unwrap();
    read_until(&mut shell, "handed-2").await;
    drop(shell);

    patiently("leave", kept.leave()).await.unwrap();
    patiently("leave", ephemeral.leave()).await.unwrap();
    patiently("shutdown", first.shutdown()).await.unwrap();
    drop((kept, ephemeral, first));
    assert_eq!(
        fake.names("pods", NS),
        std::slice::from_ref(&id),
        "only the pod on the workspace stays"
    );

    let next = successor(&fake, vec![dir.clone()]).await;
    let adopted = patiently("adopt", next.adopt(&spec))
        .await
        .unwrap()
        .expect("the left pod is adopted");
    assert_eq!(adopted.id(), id);
    let terminal = adopted.agent().attach("terminal").await.unwrap();
    assert!(terminal.is_some(), "the shell is still held");
    patiently("destroy", adopted.destroy()).await.unwrap();
    assert!(fake.names("pods", NS).is_empty());
}
