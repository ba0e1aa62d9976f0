#![expect(clippy::unwrap_used, reason = "tests")]
//! The native backend's functional behaviour against the real kernel (run as root): streams,
//! arguments, environment, files, terminals, signals, reset, usage, destroy and the warm pool.
//! Each test starts its own backend (its own cgroup parent), so tests in parallel processes do
//! not meet, and removes everything when it ends, failed or not. `tests/hostile.rs` attacks the
//! same backend.

mod common;
#[expect(
    dead_code,
    reason = "the shared fixture has helpers this suite does not use"
)]
#[path = "common/process.rs"]
mod process;
use common::{Host, path, text};
use process::{describe, eventually, exit_ignoring_output, host_pids_with_arg, is_alive};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use sandpit_sandbox::protocol::{EntryKind, FileError};
use sandpit_sandbox::spec::SpecError;
use sandpit_sandbox::{
    Backend, BackendReport, NativeBackend, Output, Pool, Process, ProcessEvent, ProcessSpec,
    Sandbox, SandboxError, SandboxLimits, SandboxSpec, StdioMode, Stream, Volume, VolumeTarget,
    WorkspaceSpec,
};

const PYTHON: &str = "/usr/bin/python3";
const MIB: u64 = 1 << 20;
/// Upper bound for anything a test waits for, so a defect shows as a failure, not a hang.
const PATIENCE: Duration = Duration::from_secs(30);

fn small() -> SandboxLimits {
    SandboxLimits {
        memory_bytes: 256 * MIB,
        pids: 64,
        cpu_millicores: Some(1000),
        workspace_bytes: 32 * MIB,
        tmp_bytes: 8 * MIB,
        shm_bytes: 8 * MIB,
    }
}

fn spec(argv: &[&str]) -> ProcessSpec {
    ProcessSpec::new(argv.iter().copied())
}

async fn patiently<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, fut)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {PATIENCE:?}"))
}

async fn run_spec(sandbox: &dyn Sandbox, spec: ProcessSpec, stdin: &[u8]) -> Output {
    let what = format!("{:?}", spec.argv);
    patiently(&what, async {
        sandbox
            .spawn(spec)
            .await
            .unwrap()
            .output(stdin)
            .await
            .unwrap()
    })
    .await
}

async fn run(sandbox: &dyn Sandbox, argv: &[&str]) -> Output {
    run_spec(sandbox, spec(argv), b"").await
}

/// Runs `sh -c script` and asserts it exited 0; returns stdout.
async fn sh_ok(sandbox: &dyn Sandbox, script: &str) -> String {
    let out = run(sandbox, &["/bin/sh", "-c", script]).await;
    assert_eq!(out.exit.code, Some(0), "{script}: {}", describe(&out));
    text(&out.stdout)
}

/// Live host pids that are members of the cgroup named `name` (a sandbox id) in any hierarchy.
fn host_pids_in_cgroup(name: &str) -> Vec<u32> {
    let needle = format!("/{name}");
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        let Ok(cgroups) = std::fs::read_to_string(entry.path().join("cgroup")) else {
            continue;
        };
        let member = cgroups.lines().any(|line| {
            line.split_once(&needle)
                .is_some_and(|(_, rest)| rest.is_empty() || rest.starts_with('/'))
        });
        if member && is_alive(pid) {
            pids.push(pid);
        }
    }
    pids
}

/// Directories named `name` anywhere under `/sys/fs/cgroup`.
fn cgroup_dirs_named(name: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, name: &str, found: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                if entry.file_name() == name {
                    found.push(entry.path());
                }
                walk(&entry.path(), name, found);
            }
        }
    }
    let mut found = Vec::new();
    walk(Path::new("/sys/fs/cgroup"), name, &mut found);
    found
}

/// Reads a process's events until its stdout contains `needle`; returns everything read.
async fn read_until(process: &mut Process, needle: &str) -> String {
    let mut seen = String::new();
    patiently(&format!("waiting for {needle:?}"), async {
        while !seen.contains(needle) {
            match process.next_event().await {
                Some(ProcessEvent::Output(_, bytes)) => seen.push_str(&text(&bytes)),
                other => panic!("{other:?} before {needle:?}; output so far: {seen:?}"),
            }
        }
    })
    .await;
    seen
}

/// A unique `sleep` argument, so the host can find exactly this test's sleepers.
fn marker() -> String {
    format!("1000.{}", std::process::id())
}

#[tokio::test]
async fn stdout_and_stderr_are_separate_streams() {
    let host = Host::with(61000..61100, small()).await;
    let sandbox = host.sandbox().await;
    let out = run(
        sandbox.as_ref(),
        &[
            "/bin/sh",
            "-c",
            "echo out; echo err >&2; echo out2; echo err2 >&2",
        ],
    )
    .await;
    assert_eq!(text(&out.stdout), "out\nout2\n");
    assert_eq!(text(&out.stderr), "err\nerr2\n");
    assert_eq!(out.exit.code, Some(0));
    assert_eq!(out.exit.signal, None);
    assert_eq!(out.exit.limit, None);
    assert!(!out.exit.output_truncated);
}

