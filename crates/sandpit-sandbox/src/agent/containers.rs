//! The room a rootless container engine (Podman) needs in a box: its own disk, the host's
//! shared base images id-mapped to the box's user, a generated `/etc/containers`, and the few
//! kernel settings of the box's own namespaces that containers expect. Built as root inside
//! the box's mount namespace, before the root is entered (see [`super::root::build`]).
//!
//! Everything an engine starts is a process of the box: under its cgroup (memory, processes,
//! CPU), as its uid. Each container has a network namespace of its own (slirp4netns, whose only
//! way out is the box's own loopback-only namespace), and `docker run -p 8080:8000` publishes
//! into the box's: 127.0.0.1:8080 in the box, nowhere else.
//!
//! `docker` in a box is Podman run daemonless. (Measured here: Podman 4.3's Docker-compatible
//! API service, driven by the Docker CLI, puts containers on a bridge network that rootless
//! Podman cannot build inside a box — its rootless network namespace fails to mount — while
//! the CLI's per-container slirp4netns works. It also starts faster: no service to wait for.)

use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use nix::mount::MsFlags;

use super::root::{do_mount, io_err, path_str};
use crate::protocol::{AgentSetup, ContainersSetup};
use crate::spec::containers::{BIN_DIR, DISK_DIR, IMAGES_DIR, RUN_DIR};

/// `containers.conf`: crun without cgroups of its own (the box's cgroup counts everything), a
/// network namespace per container by slirp4netns with ports published into the box's (its
/// own port handler: Debian's Podman has no rootlessport), no kernel keyring (keyctl stays
/// refused), logs and events in files, temporary files on the disk.
const CONTAINERS_CONF: &str = r#"# Written by sandpit for this box.
[containers]
netns = "slirp4netns"
cgroups = "disabled"
keyring = false
log_driver = "k8s-file"
log_size_max = 10485760
# Within what the box's processes may have (a container cannot raise a hard limit).
default_ulimits = ["nofile=1024:1024"]

[engine]
runtime = "crun"
network_cmd_options = ["port_handler=slirp4netns", "enable_ipv6=false"]
cgroup_manager = "cgroupfs"
events_logger = "file"
image_copy_tmp_dir = "/var/lib/containers/tmp"
"#;

/// `registries.conf`: short names resolve to Docker Hub's names, which is what the local base
/// images are tagged with; no registry is reachable from a box, and saying "blocked" beats a
/// DNS timeout.
const REGISTRIES_CONF: &str = r#"# Written by sandpit for this box: images come from `sandpit images`, not from a registry.
unqualified-search-registries = ["docker.io"]
short-name-mode = "permissive"

[[registry]]
location = "docker.io"
blocked = true
"#;

const POLICY_JSON: &str = r#"{"default": [{"type": "insecureAcceptAnything"}]}
"#;

fn storage_conf(with_images: bool) -> String {
    let stores = if with_images {
        format!("additionalimagestores = [\"{IMAGES_DIR}\"]\n")
    } else {
        String::new()
    };
    format!(
        "# Written by sandpit for this box.\n\
         [storage]\n\
         driver = \"overlay\"\n\
         graphroot = \"{DISK_DIR}/storage\"\n\
         runroot = \"{RUN_DIR}/storage\"\n\
         rootless_storage_path = \"{DISK_DIR}/storage\"\n\n\
         [storage.options]\n\
         {stores}"
    )
}

/// Mounts the box user's `/run` (before volumes, which may sit under it): the engine's runtime
/// directory and API socket live there, in memory, gone with the box.
pub fn mount_run(setup: &AgentSetup, root: &Path) -> io::Result<()> {
    let run = root.join("run");
    fs::create_dir_all(&run)?;
    do_mount(
        Some("tmpfs"),
        &run,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some(&super::root::tmpfs_options(
            16 << 20,
            0o755,
            Some((setup.uid, setup.gid)),
        )),
    )
}

