//! Pod mode (`sandpit agent --listen ADDR`): the agent is the main process of a container that
//! a container runtime already isolated (a Kubernetes pod), so the container is the box. It
//! binds `ADDR` itself, reads the box's key from the file named by [`SECRET_FILE_ENV`] and
//! serves the TCP transport ([`crate::transport`]) with the same handshake and reconnection
//! rules as `--listen-inherited`.
//!
//! What it skips, because the runtime did it or the agent lacks the privileges: the cgroup, the
//! namespaces, the fork into PID 1, building a root and `pivot_root`, the host name and
//! loopback. What it keeps: seccomp (when the set-up asks), `no_new_privs`, rlimits, dropping
//! capabilities (a no-op when it has none), wall-time and output limits, exit classification,
//! file requests in `/workspace`. Running as root (as on a test host) it drops to the set-up's
//! uid as the box agent does; running unprivileged it spawns as itself and refuses a set-up
//! asking for another uid.
//!
//! Processes are ended by walking the process tree below the agent (it is a child subreaper,
//! so orphans of its processes come back to it): `kill(-1)` from a process that is not PID 1
//! of its own namespace reaches every process of the same uid it can see, which in a pod
//! sharing a PID namespace, or on a test host, is more than the box. A reset then empties
//! `/workspace`, `/tmp` and `/dev/shm` in place; there are no mounts to replace.

use std::fs;
use std::io::{self, Read};
use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use super::{Channel, serve};
use crate::protocol::{AgentSetup, Event, Frame, ProtocolError, encode, read_frame};
use crate::seccomp::SyscallFilter;
use crate::spec::{RootSpec, WORKSPACE_DIR};
use crate::transport::{AgentKey, AgentState, KEY_LEN};

/// The agent's argument that starts pod mode: `--listen ADDR` (or `--listen=ADDR`).
pub const LISTEN: &str = "--listen";
/// Names the file holding the box's key: exactly [`KEY_LEN`] raw bytes.
pub const SECRET_FILE_ENV: &str = "SANDPIT_AGENT_SECRET_FILE";
/// The directories a reset empties: the pod's writable volumes.
pub const SCRATCH_DIRS: [&str; 3] = [WORKSPACE_DIR, "/tmp", "/dev/shm"];
/// How long the first connection may take to send the set-up after its handshake.
const SETUP_TIMEOUT: Duration = super::SETUP_TIMEOUT;

#[derive(Debug, thiserror::Error)]
pub enum PodError {
    #[error("{SECRET_FILE_ENV} is not set: pod mode reads the box's key from the file it names")]
    NoSecretFile,
    #[error("reading the key from {path}: {source}")]
    ReadKey { path: PathBuf, source: io::Error },
    #[error("the key file {path} holds {len} bytes, where a key is exactly {KEY_LEN}")]
    KeyLength { path: PathBuf, len: usize },
    #[error("{what}: {source}")]
    Process {
        what: &'static str,
        source: nix::errno::Errno,
    },
    #[error("listening on {addr}: {source}")]
    Listen { addr: String, source: io::Error },
    #[error("the runtime: {0}")]
    Runtime(io::Error),
    #[error("the set-up was refused: {0}")]
    Refused(String),
    #[error("serving: {0}")]
    Serve(ProtocolError),
}

/// The address after [`LISTEN`] in `args`, if pod mode was asked for. `Err`: `--listen`
/// without an address.
pub fn listen_addr(args: &[String]) -> Result<Option<String>, String> {
    for (i, arg) in args.iter().enumerate() {
        if let Some(addr) = arg.strip_prefix("--listen=") {
            return Ok(Some(addr.to_owned()));
        }
        if arg == LISTEN {
            return match args.get(i + 1) {
                Some(addr) if !addr.starts_with("--") => Ok(Some(addr.clone())),
                _ => Err(format!(
                    "{LISTEN} needs an address, as in {LISTEN} 0.0.0.0:7070"
                )),
            };
        }
    }
    Ok(None)
}

