use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::fake::FakeSys;
use super::*;

const OWN_PID: u32 = 4242;
const V1_OWN_MEMORY: &str = "/cg/memory/process_api/abc";
const V1_PROC_SELF: &str = "\
9:name=systemd:/
8:pids:/
6:freezer:/
5:devices:/
4:memory:/process_api/abc
2:cpu,cpuacct:/
0::/
";
const V2_OWN: &str = "/cg2/system.slice/sandpit.service";
const V2_PROC_SELF: &str = "0::/system.slice/sandpit.service\n";

fn limits() -> CgroupLimits {
    CgroupLimits {
        memory_bytes: 32 << 20,
        pids: 64,
        cpu_millicores: Some(500),
    }
}

struct V1Host {
    memsw: bool,
    freezer: bool,
    /// `cpu,cpuacct` co-mounted (else two mounts).
    co_mounted: bool,
    pids: bool,
}

impl Default for V1Host {
    fn default() -> Self {
        Self {
            memsw: true,
            freezer: true,
            co_mounted: true,
            pids: true,
        }
    }
}

impl V1Host {
    fn build(&self) -> (FakeSys, CgroupMode) {
        let sys = FakeSys::default();
        let mut controllers = Vec::new();
        let mut memory = vec![
            ("cgroup.procs", ""),
            ("memory.limit_in_bytes", "9223372036854771712"),
            ("memory.usage_in_bytes", "1048576"),
            ("memory.max_usage_in_bytes", "2097152"),
            (
                "memory.oom_control",
                "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n",
            ),
        ];
        if self.memsw {
            memory.push(("memory.memsw.limit_in_bytes", "9223372036854771712"));
        }
        sys.mount("/cg/memory", &memory, false);
        controllers.push(("memory".to_owned(), PathBuf::from("/cg/memory")));
        if self.pids {
            sys.mount(
                "/cg/pids",
                &[
                    ("cgroup.procs", ""),
                    ("pids.max", "max"),
                    ("pids.current", "2"),
                ],
                false,
            );
            controllers.push(("pids".to_owned(), PathBuf::from("/cg/pids")));
        }
        let cpu_files = [
            ("cgroup.procs", ""),
            ("cpu.cfs_period_us", "100000"),
            ("cpu.cfs_quota_us", "-1"),
        ];
        let cpuacct_files = [("cgroup.procs", ""), ("cpuacct.usage", "123456789")];
        if self.co_mounted {
            let both: Vec<(&str, &str)> = cpu_files
                .iter()
                .chain(cpuacct_files.iter().skip(1))
                .copied()
                .collect();
            sys.mount("/cg/cpu,cpuacct", &both, false);
            controllers.push(("cpu".to_owned(), PathBuf::from("/cg/cpu,cpuacct")));
            controllers.push(("cpuacct".to_owned(), PathBuf::from("/cg/cpu,cpuacct")));
        } else {
            sys.mount("/cg/cpu", &cpu_files, false);
            sys.mount("/cg/cpuacct", &cpuacct_files, false);
            controllers.push(("cpu".to_owned(), PathBuf::from("/cg/cpu")));
            controllers.push(("cpuacct".to_owned(), PathBuf::from("/cg/cpuacct")));
        }
        if self.freezer {
            sys.mount(
                "/cg/freezer",
                &[("cgroup.procs", ""), ("freezer.state", "THAWED")],
                false,
            );
            controllers.push(("freezer".to_owned(), PathBuf::from("/cg/freezer")));
        }
        // Mounted, but not a controller sandpit uses: must be left alone.
        controllers.push(("devices".to_owned(), PathBuf::from("/cg/devices")));
        sys.mkdir_p(V1_OWN_MEMORY);
        (sys, CgroupMode::V1 { controllers })
    }
}

fn proc_self_v1(co_mounted: bool) -> String {
    if co_mounted {
        V1_PROC_SELF.to_owned()
    } else {
        V1_PROC_SELF.replace("2:cpu,cpuacct:/", "2:cpuacct:/\n1:cpu:/")
    }
}

fn manager(
    sys: &FakeSys,
    mode: &CgroupMode,
    proc_self: &str,
) -> Result<CgroupManager, CgroupError> {
    CgroupManager::with_sys(
        mode,
        proc_self,
        OWN_PID,
        Arc::new(sys.clone()),
        Duration::from_millis(100),
    )
}

