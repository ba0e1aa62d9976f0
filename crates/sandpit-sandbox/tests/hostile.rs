#![expect(clippy::unwrap_used, reason = "tests")]
//! The hostile suite: real programs that attack the native backend from inside a sandbox. Every
//! case is one `hostile_*` test and checks both what the sandbox reports and that the host, the
//! agent and other sandboxes are untouched. Cases use small limits so each finishes in moments.
//! Each test starts its own backend (its own cgroup parent) and removes everything when it ends.

mod common;
#[expect(
    dead_code,
    reason = "the shared fixture has helpers this suite does not use"
)]
#[path = "common/process.rs"]
mod process;
use common::{Host, path, text};
use process::{describe, eventually, host_pids_with_arg, is_alive};

use std::collections::BTreeSet;
use std::os::unix::fs::{PermissionsExt, chown};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use sandpit_sandbox::protocol::FileError;
use sandpit_sandbox::{
    Backend, LimitKind, Output, ProcessEvent, ProcessSpec, RootSpec, Sandbox, SandboxError,
    SandboxLimits, SandboxSpec, StdioMode,
};

const PYTHON: &str = "/usr/bin/python3";
const MIB: u64 = 1 << 20;
/// The sandboxes' uid range: each live sandbox runs as its own uid from it.
const UID: u32 = 61000;
const UIDS: std::ops::Range<u32> = UID..UID + 100;
/// Upper bound for anything a test waits for, so a defect shows as a failure, not a hang.
const PATIENCE: Duration = Duration::from_secs(30);
/// How long the agent may take to answer a file request before it counts as hung.
const PROMPTLY: Duration = Duration::from_secs(10);
const AGENT: &str = env!("CARGO_BIN_EXE_sandpit-agent");

fn small() -> SandboxLimits {
    SandboxLimits {
        memory_bytes: 128 * MIB,
        pids: 32,
        cpu_millicores: Some(1000),
        workspace_bytes: 8 * MIB,
        tmp_bytes: 8 * MIB,
        shm_bytes: 8 * MIB,
    }
}

fn spec(argv: &[&str]) -> ProcessSpec {
    let mut spec = ProcessSpec::new(argv.iter().copied());
    spec.limits.wall_ms = Some(10_000);
    spec
}

async fn within<T>(limit: Duration, what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(limit, fut)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {limit:?}"))
}

async fn run_spec(sandbox: &dyn Sandbox, spec: ProcessSpec) -> Output {
    let what = format!("{:?}", spec.argv);
    within(PATIENCE, &what, async {
        sandbox
            .spawn(spec)
            .await
            .unwrap()
            .output(b"")
            .await
            .unwrap()
    })
    .await
}

async fn run(sandbox: &dyn Sandbox, argv: &[&str]) -> Output {
    run_spec(sandbox, spec(argv)).await
}

async fn sh(sandbox: &dyn Sandbox, script: &str) -> Output {
    run(sandbox, &["/bin/sh", "-c", script]).await
}

/// The uid a sandbox's processes run as (one of [`UIDS`], its own).
async fn sandbox_uid(sandbox: &dyn Sandbox) -> u32 {
    let uid: u32 = sh_ok(sandbox, "id -u").await.trim().parse().unwrap();
    assert!(UIDS.contains(&uid), "{uid}");
    uid
}

/// Runs `sh -c script`, asserts it exited 0 and returns stdout.
async fn sh_ok(sandbox: &dyn Sandbox, script: &str) -> String {
    let out = sh(sandbox, script).await;
    assert_eq!(out.exit.code, Some(0), "{script}: {}", describe(&out));
    text(&out.stdout)
}

/// Runs a Python script, asserts it exited 0 and returns stdout.
async fn py_ok(sandbox: &dyn Sandbox, script: &str) -> String {
    let out = run(sandbox, &[PYTHON, "-c", script]).await;
    assert_eq!(out.exit.code, Some(0), "{script}: {}", describe(&out));
    text(&out.stdout)
}

/// The sandbox still runs programs (its agent survived the attack).
async fn assert_usable(sandbox: &dyn Sandbox) {
    assert_eq!(sh_ok(sandbox, "echo alive").await, "alive\n");
}

/// The host can still start processes.
fn assert_host_forks() {
    for _ in 0..20 {
        let status = Command::new("/bin/true").status().unwrap();
        assert!(status.success());
    }
}

fn host_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
        .collect()
}

/// Live host pids in the cgroup named `name` (a sandbox id), in any hierarchy.
fn host_pids_in_cgroup(name: &str) -> Vec<u32> {
    let needle = format!("/{name}");
    host_pids()
        .into_iter()
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/cgroup")).is_ok_and(|cgroups| {
                cgroups.lines().any(|line| {
                    line.split_once(&needle)
                        .is_some_and(|(_, rest)| rest.is_empty() || rest.starts_with('/'))
                })
            })
        })
        .filter(|&pid| is_alive(pid))
        .collect()
}

/// A `sleep` argument unique to this test process (nextest runs each test in its own), so the
/// host can find exactly the sleepers this test started.
fn marker(n: u32) -> String {
    format!("{}.{:06}", 1000 + n, std::process::id())
}

/// A process on the host running as the sandbox uid, as a bystander for kill attacks.
struct Bystander(std::process::Child);

impl Bystander {
    fn start(arg: &str, uid: u32) -> Self {
        let child = Command::new("/bin/sleep")
            .arg(arg)
            .uid(uid)
            .gid(uid)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        Self(child)
    }

    fn alive(&mut self) -> bool {
        self.0.try_wait().unwrap().is_none()
    }
}

impl Drop for Bystander {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The errno name each line of a Python probe reports, keyed by the probe's label.
fn outcomes(stdout: &str) -> std::collections::BTreeMap<String, String> {
    stdout
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Python helper prepended to probes: `attempt(label, fn)` prints `label OK` or `label ERRNO`.
const ATTEMPT: &str = "\
import errno, os, socket, sys
def write_now(path, data):
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
def attempt(label, fn):
    try:
        fn()
        print(label, 'OK')
    except OSError as e:
        print(label, errno.errorcode.get(e.errno, str(e)))
";

// ---------------------------------------------------------------------------------------------
// Resource exhaustion

#[tokio::test]
async fn hostile_fork_bomb_python() {
    let host = Host::with(UIDS, small()).await;
    let sandbox = host.sandbox().await;
    let before = host_pids_in_cgroup(sandbox.id()).len();
    let mut bomb = spec(&[
        PYTHON,
        "-c",
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
    ]);
    bomb.limits.wall_ms = Some(1500);
    bomb.limits.cpu_ms = None;
    let process = sandbox.spawn(bomb).await.unwrap();
    // While it rages the box holds at most its pids limit.
    let mut peak = 0;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(25)).await;
        peak = peak.max(sandbox.usage().await.unwrap().pids);
        assert_host_forks();
    }
    assert!(peak <= 32, "{peak} pids");
    assert!(peak >= 16, "the bomb did not multiply ({peak} pids)");
    let out = within(PATIENCE, "the bomb", process.output(b""))
        .await
        .unwrap();
    assert_eq!(
        out.exit.limit,
        Some(LimitKind::WallTime),
        "{}",
        describe(&out)
    );
    assert_eq!(out.exit.signal, Some(9));
    // The wall limit killed its whole process group.
    eventually("the bomb's children die", || {
        host_pids_in_cgroup(sandbox.id()).len() == before
    })
    .await;
    assert_usable(sandbox.as_ref()).await;
    assert_host_forks();
    sandbox.destroy().await.unwrap();
    assert!(host_pids_in_cgroup(sandbox.id()).is_empty());
}

#[tokio::test]
async fn hostile_fork_bomb_bash() {
    let host = Host::with(UIDS, small()).await;
    let sandbox = host.sandbox().await;
    let before = host_pids_in_cgroup(sandbox.id()).len();
    // The classic, started in the background so the run returns at once (run directly, the
    // first shell can itself be stuck retrying a fork until its wall time ends the group), and
    // away from the run's pipes (closed once the run ends: bash's fork-retry messages would
    // meet SIGPIPE).
    let bomb = ":(){ :|:& };: </dev/null >/dev/null 2>&1 & exit 0";
    let out = run(sandbox.as_ref(), &["/bin/bash", "-c", bomb]).await;
    assert_eq!(out.exit.code, Some(0), "{}", describe(&out));
    eventually("the bomb fills the box", || {
        host_pids_in_cgroup(sandbox.id()).len() >= 24
    })
    .await;
    assert!(host_pids_in_cgroup(sandbox.id()).len() <= 32);
    assert!(sandbox.usage().await.unwrap().pids <= 32);
    assert_host_forks();
    // Reset ends it, however many there are.
    within(PATIENCE, "reset", sandbox.reset()).await.unwrap();
    assert_eq!(host_pids_in_cgroup(sandbox.id()).len(), before);
    assert_usable(sandbox.as_ref()).await;
    // Once more, then destroy instead of reset.
    run(sandbox.as_ref(), &["/bin/bash", "-c", bomb]).await;
    eventually("the bomb fills the box", || {
        host_pids_in_cgroup(sandbox.id()).len() >= 24
    })
    .await;
    within(PATIENCE, "destroy", sandbox.destroy())
        .await
        .unwrap();
    assert!(host_pids_in_cgroup(sandbox.id()).is_empty());
    assert_host_forks();
}

