#![expect(clippy::unwrap_used, reason = "tests")]
//! The seccomp filter against real processes. Every refusal is checked twice: under the filter
//! (refused) and without it (the syscall gets past seccomp and the kernel answers something
//! else), so a filter that lets the syscall through fails the test.

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use sandpit_sandbox::seccomp::SyscallFilter;

const EPERM: i32 = libc::EPERM;
const ENOSYS: i32 = libc::ENOSYS;

/// Runs `program` with stdin from /dev/null, the filter installed in the child when given.
#[expect(
    unsafe_code,
    reason = "pre_exec runs the async-signal-safe SyscallFilter::install between fork and exec"
)]
fn run(program: &Path, args: &[&str], filter: Option<&Arc<SyscallFilter>>) -> Output {
    let mut command = Command::new(program);
    command.args(args).stdin(Stdio::null());
    if let Some(filter) = filter {
        let filter = Arc::clone(filter);
        // SAFETY: install only calls prctl and seccomp on a program built before the fork.
        unsafe {
            command.pre_exec(move || filter.install());
        }
    }
    command.output().unwrap()
}

fn filter() -> Arc<SyscallFilter> {
    Arc::new(SyscallFilter::new().unwrap())
}

/// The probe program (tests/probes/syscalls.c) compiled into a temporary directory.
struct Probe {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Probe {
    fn compile() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("syscalls");
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/probes/syscalls.c");
        let gcc = Command::new("gcc")
            .args(["-O1", "-Wall", "-Werror", "-o"])
            .arg(&path)
            .arg(&source)
            .output()
            .unwrap();
        assert!(
            gcc.status.success(),
            "gcc failed: {}",
            String::from_utf8_lossy(&gcc.stderr)
        );
        Self { _dir: dir, path }
    }

    /// The probe's result: 0 if the syscall succeeded, else its errno. Panics if the probe died.
    fn errno(&self, args: &[&str], filter: Option<&Arc<SyscallFilter>>) -> i32 {
        let output = run(&self.path, args, filter);
        output.status.code().unwrap_or_else(|| {
            panic!(
                "probe {args:?} was killed: {:?}\n{}",
                output.status,
                String::from_utf8_lossy(&output.stdout)
            )
        })
    }

    /// Asserts the probe gets `expected` under the filter and something else without it.
    fn assert_refused(&self, args: &[&str], expected: i32, filter: &Arc<SyscallFilter>) {
        let filtered = self.errno(args, Some(filter));
        assert_eq!(filtered, expected, "{args:?} under the filter");
        let unfiltered = self.errno(args, None);
        assert_ne!(
            unfiltered, expected,
            "{args:?} without the filter: the control case must differ"
        );
    }
}

#[test]
fn ordinary_programs_run() {
    let filter = filter();
    let output = run(Path::new("/bin/true"), &[], Some(&filter));
    assert!(output.status.success(), "{output:?}");

    let script = "import threading, subprocess\n\
                  results = []\n\
                  threads = [threading.Thread(target=lambda: results.append(1)) for _ in range(4)]\n\
                  [t.start() for t in threads]\n\
                  [t.join() for t in threads]\n\
                  assert len(results) == 4\n\
                  out = subprocess.run(['/bin/echo', 'child'], capture_output=True, check=True)\n\
                  assert out.stdout == b'child\\n'\n\
                  import os, socket\n\
                  r, w = os.pipe()\n\
                  a, b = socket.socketpair()\n\
                  a.sendall(b'x'); assert b.recv(1) == b'x'\n\
                  print('ok')";
    let output = run(
        Path::new("/usr/bin/python3"),
        &["-c", script],
        Some(&filter),
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.stdout, b"ok\n");
}

#[test]
fn one_filter_installs_in_many_children() {
    let filter = filter();
    for _ in 0..100 {
        let output = run(Path::new("/bin/true"), &[], Some(&filter));
        assert!(output.status.success(), "{output:?}");
    }
}