fn v1() -> (FakeSys, CgroupManager) {
    let (sys, mode) = V1Host::default().build();
    let manager = manager(&sys, &mode, V1_PROC_SELF).unwrap();
    (sys, manager)
}

struct V2Host {
    kill_file: bool,
    swap: bool,
    peak: bool,
    controllers: &'static str,
}

impl Default for V2Host {
    fn default() -> Self {
        Self {
            kill_file: true,
            swap: true,
            peak: true,
            controllers: "cpuset cpu io memory pids",
        }
    }
}

impl V2Host {
    fn build(&self) -> (FakeSys, CgroupMode) {
        let sys = FakeSys::default();
        let mut files = vec![
            ("cgroup.procs", ""),
            ("cgroup.controllers", self.controllers),
            ("cgroup.subtree_control", ""),
            ("cgroup.events", ""),
            ("cgroup.freeze", "0"),
            ("memory.max", "max"),
            ("memory.current", "4096"),
            ("memory.events", "low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\n"),
            ("pids.max", "max"),
            ("pids.current", "2"),
            ("cpu.max", "max 100000"),
            (
                "cpu.stat",
                "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n",
            ),
        ];
        if self.kill_file {
            files.push(("cgroup.kill", ""));
        }
        if self.swap {
            files.push(("memory.swap.max", "max"));
        }
        if self.peak {
            files.push(("memory.peak", "8192"));
        }
        sys.mount("/cg2", &files, true);
        sys.mkdir_p(V2_OWN);
        let mode = CgroupMode::V2 {
            root: "/cg2".into(),
            controllers: self
                .controllers
                .split_whitespace()
                .map(str::to_owned)
                .collect(),
        };
        (sys, mode)
    }
}

fn v2_with(host: &V2Host) -> (FakeSys, CgroupManager) {
    let (sys, mode) = host.build();
    let manager = manager(&sys, &mode, V2_PROC_SELF).unwrap();
    (sys, manager)
}

fn v2() -> (FakeSys, CgroupManager) {
    v2_with(&V2Host::default())
}

fn dir_in(cgroup: &Cgroup, prefix: &str) -> PathBuf {
    cgroup
        .dirs()
        .into_iter()
        .find(|d| d.starts_with(prefix))
        .unwrap()
}

fn not_supported(result: Result<CgroupManager, CgroupError>) -> String {
    match result {
        Err(CgroupError::NotSupported(message)) => message,
        other => panic!("expected NotSupported, got {other:?}"),
    }
}

#[test]
fn parses_proc_self_cgroup() {
    let own = OwnCgroups::parse(V1_PROC_SELF);
    assert_eq!(own.v1_path("memory"), Some("/process_api/abc"));
    assert_eq!(own.v1_path("cpu"), Some("/"));
    assert_eq!(own.v1_path("cpuacct"), Some("/"));
    assert_eq!(own.v1_path("name=systemd"), Some("/"));
    assert_eq!(own.v1_path("hugetlb"), None);
    assert_eq!(own.v2.as_deref(), Some("/"));
    let own = OwnCgroups::parse("0::/user.slice/a:b.scope\n");
    assert_eq!(own.v2.as_deref(), Some("/user.slice/a:b.scope"));
    assert!(own.v1.is_empty());
}

#[test]
fn recognises_only_well_formed_parent_names() {
    assert_eq!(parent_pid("sandpit-123-deadbeef"), Some(123));
    assert_eq!(parent_pid("sandpit-1-0123abcd"), Some(1));
    for name in [
        "sandpit-supervisor",
        "sandpit-123-DEADBEEF",
        "sandpit-123-deadbee",
        "sandpit-123-deadbeef0",
        "sandpit-12a-deadbeef",
        "sandpit-+12-deadbeef",
        "sandpit--deadbeef",
        "other-123-deadbeef",
    ] {
        assert_eq!(parent_pid(name), None, "{name}");
    }
}