#[tokio::test]
async fn hostile_thread_bomb() {
    let host = Host::with(UIDS, small()).await;
    let sandbox = host.sandbox().await;
    let script = "\
import threading, time
n = 0
try:
    while True:
        threading.Thread(target=time.sleep, args=(5,), daemon=True).start()
        n += 1
except RuntimeError:
    pass
print(n)
";
    let out = run(sandbox.as_ref(), &[PYTHON, "-c", script]).await;
    assert_eq!(out.exit.code, Some(0), "{}", describe(&out));
    let threads: u64 = text(&out.stdout).trim().parse().unwrap();
    // Every thread counts against the pids limit (the agent holds two of 32).
    assert!((10..32).contains(&threads), "{threads} threads");
    assert_usable(sandbox.as_ref()).await;
}

#[tokio::test]
async fn hostile_memory_bomb() {
    let host = Host::with(UIDS, small()).await;
    let sandbox = host
        .sandbox_with(SandboxLimits {
            memory_bytes: 64 * MIB,
            ..small()
        })
        .await;
    let out = run(
        sandbox.as_ref(),
        &[PYTHON, "-c", "x = b'x' * (1 << 30)\nprint('allocated')"],
    )
    .await;
    assert_eq!(
        out.exit.limit,
        Some(LimitKind::Memory),
        "{}",
        describe(&out)
    );
    assert_eq!(out.exit.signal, Some(9));
    assert!(out.stdout.is_empty());
    let usage = sandbox.usage().await.unwrap();
    assert!(usage.oom_kills >= 1, "{usage:?}");
    assert!(usage.memory_bytes <= 64 * MIB, "{usage:?}");
    // The agent was not the victim.
    assert_usable(sandbox.as_ref()).await;
    // A process that stays under the limit is not blamed for an earlier kill.
    let out = run(sandbox.as_ref(), &[PYTHON, "-c", "x = b'x' * (8 << 20)"]).await;
    assert_eq!(out.exit.code, Some(0), "{}", describe(&out));
    assert_eq!(out.exit.limit, None);
}

