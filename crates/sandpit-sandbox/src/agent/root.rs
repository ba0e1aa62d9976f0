//! Builds the sandbox's file system inside the agent's new mount namespace: a small tmpfs root
//! holding read-only binds of the system directories, a generated `/etc` subset, `/proc`, a
//! minimal `/dev`, and size-limited tmpfs mounts for the workspace, `/tmp` and `/dev/shm`; then
//! `pivot_root` into it so nothing else of the host remains reachable.

use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};

use crate::protocol::AgentSetup;
use crate::spec::{RootSpec, WORKSPACE_DIR};

/// Where the new root is assembled (a tmpfs mounted over this path in the private namespace).
const STAGING: &str = "/tmp";

/// Host directories shared read-only in [`RootSpec::Host`] mode.
const HOST_TOP: &[&str] = &[
    "usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "opt",
];

/// `/etc` entries a program may need: the dynamic linker, name service and time zone data,
/// certificates, alternatives (`/usr/bin/java` points through them) and language runtimes'
/// configuration. Everything else (shadow, ssh keys, the server's own config) stays out.
const HOST_ETC: &[&str] = &[
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "nsswitch.conf",
    "host.conf",
    "gai.conf",
    "localtime",
    "timezone",
    "os-release",
    "debian_version",
    "mime.types",
    "protocols",
    "services",
    "networks",
    "inputrc",
    "bash.bashrc",
    "profile",
    "profile.d",
    "alternatives",
    "ssl",
    "ca-certificates",
    "ca-certificates.conf",
    "perl",
    "fonts",
    "terminfo",
    "magic",
    "magic.mime",
];

/// `/etc` entries shared by prefix (versioned runtime configuration such as `java-17-openjdk`).
const HOST_ETC_PREFIXES: &[&str] = &["java-", "python3"];

fn ms_ro() -> MsFlags {
    MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV
}

pub(super) fn io_err(what: &str, path: &Path, e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("{what} {}: {e}", path.display()))
}

pub(super) fn do_mount(
    source: Option<&str>,
    target: &Path,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> io::Result<()> {
    mount(source, target, fstype, flags, data).map_err(|e| io_err("mount", target, e))
}

/// Bind-mounts `src` at `dst` read-only, without set-uid or device files. Creates the mount
/// point (a directory or an empty file, matching `src`).
fn bind_ro(src: &Path, dst: &Path) -> io::Result<()> {
    let meta = fs::metadata(src).map_err(|e| io_err("stat", src, e))?;
    if meta.is_dir() {
        fs::create_dir_all(dst).map_err(|e| io_err("mkdir", dst, e))?;
    } else {
        fs::write(dst, b"").map_err(|e| io_err("create", dst, e))?;
    }
    do_mount(Some(path_str(src)?), dst, None, MsFlags::MS_BIND, None)?;
    // A bind mount takes the flags of its source; read-only needs a second, remount step.
    do_mount(
        None,
        dst,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | ms_ro(),
        None,
    )
}

/// Opens a directory itself, not what a link in its place would point to.
fn open_dir_nofollow(path: &Path) -> io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| io_err("open volume", path, e))
}

/// Binds a host directory (held open as `dir`) at its target under `root`: writable unless it
/// is read-only, never with set-uid files, device files or executables.
fn bind_volume(dir: &fs::File, volume: &crate::spec::Volume, root: &Path) -> io::Result<()> {
    let through = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    let dst = root.join(volume.target.as_str().trim_start_matches('/'));
    fs::create_dir_all(&dst).map_err(|e| io_err("mkdir", &dst, e))?;
    do_mount(
        Some(path_str(&through)?),
        &dst,
        None,
        MsFlags::MS_BIND,
        None,
    )?;
    let mut flags = MsFlags::MS_BIND
        | MsFlags::MS_REMOUNT
        | MsFlags::MS_NOSUID
        | MsFlags::MS_NODEV
        | MsFlags::MS_NOEXEC;
    if volume.read_only {
        flags |= MsFlags::MS_RDONLY;
    }
    do_mount(None, &dst, None, flags, None)
}

pub(super) fn path_str(p: &Path) -> io::Result<&str> {
    p.to_str()
        .ok_or_else(|| io_err("path", p, "is not valid UTF-8"))
}