/// Builds the engine's room under the staging `root`; `proc` is the box's new `/proc` there.
pub fn build(
    containers: &ContainersSetup,
    image_tree: Option<&OwnedFd>,
    exe: &fs::File,
    setup: &AgentSetup,
    root: &Path,
    proc: &Path,
) -> io::Result<()> {
    let (uid, gid) = (setup.uid, setup.gid);
    let disk = root.join(DISK_DIR.trim_start_matches('/'));
    fs::create_dir_all(&disk).map_err(|e| io_err("mkdir", &disk, e))?;
    do_mount(
        Some(path_str(&containers.device)?),
        &disk,
        Some("ext4"),
        // Executables stay: image layers are programs. Set-uid bits mean nothing under
        // no_new_privs, and device files are the kernel's to refuse in a user namespace.
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOATIME,
        Some("errors=remount-ro"),
    )?;
    let _ = fs::remove_dir(disk.join("lost+found"));
    std::os::unix::fs::lchown(&disk, Some(uid), Some(gid))?;
    let run = root.join(RUN_DIR.trim_start_matches('/'));
    for (dir, mode) in [
        (disk.join("storage"), 0o700),
        (disk.join("tmp"), 0o1777),
        (run, 0o700),
    ] {
        fs::DirBuilder::new()
            .mode(mode)
            .create(&dir)
            .map_err(|e| io_err("mkdir", &dir, e))?;
        // The umask took bits off: set the mode itself.
        fs::set_permissions(&dir, fs::Permissions::from_mode(mode))?;
        std::os::unix::fs::lchown(&dir, Some(uid), Some(gid))?;
    }
    // Builders put their scratch files in /var/tmp: on the disk, not in memory.
    symlink(format!("{DISK_DIR}/tmp"), root.join("var/tmp"))?;

    if let Some(tree) = image_tree {
        let dst = root.join(IMAGES_DIR.trim_start_matches('/'));
        fs::create_dir_all(&dst).map_err(|e| io_err("mkdir", &dst, e))?;
        let sub = (
            containers.sub_start,
            crate::spec::containers::SUBORDINATE_IDS,
        );
        let userns = super::sys::idmap_userns(uid, gid, sub, proc)
            .map_err(|e| io::Error::other(format!("a user namespace for the id map: {e}")))?;
        super::sys::attach_idmapped(tree, &userns, &dst)
            .map_err(|e| io_err("id-mapped mount of the base images at", &dst, e))?;
    }

    // Container runtimes bind /sys for a container that shares the network, and engines look
    // at /sys/fs/cgroup to learn the cgroup version. An empty read-only tmpfs there gives them
    // both and shows nothing of the host: "cgroup v1 without controllers", so a rootless
    // engine makes no cgroups of its own and the box's cgroup counts everything.
    let cgroup = root.join("sys/fs/cgroup");
    fs::create_dir_all(&cgroup)?;
    do_mount(
        Some("tmpfs"),
        &cgroup,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC | MsFlags::MS_RDONLY,
        Some("size=4k,mode=755"),
    )?;

    // `docker` is Podman: the same commands and flags, no daemon to start or to share.
    let bin = root.join(BIN_DIR.trim_start_matches('/'));
    fs::create_dir_all(&bin)?;
    symlink("/usr/bin/podman", bin.join("docker"))?;
    // newuidmap and newgidmap are this program, asking the agent (see [`super::idmap`]).
    // Through the handle opened before the staging root covered /tmp (the binary may be there).
    let exe = PathBuf::from(format!("/proc/self/fd/{}", exe.as_raw_fd()));
    for name in ["newuidmap", "newgidmap"] {
        let dst = bin.join(name);
        fs::write(&dst, b"")?;
        do_mount(Some(path_str(&exe)?), &dst, None, MsFlags::MS_BIND, None)?;
        do_mount(
            None,
            &dst,
            None,
            MsFlags::MS_BIND
                | MsFlags::MS_REMOUNT
                | MsFlags::MS_RDONLY
                | MsFlags::MS_NOSUID
                | MsFlags::MS_NODEV,
            None,
        )?;
    }
    std::os::unix::fs::lchown(&bin, Some(uid), Some(gid))?;
    // slirp4netns gives each container a network namespace of its own (as Docker's bridge
    // does) and forwards its published ports from the box's. Opening /dev/net/tun only lets
    // a process make interfaces in network namespaces its own user namespace owns; the box's
    // is the host root's.
    let net = root.join("dev/net");
    fs::create_dir_all(&net)?;
    // A node of the box's own (the host's may be root's only), 10:200 as on every Linux.
    let tun = net.join("tun");
    nix::sys::stat::mknod(
        &tun,
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(10, 200),
    )
    .map_err(|e| io_err("mknod", &tun, e))?;
    fs::set_permissions(&tun, fs::Permissions::from_mode(0o666))?;
    // A login shell resets PATH from /etc/profile, then reads /etc/profile.d: the box's own
    // copy of the host's scripts, and one putting `docker` first again.
    let profile_d = root.join("etc/profile.d");
    if profile_d.exists() {
        nix::mount::umount2(&profile_d, nix::mount::MntFlags::MNT_DETACH)
            .map_err(|e| io_err("umount", &profile_d, e))?;
    }
    fs::create_dir_all(&profile_d)?;
    if let Ok(entries) = fs::read_dir("/etc/profile.d") {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_file()) {
                fs::copy(entry.path(), profile_d.join(entry.file_name()))?;
            }
        }
    }
    fs::write(
        profile_d.join("sandpit-engine.sh"),
        format!("# Written by sandpit: this box's `docker`.\nexport PATH=\"{BIN_DIR}:$PATH\"\n"),
    )?;
    // Where tools look for a Docker socket (there is none: nothing to hijack).
    symlink("/run", root.join("var/run"))?;

    let etc = root.join("etc/containers");
    fs::create_dir_all(&etc).map_err(|e| io_err("mkdir", &etc, e))?;
    fs::write(etc.join("containers.conf"), CONTAINERS_CONF)?;
    fs::write(etc.join("storage.conf"), storage_conf(image_tree.is_some()))?;
    fs::write(etc.join("registries.conf"), REGISTRIES_CONF)?;
    fs::write(etc.join("policy.json"), POLICY_JSON)?;
    // The box's subordinate ids, once (Podman maps every line that names the user or uid).
    let sub = format!(
        "sandbox:{start}:{count}\n",
        start = containers.sub_start,
        count = crate::spec::containers::SUBORDINATE_IDS,
    );
    for name in ["subuid", "subgid"] {
        fs::write(root.join("etc").join(name), &sub)?;
    }

    // The box's network namespace is its own: a container may listen on port 80 in it, as it
    // would on a Docker host.
    let ports = proc.join("sys/net/ipv4/ip_unprivileged_port_start");
    fs::write(&ports, "0").map_err(|e| io_err("write", &ports, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_lists_the_base_images_only_when_there_are_some() {
        assert!(
            storage_conf(true).contains("additionalimagestores = [\"/var/lib/sandpit-images\"]")
        );
        assert!(!storage_conf(false).contains("additionalimagestores"));
        for conf in [storage_conf(true), storage_conf(false)] {
            let parsed: toml::Table = conf.parse().unwrap();
            assert_eq!(
                parsed["storage"]["graphroot"].as_str(),
                Some("/var/lib/containers/storage")
            );
        }
        let _: toml::Table = CONTAINERS_CONF.parse().unwrap();
        let _: toml::Table = REGISTRIES_CONF.parse().unwrap();
        let _: serde_json::Value = serde_json::from_str(POLICY_JSON).unwrap();
    }
}