#[tokio::test]
async fn large_stdin_round_trips_through_cat() {
    let host = Host::with(61000..61100, small()).await;
    let sandbox = host.sandbox().await;
    // 2 MiB of every byte value, NUL and newlines included.
    let data: Vec<u8> = (0..2 * MIB as usize)
        .map(|i| (i * 7 + i / 251) as u8)
        .collect();
    let mut spec = spec(&["/bin/cat"]);
    spec.limits.output_bytes = Some(4 * MIB);
    let out = run_spec(sandbox.as_ref(), spec, &data).await;
    assert_eq!(out.exit.code, Some(0), "{:?}", out.exit);
    assert_eq!(out.stdout.len(), data.len());
    assert!(out.stdout == data, "cat changed the bytes");
    assert!(out.stderr.is_empty());
}

#[tokio::test]
async fn exit_codes_are_reported() {
    let host = Host::with(61000..61100, small()).await;
    let sandbox = host.sandbox().await;
    for code in [0, 1, 42, 255] {
        let out = run(
            sandbox.as_ref(),
            &["/bin/sh", "-c", &format!("exit {code}")],
        )
        .await;
        assert_eq!(out.exit.code, Some(code));
        assert_eq!(out.exit.signal, None);
    }
    let out = run(sandbox.as_ref(), &["/bin/false"]).await;
    assert_eq!(out.exit.code, Some(1));
}

#[tokio::test]
async fn arguments_arrive_verbatim() {
    let host = Host::with(61000..61100, small()).await;
    let sandbox = host.sandbox().await;
    let args = [
        "two words",
        "line\nbreak",
        "'single'",
        "\"double\"",
        "$(id)",
        "`id`",
        "a; echo injected",
        "",
        "  ",
        "*",
        "ünïcödé",
        "-c",
    ];
    let mut argv = vec![
        PYTHON,
        "-c",
        "import sys, json; print(json.dumps(sys.argv[1:]))",
    ];
    argv.extend(args);
    let out = run(sandbox.as_ref(), &argv).await;
    assert_eq!(out.exit.code, Some(0), "{}", describe(&out));
    let got: Vec<String> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got, args);
}

#[tokio::test]
async fn nul_bytes_and_bad_specs_are_refused_before_spawning() {
    let host = Host::with(61000..61100, small()).await;
    let sandbox = host.sandbox().await;
    let err = sandbox
        .spawn(spec(&["/bin/echo", "a\0b"]))
        .await
        .err()
        .unwrap();
    assert!(
        matches!(err, SandboxError::Spec(SpecError::Nul("argv"))),
        "{err:?}"
    );
    let mut bad_env = spec(&["/bin/true"]);
    bad_env.env.insert("K".into(), "v\0w".into());
    let err = sandbox.spawn(bad_env).await.err().unwrap();
    assert!(matches!(err, SandboxError::Spec(SpecError::BadEnv(_))));
    let mut relative = spec(&["/bin/true"]);
    relative.cwd = "workspace".into();
    let err = sandbox.spawn(relative).await.err().unwrap();
    assert!(matches!(err, SandboxError::Spec(SpecError::RelativeCwd)));
    let err = sandbox.spawn(spec(&[])).await.err().unwrap();
    assert!(matches!(err, SandboxError::Spec(SpecError::EmptyArgv)));
    // A program that does not exist is a spawn error, not a crash of the agent.
    let err = sandbox
        .spawn(spec(&["/no/such/program"]))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, SandboxError::Spawn(_)), "{err:?}");
    // The sandbox still works.
    assert_eq!(sh_ok(sandbox.as_ref(), "echo fine").await, "fine\n");
}

#[tokio::test]
async fn the_environment_is_exactly_the_spec() {
    let host = Host::with(61000..61100, small()).await;
    let sandbox = host.sandbox().await;
    // The default environment, nothing more.
    let out = run(sandbox.as_ref(), &["/usr/bin/env"]).await;
    let expected: String = sandpit_sandbox::spec::default_env()
        .iter()
        .map(|(k, v)| format!("{k}={v}\n"))
        .collect();
    let mut got: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().lines().collect();
    got.sort_unstable();
    assert_eq!(got.join("\n") + "\n", expected);
    // A replaced environment, nothing more.
    let mut custom = spec(&["/usr/bin/env"]);
    custom.env = BTreeMap::from([
        ("ONLY".to_owned(), "this one".to_owned()),
        ("WITH".to_owned(), "a=b and\nnewline".to_owned()),
    ]);
    let out = run_spec(sandbox.as_ref(), custom, b"").await;
    assert_eq!(
        text(&out.stdout),
        "ONLY=this one\nWITH=a=b and\nnewline\n",
        "{}",
        describe(&out)
    );
    // And none of this test process's variables, whatever they are.
    let inside = text(&run(sandbox.as_ref(), &["/usr/bin/env"]).await.stdout);
    let ours: Vec<(String, String)> = std::env::vars().collect();
    assert!(!ours.is_empty());
    for (key, _) in ours {
        if !sandpit_sandbox::spec::default_env().contains_key(&key) {
            assert!(
                !inside.lines().any(|l| l.starts_with(&format!("{key}="))),
                "{key} leaked into the sandbox"
            );
        }
    }
}

#[tokio::test]
async fn the_working_directory_is_the_spec() {
    let host = Host::with(61000..61100, small()).await;
    let sandbox = host.sandbox().await;
    assert_eq!(sh_ok(sandbox.as_ref(), "pwd").await, "/workspace\n");
    sandbox.mkdir(&path("sub/dir")).await.unwrap();
    for cwd in ["/tmp", "/workspace/sub/dir", "/"] {
        let mut spec = spec(&["/bin/pwd"]);
        spec.cwd = cwd.into();
        let out = run_spec(sandbox.as_ref(), spec, b"").await;
        assert_eq!(text(&out.stdout), format!("{cwd}\n"));
    }
    let mut missing = spec(&["/bin/pwd"]);
    missing.cwd = "/workspace/missing".into();
    let err = sandbox.spawn(missing).await.err().unwrap();
    assert!(matches!(err, SandboxError::Spawn(_)), "{err:?}");
}