/// SysV shared memory outlives its creator and cannot be OOM-killed: a program that pins the
/// whole memory limit with it, then exits, must not leave the box unusable after a reset.
#[tokio::test]
async fn hostile_sysv_shm_pins_memory() {
    let host = Host::with(UIDS, small()).await;
    let sandbox = host
        .sandbox_with(SandboxLimits {
            memory_bytes: 64 * MIB,
            ..small()
        })
        .await;
    let script = "\
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
made = 0
for i in range(32):
    sid = libc.shmget(0, 4 << 20, 0o1600)
    if sid < 0:
        break
    addr = libc.shmat(sid, None, 0)
    if addr in (None, ctypes.c_void_p(-1).value):
        break
    made += 1
    print(made, flush=True)
    ctypes.memset(addr, 1, 4 << 20)
";
    let out = run(sandbox.as_ref(), &[PYTHON, "-c", script]).await;
    assert!(
        out.exit.code != Some(0) || out.exit.limit.is_some(),
        "{}",
        describe(&out)
    );
    assert!(sandbox.usage().await.unwrap().memory_bytes > 32 * MIB);
    within(PATIENCE, "reset", sandbox.reset()).await.unwrap();
    // The replaced IPC namespace is freed by the kernel shortly after the reset, not during it.
    let mut freed = false;
    for _ in 0..100 {
        if sandbox.usage().await.unwrap().memory_bytes < 16 * MIB {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        freed,
        "shared memory survived the reset: {:?}",
        sandbox.usage().await.unwrap()
    );
    assert_usable(sandbox.as_ref()).await;
    let out = run(sandbox.as_ref(), &[PYTHON, "-c", "x = b'x' * (32 << 20)"]).await;
    assert_eq!(
        out.exit.code,
        Some(0),
        "memory was not freed: {}",
        describe(&out)
    );
}

async fn fill(dir: &str) {
    let host = Host::with(UIDS, small()).await;
    let sandbox = host.sandbox().await;
    let file = format!("{dir}/fill");
    let mut dd = spec(&[
        "/usr/bin/dd",
        "if=/dev/zero",
        &format!("of={file}"),
        "bs=1M",
        "count=1000",
    ]);
    dd.limits.file_size_bytes = 1 << 30;
    let out = run_spec(sandbox.as_ref(), dd).await;
    assert_eq!(out.exit.code, Some(1), "{}", describe(&out));
    assert!(
        text(&out.stderr).contains("No space left on device"),
        "{}",
        describe(&out)
    );
    let size: u64 = sh_ok(sandbox.as_ref(), &format!("stat -c %s {file}"))
        .await
        .trim()
        .parse()
        .unwrap();
    assert!(size <= 8 * MIB, "{size} bytes in {file}");
    assert!(
        size >= 7 * MIB,
        "{size} bytes in {file}: the fill stopped early"
    );
    // The box still works, and the space comes back.
    sh_ok(sandbox.as_ref(), &format!("rm {file} && echo x > {file}")).await;
}

#[tokio::test]
async fn hostile_disk_fill_workspace() {
    fill("/workspace").await;
}

#[tokio::test]
async fn hostile_disk_fill_tmp() {
    fill("/tmp").await;
}

#[tokio::test]
async fn hostile_disk_fill_dev_shm() {
    fill("/dev/shm").await;
}

#[tokio::test]
async fn hostile_full_workspace_refuses_server_writes() {
    let host = Host::with(UIDS, small()).await;
    let sandbox = host.sandbox().await;
    let mut dd = spec(&[
        "/usr/bin/dd",
        "if=/dev/zero",
        "of=fill",
        "bs=1M",
        "count=100",
    ]);
    dd.limits.file_size_bytes = 1 << 30;
    run_spec(sandbox.as_ref(), dd).await;
    let err = within(
        PROMPTLY,
        "write_file",
        sandbox.write_file(&path("more"), vec![0; 1 << 20], 0o644),
    )
    .await
    .err()
    .unwrap();
    assert!(
        matches!(err, SandboxError::File(FileError::NoSpace)),
        "{err:?}"
    );
    sandbox.remove(&path("fill")).await.unwrap();
    sandbox
        .write_file(&path("more"), vec![0; 1 << 20], 0o644)
        .await
        .unwrap();
}

#[tokio::test]
async fn hostile_file_size_limit_signal() {
    let host = Host::with(UIDS, small()).await;
    let sandbox = host.sandbox().await;
    let mut dd = spec(&[
        "/usr/bin/dd",
        "if=/dev/zero",
        "of=big",
        "bs=64K",
        "count=100",
    ]);
    dd.limits.file_size_bytes = MIB;
    let out = run_spec(sandbox.as_ref(), dd).await;
    assert_eq!(out.exit.signal, Some(libc::SIGXFSZ), "{}", describe(&out));
    let size = sandbox
        .read_file(&path("big"), 2 * MIB)
        .await
        .unwrap()
        .len();
    assert_eq!(size as u64, MIB);
}

#[tokio::test]
async fn hostile_file_size_limit_error() {
    let host = Host::with(UIDS, small()).await;
    let sandbox = host.sandbox().await;
    // Python ignores SIGXFSZ, so it sees the error instead.
    let mut write = spec(&[
        PYTHON,
        "-c",
        &format!("{ATTEMPT}attempt('write', lambda: open('big', 'wb').write(b'x' * (2 << 20)))"),
    ]);
    write.limits.file_size_bytes = MIB;
    let out = run_spec(sandbox.as_ref(), write).await;
    assert_eq!(text(&out.stdout), "write EFBIG\n", "{}", describe(&out));
    let size = sandbox
        .read_file(&path("big"), 4 * MIB)
        .await
        .unwrap()
        .len();
    assert!(size as u64 <= MIB);
}

#[tokio::test]
async fn hostile_open_file_limit() {
    let host = Host::with(UIDS, small()).await;
    let sandbox = host.sandbox().await;
    let mut hog = spec(&[
        PYTHON,
        "-c",
        "\
import errno
files = []
try:
    while True:
        files.append(open('/dev/null'))
except OSError as e:
    print(len(files), errno.errorcode[e.errno])
",
    ]);
    hog.limits.open_files = 64;
    let out = run_spec(sandbox.as_ref(), hog).await;
    let stdout = text(&out.stdout);
    let (count, errno) = stdout.trim().split_once(' ').unwrap();
    assert_eq!(errno, "EMFILE", "{}", describe(&out));
    assert!(count.parse::<u32>().unwrap() < 64);
    assert_usable(sandbox.as_ref()).await;
}

async fn flood(script: &str, stdio: StdioMode) -> Output {
    let host = Host::with(UIDS, small()).await;
    let sandbox = host.sandbox().await;
    let mut spec = spec(&["/bin/sh", "-c", script]);
    spec.limits.output_bytes = Some(64 << 10);
    spec.stdio = stdio;
    let out = run_spec(sandbox.as_ref(), spec).await;
    assert_eq!(out.exit.limit, Some(LimitKind::Output), "{:?}", out.exit);
    assert!(out.exit.output_truncated);
    assert_eq!(out.exit.signal, Some(9));
    assert_eq!(out.stdout.len() + out.stderr.len(), 64 << 10);
    assert_usable(sandbox.as_ref()).await;
    out
}

#[tokio::test]
async fn hostile_stdout_flood() {
    let out = flood("exec /usr/bin/yes", StdioMode::Pipes).await;
    assert_eq!(out.stdout.len(), 64 << 10);
    assert!(out.stdout.chunks(2).all(|c| c == b"y\n"));
}

#[tokio::test]
async fn hostile_stderr_flood() {
    let out = flood("exec /usr/bin/yes >&2", StdioMode::Pipes).await;
    assert_eq!(out.stderr.len(), 64 << 10);
    assert!(out.stdout.is_empty());
}

#[tokio::test]
async fn hostile_flood_on_both_streams() {
    flood(
        "/usr/bin/yes out & exec /usr/bin/yes err >&2",
        StdioMode::Pipes,
    )
    .await;
}

#[tokio::test]
async fn hostile_terminal_flood() {
    let out = flood("exec /usr/bin/yes", StdioMode::Pty { rows: 24, cols: 80 }).await;
    assert_eq!(out.stdout.len(), 64 << 10);
}

#[tokio::test]
async fn hostile_cpu_spin() {
    let host = Host::with(UIDS, small()).await;
    let sandbox = host.sandbox().await;
    let mut spin = spec(&[PYTHON, "-c", "while True: pass"]);
    spin.limits.cpu_ms = Some(1000);
    spin.limits.wall_ms = Some(10_000);
    let out = run_spec(sandbox.as_ref(), spin).await;
    assert_eq!(
        out.exit.limit,
        Some(LimitKind::CpuTime),
        "{}",
        describe(&out)
    );
    assert_eq!(out.exit.signal, Some(libc::SIGXCPU));
    // It really spun; rusage under load can read below the RLIMIT_CPU the kernel enforced.
    assert!(out.exit.cpu_ms >= 500, "{:?}", out.exit);
}

#[tokio::test]
async fn hostile_cpu_spin_ignoring_sigxcpu() {
    let host = Host::with(UIDS, small()).await;
    let sandbox = host.sandbox().await;
    let mut spin = spec(&[
        PYTHON,
        "-c",
        "import signal\nsignal.signal(signal.SIGXCPU, signal.SIG_IGN)\nwhile True: pass",
    ]);
    spin.limits.cpu_ms = Some(1000);
    spin.limits.wall_ms = Some(10_000);
    let out = run_spec(sandbox.as_ref(), spin).await;
    assert_eq!(
        out.exit.limit,
        Some(LimitKind::CpuTime),
        "{}",
        describe(&out)
    );
    assert_eq!(out.exit.signal, Some(9));
}

#[tokio::test]
async fn hostile_sleep_past_wall_time() {
    let host = Host::with(UIDS, small()).await;
    let sandbox = host.sandbox().await;
    let m = marker(0);
    let mut sleep = spec(&["/bin/sh", "-c", &format!("trap '' TERM HUP INT; sleep {m}")]);
    sleep.limits.wall_ms = Some(500);
    let out = run_spec(sandbox.as_ref(), sleep).await;
    assert_eq!(
        out.exit.limit,
        Some(LimitKind::WallTime),
        "{}",
        describe(&out)
    );
    assert_eq!(out.exit.signal, Some(9));
    assert!(out.exit.wall_ms >= 500, "{:?}", out.exit);
    // The whole process group died, the `sleep` child included.
    eventually("the shell's child dies", || {
        host_pids_with_arg(&m).is_empty()
    })
    .await;
}

/// An unread process must not stall the rest of the sandbox's connection (per-process flow
/// control: the agent stops reading a process a window ahead of its reader).
#[tokio::test]
async fn hostile_unread_flood_does_not_stall_the_sandbox() {
    let host = Host::with(UIDS, small()).await;
    let sandbox = host.sandbox().await;
    let mut flood = spec(&["/usr/bin/yes"]);
    flood.limits.output_bytes = None;
    flood.limits.wall_ms = None;
    let mut unread = sandbox.spawn(flood).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    within(
        PROMPTLY,
        "write_file beside an unread flood",
        sandbox.write_file(&path("f"), b"x".to_vec(), 0o644),
    )
    .await
    .unwrap();
    let beside = within(
        PROMPTLY,
        "another process beside an unread flood",
        run(sandbox.as_ref(), &["/bin/echo", "beside"]),
    )
    .await;
    assert_eq!(beside.stdout, b"beside\n");
    // The stalled process resumes once read: far more than one window comes through.
    let mut got = 0usize;
    while got < 8 * sandpit_sandbox::OUTPUT_WINDOW as usize {
        match within(PROMPTLY, "the flood resumes", unread.next_event()).await {
            Some(ProcessEvent::Output(_, bytes)) => got += bytes.len(),
            other => panic!("the flood ended early: {other:?}"),
        }
    }
    within(PROMPTLY, "reset beside an unread flood", sandbox.reset())
        .await
        .unwrap();
}

// ---------------------------------------------------------------------------------------------
// Network

#[tokio::test]
async fn hostile_connect_to_host_loopback() {
    let host = Host::with(UIDS, small()).await;
    let sandbox = host.sandbox().await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    // The listener works from the host.
    drop(std::net::TcpStream::connect(("127.0.0.1", port)).unwrap());
    assert!(listener.accept().is_ok());
    let probe = format!(
        "{ATTEMPT}\
def connect(addr):
    s = socket.socket(socket.AF_INET6 if ':' in addr[0] else socket.AF_INET)
    s.settimeout(3)
    s.connect(addr)
attempt('v4', lambda: connect(('127.0.0.1', {port})))
attempt('v6', lambda: connect(('::1', {port})))
attempt('other', lambda: connect(('127.0.0.2', {port})))
"
    );
    let got = outcomes(&py_ok(sandbox.as_ref(), &probe).await);
    assert_eq!(got["v4"], "ECONNREFUSED", "{got:?}");
    assert_ne!(got["v6"], "OK", "{got:?}");
    assert_eq!(got["other"], "ECONNREFUSED", "{got:?}");
    let err = listener.accept().err().unwrap();
    assert_eq!(
        err.kind(),
        std::io::ErrorKind::WouldBlock,
        "a sandbox connected"
    );
}

#[tokio::test]
async fn hostile_connect_to_the_internet() {
    let host = Host::with(UIDS, small()).await;
    let sandbox = host.sandbox().await;
    let probe = format!(
        "{ATTEMPT}\
def connect(family, kind, addr):
    s = socket.socket(family, kind)
    s.settimeout(3)
    s.connect(addr)
    s.send(b'x')
attempt('tcp', lambda: connect(socket.AF_INET, socket.SOCK_STREAM, ('1.1.1.1', 53)))
attempt('udp', lambda: connect(socket.AF_INET, socket.SOCK_DGRAM, ('8.8.8.8', 53)))
attempt('tcp6', lambda: connect(socket.AF_INET6, socket.SOCK_STREAM, ('2606:4700:4700::1111', 53)))
"
    );
    let got = outcomes(&py_ok(sandbox.as_ref(), &probe).await);
    assert_eq!(got["tcp"], "ENETUNREACH", "{got:?}");
    assert_eq!(got["udp"], "ENETUNREACH", "{got:?}");
    assert_ne!(got["tcp6"], "OK", "{got:?}");
    // Only loopback exists.
    let links = sh_ok(sandbox.as_ref(), "ls /proc/sys/net/ipv4/conf").await;
    assert_eq!(
        links.split_whitespace().collect::<BTreeSet<_>>(),
        BTreeSet::from(["all", "default", "lo"])
    );
}

#[tokio::test]
async fn hostile_dns_lookup() {
    let host = Host::with(UIDS, small()).await;
    let sandbox = host.sandbox().await;
    let probe = "\
import socket
for name in ['example.com', 'localhost']:
    try:
        print(name, socket.getaddrinfo(name, 80)[0][4][0])
    except socket.gaierror as e:
        print(name, 'gaierror')
";
    let got = outcomes(&py_ok(sandbox.as_ref(), probe).await);
    assert_eq!(got["example.com"], "gaierror", "{got:?}");
    // Name service itself works; there is just nothing to ask.
    assert!(
        got["localhost"] == "127.0.0.1" || got["localhost"] == "::1",
        "{got:?}"
    );
}

#[tokio::test]
async fn hostile_connect_to_host_abstract_socket() {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
    let host = Host::with(UIDS, small()).await;
    let sandbox = host.sandbox().await;
    let name = format!("sandpit-hostile-{}", std::process::id());
    let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let listener = UnixListener::bind_addr(&addr).unwrap();
    listener.set_nonblocking(true).unwrap();
    drop(UnixStream::connect_addr(&addr).unwrap());
    assert!(listener.accept().is_ok());
    let probe = format!(
        "{ATTEMPT}\
def connect():
    s = socket.socket(socket.AF_UNIX)
    s.connect('\\0{name}')
attempt('abstract', connect)
"
    );
    let got = outcomes(&py_ok(sandbox.as_ref(), &probe).await);
    assert_eq!(got["abstract"], "ECONNREFUSED", "{got:?}");
    assert!(
        listener.accept().is_err(),
        "a sandbox reached the host's socket"
    );
}

// ---------------------------------------------------------------------------------------------
// Seeing the host and other sandboxes

#[tokio::test]
async fn hostile_read_host_secret_files() {
    let host = Host::with(UIDS, small()).await;
    let sandbox = host.sandbox().await;
    let name = format!("secret-{}", std::process::id());
    let in_tmp = tempfile::tempdir().unwrap();
    let in_target = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    for dir in [in_tmp.path(), in_target.path()] {
        std::fs::write(dir.join(&name), "TOPSECRET").unwrap();
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(dir.join(&name), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    sandbox
        .write_file(&path(&format!("own-{name}")), b"mine".to_vec(), 0o644)
        .await
        .unwrap();
    let found = sh_ok(
        sandbox.as_ref(),
        &format!("find / -path /proc -prune -o -name '*{name}' -print 2>/dev/null; true"),
    )
    .await;
    assert_eq!(found, format!("/workspace/own-{name}\n"));
    for dir in [in_tmp.path(), in_target.path()] {
        let file = dir.join(&name);
        let out = sh(sandbox.as_ref(), &format!("cat {}", file.display())).await;
        assert_ne!(out.exit.code, Some(0), "{}", describe(&out));
        assert!(!text(&out.stdout).contains("TOPSECRET"));
    }
    let absent = [
        "/etc/shadow",
        "/etc/gshadow",
        "/etc/ssh",
        "/etc/sudoers",
        "/root",
        "/home",
        "/work",
        "/var",
        "/srv",
        "/mnt",
        "/boot",
        "/run",
        "/sys",
        AGENT,
    ];
    let script: String = absent
        .iter()
        .map(|p| format!("test -e {p} && echo present {p}; "))
        .collect();
    assert_eq!(sh_ok(sandbox.as_ref(), &format!("{script} true")).await, "");
    // /etc holds what programs need and the sandbox's own identity, not the host's.
    let passwd = sh_ok(sandbox.as_ref(), "cat /etc/passwd").await;
    assert_ne!(passwd, std::fs::read_to_string("/etc/passwd").unwrap());
    let uid = sandbox_uid(sandbox.as_ref()).await;
    assert!(
        passwd.contains(&format!("sandbox:x:{uid}:{uid}")),
        "{passwd}"
    );
    assert_eq!(sh_ok(sandbox.as_ref(), "id -un").await, "sandbox\n");
}

#[tokio::test]
async fn hostile_proc_shows_only_the_sandbox() {
    let host = Host::with(UIDS, small()).await;
    let sandbox = host.sandbox().await;
    let probe = "\
import os
for pid in sorted(int(p) for p in os.listdir('/proc') if p.isdigit()):
    try:
        cmd = open(f'/proc/{pid}/cmdline', 'rb').read()
    except OSError as e:
        cmd = repr(e).encode()
    print(pid, cmd.replace(b'\\0', b' ').replace(b'\\n', b' ').decode().strip())
";
    let out = py_ok(sandbox.as_ref(), probe).await;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    // PID 1 is the sandbox's agent, not the host's init.
    assert_eq!(lines[0], format!("1 {AGENT} agent"));
    let host_init = std::fs::read("/proc/1/cmdline").unwrap();
    assert!(!text(&host_init).starts_with(AGENT));
    assert!(lines[1].contains(PYTHON), "{out}");
    // Host processes cannot be addressed by their host pid either.
    let own = std::process::id();
    let out = sh(
        sandbox.as_ref(),
        &format!("kill -0 {own} || test -e /proc/{own}/cmdline"),
    )
    .await;
    assert_ne!(out.exit.code, Some(0), "{}", describe(&out));
}

#[tokio::test]
async fn hostile_read_agent_environment_and_memory() {
    let host = Host::with(UIDS, small()).await;
    let sandbox = host.sandbox().await;
    let probe = format!(
        "{ATTEMPT}\
attempt('environ', lambda: print('content', repr(open('/proc/1/environ', 'rb').read())))
attempt('mem', lambda: open('/proc/1/mem', 'rb').read(1))
attempt('fd', lambda: os.listdir('/proc/1/fd'))
attempt('root', lambda: os.listdir('/proc/1/root'))
attempt('exe', lambda: os.readlink('/proc/1/exe'))
attempt('sysrq', lambda: open('/proc/sysrq-trigger', 'w'))
attempt('kcore', lambda: open('/proc/kcore', 'rb').read(1))
"
    );
    let out = py_ok(sandbox.as_ref(), &probe).await;
    let got = outcomes(&out);
    assert!(
        got["environ"] == "EACCES" || got["environ"] == "OK",
        "{out}"
    );
    for key in ["mem", "fd", "root", "exe"] {
        assert_eq!(got[key], "EACCES", "{key}: {out}");
    }
    // Absent when the kernel lacks them (as here); root's alone when present.
    for key in ["sysrq", "kcore"] {
        assert!(got[key] == "EACCES" || got[key] == "ENOENT", "{key}: {out}");
    }
    // Whatever PID 1's environment shows, it holds nothing of the host's.
    for (key, value) in std::env::vars() {
        assert!(!out.contains(&format!("{key}=")), "{key} visible: {out}");
        if value.len() >= 8 {
            assert!(!out.contains(&value), "value of {key} visible: {out}");
        }
    }
}

#[tokio::test]
async fn hostile_find_another_sandboxes_files() {
    let host = Host::with(UIDS, small()).await;
    let a = host.sandbox().await;
    let b = host.sandbox().await;
    let tag = std::process::id();
    a.write_file(&path(&format!("marker-a-{tag}")), b"a".to_vec(), 0o644)
        .await
        .unwrap();
    sh_ok(
        a.as_ref(),
        &format!("echo a > /tmp/marker-a-{tag}; echo a > /dev/shm/marker-a-{tag}"),
    )
    .await;
    b.write_file(&path(&format!("marker-b-{tag}")), b"b".to_vec(), 0o644)
        .await
        .unwrap();
    // A walk of the whole tree (/usr included) takes seconds on a loaded 2-core machine.
    let mut find = spec(&[
        "/bin/sh",
        "-c",
        &format!("find / -path /proc -prune -o -name 'marker-*-{tag}' -print 2>/dev/null; true"),
    ]);
    find.limits.wall_ms = Some(25_000);
    let found = run_spec(b.as_ref(), find).await;
    assert_eq!(found.exit.code, Some(0), "{}", describe(&found));
    assert_eq!(text(&found.stdout), format!("/workspace/marker-b-{tag}\n"));
    // Nor through the server's file requests.
    let err = b
        .read_file(&path(&format!("marker-a-{tag}")), 10)
        .await
        .err()
        .unwrap();
    assert!(matches!(err, SandboxError::File(FileError::NotFound)));
}

#[tokio::test]
async fn hostile_sysv_ipc_between_sandboxes() {
    let host = Host::with(UIDS, small()).await;
    let a = host.sandbox().await;
    let b = host.sandbox().await;
    let made = sh_ok(
        a.as_ref(),
        "ipcmk -M 4096 >/dev/null && ipcmk -Q >/dev/null && ipcmk -S 1 >/dev/null && ipcs | grep -c '^0x'",
    )
    .await;
    assert_eq!(made, "3\n");
    assert_eq!(
        sh_ok(b.as_ref(), "ipcs | grep -c '^0x' || true").await,
        "0\n"
    );
    // Nor on the host.
    let host_ipcs = Command::new("ipcs").output().unwrap();
    assert!(
        !UIDS
            .clone()
            .any(|uid| text(&host_ipcs.stdout).contains(&format!(" {uid} "))),
        "{}",
        text(&host_ipcs.stdout)
    );
}

// ---------------------------------------------------------------------------------------------
// Writing outside the sandbox

#[tokio::test]
async fn hostile_write_outside_the_workspace() {
    let host = Host::with(UIDS, small()).await;
    let sandbox = host.sandbox().await;
    let tag = std::process::id();
    // Written back unchanged, so even a defect would not alter the host.
    let burst = std::fs::read_to_string("/proc/sys/kernel/printk_ratelimit_burst").unwrap();
    let burst = burst.trim();
    let probe = format!(
        "{ATTEMPT}\
attempt('root', lambda: open('/evil-{tag}', 'w'))
attempt('usr', lambda: open('/usr/evil-{tag}', 'w'))
attempt('usr_bin', lambda: open('/usr/bin/evil-{tag}', 'w'))
attempt('etc', lambda: open('/etc/evil-{tag}', 'w'))
attempt('opt', lambda: os.mkdir('/opt/evil-{tag}'))
attempt('mkdir_root', lambda: os.mkdir('/evil-{tag}'))
attempt('passwd', lambda: open('/etc/passwd', 'a'))
attempt('python', lambda: open('{PYTHON}', 'r+b'))
attempt('dev', lambda: open('/dev/evil-{tag}', 'w'))
attempt('sysctl', lambda: write_now('/proc/sys/kernel/printk_ratelimit_burst', b'{burst}'))
attempt('core_pattern', lambda: open('/proc/sys/kernel/core_pattern', 'w'))
attempt('workspace', lambda: open('/workspace/fine', 'w'))
attempt('tmp', lambda: open('/tmp/fine', 'w'))
"
    );
    let out = py_ok(sandbox.as_ref(), &probe).await;
    let got = outcomes(&out);
    // Creating anything on the root is refused by the read-only mount itself, before
    // permissions are even considered.
    for key in ["root", "usr", "usr_bin", "etc", "opt", "mkdir_root"] {
        assert_eq!(got[key], "EROFS", "{key}: {out}");
    }
    for key in ["passwd", "python", "dev", "sysctl", "core_pattern"] {
        assert!(got[key] == "EROFS" || got[key] == "EACCES", "{key}: {out}");
    }
    assert_eq!(got["workspace"], "OK");
    assert_eq!(got["tmp"], "OK");
    // /proc/sys is mounted read-only.
    let mounts = sh_ok(sandbox.as_ref(), "grep ' /proc/sys ' /proc/self/mountinfo").await;
    assert!(mounts.contains(" ro,"), "{mounts}");
    for p in [
        format!("/evil-{tag}"),
        format!("/usr/evil-{tag}"),
        format!("/usr/bin/evil-{tag}"),
        format!("/etc/evil-{tag}"),
        format!("/opt/evil-{tag}"),
    ] {
        assert!(!Path::new(&p).exists(), "{p} appeared on the host");
    }
}

#[tokio::test]
async fn hostile_symlinks_to_host_files() {
    let host = Host::with(UIDS, small()).await;
    let sandbox = host.sandbox().await;
    let sb = sandbox.as_ref();
    let tag = std::process::id();
    let host_passwd = std::fs::read("/etc/passwd").unwrap();
    let inside_passwd = sh_ok(sb, "cat /etc/passwd").await;
    sh_ok(
        sb,
        "ln -s /etc/passwd link && ln -s / root && ln -s /etc etcdir && ln -s /proc/1/fd/0 fd0 \
         && ln -s /proc/1/root agentroot && ln -s /workspace/ws loop",
    )
    .await;
    // A hard link to the root's files cannot even be made.
    let out = sh(sb, "ln /etc/passwd hard").await;
    assert_ne!(out.exit.code, Some(0), "{}", describe(&out));

    let refused = |r: Result<(), SandboxError>, what: &str| match r {
        Err(SandboxError::File(FileError::Refused(_))) => {}
        other => panic!("{what}: {other:?}"),
    };
    let read = |p: &str| {
        let p = path(p);
        async move { sb.read_file(&p, 1 << 20).await.map(drop) }
    };
    let write = |p: &str| {
        let p = path(p);
        async move { sb.write_file(&p, b"pwned\n".to_vec(), 0o644).await }
    };
    for p in [
        "link",
        "etcdir/passwd",
        "fd0",
        "agentroot/etc/passwd",
        "root/etc/passwd",
    ] {
        refused(within(PROMPTLY, p, read(p)).await, &format!("read {p}"));
    }
    for p in [
        "link",
        &format!("root/evil-{tag}"),
        "etcdir/passwd",
        "fd0",
        &format!("agentroot/tmp/evil-{tag}"),
        "loop/x",
    ] {
        refused(within(PROMPTLY, p, write(p)).await, &format!("write {p}"));
    }
    refused(
        sb.list(Some(&path("root"))).await.map(drop),
        "list through a link",
    );
    refused(sb.mkdir(&path("root/evil")).await, "mkdir through a link");
    refused(
        sb.remove(&path("etcdir/passwd")).await,
        "remove through a link",
    );
    // Nothing changed, neither on the host nor in the sandbox's own root.
    assert_eq!(std::fs::read("/etc/passwd").unwrap(), host_passwd);
    assert!(!Path::new(&format!("/evil-{tag}")).exists());
    assert_eq!(sh_ok(sb, "cat /etc/passwd").await, inside_passwd);
    // The links themselves are listed as links, and the agent still answers.
    let listed = sb.list(None).await.unwrap();
    assert!(listed.iter().any(|e| e.name == "link"));
    assert_usable(sb).await;
}

#[tokio::test]
async fn hostile_fifo_in_the_workspace() {
    let host = Host::with(UIDS, small()).await;
    let sandbox = host.sandbox().await;
    let sb = sandbox.as_ref();
    sh_ok(sb, "mkfifo fifo && mkfifo read-end").await;
    // Someone holds the read end open, so a write would succeed if it were attempted.
    let holder = sb
        .spawn(spec(&["/bin/sh", "-c", "exec sleep 100 < read-end"]))
        .await
        .unwrap();
    let read = within(
        PROMPTLY,
        "read_file on a fifo",
        sb.read_file(&path("fifo"), 100),
    )
    .await;
    assert!(
        matches!(read, Err(SandboxError::File(FileError::Refused(_)))),
        "{read:?}"
    );
    let write = within(
        PROMPTLY,
        "write_file on a fifo",
        sb.write_file(&path("fifo"), b"x".to_vec(), 0o644),
    )
    .await;
    assert!(
        matches!(write, Err(SandboxError::File(FileError::Refused(_)))),
        "{write:?}"
    );
    let write = within(
        PROMPTLY,
        "write_file on a fifo with a reader",
        sb.write_file(&path("read-end"), b"x".to_vec(), 0o644),
    )
    .await;
    assert!(
        matches!(write, Err(SandboxError::File(FileError::Refused(_)))),
        "{write:?}"
    );
    holder.signal(9).await.unwrap();
    within(PATIENCE, "reset", sb.reset()).await.unwrap();
    assert_usable(sb).await;
}

#[tokio::test]
async fn hostile_huge_directory_listing() {
    let host = Host::with(UIDS, small()).await;
    let sandbox = host
        .sandbox_with(SandboxLimits {
            memory_bytes: 512 * MIB,
            pids: 32,
            workspace_bytes: 256 * MIB,
            ..small()
        })
        .await;
    // About 70 MB of JSON, more than one protocol frame may carry (hard links are cheap).
    let script = "\
import os
os.mkdir('many')
open('f', 'w').close()
for i in range(250_000):
    os.link('f', f'many/{i:0250}')
";
    let mut make = spec(&[PYTHON, "-c", script]);
    make.limits.wall_ms = Some(PATIENCE.as_millis() as u64);
    make.limits.cpu_ms = None;
    let out = run_spec(sandbox.as_ref(), make).await;
    assert_eq!(out.exit.code, Some(0), "{}", describe(&out));
    let listed = within(PROMPTLY, "listing", sandbox.list(Some(&path("many")))).await;
    assert!(
        matches!(listed, Err(SandboxError::File(FileError::TooLarge(_)))),
        "{:?}",
        listed.map(|l| l.len())
    );
    assert_usable(sandbox.as_ref()).await;
}

// ---------------------------------------------------------------------------------------------
// Privileges

#[tokio::test]
async fn hostile_setuid_root_binary() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let source = dir.path().join("euid.c");
    std::fs::write(
        &source,
        "#include <stdio.h>\n#include <unistd.h>\n\
         int main(void) { printf(\"%d %d\\n\", getuid(), geteuid()); return 0; }\n",
    )
    .unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
    let exe = root.join("euid");
    let gcc = Command::new("/usr/bin/gcc")
        .args(["-static", "-o"])
        .arg(&exe)
        .arg(&source)
        .output()
        .unwrap();
    assert!(gcc.status.success(), "{}", text(&gcc.stderr));
    chown(&exe, Some(0), Some(0)).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o4755)).unwrap();
    // On the host, the bit works: the sandbox uid becomes root.
    let on_host = Command::new(&exe).uid(UID).gid(UID).output().unwrap();
    assert_eq!(text(&on_host.stdout), "61000 0\n");

    let host = Host::with(UIDS, small()).await;
    let sandbox = host
        .backend
        .create(&SandboxSpec {
            root: RootSpec::Directory { path: root },
            ..SandboxSpec::new(small())
        })
        .await
        .unwrap();
    let out = run(sandbox.as_ref(), &["/euid"]).await;
    let uid = out.stdout.split(|&b| b == b' ').next().unwrap().to_vec();
    let uid: u32 = text(&uid).parse().unwrap();
    assert!(UIDS.contains(&uid), "{}", describe(&out));
    assert_eq!(
        text(&out.stdout),
        format!("{uid} {uid}\n"),
        "{}",
        describe(&out)
    );
}

