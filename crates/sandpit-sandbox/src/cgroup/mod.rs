//! One cgroup per sandbox: create it with limits, let the sandbox's processes join it, read what
//! they use, kill them all and remove it. Works with cgroup v1 (one hierarchy per controller, as on
//! hosts still booted that way) and v2 (the unified hierarchy of current hosts).
//!
//! Layout: a server instance owns `<its own cgroup>/sandpit-<pid>-<8 hex>` in every hierarchy it
//! uses (its *parent*), and each sandbox is a directory beneath that parent. A new instance first
//! removes the parents of instances whose process is gone, so a crash leaks nothing for long.
//!
//! Everything here is synchronous file I/O on cgroupfs (microseconds), but `kill_all`, `destroy`
//! and `cleanup` wait for processes to die (bounded, about 3 s at worst): call them from a blocking
//! context in async code. File and signal operations go through the `sys::Sys` seam so that the
//! logic is unit-tested against an in-memory cgroupfs; `tests/cgroup.rs` exercises the real one.

mod sys;
mod v1;
mod v2;

#[cfg(test)]
mod fake;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::host::{self, CgroupMode};
use sys::{HostSys, RwHandle, Sys};

/// How long `kill_all` keeps killing before it gives up.
const KILL_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a removal retries while the kernel still reports the cgroup busy.
const RMDIR_TIMEOUT: Duration = Duration::from_secs(1);
/// The CFS period; a quota of `millicores * 100` µs per period is `millicores / 1000` CPUs.
pub const CPU_PERIOD_US: u64 = 100_000;
/// The kernel's smallest CFS quota (1 ms), i.e. 10 millicores.
const MIN_CPU_MILLICORES: u32 = 10;
/// `pids.max` accepts values up to the kernel's `PID_MAX_LIMIT`.
const MAX_PIDS: u64 = 4 * 1024 * 1024;
const MAX_NAME_LEN: usize = 64;
const PARENT_PREFIX: &str = "sandpit-";

/// Limits for one sandbox's cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupLimits {
    /// Memory (RAM, and RAM + swap where the kernel accounts swap) in bytes.
    pub memory_bytes: u64,
    /// Maximum number of processes and threads.
    pub pids: u64,
    /// CPU time as thousandths of a CPU (CFS quota); `None` is unlimited.
    pub cpu_millicores: Option<u32>,
}

impl CgroupLimits {
    fn validate(&self) -> Result<(), CgroupError> {
        if self.memory_bytes == 0 {
            return Err(CgroupError::InvalidLimits(
                "memory_bytes must be above 0".into(),
            ));
        }
        if self.pids == 0 || self.pids > MAX_PIDS {
            return Err(CgroupError::InvalidLimits(format!(
                "pids must be between 1 and {MAX_PIDS}, not {}",
                self.pids
            )));
        }
        if let Some(millicores) = self.cpu_millicores.filter(|&m| m < MIN_CPU_MILLICORES) {
            return Err(CgroupError::InvalidLimits(format!(
                "cpu_millicores must be at least {MIN_CPU_MILLICORES} (the kernel's 1 ms CFS \
                 quota), not {millicores}"
            )));
        }
        Ok(())
    }

    /// The CFS quota in µs per [`CPU_PERIOD_US`], `None` when unlimited.
    fn cpu_quota_us(&self) -> Option<u64> {
        self.cpu_millicores
            .map(|m| u64::from(m) * CPU_PERIOD_US / 1000)
    }
}

/// What a sandbox's cgroup has used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CgroupUsage {
    pub memory_current_bytes: u64,
    /// Highest memory use since creation or the last [`Cgroup::reset_peak`]; `None` where the
    /// kernel does not report it (cgroup v2 before Linux 5.19).
    pub memory_peak_bytes: Option<u64>,
    /// Processes the kernel's OOM killer killed in this cgroup.
    pub oom_kills: u64,
    pub cpu_usage_ns: u64,
    pub pids_current: u64,
}

/// Which cgroup interface the host offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CgroupVersion {
    V1,
    V2,
}