#[test]
fn validates_names_and_limits() {
    let (_sys, manager) = v1();
    for name in ["", "Upper", "a_b", "a.b", "../x", "a/b", &"a".repeat(65)] {
        assert!(
            matches!(
                manager.create(name, &limits()),
                Err(CgroupError::InvalidName { .. })
            ),
            "{name:?}"
        );
    }
    for bad in [
        CgroupLimits {
            memory_bytes: 0,
            ..limits()
        },
        CgroupLimits {
            pids: 0,
            ..limits()
        },
        CgroupLimits {
            pids: MAX_PIDS + 1,
            ..limits()
        },
        CgroupLimits {
            cpu_millicores: Some(9),
            ..limits()
        },
    ] {
        assert!(
            matches!(
                manager.create("ok", &bad),
                Err(CgroupError::InvalidLimits(_))
            ),
            "{bad:?}"
        );
    }
    assert!(manager.create(&"a".repeat(64), &limits()).is_ok());
}

#[test]
fn v1_parent_lives_under_the_own_cgroup_of_each_used_hierarchy() {
    let (_sys, manager) = v1();
    assert_eq!(manager.version(), CgroupVersion::V1);
    let parents = manager.parent_dirs();
    // memory, pids, cpu+cpuacct (one hierarchy), freezer; devices is not used.
    assert_eq!(parents.len(), 4, "{parents:?}");
    let name = parents[0].file_name().unwrap().to_str().unwrap().to_owned();
    assert!(name.starts_with(&format!("sandpit-{OWN_PID}-")), "{name}");
    assert_eq!(parent_pid(&name), Some(OWN_PID));
    let expected: Vec<PathBuf> = [V1_OWN_MEMORY, "/cg/pids", "/cg/cpu,cpuacct", "/cg/freezer"]
        .iter()
        .map(|own| Path::new(own).join(&name))
        .collect();
    assert_eq!(parents, expected);
}

#[test]
fn v1_separate_cpu_and_cpuacct_are_two_hierarchies() {
    let host = V1Host {
        co_mounted: false,
        ..V1Host::default()
    };
    let (sys, mode) = host.build();
    let manager = manager(&sys, &mode, &proc_self_v1(false)).unwrap();
    assert_eq!(manager.parent_dirs().len(), 5);
    let cgroup = manager.create("box", &limits()).unwrap();
    assert_eq!(cgroup.procs_files().len(), 5);
    assert!(sys.exists(&dir_in(&cgroup, "/cg/cpuacct").join("cpuacct.usage")));
    assert_eq!(cgroup.usage().unwrap().cpu_usage_ns, 123_456_789);
}

#[test]
fn v1_create_writes_the_limits() {
    let (sys, manager) = v1();
    let cgroup = manager.create("box-1", &limits()).unwrap();
    let memory = dir_in(&cgroup, "/cg/memory");
    assert_eq!(memory, manager.parent_dirs()[0].join("box-1"));
    let cpu = dir_in(&cgroup, "/cg/cpu,cpuacct");
    let pids = dir_in(&cgroup, "/cg/pids");
    let log: Vec<String> = sys.state().log.clone();
    let at = |needle: &str| log.iter().position(|l| l == needle).unwrap();
    let limit = at(&format!(
        "write {}/memory.limit_in_bytes 33554432",
        memory.display()
    ));
    let memsw = at(&format!(
        "write {}/memory.memsw.limit_in_bytes 33554432",
        memory.display()
    ));
    assert!(
        limit < memsw,
        "memsw must follow the memory limit: {log:#?}"
    );
    assert_eq!(sys.file(&pids.join("pids.max")).unwrap(), "64");
    assert_eq!(sys.file(&cpu.join("cpu.cfs_period_us")).unwrap(), "100000");
    assert_eq!(sys.file(&cpu.join("cpu.cfs_quota_us")).unwrap(), "50000");
    assert_eq!(
        cgroup.procs_files(),
        cgroup
            .dirs()
            .iter()
            .map(|d| d.join("cgroup.procs"))
            .collect::<Vec<_>>()
    );
    assert_eq!(cgroup.procs_files().len(), 4);

    let unlimited = manager
        .create(
            "box-2",
            &CgroupLimits {
                cpu_millicores: None,
                ..limits()
            },
        )
        .unwrap();
    let cpu = dir_in(&unlimited, "/cg/cpu,cpuacct");
    assert_eq!(sys.file(&cpu.join("cpu.cfs_quota_us")).unwrap(), "-1");
}