#[tokio::test]
async fn hostile_setuid_programs_of_the_host() {
    let host = Host::with(UIDS, small()).await;
    let sandbox = host.sandbox().await;
    // The host's set-uid programs are there but grant nothing.
    for program in ["/usr/bin/su", "/usr/bin/passwd", "/bin/mount"] {
        if Path::new(program).exists() {
            assert_eq!(
                std::fs::metadata(program).unwrap().permissions().mode() & 0o4000,
                0o4000,
                "{program} is not set-uid on the host"
            );
        }
    }
    let out = sh(sandbox.as_ref(), "/usr/bin/su -c 'id -u' root < /dev/null").await;
    assert_ne!(out.exit.code, Some(0), "{}", describe(&out));
    assert!(!text(&out.stdout).contains('0'));
    let out = sh(sandbox.as_ref(), "/usr/bin/passwd -S root < /dev/null").await;
    assert_ne!(out.exit.code, Some(0), "{}", describe(&out));
    let out = sh(sandbox.as_ref(), "sudo id").await;
    assert_ne!(out.exit.code, Some(0), "{}", describe(&out));
    let status = sh_ok(
        sandbox.as_ref(),
        "grep -E '^(Uid|Gid|CapEff|CapPrm|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status",
    )
    .await;
    let status: Vec<Vec<&str>> = status
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let uid = sandbox_uid(sandbox.as_ref()).await.to_string();
    let uid = uid.as_str();
    let expected = [
        vec!["Uid:", uid, uid, uid, uid],
        vec!["Gid:", uid, uid, uid, uid],
        vec!["CapPrm:", "0000000000000000"],
        vec!["CapEff:", "0000000000000000"],
        vec!["CapBnd:", "0000000000000000"],
        vec!["CapAmb:", "0000000000000000"],
        vec!["NoNewPrivs:", "1"],
        vec!["Seccomp:", "2"],
    ];
    assert_eq!(status, expected);
    // Every mount is nosuid, except the single device nodes bound into /dev (a device cannot
    // be executed, let alone set-uid).
    let mounts = sh_ok(sandbox.as_ref(), "cat /proc/self/mountinfo").await;
    for line in mounts.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let device_node = fields[4].starts_with("/dev/") && line.contains(" - devtmpfs ");
        assert!(
            fields[5].split(',').any(|o| o == "nosuid") || device_node,
            "{line}"
        );
    }
}

