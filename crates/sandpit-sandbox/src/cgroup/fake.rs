//! An in-memory cgroupfs with a process model, for unit tests: directories get the control files
//! of their hierarchy when created, `cgroup.procs`, `freezer.state` and `cgroup.events` reflect the
//! processes, freezing delays SIGKILL until the thaw, `cgroup.kill` empties a subtree, and the v2
//! "no internal processes" rule makes `cgroup.subtree_control` writes fail with EBUSY.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::sys::{RwHandle, Sys};

#[derive(Debug, Default)]
pub(super) struct State {
    pub dirs: BTreeSet<PathBuf>,
    pub files: BTreeMap<PathBuf, String>,
    /// Mount point → control files `(name, initial contents)` of every directory below it.
    pub templates: BTreeMap<PathBuf, Vec<(String, String)>>,
    /// Mount points of cgroup v2 (the no-internal-processes rule applies below them).
    pub v2_roots: BTreeSet<PathBuf>,
    /// pid → (mount point → cgroup directory).
    pub procs: BTreeMap<u32, BTreeMap<PathBuf, PathBuf>>,
    /// Processes alive but in no cgroup we model.
    pub alive: BTreeSet<u32>,
    /// Processes that ignore SIGKILL (stuck in the kernel).
    pub unkillable: BTreeSet<u32>,
    /// Killed while frozen: they die at the thaw.
    pub doomed: BTreeSet<u32>,
    /// Directories frozen by a write of their own.
    pub frozen: BTreeSet<PathBuf>,
    /// Every successful write, in order.
    pub writes: Vec<(PathBuf, String)>,
    /// Every SIGKILL sent.
    pub kills: Vec<u32>,
    /// Writes and kills in order, as `write <path> <value>` and `kill <pid>`.
    pub log: Vec<String>,
    /// The next this many removals fail with EBUSY.
    pub busy_removals: usize,
    /// `memory.peak` cannot be opened for writing (kernels before 6.12).
    pub read_only_peak: bool,
    /// Reads through kept-open `memory.peak` descriptors.
    pub peak_handle_reads: usize,
}

#[derive(Debug, Clone, Default)]
pub(super) struct FakeSys(pub Arc<Mutex<State>>);

fn errno(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

impl FakeSys {
    pub fn state(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a mount point whose directories get `files` (name, initial contents).
    pub fn mount(&self, mount: &str, files: &[(&str, &str)], v2: bool) {
        let mut state = self.state();
        let mount = PathBuf::from(mount);
        state.dirs.insert(mount.clone());
        let files: Vec<(String, String)> = files
            .iter()
            .map(|(n, c)| ((*n).to_owned(), (*c).to_owned()))
            .collect();
        for (name, contents) in &files {
            state.files.insert(mount.join(name), contents.clone());
        }
        state.templates.insert(mount.clone(), files);
        if v2 {
            state.v2_roots.insert(mount);
        }
    }

    /// Creates `dir` and its missing ancestors, with control files.
    pub fn mkdir_p(&self, dir: &str) {
        let mut ancestors: Vec<&Path> = Path::new(dir).ancestors().collect();
        ancestors.reverse();
        for path in ancestors {
            if !self.state().dirs.contains(path) && self.mount_of(path).is_some() {
                let _ = self.create_dir(path);
            }
        }
    }

    /// Puts process `pid` into `dir` (in `dir`'s hierarchy).
    pub fn spawn_in(&self, pid: u32, dir: &str) {
        let dir = PathBuf::from(dir);
        let mount = self.mount_of(&dir).unwrap_or_default();
        self.state()
            .procs
            .entry(pid)
            .or_default()
            .insert(mount, dir);
    }

    pub fn writes_to(&self, path: &Path) -> Vec<String> {
        self.state()
            .writes
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, v)| v.clone())
            .collect()
    }

    pub fn file(&self, path: &Path) -> Option<String> {
        self.state().files.get(path).cloned()
    }

    fn mount_of(&self, path: &Path) -> Option<PathBuf> {
        self.state()
            .templates
            .keys()
            .filter(|m| path.starts_with(m))
            .max_by_key(|m| m.as_os_str().len())
            .cloned()
    }
}

