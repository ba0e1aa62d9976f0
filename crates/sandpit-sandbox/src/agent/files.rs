//! File requests, served from inside the sandbox. Two rules keep them safe: they run with the
//! sandbox user's file-system identity (see [`super::sys::set_fs_identity`]), so a link planted
//! by sandboxed code can only lead somewhere that code could reach itself; and no path
//! component may be a symbolic link (leaves are opened with `O_NOFOLLOW`, trees are walked
//! without following links), so requests stay in the workspace. The host never opens a path
//! inside a sandbox at all.
//!
//! Sandboxed code runs while a request is served, so it could swap a checked directory for a
//! link between the check and the use; the file-system identity is what bounds that race: the
//! agent can then reach nothing the sandboxed code could not reach itself.

use std::cell::Cell;
use std::fs::{self, File, Metadata};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use nix::fcntl::{RenameFlags, renameat2};
use sha2::{Digest, Sha256};
use tar::EntryType;

use crate::protocol::{
    DirEntry, EntryKind, FileError, MAX_FRAME, Precondition, TreeEntry, TreeListing, UnpackLimits,
    Unpacked,
};
use crate::spec::{WORKSPACE_DIR, WorkspacePath};

/// Names of the agent's own temporary files and directories start with this.
const TEMP_PREFIX: &str = ".sandpit-";
/// Archive entries may not use the staging directories' names.
const STAGING_PREFIX: &str = ".sandpit-unpack-";
/// The largest archive a reply can carry (the rest of the frame is the JSON).
const PACK_LIMIT: u64 = MAX_FRAME as u64 - (64 << 10);
/// Raw tar-stream bytes allowed per entry beyond file data: padding, the header, and long-name
/// or pax records (names are at most 1 KiB). Bounds what the decompressor is asked for, and
/// what the tar reader buffers, even when entries are tiny.
const ENTRY_OVERHEAD: u64 = 8 << 10;

static TEMP_SEQ: AtomicU64 = AtomicU64::new(0);

fn link_refused(cur: &Path) -> FileError {
    FileError::Refused(format!(
        "{} is a symbolic link",
        cur.strip_prefix(WORKSPACE_DIR).unwrap_or(cur).display()
    ))
}