#[tokio::test]
async fn hostile_ptrace() {
    let host = Host::with(UIDS, small()).await;
    let sandbox = host.sandbox().await;
    let probe = "\
import ctypes, os, subprocess
libc = ctypes.CDLL(None, use_errno=True)
print('traceme', libc.ptrace(0, 0, 0, 0), ctypes.get_errno())
child = subprocess.Popen(['/bin/sleep', '10'])
print('attach', libc.ptrace(16, child.pid, 0, 0), ctypes.get_errno())
print('attach_agent', libc.ptrace(16, 1, 0, 0), ctypes.get_errno())
child.kill()
";
    let out = py_ok(sandbox.as_ref(), probe).await;
    let eperm = libc::EPERM.to_string();
    assert_eq!(
        out,
        format!("traceme -1 {eperm}\nattach -1 {eperm}\nattach_agent -1 {eperm}\n")
    );
}

#[tokio::test]
async fn hostile_mount() {
    let host = Host::with(UIDS, small()).await;
    let sandbox = host.sandbox().await;
    let out = sh(
        sandbox.as_ref(),
        "mkdir -p /tmp/x && mount -t tmpfs none /tmp/x",
    )
    .await;
    assert_ne!(out.exit.code, Some(0), "{}", describe(&out));
    let probe = "\
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
print(libc.mount(b'none', b'/tmp', b'tmpfs', 0, None), ctypes.get_errno())
print(libc.umount2(b'/workspace', 2), ctypes.get_errno())
print(libc.chroot(b'/tmp'), ctypes.get_errno())
";
    let eperm = libc::EPERM;
    assert_eq!(
        py_ok(sandbox.as_ref(), probe).await,
        format!("-1 {eperm}\n-1 {eperm}\n-1 {eperm}\n")
    );
    // The workspace is still the sandbox's own tmpfs.
    let mounts = sh_ok(
        sandbox.as_ref(),
        "grep -c ' /workspace ' /proc/self/mountinfo",
    )
    .await;
    assert_eq!(mounts, "1\n");
}

