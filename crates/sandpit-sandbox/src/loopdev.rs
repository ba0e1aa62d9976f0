//! Persistent workspaces of the native backend: an ext4 image file per workspace, attached to a
//! loop device that only the sandbox's agent mounts (inside its own mount namespace). The
//! device is detached right after the mount, which the kernel defers until the last mount is
//! gone, so a sandbox's death releases it with nothing left on the host. A server killed
//! between the attach and the detach leaves the device attached; the next server process
//! detaches such devices at start-up ([`detach_stale`]), after waiting for attaches still in
//! flight (an image is locked while its device is attached).
//!
//! The images are made and attached with `mkfs.ext4` and `losetup` (argv, never a shell): the
//! loop ioctls are simple, but these tools are on every Linux host and handle the details
//! (free-device races with `--find`, filesystem defaults) that a hand-written version would
//! have to re-learn.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use crate::error::SandboxError;

/// The image file inside a persistent workspace's directory.
pub const IMAGE_NAME: &str = "workspace.img";
/// Smallest persistent workspace (ext4 needs room for its own structures).
pub const MIN_IMAGE_BYTES: u64 = 4 << 20;

const SEARCH: &[&str] = &["/usr/sbin", "/sbin", "/usr/bin", "/bin"];

fn tool(name: &str) -> Result<PathBuf, SandboxError> {
    SEARCH
        .iter()
        .map(|dir| Path::new(dir).join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            SandboxError::Unavailable(format!(
                "persistent workspaces need {name} (Debian: e2fsprogs, util-linux) on this host"
            ))
        })
}

/// Runs a tool; `stdin` is a file it holds open (an image's lock) until it exits.
async fn run(
    program: &Path,
    args: &[&std::ffi::OsStr],
    stdin: Option<&File>,
) -> Result<String, SandboxError> {
    let stdin = match stdin {
        Some(file) => Stdio::from(file.try_clone().map_err(|source| SandboxError::Io {
            context: format!("passing a file to {}", program.display()),
            source,
        })?),
        None => Stdio::null(),
    };
    let out = tokio::process::Command::new(program)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(stdin)
        .output()
        .await
        .map_err(|source| SandboxError::Io {
            context: format!("running {}", program.display()),
            source,
        })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(SandboxError::Setup(format!(
            "{} failed ({}): {}",
            program.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Makes `dir` and an empty image of `bytes` with room for `max_files` entries in it, unless the
/// image exists (its size was fixed when it was made). Returns the image's path.
pub async fn prepare(dir: &Path, bytes: u64, max_files: u64) -> Result<PathBuf, SandboxError> {
    if bytes < MIN_IMAGE_BYTES {
        return Err(SandboxError::Setup(format!(
            "a persistent workspace needs at least {MIN_IMAGE_BYTES} bytes"
        )));
    }
    let io = |context: &str, source| SandboxError::Io {
        context: format!("{context} {}", dir.display()),
        source,
    };
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| io("creating", e))?;
    }
    let image = dir.join(IMAGE_NAME);
    if image.exists() {
        return Ok(image);
    }
    // A spare made ahead of time saves formatting (tens of milliseconds) on the way to a new
    // session; another is made in the background.
    if let Some(spares) = dir.parent().map(|p| p.join(SPARES_DIR)) {
        let taken = take_spare(&spares, &spare_key(bytes, max_files), &image);
        tokio::spawn(async move {
            if let Err(e) = make_spare(&spares, bytes, max_files).await {
                tracing::warn!(error = %e, "making a spare workspace image");
            }
        });
        if taken {
            return Ok(image);
        }
    }
    format(&image, bytes, max_files).await?;
    Ok(image)
}

/// Makes a fresh, uniquely named image of `bytes` in `dir` for one sandbox's scratch disk (a
/// container engine's): the caller attaches it, lets the sandbox mount it and unlinks it, so
/// the space is the kernel's to free when the sandbox's mount goes.
pub async fn scratch(dir: &Path, bytes: u64, max_files: u64) -> Result<PathBuf, SandboxError> {
    if bytes < MIN_IMAGE_BYTES {
        return Err(SandboxError::Setup(format!(
            "a scratch disk needs at least {MIN_IMAGE_BYTES} bytes"
        )));
    }
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| SandboxError::Io {
                context: format!("creating {}", dir.display()),
                source,
            })?;
    }
    let image = dir.join(format!("scratch-{}.img", uuid::Uuid::now_v7().simple()));
    format(&image, bytes, max_files).await?;
    Ok(image)
}