#[tokio::test]
async fn files_round_trip() {
    let host = Host::with(61000..61100, small()).await;
    let sandbox = host.sandbox().await;
    let sb = sandbox.as_ref();
    assert!(sb.list(None).await.unwrap().is_empty());

    let binary: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    sb.write_file(&path("data.bin"), binary.clone(), 0o644)
        .await
        .unwrap();
    sb.write_file(&path("deep/er/note.txt"), b"hello\n".to_vec(), 0o600)
        .await
        .unwrap();
    sb.mkdir(&path("empty")).await.unwrap();
    assert_eq!(
        sb.read_file(&path("data.bin"), 1 << 20).await.unwrap(),
        binary
    );
    assert_eq!(
        sb.read_file(&path("deep/er/note.txt"), 100).await.unwrap(),
        b"hello\n"
    );

    let entries = sb.list(None).await.unwrap();
    let names: Vec<(&str, EntryKind, u64)> = entries
        .iter()
        .map(|e| (e.name.as_str(), e.kind, e.size))
        .collect();
    assert_eq!(
        names,
        [
            ("data.bin", EntryKind::File, 100_000),
            ("deep", EntryKind::Dir, 0),
            ("empty", EntryKind::Dir, 0),
        ]
    );
    let deep = sb.list(Some(&path("deep/er"))).await.unwrap();
    assert_eq!(deep.len(), 1);
    assert_eq!(deep[0].name, "note.txt");

    // What the server wrote is what sandboxed programs see, owned by the sandbox user.
    let uid = sh_ok(sb, "id -u").await;
    let uid = uid.trim();
    assert_eq!(
        sh_ok(
            sb,
            "stat -c '%a %u %s' data.bin deep/er/note.txt; cat deep/er/note.txt"
        )
        .await,
        format!("644 {uid} 100000\n600 {uid} 6\nhello\n")
    );
    // And what programs write, the server reads.
    sh_ok(sb, "printf 'from inside' > made.txt").await;
    assert_eq!(
        sb.read_file(&path("made.txt"), 100).await.unwrap(),
        b"from inside"
    );

    // Overwriting truncates.
    sb.write_file(&path("data.bin"), b"short".to_vec(), 0o644)
        .await
        .unwrap();
    assert_eq!(
        sb.read_file(&path("data.bin"), 100).await.unwrap(),
        b"short"
    );

    // Errors callers can map.
    let too_large = sb.read_file(&path("made.txt"), 3).await.err().unwrap();
    assert!(
        matches!(too_large, SandboxError::File(FileError::TooLarge(3))),
        "{too_large:?}"
    );
    let missing = sb.read_file(&path("nope"), 100).await.err().unwrap();
    assert!(matches!(missing, SandboxError::File(FileError::NotFound)));
    let dir = sb.read_file(&path("deep"), 100).await.err().unwrap();
    assert!(matches!(dir, SandboxError::File(FileError::IsADirectory)));

    // Removing a file and a whole tree.
    sb.remove(&path("made.txt")).await.unwrap();
    sb.remove(&path("deep")).await.unwrap();
    let names: Vec<String> = sb
        .list(None)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, ["data.bin", "empty"]);
    let gone = sb.remove(&path("deep")).await.err().unwrap();
    assert!(matches!(gone, SandboxError::File(FileError::NotFound)));
}

#[tokio::test]
async fn a_written_binary_runs_with_its_mode() {
    let host = Host::with(61000..61100, small()).await;
    let sandbox = host.sandbox().await;
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("hello.c");
    std::fs::write(
        &source,
        "#include <stdio.h>\nint main(int c, char **v) { printf(\"hello %s\\n\", v[1]); return 7; }\n",
    )
    .unwrap();
    let exe = dir.path().join("hello");
    let gcc = std::process::Command::new("/usr/bin/gcc")
        .arg("-o")
        .arg(&exe)
        .arg(&source)
        .output()
        .unwrap();
    assert!(gcc.status.success(), "{}", text(&gcc.stderr));
    let bytes = std::fs::read(&exe).unwrap();

    // Without the execute bit it cannot run.
    sandbox
        .write_file(&path("bin/hello"), bytes.clone(), 0o644)
        .await
        .unwrap();
    let err = sandbox
        .spawn(spec(&["/workspace/bin/hello", "x"]))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, SandboxError::Spawn(_)), "{err:?}");

    sandbox
        .write_file(&path("bin/hello"), bytes, 0o755)
        .await
        .unwrap();
    let out = run(sandbox.as_ref(), &["/workspace/bin/hello", "sandbox"]).await;
    assert_eq!(text(&out.stdout), "hello sandbox\n");
    assert_eq!(out.exit.code, Some(7));

    // A program compiled inside the sandbox runs too.
    sandbox
        .write_file(
            &path("inner.c"),
            b"int main(void) { return 3; }\n".to_vec(),
            0o644,
        )
        .await
        .unwrap();
    sh_ok(sandbox.as_ref(), "/usr/bin/gcc -o inner inner.c").await;
    let out = run(sandbox.as_ref(), &["/workspace/inner"]).await;
    assert_eq!(out.exit.code, Some(3), "{}", describe(&out));
}

