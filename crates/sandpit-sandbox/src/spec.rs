//! What callers ask of a sandbox: the box itself ([`SandboxSpec`]) and each process started in it
//! ([`ProcessSpec`]). These types are backend-neutral and travel over the agent protocol, so they
//! are plain serde data validated once at construction.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Where sandboxed code finds its files: the writable workspace is mounted here.
pub const WORKSPACE_DIR: &str = "/workspace";

/// A sandbox: root filesystem, limits for the whole box, network policy and workspace size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxSpec {
    /// The read-only root.
    pub root: RootSpec,
    /// Limits on the box as a whole (cgroup and tmpfs sizes).
    pub limits: SandboxLimits,
    pub network: NetworkPolicy,
    /// Host name seen inside.
    pub hostname: String,
    /// Where the workspace lives.
    #[serde(default)]
    pub workspace: WorkspaceSpec,
    /// Host directories shared into the box (a user's database directory).
    #[serde(default)]
    pub volumes: Vec<Volume>,
    /// A container engine's room in the box (a `docker` session); `None` for everything else.
    #[serde(default)]
    pub containers: Option<ContainersSpec>,
}

/// What a sandbox needs to run a rootless container engine (Podman) inside itself: a disk of
/// its own for the images it builds and the containers it runs, and the host's shared base
/// images. With it the box allows what a rootless engine does — new user namespaces and,
/// inside them, mounts — and nothing more: every container is a process of the box, under its
/// cgroup, its uid and its network namespace. (The backend says whether it can do this.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainersSpec {
    /// A host directory where the backend keeps the disk while the box lives (the native
    /// backend: an ext4 image, unlinked once mounted, so it is gone with the box).
    pub dir: PathBuf,
    /// The disk's size: images, build layers and containers' writes together.
    pub disk_bytes: u64,
    /// Entries the disk can hold (its inode table).
    pub max_files: u64,
    /// A containers-storage directory of base images (`sandpit images build`), seen read-only
    /// and owned by the box's user (an id-mapped mount), so many boxes share one copy.
    pub image_store: Option<PathBuf>,
}

/// Where the engine's pieces are inside a box with [`ContainersSpec`].
pub mod containers {
    /// The engine's disk (storage, run state).
    pub const DISK_DIR: &str = "/var/lib/containers";
    /// The shared base images, read-only.
    pub const IMAGES_DIR: &str = "/var/lib/sandpit-images";
    /// The runtime directory (`XDG_RUNTIME_DIR`) of the engine and its clients: under `/run`
    /// (a small tmpfs of the box user's), where Podman expects it.
    pub const RUN_DIR: &str = "/run/engine";
    /// Where the box's `docker` command is: Podman itself, run daemonless (Podman answers to
    /// the Docker CLI's commands and flags). First on the `PATH` of [`ENV`].
    pub const BIN_DIR: &str = "/run/engine/bin";
    /// Where the box's `newuidmap`/`newgidmap` ask the agent for id maps.
    pub const IDMAP_SOCKET: &str = "/run/engine/idmap.sock";
    /// Subordinate ids each box with an engine gets (a container's uids 1..=65535).
    pub const SUBORDINATE_IDS: u32 = 65_535;
    /// The environment a process needs to use the engine as `docker` or `podman`.
    pub const ENV: &[(&str, &str)] = &[
        ("XDG_RUNTIME_DIR", RUN_DIR),
        ("PATH", "/run/engine/bin:/usr/local/bin:/usr/bin:/bin"),
        // Named, so a rootless engine reads all of it (the shared image store too), not only
        // the few keys it takes from the system file.
        ("CONTAINERS_STORAGE_CONF", "/etc/containers/storage.conf"),
        // Docker's image format, which keeps HEALTHCHECK (OCI's drops it).
        ("BUILDAH_FORMAT", "docker"),
    ];

    /// Gives `spec` the [`ENV`] a process needs for its box's engine.
    pub fn apply_env(spec: &mut super::ProcessSpec) {
        for (key, value) in ENV {
            spec.env.insert((*key).into(), (*value).into());
        }
    }
}

