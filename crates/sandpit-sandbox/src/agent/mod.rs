//! The in-sandbox agent (`sandpit agent`). The server starts it with a socket on stdin and sends
//! an [`AgentSetup`]. The agent joins its cgroup, unshares the PID namespace and forks: the child
//! is PID 1 of the new PID namespace, unshares the mount, network, IPC and UTS namespaces, builds
//! the root ([`root`]), answers [`Ready`](crate::protocol::Event::Ready) and then serves requests —
//! spawning processes, streaming their output, enforcing wall-time and output limits, file
//! operations and resets — until the socket closes. The parent stays outside and only waits.
//!
//! Namespaces, mounts and the cgroup are paid for once per sandbox; a spawn is a fork and exec
//! from an already-isolated process.

mod containers;
mod files;
pub mod idmap;
mod root;
mod serve;
mod sys;

use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::ExitCode;

use nix::sched::CloneFlags;

use crate::protocol::{AgentSetup, Event, Frame, encode, read_frame_blocking};
use crate::seccomp::SyscallFilter;

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

/// Entry point of `sandpit agent`: the socket is on stdin.
pub fn main() -> ExitCode {
    if let Err(e) = sys::close_inherited_fds() {
        eprintln!("sandpit agent: closing inherited descriptors: {e}");
        return ExitCode::FAILURE;
    }
    let sock = match std::io::stdin().as_fd().try_clone_to_owned() {
        Ok(fd) => fd,
        Err(e) => {
            eprintln!("sandpit agent: no socket on stdin: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut stream = UnixStream::from(sock);
    let setup: AgentSetup = match read_frame_blocking(&mut stream) {
        Ok(frame) => frame.msg,
        Err(e) => {
            eprintln!("sandpit agent: reading set-up: {e}");
            return ExitCode::FAILURE;
        }
    };
    match prepare(&setup) {
        Ok(oom) => match isolate(&setup) {
            Ok(sys::Forked::Parent(child)) => {
                drop(stream);
                wait_for(child)
            }
            Ok(sys::Forked::Child) => inside(setup, stream, oom),
            Err(e) => fail(&mut stream, &format!("creating namespaces: {e}")),
        },
        Err(e) => fail(&mut stream, &e),
    }
}

fn fail(stream: &mut UnixStream, error: &str) -> ExitCode {
    let frame = Frame::new(Event::SetupFailed {
        error: error.to_owned(),
    });
    if let Ok(bytes) = encode(&frame) {
        let _ = stream.write_all(&bytes);
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
fn inside(setup: AgentSetup, mut stream: UnixStream, oom: Option<std::fs::File>) -> ExitCode {
    // If the waiting parent is killed, so is the sandbox.
    let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
    let filter = match build_inside(&setup) {
        Ok(filter) => filter,
        Err(e) => return fail(&mut stream, &e),
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
    let ready = Frame::new(Event::Ready {
        features: features.into_iter().map(String::from).collect(),
    });
    match encode(&ready) {
        Ok(bytes) => {
            if stream.write_all(&bytes).is_err() {
                return ExitCode::FAILURE;
            }
        }
        Err(_) => return ExitCode::FAILURE,
    }
    let cap_last = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(63);
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
            stream,
            serve::Context {
                setup,
                filter,
                cap_last,
                oom,
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