#[tokio::test]
async fn a_pty_is_a_terminal_of_the_requested_size() {
    let host = Host::with(61000..61100, small()).await;
    let sandbox = host.sandbox().await;
    let mut spec = spec(&[
        "/bin/sh",
        "-c",
        "tty; stty size; test -t 0 && test -t 2 && echo ok",
    ]);
    spec.stdio = StdioMode::Pty { rows: 24, cols: 80 };
    let out = run_spec(sandbox.as_ref(), spec, b"").await;
    assert_eq!(out.exit.code, Some(0), "{}", describe(&out));
    assert_eq!(text(&out.stdout), "/dev/pts/0\r\n24 80\r\nok\r\n");
    assert!(out.stderr.is_empty(), "a terminal has one output stream");
}

#[tokio::test]
async fn a_pty_resize_reaches_an_interactive_shell() {
    let host = Host::with(61000..61100, small()).await;
    let sandbox = host.sandbox().await;
    let mut spec = spec(&["/bin/sh", "-i"]);
    spec.stdio = StdioMode::Pty { rows: 24, cols: 80 };
    spec.limits.wall_ms = Some(PATIENCE.as_millis() as u64);
    let mut shell = sandbox.spawn(spec).await.unwrap();
    shell.write_stdin(b"stty size\n").await.unwrap();
    read_until(&mut shell, "24 80").await;
    shell.resize(40, 100).await.unwrap();
    shell.write_stdin(b"stty size\n").await.unwrap();
    let seen = read_until(&mut shell, "40 100").await;
    assert!(!seen.contains("24 80"), "{seen:?}");
    shell.write_stdin(b"exit 5\n").await.unwrap();
    let exit = exit_ignoring_output(&mut shell).await;
    assert_eq!(exit.code, Some(5), "{exit:?}");
}

#[tokio::test]
async fn signals_reach_the_process() {
    let host = Host::with(61000..61100, small()).await;
    let sandbox = host.sandbox().await;
    let process = sandbox.spawn(spec(&["/bin/sleep", "100"])).await.unwrap();
    assert!(process.pid() > 1);
    process.signal(15).await.unwrap();
    let out = patiently("sleep after SIGTERM", process.output(b""))
        .await
        .unwrap();
    assert_eq!(out.exit.signal, Some(15), "{:?}", out.exit);
    assert_eq!(out.exit.code, None);
    assert_eq!(out.exit.limit, None);

    // A handled signal: the program decides how to end.
    let process = sandbox
        .spawn(spec(&[
            "/bin/sh",
            "-c",
            "trap 'echo got USR1; exit 3' USR1; echo ready; while :; do sleep 0.05; done",
        ]))
        .await
        .unwrap();
    let mut process = process;
    read_until(&mut process, "ready").await;
    process.signal(10).await.unwrap();
    let out = patiently("the trap", process.output(b"")).await.unwrap();
    assert_eq!(text(&out.stdout), "got USR1\n");
    assert_eq!(out.exit.code, Some(3), "{:?}", out.exit);
}

/// Number of SysV shared memory segments `ipcs -m` lists.
async fn shm_segments(sandbox: &dyn Sandbox) -> usize {
    sh_ok(sandbox, "ipcs -m")
        .await
        .lines()
        .filter(|l| l.starts_with("0x"))
        .count()
}

#[tokio::test]
async fn reset_kills_processes_and_empties_the_scratch_space() {
    let host = Host::with(61000..61100, small()).await;
    let sandbox = host.sandbox().await;
    let sb = sandbox.as_ref();
    let uid = sh_ok(sb, "id -u").await;
    let uid = uid.trim();
    let marker = marker();
    let mut sleeper = sb.spawn(spec(&["/bin/sleep", &marker])).await.unwrap();
    sb.write_file(&path("work/file"), b"x".to_vec(), 0o644)
        .await
        .unwrap();
    sh_ok(
        sb,
        "echo t > /tmp/t && mkdir /tmp/d && echo s > /dev/shm/s && ipcmk -M 1024 >/dev/null",
    )
    .await;
    assert_eq!(shm_segments(sb).await, 1);
    assert_eq!(host_pids_with_arg(&marker).len(), 1);

    patiently("reset", sb.reset()).await.unwrap();

    let exit = patiently("the sleeper's exit", sleeper.next_event()).await;
    match exit {
        Some(ProcessEvent::Exited(exit)) => assert_eq!(exit.signal, Some(9), "{exit:?}"),
        other => panic!("{other:?}"),
    }
    assert!(host_pids_with_arg(&marker).is_empty());
    assert!(sb.list(None).await.unwrap().is_empty());
    assert_eq!(
        sh_ok(sb, "ls -A /tmp /dev/shm /workspace").await,
        "/dev/shm:\n\n/tmp:\n\n/workspace:\n"
    );
    assert_eq!(shm_segments(sb).await, 0);
    // Still usable, with a writable workspace owned by the sandbox user.
    assert_eq!(
        sh_ok(sb, "echo again > f && cat f && stat -c %u /workspace").await,
        format!("again\n{uid}\n")
    );
    // And resettable again, also after the previous user changed the workspace root itself:
    // its mode comes back, an extended attribute (a note for the next user) does not survive,
    // and a deep tree with odd permissions goes.
    sh_ok(
        sb,
        "mkdir -p a/b/c && touch a/b/c/f && chmod 000 a/b && ln -s /etc e && chmod 700 /workspace",
    )
    .await;
    sh_ok(
        sb,
        &format!(
            "{PYTHON} -c \"import os; os.setxattr('/workspace', 'user.note', b'hello next user')\""
        ),
    )
    .await;
    sb.reset().await.unwrap();
    assert!(sb.list(None).await.unwrap().is_empty());
    assert_eq!(
        sh_ok(
            sb,
            &format!("stat -c %a /workspace; {PYTHON} -c \"import os; print(os.listxattr('/workspace'))\""),
        )
        .await,
        "755\n[]\n"
    );
    assert!(host_pids_with_arg(&marker).is_empty());
}

