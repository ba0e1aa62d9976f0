//! cgroup v2: one unified hierarchy, so a sandbox is one directory. Controllers must be enabled
//! in every ancestor's `cgroup.subtree_control`, and a cgroup with enabled controllers may not
//! hold processes itself (the "no internal processes" rule) unless it is the root.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{
    CPU_PERIOD_US, CgroupError, CgroupLimits, CgroupUsage, OwnCgroups, RwHandle, Shared, is_busy,
    keyed_value, own_dir, parse_u64, remove_created, stale_parents, wait_until,
};

const REQUIRED: [&str; 3] = ["memory", "pids", "cpu"];
const ENABLE: &str = "+memory +pids +cpu";
/// Where sandpit moves itself when its own cgroup must hold no processes.
pub(super) const SUPERVISOR: &str = "sandpit-supervisor";
const FREEZE_WAIT: Duration = Duration::from_millis(500);

#[derive(Debug)]
pub(super) struct Instance {
    /// The process's own cgroup.
    own: PathBuf,
    /// This instance's parent, `own/sandpit-<pid>-<hex>`.
    parent: PathBuf,
}

/// A sandbox's directory.
#[derive(Debug)]
pub(super) struct Dir {
    pub(super) path: PathBuf,
}

impl Instance {
    pub(super) fn setup(
        shared: &Shared,
        root: &Path,
        own: &OwnCgroups,
        parent_name: &str,
    ) -> Result<Self, CgroupError> {
        let path = own.v2.as_deref().ok_or_else(|| {
            CgroupError::NotSupported("/proc/self/cgroup has no cgroup v2 line (`0::/path`)".into())
        })?;
        let own = own_dir(shared, root, path)?;
        let available = shared.read(&own.join("cgroup.controllers"))?;
        for required in REQUIRED {
            if !available.split_whitespace().any(|c| c == required) {
                return Err(CgroupError::NotSupported(format!(
                    "cgroup v2 at {} has no `{required}` controller enabled (its parent must \
                     delegate it in cgroup.subtree_control)",
                    own.display()
                )));
            }
        }
        enable_below_own(shared, root, &own)?;
        let instance = Self {
            parent: own.join(parent_name),
            own,
        };
        instance.reap_stale(shared)?;
        shared.create_dir(&instance.parent)?;
        let control = instance.parent.join("cgroup.subtree_control");
        if let Err(error) = shared.write(&control, ENABLE) {
            remove_created(shared, std::slice::from_ref(&instance.parent));
            return Err(error);
        }
        tracing::info!(cgroup.parent = %instance.parent.display(), "cgroup v2 parent created");
        Ok(instance)
    }

    fn reap_stale(&self, shared: &Shared) -> Result<(), CgroupError> {
        for name in stale_parents(shared, &[self.own.as_path()])? {
            let dir = self.own.join(&name);
            match kill(shared, &dir).and_then(|()| shared.remove_tree(&dir)) {
                Ok(()) => {
                    tracing::warn!(cgroup.parent = %name, "removed the cgroups of a dead sandpit instance")
                }
                Err(error) => {
                    tracing::warn!(cgroup.parent = %name, %error, "cannot remove the cgroups of a dead sandpit instance")
                }
            }
        }
        Ok(())
    }

    pub(super) fn parent_dir(&self) -> &Path {
        &self.parent
    }

    pub(super) fn create(
        &self,
        shared: &Shared,
        name: &str,
        limits: &CgroupLimits,
    ) -> Result<Dir, CgroupError> {
        let dir = Dir {
            path: self.parent.join(name),
        };
        shared.create_dir(&dir.path)?;
        if let Err(error) = dir.set_limits(shared, limits) {
            remove_created(shared, std::slice::from_ref(&dir.path));
            return Err(error);
        }
        Ok(dir)
    }

    pub(super) fn cleanup(&self, shared: &Shared) -> Result<(), CgroupError> {
        kill(shared, &self.parent)?;
        shared.remove_tree(&self.parent)?;
        tracing::info!(cgroup.parent = %self.parent.display(), "cgroup v2 parent removed");
        Ok(())
    }
}

/// Enables the controllers in `own/cgroup.subtree_control`. If the kernel refuses because `own`
/// holds processes, moves this process into `own/sandpit-supervisor` and tries again: that works
/// when sandpit is alone in its cgroup (a systemd service, a container).
fn enable_below_own(shared: &Shared, root: &Path, own: &Path) -> Result<(), CgroupError> {
    let control = own.join("cgroup.subtree_control");
    let enabled = shared.read(&control)?;
    if REQUIRED
        .iter()
        .all(|r| enabled.split_whitespace().any(|c| c == *r))
    {
        return Ok(());
    }
    match shared.sys.write(&control, ENABLE) {
        Ok(()) => return Ok(()),
        Err(error) if is_busy(&error) && own != root => {}
        Err(source) => return Err(write_error(&control, source)),
    }
    let supervisor = own.join(SUPERVISOR);
    match shared.sys.create_dir(&supervisor) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
        Err(source) => {
            return Err(CgroupError::Create {
                path: supervisor,
                source,
            });
        }
    }
    shared.write(
        &supervisor.join("cgroup.procs"),
        &shared.own_pid.to_string(),
    )?;
    tracing::info!(
        cgroup.supervisor = %supervisor.display(),
        "moved sandpit out of its own cgroup so that controllers can be enabled below it"
    );
    match shared.sys.write(&control, ENABLE) {
        Ok(()) => Ok(()),
        Err(error) if is_busy(&error) => Err(CgroupError::SharedCgroup {
            path: own.to_path_buf(),
        }),
        Err(source) => Err(write_error(&control, source)),
    }
}