/// Why a cgroup operation failed. The messages are meant for administrators (`/readyz`, logs).
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// The host lacks something sandpit needs; the message says exactly what.
    #[error("{0}")]
    NotSupported(String),
    /// cgroup v2 forbids enabling controllers below a cgroup that holds processes, and sandpit's
    /// cgroup holds processes other than sandpit.
    #[error(
        "other processes share sandpit's cgroup {path}, so cgroup v2 controllers cannot be enabled \
         below it; run sandpit in a cgroup of its own (e.g. a systemd service with `Delegate=yes`)"
    )]
    SharedCgroup { path: PathBuf },
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write {value:?} to {path}: {source}")]
    Write {
        path: PathBuf,
        value: String,
        source: io::Error,
    },
    #[error("cannot create cgroup {path}: {source}")]
    Create { path: PathBuf, source: io::Error },
    #[error("cannot remove cgroup {path}: {source}")]
    Remove { path: PathBuf, source: io::Error },
    #[error("cannot kill process {pid}: {source}")]
    Kill { pid: u32, source: io::Error },
    #[error("unexpected contents in {path}: {detail}")]
    Parse { path: PathBuf, detail: String },
    #[error(
        "invalid cgroup name {name:?}: use 1 to {MAX_NAME_LEN} characters from a-z, 0-9 and '-'"
    )]
    InvalidName { name: String },
    #[error("invalid cgroup limits: {0}")]
    InvalidLimits(String),
    #[error("processes {pids:?} were still in {path} after {waited_ms} ms of SIGKILL")]
    KillTimeout {
        path: PathBuf,
        pids: Vec<u32>,
        waited_ms: u64,
    },
}

/// Creates and removes the cgroups of one server instance. Chosen once at start-up.
#[derive(Debug)]
pub struct CgroupManager {
    shared: Arc<Shared>,
    backend: Backend,
}

#[derive(Debug)]
enum Backend {
    V1(v1::Instance),
    V2(v2::Instance),
}

impl CgroupManager {
    /// Detects the layout (`/proc/self/mountinfo` and `/proc/self/cgroup`), removes the parents
    /// of dead instances and creates this instance's parent beneath the process's own cgroup.
    pub fn new() -> Result<Self, CgroupError> {
        let mode = host::cgroup_mode().map_err(|source| CgroupError::Read {
            path: "/proc/self/mountinfo".into(),
            source,
        })?;
        let proc_self_cgroup =
            std::fs::read_to_string("/proc/self/cgroup").map_err(|source| CgroupError::Read {
                path: "/proc/self/cgroup".into(),
                source,
            })?;
        Self::with_layout(&mode, &proc_self_cgroup, std::process::id())
    }

    /// Like [`CgroupManager::new`] with the layout given: `proc_self_cgroup` is the text of
    /// `/proc/<own_pid>/cgroup`. Files are read and written beneath the mount points in `mode`.
    pub fn with_layout(
        mode: &CgroupMode,
        proc_self_cgroup: &str,
        own_pid: u32,
    ) -> Result<Self, CgroupError> {
        Self::with_sys(
            mode,
            proc_self_cgroup,
            own_pid,
            Arc::new(HostSys),
            KILL_TIMEOUT,
        )
    }

    pub(crate) fn with_sys(
        mode: &CgroupMode,
        proc_self_cgroup: &str,
        own_pid: u32,
        sys: Arc<dyn Sys>,
        kill_timeout: Duration,
    ) -> Result<Self, CgroupError> {
        let shared = Arc::new(Shared {
            sys,
            own_pid,
            kill_timeout,
        });
        let own = OwnCgroups::parse(proc_self_cgroup);
        let parent_name = format!("{PARENT_PREFIX}{own_pid}-{}", random_hex8());
        let backend = match mode {
            CgroupMode::V1 { controllers } => Backend::V1(v1::Instance::setup(
                &shared,
                controllers,
                &own,
                &parent_name,
            )?),
            CgroupMode::V2 { root, .. } => {
                Backend::V2(v2::Instance::setup(&shared, root, &own, &parent_name)?)
            }
            CgroupMode::None => {
                return Err(CgroupError::NotSupported(
                    "no cgroup filesystem is mounted (neither cgroup v1 controllers nor cgroup2 \
                     appear in /proc/self/mountinfo)"
                        .into(),
                ));
            }
        };
        Ok(Self { shared, backend })
    }