#[test]
fn unshare_command_is_refused() {
    let filter = filter();
    for namespace in ["--user", "--mount", "--net"] {
        let args = [namespace, "true"];
        let unshare = Path::new("/usr/bin/unshare");
        let filtered = run(unshare, &args, Some(&filter));
        assert!(
            !filtered.status.success(),
            "unshare {namespace} under the filter"
        );
        let unfiltered = run(unshare, &args, None);
        assert!(
            unfiltered.status.success(),
            "unshare {namespace} without the filter: {}",
            String::from_utf8_lossy(&unfiltered.stderr)
        );
    }
}

#[test]
fn mounts_and_namespaces_are_refused() {
    let probe = Probe::compile();
    let filter = filter();
    for name in ["mount", "umount2", "chroot", "open_tree_attr", "setns"] {
        probe.assert_refused(&[name], EPERM, &filter);
    }
    probe.assert_refused(&["unshare", "10000000"], EPERM, &filter);
}

#[test]
fn clone_with_namespace_flags_is_refused() {
    let probe = Probe::compile();
    let filter = filter();
    // NEWUSER, NEWNS, NEWPID, NEWNET, NEWIPC, NEWUTS, NEWCGROUP, and NEWUSER hidden behind a
    // high bit the kernel ignores.
    for flags in [
        "10000000",
        "20000",
        "20000000",
        "40000000",
        "8000000",
        "4000000",
        "2000000",
        "110000000",
    ] {
        probe.assert_refused(&["clone", flags], EPERM, &filter);
    }
    // A plain fork-style clone still works.
    assert_eq!(probe.errno(&["clone", "0"], Some(&filter)), 0);
    probe.assert_refused(&["clone3"], ENOSYS, &filter);
}

#[test]
fn other_processes_and_kernel_interfaces_are_refused() {
    let probe = Probe::compile();
    let filter = filter();
    for name in [
        "ptrace",
        "process_madvise",
        "pidfd_getfd",
        "keyctl",
        "bpf",
        "perf_event_open",
        "io_uring_setup",
        "clock_settime",
    ] {
        probe.assert_refused(&[name], EPERM, &filter);
    }
}

#[test]
fn terminal_injection_is_refused() {
    let probe = Probe::compile();
    let filter = filter();
    // TIOCSTI, TIOCSTI with a high bit the kernel ignores, TIOCLINUX.
    for request in ["5412", "10000005412", "541c"] {
        probe.assert_refused(&["ioctl", request], EPERM, &filter);
    }
    // Other ioctls pass: TCGETS on a non-terminal answers ENOTTY.
    assert_eq!(probe.errno(&["ioctl", "5401"], Some(&filter)), libc::ENOTTY);
}

#[test]
fn personality_allows_only_harmless_values() {
    let probe = Probe::compile();
    let filter = filter();
    for value in ["0", "8", "20000", "20008", "ffffffff"] {
        assert_eq!(
            probe.errno(&["personality", value], Some(&filter)),
            0,
            "personality({value})"
        );
    }
    // ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC, PER_BSD, and near misses of the query value.
    for value in [
        "40000", "400000", "6", "40008", "fffffffe", "fffffff7", "fffdffff", "7fffffff",
    ] {
        probe.assert_refused(&["personality", value], EPERM, &filter);
    }
}

/// The probe's foreign-ABI syscalls are x86 assembly.
#[cfg(target_arch = "x86_64")]
#[test]
fn foreign_syscall_abis_kill_the_process() {
    let probe = Probe::compile();
    let filter = filter();
    assert!(
        run(&probe.path, &["getpid"], Some(&filter))
            .status
            .success()
    );
    // Checked separately so a failure names every ABI that got through.
    let mut wrong = Vec::new();
    for abi in ["i386_getpid", "x32_getpid"] {
        let filtered = run(&probe.path, &[abi], Some(&filter));
        if filtered.status.signal() != Some(libc::SIGSYS) {
            wrong.push(format!("{abi} under the filter: {:?}", filtered.status));
        }
        // Without the filter the kernel answers (i386 getpid works; x32 is ENOSYS on kernels
        // without CONFIG_X86_X32_ABI) and the probe exits normally.
        let unfiltered = run(&probe.path, &[abi], None);
        if !unfiltered.status.success() {
            wrong.push(format!("{abi} without the filter: {:?}", unfiltered.status));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}