#[tokio::test]
async fn usage_reports_sane_values() {
    let host = Host::with(61000..61100, small()).await;
    let sandbox = host.sandbox().await;
    let before = sandbox.usage().await.unwrap();
    // The agent (outside and inside the PID namespace) is there.
    assert!(before.pids >= 1, "{before:?}");
    assert!(before.memory_bytes > 0, "{before:?}");
    assert_eq!(before.oom_kills, 0);
    let out = run(
        sandbox.as_ref(),
        &[PYTHON, "-c", "x = bytearray(32 << 20)\nfor i in range(0, len(x), 4096): x[i] = 1\nprint(sum(range(3_000_000)))"],
    )
    .await;
    assert_eq!(out.exit.code, Some(0), "{}", describe(&out));
    assert!(out.exit.cpu_ms > 0, "{:?}", out.exit);
    assert!(out.exit.memory_kb >= 32 << 10, "{:?}", out.exit);
    assert!(out.exit.memory_kb < 256 << 10, "{:?}", out.exit);
    assert!(out.exit.wall_ms > 0, "{:?}", out.exit);
    let after = sandbox.usage().await.unwrap();
    assert!(after.cpu_ms > before.cpu_ms, "{before:?} {after:?}");
    if let Some(peak) = after.memory_peak_bytes {
        assert!(peak >= 32 * MIB, "{after:?}");
        assert!(peak >= after.memory_bytes, "{after:?}");
    }
    let process = sandbox.spawn(spec(&["/bin/sleep", "100"])).await.unwrap();
    let running = sandbox.usage().await.unwrap();
    assert_eq!(running.pids, before.pids + 1, "{before:?} {running:?}");
    process.signal(9).await.unwrap();
    patiently("sleep", process.output(b"")).await.unwrap();
}

#[tokio::test]
async fn destroy_is_idempotent_and_leaves_nothing_behind() {
    let host = Host::with(61000..61100, small()).await;
    let sandbox = host.sandbox().await;
    let marker = marker();
    let _sleeper = sandbox.spawn(spec(&["/bin/sleep", &marker])).await.unwrap();
    let members = host_pids_in_cgroup(sandbox.id());
    // The agent outside the PID namespace, PID 1 inside, and the sleeper.
    assert_eq!(members.len(), 3, "{members:?}");
    assert!(!cgroup_dirs_named(sandbox.id()).is_empty());

    patiently("destroy", sandbox.destroy()).await.unwrap();
    patiently("a second destroy", sandbox.destroy())
        .await
        .unwrap();

    assert!(host_pids_in_cgroup(sandbox.id()).is_empty());
    for pid in members {
        // A killed process leaves its cgroup before it finishes exiting (PID 1 of the box
        // still reaps the rest of its namespace), so "gone from the cgroup" comes first and
        // "no longer alive" follows shortly. A zombie has ended; reaping the orphaned PID 1 is
        // the host init's job.
        eventually(&format!("process {pid} of the sandbox ends"), || {
            !is_alive(pid)
        })
        .await;
    }
    assert!(host_pids_with_arg(&marker).is_empty());
    assert_eq!(cgroup_dirs_named(sandbox.id()), Vec::<PathBuf>::new());
    eventually("the agent connection closes", || {
        sandbox.agent().is_closed()
    })
    .await;
    let err = sandbox.spawn(spec(&["/bin/true"])).await.err().unwrap();
    assert!(matches!(err, SandboxError::Lost), "{err:?}");
}

#[tokio::test]
async fn several_processes_run_at_once_in_one_sandbox() {
    let host = Host::with(61000..61100, small()).await;
    let sandbox = host.sandbox().await;
    let sb = sandbox.as_ref();
    // Each waits for a file the next one writes, so they can only finish if all run together.
    let a = sb
        .spawn(spec(&[
            "/bin/sh",
            "-c",
            "while [ ! -e b ]; do sleep 0.01; done; echo a; touch a",
        ]))
        .await
        .unwrap();
    let b = sb
        .spawn(spec(&[
            "/bin/sh",
            "-c",
            "touch b; while [ ! -e a ]; do sleep 0.01; done; echo b",
        ]))
        .await
        .unwrap();
    let (a, b) = patiently("both", async { tokio::join!(a.output(b""), b.output(b"")) }).await;
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(text(&a.stdout), "a\n");
    assert_eq!(text(&b.stdout), "b\n");
}