    pub fn version(&self) -> CgroupVersion {
        match self.backend {
            Backend::V1(_) => CgroupVersion::V1,
            Backend::V2(_) => CgroupVersion::V2,
        }
    }

    /// This instance's parent directories (one per hierarchy used).
    pub fn parent_dirs(&self) -> Vec<PathBuf> {
        match &self.backend {
            Backend::V1(instance) => instance.parent_dirs(),
            Backend::V2(instance) => vec![instance.parent_dir().to_path_buf()],
        }
    }

    /// Creates the cgroup `name` (`[a-z0-9-]`, at most 64 characters) with `limits`.
    pub fn create(&self, name: &str, limits: &CgroupLimits) -> Result<Cgroup, CgroupError> {
        validate_name(name)?;
        limits.validate()?;
        let kind = match &self.backend {
            Backend::V1(instance) => Kind::V1(instance.create(&self.shared, name, limits)?),
            Backend::V2(instance) => Kind::V2(instance.create(&self.shared, name, limits)?),
        };
        tracing::debug!(cgroup.name = name, ?limits, "created cgroup");
        Ok(Cgroup {
            name: name.to_owned(),
            shared: Arc::clone(&self.shared),
            kind,
            peak_handle: Mutex::new(None),
        })
    }

    /// Kills and removes every sandbox cgroup of this instance and the instance's parent.
    pub fn cleanup(&self) -> Result<(), CgroupError> {
        match &self.backend {
            Backend::V1(instance) => instance.cleanup(&self.shared),
            Backend::V2(instance) => instance.cleanup(&self.shared),
        }
    }
}

/// One sandbox's cgroup.
#[derive(Debug)]
pub struct Cgroup {
    name: String,
    shared: Arc<Shared>,
    kind: Kind,
    /// v2 `memory.peak` opened by `reset_peak`: the reset applies to reads through it only.
    peak_handle: Mutex<Option<Box<dyn RwHandle>>>,
}

#[derive(Debug)]
enum Kind {
    V1(v1::Dirs),
    V2(v2::Dir),
}

impl Cgroup {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn version(&self) -> CgroupVersion {
        match self.kind {
            Kind::V1(_) => CgroupVersion::V1,
            Kind::V2(_) => CgroupVersion::V2,
        }
    }

    /// The cgroup's directories, one per hierarchy.
    pub fn dirs(&self) -> Vec<PathBuf> {
        match &self.kind {
            Kind::V1(dirs) => dirs.all.clone(),
            Kind::V2(dir) => vec![dir.path.clone()],
        }
    }

