//! The cgroup module against the real kernel (run as root). Each test makes its own manager, so
//! tests in parallel processes do not meet, and removes it at the end, failed or not.

#![expect(clippy::unwrap_used, reason = "tests")]

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use sandpit_sandbox::cgroup::{Cgroup, CgroupLimits, CgroupManager, CgroupVersion};

const MIB: u64 = 1 << 20;
const PYTHON: &str = "/usr/bin/python3";

/// A manager whose cgroups are removed when the test ends, however it ends.
struct Fixture(CgroupManager);

impl Fixture {
    fn new() -> Self {
        Self(CgroupManager::new().unwrap())
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Err(error) = self.0.cleanup() {
            eprintln!("cleanup failed: {error}");
        }
    }
}

impl std::ops::Deref for Fixture {
    type Target = CgroupManager;

    fn deref(&self) -> &CgroupManager {
        &self.0
    }
}

fn limits(memory_bytes: u64, pids: u64, cpu_millicores: Option<u32>) -> CgroupLimits {
    CgroupLimits {
        memory_bytes,
        pids,
        cpu_millicores,
    }
}

/// Starts `command` inside `cgroup`: the child joins between fork and exec, as the sandbox agent
/// does, so it allocates and forks under the limits from its first instruction.
fn spawn_in(cgroup: &Cgroup, command: &mut Command) -> Child {
    // Opened here: between fork and exec only async-signal-safe calls (write) are allowed.
    let files: Vec<File> = cgroup
        .procs_files()
        .iter()
        .map(|path| OpenOptions::new().write(true).open(path).unwrap())
        .collect();
    join_before_exec(command, files);
    command.spawn().unwrap()
}

#[expect(unsafe_code, reason = "pre_exec: the closure only calls write(2)")]
fn join_before_exec(command: &mut Command, files: Vec<File>) {
    // SAFETY: the closure allocates nothing and only writes to descriptors opened before fork.
    unsafe {
        command.pre_exec(move || {
            for mut file in &files {
                file.write_all(b"0")?;
            }
            Ok(())
        });
    }
}

/// The directory of `cgroup` that holds `file` (a v1 cgroup has one directory per controller).
fn dir_with(cgroup: &Cgroup, file: &str) -> PathBuf {
    cgroup
        .dirs()
        .into_iter()
        .find(|dir| dir.join(file).exists())
        .unwrap_or_else(|| panic!("no {file} in {:?}", cgroup.dirs()))
}

fn read(path: &Path) -> String {
    fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_owned()
}

fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok())?
    })
}

/// Polls `condition` until it holds; fails the test after `limit` (a safety net against
/// hanging, not a timing assertion).
fn eventually(limit: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(10));
    }
}

fn killed_by_sigkill(status: ExitStatus) -> bool {
    status.signal() == Some(libc::SIGKILL)
}

#[test]
fn parent_lives_beneath_the_process_own_cgroup() {
    let manager = Fixture::new();
    let own_cgroups = fs::read_to_string("/proc/self/cgroup").unwrap();
    let parents = manager.parent_dirs();
    for parent in &parents {
        assert!(parent.is_dir(), "{parent:?}");
        let name = parent.file_name().unwrap().to_str().unwrap();
        let prefix = format!("sandpit-{}-", std::process::id());
        assert!(name.starts_with(&prefix), "{name}");
    }
    // The memory controller's (v1) or the unified (v2) own path is where the parent is.
    let own_path = own_cgroups
        .lines()
        .find_map(|line| {
            let mut f = line.splitn(3, ':');
            let (_, controllers, path) = (f.next()?, f.next()?, f.next()?);
            let wanted = match manager.version() {
                CgroupVersion::V1 => controllers.split(',').any(|c| c == "memory"),
                CgroupVersion::V2 => controllers.is_empty(),
            };
            wanted.then(|| path.trim_start_matches('/').to_owned())
        })
        .unwrap();
    assert!(
        parents
            .iter()
            .any(|p| p.parent().unwrap().ends_with(&own_path)),
        "{parents:?} vs {own_path}"
    );
}

#[test]
fn create_writes_the_limits_into_the_kernel() {
    let manager = Fixture::new();
    let cgroup = manager
        .create("limits", &limits(32 * MIB, 64, Some(500)))
        .unwrap();
    let unlimited_cpu = manager
        .create("limits-no-cpu", &limits(32 * MIB, 64, None))
        .unwrap();
    match manager.version() {
        CgroupVersion::V1 => {
            assert_eq!(cgroup.dirs().len(), cgroup.procs_files().len());
            let memory = dir_with(&cgroup, "memory.limit_in_bytes");
            assert_eq!(read(&memory.join("memory.limit_in_bytes")), "33554432");
            let memsw = memory.join("memory.memsw.limit_in_bytes");
            if memsw.exists() {
                assert_eq!(read(&memsw), "33554432");
            }
            assert_eq!(read(&dir_with(&cgroup, "pids.max").join("pids.max")), "64");
            let cpu = dir_with(&cgroup, "cpu.cfs_quota_us");
            assert_eq!(read(&cpu.join("cpu.cfs_period_us")), "100000");
            assert_eq!(read(&cpu.join("cpu.cfs_quota_us")), "50000");
            let cpu = dir_with(&unlimited_cpu, "cpu.cfs_quota_us");
            assert_eq!(read(&cpu.join("cpu.cfs_quota_us")), "-1");
            // memory, pids, cpu, cpuacct (perhaps co-mounted with cpu), perhaps freezer.
            assert!(cgroup.dirs().len() >= 3, "{:?}", cgroup.dirs());
        }
        CgroupVersion::V2 => {
            let dir = &cgroup.dirs()[0];
            assert_eq!(read(&dir.join("memory.max")), "33554432");
            assert_eq!(read(&dir.join("pids.max")), "64");
            assert_eq!(read(&dir.join("cpu.max")), "50000 100000");
            let dir = &unlimited_cpu.dirs()[0];
            assert_eq!(read(&dir.join("cpu.max")), "max 100000");
        }
    }
    cgroup.destroy().unwrap();
    unlimited_cpu.destroy().unwrap();
}