#[test]
fn v1_without_swap_accounting_sets_only_the_memory_limit() {
    let host = V1Host {
        memsw: false,
        ..V1Host::default()
    };
    let (sys, mode) = host.build();
    let manager = manager(&sys, &mode, V1_PROC_SELF).unwrap();
    let cgroup = manager.create("box", &limits()).unwrap();
    let memory = dir_in(&cgroup, "/cg/memory");
    assert_eq!(
        sys.file(&memory.join("memory.limit_in_bytes")).unwrap(),
        "33554432"
    );
    assert!(
        !sys.state()
            .log
            .iter()
            .any(|l| l.contains("memory.memsw.limit_in_bytes"))
    );
}

#[test]
fn v1_create_failure_removes_what_it_created() {
    let (sys, manager) = v1();
    // A limit the "kernel" rejects: remove the pids.max file from the template.
    sys.state()
        .templates
        .get_mut(Path::new("/cg/pids"))
        .unwrap()
        .retain(|(name, _)| name != "pids.max");
    let error = manager.create("box", &limits()).unwrap_err();
    assert!(
        matches!(&error, CgroupError::Write { path, .. } if path.ends_with("box/pids.max")),
        "{error:?}"
    );
    for parent in manager.parent_dirs() {
        assert!(!sys.exists(&parent.join("box")), "{parent:?}");
        assert!(sys.exists(&parent));
    }
    let again = manager.create("box", &limits());
    assert!(again.is_err(), "still no pids.max");
}

#[test]
fn v1_creating_an_existing_cgroup_fails_and_keeps_it() {
    let (sys, manager) = v1();
    let first = manager.create("box", &limits()).unwrap();
    let error = manager.create("box", &limits()).unwrap_err();
    assert!(
        matches!(&error, CgroupError::Create { source, .. } if source.kind() == io::ErrorKind::AlreadyExists),
        "{error:?}"
    );
    for dir in first.dirs() {
        assert!(sys.exists(&dir));
    }
}

#[test]
fn v1_reports_exactly_which_controller_is_missing() {
    let host = V1Host {
        pids: false,
        ..V1Host::default()
    };
    let (sys, mode) = host.build();
    let message = not_supported(manager(&sys, &mode, V1_PROC_SELF));
    assert!(message.contains("no `pids` controller"), "{message}");
}

#[test]
fn v1_reports_a_cgroup_missing_from_proc_self_cgroup() {
    let (sys, mode) = V1Host::default().build();
    let proc_self = V1_PROC_SELF.replace("8:pids:/\n", "");
    let message = not_supported(manager(&sys, &mode, &proc_self));
    assert!(
        message.contains("no cgroup for the v1 `pids` controller mounted at /cg/pids"),
        "{message}"
    );
}

#[test]
fn own_cgroup_outside_the_mount_is_reported() {
    let (sys, mode) = V1Host::default().build();
    let proc_self = V1_PROC_SELF.replace("/process_api/abc", "/elsewhere/xyz");
    let message = not_supported(manager(&sys, &mode, &proc_self));
    assert!(message.contains("/elsewhere/xyz"), "{message}");
    let proc_self = V1_PROC_SELF.replace("/process_api/abc", "/../abc");
    let message = not_supported(manager(&sys, &mode, &proc_self));
    assert!(
        message.contains("outside its cgroup namespace"),
        "{message}"
    );
}

#[test]
fn own_cgroup_of_a_bind_mounted_subtree_is_found() {
    // /proc/self/cgroup shows the full path, the mount only the subtree below `/kubepods`.
    let (sys, mode) = V1Host::default().build();
    let proc_self = V1_PROC_SELF.replace("/process_api/abc", "/kubepods/process_api/abc");
    let manager = manager(&sys, &mode, &proc_self).unwrap();
    assert!(manager.parent_dirs()[0].starts_with(V1_OWN_MEMORY));
}

#[test]
fn v1_usage_reads_the_counters() {
    let (_sys, manager) = v1();
    let cgroup = manager.create("box", &limits()).unwrap();
    assert_eq!(
        cgroup.usage().unwrap(),
        CgroupUsage {
            memory_current_bytes: 1_048_576,
            memory_peak_bytes: Some(2_097_152),
            oom_kills: 3,
            cpu_usage_ns: 123_456_789,
            pids_current: 2,
        }
    );
}