    /// The `cgroup.procs` files a process writes "0" into to join this cgroup (one per v1
    /// hierarchy, one for v2). The sandbox agent does this itself before it unshares namespaces.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs()
            .into_iter()
            .map(|dir| dir.join("cgroup.procs"))
            .collect()
    }

    /// The file whose `oom_kill` line counts the cgroup's OOM kills (`memory.oom_control` on
    /// v1, `memory.events` on v2). The agent opens it before it changes root.
    pub fn oom_events_file(&self) -> Option<PathBuf> {
        Some(match &self.kind {
            Kind::V1(dirs) => dirs.memory.join("memory.oom_control"),
            Kind::V2(dir) => dir.path.join("memory.events"),
        })
    }

    /// Moves process `pid` into this cgroup.
    pub fn add_pid(&self, pid: u32) -> Result<(), CgroupError> {
        let value = pid.to_string();
        for file in self.procs_files() {
            self.shared.write(&file, &value)?;
        }
        Ok(())
    }

    pub fn usage(&self) -> Result<CgroupUsage, CgroupError> {
        match &self.kind {
            Kind::V1(dirs) => dirs.usage(&self.shared),
            Kind::V2(dir) => {
                let mut handle = self
                    .peak_handle
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                dir.usage(&self.shared, &mut handle)
            }
        }
    }

    /// Starts a new peak-memory measurement. cgroup v2 kernels before 6.12 cannot reset the peak:
    /// there this does nothing and the peak stays the one since creation.
    pub fn reset_peak(&self) -> Result<(), CgroupError> {
        match &self.kind {
            Kind::V1(dirs) => dirs.reset_peak(&self.shared),
            Kind::V2(dir) => {
                let mut handle = self
                    .peak_handle
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                dir.reset_peak(&self.shared, &mut handle)
            }
        }
    }

    /// The processes in this cgroup (and any cgroups beneath it), sorted.
    pub fn pids(&self) -> Result<Vec<u32>, CgroupError> {
        self.shared.procs_of(&self.dirs())
    }

    /// Kills every process in the cgroup and returns once it is empty; fails with
    /// [`CgroupError::KillTimeout`] if processes survive about 3 s.
    pub fn kill_all(&self) -> Result<(), CgroupError> {
        match &self.kind {
            Kind::V1(dirs) => v1::kill(&self.shared, &dirs.all, dirs.freezer.as_deref()),
            Kind::V2(dir) => v2::kill(&self.shared, &dir.path),
        }
    }

    /// Kills every process, then removes the cgroup's directories. Idempotent.
    pub fn destroy(&self) -> Result<(), CgroupError> {
        self.kill_all()?;
        // The peak descriptor would not stop the removal, but it is useless afterwards.
        self.peak_handle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        for dir in self.dirs() {
            self.shared.remove_tree(&dir)?;
        }
        tracing::debug!(cgroup.name = %self.name, "destroyed cgroup");
        Ok(())
    }
}

fn validate_name(name: &str) -> Result<(), CgroupError> {
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(CgroupError::InvalidName {
            name: name.to_owned(),
        })
    }
}

fn random_hex8() -> String {
    uuid::Uuid::new_v4()
        .simple()
        .to_string()
        .chars()
        .take(8)
        .collect()
}

/// The pid in an instance parent's name `sandpit-<pid>-<8 hex>`.
fn parent_pid(name: &str) -> Option<u32> {
    let (pid, suffix) = name.strip_prefix(PARENT_PREFIX)?.split_once('-')?;
    let hex = suffix.len() == 8
        && suffix
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let digits = !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit());
    if hex && digits {
        pid.parse().ok()
    } else {
        None
    }
}

/// The process's own cgroups, from `/proc/self/cgroup`.
#[derive(Debug, Default)]
struct OwnCgroups {
    /// `(controller, path)` for every v1 controller listed.
    v1: Vec<(String, String)>,
    /// The `0::/path` line.
    v2: Option<String>,
}