/// Copies a symlink (e.g. `/bin -> usr/bin` on merged-usr systems) into the new root.
fn copy_link_or_bind(src: &Path, dst: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(src).map_err(|e| io_err("stat", src, e))?;
    if meta.file_type().is_symlink() {
        let target = fs::read_link(src).map_err(|e| io_err("readlink", src, e))?;
        symlink(&target, dst).map_err(|e| io_err("symlink", dst, e))
    } else if meta.is_dir() || meta.is_file() {
        bind_ro(src, dst)
    } else {
        Ok(())
    }
}

/// Mount options of a size-limited tmpfs.
pub fn tmpfs_options(bytes: u64, mode: u32, owner: Option<(u32, u32)>) -> String {
    let mut opts = format!("size={bytes},mode={mode:o}");
    if let Some((uid, gid)) = owner {
        opts.push_str(&format!(",uid={uid},gid={gid}"));
    }
    opts
}

/// The writable mounts, re-created on every reset: `(path inside, options)`.
pub fn scratch_mounts(setup: &AgentSetup) -> [(&'static str, String); 3] {
    let owner = Some((setup.uid, setup.gid));
    [
        (
            WORKSPACE_DIR,
            tmpfs_options(setup.limits.workspace_bytes, 0o755, owner),
        ),
        ("/tmp", tmpfs_options(setup.limits.tmp_bytes, 0o1777, None)),
        (
            "/dev/shm",
            tmpfs_options(setup.limits.shm_bytes, 0o1777, None),
        ),
    ]
}

pub fn mount_scratch(path: &Path, options: &str) -> io::Result<()> {
    do_mount(
        Some("tmpfs"),
        path,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(options),
    )
}

/// Mounts a persistent workspace's filesystem and gives everything in it to this sandbox's user
/// (each sandbox has its own uid, so the files of a previous sandbox of the same workspace
/// belong to another).
fn mount_workspace(device: &Path, dst: &Path, setup: &AgentSetup) -> io::Result<()> {
    let device_str = device
        .to_str()
        .ok_or_else(|| io_err("workspace device", device, "not UTF-8"))?;
    do_mount(
        Some(device_str),
        dst,
        Some("ext4"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOATIME,
        Some("errors=remount-ro"),
    )?;
    // mkfs's lost+found is root's and of no use to a learner; it goes while it is empty.
    let _ = fs::remove_dir(dst.join("lost+found"));
    chown_tree(dst, setup.uid, setup.gid)
}

/// `lchown` of a tree without following links (a link's target is not the workspace's to
/// change). Runs before anything sandboxed starts, so nothing swaps entries meanwhile.
/// Iterative, and an entry it cannot reach (say, nested deeper than `PATH_MAX` by a learner)
/// is skipped rather than failing the sandbox: it stays owned by the previous uid.
fn chown_tree(dir: &Path, uid: u32, gid: u32) -> io::Result<()> {
    std::os::unix::fs::lchown(dir, Some(uid), Some(gid))?;
    let mut pending = vec![dir.to_path_buf()];
    let mut skipped = 0u64;
    while let Some(dir) = pending.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            skipped += 1;
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if std::os::unix::fs::lchown(&path, Some(uid), Some(gid)).is_err() {
                skipped += 1;
                continue;
            }
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                pending.push(path);
            }
        }
    }
    if skipped > 0 {
        eprintln!("sandpit agent: {skipped} workspace entries kept their previous owner");
    }
    Ok(())
}

/// Empties the writable mounts (a persistent workspace stays). Emptying a small tree costs a
/// few unlinks where a fresh mount costs a superblock and an RCU grace period on unmount; a
/// mount whose root carries extended attributes (which emptying would leave behind), or that
/// cannot be emptied, is replaced with a fresh one instead. Every process is dead by now, so
/// nothing holds a file open or adds entries meanwhile.
pub fn reset_scratch(setup: &AgentSetup) -> io::Result<()> {
    for (path, options) in scratch_mounts(setup) {
        if path == WORKSPACE_DIR && setup.workspace_device.is_some() {
            continue;
        }
        let path = Path::new(path);
        let (mode, owner) = if path == Path::new(WORKSPACE_DIR) {
            (0o755, (setup.uid, setup.gid))
        } else {
            (0o1777, (0, 0))
        };
        let emptied = !super::sys::has_xattrs(path)?
            && empty_dir(path).is_ok()
            && std::os::unix::fs::chown(path, Some(owner.0), Some(owner.1)).is_ok()
            && fs::set_permissions(path, fs::Permissions::from_mode(mode)).is_ok();
        if !emptied {
            umount2(path, MntFlags::MNT_DETACH).map_err(|e| io_err("umount", path, e))?;
            mount_scratch(path, &options)?;
        }
    }
    Ok(())
}