/// Removes the scratch images a killed server left in `dir` (their sandboxes died with it).
/// Call after [`detach_stale`] on the same directory.
pub fn remove_stale_scratch(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| {
            e.file_name().to_str().is_some_and(|n| {
                n.starts_with("scratch-") && (n.ends_with(".img") || n.ends_with(".new"))
            })
        })
        .filter(|e| std::fs::remove_file(e.path()).is_ok())
        .count()
}

/// Spare images live here, beside the workspace directories (a name no workspace has).
pub const SPARES_DIR: &str = ".spare";
/// Spares kept per size and entry count: enough for a burst of new sessions while the next
/// ones are formatted (each is a sparse file of a few MB on disk).
const SPARES_KEPT: usize = 4;

fn spare_key(bytes: u64, max_files: u64) -> String {
    format!("{bytes}-{max_files}-")
}

fn is_spare(name: &str, key: &str) -> bool {
    name.starts_with(key) && name.ends_with(".img")
}

/// Moves a spare of this shape to `image`; false when there is none.
fn take_spare(spares: &Path, key: &str, image: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(spares) else {
        return false;
    };
    entries.flatten().any(|entry| {
        // A rename either takes it whole or fails because another taker was first.
        is_spare(&entry.file_name().to_string_lossy(), key)
            && std::fs::rename(entry.path(), image).is_ok()
    })
}

/// Formats spares of this shape until enough are there.
async fn make_spare(spares: &Path, bytes: u64, max_files: u64) -> Result<(), SandboxError> {
    // One refill at a time per process: concurrent ones would format more than are kept.
    static REFILLING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _one = REFILLING.lock().await;
    loop {
        if !make_one_spare(spares, bytes, max_files).await? {
            return Ok(());
        }
    }
}

/// Formats one more spare unless enough are there; whether it made one.
async fn make_one_spare(spares: &Path, bytes: u64, max_files: u64) -> Result<bool, SandboxError> {
    let key = spare_key(bytes, max_files);
    std::fs::create_dir_all(spares).map_err(|source| SandboxError::Io {
        context: format!("creating {}", spares.display()),
        source,
    })?;
    let have = std::fs::read_dir(spares)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| is_spare(&e.file_name().to_string_lossy(), &key))
                .count()
        })
        .unwrap_or(0);
    if have >= SPARES_KEPT {
        return Ok(false);
    }
    let name = format!("{key}{}.img", uuid::Uuid::new_v4().simple());
    format(&spares.join(name), bytes, max_files).await?;
    Ok(true)
}

/// Formats an image file at `image`. It is made under another name and renamed, so a crash
/// never leaves a half-made image behind that would later be taken for a workspace.
async fn format(image: &Path, bytes: u64, max_files: u64) -> Result<(), SandboxError> {
    let io = |context: &str, source| SandboxError::Io {
        context: format!("{context} {}", image.display()),
        source,
    };
    let fresh = image.with_extension("new");
    let file = std::fs::File::create(&fresh).map_err(|e| io("creating", e))?;
    file.set_len(bytes).map_err(|e| io("sizing", e))?;
    drop(file);
    let mkfs = tool("mkfs.ext4")?;
    let inodes = max_files.saturating_add(16).to_string();
    run(
        &mkfs,
        &[
            "-q".as_ref(),
            "-F".as_ref(),
            // No blocks reserved for root: the learner gets the whole size.
            "-m".as_ref(),
            "0".as_ref(),
            // Inodes bound the number of entries; a few more for the filesystem's own.
            "-N".as_ref(),
            inodes.as_ref(),
            "-E".as_ref(),
            "lazy_itable_init=1,lazy_journal_init=1".as_ref(),
            fresh.as_os_str(),
        ],
        None,
    )
    .await?;
    std::fs::rename(&fresh, image).map_err(|e| io("naming", e))?;
    Ok(())
}