impl OwnCgroups {
    fn parse(text: &str) -> Self {
        let mut own = Self::default();
        for line in text.lines() {
            let mut fields = line.splitn(3, ':');
            let (Some(id), Some(controllers), Some(path)) =
                (fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            if controllers.is_empty() {
                if id == "0" {
                    own.v2 = Some(path.to_owned());
                }
            } else {
                for controller in controllers.split(',') {
                    own.v1.push((controller.to_owned(), path.to_owned()));
                }
            }
        }
        own
    }

    fn v1_path(&self, controller: &str) -> Option<&str> {
        self.v1
            .iter()
            .find(|(c, _)| c == controller)
            .map(|(_, path)| path.as_str())
    }
}

/// The directory of cgroup `path` (as `/proc/self/cgroup` names it) under `mount`. When the mount
/// shows only a subtree (a container without a cgroup namespace), the leading components of the
/// path are not part of the mount, so shorter suffixes are tried too.
fn own_dir(shared: &Shared, mount: &Path, path: &str) -> Result<PathBuf, CgroupError> {
    let components: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    if components.contains(&"..") {
        return Err(CgroupError::NotSupported(format!(
            "sandpit's cgroup {path} lies outside its cgroup namespace, so it cannot be found \
             under {}",
            mount.display()
        )));
    }
    if components.is_empty() {
        return Ok(mount.to_path_buf());
    }
    for skip in 0..components.len() {
        let dir = components[skip..]
            .iter()
            .fold(mount.to_path_buf(), |dir, c| dir.join(c));
        if shared.sys.exists(&dir) {
            if skip > 0 {
                tracing::debug!(cgroup.path = path, dir = %dir.display(), "own cgroup found under a shorter path");
            }
            return Ok(dir);
        }
    }
    Err(CgroupError::NotSupported(format!(
        "sandpit's cgroup {path} (from /proc/self/cgroup) is not visible under {}",
        mount.display()
    )))
}

/// Names of parents in `own_dirs` left by instances whose process is gone.
fn stale_parents(shared: &Shared, own_dirs: &[&Path]) -> Result<BTreeSet<String>, CgroupError> {
    let mut stale = BTreeSet::new();
    for own in own_dirs {
        for name in shared.subdirs(own)? {
            let dead = parent_pid(&name)
                .is_some_and(|pid| pid != shared.own_pid && !shared.sys.is_alive(pid));
            if dead {
                stale.insert(name);
            }
        }
    }
    Ok(stale)
}

/// What the manager and its cgroups share: the host seam and settings.
#[derive(Debug)]
struct Shared {
    sys: Arc<dyn Sys>,
    own_pid: u32,
    kill_timeout: Duration,
}

fn is_not_found(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::NotFound
}

fn is_busy(error: &io::Error) -> bool {
    error.raw_os_error() == Some(libc::EBUSY)
}

impl Shared {
    fn read(&self, path: &Path) -> Result<String, CgroupError> {
        self.sys.read(path).map_err(|source| CgroupError::Read {
            path: path.to_path_buf(),
            source,
        })
    }

