//! The seam between the cgroup logic and the host: every file, directory and signal operation the
//! cgroup code performs goes through [`Sys`]. [`HostSys`] is the real thing (plain `std::fs` and
//! `kill(2)`); unit tests use an in-memory cgroupfs with a process model instead.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

use nix::errno::Errno;
use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;

/// File, directory and signal operations on cgroup filesystems.
pub(crate) trait Sys: Send + Sync + fmt::Debug {
    fn read(&self, path: &Path) -> io::Result<String>;
    /// Writes `value` with one `write(2)` into an existing file (never creates it): cgroup control
    /// files take one value per write.
    fn write(&self, path: &Path, value: &str) -> io::Result<()>;
    fn exists(&self, path: &Path) -> bool;
    fn create_dir(&self, path: &Path) -> io::Result<()>;
    fn remove_dir(&self, path: &Path) -> io::Result<()>;
    /// Names of the directories directly inside `path`.
    fn subdirs(&self, path: &Path) -> io::Result<Vec<String>>;
    /// Sends SIGKILL; a process that is already gone is not an error.
    fn kill(&self, pid: u32) -> io::Result<()>;
    fn is_alive(&self, pid: u32) -> bool;
    /// Opens a file for reading and writing through one descriptor (v2 `memory.peak`, whose reset
    /// only applies to reads through the descriptor that wrote it).
    fn open_rw(&self, path: &Path) -> io::Result<Box<dyn RwHandle>>;
}

/// A control file kept open.
pub(crate) trait RwHandle: Send + fmt::Debug {
    fn write_value(&mut self, value: &str) -> io::Result<()>;
    /// Reads the whole file from its start.
    fn read_all(&mut self) -> io::Result<String>;
}

/// The real host.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct HostSys;

fn to_pid(pid: u32) -> io::Result<Pid> {
    match i32::try_from(pid) {
        Ok(raw) if raw > 0 => Ok(Pid::from_raw(raw)),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{pid} is not a process id"),
        )),
    }
}

impl Sys for HostSys {
    fn read(&self, path: &Path) -> io::Result<String> {
        fs::read_to_string(path)
    }

    fn write(&self, path: &Path, value: &str) -> io::Result<()> {
        let mut file = OpenOptions::new().write(true).open(path)?;
        file.write_all(value.as_bytes())
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn create_dir(&self, path: &Path) -> io::Result<()> {
        fs::create_dir(path)
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        fs::remove_dir(path)
    }

    fn subdirs(&self, path: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(path)? {
            let entry = entry?;
            if !entry.file_type()?.is_dir() {
                continue;
            }
            if let Ok(name) = entry.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }

    fn kill(&self, pid: u32) -> io::Result<()> {
        match signal::kill(to_pid(pid)?, Signal::SIGKILL) {
            Ok(()) | Err(Errno::ESRCH) => Ok(()),
            Err(errno) => Err(errno.into()),
        }
    }

    fn is_alive(&self, pid: u32) -> bool {
        let Ok(pid) = to_pid(pid) else {
            return false;
        };
        // EPERM means it exists but belongs to someone else.
        !matches!(signal::kill(pid, None), Err(Errno::ESRCH))
    }

    fn open_rw(&self, path: &Path) -> io::Result<Box<dyn RwHandle>> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(Box::new(FileHandle(file)))
    }
}

#[derive(Debug)]
struct FileHandle(File);

impl RwHandle for FileHandle {
    fn write_value(&mut self, value: &str) -> io::Result<()> {
        self.0.write_all(value.as_bytes())
    }

    fn read_all(&mut self) -> io::Result<String> {
        self.0.seek(SeekFrom::Start(0))?;
        let mut text = String::new();
        self.0.read_to_string(&mut text)?;
        Ok(text)
    }
}