#[tokio::test]
async fn hostile_nested_namespaces() {
    let host = Host::with(UIDS, small()).await;
    let sandbox = host.sandbox().await;
    for flags in ["-U", "-n", "-m", "-p -f", "-Ur", "-i", "-u", "-C"] {
        let out = sh(sandbox.as_ref(), &format!("unshare {flags} true")).await;
        assert_ne!(
            out.exit.code,
            Some(0),
            "unshare {flags}: {}",
            describe(&out)
        );
    }
    let probe = "\
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
print(libc.unshare(0x10000000), ctypes.get_errno())
";
    assert_eq!(
        py_ok(sandbox.as_ref(), probe).await,
        format!("-1 {}\n", libc::EPERM)
    );
}

#[tokio::test]
async fn hostile_hostname_and_clock() {
    let host = Host::with(UIDS, small()).await;
    let sandbox = host.sandbox().await;
    let host_name = nix::unistd::gethostname().unwrap();
    let out = sh(sandbox.as_ref(), "hostname evil").await;
    assert_ne!(out.exit.code, Some(0), "{}", describe(&out));
    let out = sh(sandbox.as_ref(), "date -s '2001-01-01'").await;
    assert_ne!(out.exit.code, Some(0), "{}", describe(&out));
    assert_eq!(sh_ok(sandbox.as_ref(), "hostname").await, "sandpit\n");
    assert_eq!(nix::unistd::gethostname().unwrap(), host_name);
}

#[tokio::test]
async fn hostile_devices() {
    let host = Host::with(UIDS, small()).await;
    let sandbox = host.sandbox().await;
    let dev = sh_ok(sandbox.as_ref(), "ls /dev").await;
    let dev: BTreeSet<&str> = dev.split_whitespace().collect();
    let expected = BTreeSet::from([
        "fd", "full", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin", "stdout", "tty",
        "urandom", "zero",
    ]);
    assert_eq!(dev, expected);
    let probe = format!(
        "{ATTEMPT}\
attempt('mknod', lambda: os.mknod('/workspace/null', 0o600 | 0o20000, os.makedev(1, 3)))
attempt('kmsg', lambda: open('/dev/kmsg', 'rb'))
attempt('tty', lambda: open('/dev/tty', 'rb'))
"
    );
    let got = outcomes(&py_ok(sandbox.as_ref(), &probe).await);
    assert_eq!(got["mknod"], "EPERM", "{got:?}");
    assert_eq!(got["kmsg"], "ENOENT", "{got:?}");
    assert_eq!(got["tty"], "ENXIO", "{got:?}");
}

// ---------------------------------------------------------------------------------------------
// Signals and leftovers