fn write_error(path: &Path, source: io::Error) -> CgroupError {
    CgroupError::Write {
        path: path.to_path_buf(),
        value: ENABLE.to_owned(),
        source,
    }
}

impl Dir {
    fn set_limits(&self, shared: &Shared, limits: &CgroupLimits) -> Result<(), CgroupError> {
        shared.write(
            &self.path.join("memory.max"),
            &limits.memory_bytes.to_string(),
        )?;
        // Absent when the kernel does not account swap.
        let swap = self.path.join("memory.swap.max");
        if shared.sys.exists(&swap) {
            shared.write(&swap, "0")?;
        }
        shared.write(&self.path.join("pids.max"), &limits.pids.to_string())?;
        let quota = limits
            .cpu_quota_us()
            .map_or_else(|| "max".to_owned(), |q| q.to_string());
        shared.write(
            &self.path.join("cpu.max"),
            &format!("{quota} {CPU_PERIOD_US}"),
        )?;
        Ok(())
    }

    pub(super) fn usage(
        &self,
        shared: &Shared,
        peak_handle: &mut Option<Box<dyn RwHandle>>,
    ) -> Result<CgroupUsage, CgroupError> {
        let peak_path = self.path.join("memory.peak");
        // memory.peak exists since Linux 5.19.
        let peak = match peak_handle {
            Some(handle) => Some(handle.read_all().map_err(|source| CgroupError::Read {
                path: peak_path.clone(),
                source,
            })?),
            None => shared.read_opt(&peak_path)?,
        };
        let events = shared.read(&self.path.join("memory.events"))?;
        let cpu_stat = shared.read(&self.path.join("cpu.stat"))?;
        Ok(CgroupUsage {
            memory_current_bytes: shared.read_u64(&self.path.join("memory.current"))?,
            memory_peak_bytes: peak.map(|p| parse_u64(&peak_path, &p)).transpose()?,
            oom_kills: keyed_value(&events, "oom_kill").unwrap_or(0),
            cpu_usage_ns: keyed_value(&cpu_stat, "usage_usec")
                .unwrap_or(0)
                .saturating_mul(1000),
            pids_current: shared.read_u64(&self.path.join("pids.current"))?,
        })
    }

    /// Since Linux 6.12 a write to `memory.peak` restarts the measurement for reads through the
    /// same descriptor, so the descriptor is kept in `handle`. Earlier kernels refuse to open it
    /// for writing: nothing to do there.
    pub(super) fn reset_peak(
        &self,
        shared: &Shared,
        handle: &mut Option<Box<dyn RwHandle>>,
    ) -> Result<(), CgroupError> {
        let path = self.path.join("memory.peak");
        if handle.is_none() {
            match shared.sys.open_rw(&path) {
                Ok(opened) => *handle = Some(opened),
                Err(error)
                    if matches!(
                        error.kind(),
                        io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied
                    ) =>
                {
                    return Ok(());
                }
                Err(source) => return Err(CgroupError::Read { path, source }),
            }
        }
        match handle {
            Some(opened) => opened
                .write_value("reset")
                .map_err(|source| CgroupError::Write {
                    path,
                    value: "reset".into(),
                    source,
                }),
            None => Ok(()),
        }
    }
}

/// Kills every process in `dir` and beneath: `cgroup.kill` where the kernel has it (5.14+),
/// else freeze → SIGKILL → thaw until empty.
pub(super) fn kill(shared: &Shared, dir: &Path) -> Result<(), CgroupError> {
    let kill_file = dir.join("cgroup.kill");
    if !shared.sys.exists(&kill_file) {
        let dirs = [dir.to_path_buf()];
        return shared.kill_loop(
            &dirs,
            |deadline| freeze(shared, dir, deadline),
            || thaw_tree(shared, dir),
        );
    }
    let start = Instant::now();
    shared.write(&kill_file, "1")?;
    let events = dir.join("cgroup.events");
    let emptied = wait_until(start + shared.kill_timeout, || {
        Ok(shared
            .read_opt(&events)?
            .is_none_or(|text| keyed_value(&text, "populated") == Some(0)))
    })?;
    if emptied {
        return Ok(());
    }
    Err(CgroupError::KillTimeout {
        path: dir.to_path_buf(),
        pids: shared.procs_of(&[dir.to_path_buf()])?,
        waited_ms: super::millis(start.elapsed()),
    })
}

fn freeze(shared: &Shared, dir: &Path, deadline: Instant) -> Result<(), CgroupError> {
    let freeze = dir.join("cgroup.freeze");
    if !shared.sys.exists(&freeze) {
        return Ok(()); // before Linux 5.2, or already removed
    }
    shared.write(&freeze, "1")?;
    let events = dir.join("cgroup.events");
    let frozen = wait_until(deadline.min(Instant::now() + FREEZE_WAIT), || {
        Ok(shared
            .read_opt(&events)?
            .is_none_or(|text| keyed_value(&text, "frozen") == Some(1)))
    })?;
    if !frozen {
        tracing::debug!(cgroup.dir = %dir.display(), "freezing is slow; killing anyway");
    }
    Ok(())
}

fn thaw_tree(shared: &Shared, dir: &Path) -> Result<(), CgroupError> {
    let freeze = dir.join("cgroup.freeze");
    if !shared.sys.exists(&freeze) {
        return Ok(());
    }
    shared.write(&freeze, "0")?;
    for name in shared.subdirs(dir)? {
        thaw_tree(shared, &dir.join(name))?;
    }
    Ok(())
}