/// A host directory the sandbox sees at `target`, bound as it is (what the box writes there
/// stays), without set-uid files, device files or executables. Several sandboxes may share
/// one; what it holds is the sandboxed code's to write, so the host must treat it as
/// untrusted (open nothing in it that a link could redirect).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    /// An absolute directory on the host.
    pub source: PathBuf,
    pub target: VolumeTarget,
    pub read_only: bool,
}

/// Where a [`Volume`] appears: `/data`, `/mnt/<name>` or `/run/<name>` (names of `a-z`, `0-9`,
/// `-` and `_`), so it can never cover a system directory, the workspace or `/tmp`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct VolumeTarget(String);

impl VolumeTarget {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let name_ok = |n: &str| {
            !n.is_empty()
                && n.len() <= 64
                && n.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        };
        let ok = raw == "/data"
            || ["/mnt/", "/run/"]
                .iter()
                .any(|p| raw.strip_prefix(p).is_some_and(name_ok));
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(format!(
                "a volume goes at /data, /mnt/<name> or /run/<name>, not {raw:?}"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for VolumeTarget {
    type Error = String;
    fn try_from(raw: String) -> Result<Self, String> {
        Self::parse(&raw)
    }
}

impl From<VolumeTarget> for String {
    fn from(t: VolumeTarget) -> String {
        t.0
    }
}

/// The storage of a sandbox's `/workspace`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WorkspaceSpec {
    /// Fresh and empty, `limits.workspace_bytes` in size, gone with the sandbox (runs).
    #[default]
    Ephemeral,
    /// Kept in `dir` on the host across sandboxes and server restarts (sessions). The backend
    /// keeps it there in its own format — the native backend as a filesystem image of
    /// `limits.workspace_bytes` (fixed when first created), mounted only inside the sandbox's
    /// own mount namespace, so the host never mounts it or opens a file in it. A persistent
    /// workspace survives [`reset`](crate::Sandbox::reset); only one sandbox may use a `dir`
    /// at a time.
    /// `max_files` bounds the entries (files, directories, links) it can ever hold, however
    /// they are made (the native backend sizes the filesystem's inode table with it).
    Persistent { dir: PathBuf, max_files: u64 },
}

/// The root filesystem of a sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RootSpec {
    /// The host's system directories (`/usr`, `/bin`, `/lib*`, `/sbin`, `/opt`) and a subset of
    /// `/etc`, read-only. Nothing else of the host is visible.
    Host,
    /// A prepared root filesystem directory (an environment image): all of its top-level entries,
    /// read-only.
    Directory { path: PathBuf },
}

/// Limits on a whole sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxLimits {
    /// Memory of every process in the box together, tmpfs contents included.
    pub memory_bytes: u64,
    /// Processes and threads alive at once.
    pub pids: u64,
    /// CPU bandwidth, in thousandths of a core (1000 = one full core).
    pub cpu_millicores: Option<u32>,
    /// Size of the writable workspace.
    pub workspace_bytes: u64,
    /// Size of `/tmp`.
    pub tmp_bytes: u64,
    /// Size of `/dev/shm`.
    pub shm_bytes: u64,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        Self {
            memory_bytes: 256 << 20,
            pids: 64,
            cpu_millicores: Some(1000),
            workspace_bytes: 64 << 20,
            tmp_bytes: 32 << 20,
            shm_bytes: 16 << 20,
        }
    }
}

/// What a sandbox may reach over the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NetworkPolicy {
    /// Its own loopback interface and nothing else (the default).
    #[default]
    Loopback,
}

impl SandboxSpec {
    pub fn new(limits: SandboxLimits) -> Self {
        Self {
            root: RootSpec::Host,
            limits,
            network: NetworkPolicy::Loopback,
            hostname: "sandpit".into(),
            workspace: WorkspaceSpec::Ephemeral,
            volumes: Vec::new(),
            containers: None,
        }
    }
}

/// One process to start in a sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessSpec {
    /// Program and arguments, passed to `execve` as they are: never through a shell. `argv[0]` is
    /// an absolute path or is looked up in the `PATH` of `env`.
    pub argv: Vec<String>,
    /// The complete environment: nothing of the server's environment leaks in.
    pub env: BTreeMap<String, String>,
    /// Working directory inside the sandbox.
    pub cwd: PathBuf,
    pub stdio: StdioMode,
    pub limits: ProcessLimits,
    /// Keep this process (a terminal's shell) alive when the connection that started it ends,
    /// for a later one to [attach](crate::client::AgentConnection::attach) to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold: Option<Hold>,
}