/// How long to wait for another process's hold on an image (an attach in flight).
const IMAGE_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Takes the exclusive advisory lock of a workspace image, held from before its loop device is
/// attached until the device is handed to the kernel's autoclear. `losetup` gets the locked
/// file as its stdin, so the lock outlives a server killed while `losetup` still runs, and a
/// new server's [`detach_stale`] waits for that attach before it looks.
async fn lock_image(image: &Path) -> Result<Flock<File>, SandboxError> {
    let io = |context: &str, source| SandboxError::Io {
        context: format!("{context} {}", image.display()),
        source,
    };
    let deadline = std::time::Instant::now() + IMAGE_LOCK_WAIT;
    let mut file = File::open(image).map_err(|e| io("opening", e))?;
    loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => return Ok(lock),
            Err((back, Errno::EWOULDBLOCK)) if std::time::Instant::now() < deadline => {
                file = back;
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err((_, errno)) => return Err(io("locking", errno.into())),
        }
    }
}

/// Detaches the loop devices whose backing files lie in `dir`, for a new server process before
/// any of its sandboxes uses a workspace there. A process killed between [`LoopDevice::attach`]
/// and [`LoopDevice::detach`] (or its `losetup`, which finishes without it) leaves a device
/// attached with nothing to free it: still there after the session ends and its image is
/// deleted. A device that a dying sandbox still has mounted is only marked to go with that
/// mount. Returns how many were detached.
pub async fn detach_stale(dir: &Path) -> usize {
    // The kernel names the backing file by its real path.
    let Ok(dir) = std::fs::canonicalize(dir) else {
        return 0;
    };
    // Attaches still in flight hold their image's lock: wait for them, so that what they
    // attach is there to be seen.
    let mut locks = Vec::new();
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let image = entry.path().join(IMAGE_NAME);
        if image.is_file() {
            match lock_image(&image).await {
                Ok(lock) => locks.push(lock),
                Err(e) => tracing::warn!(error = %e, "waiting for a workspace image"),
            }
        }
    }
    let attached = attached_devices(Path::new("/sys/block"));
    let mut detached = 0;
    for (name, backing) in stale(&attached, &dir) {
        let device = Path::new("/dev").join(&name);
        match run_losetup_detach(&device, None).await {
            Ok(()) => {
                detached += 1;
                tracing::warn!(device = %device.display(), backing_file = backing, "detached a loop device left by a previous process");
            }
            // Freed meanwhile by the kernel (its last mount went): nothing left to do.
            Err(_) if !still_backs(&name, backing) => {}
            Err(e) => {
                tracing::warn!(device = %device.display(), error = %e, "detaching a stale loop device")
            }
        }
    }
    detached
}

/// Whether a loop device is still attached to `image`: a sandbox that had it mounted (or is
/// mounting it) has not finished going. Another server must not mount it meanwhile.
pub fn in_use(image: &Path) -> bool {
    let Ok(image) = std::fs::canonicalize(image) else {
        return false;
    };
    attached_devices(Path::new("/sys/block"))
        .iter()
        .any(|(_, backing)| Path::new(backing) == image)
}