impl State {
    fn in_subtree(&self, pid: u32, dir: &Path) -> bool {
        self.procs
            .get(&pid)
            .is_some_and(|dirs| dirs.values().any(|d| d.starts_with(dir)))
    }

    fn is_frozen(&self, pid: u32) -> bool {
        self.procs.get(&pid).is_some_and(|dirs| {
            dirs.values()
                .any(|d| d.ancestors().any(|a| self.frozen.contains(a)))
        })
    }

    fn die(&mut self, pid: u32) {
        self.procs.remove(&pid);
        self.alive.remove(&pid);
        self.doomed.remove(&pid);
    }

    fn reap_thawed(&mut self) {
        let thawed: Vec<u32> = self
            .doomed
            .iter()
            .copied()
            .filter(|&pid| !self.is_frozen(pid))
            .collect();
        for pid in thawed {
            self.die(pid);
        }
    }

    fn computed(&self, dir: &Path, name: &str) -> Option<String> {
        let populated = self.procs.keys().any(|&pid| self.in_subtree(pid, dir));
        let frozen = dir.ancestors().any(|a| self.frozen.contains(a));
        match name {
            "cgroup.procs" => Some(
                self.procs
                    .iter()
                    .filter(|(_, dirs)| dirs.values().any(|d| d == dir))
                    .map(|(pid, _)| format!("{pid}\n"))
                    .collect(),
            ),
            "freezer.state" => Some(if frozen { "FROZEN\n" } else { "THAWED\n" }.to_owned()),
            "cgroup.events" => Some(format!(
                "populated {}\nfrozen {}\n",
                u8::from(populated),
                u8::from(frozen)
            )),
            _ => None,
        }
    }
}

fn split(path: &Path) -> io::Result<(PathBuf, String)> {
    let dir = path.parent().ok_or_else(|| errno(libc::EINVAL))?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| errno(libc::EINVAL))?;
    Ok((dir.to_path_buf(), name.to_owned()))
}

impl Sys for FakeSys {
    fn read(&self, path: &Path) -> io::Result<String> {
        let state = self.state();
        let contents = state.files.get(path).ok_or_else(|| errno(libc::ENOENT))?;
        let (dir, name) = split(path)?;
        Ok(state
            .computed(&dir, &name)
            .unwrap_or_else(|| contents.clone()))
    }

    fn write(&self, path: &Path, value: &str) -> io::Result<()> {
        let mount = self.mount_of(path);
        let mut state = self.state();
        if !state.files.contains_key(path) {
            return Err(errno(libc::ENOENT));
        }
        let (dir, name) = split(path)?;
        match name.as_str() {
            "cgroup.procs" => {
                let pid: u32 = value.trim().parse().map_err(|_| errno(libc::EINVAL))?;
                state
                    .procs
                    .entry(pid)
                    .or_default()
                    .insert(mount.unwrap_or_default(), dir.clone());
            }
            "freezer.state" | "cgroup.freeze" => {
                if matches!(value, "FROZEN" | "1") {
                    state.frozen.insert(dir.clone());
                } else {
                    state.frozen.remove(&dir);
                    state.reap_thawed();
                }
            }
            "cgroup.kill" => {
                let victims: Vec<u32> = state
                    .procs
                    .keys()
                    .copied()
                    .filter(|&pid| state.in_subtree(pid, &dir) && !state.unkillable.contains(&pid))
                    .collect();
                for pid in victims {
                    state.die(pid);
                }
            }
            "cgroup.subtree_control" => {
                let is_root = state.v2_roots.contains(&dir);
                let holds_procs = state
                    .procs
                    .values()
                    .any(|dirs| dirs.values().any(|d| *d == dir));
                if !is_root && holds_procs {
                    return Err(errno(libc::EBUSY));
                }
                let mut enabled: Vec<String> = state
                    .files
                    .get(path)
                    .map(|s| s.split_whitespace().map(str::to_owned).collect())
                    .unwrap_or_default();
                for token in value.split_whitespace() {
                    let controller = token.trim_start_matches('+').to_owned();
                    if !enabled.contains(&controller) {
                        enabled.push(controller);
                    }
                }
                state.files.insert(path.to_path_buf(), enabled.join(" "));
            }
            _ => {
                state.files.insert(path.to_path_buf(), value.to_owned());
            }
        }
        state.writes.push((path.to_path_buf(), value.to_owned()));
        state.log.push(format!("write {} {value}", path.display()));
        Ok(())
    }