#[test]
fn v1_reset_peak_zeroes_max_usage() {
    let (sys, manager) = v1();
    let cgroup = manager.create("box", &limits()).unwrap();
    cgroup.reset_peak().unwrap();
    let memory = dir_in(&cgroup, "/cg/memory");
    assert_eq!(
        sys.writes_to(&memory.join("memory.max_usage_in_bytes")),
        ["0"]
    );
}

#[test]
fn add_pid_joins_every_hierarchy() {
    let (sys, manager) = v1();
    let cgroup = manager.create("box", &limits()).unwrap();
    cgroup.add_pid(700).unwrap();
    for file in cgroup.procs_files() {
        assert_eq!(sys.writes_to(&file), ["700"], "{file:?}");
    }
    assert_eq!(cgroup.pids().unwrap(), [700]);
}

#[test]
fn v1_kill_all_freezes_then_kills_then_thaws() {
    let (sys, manager) = v1();
    let cgroup = manager.create("box", &limits()).unwrap();
    cgroup.add_pid(100).unwrap();
    cgroup.add_pid(101).unwrap();
    let freezer = dir_in(&cgroup, "/cg/freezer").join("freezer.state");
    sys.state().log.clear();
    cgroup.kill_all().unwrap();
    assert!(cgroup.pids().unwrap().is_empty());
    let log = sys.state().log.clone();
    let frozen = format!("write {} FROZEN", freezer.display());
    let thawed = format!("write {} THAWED", freezer.display());
    assert_eq!(
        log[..4],
        [frozen.clone(), "kill 100".into(), "kill 101".into(), thawed],
        "{log:#?}"
    );
}

#[test]
fn v1_kill_all_without_freezer_still_kills() {
    let host = V1Host {
        freezer: false,
        ..V1Host::default()
    };
    let (sys, mode) = host.build();
    let manager = manager(&sys, &mode, V1_PROC_SELF).unwrap();
    let cgroup = manager.create("box", &limits()).unwrap();
    assert_eq!(cgroup.procs_files().len(), 3);
    cgroup.add_pid(100).unwrap();
    cgroup.kill_all().unwrap();
    assert!(cgroup.pids().unwrap().is_empty());
    assert_eq!(sys.state().kills, [100]);
}

#[test]
fn kill_all_reports_processes_that_do_not_die() {
    let (sys, manager) = v1();
    let cgroup = manager.create("box", &limits()).unwrap();
    cgroup.add_pid(7).unwrap();
    sys.state().unkillable.insert(7);
    match cgroup.kill_all() {
        Err(CgroupError::KillTimeout { pids, .. }) => assert_eq!(pids, [7]),
        other => panic!("{other:?}"),
    }
    // The cgroup was thawed again, not left frozen.
    let freezer = dir_in(&cgroup, "/cg/freezer").join("freezer.state");
    assert_eq!(sys.read(&freezer).unwrap().trim(), "THAWED");
}

#[test]
fn kill_all_never_kills_sandpit_itself() {
    let (sys, manager) = v1();
    let cgroup = manager.create("box", &limits()).unwrap();
    cgroup.add_pid(OWN_PID).unwrap();
    cgroup.add_pid(8).unwrap();
    assert!(matches!(
        cgroup.kill_all(),
        Err(CgroupError::KillTimeout { .. })
    ));
    assert_eq!(
        sys.state().kills.iter().copied().collect::<BTreeSet<_>>(),
        BTreeSet::from([8])
    );
}

#[test]
fn destroy_removes_every_directory_and_is_idempotent() {
    let (sys, manager) = v1();
    let cgroup = manager.create("box", &limits()).unwrap();
    cgroup.add_pid(100).unwrap();
    sys.state().busy_removals = 2; // the kernel may still report it busy for a moment
    cgroup.destroy().unwrap();
    for dir in cgroup.dirs() {
        assert!(!sys.exists(&dir), "{dir:?}");
    }
    assert!(!sys.is_alive(100));
    cgroup.destroy().unwrap();
    cgroup.kill_all().unwrap();
    assert!(cgroup.pids().unwrap().is_empty());
}