#[tokio::test]
async fn hostile_kill_everything_inside() {
    let host = Host::with(UIDS, small()).await;
    let sandbox = host.sandbox().await;
    let other = host.sandbox().await;
    let mut bystander = Bystander::start(&marker(0), sandbox_uid(sandbox.as_ref()).await);
    let neighbour = other
        .spawn(spec(&["/bin/sleep", &marker(1)]))
        .await
        .unwrap();
    let sibling = sandbox
        .spawn(spec(&["/bin/sleep", &marker(2)]))
        .await
        .unwrap();
    let agents = host_pids_in_cgroup(sandbox.id());
    assert_eq!(agents.len(), 3);
    let out = sh(sandbox.as_ref(), "kill -9 -1; kill -9 1; echo $?").await;
    // The shell survives its own kill(-1); PID 1 refuses.
    assert_eq!(text(&out.stdout), "1\n", "{}", describe(&out));
    let sibling = within(PATIENCE, "the sibling", sibling.output(b""))
        .await
        .unwrap();
    assert_eq!(
        sibling.exit.signal,
        Some(9),
        "a process of the same box survived"
    );
    // Only the sandbox's own processes died.
    assert!(
        bystander.alive(),
        "a host process of the sandbox uid was killed"
    );
    assert_eq!(
        host_pids_with_arg(&marker(1)).len(),
        1,
        "another sandbox was hit"
    );
    for pid in host_pids_in_cgroup(sandbox.id()) {
        assert!(agents.contains(&pid));
    }
    assert_eq!(host_pids_in_cgroup(sandbox.id()).len(), 2);
    assert_usable(sandbox.as_ref()).await;
    assert_usable(other.as_ref()).await;
    neighbour.signal(9).await.unwrap();
}

#[tokio::test]
async fn hostile_setsid_daemon_is_killed_by_reset() {
    let host = Host::with(UIDS, small()).await;
    let sandbox = host.sandbox().await;
    let m = marker(0);
    let out = sh(
        sandbox.as_ref(),
        &format!("setsid /bin/sleep {m} </dev/null >/dev/null 2>&1 & echo started"),
    )
    .await;
    assert_eq!(out.exit.code, Some(0));
    eventually("the daemon runs", || host_pids_with_arg(&m).len() == 1).await;
    // It also escaped the wall-time limit of the run that started it.
    let mut short = spec(&[
        "/bin/sh",
        "-c",
        &format!("setsid /bin/sleep {} & sleep 100", marker(1)),
    ]);
    short.limits.wall_ms = Some(300);
    let out = run_spec(sandbox.as_ref(), short).await;
    assert_eq!(out.exit.limit, Some(LimitKind::WallTime));
    eventually("the second daemon runs", || {
        host_pids_with_arg(&marker(1)).len() == 1
    })
    .await;
    within(PATIENCE, "reset", sandbox.reset()).await.unwrap();
    assert!(host_pids_with_arg(&m).is_empty());
    assert!(host_pids_with_arg(&marker(1)).is_empty());
    assert_eq!(host_pids_in_cgroup(sandbox.id()).len(), 2);
}

#[tokio::test]
async fn hostile_double_fork_daemon_is_killed_by_destroy() {
    let host = Host::with(UIDS, small()).await;
    let sandbox = host.sandbox().await;
    let m = marker(0);
    let script = format!(
        "\
import os
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.closerange(0, 3)
        os.execv('/bin/sleep', ['sleep', '{m}'])
    os._exit(0)
os.wait()
print('parent done')
"
    );
    assert_eq!(py_ok(sandbox.as_ref(), &script).await, "parent done\n");
    eventually("the daemon runs", || host_pids_with_arg(&m).len() == 1).await;
    let daemon = host_pids_with_arg(&m)[0];
    within(PATIENCE, "destroy", sandbox.destroy())
        .await
        .unwrap();
    assert!(!is_alive(daemon));
    assert!(host_pids_in_cgroup(sandbox.id()).is_empty());
}

#[tokio::test]
async fn hostile_neighbour_does_not_disturb_another_sandbox() {
    let host = Host::with(UIDS, small()).await;
    let attacker = host.sandbox().await;
    let victim = host.sandbox().await;
    let mut bomb = spec(&[
        "/bin/bash",
        "-c",
        "(:(){ :|:& };:) 2>/dev/null; for i in $(seq 200); do kill -9 -1 2>/dev/null; done; \
         while :; do kill -9 -1 2>/dev/null; done",
    ]);
    bomb.limits.wall_ms = Some(1500);
    let count = "\
import time
for i in range(100):
    print(i, flush=True)
    time.sleep(0.005)
";
    let attack = attacker.spawn(bomb).await.unwrap();
    let work = victim.spawn(spec(&[PYTHON, "-c", count])).await.unwrap();
    let (attack, work) = within(PATIENCE, "both", async {
        tokio::join!(attack.output(b""), work.output(b""))
    })
    .await;
    let (_attack, work) = (attack.unwrap(), work.unwrap());
    let expected: String = (0..100).map(|i| format!("{i}\n")).collect();
    assert_eq!(text(&work.stdout), expected, "{}", describe(&work));
    assert_eq!(work.exit.code, Some(0));
    assert_eq!(work.exit.limit, None);
    assert_usable(victim.as_ref()).await;
    within(PATIENCE, "reset", attacker.reset()).await.unwrap();
    assert_usable(attacker.as_ref()).await;
}

/// Per-user kernel limits (here fs.inotify.max_user_instances) are not shared: every sandbox
/// runs as its own uid.
#[tokio::test]
async fn hostile_inotify_exhaustion_does_not_reach_another_sandbox() {
    let host = Host::with(UIDS, small()).await;
    let attacker = host.sandbox().await;
    let victim = host.sandbox().await;
    assert_ne!(
        sandbox_uid(attacker.as_ref()).await,
        sandbox_uid(victim.as_ref()).await
    );
    let hog = "\
import ctypes, time
libc = ctypes.CDLL(None, use_errno=True)
fds = []
while True:
    fd = libc.inotify_init1(0)
    if fd < 0:
        break
    fds.append(fd)
print(len(fds), ctypes.get_errno(), flush=True)
time.sleep(100)
";
    let mut hog_spec = spec(&[PYTHON, "-c", hog]);
    hog_spec.limits.open_files = 4096;
    let mut hog = attacker.spawn(hog_spec).await.unwrap();
    let first = within(PATIENCE, "the hog", hog.next_event()).await;
    assert!(matches!(first, Some(ProcessEvent::Output(..))), "{first:?}");
    let probe = "\
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
print(libc.inotify_init1(0) >= 0, ctypes.get_errno())
";
    let out = py_ok(victim.as_ref(), probe).await;
    assert!(
        out.starts_with("True"),
        "the neighbour's inotify was exhausted: {out}"
    );
    hog.signal(9).await.unwrap();
}

#[tokio::test]
async fn hostile_zombie_horde() {
    let host = Host::with(UIDS, small()).await;
    let sandbox = host.sandbox().await;
    // Twenty children that are never waited for, then the parent exits: they are PID 1's now.
    let script = "\
import os, time
for _ in range(20):
    if os.fork() == 0:
        os._exit(0)
time.sleep(0.2)
print(sum(1 for p in os.listdir('/proc') if p.isdigit()))
";
    let out = py_ok(sandbox.as_ref(), script).await;
    let seen: u32 = out.trim().parse().unwrap();
    assert!(
        seen >= 20,
        "the zombies were not there to begin with: {seen}"
    );
    // The agent reaps them; the box is back to its two agent processes and fully usable.
    eventually("the zombies are reaped", || {
        host_pids_in_cgroup(sandbox.id()).len() == 2
    })
    .await;
    let usage = sandbox.usage().await.unwrap();
    assert_eq!(usage.pids, 2, "{usage:?}");
    let mut many = spec(&[
        "/bin/sh",
        "-c",
        "for i in $(seq 25); do sleep 0.2 & done; wait; echo done",
    ]);
    many.limits.wall_ms = Some(10_000);
    let out = run_spec(sandbox.as_ref(), many).await;
    assert_eq!(text(&out.stdout), "done\n", "{}", describe(&out));
}

#[tokio::test]
async fn hostile_crash_dumps_nothing() {
    let host = Host::with(UIDS, small()).await;
    let sandbox = host.sandbox().await;
    assert_eq!(
        sh_ok(sandbox.as_ref(), "ulimit -c; ulimit -Hc").await,
        "0\n0\n"
    );
    let out = run(sandbox.as_ref(), &[PYTHON, "-c", "import os; os.abort()"]).await;
    assert_eq!(out.exit.signal, Some(libc::SIGABRT), "{}", describe(&out));
    assert_eq!(out.exit.limit, None);
    assert!(
        sandbox.list(None).await.unwrap().is_empty(),
        "a core file was written"
    );
}

// ---------------------------------------------------------------------------------------------
// What a process is given