    fn exists(&self, path: &Path) -> bool {
        let state = self.state();
        state.dirs.contains(path) || state.files.contains_key(path)
    }

    fn create_dir(&self, path: &Path) -> io::Result<()> {
        let mount = self.mount_of(path).ok_or_else(|| errno(libc::ENOENT))?;
        let mut state = self.state();
        if state.dirs.contains(path) {
            return Err(errno(libc::EEXIST));
        }
        if !path.parent().is_some_and(|p| state.dirs.contains(p)) {
            return Err(errno(libc::ENOENT));
        }
        state.dirs.insert(path.to_path_buf());
        let files = state.templates.get(&mount).cloned().unwrap_or_default();
        for (name, contents) in files {
            state.files.insert(path.join(name), contents);
        }
        Ok(())
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        let mut state = self.state();
        if !state.dirs.contains(path) {
            return Err(errno(libc::ENOENT));
        }
        let has_children = state.dirs.iter().any(|d| d.parent() == Some(path));
        let has_procs = state
            .procs
            .values()
            .any(|dirs| dirs.values().any(|d| d == path));
        if has_children || has_procs {
            return Err(errno(libc::EBUSY));
        }
        if state.busy_removals > 0 {
            state.busy_removals -= 1;
            return Err(errno(libc::EBUSY));
        }
        state.dirs.remove(path);
        state.files.retain(|f, _| f.parent() != Some(path));
        state.frozen.remove(path);
        Ok(())
    }

    fn subdirs(&self, path: &Path) -> io::Result<Vec<String>> {
        let state = self.state();
        if !state.dirs.contains(path) {
            return Err(errno(libc::ENOENT));
        }
        Ok(state
            .dirs
            .iter()
            .filter(|d| d.parent() == Some(path))
            .filter_map(|d| d.file_name()?.to_str().map(str::to_owned))
            .collect())
    }

    fn kill(&self, pid: u32) -> io::Result<()> {
        let mut state = self.state();
        state.kills.push(pid);
        state.log.push(format!("kill {pid}"));
        if state.unkillable.contains(&pid) {
            return Ok(());
        }
        if state.is_frozen(pid) {
            state.doomed.insert(pid);
        } else {
            state.die(pid);
        }
        Ok(())
    }

    fn is_alive(&self, pid: u32) -> bool {
        let state = self.state();
        state.alive.contains(&pid) || state.procs.contains_key(&pid)
    }

    fn open_rw(&self, path: &Path) -> io::Result<Box<dyn RwHandle>> {
        let state = self.state();
        if !state.files.contains_key(path) {
            return Err(errno(libc::ENOENT));
        }
        if state.read_only_peak {
            return Err(errno(libc::EACCES));
        }
        Ok(Box::new(FakeHandle {
            sys: self.clone(),
            path: path.to_path_buf(),
        }))
    }
}

#[derive(Debug)]
struct FakeHandle {
    sys: FakeSys,
    path: PathBuf,
}

impl RwHandle for FakeHandle {
    fn write_value(&mut self, value: &str) -> io::Result<()> {
        self.sys
            .state()
            .writes
            .push((self.path.clone(), value.to_owned()));
        Ok(())
    }

    fn read_all(&mut self) -> io::Result<String> {
        let mut state = self.sys.state();
        state.peak_handle_reads += 1;
        state
            .files
            .get(&self.path)
            .cloned()
            .ok_or_else(|| errno(libc::ENOENT))
    }
}