/// How a held process outlives its connection (see [`ProcessSpec::hold`]): the agent keeps
/// reading its terminal into a screen model of its own, so whoever attaches next gets the
/// screen back, and ends it after `grace_ms` with nobody attached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    /// What a later connection attaches by: 1 to 64 of `a-z`, `0-9`, `-`, `_`. A new process
    /// held under a name in use replaces the old one (which is ended).
    pub name: String,
    /// How long it outlives a connection with nobody attaching again; then SIGHUP and, a
    /// moment later, SIGKILL.
    pub grace_ms: u64,
    /// Lines of history the agent's screen model keeps (at most 100 000).
    pub scrollback: usize,
}

impl ProcessSpec {
    /// A process in the workspace with a minimal environment.
    pub fn new<S: Into<String>>(argv: impl IntoIterator<Item = S>) -> Self {
        Self {
            argv: argv.into_iter().map(Into::into).collect(),
            env: default_env(),
            cwd: PathBuf::from(WORKSPACE_DIR),
            stdio: StdioMode::Pipes,
            limits: ProcessLimits::default(),
            hold: None,
        }
    }

    /// Checks what the agent cannot check cheaply after fork: argv and env are non-empty and free
    /// of NUL bytes (which `execve` cannot carry), and cwd is absolute.
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.argv.is_empty() || self.argv[0].is_empty() {
            return Err(SpecError::EmptyArgv);
        }
        if self.argv.iter().any(|a| a.contains('\0')) {
            return Err(SpecError::Nul("argv"));
        }
        for (k, v) in &self.env {
            if k.is_empty() || k.contains('=') || k.contains('\0') || v.contains('\0') {
                return Err(SpecError::BadEnv(k.clone()));
            }
        }
        if !self.cwd.is_absolute() {
            return Err(SpecError::RelativeCwd);
        }
        if let Some(hold) = &self.hold {
            if !matches!(self.stdio, StdioMode::Pty { .. }) {
                return Err(SpecError::BadHold(
                    "only a process on a terminal can be held",
                ));
            }
            let name_ok = (1..=64).contains(&hold.name.len())
                && hold.name.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                });
            if !name_ok {
                return Err(SpecError::BadHold(
                    "the name must be 1 to 64 of a-z, 0-9, '-' and '_'",
                ));
            }
            if hold.scrollback > 100_000 {
                return Err(SpecError::BadHold(
                    "scrollback must be at most 100000 lines",
                ));
            }
        }
        Ok(())
    }
}

