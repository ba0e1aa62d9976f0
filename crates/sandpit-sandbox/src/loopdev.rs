//! Persistent workspaces of the native backend: an ext4 image file per workspace, attached to a
//! loop device that only the sandbox's agent mounts (inside its own mount namespace). The
//! device is detached right after the mount, which the kernel defers until the last mount is
//! gone, so a sandbox's death releases it with nothing left on the host.
//!
//! The images are made and attached with `mkfs.ext4` and `losetup` (argv, never a shell): the
//! loop ioctls are simple, but these tools are on every Linux host and handle the details
//! (free-device races with `--find`, filesystem defaults) that a hand-written version would
//! have to re-learn.

use std::path::{Path, PathBuf};
use std::process::Stdio;

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

async fn run(program: &Path, args: &[&std::ffi::OsStr]) -> Result<String, SandboxError> {
    let out = tokio::process::Command::new(program)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(Stdio::null())
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
    )
    .await?;
    std::fs::rename(&fresh, image).map_err(|e| io("naming", e))?;
    Ok(())
}

/// A loop device attached to an image.
#[derive(Debug)]
pub struct LoopDevice {
    pub path: PathBuf,
}

impl LoopDevice {
    pub async fn attach(image: &Path) -> Result<Self, SandboxError> {
        if !Path::new("/dev/loop-control").exists() {
            return Err(SandboxError::Unavailable(
                "persistent workspaces need loop devices (/dev/loop-control is missing)".into(),
            ));
        }
        let losetup = tool("losetup")?;
        let path = run(
            &losetup,
            &[
                "--find".as_ref(),
                "--show".as_ref(),
                "--nooverlap".as_ref(),
                image.as_os_str(),
            ],
        )
        .await?;
        Ok(Self {
            path: PathBuf::from(path),
        })
    }

    /// Detaches the device; while a sandbox still has it mounted the kernel only marks it to
    /// go when that mount goes.
    pub async fn detach(self) {
        let result = match tool("losetup") {
            Ok(losetup) => run(&losetup, &["-d".as_ref(), self.path.as_os_str()])
                .await
                .map(drop),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            tracing::warn!(device = %self.path.display(), error = %e, "detaching a loop device");
        }
    }
}