/// Entry point of pod mode. Called first thing, while the agent is single-threaded.
pub fn main(addr: &str) -> ExitCode {
    match run(addr) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sandpit agent: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Takes the key file's name out of the environment (no child may see it) and reads the key.
fn read_key() -> Result<AgentKey, PodError> {
    let path = PathBuf::from(super::sys::take_env(SECRET_FILE_ENV).ok_or(PodError::NoSecretFile)?);
    let read = |path: &Path| -> io::Result<Vec<u8>> {
        let mut bytes = Vec::with_capacity(KEY_LEN + 1);
        // One byte more than a key, to tell a long file from a key.
        fs::File::open(path)?
            .take(KEY_LEN as u64 + 1)
            .read_to_end(&mut bytes)?;
        Ok(bytes)
    };
    let bytes = read(&path).map_err(|source| PodError::ReadKey {
        path: path.clone(),
        source,
    })?;
    let key: [u8; KEY_LEN] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| PodError::KeyLength {
            path,
            len: bytes.len(),
        })?;
    Ok(AgentKey::from_bytes(key))
}

fn run(addr: &str) -> Result<(), PodError> {
    let key = read_key()?;
    let process = |what| move |source| PodError::Process { what, source };
    // Not dumpable: a process of the same uid (all of the box's, when unprivileged) can neither
    // ptrace the agent nor read its memory or /proc/<pid>/environ, where the key lives.
    nix::sys::prctl::set_dumpable(false).map_err(process("making the agent undumpable"))?;
    // Orphans of the agent's processes come back to it, so killing its tree reaches them.
    nix::sys::prctl::set_child_subreaper(true).map_err(process("becoming a child subreaper"))?;
    let listener = TcpListener::bind(addr).map_err(|source| PodError::Listen {
        addr: addr.to_owned(),
        source,
    })?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(PodError::Runtime)?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, serve_pod(listener, key))
}

async fn serve_pod(listener: TcpListener, key: AgentKey) -> Result<(), PodError> {
    let listener = (|| {
        listener.set_nonblocking(true)?;
        tokio::net::TcpListener::from_std(listener)
    })()
    .map_err(|source| PodError::Listen {
        addr: "the bound address".into(),
        source,
    })?;
    // A connection that is gone before its set-up leaves the pod waiting for the next.
    let (stream, setup) = loop {
        let mut stream = super::listen::accept(&listener, &key, AgentState::AwaitingSetup).await;
        let read = tokio::time::timeout(SETUP_TIMEOUT, read_frame::<AgentSetup, _>(&mut stream));
        match read.await {
            Ok(Ok(frame)) => break (stream, frame.msg),
            Ok(Err(e)) => eprintln!("sandpit agent: reading the set-up: {e}"),
            Err(_) => eprintln!("sandpit agent: no set-up within {SETUP_TIMEOUT:?}"),
        }
    };
    let to_std = |stream: tokio::net::TcpStream| {
        let stream = stream.into_std()?;
        crate::transport::tune(&stream)?;
        io::Result::Ok(stream)
    };
    let mut stream = to_std(stream).map_err(|e| PodError::Serve(e.into()))?;
    let listener = listener.into_std().map_err(|e| PodError::Serve(e.into()))?;
    let identity = (
        nix::unistd::geteuid().as_raw(),
        nix::unistd::getegid().as_raw(),
    );
    let ctx = check_setup(&setup, identity).and_then(|mode| context(setup, mode));
    let ctx = match ctx {
        Ok(ctx) => ctx,
        Err(error) => {
            let frame = Frame::new(Event::SetupFailed {
                error: error.clone(),
            });
            if let Ok(bytes) = encode(&frame) {
                use std::io::Write;
                let _ = stream.write_all(&bytes);
            }
            return Err(PodError::Refused(error));
        }
    };
    let ready = encode(&Frame::new(Event::Ready {
        features: ctx.features.clone(),
    }))
    .map_err(PodError::Serve)?;
    {
        use std::io::Write;
        stream
            .write_all(&ready)
            .map_err(|e| PodError::Serve(e.into()))?;
    }
    serve::serve(
        Channel::Tcp {
            stream,
            listener,
            key,
        },
        ctx,
    )
    .await
    .map_err(PodError::Serve)
}

