//! The in-sandbox agent (`sandpit agent`). The server starts it with a socket on stdin and sends
//! an [`AgentSetup`]. The agent joins its cgroup, unshares the PID namespace and forks: the child
//! is PID 1 of the new PID namespace, unshares the mount, network, IPC and UTS namespaces, builds
//! the root ([`root`]), answers [`Ready`](crate::protocol::Event::Ready) and then serves requests —
//! spawning processes, streaming their output, enforcing wall-time and output limits, file
//! operations and resets — until the socket closes. The parent stays outside and only waits.
//!
//! With [`LISTEN_INHERITED`] the agent is driven over TCP instead (see [`crate::transport`]):
//! the server passes a listening socket and the box's key over stdin and closes it; the agent
//! takes the set-up from the first connection that proves it holds the key. PID 1 keeps the
//! listener — made in the host's network namespace, it stays there when PID 1 unshares its
//! own — so a box with nothing but loopback is still reachable from the host. A connection that
//! ends does not end the box: its processes are killed, files stay, and the next authenticated
//! connection is served (one at a time; a connection made meanwhile waits in the listen
//! backlog). The key never enters an environment or an argument list, and no sandboxed process
//! inherits the listener or a connection (all are close-on-exec).
//!
//! With [`LISTEN`] (`--listen ADDR`) the agent is a Kubernetes pod's process instead
//! ([`pod`], "pod mode"): the container is the box, so it binds the address itself, takes the
//! key from the file [`SECRET_FILE_ENV`] names, skips the cgroup, namespaces, fork and root,
//! and serves the same TCP transport.
//!
//! Namespaces, mounts and the cgroup are paid for once per sandbox; a spawn is a fork and exec
//! from an already-isolated process.

mod containers;
mod files;
pub mod idmap;
mod listen;
mod pod;
mod root;
mod serve;
mod sys;
mod tree;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use nix::sched::CloneFlags;

use crate::protocol::{AgentSetup, Event, Frame, encode, read_frame_blocking};
use crate::seccomp::SyscallFilter;
use crate::transport::{AgentKey, AgentState};

pub use pod::{LISTEN, SECRET_FILE_ENV};
pub use tree::live_descendants;

/// The agent's argument that says stdin carries a listening TCP socket and the box's key
/// (the native backend's TCP transport) rather than the server's own connection.
pub const LISTEN_INHERITED: &str = "--listen-inherited";

/// How long the first TCP connection may take to send the set-up after its handshake.
const SETUP_TIMEOUT: Duration = Duration::from_secs(60);

/// How this agent talks to its server.
pub(crate) enum Channel {
    /// The server's socket on stdin, for the box's whole life.
    Pipe(UnixStream),
    /// A connection accepted on `listener`, which stays open for the connections after it.
    Tcp {
        stream: TcpStream,
        listener: TcpListener,
        key: AgentKey,
    },
}

trait Duplex: Read + Write {}
impl<T: Read + Write> Duplex for T {}

impl Channel {
    fn stream(&mut self) -> &mut dyn Duplex {
        match self {
            Self::Pipe(stream) => stream,
            Self::Tcp { stream, .. } => stream,
        }
    }
}

/// Takes the listener and key from the server's socket and waits for the first connection
/// that proves it holds the key.
fn listen_first(sock: UnixStream) -> Result<Channel, String> {
    let (key, listener) =
        sys::receive_listener(&sock).map_err(|e| format!("receiving the listener: {e}"))?;
    drop(sock);
    let key = AgentKey::from_bytes(key);
    // A runtime only for this wait, dropped before the fork, which needs a single-threaded
    // process: a current-thread runtime that never ran blocking work has no other thread.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    let accepted = runtime.block_on(async {
        listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let stream = listen::accept(&listener, &key, AgentState::AwaitingSetup).await;
        std::io::Result::Ok((listener.into_std()?, stream.into_std()?))
    });
    drop(runtime);
    let (listener, stream) = accepted.map_err(|e| format!("accepting: {e}"))?;
    let configured = (|| {
        stream.set_nonblocking(false)?;
        // The set-up follows the handshake at once; a connection that goes quiet instead must
        // not hold the agent for good.
        stream.set_read_timeout(Some(SETUP_TIMEOUT))?;
        crate::transport::tune(&stream)
    })();
    configured.map_err(|e| format!("the first connection: {e}"))?;
    Ok(Channel::Tcp {
        stream,
        listener,
        key,
    })
}