#[test]
fn cleanup_removes_the_parent_with_its_sandboxes() {
    let (sys, manager) = v1();
    let a = manager.create("a", &limits()).unwrap();
    let b = manager.create("b", &limits()).unwrap();
    a.add_pid(100).unwrap();
    b.add_pid(200).unwrap();
    manager.cleanup().unwrap();
    for parent in manager.parent_dirs() {
        assert!(!sys.exists(&parent), "{parent:?}");
    }
    assert!(sys.state().procs.is_empty());
    assert!(sys.exists(Path::new(V1_OWN_MEMORY)));
    // The handles stay usable: destroying them now is a no-op.
    a.destroy().unwrap();
}

#[test]
fn v1_reaps_parents_of_dead_instances_only() {
    let (sys, mode) = V1Host::default().build();
    // A dead instance (pid 999) left a frozen sandbox with a process in it.
    let dead = "sandpit-999-deadbeef";
    for own in [V1_OWN_MEMORY, "/cg/pids", "/cg/cpu,cpuacct", "/cg/freezer"] {
        sys.mkdir_p(&format!("{own}/{dead}/box"));
        sys.spawn_in(555, &format!("{own}/{dead}/box"));
    }
    sys.write(
        &Path::new("/cg/freezer")
            .join(dead)
            .join("box/freezer.state"),
        "FROZEN",
    )
    .unwrap();
    // A live instance (pid 1000) and unrelated directories are left alone.
    let live = "sandpit-1000-cafebabe";
    sys.mkdir_p(&format!("{V1_OWN_MEMORY}/{live}/box"));
    sys.state().alive.insert(1000);
    sys.mkdir_p(&format!("{V1_OWN_MEMORY}/other"));
    sys.mkdir_p(&format!("{V1_OWN_MEMORY}/sandpit-999-notahex1"));

    let _manager = manager(&sys, &mode, V1_PROC_SELF).unwrap();
    for own in [V1_OWN_MEMORY, "/cg/pids", "/cg/cpu,cpuacct", "/cg/freezer"] {
        assert!(!sys.exists(&Path::new(own).join(dead)), "{own}");
    }
    assert!(!sys.is_alive(555));
    for kept in [live, "other", "sandpit-999-notahex1"] {
        assert!(sys.exists(&Path::new(V1_OWN_MEMORY).join(kept)), "{kept}");
    }
}

#[test]
fn no_cgroups_at_all_is_not_supported() {
    let sys = FakeSys::default();
    let message = not_supported(manager(&sys, &CgroupMode::None, ""));
    assert!(message.contains("no cgroup filesystem"), "{message}");
}

#[test]
fn v2_enables_controllers_and_writes_the_limits() {
    let (sys, manager) = v2();
    assert_eq!(manager.version(), CgroupVersion::V2);
    let parents = manager.parent_dirs();
    assert_eq!(parents.len(), 1);
    let parent = &parents[0];
    assert_eq!(parent.parent().unwrap(), Path::new(V2_OWN));
    assert_eq!(
        sys.file(&Path::new(V2_OWN).join("cgroup.subtree_control"))
            .unwrap(),
        "memory pids cpu"
    );
    assert_eq!(
        sys.file(&parent.join("cgroup.subtree_control")).unwrap(),
        "memory pids cpu"
    );
    assert!(!sys.exists(&Path::new(V2_OWN).join(v2::SUPERVISOR)));

    let cgroup = manager.create("box", &limits()).unwrap();
    let dir = parent.join("box");
    assert_eq!(cgroup.dirs(), std::slice::from_ref(&dir));
    assert_eq!(cgroup.procs_files(), [dir.join("cgroup.procs")]);
    assert_eq!(sys.file(&dir.join("memory.max")).unwrap(), "33554432");
    assert_eq!(sys.file(&dir.join("memory.swap.max")).unwrap(), "0");
    assert_eq!(sys.file(&dir.join("pids.max")).unwrap(), "64");
    assert_eq!(sys.file(&dir.join("cpu.max")).unwrap(), "50000 100000");

    let unlimited = manager
        .create(
            "box-2",
            &CgroupLimits {
                cpu_millicores: None,
                ..limits()
            },
        )
        .unwrap();
    assert_eq!(
        sys.file(&unlimited.dirs()[0].join("cpu.max")).unwrap(),
        "max 100000"
    );
}