#[test]
fn an_added_process_is_listed_and_destroy_kills_it() {
    let manager = Fixture::new();
    let cgroup = manager
        .create("add-pid", &limits(64 * MIB, 16, None))
        .unwrap();
    assert!(cgroup.pids().unwrap().is_empty());
    let mut child = Command::new("/bin/sleep").arg("30").spawn().unwrap();
    cgroup.add_pid(child.id()).unwrap();
    assert_eq!(cgroup.pids().unwrap(), [child.id()]);
    assert_eq!(cgroup.usage().unwrap().pids_current, 1);

    cgroup.destroy().unwrap();
    assert!(killed_by_sigkill(child.wait().unwrap()));
    for dir in cgroup.dirs() {
        assert!(!dir.exists(), "{dir:?}");
    }
    cgroup.destroy().unwrap(); // idempotent
    assert!(cgroup.pids().unwrap().is_empty());
}

#[test]
fn usage_reports_memory_cpu_and_processes() {
    let manager = Fixture::new();
    let cgroup = manager
        .create("usage", &limits(256 * MIB, 16, None))
        .unwrap();
    // 64 MiB at its peak, then 8 MiB kept (a freed large bytearray goes back to the kernel).
    let script = "b=bytearray(64<<20); del b; c=bytearray(8<<20); print('ready', flush=True); \
                  import time; time.sleep(30)";
    let mut child = spawn_in(
        &cgroup,
        Command::new(PYTHON)
            .args(["-c", script])
            .stdout(Stdio::piped()),
    );
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready");

    assert_eq!(cgroup.pids().unwrap(), [child.id()]);
    let usage = cgroup.usage().unwrap();
    assert_eq!(usage.pids_current, 1, "{usage:?}");
    assert!(usage.memory_current_bytes >= 8 * MIB, "{usage:?}");
    assert!(usage.memory_current_bytes < 64 * MIB, "{usage:?}");
    let peak = usage.memory_peak_bytes.unwrap();
    assert!(peak >= 64 * MIB, "{usage:?}");
    assert!(usage.cpu_usage_ns > 0, "{usage:?}");
    assert_eq!(usage.oom_kills, 0, "{usage:?}");

    cgroup.reset_peak().unwrap();
    let after = cgroup.usage().unwrap();
    let new_peak = after.memory_peak_bytes.unwrap();
    assert!(new_peak < 64 * MIB, "{after:?}");
    assert!(new_peak >= 8 * MIB, "{after:?}");

    cgroup.kill_all().unwrap();
    assert!(cgroup.pids().unwrap().is_empty());
    assert!(killed_by_sigkill(child.wait().unwrap()));
    cgroup.destroy().unwrap();
}

#[test]
fn a_memory_hog_is_oom_killed() {
    let manager = Fixture::new();
    let cgroup = manager.create("oom", &limits(32 * MIB, 16, None)).unwrap();
    let status = spawn_in(
        &cgroup,
        Command::new(PYTHON)
            .args(["-c", "b=bytearray(200<<20)"])
            .stderr(Stdio::null()),
    )
    .wait()
    .unwrap();
    assert!(killed_by_sigkill(status), "{status:?}");
    let usage = cgroup.usage().unwrap();
    assert!(usage.oom_kills >= 1, "{usage:?}");
    let peak = usage.memory_peak_bytes.unwrap();
    assert!(peak <= 32 * MIB, "{usage:?}");
    assert!(peak >= 16 * MIB, "{usage:?}");
    cgroup.destroy().unwrap();
}