#[tokio::test]
async fn loopback_works_inside_one_sandbox() {
    let host = Host::with(61000..61100, small()).await;
    let sandbox = host.sandbox().await;
    let script = "\
import socket, threading
srv = socket.create_server(('127.0.0.1', 0))
port = srv.getsockname()[1]
def serve():
    conn, _ = srv.accept()
    conn.sendall(conn.recv(100).upper())
    conn.close()
threading.Thread(target=serve).start()
c = socket.create_connection(('127.0.0.1', port))
c.sendall(b'ping')
print(c.recv(100).decode())
";
    let out = run(sandbox.as_ref(), &[PYTHON, "-c", script]).await;
    assert_eq!(text(&out.stdout), "PING\n", "{}", describe(&out));
    assert_eq!(sh_ok(sandbox.as_ref(), "hostname").await, "sandpit\n");
}

/// A backend that creates at most `left` sandboxes, so a pool cannot replace what it hands out.
struct Rationed {
    inner: Arc<NativeBackend>,
    left: AtomicUsize,
}

#[async_trait]
impl Backend for Rationed {
    fn report(&self) -> BackendReport {
        self.inner.report()
    }

    async fn create(&self, spec: &SandboxSpec) -> Result<Box<dyn Sandbox>, SandboxError> {
        let take = self
            .left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if take.is_err() {
            return Err(SandboxError::Unavailable("rationed".into()));
        }
        self.inner.create(spec).await
    }
}

#[tokio::test]
async fn a_released_lease_comes_back_reset() {
    let host = Host::with(61000..61100, small()).await;
    let backend = Arc::new(Rationed {
        inner: host.backend.clone(),
        left: AtomicUsize::new(1),
    });
    let pool = Pool::new(backend, SandboxSpec::new(small()), 1);
    eventually("the pool warms up", || pool.ready() == 1).await;

    let lease = patiently("acquire", pool.acquire()).await.unwrap();
    let first_id = lease.sandbox().id().to_owned();
    let marker = marker();
    lease
        .sandbox()
        .write_file(&path("private.txt"), b"lease one".to_vec(), 0o644)
        .await
        .unwrap();
    let _sleeper = lease
        .sandbox()
        .spawn(spec(&["/bin/sleep", &marker]))
        .await
        .unwrap();
    sh_ok(lease.sandbox(), "echo x > /tmp/left-behind").await;
    assert_eq!(host_pids_with_arg(&marker).len(), 1);
    patiently("release", lease.release()).await;
    assert_eq!(pool.ready(), 1);

    let lease = patiently("acquire", pool.acquire()).await.unwrap();
    assert_eq!(
        lease.sandbox().id(),
        first_id,
        "the pool made a new sandbox"
    );
    assert!(lease.sandbox().list(None).await.unwrap().is_empty());
    assert_eq!(sh_ok(lease.sandbox(), "ls -A /tmp").await, "");
    assert!(host_pids_with_arg(&marker).is_empty());
    lease.release().await;
    pool.shutdown().await;
    assert_eq!(pool.ready(), 0);
    eventually("the pooled sandbox is destroyed", || {
        cgroup_dirs_named(&first_id).is_empty()
    })
    .await;
}

/// A run that arrives while the only sandbox is being reset waits for it instead of creating
/// one (the rationed backend would refuse a second creation).
#[tokio::test]
async fn acquire_waits_for_a_returning_sandbox() {
    let host = Host::with(61000..61100, small()).await;
    let backend = Arc::new(Rationed {
        inner: host.backend.clone(),
        left: AtomicUsize::new(1),
    });
    let pool = Pool::new(backend, SandboxSpec::new(small()), 1);
    eventually("the pool warms up", || pool.ready() == 1).await;
    let lease = patiently("acquire", pool.acquire()).await.unwrap();
    let first_id = lease.sandbox().id().to_owned();
    sh_ok(lease.sandbox(), "echo x > /tmp/left-behind").await;
    // Counted as returning from here on, though the reset has not started.
    let release = lease.release();
    let next = tokio::spawn({
        let pool = pool.clone();
        async move { pool.acquire().await }
    });
    patiently("release", release).await;
    let lease = patiently("acquire", next).await.unwrap().unwrap();
    assert_eq!(lease.sandbox().id(), first_id);
    assert_eq!(pool.created_on_demand(), 0);
    assert_eq!(sh_ok(lease.sandbox(), "ls -A /tmp").await, "");
    lease.release().await;
    pool.shutdown().await;
}

#[tokio::test]
async fn a_dropped_lease_is_destroyed() {
    let host = Host::with(61000..61100, small()).await;
    let backend: Arc<dyn Backend> = host.backend.clone();
    let pool = Pool::new(backend, SandboxSpec::new(small()), 0);
    let lease = patiently("acquire", pool.acquire()).await.unwrap();
    let id = lease.sandbox().id().to_owned();
    let marker = marker();
    let _sleeper = lease
        .sandbox()
        .spawn(spec(&["/bin/sleep", &marker]))
        .await
        .unwrap();
    assert!(!host_pids_in_cgroup(&id).is_empty());
    drop(lease);
    eventually("the dropped lease's processes die", || {
        host_pids_in_cgroup(&id).is_empty() && host_pids_with_arg(&marker).is_empty()
    })
    .await;
    eventually("its cgroup is removed", || {
        cgroup_dirs_named(&id).is_empty()
    })
    .await;
    assert_eq!(pool.ready(), 0);
}