#[test]
fn v2_without_swap_accounting_skips_swap_max() {
    let (sys, manager) = v2_with(&V2Host {
        swap: false,
        ..V2Host::default()
    });
    let cgroup = manager.create("box", &limits()).unwrap();
    assert!(!sys.exists(&cgroup.dirs()[0].join("memory.swap.max")));
    assert_eq!(
        sys.file(&cgroup.dirs()[0].join("memory.max")).unwrap(),
        "33554432"
    );
}

#[test]
fn v2_moves_itself_out_of_a_busy_own_cgroup() {
    let (sys, mode) = V2Host::default().build();
    sys.spawn_in(OWN_PID, V2_OWN);
    let manager = manager(&sys, &mode, V2_PROC_SELF).unwrap();
    let supervisor = Path::new(V2_OWN).join(v2::SUPERVISOR);
    assert_eq!(
        sys.state().procs[&OWN_PID].values().collect::<Vec<_>>(),
        [&supervisor]
    );
    assert_eq!(
        sys.writes_to(&supervisor.join("cgroup.procs")),
        [OWN_PID.to_string()]
    );
    assert_eq!(
        sys.file(&Path::new(V2_OWN).join("cgroup.subtree_control"))
            .unwrap(),
        "memory pids cpu"
    );
    assert!(manager.create("box", &limits()).is_ok());
}

#[test]
fn v2_refuses_a_cgroup_shared_with_other_processes() {
    let (sys, mode) = V2Host::default().build();
    sys.spawn_in(OWN_PID, V2_OWN);
    sys.spawn_in(77, V2_OWN);
    let error = manager(&sys, &mode, V2_PROC_SELF).unwrap_err();
    assert!(
        matches!(&error, CgroupError::SharedCgroup { path } if path == Path::new(V2_OWN)),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains("Delegate=yes"), "{message}");
    assert!(message.contains(V2_OWN), "{message}");
}

#[test]
fn v2_in_the_root_cgroup_needs_no_supervisor() {
    let (sys, mode) = V2Host::default().build();
    sys.spawn_in(OWN_PID, "/cg2");
    let manager = manager(&sys, &mode, "0::/\n").unwrap();
    assert_eq!(
        manager.parent_dirs()[0].parent().unwrap(),
        Path::new("/cg2")
    );
    assert!(!sys.exists(&Path::new("/cg2").join(v2::SUPERVISOR)));
}

#[test]
fn v2_reports_exactly_which_controller_is_missing() {
    let (sys, mode) = V2Host {
        controllers: "cpu memory",
        ..V2Host::default()
    }
    .build();
    let message = not_supported(manager(&sys, &mode, V2_PROC_SELF));
    assert_eq!(
        message,
        format!(
            "cgroup v2 at {V2_OWN} has no `pids` controller enabled (its parent must delegate it \
             in cgroup.subtree_control)"
        )
    );
}

#[test]
fn v2_usage_reads_the_counters() {
    let (_sys, manager) = v2();
    let cgroup = manager.create("box", &limits()).unwrap();
    assert_eq!(
        cgroup.usage().unwrap(),
        CgroupUsage {
            memory_current_bytes: 4096,
            memory_peak_bytes: Some(8192),
            oom_kills: 1,
            cpu_usage_ns: 1_500_000,
            pids_current: 2,
        }
    );
    let (_sys, manager) = v2_with(&V2Host {
        peak: false,
        ..V2Host::default()
    });
    let cgroup = manager.create("box", &limits()).unwrap();
    assert_eq!(cgroup.usage().unwrap().memory_peak_bytes, None);
    cgroup.reset_peak().unwrap();
    assert_eq!(cgroup.usage().unwrap().memory_peak_bytes, None);
}

#[test]
fn v2_reset_peak_reads_through_the_descriptor_that_reset_it() {
    let (sys, manager) = v2();
    let cgroup = manager.create("box", &limits()).unwrap();
    let peak = cgroup.dirs()[0].join("memory.peak");
    cgroup.reset_peak().unwrap();
    cgroup.reset_peak().unwrap();
    assert_eq!(sys.writes_to(&peak), ["reset", "reset"]);
    assert_eq!(cgroup.usage().unwrap().memory_peak_bytes, Some(8192));
    assert_eq!(sys.state().peak_handle_reads, 1);
}

