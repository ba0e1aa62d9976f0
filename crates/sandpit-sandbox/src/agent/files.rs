//! File requests, served from inside the sandbox. Two rules keep them safe: they run with the
//! sandbox user's file-system identity (see [`super::sys::set_fs_identity`]), so a link planted
//! by sandboxed code can only lead somewhere that code could reach itself; and no path
//! component may be a symbolic link (leaves are opened with `O_NOFOLLOW`), so requests stay in
//! the workspace. The host never opens a path inside a sandbox at all.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::protocol::{DirEntry, EntryKind, FileError};
use crate::spec::{WORKSPACE_DIR, WorkspacePath};

/// Refuses paths with a symbolic link anywhere along the way (missing components are fine).
fn check_no_links(path: &WorkspacePath) -> Result<PathBuf, FileError> {
    let mut cur = PathBuf::from(WORKSPACE_DIR);
    for part in path.as_str().split('/') {
        cur.push(part);
        match fs::symlink_metadata(&cur) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(FileError::Refused(format!(
                    "{} is a symbolic link",
                    cur.strip_prefix(WORKSPACE_DIR).unwrap_or(&cur).display()
                )));
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => break,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(path.in_sandbox())
}

pub fn write(path: &WorkspacePath, data: &[u8], mode: u32) -> Result<(), FileError> {
    let full = check_no_links(path)?;
    if let Some(parent) = full.parent() {
        fs::create_dir_all(parent)?;
    }
    // O_NONBLOCK: a FIFO planted at the path must not block the (single-threaded) agent; it
    // fails to open without a reader, and is refused below with one.
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode & 0o777)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&full)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ENXIO) => FileError::Refused("not a regular file".into()),
            _ => e.into(),
        })?;
    if !file.metadata()?.is_file() {
        return Err(FileError::Refused("not a regular file".into()));
    }
    file.write_all(data)?;
    file.set_permissions(fs::Permissions::from_mode(mode & 0o777))?;
    Ok(())
}

pub fn read(path: &WorkspacePath, max_bytes: u64) -> Result<Vec<u8>, FileError> {
    let full = check_no_links(path)?;
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&full)?;
    let meta = file.metadata()?;
    if meta.is_dir() {
        return Err(FileError::IsADirectory);
    }
    if !meta.is_file() {
        return Err(FileError::Refused("not a regular file".into()));
    }
    if meta.len() > max_bytes {
        return Err(FileError::TooLarge(max_bytes));
    }
    let mut data = Vec::with_capacity(meta.len() as usize);
    file.take(max_bytes + 1).read_to_end(&mut data)?;
    if data.len() as u64 > max_bytes {
        return Err(FileError::TooLarge(max_bytes));
    }
    Ok(data)
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

pub fn remove(path: &WorkspacePath) -> Result<(), FileError> {
    let full = check_no_links(path)?;
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