    /// `None` when the file does not exist.
    fn read_opt(&self, path: &Path) -> Result<Option<String>, CgroupError> {
        match self.sys.read(path) {
            Ok(text) => Ok(Some(text)),
            Err(error) if is_not_found(&error) => Ok(None),
            Err(source) => Err(CgroupError::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    fn read_u64(&self, path: &Path) -> Result<u64, CgroupError> {
        let text = self.read(path)?;
        parse_u64(path, &text)
    }

    fn write(&self, path: &Path, value: &str) -> Result<(), CgroupError> {
        self.sys
            .write(path, value)
            .map_err(|source| CgroupError::Write {
                path: path.to_path_buf(),
                value: value.to_owned(),
                source,
            })
    }

    fn create_dir(&self, path: &Path) -> Result<(), CgroupError> {
        self.sys
            .create_dir(path)
            .map_err(|source| CgroupError::Create {
                path: path.to_path_buf(),
                source,
            })
    }

    /// Subdirectory names; none when `dir` does not exist.
    fn subdirs(&self, dir: &Path) -> Result<Vec<String>, CgroupError> {
        match self.sys.subdirs(dir) {
            Ok(names) => Ok(names),
            Err(error) if is_not_found(&error) => Ok(Vec::new()),
            Err(source) => Err(CgroupError::Read {
                path: dir.to_path_buf(),
                source,
            }),
        }
    }

    /// The pids in `dir/cgroup.procs`; none when `dir` does not exist.
    fn procs(&self, dir: &Path) -> Result<Vec<u32>, CgroupError> {
        let path = dir.join("cgroup.procs");
        let Some(text) = self.read_opt(&path)? else {
            return Ok(Vec::new());
        };
        text.lines()
            .map(|line| {
                line.trim().parse().map_err(|_| CgroupError::Parse {
                    path: path.clone(),
                    detail: format!("{line:?} is not a process id"),
                })
            })
            .collect()
    }

    fn procs_tree(&self, dir: &Path, pids: &mut BTreeSet<u32>) -> Result<(), CgroupError> {
        pids.extend(self.procs(dir)?);
        for name in self.subdirs(dir)? {
            self.procs_tree(&dir.join(name), pids)?;
        }
        Ok(())
    }

    /// The processes in `dirs` and their descendants, sorted and deduplicated.
    fn procs_of(&self, dirs: &[PathBuf]) -> Result<Vec<u32>, CgroupError> {
        let mut pids = BTreeSet::new();
        for dir in dirs {
            self.procs_tree(dir, &mut pids)?;
        }
        Ok(pids.into_iter().collect())
    }

    /// SIGKILLs every pid except our own (a cgroup that somehow holds sandpit must not take it
    /// down); reports the first failure after trying them all.
    fn kill_pids(&self, pids: &[u32]) -> Result<(), CgroupError> {
        let mut first_error = None;
        for &pid in pids.iter().filter(|&&pid| pid != self.own_pid) {
            if let Err(source) = self.sys.kill(pid) {
                first_error.get_or_insert(CgroupError::Kill { pid, source });
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Repeats freeze → SIGKILL everything in `dirs` → thaw until they hold no process.
    /// Processes killed while frozen die when thawed, before running another instruction, and a
    /// frozen fork bomb cannot fork, so this terminates unless a process cannot die at all.
    fn kill_loop(
        &self,
        dirs: &[PathBuf],
        freeze: impl Fn(Instant) -> Result<(), CgroupError>,
        thaw: impl Fn() -> Result<(), CgroupError>,
    ) -> Result<(), CgroupError> {
        let start = Instant::now();
        let deadline = start + self.kill_timeout;
        let mut pause = Backoff::new();
        loop {
            let round = freeze(deadline).and_then(|()| {
                let pids = self.procs_of(dirs)?;
                self.kill_pids(&pids)?;
                Ok(pids)
            });
            let thawed = thaw();
            let pids = round?;
            thawed?;
            if pids.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(CgroupError::KillTimeout {
                    path: dirs.first().cloned().unwrap_or_default(),
                    pids,
                    waited_ms: millis(start.elapsed()),
                });
            }
            pause.sleep();
        }
    }

    /// Removes `dir` and every directory beneath it; nothing to do when it does not exist.
    /// Retries briefly while the kernel reports it busy (processes still exiting).
    fn remove_tree(&self, dir: &Path) -> Result<(), CgroupError> {
        for name in self.subdirs(dir)? {
            self.remove_tree(&dir.join(name))?;
        }
        let deadline = Instant::now() + RMDIR_TIMEOUT;
        let mut pause = Backoff::new();
        loop {
            match self.sys.remove_dir(dir) {
                Ok(()) => return Ok(()),
                Err(error) if is_not_found(&error) => return Ok(()),
                Err(error) if is_busy(&error) && Instant::now() < deadline => pause.sleep(),
                Err(source) => {
                    return Err(CgroupError::Remove {
                        path: dir.to_path_buf(),
                        source,
                    });
                }
            }
        }
    }
}

/// Polls `done` with a growing pause until it holds or `deadline` passes; returns whether it held.
fn wait_until(
    deadline: Instant,
    mut done: impl FnMut() -> Result<bool, CgroupError>,
) -> Result<bool, CgroupError> {
    let mut pause = Backoff::new();
    loop {
        if done()? {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        pause.sleep();
    }
}

/// Sleeps of 100 µs doubling up to 20 ms: most waits here end within a millisecond.
struct Backoff(Duration);

impl Backoff {
    fn new() -> Self {
        Self(Duration::from_micros(100))
    }

    fn sleep(&mut self) {
        thread::sleep(self.0);
        self.0 = (self.0 * 2).min(Duration::from_millis(20));
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn parse_u64(path: &Path, text: &str) -> Result<u64, CgroupError> {
    text.trim().parse().map_err(|_| CgroupError::Parse {
        path: path.to_path_buf(),
        detail: format!("{:?} is not a number", text.trim()),
    })
}

/// The value of `key` in a flat keyed file (`key value` lines: `memory.events`, `cpu.stat`, ...).
fn keyed_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        if k == key {
            v.trim().parse().ok()
        } else {
            None
        }
    })
}

/// Undoes a half-done creation; the original error is what matters, so failures here are only
/// logged.
fn remove_created(shared: &Shared, dirs: &[PathBuf]) {
    for dir in dirs.iter().rev() {
        if let Err(error) = shared.sys.remove_dir(dir) {
            tracing::warn!(cgroup.dir = %dir.display(), %error, "cannot remove a half-created cgroup");
        }
    }
}