/// Whether a pod can be the box `setup` describes, and if so how it serves: what a pod's agent
/// cannot do (join a cgroup, mount a device, build a root) is refused rather than skipped, so
/// a caller never believes in isolation that is not there. `identity`: the agent's (uid, gid).
pub fn check_setup(setup: &AgentSetup, identity: (u32, u32)) -> Result<serve::Mode, String> {
    let unsupported = [
        (!setup.cgroup_procs.is_empty(), "a cgroup to join"),
        (setup.workspace_device.is_some(), "a workspace device"),
        (!setup.volumes.is_empty(), "volumes to bind"),
        (setup.containers.is_some(), "a container engine"),
        (
            !matches!(setup.root, RootSpec::Host),
            "a root directory (the pod's image is its root)",
        ),
    ];
    if let Some((_, what)) = unsupported.iter().find(|(asked, _)| *asked) {
        return Err(format!("an agent in pod mode cannot provide {what}"));
    }
    let (uid, gid) = identity;
    if uid == 0 {
        return Ok(serve::Mode::Pod {
            change_identity: true,
        });
    }
    if (setup.uid, setup.gid) != (uid, gid) {
        return Err(format!(
            "the set-up asks for uid {} gid {}, but the agent runs unprivileged as uid {uid} \
             gid {gid} and cannot change identity: the pod's runAsUser/runAsGroup must match",
            setup.uid, setup.gid
        ));
    }
    Ok(serve::Mode::Pod {
        change_identity: false,
    })
}

fn context(setup: AgentSetup, mode: serve::Mode) -> Result<serve::Context, String> {
    let filter = if setup.seccomp {
        Some(SyscallFilter::new().map_err(|e| format!("building the seccomp filter: {e}"))?)
    } else {
        None
    };
    let oom = match &setup.oom_events {
        Some(path) => {
            Some(fs::File::open(path).map_err(|e| format!("opening {}: {e}", path.display()))?)
        }
        None => None,
    };
    let mut features = vec!["pod", "no_new_privs"];
    if filter.is_some() {
        features.push("seccomp");
    }
    if setup.uid != 0 {
        features.push("unprivileged_uid");
    }
    let caps_gone = match mode {
        // Leaving uid 0 for a non-zero uid clears every capability set.
        serve::Mode::Pod {
            change_identity: true,
        } => setup.uid != 0,
        _ => fs::read_to_string("/proc/self/status").is_ok_and(|s| no_capabilities(&s)),
    };
    if caps_gone {
        features.push("capabilities_dropped");
    }
    Ok(serve::Context {
        setup,
        filter,
        cap_last: super::cap_last(),
        oom,
        features: features.into_iter().map(String::from).collect(),
        mode,
    })
}

/// Whether a `/proc/<pid>/status` shows no permitted and no ambient capabilities: then the
/// agent's children (non-root, `no_new_privs`, so no file capabilities) have none either.
fn no_capabilities(status: &str) -> bool {
    let zero = |field: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .is_some_and(|v| u64::from_str_radix(v.trim(), 16) == Ok(0))
    };
    zero("CapPrm:") && zero("CapAmb:")
}

/// Empties the scratch directories in place (a pod's volumes cannot be remounted). Run after
/// every process is gone, so nothing changes the trees while they are removed.
pub fn empty_scratch() -> io::Result<()> {
    for dir in SCRATCH_DIRS {
        let dir = Path::new(dir);
        match fs::symlink_metadata(dir) {
            // A container without /dev/shm has nothing there to empty.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(with_path(e, dir)),
            Ok(meta) => restore_access(dir, &meta),
        }
        empty_dir(dir)?;
    }
    Ok(())
}

