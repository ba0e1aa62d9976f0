//! cgroup v1: each controller (or group of co-mounted controllers, e.g. `cpu,cpuacct`) is its own
//! hierarchy, so a sandbox is one directory per hierarchy and a process joins each of them.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{
    CPU_PERIOD_US, CgroupError, CgroupLimits, CgroupUsage, OwnCgroups, Shared, keyed_value,
    own_dir, remove_created, stale_parents, wait_until,
};

/// Controllers a sandbox cannot do without.
const REQUIRED: [&str; 4] = ["memory", "pids", "cpu", "cpuacct"];
/// Controllers used when present. Others (cpuset above all, whose new cgroups start with no CPUs)
/// are left alone.
const USED: [&str; 5] = ["memory", "pids", "cpu", "cpuacct", "freezer"];
/// How long to wait for a freeze before killing anyway (a task in uninterruptible sleep can
/// delay freezing; SIGKILL is then queued for when it wakes).
const FREEZE_WAIT: Duration = Duration::from_millis(500);

/// One mounted hierarchy and this instance's parent in it.
#[derive(Debug)]
struct Hierarchy {
    controllers: Vec<String>,
    /// The process's own cgroup in this hierarchy.
    own: PathBuf,
    /// This instance's parent, `own/sandpit-<pid>-<hex>`.
    parent: PathBuf,
}

impl Hierarchy {
    fn has(&self, controller: &str) -> bool {
        self.controllers.iter().any(|c| c == controller)
    }
}

#[derive(Debug)]
pub(super) struct Instance {
    hierarchies: Vec<Hierarchy>,
    /// This instance's parent in the hierarchy of each controller used.
    parents: Roles,
}

#[derive(Debug)]
struct Roles {
    memory: PathBuf,
    pids: PathBuf,
    cpu: PathBuf,
    cpuacct: PathBuf,
    freezer: Option<PathBuf>,
}

/// A sandbox's directory in each hierarchy.
#[derive(Debug)]
pub(super) struct Dirs {
    /// One per hierarchy, in mount order.
    pub(super) all: Vec<PathBuf>,
    pub(super) memory: PathBuf,
    pids: PathBuf,
    cpu: PathBuf,
    cpuacct: PathBuf,
    pub(super) freezer: Option<PathBuf>,
}

impl Instance {
    pub(super) fn setup(
        shared: &Shared,
        controllers: &[(String, PathBuf)],
        own: &OwnCgroups,
        parent_name: &str,
    ) -> Result<Self, CgroupError> {
        // Group controllers by mount point: co-mounted ones share one hierarchy.
        let mut mounts: Vec<(PathBuf, Vec<String>)> = Vec::new();
        for (controller, mount) in controllers {
            if !USED.contains(&controller.as_str()) {
                continue;
            }
            match mounts.iter_mut().find(|(m, _)| m == mount) {
                Some((_, names)) if names.contains(controller) => {}
                Some((_, names)) => names.push(controller.clone()),
                None => mounts.push((mount.clone(), vec![controller.clone()])),
            }
        }
        for required in REQUIRED {
            if !mounts
                .iter()
                .any(|(_, names)| names.iter().any(|n| n == required))
            {
                return Err(missing(required));
            }
        }
        let mut hierarchies = Vec::new();
        for (mount, names) in mounts {
            let path = names
                .iter()
                .find_map(|name| own.v1_path(name))
                .ok_or_else(|| {
                    CgroupError::NotSupported(format!(
                        "/proc/self/cgroup lists no cgroup for the v1 `{}` controller mounted at {}",
                        names.join(","),
                        mount.display()
                    ))
                })?;
            let own_dir = own_dir(shared, &mount, path)?;
            hierarchies.push(Hierarchy {
                parent: own_dir.join(parent_name),
                own: own_dir,
                controllers: names,
            });
        }
        let parent_of = |controller: &str| {
            hierarchies
                .iter()
                .find(|h| h.has(controller))
                .map(|h| h.parent.clone())
        };
        let required = |controller: &str| parent_of(controller).ok_or_else(|| missing(controller));
        let parents = Roles {
            memory: required("memory")?,
            pids: required("pids")?,
            cpu: required("cpu")?,
            cpuacct: required("cpuacct")?,
            freezer: parent_of("freezer"),
        };
        let instance = Self {
            hierarchies,
            parents,
        };
        instance.reap_stale(shared)?;
        let mut created = Vec::new();
        for hierarchy in &instance.hierarchies {
            if let Err(error) = shared.create_dir(&hierarchy.parent) {
                remove_created(shared, &created);
                return Err(error);
            }
            created.push(hierarchy.parent.clone());
        }
        tracing::info!(
            cgroup.parents = ?instance.parent_dirs(),
            "cgroup v1 parent created"
        );
        Ok(instance)
    }