#[test]
fn a_fork_bomb_is_capped_and_killed() {
    let manager = Fixture::new();
    let cgroup = manager
        .create("fork-bomb", &limits(256 * MIB, 20, None))
        .unwrap();
    // Every process keeps forking (dash would exit at its first failed fork).
    let bomb =
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n";
    let mut root = spawn_in(
        &cgroup,
        Command::new(PYTHON)
            .args(["-c", bomb])
            .stderr(Stdio::null()),
    );
    // pids.events counts the forks refused because of pids.max.
    let events = dir_with(&cgroup, "pids.events").join("pids.events");
    eventually(
        Duration::from_secs(20),
        "a fork refused by pids.max",
        || keyed(&read(&events), "max").unwrap_or(0) > 0,
    );
    let usage = cgroup.usage().unwrap();
    assert!(usage.pids_current <= 20, "{usage:?}");
    assert!(cgroup.pids().unwrap().len() <= 20);

    cgroup.kill_all().unwrap();
    assert!(cgroup.pids().unwrap().is_empty());
    // Not `pids_current == 0` yet: zombies stay charged to pids.current until their parent
    // (this test for the root process, init for the orphans) reaps them.
    assert!(killed_by_sigkill(root.wait().unwrap()));
    cgroup.destroy().unwrap();
    for dir in cgroup.dirs() {
        assert!(!dir.exists(), "{dir:?}");
    }
}

#[test]
fn cpu_quota_throttles_a_busy_loop() {
    let manager = Fixture::new();
    let cgroup = manager
        .create("cpu", &limits(256 * MIB, 16, Some(100)))
        .unwrap();
    let mut child = spawn_in(
        &cgroup,
        Command::new(PYTHON).args(["-c", "while True: pass"]),
    );
    let stat = dir_with(&cgroup, "cpu.stat").join("cpu.stat");
    eventually(Duration::from_secs(20), "CFS throttling", || {
        keyed(&read(&stat), "nr_throttled").unwrap_or(0) > 0
    });
    cgroup.destroy().unwrap();
    assert!(killed_by_sigkill(child.wait().unwrap()));
}

#[test]
fn cleanup_removes_the_parent_and_every_sandbox() {
    let manager = CgroupManager::new().unwrap();
    let idle = manager.create("idle", &limits(64 * MIB, 16, None)).unwrap();
    let busy = manager.create("busy", &limits(64 * MIB, 16, None)).unwrap();
    let mut child = spawn_in(&busy, Command::new("/bin/sleep").arg("30"));
    let parents = manager.parent_dirs();
    manager.cleanup().unwrap();
    assert!(killed_by_sigkill(child.wait().unwrap()));
    for dir in parents.iter().chain(&idle.dirs()).chain(&busy.dirs()) {
        assert!(!dir.exists(), "{dir:?}");
    }
    manager.cleanup().unwrap(); // nothing left to do
    busy.destroy().unwrap();
}

/// Removes a hand-made cgroup tree if the test fails before the manager does.
struct Leftover(Vec<PathBuf>);

impl Drop for Leftover {
    fn drop(&mut self) {
        for top in &self.0 {
            for dir in [top.join("box"), top.clone()] {
                let state = dir.join("freezer.state");
                if state.exists() {
                    let _ = fs::write(&state, "THAWED");
                }
                if let Ok(procs) = fs::read_to_string(dir.join("cgroup.procs")) {
                    for pid in procs.lines().filter_map(|l| l.parse::<i32>().ok()) {
                        let _ = Command::new("/bin/kill")
                            .args(["-9", &pid.to_string()])
                            .status();
                    }
                }
                let _ = fs::remove_dir(&dir);
            }
        }
    }
}

#[test]
fn a_new_manager_reaps_the_cgroups_of_dead_instances() {
    let first = Fixture::new();
    let own_dirs: Vec<PathBuf> = first
        .parent_dirs()
        .iter()
        .map(|p| p.parent().unwrap().to_path_buf())
        .collect();
    let mut dead = Command::new("/bin/true").spawn().unwrap();
    let dead_pid = dead.id();
    dead.wait().unwrap();

    // Build the tree under a name no manager reaps, put a frozen process in it (as if an
    // instance died while killing), then give it a dead instance's name in one step.
    let staging = format!("staging-{}-{}", std::process::id(), dead_pid);
    let stale = format!("sandpit-{dead_pid}-deadbeef");
    let mut leftover = Leftover(own_dirs.iter().map(|own| own.join(&staging)).collect());
    let mut procs = Vec::new();
    for own in &own_dirs {
        fs::create_dir_all(own.join(&staging).join("box")).unwrap();
        procs.push(
            OpenOptions::new()
                .write(true)
                .open(own.join(&staging).join("box/cgroup.procs"))
                .unwrap(),
        );
    }
    let mut command = Command::new("/bin/sleep");
    command.arg("30");
    join_before_exec(&mut command, procs);
    let mut child = command.spawn().unwrap();
    for own in &own_dirs {
        let state = own.join(&staging).join("box/freezer.state");
        if state.exists() {
            fs::write(&state, "FROZEN").unwrap();
        }
    }
    for own in &own_dirs {
        fs::rename(own.join(&staging), own.join(&stale)).unwrap();
    }
    leftover.0 = own_dirs.iter().map(|own| own.join(&stale)).collect();

    let second = Fixture::new();
    for own in &own_dirs {
        assert!(!own.join(&stale).exists(), "{:?}", own.join(&stale));
    }
    assert!(killed_by_sigkill(child.wait().unwrap()));
    // Live instances are left alone.
    for parent in first.parent_dirs() {
        assert!(parent.exists(), "{parent:?}");
    }
    drop(second);
}
