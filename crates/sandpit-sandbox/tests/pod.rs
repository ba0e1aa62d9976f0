#![expect(clippy::unwrap_used, reason = "tests")]
//! The agent in pod mode (`--listen ADDR`), started the way a container runtime starts a
//! sandbox pod's process (run as root): a mount namespace of its own with temporary
//! directories bound on `/workspace`, `/tmp` and `/dev/shm`, uid/gid 10001 with no groups, no
//! capabilities and `no_new_privs`, the key in a 0400 file named by
//! `SANDPIT_AGENT_SECRET_FILE`. The test then drives it as the Kubernetes backend does: over
//! TCP, with the set-up that backend sends.

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
use agent::{CONNECT, limits, patiently, run, sh};
use common::{path, text};
use process::{describe, is_alive};

use std::net::SocketAddr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use sandpit_sandbox::client::AgentConnection;
use sandpit_sandbox::protocol::AgentSetup;
use sandpit_sandbox::spec::RootSpec;
use sandpit_sandbox::transport::HandshakeError;
use sandpit_sandbox::{AgentEndpoint, AgentKey, ProcessSpec, SandboxError};

/// The pod's user (the kube backend's `SANDBOX_UID`).
const POD_UID: u32 = 10001;
const AGENT: &str = env!("CARGO_BIN_EXE_sandpit-agent");

/// What the Kubernetes backend sends a pod's agent (`agent_setup` in sandpit-kube).
fn kube_setup(uid: u32, seccomp: bool) -> AgentSetup {
    AgentSetup {
        root: RootSpec::Host,
        limits: limits(),
        hostname: "pod".into(),
        cgroup_procs: Vec::new(),
        oom_events: None,
        uid,
        gid: uid,
        seccomp,
        workspace_device: None,
        volumes: Vec::new(),
        containers: None,
    }
}

/// How the fake container is started.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Run {
    /// As uid 10001, as the pod spec says.
    AsPodUser,
    /// As root, as on a host without a runtime that sets the user.
    AsRoot,
}

/// The key file as the test lays it out.
enum KeyFile {
    Valid,
    Bytes(usize),
    Missing,
    Unset,
}

/// One fake container: its directories on the host, its agent.
struct Pod {
    _base: tempfile::TempDir,
    workspace: PathBuf,
    tmp: PathBuf,
    shm: PathBuf,
    endpoint: AgentEndpoint,
    child: tokio::process::Child,
}

impl Drop for Pod {
    /// The container goes, all of it, as a runtime ends it: the agent and every process below.
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            kill_tree(pid as i32);
        }
        let _ = self.child.start_kill();
    }
}

/// SIGKILLs every process below `root` (the agent in pod mode leaves no PID namespace to end
/// them with it).
fn kill_tree(root: i32) {
    for pid in sandpit_sandbox::agent::live_descendants(root).unwrap_or_default() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

fn dir_for_pod_user(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::os::unix::fs::chown(dir, Some(POD_UID), Some(POD_UID)).unwrap();
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Lays out a container's directories and the key, and starts the agent in it with `--listen`.
fn start(run: Run, key_file: KeyFile) -> Pod {
    // Not under /tmp: the container's /tmp covers it.
    let base = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    std::fs::set_permissions(base.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let (workspace, tmp, shm) = (
        base.path().join("workspace"),
        base.path().join("tmp"),
        base.path().join("shm"),
    );
    for dir in [&workspace, &tmp, &shm] {
        dir_for_pod_user(dir);
    }
    for dir in [&tmp, &shm] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
    }
    let key = AgentKey::generate();
    let key_path = base.path().join("key");
    match key_file {
        KeyFile::Valid => std::fs::write(&key_path, key.as_bytes()).unwrap(),
        KeyFile::Bytes(n) => std::fs::write(&key_path, &key.as_bytes()[..n]).unwrap(),
        KeyFile::Missing | KeyFile::Unset => {}
    }
    if key_path.exists() {
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o400)).unwrap();
        std::os::unix::fs::chown(&key_path, Some(POD_UID), Some(POD_UID)).unwrap();
    }
    // The mount point the bind needs: a pod's image has one.
    std::fs::create_dir_all("/workspace").unwrap();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut argv: Vec<String> = vec![
        "unshare".into(),
        "--mount".into(),
        "--propagation".into(),
        "private".into(),
        "--".into(),
        "/bin/sh".into(),
        "-c".into(),
        "mount --bind \"$1\" /workspace && mount --bind \"$2\" /tmp \
         && mount --bind \"$3\" /dev/shm && shift 3 && exec \"$@\""
            .into(),
        "sh".into(),
    ];
    for dir in [&workspace, &tmp, &shm] {
        argv.push(dir.display().to_string());
    }
    if run == Run::AsPodUser {
        for arg in [
            "setpriv",
            "--reuid=10001",
            "--regid=10001",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--no-new-privs",
        ] {
            argv.push(arg.into());
        }
    }
    argv.extend([AGENT.into(), "agent".into(), "--listen".into(), listen]);
    let mut cmd = tokio::process::Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if !matches!(key_file, KeyFile::Unset) {
        cmd.env(sandpit_sandbox::agent::SECRET_FILE_ENV, &key_path);
    }
    let child = cmd.spawn().unwrap();
    Pod {
        endpoint: AgentEndpoint {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            key,
        },
        workspace,
        tmp,
        shm,
        _base: base,
        child,
    }
}