#[tokio::test]
async fn output_streams_arrive_as_events_in_order() {
    let host = Host::with(61000..61100, small()).await;
    let sandbox = host.sandbox().await;
    let mut process = sandbox
        .spawn(spec(&[
            "/bin/sh",
            "-c",
            "for i in 1 2 3; do echo $i; sleep 0.01; done; echo done >&2",
        ]))
        .await
        .unwrap();
    process.close_stdin().await.unwrap();
    let mut stdout = String::new();
    let mut stderr = String::new();
    let exit = patiently("events", async {
        loop {
            match process.next_event().await {
                Some(ProcessEvent::Output(Stream::Stdout, b)) => stdout.push_str(&text(&b)),
                Some(ProcessEvent::Output(Stream::Stderr, b)) => stderr.push_str(&text(&b)),
                Some(ProcessEvent::Exited(exit)) => return exit,
                None => panic!("lost"),
            }
        }
    })
    .await;
    assert_eq!(stdout, "1\n2\n3\n");
    assert_eq!(stderr, "done\n");
    assert_eq!(exit.code, Some(0));
    assert!(
        patiently("after exit", process.next_event())
            .await
            .is_none()
    );
}

/// Loop devices attached to `image`, as `losetup` sees them.
fn loop_devices_of(image: &Path) -> String {
    let out = Command::new("/usr/sbin/losetup")
        .arg("-j")
        .arg(image)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A server killed between attaching a workspace's loop device and detaching it leaves the
/// device attached with nothing to free it; the next server process detaches it at start-up.
#[tokio::test]
async fn loop_devices_left_by_a_killed_process_are_detached() {
    let dir = tempfile::tempdir().unwrap();
    let workspaces = dir.path().join("workspaces");
    let attach = |image: &Path| {
        std::fs::create_dir_all(image.parent().unwrap()).unwrap();
        std::fs::File::create(image)
            .unwrap()
            .set_len(4 * MIB)
            .unwrap();
        let out = Command::new("/usr/sbin/losetup")
            .args(["--find", "--show"])
            .arg(image)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout).trim().to_owned()
    };
    let left = workspaces
        .join("a")
        .join(sandpit_sandbox::loopdev::IMAGE_NAME);
    attach(&left);
    let elsewhere = dir.path().join("other.img");
    let other = attach(&elsewhere);

    assert_eq!(sandpit_sandbox::loopdev::detach_stale(&workspaces).await, 1);
    assert!(loop_devices_of(&left).is_empty());
    assert!(
        !loop_devices_of(&elsewhere).is_empty(),
        "not in the directory"
    );
    let out = Command::new("/usr/sbin/losetup")
        .args(["-d", &other])
        .output()
        .unwrap();
    assert!(out.status.success());
}