/// `(device name, backing file)` of every attached loop device listed in `sys_block`.
fn attached_devices(sys_block: &Path) -> Vec<(String, String)> {
    let Ok(entries) = std::fs::read_dir(sys_block) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_str()?.to_owned();
            if !name.starts_with("loop") {
                return None;
            }
            let backing = std::fs::read_to_string(entry.path().join("loop/backing_file")).ok()?;
            Some((name, backing.trim_end_matches('\n').to_owned()))
        })
        .collect()
}

/// The devices of `attached` whose backing file is inside `dir` (deleted ones too: the kernel
/// appends " (deleted)" to their path).
fn stale<'a>(attached: &'a [(String, String)], dir: &Path) -> Vec<(String, &'a str)> {
    attached
        .iter()
        .filter(|(_, backing)| Path::new(backing).starts_with(dir) && Path::new(backing) != dir)
        .map(|(name, backing)| (name.clone(), backing.as_str()))
        .collect()
}

fn still_backs(name: &str, backing: &str) -> bool {
    attached_devices(Path::new("/sys/block"))
        .iter()
        .any(|(n, b)| n == name && b == backing)
}

/// `losetup -d`, with the image's lock as stdin when there is one.
async fn run_losetup_detach(device: &Path, lock: Option<&File>) -> Result<(), SandboxError> {
    let losetup = tool("losetup")?;
    run(&losetup, &["-d".as_ref(), device.as_os_str()], lock)
        .await
        .map(drop)
}

/// A loop device attached to an image.
#[derive(Debug)]
pub struct LoopDevice {
    pub path: PathBuf,
    /// The image's lock (see [`lock_image`]), released once the device is detached.
    lock: Flock<File>,
}

impl LoopDevice {
    pub async fn attach(image: &Path) -> Result<Self, SandboxError> {
        if !Path::new("/dev/loop-control").exists() {
            return Err(SandboxError::Unavailable(
                "persistent workspaces need loop devices (/dev/loop-control is missing)".into(),
            ));
        }
        let losetup = tool("losetup")?;
        let lock = lock_image(image).await?;
        let path = run(
            &losetup,
            &[
                "--find".as_ref(),
                "--show".as_ref(),
                "--nooverlap".as_ref(),
                image.as_os_str(),
            ],
            Some(&lock),
        )
        .await?;
        Ok(Self {
            path: PathBuf::from(path),
            lock,
        })
    }

    /// Detaches the device; while a sandbox still has it mounted the kernel only marks it to
    /// go when that mount goes.
    pub async fn detach(self) {
        if let Err(e) = run_losetup_detach(&self.path, Some(&self.lock)).await {
            tracing::warn!(device = %self.path.display(), error = %e, "detaching a loop device");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_devices_are_those_backed_inside_the_directory() {
        let attached: Vec<(String, String)> = [
            ("loop0", "/data/workspaces/a/workspace.img"),
            ("loop1", "/data/workspaces/b/workspace.img (deleted)"),
            ("loop2", "/data/workspaces-old/c/workspace.img"),
            ("loop3", "/other/workspace.img"),
            ("loop4", "/data/workspaces"),
        ]
        .iter()
        .map(|(n, b)| ((*n).to_owned(), (*b).to_owned()))
        .collect();
        let names: Vec<String> = stale(&attached, Path::new("/data/workspaces"))
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        assert_eq!(names, ["loop0", "loop1"]);
    }

    #[test]
    fn attached_devices_are_read_from_sysfs() {
        let sys = tempfile::TempDir::new().unwrap();
        for (name, backing) in [("loop0", Some("/x/img\n")), ("loop1", None), ("sda", None)] {
            std::fs::create_dir_all(sys.path().join(name).join("loop")).unwrap();
            if let Some(b) = backing {
                std::fs::write(sys.path().join(name).join("loop/backing_file"), b).unwrap();
            }
        }
        assert_eq!(
            attached_devices(sys.path()),
            [("loop0".to_owned(), "/x/img".to_owned())]
        );
    }
}