/// The environment every sandboxed process starts from unless the caller replaces it.
pub fn default_env() -> BTreeMap<String, String> {
    [
        ("PATH", "/usr/local/bin:/usr/bin:/bin"),
        ("HOME", WORKSPACE_DIR),
        ("LANG", "C.UTF-8"),
        ("TMPDIR", "/tmp"),
        ("USER", "sandbox"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// How a process's standard streams are connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StdioMode {
    /// Separate pipes for stdin, stdout and stderr.
    Pipes,
    /// One pseudo-terminal for all three; output arrives as stdout.
    Pty { rows: u16, cols: u16 },
    /// A pipe for stdin, and one pipe that is both stdout and stderr (a shell's `2>&1`): the
    /// output arrives as stdout, in the order it was written.
    Merged,
}

/// Limits on one process (and what it starts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessLimits {
    /// Wall-clock time from start to exit; `None` for interactive processes.
    pub wall_ms: Option<u64>,
    /// CPU time (`RLIMIT_CPU`, whole seconds rounded up, and checked against the exact usage).
    pub cpu_ms: Option<u64>,
    /// Largest file the process may write (`RLIMIT_FSIZE`).
    pub file_size_bytes: u64,
    /// Open file descriptors (`RLIMIT_NOFILE`).
    pub open_files: u64,
    /// stdout and stderr together; the process is killed when it writes more.
    pub output_bytes: Option<u64>,
}

impl Default for ProcessLimits {
    fn default() -> Self {
        Self {
            wall_ms: Some(10_000),
            cpu_ms: Some(5_000),
            file_size_bytes: 16 << 20,
            open_files: 256,
            output_bytes: Some(1 << 20),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpecError {
    #[error("argv must name a program")]
    EmptyArgv,
    #[error("{0} must not contain NUL bytes")]
    Nul(&'static str),
    #[error("environment variable {0:?} is not valid")]
    BadEnv(String),
    #[error("the working directory must be an absolute path")]
    RelativeCwd,
    #[error("path {0:?} is not valid: {1}")]
    BadPath(String, &'static str),
    #[error("hold: {0}")]
    BadHold(&'static str),
}

/// A path inside the workspace: relative, made only of normal components, no NUL, bounded
/// length. Parsing is the only way to get one, so file operations never see `..`, absolute paths
/// or empty names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WorkspacePath(String);

impl WorkspacePath {
    pub const MAX_LEN: usize = 1024;
    const MAX_COMPONENT: usize = 255;

    pub fn parse(raw: &str) -> Result<Self, SpecError> {
        let bad = |why| Err(SpecError::BadPath(raw.chars().take(64).collect(), why));
        if raw.is_empty() {
            return bad("it is empty");
        }
        if raw.len() > Self::MAX_LEN {
            return bad("it is too long");
        }
        if raw.contains('\0') {
            return bad("it contains a NUL byte");
        }
        if raw.starts_with('/') {
            return bad("it must be relative to the workspace");
        }
        let mut parts = Vec::new();
        for component in Path::new(raw).components() {
            match component {
                Component::Normal(part) => {
                    if part.len() > Self::MAX_COMPONENT {
                        return bad("a name is longer than 255 bytes");
                    }
                    parts.push(part.to_string_lossy().into_owned());
                }
                Component::CurDir => {}
                Component::ParentDir => return bad("it contains `..`"),
                Component::RootDir | Component::Prefix(_) => {
                    return bad("it must be relative to the workspace");
                }
            }
        }
        if parts.is_empty() {
            return bad("it names the workspace itself");
        }
        Ok(Self(parts.join("/")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The absolute path inside the sandbox.
    pub fn in_sandbox(&self) -> PathBuf {
        Path::new(WORKSPACE_DIR).join(&self.0)
    }
}

impl fmt::Display for WorkspacePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for WorkspacePath {
    type Error = SpecError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<WorkspacePath> for String {
    fn from(value: WorkspacePath) -> Self {
        value.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workspace_paths_are_normalised_or_refused() {
        assert_eq!(WorkspacePath::parse("a/./b").unwrap().as_str(), "a/b");
        assert_eq!(WorkspacePath::parse("main.py").unwrap().as_str(), "main.py");
        assert_eq!(
            WorkspacePath::parse("src/x.rs").unwrap().in_sandbox(),
            PathBuf::from("/workspace/src/x.rs")
        );
        for bad in ["", "/etc/passwd", "../x", "a/../../x", "a\0b", ".", "./"] {
            assert!(WorkspacePath::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(WorkspacePath::parse(&"a".repeat(256)).is_err());
        assert!(WorkspacePath::parse(&"a/".repeat(600)).is_err());
    }

    #[test]
    fn process_specs_refuse_what_execve_cannot_carry() {
        assert!(ProcessSpec::new(["/bin/true"]).validate().is_ok());
        assert_eq!(
            ProcessSpec::new(Vec::<String>::new()).validate(),
            Err(SpecError::EmptyArgv)
        );
        assert_eq!(
            ProcessSpec::new(["/bin/echo", "a\0b"]).validate(),
            Err(SpecError::Nul("argv"))
        );
        let mut spec = ProcessSpec::new(["/bin/true"]);
        spec.env.insert("A=B".into(), "x".into());
        assert!(matches!(spec.validate(), Err(SpecError::BadEnv(_))));
        let mut spec = ProcessSpec::new(["/bin/true"]);
        spec.cwd = "relative".into();
        assert_eq!(spec.validate(), Err(SpecError::RelativeCwd));
    }
}