/// Removes everything inside `dir` without following links (`remove_dir_all` does not).
fn empty_dir(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            fs::remove_dir_all(entry.path())?;
        } else {
            fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// Builds the root and pivots into it. Runs as PID 1 of the new PID namespace, inside the new
/// mount namespace.
pub fn build(setup: &AgentSetup) -> io::Result<()> {
    // Nothing done from here on propagates back to the host.
    do_mount(
        None,
        Path::new("/"),
        None,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None,
    )?;
    // A directory root may lie under the staging path (a temporary directory in /tmp, say),
    // which the staging tmpfs is about to cover: hold it open and reach it through the handle.
    let image = match &setup.root {
        RootSpec::Directory { path } => {
            let dir = fs::File::open(path).map_err(|e| io_err("open", path, e))?;
            let through = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
            Some((dir, through))
        }
        RootSpec::Host => None,
    };
    // Volumes too may lie under it; each is held open as the directory it is now.
    let volumes = setup
        .volumes
        .iter()
        .map(|v| Ok((open_dir_nofollow(&v.source)?, v)))
        .collect::<io::Result<Vec<_>>>()?;
    // The shared base images too: a detached copy of their mount, id-mapped later.
    let image_tree = match setup
        .containers
        .as_ref()
        .and_then(|c| c.image_store.as_ref())
    {
        Some(store) => {
            Some(super::sys::clone_tree(store).map_err(|e| io_err("open_tree", store, e))?)
        }
        None => None,
    };
    // And this program, which a box with an engine binds as its newuidmap/newgidmap: opened by
    // its path in this mount namespace (/proc/self/exe itself names the host's mount, which
    // cannot be bound from here), before the staging root covers /tmp, where it may lie.
    let exe = match &setup.containers {
        Some(_) => {
            let path = std::env::current_exe()?;
            Some(fs::File::open(&path).map_err(|e| io_err("open", &path, e))?)
        }
        None => None,
    };
    if setup.containers.is_some() && !matches!(setup.root, RootSpec::Host) {
        return Err(io::Error::other(
            "a container engine needs the host root (its /etc/containers is generated)",
        ));
    }
    let root = PathBuf::from(STAGING);
    do_mount(
        Some("tmpfs"),
        &root,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("size=1m,mode=755"),
    )?;

    match &setup.root {
        RootSpec::Host => {
            for name in HOST_TOP {
                let src = Path::new("/").join(name);
                if fs::symlink_metadata(&src).is_ok() {
                    copy_link_or_bind(&src, &root.join(name))?;
                }
            }
            let etc = root.join("etc");
            fs::create_dir(&etc).map_err(|e| io_err("mkdir", &etc, e))?;
            for entry in fs::read_dir("/etc").map_err(|e| io_err("list", Path::new("/etc"), e))? {
                let entry = entry?;
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if HOST_ETC.contains(&name.as_ref())
                    || HOST_ETC_PREFIXES.iter().any(|p| name.starts_with(p))
                {
                    copy_link_or_bind(&entry.path(), &etc.join(name.as_ref()))?;
                }
            }
            write_identity_files(setup, &etc)?;
        }
        RootSpec::Directory { path } => {
            let dir = image
                .as_ref()
                .map_or(path.as_path(), |(_, through)| through);
            for entry in fs::read_dir(dir).map_err(|e| io_err("list", path, e))? {
                let entry = entry?;
                let name = entry.file_name();
                if matches!(
                    name.to_str(),
                    Some("proc" | "dev" | "sys" | "tmp" | "workspace" | "run")
                ) {
                    continue;
                }
                copy_link_or_bind(&entry.path(), &root.join(&name))?;
            }
        }
    }

    // /proc of the new PID namespace, with /proc/sys read-only — except in a box with a
    // container engine: the kernel lets a user namespace mount a /proc only where the existing
    // one is not partly covered. /proc/sys is the host root's to write either way.
    let proc_dir = root.join("proc");
    fs::create_dir(&proc_dir)?;
    do_mount(
        Some("proc"),
        &proc_dir,
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None,
    )?;
    if setup.containers.is_none() {
        let proc_sys = proc_dir.join("sys");
        do_mount(
            Some(path_str(&proc_sys)?),
            &proc_sys,
            None,
            MsFlags::MS_BIND,
            None,
        )?;
        do_mount(
            None,
            &proc_sys,
            None,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | ms_ro() | MsFlags::MS_NOEXEC,
            None,
        )?;
    }

    build_dev(&root)?;

    for (path, options) in scratch_mounts(setup) {
        let dst = root.join(path.trim_start_matches('/'));
        fs::create_dir_all(&dst)?;
        match &setup.workspace_device {
            Some(device) if path == WORKSPACE_DIR => mount_workspace(device, &dst, setup)?,
            _ => mount_scratch(&dst, &options)?,
        }
    }

    if setup.containers.is_some() {
        super::containers::mount_run(setup, &root)?;
    }
    for (dir, volume) in &volumes {
        bind_volume(dir, volume, &root)?;
    }

    if let Some(containers) = &setup.containers {
        let exe = exe
            .as_ref()
            .ok_or_else(|| io::Error::other("the agent's own program was not opened"))?;
        super::containers::build(
            containers,
            image_tree.as_ref(),
            exe,
            setup,
            &root,
            &proc_dir,
        )?;
    }

    // Enter the new root and drop every reference to the old one.
    std::env::set_current_dir(&root)?;
    nix::unistd::pivot_root(".", ".").map_err(|e| io_err("pivot_root", &root, e))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(|e| io_err("umount old root", &root, e))?;
    std::env::set_current_dir("/")?;
    // The root tmpfs only holds mount points and generated files: make it read-only too.
    do_mount(
        None,
        Path::new("/"),
        None,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | ms_ro(),
        None,
    )
}

fn build_dev(root: &Path) -> io::Result<()> {
    let dev = root.join("dev");
    fs::create_dir(&dev)?;
    do_mount(
        Some("tmpfs"),
        &dev,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("size=64k,mode=755"),
    )?;
    for node in ["null", "zero", "full", "random", "urandom", "tty"] {
        let dst = dev.join(node);
        fs::write(&dst, b"")?;
        let src = Path::new("/dev").join(node);
        do_mount(
            Some(path_str(&src)?),
            &dst,
            None,
            MsFlags::MS_BIND | MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
            None,
        )?;
    }
    let pts = dev.join("pts");
    fs::create_dir(&pts)?;
    do_mount(
        Some("devpts"),
        &pts,
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620"),
    )?;
    symlink("pts/ptmx", dev.join("ptmx"))?;
    symlink("/proc/self/fd", dev.join("fd"))?;
    for (i, name) in ["stdin", "stdout", "stderr"].iter().enumerate() {
        symlink(format!("/proc/self/fd/{i}"), dev.join(name))?;
    }
    let shm = dev.join("shm");
    fs::create_dir(&shm)?;
    fs::set_permissions(&shm, fs::Permissions::from_mode(0o1777))?;
    Ok(())
}

/// `/etc/passwd`, `group`, `hosts`, `hostname` and an empty `resolv.conf` (no DNS) describing
/// the sandbox, not the host.
fn write_identity_files(setup: &AgentSetup, etc: &Path) -> io::Result<()> {
    let (uid, gid, host) = (setup.uid, setup.gid, &setup.hostname);
    let files = [
        (
            "passwd",
            format!(
                "root:x:0:0:root:/nonexistent:/usr/sbin/nologin\n\
                 sandbox:x:{uid}:{gid}:sandbox:{WORKSPACE_DIR}:/bin/bash\n\
                 nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
            ),
        ),
        (
            "group",
            format!("root:x:0:\nsandbox:x:{gid}:\nnogroup:x:65534:\n"),
        ),
        (
            "hosts",
            format!("127.0.0.1\tlocalhost {host}\n::1\tlocalhost\n"),
        ),
        ("hostname", format!("{host}\n")),
        ("resolv.conf", String::new()),
    ];
    for (name, contents) in files {
        fs::write(etc.join(name), contents)?;
    }
    Ok(())
}
