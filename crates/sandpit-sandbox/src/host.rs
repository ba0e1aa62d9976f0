//! What the host can do for sandboxes: which cgroup hierarchy is mounted where, and whether
//! namespaces are available. Parsing is separate from reading `/proc` so the logic is tested
//! against fixed inputs, and the real probe is tested on this machine.

use std::path::PathBuf;

use serde::Serialize;

/// How cgroups are mounted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum CgroupMode {
    /// Pure cgroup v2 (the unified hierarchy) at `root`, with its enabled controllers.
    V2 {
        root: PathBuf,
        controllers: Vec<String>,
    },
    /// cgroup v1 controllers (possibly beside a v2 mount with few controllers: "hybrid").
    V1 {
        /// `(controller, mount point)` pairs, e.g. `("memory", "/sys/fs/cgroup/memory")`.
        controllers: Vec<(String, PathBuf)>,
    },
    /// No usable cgroup mount.
    None,
}

impl CgroupMode {
    /// Whether the controllers a sandbox needs (memory, pids, cpu) are all present.
    pub fn can_limit(&self) -> bool {
        let needed = ["memory", "pids", "cpu"];
        match self {
            CgroupMode::V2 { controllers, .. } => {
                needed.iter().all(|n| controllers.iter().any(|c| c == n))
            }
            CgroupMode::V1 { controllers } => needed
                .iter()
                .all(|n| controllers.iter().any(|(c, _)| c == n)),
            CgroupMode::None => false,
        }
    }
}

/// Reads the cgroup layout from `/proc/self/mountinfo`.
pub fn cgroup_mode() -> std::io::Result<CgroupMode> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")?;
    let v2_controllers = |root: &str| {
        std::fs::read_to_string(PathBuf::from(root).join("cgroup.controllers")).unwrap_or_default()
    };
    Ok(parse_cgroup_mode(&mountinfo, v2_controllers))
}

/// Decides the cgroup mode from mountinfo text. `read_v2_controllers` returns the contents of
/// `cgroup.controllers` under a v2 mount point.
pub fn parse_cgroup_mode(
    mountinfo: &str,
    read_v2_controllers: impl Fn(&str) -> String,
) -> CgroupMode {
    let mut v1 = Vec::new();
    let mut v2 = None;
    for line in mountinfo.lines() {
        // Fields: id parent major:minor root mount-point options [optional…] - fstype source super-options
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let mount_point = left.split(' ').nth(4).unwrap_or_default();
        let mut right = right.split(' ');
        let fstype = right.next().unwrap_or_default();
        let super_options = right.nth(1).unwrap_or_default();
        match fstype {
            "cgroup2" => v2 = Some(mount_point.to_owned()),
            "cgroup" => {
                for option in super_options.split(',') {
                    if matches!(
                        option,
                        "memory"
                            | "pids"
                            | "cpu"
                            | "cpuacct"
                            | "cpuset"
                            | "freezer"
                            | "devices"
                            | "blkio"
                    ) {
                        v1.push((option.to_owned(), PathBuf::from(mount_point)));
                    }
                }
            }
            _ => {}
        }
    }
    if !v1.is_empty() {
        return CgroupMode::V1 { controllers: v1 };
    }
    match v2 {
        Some(root) => CgroupMode::V2 {
            controllers: read_v2_controllers(&root)
                .split_whitespace()
                .map(str::to_owned)
                .collect(),
            root: PathBuf::from(root),
        },
        None => CgroupMode::None,
    }
}

/// Whether unprivileged user namespaces may be created (`/proc/sys/user/max_user_namespaces`
/// above zero).
pub fn user_namespaces_enabled() -> bool {
    std::fs::read_to_string("/proc/sys/user/max_user_namespaces")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .is_some_and(|n| n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
30 25 0:26 / /sys/fs/cgroup rw,nosuid - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw,nsdelegate
33 30 0:29 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory
34 30 0:30 / /sys/fs/cgroup/pids rw,nosuid - cgroup cgroup rw,pids
35 30 0:31 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct
";

    const PURE_V2: &str = "\
22 1 8:1 / / rw,relatime - ext4 /dev/vda rw
30 22 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";

    #[test]
    fn hybrid_is_v1_with_its_controllers() {
        let mode = parse_cgroup_mode(HYBRID, |_| "hugetlb".into());
        let CgroupMode::V1 { controllers } = &mode else {
            panic!("{mode:?}")
        };
        assert!(controllers.contains(&("memory".into(), "/sys/fs/cgroup/memory".into())));
        assert!(controllers.contains(&("cpuacct".into(), "/sys/fs/cgroup/cpu,cpuacct".into())));
        assert!(mode.can_limit());
    }

    #[test]
    fn pure_v2_reads_its_controllers() {
        let mode = parse_cgroup_mode(PURE_V2, |root| {
            assert_eq!(root, "/sys/fs/cgroup");
            "cpuset cpu io memory pids".into()
        });
        assert_eq!(
            mode,
            CgroupMode::V2 {
                root: "/sys/fs/cgroup".into(),
                controllers: ["cpuset", "cpu", "io", "memory", "pids"]
                    .map(String::from)
                    .to_vec(),
            }
        );
        assert!(mode.can_limit());
        let weak = parse_cgroup_mode(PURE_V2, |_| "cpu".into());
        assert!(!weak.can_limit());
    }

    #[test]
    fn no_cgroups_at_all() {
        assert_eq!(
            parse_cgroup_mode("22 1 8:1 / / rw - ext4 /dev/vda rw\n", |_| String::new()),
            CgroupMode::None
        );
    }

    #[test]
    fn this_host_has_a_usable_cgroup_layout() {
        // Every machine sandpit targets (this one: v1 controllers) must be able to limit sandboxes.
        let mode = cgroup_mode().unwrap();
        assert!(mode.can_limit(), "{mode:?}");
    }
}