/// When this program runs as a box's `newuidmap` or `newgidmap` (its name says so), what that
/// does; `None` otherwise. Binaries that can be an agent call this first thing in `main`.
pub fn as_idmap_helper() -> Option<ExitCode> {
    let mut args = std::env::args();
    let name = args.next()?;
    let kind = match Path::new(&name).file_name()?.to_str()? {
        "newuidmap" => idmap::Kind::Uid,
        "newgidmap" => idmap::Kind::Gid,
        _ => return None,
    };
    Some(idmap::helper_main(kind, &args.collect::<Vec<_>>()))
}

/// Entry point of `sandpit agent`: the socket is on stdin, or with [`LISTEN`] the agent is a
/// pod's process ([`pod`]).
pub fn main() -> ExitCode {
    if let Err(e) = sys::close_inherited_fds() {
        eprintln!("sandpit agent: closing inherited descriptors: {e}");
        return ExitCode::FAILURE;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    match pod::listen_addr(&args) {
        Ok(Some(addr)) => return pod::main(&addr),
        Ok(None) => {}
        Err(e) => {
            eprintln!("sandpit agent: {e}");
            return ExitCode::FAILURE;
        }
    }
    let sock = match std::io::stdin().as_fd().try_clone_to_owned() {
        Ok(fd) => fd,
        Err(e) => {
            eprintln!("sandpit agent: no socket on stdin: {e}");
            return ExitCode::FAILURE;
        }
    };
    let sock = UnixStream::from(sock);
    let mut channel = if args.iter().any(|arg| arg == LISTEN_INHERITED) {
        match listen_first(sock) {
            Ok(channel) => channel,
            Err(e) => {
                eprintln!("sandpit agent: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        Channel::Pipe(sock)
    };
    let setup: AgentSetup = match read_frame_blocking(&mut channel.stream()) {
        Ok(frame) => frame.msg,
        Err(e) => {
            eprintln!("sandpit agent: reading set-up: {e}");
            return ExitCode::FAILURE;
        }
    };
    match prepare(&setup) {
        Ok(oom) => match isolate(&setup) {
            Ok(sys::Forked::Parent(child)) => {
                drop(channel);
                wait_for(child)
            }
            Ok(sys::Forked::Child) => inside(setup, channel, oom),
            Err(e) => fail(&mut channel, &format!("creating namespaces: {e}")),
        },
        Err(e) => fail(&mut channel, &e),
    }
}

fn fail(channel: &mut Channel, error: &str) -> ExitCode {
    let frame = Frame::new(Event::SetupFailed {
        error: error.to_owned(),
    });
    if let Ok(bytes) = encode(&frame) {
        let _ = channel.stream().write_all(&bytes);
    }
    ExitCode::FAILURE
}

/// Steps taken in the host's namespaces: join the cgroup (so every later process is counted),
/// open the OOM counter, and shield the agent itself from the OOM killer where allowed (its
/// children undo this before they exec).
fn prepare(setup: &AgentSetup) -> Result<Option<std::fs::File>, String> {
    for procs in &setup.cgroup_procs {
        std::fs::write(procs, "0").map_err(|e| format!("joining {}: {e}", procs.display()))?;
    }
    let oom = match &setup.oom_events {
        Some(path) => Some(
            std::fs::File::open(path).map_err(|e| format!("opening {}: {e}", path.display()))?,
        ),
        None => None,
    };
    // Needs CAP_SYS_RESOURCE, which some hosts withhold even from root; the agent is small, so
    // the OOM killer prefers the process that filled the box anyway.
    let _ = std::fs::write("/proc/self/oom_score_adj", "-1000");
    Ok(oom)
}

/// Unshares the PID namespace (it applies to the children) and forks; the child, PID 1 of the
/// box, then unshares the others. The parent stays in the host's mount, network, IPC and UTS
/// namespaces: were it in the box's IPC namespace it would keep that namespace, and its SysV
/// shared memory (charged to the box), alive after a reset replaces it.
fn isolate(_setup: &AgentSetup) -> std::io::Result<sys::Forked> {
    // fork copies only the calling thread: any other would leave its locks held in the child.
    let threads = std::fs::read_dir("/proc/self/task")?.count();
    if threads != 1 {
        return Err(std::io::Error::other(format!(
            "{threads} threads before the fork, where there must be one"
        )));
    }
    nix::sched::unshare(CloneFlags::CLONE_NEWPID)?;
    match sys::fork()? {
        sys::Forked::Parent(child) => Ok(sys::Forked::Parent(child)),
        sys::Forked::Child => {
            nix::sched::unshare(
                CloneFlags::CLONE_NEWNS
                    | CloneFlags::CLONE_NEWNET
                    | CloneFlags::CLONE_NEWIPC
                    | CloneFlags::CLONE_NEWUTS,
            )?;
            Ok(sys::Forked::Child)
        }
    }
}

/// The parent outside the namespaces: mirrors the exit of PID 1.
fn wait_for(child: libc::pid_t) -> ExitCode {
    use nix::sys::wait::{WaitStatus, waitpid};
    loop {
        match waitpid(nix::unistd::Pid::from_raw(child), None) {
            Ok(WaitStatus::Exited(_, code)) => return ExitCode::from(code as u8),
            Ok(WaitStatus::Signaled(..)) => return ExitCode::FAILURE,
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return ExitCode::FAILURE,
        }
    }
}

/// PID 1 of the sandbox.
fn inside(setup: AgentSetup, mut channel: Channel, oom: Option<std::fs::File>) -> ExitCode {
    // If the waiting parent is killed, so is the sandbox.
    let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
    let filter = match build_inside(&setup) {
        Ok(filter) => filter,
        Err(e) => return fail(&mut channel, &e),
    };
    let mut features = vec![
        "pid_namespace",
        "mount_namespace",
        "network_namespace",
        "ipc_namespace",
        "uts_namespace",
        "read_only_root",
        "unprivileged_uid",
        "capabilities_dropped",
        "no_new_privs",
        "loopback_only_network",
    ];
    if filter.is_some() {
        features.push("seccomp");
    }
    if !setup.cgroup_procs.is_empty() {
        features.push("cgroup");
    }
    if setup.containers.is_some() {
        features.push("containers");
    }
    let features: Vec<String> = features.into_iter().map(String::from).collect();
    let ready = Frame::new(Event::Ready {
        features: features.clone(),
    });
    match encode(&ready) {
        Ok(bytes) => {
            if channel.stream().write_all(&bytes).is_err() {
                return ExitCode::FAILURE;
            }
        }
        Err(_) => return ExitCode::FAILURE,
    }
    let cap_last = cap_last();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sandpit agent: runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let local = tokio::task::LocalSet::new();
    let result = local.block_on(
        &runtime,
        serve::serve(
            channel,
            serve::Context {
                setup,
                filter,
                cap_last,
                oom,
                features,
                mode: serve::Mode::Box,
            },
        ),
    );
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sandpit agent: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The highest capability number this kernel knows (every one up to it is dropped).
fn cap_last() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(63)
}

fn build_inside(setup: &AgentSetup) -> Result<Option<SyscallFilter>, String> {
    root::build(setup).map_err(|e| format!("building the root: {e}"))?;
    nix::unistd::sethostname(&setup.hostname).map_err(|e| format!("setting the host name: {e}"))?;
    sys::loopback_up().map_err(|e| format!("bringing up loopback: {e}"))?;
    if setup.seccomp {
        let filter = if setup.containers.is_some() {
            SyscallFilter::for_containers()
        } else {
            SyscallFilter::new()
        };
        filter
            .map(Some)
            .map_err(|e| format!("building the seccomp filter: {e}"))
    } else {
        Ok(None)
    }
}