/// Refuses paths with a symbolic link anywhere along the way (missing components are fine).
/// `leaf`: whether the last component counts too (not for lstat-like requests).
fn check_links(path: &WorkspacePath, leaf: bool) -> Result<PathBuf, FileError> {
    let mut cur = PathBuf::from(WORKSPACE_DIR);
    let parts: Vec<&str> = path.as_str().split('/').collect();
    let checked = if leaf { parts.len() } else { parts.len() - 1 };
    for part in &parts[..checked] {
        cur.push(part);
        match fs::symlink_metadata(&cur) {
            Ok(meta) if meta.file_type().is_symlink() => return Err(link_refused(&cur)),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => break,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(path.in_sandbox())
}

fn check_no_links(path: &WorkspacePath) -> Result<PathBuf, FileError> {
    check_links(path, true)
}

/// A directory to work on: `None` is the workspace itself.
fn existing_dir(path: Option<&WorkspacePath>) -> Result<PathBuf, FileError> {
    let Some(path) = path else {
        return Ok(PathBuf::from(WORKSPACE_DIR));
    };
    let full = check_no_links(path)?;
    if !fs::symlink_metadata(&full)?.is_dir() {
        return Err(FileError::NotADirectory);
    }
    Ok(full)
}

fn kind_of(meta: &Metadata) -> EntryKind {
    let ft = meta.file_type();
    if ft.is_symlink() {
        EntryKind::Symlink
    } else if ft.is_dir() {
        EntryKind::Dir
    } else if ft.is_file() {
        EntryKind::File
    } else {
        EntryKind::Other
    }
}

fn tree_entry(path: String, meta: &Metadata) -> TreeEntry {
    let kind = kind_of(meta);
    TreeEntry {
        path,
        kind,
        size: if kind == EntryKind::File {
            meta.len()
        } else {
            0
        },
        modified_ms: meta
            .mtime()
            .saturating_mul(1000)
            .saturating_add(meta.mtime_nsec() / 1_000_000),
    }
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn hash_file(mut file: &File) -> Result<String, FileError> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match file.read(&mut buf)? {
            0 => return Ok(hex::encode(hasher.finalize())),
            n => hasher.update(&buf[..n]),
        }
    }
}

/// Opens an existing regular file for reading. Neither a link nor a FIFO is opened in a way
/// that follows or blocks: `O_NOFOLLOW`, `O_NONBLOCK`, and the type is checked on the open file.
fn open_regular(full: &Path) -> Result<(File, Metadata), FileError> {
    // Judged before opening too: opening a device can have effects of its own.
    match kind_of(&fs::symlink_metadata(full)?) {
        EntryKind::Other => return Err(FileError::Refused("not a regular file".into())),
        EntryKind::Symlink => return Err(link_refused(full)),
        EntryKind::File | EntryKind::Dir => {}
    }
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(full)?;
    let meta = file.metadata()?;
    if meta.is_dir() {
        return Err(FileError::IsADirectory);
    }
    if !meta.is_file() {
        return Err(FileError::Refused("not a regular file".into()));
    }
    Ok((file, meta))
}

/// What a write would replace: `None` when nothing is there. Refuses what a write must never
/// replace, judged without opening it (a FIFO or device is never opened).
fn replaceable(full: &Path) -> Result<Option<Metadata>, FileError> {
    match fs::symlink_metadata(full) {
        Ok(meta) => match kind_of(&meta) {
            EntryKind::File => Ok(Some(meta)),
            EntryKind::Dir => Err(FileError::IsADirectory),
            EntryKind::Symlink => Err(link_refused(full)),
            EntryKind::Other => Err(FileError::Refused("not a regular file".into())),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// A fresh name in `dir` for the agent's own temporary file or directory. Sandboxed code can
/// see the directory, so the name is not predictable and creation is exclusive.
fn temp_path(dir: &Path, what: &str) -> PathBuf {
    let seq = TEMP_SEQ.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    dir.join(format!("{TEMP_PREFIX}{what}-{seq}-{nanos:09}"))
}

fn create_temp_file(dir: &Path) -> Result<(PathBuf, File), FileError> {
    for _ in 0..16 {
        let path = temp_path(dir, "write");
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
        {
            Ok(file) => return Ok((path, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(FileError::Io("no free temporary name".into()))
}

fn create_temp_dir(dir: &Path) -> Result<PathBuf, FileError> {
    for _ in 0..16 {
        let path = temp_path(dir, "unpack");
        match fs::DirBuilder::new().mode(0o700).create(&path) {
            Ok(()) => return Ok(path),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(FileError::Io("no free temporary name".into()))
}

/// Writes a file if `expect` holds, atomically for readers: the data goes to a temporary file
/// beside the target, which is then renamed over it. Returns the new contents' SHA-256. The
/// agent serves one request at a time, so no other request can change the file between the
/// check and the rename.
pub fn write(
    path: &WorkspacePath,
    data: &[u8],
    mode: u32,
    expect: Option<&Precondition>,
) -> Result<String, FileError> {
    let full = check_no_links(path)?;
    let existing = replaceable(&full)?;
    if let Some(expect) = expect {
        let current = match existing {
            Some(_) => Some(hash_file(&open_regular(&full)?.0)?),
            None => None,
        };
        let holds = match (expect, &current) {
            (Precondition::Absent, None) => true,
            (Precondition::Sha256(want), Some(have)) => want.eq_ignore_ascii_case(have),
            _ => false,
        };
        if !holds {
            return Err(FileError::Conflict { current });
        }
    }
    let parent = full
        .parent()
        .ok_or_else(|| FileError::Io("a workspace path without a parent".into()))?;
    fs::create_dir_all(parent)?;
    let (temp, mut file) = create_temp_file(parent)?;
    let written = (|| -> io::Result<()> {
        file.write_all(data)?;
        // Explicitly, so the umask does not decide.
        file.set_permissions(fs::Permissions::from_mode(mode & 0o777))?;
        drop(file);
        // rename replaces a link or FIFO swapped in meanwhile without opening it.
        fs::rename(&temp, &full)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&temp);
        return Err(e.into());
    }
    Ok(sha256_hex(data))
}

/// Reads a file whole; returns it with its SHA-256.
pub fn read(path: &WorkspacePath, max_bytes: u64) -> Result<(Vec<u8>, String), FileError> {
    let full = check_no_links(path)?;
    let (file, meta) = open_regular(&full)?;
    if meta.len() > max_bytes {
        return Err(FileError::TooLarge(max_bytes));
    }
    let mut data = Vec::with_capacity(meta.len() as usize);
    file.take(max_bytes + 1).read_to_end(&mut data)?;
    if data.len() as u64 > max_bytes {
        return Err(FileError::TooLarge(max_bytes));
    }
    let sha256 = sha256_hex(&data);
    Ok((data, sha256))
}

/// One path found by [`walk`].
struct Walked {
    full: PathBuf,
    /// Relative to the walk's root with the walk's prefix, `/`-separated.
    rel: String,
    meta: Metadata,
}

/// The entries of `dir`, sorted by name, described without following links. Entries that
/// vanish while being listed (sandboxed code runs meanwhile) are left out.
fn children(dir: &Path, prefix: &str) -> Result<Vec<Walked>, FileError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        // DirEntry::metadata is an lstat.
        let meta = match entry.metadata() {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e.into()),
        };
        let name = entry.file_name();
        out.push((
            name.clone(),
            Walked {
                full: entry.path(),
                rel: format!("{prefix}{}", name.to_string_lossy()),
                meta,
            },
        ));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out.into_iter().map(|(_, w)| w).collect())
}

/// Visits everything below `root` depth first, siblings by name, never following a link;
/// `visit` returns `false` to stop. An explicit stack, so a deep tree cannot overflow ours.
fn walk(
    root: &Path,
    prefix: &str,
    mut visit: impl FnMut(&Walked) -> Result<bool, FileError>,
) -> Result<(), FileError> {
    let mut stack = children(root, prefix)?;
    stack.reverse();
    while let Some(w) = stack.pop() {
        if !visit(&w)? {
            return Ok(());
        }
        if w.meta.file_type().is_dir() {
            let below = match children(&w.full, &format!("{}/", w.rel)) {
                Ok(below) => below,
                Err(FileError::NotFound) => continue,
                Err(e) => return Err(e),
            };
            stack.extend(below.into_iter().rev());
        }
    }
    Ok(())
}

pub fn tree(path: Option<&WorkspacePath>, max_entries: u32) -> Result<TreeListing, FileError> {
    let root = existing_dir(path)?;
    let prefix = path.map(|p| format!("{p}/")).unwrap_or_default();
    let mut entries = Vec::new();
    let mut truncated = false;
    walk(&root, &prefix, |w| {
        if entries.len() >= max_entries as usize {
            truncated = true;
            return Ok(false);
        }
        entries.push(tree_entry(w.rel.clone(), &w.meta));
        Ok(true)
    })?;
    Ok(TreeListing { entries, truncated })
}

/// Describes a path; a link at its end is described, not followed.
pub fn stat(path: &WorkspacePath) -> Result<TreeEntry, FileError> {
    let full = check_links(path, false)?;
    let meta = fs::symlink_metadata(&full)?;
    Ok(tree_entry(path.as_str().to_owned(), &meta))
}

/// Renames `from` to `to`. Without `overwrite` an existing `to` is refused by the kernel
/// (`RENAME_NOREPLACE`), so nothing can appear there between a check and the rename; with it,
/// whatever is at `to` is replaced (a directory tree is removed first).
pub fn rename(from: &WorkspacePath, to: &WorkspacePath, overwrite: bool) -> Result<(), FileError> {
    let src = check_no_links(from)?;
    let dst = check_no_links(to)?;
    let meta = fs::symlink_metadata(&src)?;
    if from == to {
        return Ok(());
    }
    if to.as_str().starts_with(&format!("{from}/")) {
        return Err(FileError::Refused(
            "cannot move a directory into itself".into(),
        ));
    }
    // Replacing an ancestor would delete what is being moved before it moves.
    if from.as_str().starts_with(&format!("{to}/")) {
        return Err(FileError::Refused(
            "cannot move something over a directory that holds it".into(),
        ));
    }
    if let Some(parent) = dst.parent() {
        fs::create_dir_all(parent)?;
    }
    if !overwrite {
        return renameat2(None, &src, None, &dst, RenameFlags::RENAME_NOREPLACE)
            .map_err(|e| io::Error::from(e).into());
    }
    match fs::symlink_metadata(&dst) {
        Ok(existing) if existing.is_dir() => fs::remove_dir_all(&dst)?,
        // rename cannot put a directory over a file.
        Ok(_) if meta.is_dir() => fs::remove_file(&dst)?,
        _ => {}
    }
    fs::rename(&src, &dst)?;
    Ok(())
}

/// A writer that fails once more than `limit` bytes were written, and says so in `over`.
struct Capped {
    buf: Vec<u8>,
    limit: u64,
    over: Rc<Cell<bool>>,
}

impl Write for Capped {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if (self.buf.len() + data.len()) as u64 > self.limit {
            self.over.set(true);
            return Err(io::Error::other("the archive is over its size limit"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Archives a directory as `.tar.gz`: directories, regular files and links (as links, never
/// followed). FIFOs, sockets and devices are left out. Returns the archive and its entry count.
pub fn pack(path: Option<&WorkspacePath>, max_bytes: u64) -> Result<(Vec<u8>, u32), FileError> {
    let root = existing_dir(path)?;
    let limit = max_bytes.min(PACK_LIMIT);
    let over = Rc::new(Cell::new(false));
    let sink = Capped {
        buf: Vec::new(),
        limit,
        over: over.clone(),
    };
    let mut builder = tar::Builder::new(GzEncoder::new(sink, Compression::default()));
    let mut count = 0u32;
    let packed = (|| -> Result<Vec<u8>, FileError> {
        walk(&root, "", |w| {
            if append_entry(&mut builder, w)? {
                count += 1;
            }
            Ok(true)
        })?;
        Ok(builder.into_inner()?.finish()?.buf)
    })();
    match packed {
        Err(_) if over.get() => Err(FileError::TooLarge(limit)),
        packed => packed.map(|archive| (archive, count)),
    }
}

/// Adds one walked path; `false` when it is skipped (not a file, directory or link, or gone).
fn append_entry<W: Write>(builder: &mut tar::Builder<W>, w: &Walked) -> Result<bool, FileError> {
    let mut header = tar::Header::new_gnu();
    header.set_mtime(w.meta.mtime().max(0) as u64);
    header.set_mode(w.meta.mode() & 0o777);
    header.set_size(0);
    match kind_of(&w.meta) {
        EntryKind::Dir => {
            header.set_entry_type(EntryType::Directory);
            builder.append_data(&mut header, &w.rel, io::empty())?;
        }
        EntryKind::Symlink => {
            let target = match fs::read_link(&w.full) {
                Ok(target) => target,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
                Err(e) => return Err(e.into()),
            };
            header.set_entry_type(EntryType::Symlink);
            builder.append_link(&mut header, &w.rel, target)?;
        }
        EntryKind::File => {
            // Replaced by something else since the listing (sandboxed code runs meanwhile):
            // left out like any non-file.
            let (file, meta) = match open_regular(&w.full) {
                Ok(opened) => opened,
                Err(FileError::NotFound | FileError::IsADirectory | FileError::Refused(_)) => {
                    return Ok(false);
                }
                Err(e) => return Err(e),
            };
            let len = meta.len();
            header.set_entry_type(EntryType::Regular);
            header.set_size(len);
            // Exactly `len` bytes whatever happens to the file while it is read: the header
            // promised that many.
            let data = file.take(len).chain(io::repeat(0)).take(len);
            builder.append_data(&mut header, &w.rel, data)?;
        }
        EntryKind::Other => return Ok(false),
    }
    Ok(true)
}

/// A reader over the decompressed archive that fails, and says so in `over`, once more than
/// `left` bytes were read in all or more than `step` since the budget was last set: the stream
/// is counted as it comes, so a bomb stops at the cap, and tar metadata the reader holds in
/// memory (a long-name record of a gigabyte) stops at its per-entry budget.
struct CappedReader<R> {
    inner: R,
    left: u64,
    step: Rc<Cell<u64>>,
    over: Rc<Cell<bool>>,
}

impl<R: Read> Read for CappedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let allowed = self.left.min(self.step.get());
        if allowed == 0 {
            // One byte more tells a stream that ends exactly at the cap from one that goes on.
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => {
                    self.over.set(true);
                    Err(io::Error::other("the archive unpacks to more than allowed"))
                }
            };
        }
        let want = buf
            .len()
            .min(usize::try_from(allowed).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.left -= n as u64;
        self.step.set(self.step.get() - n as u64);
        Ok(n)
    }
}

/// Turns an archive entry's name into a path below the target, or says why not. `Ok(None)`:
/// the entry names the target itself (`./`).
fn archive_path(raw: &[u8]) -> Result<Option<String>, &'static str> {
    let name = std::str::from_utf8(raw).map_err(|_| "the name is not UTF-8")?;
    if name.starts_with('/') {
        return Err("absolute paths are not accepted");
    }
    let mut parts = Vec::new();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err("`..` would leave the directory"),
            part => parts.push(part),
        }
    }
    let Some(first) = parts.first() else {
        return Ok(None);
    };
    if first.starts_with(STAGING_PREFIX) {
        return Err("the name is reserved");
    }
    let joined = parts.join("/");
    WorkspacePath::parse(&joined).map_err(|_| "the name is too long or invalid")?;
    Ok(Some(joined))
}

/// Unpacks a `.tar.gz` into a directory, all or nothing: it is extracted into a staging
/// directory in the workspace, checked against what is on disk, and only then moved into place.
/// Links, hard links, devices, FIFOs and names leaving the directory are refused, as are
/// archives beyond `limits` (counted while decompressing, so a bomb stops at the cap).
pub fn unpack(
    path: Option<&WorkspacePath>,
    archive: &[u8],
    limits: UnpackLimits,
) -> Result<Unpacked, FileError> {
    let dest = match path {
        Some(path) => {
            let full = check_no_links(path)?;
            match fs::symlink_metadata(&full) {
                Ok(meta) if !meta.is_dir() => return Err(FileError::NotADirectory),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
            full
        }
        None => PathBuf::from(WORKSPACE_DIR),
    };
    let staging = create_temp_dir(Path::new(WORKSPACE_DIR))?;
    let result = extract(archive, &staging, limits).and_then(|done| {
        merge(&staging, &dest)?;
        Ok(done)
    });
    // After a merge that moved the whole directory this finds nothing, which is fine.
    let _ = fs::remove_dir_all(&staging);
    result
}

fn extract(archive: &[u8], staging: &Path, limits: UnpackLimits) -> Result<Unpacked, FileError> {
    let over = Rc::new(Cell::new(false));
    let stream_cap = limits
        .max_total_bytes
        .saturating_add((u64::from(limits.max_entries) + 4).saturating_mul(ENTRY_OVERHEAD));
    let step = Rc::new(Cell::new(0));
    let reader = CappedReader {
        inner: MultiGzDecoder::new(archive),
        left: stream_cap,
        step: step.clone(),
        over: over.clone(),
    };
    let too_large = || FileError::TooLarge(limits.max_total_bytes);
    let damaged = |e: io::Error| {
        if over.get() {
            too_large()
        } else {
            FileError::Refused(format!("the archive is damaged: {e}"))
        }
    };
    let mut tar = tar::Archive::new(reader);
    let mut done = Unpacked {
        entries: 0,
        bytes: 0,
    };
    let mut entries = tar.entries().map_err(damaged)?;
    loop {
        // Between entries the reader takes padding, a header and any long-name or pax record.
        step.set(ENTRY_OVERHEAD);
        let Some(entry) = entries.next() else { break };
        let mut entry = entry.map_err(damaged)?;
        let raw = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw)
            .chars()
            .take(200)
            .collect::<String>();
        let refuse = |why: &str| FileError::Refused(format!("archive entry {shown:?}: {why}"));
        let kind = entry.header().entry_type();
        let rel = match archive_path(&raw) {
            Ok(Some(rel)) => rel,
            Ok(None) if kind == EntryType::Directory => continue,
            Ok(None) => return Err(refuse("it names the directory itself")),
            Err(why) => return Err(refuse(why)),
        };
        done.entries += 1;
        if done.entries > limits.max_entries {
            return Err(FileError::Refused(format!(
                "the archive has more than {} entries",
                limits.max_entries
            )));
        }
        let target = staging.join(&rel);
        // Clashes between entries (a name twice, a file where a directory is needed).
        let clash = |e: io::Error| match e.kind() {
            io::ErrorKind::AlreadyExists | io::ErrorKind::NotADirectory => {
                refuse("it clashes with an earlier entry")
            }
            _ => e.into(),
        };
        match kind {
            EntryType::Directory => {
                fs::create_dir_all(&target).map_err(clash)?;
            }
            EntryType::Regular | EntryType::Continuous => {
                let size = entry.size();
                if size > limits.max_file_bytes {
                    return Err(FileError::TooLarge(limits.max_file_bytes));
                }
                if done.bytes.saturating_add(size) > limits.max_total_bytes {
                    return Err(too_large());
                }
                if let Some(parent) = target.parent() {
                    fs::create_dir_all(parent).map_err(clash)?;
                }
                let mut file = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&target)
                    .map_err(clash)?;
                step.set(size);
                let mut buf = vec![0u8; 64 << 10];
                loop {
                    let n = entry.read(&mut buf).map_err(damaged)?;
                    if n == 0 {
                        break;
                    }
                    done.bytes += n as u64;
                    if done.bytes > limits.max_total_bytes {
                        return Err(too_large());
                    }
                    file.write_all(&buf[..n])?;
                }
                let mode = entry.header().mode().unwrap_or(0o644) & 0o777;
                file.set_permissions(fs::Permissions::from_mode(mode))?;
                if let Ok(secs) = entry.header().mtime() {
                    file.set_modified(UNIX_EPOCH + Duration::from_secs(secs))?;
                }
            }
            EntryType::Symlink => return Err(refuse("symbolic links are not accepted")),
            EntryType::Link => return Err(refuse("hard links are not accepted")),
            EntryType::Char | EntryType::Block => {
                return Err(refuse("device files are not accepted"));
            }
            EntryType::Fifo => return Err(refuse("FIFOs are not accepted")),
            other => {
                return Err(refuse(&format!(
                    "entries of type {:?} are not accepted",
                    other.as_byte() as char
                )));
            }
        }
    }
    Ok(done)
}

/// Moves a fully extracted staging directory into `dest`: renamed whole when `dest` does not
/// exist, else merged (files replace files, directories merge). Every clash with what is on
/// disk — a link in the way, a file where a directory is — is found before anything moves.
fn merge(staging: &Path, dest: &Path) -> Result<(), FileError> {
    match fs::symlink_metadata(dest) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(parent) = dest.parent() {
                fs::create_dir_all(parent)?;
            }
            renameat2(None, staging, None, dest, RenameFlags::RENAME_NOREPLACE)
                .map_err(io::Error::from)?;
            // The staging directory was private (0700); the result is an ordinary directory.
            fs::set_permissions(dest, fs::Permissions::from_mode(0o755))?;
            return Ok(());
        }
        Err(e) => return Err(e.into()),
        Ok(meta) if !meta.is_dir() => return Err(FileError::NotADirectory),
        Ok(_) => {}
    }
    let mut moves = Vec::new();
    plan_merge(staging, dest, "", &mut moves)?;
    for (from, to) in moves {
        fs::rename(from, to)?;
    }
    Ok(())
}

fn plan_merge(
    from: &Path,
    to: &Path,
    prefix: &str,
    moves: &mut Vec<(PathBuf, PathBuf)>,
) -> Result<(), FileError> {
    for w in children(from, prefix)? {
        let name = w.full.file_name().map(PathBuf::from).unwrap_or_default();
        let target = to.join(&name);
        let refuse = |why: &str| FileError::Refused(format!("archive entry {:?}: {why}", w.rel));
        match fs::symlink_metadata(&target) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => moves.push((w.full, target)),
            Err(e) => return Err(e.into()),
            Ok(meta) => match (kind_of(&meta), w.meta.is_dir()) {
                (EntryKind::Symlink, _) => {
                    return Err(refuse("a symbolic link is in its way on disk"));
                }
                (EntryKind::Dir, true) => {
                    plan_merge(&w.full, &target, &format!("{}/", w.rel), moves)?
                }
                (EntryKind::File, false) => moves.push((w.full, target)),
                (EntryKind::Dir, false) => return Err(refuse("a directory is in its way")),
                (_, _) => return Err(refuse("a file is in its way")),
            },
        }
    }
    Ok(())
}

pub fn list(path: Option<&WorkspacePath>) -> Result<Vec<DirEntry>, FileError> {
    let dir = match path {
        Some(p) => check_no_links(p)?,
        None => Path::new(WORKSPACE_DIR).to_path_buf(),
    };
    let mut entries = Vec::new();
    for entry in fs::read_dir(&dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        let kind = if meta.file_type().is_symlink() {
            EntryKind::Symlink
        } else if meta.is_dir() {
            EntryKind::Dir
        } else if meta.is_file() {
            EntryKind::File
        } else {
            EntryKind::Other
        };
        entries.push(DirEntry {
            name: entry.file_name().to_string_lossy().into_owned(),
            kind,
            size: if kind == EntryKind::File {
                meta.len()
            } else {
                0
            },
        });
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(entries)
}

/// Removes a file, a directory tree, or a link itself (the last component may be a link:
/// unlinking it never touches its target; earlier components may not).
pub fn remove(path: &WorkspacePath) -> Result<(), FileError> {
    let full = check_links(path, false)?;
    let meta = fs::symlink_metadata(&full)?;
    if meta.is_dir() {
        // remove_dir_all does not follow links inside the tree.
        fs::remove_dir_all(&full)?;
    } else {
        fs::remove_file(&full)?;
    }
    Ok(())
}

pub fn mkdir(path: &WorkspacePath) -> Result<(), FileError> {
    let full = check_no_links(path)?;
    fs::create_dir_all(full)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_names_stay_below_the_target() {
        assert_eq!(archive_path(b"a/./b//c"), Ok(Some("a/b/c".into())));
        assert_eq!(archive_path(b"./"), Ok(None));
        assert_eq!(archive_path(b"."), Ok(None));
        for bad in [
            &b"../x"[..],
            b"a/../../x",
            b"a/..",
            b"/abs",
            b"//abs",
            b"\xff\xfe",
            b".sandpit-unpack-1/x",
        ] {
            assert!(
                archive_path(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(archive_path("x/".repeat(600).as_bytes()).is_err());
    }

    #[test]
    fn capped_reader_stops_at_either_budget() {
        let read = |data: &[u8], left: u64, step: u64| {
            let over = Rc::new(Cell::new(false));
            let mut reader = CappedReader {
                inner: data,
                left,
                step: Rc::new(Cell::new(step)),
                over: over.clone(),
            };
            let mut out = Vec::new();
            let result = reader.read_to_end(&mut out).map(|_| out);
            (result.is_ok(), over.get())
        };
        assert_eq!(read(b"12345", 5, 5), (true, false), "exactly at the caps");
        assert_eq!(read(b"12345", 4, 100), (false, true), "over the total");
        assert_eq!(read(b"12345", 100, 4), (false, true), "over the step");
        assert_eq!(read(b"", 0, 0), (true, false));
    }
}