#[tokio::test]
async fn hostile_argument_injection() {
    let host = Host::with(UIDS, small()).await;
    let sandbox = host.sandbox().await;
    sandbox
        .write_file(&path("canary"), b"alive".to_vec(), 0o644)
        .await
        .unwrap();
    let args = [
        "$(touch /workspace/pwned1)",
        "`touch /workspace/pwned2`",
        "; touch /workspace/pwned3",
        "| touch /workspace/pwned4",
        "&& touch /workspace/pwned5",
        "\ntouch /workspace/pwned6\n",
        "'; touch /workspace/pwned7; '",
        "\"; touch /workspace/pwned8; \"",
        "; rm -rf /workspace",
        "${IFS}touch${IFS}/workspace/pwned9",
    ];
    let mut argv = vec![
        PYTHON,
        "-c",
        "import sys, json; print(json.dumps(sys.argv[1:]))",
    ];
    argv.extend(args);
    let out = run(sandbox.as_ref(), &argv).await;
    let got: Vec<String> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got, args);
    // The same through /bin/echo (no interpreter of its own involved).
    let mut argv = vec!["/bin/echo"];
    argv.extend(args);
    let out = run(sandbox.as_ref(), &argv).await;
    assert_eq!(text(&out.stdout), format!("{}\n", args.join(" ")));
    // A program name with shell syntax is a missing program, not a command line.
    let err = sandbox
        .spawn(spec(&["/bin/true; touch /workspace/pwned10"]))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, SandboxError::Spawn(_)), "{err:?}");
    // Environment values are not interpreted either.
    let mut env = spec(&["/bin/sh", "-c", "echo \"$X\""]);
    env.env
        .insert("X".into(), "$(touch /workspace/pwned11)".into());
    env.env
        .insert("BASH_ENV".into(), "/workspace/pwned12".into());
    let out = run_spec(sandbox.as_ref(), env).await;
    assert_eq!(text(&out.stdout), "$(touch /workspace/pwned11)\n");
    let names: Vec<String> = sandbox
        .list(None)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, ["canary"]);
}

#[tokio::test]
async fn hostile_environment_leakage() {
    let host = Host::with(UIDS, small()).await;
    let sandbox = host.sandbox().await;
    // Everything any process inside can see of any environment.
    let dump = "\
import os, sys
for pid in os.listdir('/proc'):
    if pid.isdigit():
        try:
            sys.stdout.write(open(f'/proc/{pid}/environ').read().replace('\\0', '\\n'))
        except OSError:
            pass
sys.stdout.write('\\n'.join(f'{k}={v}' for k, v in os.environ.items()))
";
    let inside = py_ok(sandbox.as_ref(), dump).await;
    assert!(
        inside.contains("PATH=/usr/local/bin:/usr/bin:/bin"),
        "{inside}"
    );
    let ours: Vec<(String, String)> = std::env::vars().collect();
    // The test runner always sets some of these.
    assert!(
        ours.iter()
            .any(|(k, _)| k.starts_with("CARGO") || k.starts_with("NEXTEST") || k == "HOME")
    );
    let allowed = sandpit_sandbox::spec::default_env();
    for (key, value) in ours {
        if allowed.contains_key(&key) {
            // Present inside, but with the sandbox's value only.
            let inside_values: BTreeSet<&str> = inside
                .lines()
                .filter_map(|l| l.strip_prefix(&format!("{key}=")))
                .collect();
            assert_eq!(inside_values, BTreeSet::from([allowed[&key].as_str()]));
            continue;
        }
        assert!(
            !inside.lines().any(|l| l.starts_with(&format!("{key}="))),
            "{key} leaked: {inside}"
        );
        if value.len() >= 8 && !allowed.values().any(|v| v.contains(&value)) {
            assert!(!inside.contains(&value), "the value of {key} leaked");
        }
    }
}

#[tokio::test]
async fn hostile_inherited_file_descriptors() {
    let host = Host::with(UIDS, small()).await;
    let sandbox = host.sandbox().await;
    // Other processes with pipes and a terminal are open in the box at the same time.
    let _pipes = sandbox.spawn(spec(&["/bin/sleep", "100"])).await.unwrap();
    let mut tty = spec(&["/bin/sleep", "100"]);
    tty.stdio = StdioMode::Pty { rows: 24, cols: 80 };
    let _tty = sandbox.spawn(tty).await.unwrap();
    let probe = "\
import os
for fd in sorted(int(f) for f in os.listdir('/proc/self/fd')):
    try:
        print(fd, os.readlink(f'/proc/self/fd/{fd}'))
    except OSError:
        print(fd, 'closed')
";
    for stdio in [
        StdioMode::Pipes,
        StdioMode::Merged,
        StdioMode::Pty { rows: 24, cols: 80 },
    ] {
        let mut probe_spec = spec(&[PYTHON, "-c", probe]);
        probe_spec.stdio = stdio;
        let out = run_spec(sandbox.as_ref(), probe_spec).await;
        let stdout = text(&out.stdout);
        let fds: Vec<&str> = stdout.lines().collect();
        // 0, 1, 2 and the directory listing itself (closed by the time it is read back).
        assert_eq!(fds.len(), 4, "{stdout}");
        for (i, line) in fds[..3].iter().enumerate() {
            let target = line.split_once(' ').unwrap().1.trim();
            match stdio {
                StdioMode::Pipes | StdioMode::Merged => {
                    assert!(target.starts_with("pipe:"), "{stdout}")
                }
                StdioMode::Pty { .. } => {
                    assert!(target.starts_with("/dev/pts/"), "fd {i}: {stdout}")
                }
            }
        }
        assert!(fds[3].starts_with("3 "), "{stdout}");
        assert!(!stdout.contains("socket:"), "{stdout}");
        // Merged: stdout and stderr are one pipe; with pipes, three different ones.
        let pipe_of = |fd: usize| fds[fd].split_once(' ').unwrap().1.trim();
        assert_eq!(
            pipe_of(1) == pipe_of(2),
            matches!(stdio, StdioMode::Merged | StdioMode::Pty { .. }),
            "{stdout}"
        );
    }
}

#[tokio::test]
async fn hostile_terminal_injection() {
    let host = Host::with(UIDS, small()).await;
    let sandbox = host.sandbox().await;
    let probe = "\
import fcntl, termios, errno
try:
    fcntl.ioctl(0, termios.TIOCSTI, b'x')
    print('injected')
except OSError as e:
    print(errno.errorcode[e.errno])
";
    let mut tty = spec(&[PYTHON, "-c", probe]);
    tty.stdio = StdioMode::Pty { rows: 24, cols: 80 };
    let out = run_spec(sandbox.as_ref(), tty).await;
    assert_eq!(text(&out.stdout).trim(), "EPERM", "{}", describe(&out));
}

#[tokio::test]
async fn hostile_cgroup_and_kernel_files() {
    let host = Host::with(UIDS, small()).await;
    let sandbox = host.sandbox().await;
    let probe = format!(
        "{ATTEMPT}\
attempt('cgroupfs', lambda: os.listdir('/sys/fs/cgroup'))
attempt('modules', lambda: open('/proc/sys/kernel/modprobe', 'w'))
attempt('oom_adj', lambda: write_now('/proc/1/oom_score_adj', b'1000'))
attempt('self_oom', lambda: write_now('/proc/self/oom_score_adj', b'-1000'))
attempt('self_oom_up', lambda: write_now('/proc/self/oom_score_adj', b'500'))
"
    );
    let got = outcomes(&py_ok(sandbox.as_ref(), &probe).await);
    assert_eq!(got["cgroupfs"], "ENOENT", "{got:?}");
    assert_ne!(got["modules"], "OK", "{got:?}");
    assert_ne!(got["oom_adj"], "OK", "{got:?}");
    // Lowering one's own OOM score needs CAP_SYS_RESOURCE.
    assert_eq!(got["self_oom"], "EACCES", "{got:?}");
    // Raising it is allowed (and harmless).
    assert_eq!(got["self_oom_up"], "OK", "{got:?}");
}

// ---------------------------------------------------------------------------------------------
// Keep the helpers honest: the scans the cases rely on do find what they look for.

#[tokio::test]
async fn hostile_scans_see_a_sandboxed_sleeper() {
    let host = Host::with(UIDS, small()).await;
    let sandbox = host.sandbox().await;
    let m = marker(7);
    let sleeper = sandbox.spawn(spec(&["/bin/sleep", &m])).await.unwrap();
    assert_eq!(host_pids_with_arg(&m).len(), 1);
    let pid = host_pids_with_arg(&m)[0];
    assert!(host_pids_in_cgroup(sandbox.id()).contains(&pid));
    sleeper.signal(9).await.unwrap();
    within(PATIENCE, "sleeper", sleeper.output(b""))
        .await
        .unwrap();
    assert!(host_pids_with_arg(&m).is_empty());
}