    /// Kills and removes the parents of dead instances (logged; a failure does not stop start-up).
    fn reap_stale(&self, shared: &Shared) -> Result<(), CgroupError> {
        let own_dirs: Vec<&Path> = self.hierarchies.iter().map(|h| h.own.as_path()).collect();
        for name in stale_parents(shared, &own_dirs)? {
            let dirs: Vec<PathBuf> = self.hierarchies.iter().map(|h| h.own.join(&name)).collect();
            let freezer = self.freezer_of(&name);
            match kill_and_remove(shared, &dirs, freezer.as_deref()) {
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

    fn freezer_of(&self, name: &str) -> Option<PathBuf> {
        self.hierarchies
            .iter()
            .find(|h| h.has("freezer"))
            .map(|h| h.own.join(name))
    }

    pub(super) fn parent_dirs(&self) -> Vec<PathBuf> {
        self.hierarchies.iter().map(|h| h.parent.clone()).collect()
    }

    fn dirs(&self, name: &str) -> Dirs {
        Dirs {
            all: self
                .hierarchies
                .iter()
                .map(|h| h.parent.join(name))
                .collect(),
            memory: self.parents.memory.join(name),
            pids: self.parents.pids.join(name),
            cpu: self.parents.cpu.join(name),
            cpuacct: self.parents.cpuacct.join(name),
            freezer: self.parents.freezer.as_ref().map(|p| p.join(name)),
        }
    }

    pub(super) fn create(
        &self,
        shared: &Shared,
        name: &str,
        limits: &CgroupLimits,
    ) -> Result<Dirs, CgroupError> {
        let dirs = self.dirs(name);
        let mut created = Vec::new();
        for dir in &dirs.all {
            if let Err(error) = shared.create_dir(dir) {
                remove_created(shared, &created);
                return Err(error);
            }
            created.push(dir.clone());
        }
        if let Err(error) = dirs.set_limits(shared, limits) {
            remove_created(shared, &created);
            return Err(error);
        }
        Ok(dirs)
    }

    pub(super) fn cleanup(&self, shared: &Shared) -> Result<(), CgroupError> {
        let parents = self.parent_dirs();
        kill_and_remove(shared, &parents, self.parents.freezer.as_deref())?;
        tracing::info!(cgroup.parents = ?parents, "cgroup v1 parent removed");
        Ok(())
    }
}

impl Dirs {
    fn set_limits(&self, shared: &Shared, limits: &CgroupLimits) -> Result<(), CgroupError> {
        let memory = limits.memory_bytes.to_string();
        shared.write(&self.memory.join("memory.limit_in_bytes"), &memory)?;
        // RAM + swap, so swap cannot stretch the limit. Must not be below the RAM limit, hence
        // after it. Absent when the kernel does not account swap.
        let memsw = self.memory.join("memory.memsw.limit_in_bytes");
        if shared.sys.exists(&memsw) {
            shared.write(&memsw, &memory)?;
        }
        shared.write(&self.pids.join("pids.max"), &limits.pids.to_string())?;
        shared.write(
            &self.cpu.join("cpu.cfs_period_us"),
            &CPU_PERIOD_US.to_string(),
        )?;
        let quota = limits
            .cpu_quota_us()
            .map_or_else(|| "-1".to_owned(), |q| q.to_string());
        shared.write(&self.cpu.join("cpu.cfs_quota_us"), &quota)?;
        Ok(())
    }

    pub(super) fn usage(&self, shared: &Shared) -> Result<CgroupUsage, CgroupError> {
        let oom_control = self.memory.join("memory.oom_control");
        Ok(CgroupUsage {
            memory_current_bytes: shared.read_u64(&self.memory.join("memory.usage_in_bytes"))?,
            memory_peak_bytes: Some(
                shared.read_u64(&self.memory.join("memory.max_usage_in_bytes"))?,
            ),
            // The `oom_kill` line exists since Linux 4.13.
            oom_kills: keyed_value(&shared.read(&oom_control)?, "oom_kill").unwrap_or(0),
            cpu_usage_ns: shared.read_u64(&self.cpuacct.join("cpuacct.usage"))?,
            pids_current: shared.read_u64(&self.pids.join("pids.current"))?,
        })
    }

    pub(super) fn reset_peak(&self, shared: &Shared) -> Result<(), CgroupError> {
        shared.write(&self.memory.join("memory.max_usage_in_bytes"), "0")
    }
}

fn missing(controller: &str) -> CgroupError {
    CgroupError::NotSupported(format!(
        "cgroup v1 has no `{controller}` controller mounted (sandpit needs {})",
        REQUIRED.join(", ")
    ))
}

/// Kills every process in `dirs` (and beneath), freezing through `freezer` when there is one.
pub(super) fn kill(
    shared: &Shared,
    dirs: &[PathBuf],
    freezer: Option<&Path>,
) -> Result<(), CgroupError> {
    shared.kill_loop(
        dirs,
        |deadline| match freezer {
            Some(dir) => freeze(shared, dir, deadline),
            None => Ok(()),
        },
        || match freezer {
            Some(dir) => thaw_tree(shared, dir),
            None => Ok(()),
        },
    )
}

fn kill_and_remove(
    shared: &Shared,
    dirs: &[PathBuf],
    freezer: Option<&Path>,
) -> Result<(), CgroupError> {
    kill(shared, dirs, freezer)?;
    for dir in dirs {
        shared.remove_tree(dir)?;
    }
    Ok(())
}

/// Freezes `dir` (and so everything beneath it) and waits briefly until it is frozen.
fn freeze(shared: &Shared, dir: &Path, deadline: Instant) -> Result<(), CgroupError> {
    let state = dir.join("freezer.state");
    if !shared.sys.exists(&state) {
        return Ok(()); // already removed
    }
    shared.write(&state, "FROZEN")?;
    let frozen = wait_until(deadline.min(Instant::now() + FREEZE_WAIT), || {
        Ok(shared
            .read_opt(&state)?
            .is_none_or(|s| s.trim() == "FROZEN"))
    })?;
    if !frozen {
        tracing::debug!(cgroup.dir = %dir.display(), "freezing is slow; killing anyway");
    }
    Ok(())
}

/// Thaws `dir` and every cgroup beneath it (a cgroup frozen on its own, e.g. by a crashed
/// instance, stays frozen when only its parent is thawed, and frozen processes cannot die).
fn thaw_tree(shared: &Shared, dir: &Path) -> Result<(), CgroupError> {
    let state = dir.join("freezer.state");
    if !shared.sys.exists(&state) {
        return Ok(());
    }
    shared.write(&state, "THAWED")?;
    for name in shared.subdirs(dir)? {
        thaw_tree(shared, &dir.join(name))?;
    }
    Ok(())
}