impl Pod {
    /// Connects once the agent listens (a kubelet's readiness probe waits the same way).
    async fn connect(
        &self,
        setup: Option<&AgentSetup>,
    ) -> Result<(AgentConnection, Vec<String>), SandboxError> {
        patiently("connecting to the agent", async {
            loop {
                match AgentConnection::connect_tcp(&self.endpoint, setup, CONNECT).await {
                    Err(SandboxError::Io { source, .. })
                        if source.kind() == std::io::ErrorKind::ConnectionRefused =>
                    {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    other => return other,
                }
            }
        })
        .await
    }

    async fn set_up(&self, setup: &AgentSetup) -> (AgentConnection, Vec<String>) {
        self.connect(Some(setup)).await.unwrap()
    }

    /// The agent's exit and what it wrote to stderr.
    async fn ended(mut self) -> (std::process::ExitStatus, String) {
        let mut stderr = self.child.stderr.take().unwrap();
        let status = patiently("the agent's exit", self.child.wait())
            .await
            .unwrap();
        let mut err = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut err)
            .await
            .unwrap();
        (status, err)
    }
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn runs_as_the_pod_user_and_serves_its_workspace() {
    let pod = start(Run::AsPodUser, KeyFile::Valid);
    let (conn, features) = pod.set_up(&kube_setup(POD_UID, true)).await;
    for want in ["pod", "seccomp", "no_new_privs", "unprivileged_uid"] {
        assert!(features.iter().any(|f| f == want), "{want}: {features:?}");
    }
    // Honest: the namespaces were the runtime's, not the agent's.
    for not in [
        "pid_namespace",
        "mount_namespace",
        "network_namespace",
        "cgroup",
    ] {
        assert!(!features.iter().any(|f| f == not), "{not}: {features:?}");
    }
    let out = run(&conn, &["id", "-u"]).await;
    assert_eq!(text(&out.stdout), "10001\n", "{}", describe(&out));
    let out = run(&conn, &["/bin/echo", "hello", "pod"]).await;
    assert_eq!(text(&out.stdout), "hello pod\n", "{}", describe(&out));
    assert_eq!(out.exit.code, Some(0));

    conn.mkdir(&path("src")).await.unwrap();
    conn.write_file(&path("src/main.py"), b"print(1)\n".to_vec(), 0o644)
        .await
        .unwrap();
    assert_eq!(
        conn.read_file(&path("src/main.py"), 100).await.unwrap(),
        b"print(1)\n"
    );
    // Written by the pod's user into the volume on the host.
    let host_file = pod.workspace.join("src/main.py");
    assert_eq!(std::fs::read(&host_file).unwrap(), b"print(1)\n");
    assert_eq!(std::fs::metadata(&host_file).unwrap().uid(), POD_UID);
    let out = run(&conn, &["/bin/cat", "/workspace/src/main.py"]).await;
    assert_eq!(text(&out.stdout), "print(1)\n", "{}", describe(&out));
    // The box's own limits still apply: wall time ends a process and says so.
    let mut spec = ProcessSpec::new(["/bin/sleep", "60"]);
    spec.limits.wall_ms = Some(200);
    let out = patiently("a wall-time limit", async {
        conn.spawn(spec).await.unwrap().output(b"").await.unwrap()
    })
    .await;
    assert_eq!(
        out.exit.limit,
        Some(sandpit_sandbox::LimitKind::WallTime),
        "{}",
        describe(&out)
    );
}

#[tokio::test]
async fn a_wrong_key_is_refused_and_the_right_one_still_gets_in() {
    let pod = start(Run::AsPodUser, KeyFile::Valid);
    let (conn, _) = pod.set_up(&kube_setup(POD_UID, true)).await;
    conn.write_file(&path("kept.txt"), b"kept".to_vec(), 0o644)
        .await
        .unwrap();
    conn.close();
    let wrong = AgentEndpoint {
        addr: pod.endpoint.addr,
        key: AgentKey::generate(),
    };
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
    let (conn, _) = pod.connect(None).await.unwrap();
    assert_eq!(
        conn.read_file(&path("kept.txt"), 100).await.unwrap(),
        b"kept"
    );
}

#[tokio::test]
async fn a_dropped_connection_ends_its_processes_and_keeps_the_files() {
    let pod = start(Run::AsPodUser, KeyFile::Valid);
    let (conn, _) = pod.set_up(&kube_setup(POD_UID, true)).await;
    conn.write_file(&path("notes.txt"), b"still here".to_vec(), 0o644)
        .await
        .unwrap();
    let sleeper = conn
        .spawn(ProcessSpec::new(["/bin/sleep", "1000"]))
        .await
        .unwrap();
    let sleeper = sleeper.pid();
    // A process that left its session and lost its parent: no process group reaches it.
    let out = sh(
        &conn,
        "setsid /bin/sleep 1001 </dev/null >/dev/null 2>&1 & echo $!",
    )
    .await;
    let escaped: u32 = text(&out.stdout).trim().parse().unwrap();
    assert!(is_alive(sleeper) && is_alive(escaped));
    // The connection ends as when its peer goes: for every handle of it.
    conn.close();

    let (conn, features) = pod.connect(None).await.unwrap();
    assert!(features.iter().any(|f| f == "pod"), "{features:?}");
    // The agent ends and reaps the old connection's processes before it takes a new one.
    assert!(!is_alive(sleeper), "the connection's process outlived it");
    assert!(
        !is_alive(escaped),
        "a process that escaped its session outlived it"
    );
    assert_eq!(
        conn.read_file(&path("notes.txt"), 100).await.unwrap(),
        b"still here"
    );
    let out = run(&conn, &["/bin/echo", "again"]).await;
    assert_eq!(text(&out.stdout), "again\n", "{}", describe(&out));
}

#[tokio::test]
async fn reset_ends_every_process_and_empties_the_scratch_directories() {
    let pod = start(Run::AsPodUser, KeyFile::Valid);
    let (conn, _) = pod.set_up(&kube_setup(POD_UID, true)).await;
    conn.write_file(&path("a/b/c.txt"), b"x".to_vec(), 0o644)
        .await
        .unwrap();
    let out = sh(
        &conn,
        "echo t > /tmp/t && echo s > /dev/shm/s && mkdir -p /workspace/locked/in \
         && touch /workspace/locked/in/f && chmod 0500 /workspace/locked /workspace/locked/in \
         && ln -s /etc /workspace/link",
    )
    .await;
    assert_eq!(out.exit.code, Some(0), "{}", describe(&out));
    let sleeper = conn
        .spawn(ProcessSpec::new(["/bin/sleep", "1000"]))
        .await
        .unwrap()
        .pid();
    assert!(!entries(&pod.workspace).is_empty());
    assert_eq!(entries(&pod.tmp), ["t"]);
    assert_eq!(entries(&pod.shm), ["s"]);

    patiently("reset", conn.reset()).await.unwrap();
    assert!(!is_alive(sleeper), "reset left a process running");
    assert!(
        entries(&pod.workspace).is_empty(),
        "{:?}",
        entries(&pod.workspace)
    );
    assert!(entries(&pod.tmp).is_empty(), "{:?}", entries(&pod.tmp));
    assert!(entries(&pod.shm).is_empty(), "{:?}", entries(&pod.shm));
    // The link was removed, not followed.
    assert!(Path::new("/etc/passwd").exists());
    // And the box still works.
    conn.write_file(&path("new.txt"), b"n".to_vec(), 0o644)
        .await
        .unwrap();
    let out = run(&conn, &["/bin/cat", "/workspace/new.txt"]).await;
    assert_eq!(text(&out.stdout), "n", "{}", describe(&out));
}

#[tokio::test]
async fn seccomp_and_no_new_privs_are_in_force() {
    let pod = start(Run::AsPodUser, KeyFile::Valid);
    let (conn, _) = pod.set_up(&kube_setup(POD_UID, true)).await;
    let out = sh(&conn, "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status").await;
    let status = text(&out.stdout);
    assert!(status.contains("Seccomp:\t2"), "{status}");
    assert!(status.contains("NoNewPrivs:\t1"), "{status}");
    // An unprivileged user namespace (which this host allows, see below) is blocked.
    let out = run(&conn, &["unshare", "--user", "/bin/true"]).await;
    assert_ne!(out.exit.code, Some(0), "{}", describe(&out));
    let out = sh(&conn, "grep -E '^Cap(Prm|Eff|Amb):' /proc/self/status").await;
    assert!(
        text(&out.stdout)
            .lines()
            .all(|l| l.ends_with("0000000000000000")),
        "{}",
        describe(&out)
    );

    // The control: without the filter the same command works, so the filter is what stops it.
    let open = start(Run::AsPodUser, KeyFile::Valid);
    let (conn, features) = open.set_up(&kube_setup(POD_UID, false)).await;
    assert!(!features.iter().any(|f| f == "seccomp"), "{features:?}");
    let out = run(&conn, &["unshare", "--user", "/bin/true"]).await;
    assert_eq!(out.exit.code, Some(0), "{}", describe(&out));
}

#[tokio::test]
async fn spawned_processes_see_neither_the_key_variable_nor_the_agent_environment() {
    let pod = start(Run::AsPodUser, KeyFile::Valid);
    let (conn, _) = pod.set_up(&kube_setup(POD_UID, true)).await;
    let out = run(&conn, &["/usr/bin/env"]).await;
    assert_eq!(out.exit.code, Some(0), "{}", describe(&out));
    assert!(
        !text(&out.stdout).contains("SANDPIT_AGENT_SECRET_FILE"),
        "{}",
        describe(&out)
    );
    // The agent is not dumpable: a process of its uid can neither read its environment nor
    // its memory (where the key is).
    let out = sh(&conn, "cat /proc/$PPID/environ").await;
    assert_ne!(out.exit.code, Some(0), "{}", describe(&out));
    assert!(!text(&out.stdout).contains("SANDPIT"), "{}", describe(&out));
    let out = sh(&conn, "head -c 1 /proc/$PPID/mem").await;
    assert_ne!(out.exit.code, Some(0), "{}", describe(&out));
}

#[tokio::test]
async fn a_bad_key_file_stops_the_agent_with_a_reason() {
    for (file, reason) in [
        (KeyFile::Unset, "SANDPIT_AGENT_SECRET_FILE is not set"),
        (KeyFile::Missing, "reading the key from"),
        (
            KeyFile::Bytes(31),
            "holds 31 bytes, where a key is exactly 32",
        ),
        (KeyFile::Bytes(0), "holds 0 bytes"),
    ] {
        let pod = start(Run::AsPodUser, file);
        let (status, stderr) = pod.ended().await;
        assert!(!status.success(), "{status:?} {stderr}");
        assert!(stderr.contains(reason), "{reason}: {stderr}");
    }
}

#[tokio::test]
async fn an_unprivileged_agent_refuses_a_setup_for_another_uid() {
    let pod = start(Run::AsPodUser, KeyFile::Valid);
    let err = pod
        .connect(Some(&kube_setup(POD_UID + 1, true)))
        .await
        .err()
        .unwrap();
    let message = err.to_string();
    assert!(
        matches!(err, SandboxError::Setup(_)) && message.contains("uid 10002"),
        "{err:?}"
    );
    let (status, stderr) = pod.ended().await;
    assert!(!status.success());
    assert!(stderr.contains("runAsUser"), "{stderr}");
}

#[tokio::test]
async fn as_root_it_drops_to_the_setups_uid() {
    let pod = start(Run::AsRoot, KeyFile::Valid);
    let (conn, features) = pod.set_up(&kube_setup(POD_UID, true)).await;
    assert!(
        features.iter().any(|f| f == "capabilities_dropped"),
        "{features:?}"
    );
    let out = sh(&conn, "id -u; id -g; id -G").await;
    assert_eq!(
        text(&out.stdout),
        "10001\n10001\n10001\n",
        "{}",
        describe(&out)
    );
    conn.write_file(&path("mine.txt"), b"m".to_vec(), 0o644)
        .await
        .unwrap();
    let meta = std::fs::metadata(pod.workspace.join("mine.txt")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (POD_UID, POD_UID));
    let sleeper = conn
        .spawn(ProcessSpec::new(["/bin/sleep", "1000"]))
        .await
        .unwrap()
        .pid();
    patiently("reset", conn.reset()).await.unwrap();
    assert!(!is_alive(sleeper));
    assert!(entries(&pod.workspace).is_empty());
}

#[tokio::test]
async fn a_held_shell_outlives_its_connection_in_a_pod_too() {
    let pod = start(Run::AsPodUser, KeyFile::Valid);
    let (conn, _) = pod.set_up(&kube_setup(POD_UID, true)).await;
    let mut spec = ProcessSpec::new(["/bin/bash", "--norc", "--noprofile", "-i"]);
    spec.stdio = sandpit_sandbox::StdioMode::Pty { rows: 24, cols: 80 };
    spec.limits = sandpit_sandbox::ProcessLimits {
        wall_ms: None,
        cpu_ms: None,
        output_bytes: None,
        ..Default::default()
    };
    spec.hold = Some(sandpit_sandbox::Hold {
        name: "terminal".into(),
        grace_ms: 60_000,
        scrollback: 100,
    });
    let mut shell = conn.spawn(spec).await.unwrap();
    let pid = shell.pid();
    shell
        .write_stdin(b"export X=pod-$((40+2)); echo marker-$((6*7))\n")
        .await
        .unwrap();
    patiently("the marker", async {
        let mut seen = Vec::new();
        while !text(&seen).contains("marker-42") {
            match shell.next_event().await {
                Some(sandpit_sandbox::ProcessEvent::Output(_, bytes)) => seen.extend(bytes),
                other => panic!("{other:?}"),
            }
        }
    })
    .await;
    let sleeper = conn
        .spawn(ProcessSpec::new(["/bin/sleep", "1000"]))
        .await
        .unwrap()
        .pid();
    conn.close();

    let (conn, _) = pod.connect(None).await.unwrap();
    assert!(!is_alive(sleeper), "the connection's process outlived it");
    assert!(is_alive(pid), "the held shell ended with the connection");
    let attached = conn.attach("terminal").await.unwrap().expect("held");
    assert_eq!(attached.process.pid(), pid);
    let mut parser = vt100::Parser::new(attached.rows, attached.cols, 0);
    parser.process(&attached.snapshot);
    assert!(parser.screen().contents().contains("marker-42"));
    let mut shell = attached.process;
    shell.write_stdin(b"echo got-$X\n").await.unwrap();
    patiently("the variable", async {
        let mut seen = Vec::new();
        while !text(&seen).contains("got-pod-42") {
            match shell.next_event().await {
                Some(sandpit_sandbox::ProcessEvent::Output(_, bytes)) => seen.extend(bytes),
                other => panic!("{other:?}"),
            }
        }
    })
    .await;
    // A reset still ends everything, held or not.
    patiently("reset", conn.reset()).await.unwrap();
    assert!(!is_alive(pid));
    assert!(conn.attach("terminal").await.unwrap().is_none());
}