fn with_path(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// Sandboxed code may have taken its own write or search right on a directory away; as its
/// owner the agent can give it back, and must, to remove what is inside.
fn restore_access(dir: &Path, meta: &fs::Metadata) {
    let mode = meta.permissions().mode();
    if meta.uid() == nix::unistd::geteuid().as_raw() && mode & 0o700 != 0o700 {
        let _ = fs::set_permissions(dir, fs::Permissions::from_mode(mode | 0o700));
    }
}

/// Removes everything inside `dir`, never following a link.
fn empty_dir(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir).map_err(|e| with_path(e, dir))? {
        let path = entry.map_err(|e| with_path(e, dir))?.path();
        let meta = fs::symlink_metadata(&path).map_err(|e| with_path(e, &path))?;
        if meta.is_dir() {
            restore_access(&path, &meta);
            empty_dir(&path)?;
            fs::remove_dir(&path).map_err(|e| with_path(e, &path))?;
        } else {
            fs::remove_file(&path).map_err(|e| with_path(e, &path))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::SandboxLimits;

    fn setup(uid: u32) -> AgentSetup {
        AgentSetup {
            root: RootSpec::Host,
            limits: SandboxLimits {
                memory_bytes: 1 << 28,
                pids: 64,
                cpu_millicores: None,
                workspace_bytes: 1 << 20,
                tmp_bytes: 1 << 20,
                shm_bytes: 1 << 20,
            },
            hostname: "box".into(),
            cgroup_procs: Vec::new(),
            oom_events: None,
            uid,
            gid: uid,
            seccomp: true,
            workspace_device: None,
            volumes: Vec::new(),
            containers: None,
        }
    }

    #[test]
    fn the_listen_address_follows_the_flag() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            listen_addr(&args(&["agent", "--listen", "0.0.0.0:7070"])),
            Ok(Some("0.0.0.0:7070".into()))
        );
        assert_eq!(
            listen_addr(&args(&["agent", "--listen=[::]:1"])),
            Ok(Some("[::]:1".into()))
        );
        assert_eq!(
            listen_addr(&args(&["agent", "--listen-inherited"])),
            Ok(None)
        );
        assert!(listen_addr(&args(&["agent", "--listen"])).is_err());
    }

    #[test]
    fn an_unprivileged_agent_serves_only_its_own_uid() {
        assert_eq!(
            check_setup(&setup(10001), (10001, 10001)),
            Ok(serve::Mode::Pod {
                change_identity: false
            })
        );
        let refused = check_setup(&setup(10002), (10001, 10001)).unwrap_err();
        assert!(refused.contains("uid 10002"), "{refused}");
        assert_eq!(
            check_setup(&setup(10002), (0, 0)),
            Ok(serve::Mode::Pod {
                change_identity: true
            })
        );
    }

    #[test]
    fn what_a_pod_cannot_provide_is_refused() {
        let mut s = setup(10001);
        s.cgroup_procs.push("/sys/fs/cgroup/x/cgroup.procs".into());
        assert!(
            check_setup(&s, (10001, 10001))
                .unwrap_err()
                .contains("cgroup")
        );
        let mut s = setup(10001);
        s.root = RootSpec::Directory { path: "/x".into() };
        assert!(
            check_setup(&s, (10001, 10001))
                .unwrap_err()
                .contains("root")
        );
    }

    #[test]
    fn only_empty_permitted_and_ambient_sets_count_as_dropped() {
        let status = "Name:\tx\nCapInh:\t0000000000000000\nCapPrm:\t0000000000000000\n\
                      CapEff:\t0000000000000000\nCapAmb:\t0000000000000000\n";
        assert!(no_capabilities(status));
        assert!(!no_capabilities(&status.replace(
            "CapPrm:\t0000000000000000",
            "CapPrm:\t0000000000000400"
        )));
        assert!(!no_capabilities("Name:\tx\n"));
    }
}