fn host_mounts_mentioning(needle: &str) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn a_volume_is_shared_by_sandboxes_and_read_only_where_asked() {
    let host = Host::with(61000..61100, small()).await;
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("db");
    std::fs::create_dir(&shared).unwrap();
    // Each sandbox has its own uid: the directory is theirs to share.
    std::fs::set_permissions(&shared, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let with = |read_only| SandboxSpec {
        volumes: vec![Volume {
            source: shared.clone(),
            target: VolumeTarget::parse("/data").unwrap(),
            read_only,
        }],
        ..SandboxSpec::new(small())
    };
    let writer = host.backend.create(&with(false)).await.unwrap();
    let reader = host.backend.create(&with(true)).await.unwrap();
    sh_ok(writer.as_ref(), "echo written inside > /data/note").await;
    assert_eq!(
        std::fs::read_to_string(shared.join("note")).unwrap(),
        "written inside\n"
    );
    assert_eq!(
        sh_ok(reader.as_ref(), "cat /data/note").await,
        "written inside\n"
    );
    let refused = run(reader.as_ref(), &["/bin/sh", "-c", "echo x > /data/other"]).await;
    assert_ne!(refused.exit.code, Some(0), "{}", describe(&refused));
    assert!(!shared.join("other").exists());
    // Nothing in it runs: a program written there is refused at exec.
    let exec = run(
        writer.as_ref(),
        &[
            "/bin/sh",
            "-c",
            "cp /bin/true /data/t && chmod +x /data/t && /data/t",
        ],
    )
    .await;
    assert_ne!(exec.exit.code, Some(0), "{}", describe(&exec));
    assert!(
        text(&exec.stderr).contains("ermission denied"),
        "{}",
        describe(&exec)
    );
    // Only the directory is shared: its parent, seen from inside, is the sandbox's root.
    std::fs::write(dir.path().join("beside-the-volume"), "host only").unwrap();
    let parent = sh_ok(writer.as_ref(), "ls -a /data/..").await;
    assert!(parent.contains("workspace"), "{parent}");
    assert!(!parent.contains("beside-the-volume"), "{parent}");
    writer.destroy().await.unwrap();
    reader.destroy().await.unwrap();
    assert!(shared.join("note").exists(), "what was written stays");
}

#[test]
fn a_volume_never_covers_a_system_directory() {
    for ok in ["/data", "/mnt/db", "/run/postgresql"] {
        assert!(VolumeTarget::parse(ok).is_ok(), "{ok}");
    }
    for bad in [
        "/",
        "/usr",
        "/etc",
        "/workspace",
        "/tmp",
        "/data/x",
        "/mnt",
        "/mnt/",
        "/mnt/../etc",
        "/run/a/b",
        "data",
        "/mnt/DB",
    ] {
        assert!(VolumeTarget::parse(bad).is_err(), "{bad}");
    }
}

#[tokio::test]
async fn a_persistent_workspace_outlives_its_sandbox() {
    let host = Host::with(61000..61100, small()).await;
    let dir = tempfile::tempdir().unwrap();
    let box_spec = SandboxSpec {
        workspace: WorkspaceSpec::Persistent {
            dir: dir.path().join("ws"),
            max_files: 100,
        },
        ..SandboxSpec::new(small())
    };
    let image = dir
        .path()
        .join("ws")
        .join(sandpit_sandbox::loopdev::IMAGE_NAME);

    let first = host.backend.create(&box_spec).await.unwrap();
    let first_uid = sh_ok(first.as_ref(), "id -u").await;
    // Empty at first (no lost+found), the sandbox user's, and limited in size.
    assert_eq!(sh_ok(first.as_ref(), "ls -A /workspace").await, "");
    first
        .write_file(&path("src/main.py"), b"print('kept')\n".to_vec(), 0o644)
        .await
        .unwrap();
    sh_ok(
        first.as_ref(),
        "mkdir -p a/b && echo deep > a/b/c && ln -s /etc/passwd link",
    )
    .await;
    let mut dd = spec(&[
        "/bin/sh",
        "-c",
        "dd if=/dev/zero of=/workspace/big bs=1M count=64 2>&1; rm -f /workspace/big",
    ]);
    dd.limits.file_size_bytes = 1 << 30;
    let fill = run_spec(first.as_ref(), dd, b"").await;
    assert!(
        text(&fill.stdout).contains("No space left"),
        "{}",
        describe(&fill)
    );
    // And limited in entries, however they are made.
    let many = sh_ok(
        first.as_ref(),
        "mkdir many; i=0; while [ $i -lt 300 ]; do touch many/$i 2>/dev/null || break; i=$((i+1)); done; echo $i; rm -rf many",
    )
    .await;
    let made: u32 = many.trim().parse().unwrap();
    assert!(
        (90..=140).contains(&made),
        "{made} entries fitted in a 100-file workspace"
    );
    // The host mounted nothing; the image is not held open by the host either.
    assert!(host_mounts_mentioning(first.id()).is_empty());
    assert!(image.is_file());
    // Reset keeps a persistent workspace (it empties only /tmp and /dev/shm).
    first.reset().await.unwrap();
    assert_eq!(
        sh_ok(first.as_ref(), "cat a/b/c").await,
        "deep\n",
        "reset wiped a persistent workspace"
    );
    first.destroy().await.unwrap();
    drop(first);
    eventually("the loop device is released", || {
        loop_devices_of(&image).is_empty()
    })
    .await;

    // A second sandbox on the same directory finds everything, now owned by its own uid.
    let second = host.backend.create(&box_spec).await.unwrap();
    let second_uid = sh_ok(second.as_ref(), "id -u").await;
    assert_ne!(first_uid, second_uid);
    assert_eq!(
        second.read_file(&path("src/main.py"), 1024).await.unwrap(),
        b"print('kept')\n"
    );
    let owners = sh_ok(
        second.as_ref(),
        "stat -c '%u %n' /workspace /workspace/src/main.py /workspace/a/b/c; readlink link",
    )
    .await;
    let uid = second_uid.trim();
    assert_eq!(
        owners,
        format!(
            "{uid} /workspace\n{uid} /workspace/src/main.py\n{uid} /workspace/a/b/c\n/etc/passwd\n"
        )
    );
    let run = sh_ok(second.as_ref(), "/usr/bin/python3 src/main.py").await;
    assert_eq!(run, "kept\n");
    second.destroy().await.unwrap();
    drop(second);
    eventually("the loop device is released again", || {
        loop_devices_of(&image).is_empty()
    })
    .await;
}

/// The app proxy's way in: a TCP connection to a port inside the box, the box itself having no
/// network but its loopback. The host's own loopback is a different interface.
#[tokio::test]
async fn connect_reaches_a_port_inside_the_sandbox_and_only_there() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = Host::with(61000..61100, small()).await;
    let sandbox = host.sandbox().await;
    let server = "import socket\n\
        s = socket.socket()\n\
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
        s.bind(('127.0.0.1', 8080))\n\
        s.listen()\n\
        print('listening', flush=True)\n\
        while True:\n\
        \x20   c, _ = s.accept()\n\
        \x20   c.sendall(b'inside:' + c.recv(100))\n\
        \x20   c.close()\n";
    let mut spec = spec(&[PYTHON, "-c", server]);
    spec.limits.wall_ms = None;
    let mut process = sandbox.spawn(spec).await.unwrap();
    read_until(&mut process, "listening").await;

    for attempt in ["one", "two"] {
        let mut stream = patiently("connect", sandbox.connect(8080)).await.unwrap();
        stream.write_all(attempt.as_bytes()).await.unwrap();
        let mut answer = String::new();
        patiently("answer", stream.read_to_string(&mut answer))
            .await
            .unwrap();
        assert_eq!(answer, format!("inside:{attempt}"));
    }

    // Nothing listens on another port inside, whatever the host has there.
    let host_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let host_port = host_listener.local_addr().unwrap().port();
    let ports = sandbox.listening_ports().await;
    assert!(ports.contains(&8080), "{ports:?}");
    assert!(!ports.contains(&host_port), "{ports:?}");
    let refused = patiently("connect", sandbox.connect(host_port)).await;
    let message = refused.unwrap_err().to_string();
    assert!(message.contains("refused"), "{message}");
    sandbox.destroy().await.unwrap();
}