#[test]
fn v2_reset_peak_is_a_no_op_where_the_kernel_cannot_reset() {
    let (sys, manager) = v2();
    sys.state().read_only_peak = true;
    let cgroup = manager.create("box", &limits()).unwrap();
    cgroup.reset_peak().unwrap();
    assert!(
        sys.writes_to(&cgroup.dirs()[0].join("memory.peak"))
            .is_empty()
    );
    assert_eq!(cgroup.usage().unwrap().memory_peak_bytes, Some(8192));
    assert_eq!(sys.state().peak_handle_reads, 0);
}

#[test]
fn v2_kill_all_uses_cgroup_kill() {
    let (sys, manager) = v2();
    let cgroup = manager.create("box", &limits()).unwrap();
    cgroup.add_pid(100).unwrap();
    cgroup.add_pid(101).unwrap();
    assert_eq!(cgroup.pids().unwrap(), [100, 101]);
    cgroup.kill_all().unwrap();
    assert!(cgroup.pids().unwrap().is_empty());
    assert_eq!(sys.writes_to(&cgroup.dirs()[0].join("cgroup.kill")), ["1"]);
    assert!(sys.state().kills.is_empty());
}

#[test]
fn v2_kill_all_without_cgroup_kill_freezes_and_signals() {
    let (sys, manager) = v2_with(&V2Host {
        kill_file: false,
        ..V2Host::default()
    });
    let cgroup = manager.create("box", &limits()).unwrap();
    cgroup.add_pid(100).unwrap();
    let freeze = cgroup.dirs()[0].join("cgroup.freeze");
    sys.state().log.clear();
    cgroup.kill_all().unwrap();
    assert!(cgroup.pids().unwrap().is_empty());
    let log = sys.state().log.clone();
    assert_eq!(
        log[..3],
        [
            format!("write {} 1", freeze.display()),
            "kill 100".to_owned(),
            format!("write {} 0", freeze.display()),
        ],
        "{log:#?}"
    );
}

#[test]
fn v2_kill_all_reports_processes_that_do_not_die() {
    let (sys, manager) = v2();
    let cgroup = manager.create("box", &limits()).unwrap();
    cgroup.add_pid(9).unwrap();
    sys.state().unkillable.insert(9);
    match cgroup.kill_all() {
        Err(CgroupError::KillTimeout { pids, path, .. }) => {
            assert_eq!(pids, [9]);
            assert_eq!(path, cgroup.dirs()[0]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn v2_cleanup_and_reaping() {
    let (sys, mode) = V2Host::default().build();
    let dead = format!("{V2_OWN}/sandpit-31337-0badf00d");
    sys.mkdir_p(&format!("{dead}/box"));
    sys.spawn_in(600, &format!("{dead}/box"));
    let manager = manager(&sys, &mode, V2_PROC_SELF).unwrap();
    assert!(!sys.exists(Path::new(&dead)));
    assert!(!sys.is_alive(600));

    let cgroup = manager.create("box", &limits()).unwrap();
    cgroup.add_pid(601).unwrap();
    manager.cleanup().unwrap();
    assert!(!sys.exists(&manager.parent_dirs()[0]));
    assert!(!sys.is_alive(601));
    cgroup.destroy().unwrap();
}

#[test]
fn version_serializes_in_snake_case() {
    assert_eq!(serde_json::to_string(&CgroupVersion::V1).unwrap(), "\"v1\"");
    assert_eq!(serde_json::to_string(&CgroupVersion::V2).unwrap(), "\"v2\"");
}

#[test]
fn handles_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<CgroupManager>();
    assert_send_sync::<Cgroup>();
    assert_send_sync::<CgroupError>();
}

#[test]
fn errors_say_what_failed_where() {
    let error = CgroupError::Write {
        path: "/sys/fs/cgroup/x/pids.max".into(),
        value: "64".into(),
        source: io::Error::from_raw_os_error(libc::EINVAL),
    };
    assert_eq!(
        error.to_string(),
        "cannot write \"64\" to /sys/fs/cgroup/x/pids.max: Invalid argument (os error 22)"
    );
}
