//! The native backend: each sandbox is the agent started as a host process in its own cgroup,
//! which then unshares namespaces and builds its root (see [`crate::agent`]). Needs root (for
//! namespaces, mounts and cgroups); without it [`NativeBackend::new`] says what is missing
//! instead of running anything unsandboxed.

use std::net::IpAddr;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use crate::backend::{Backend, BackendReport, Sandbox, Usage};
use crate::cgroup::{Cgroup, CgroupLimits, CgroupManager};
use crate::client::AgentConnection;
use crate::error::SandboxError;
use crate::loopdev::{self, LoopDevice};
use crate::protocol::{AgentSetup, ContainersSetup};
use crate::seccomp::SyscallFilter;
use crate::spec::{ProcessLimits, ProcessSpec, SandboxLimits, SandboxSpec, WorkspaceSpec};
use crate::transport::{AgentEndpoint, AgentKey};

/// A non-blocking TCP socket made in `netns`. A socket belongs to the namespace it was made in
/// for good, so a short-lived thread enters the namespace, makes it and ends: no thread of the
/// server's pools ever changes namespace. (A thread costs tens of microseconds; the proxy keeps
/// its connections alive, so this is paid once per connection, not per request.)
async fn socket_in(netns: Arc<OwnedFd>) -> Result<std::net::TcpStream, SandboxError> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType};
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("sandbox-socket".into())
        .spawn(move || {
            let made =
                nix::sched::setns(&*netns, nix::sched::CloneFlags::CLONE_NEWNET).and_then(|()| {
                    nix::sys::socket::socket(
                        AddressFamily::Inet,
                        SockType::Stream,
                        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
                        None,
                    )
                });
            let _ = tx.send(made);
        })
        .map_err(|e| io("starting a thread", e))?;
    let fd = rx
        .await
        .map_err(|_| SandboxError::Setup("the socket thread ended early".into()))?
        .map_err(|e| io("making a socket in the sandbox", e.into()))?;
    Ok(std::net::TcpStream::from(fd))
}

/// The host pid of the agent's child, PID 1 of the box: from the kernel's list of the
/// agent's children, else the cgroup's member whose parent is the agent.
fn box_pid(agent: u32, cgroup: &Cgroup) -> Option<u32> {
    let parent_of = |pid: u32| -> Option<u32> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // `pid (comm) state ppid …`; comm may hold spaces and parentheses.
        stat.rsplit_once(')')?
            .1
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    let listed = std::fs::read_to_string(format!("/proc/{agent}/task/{agent}/children"))
        .ok()
        .and_then(|children| children.split_whitespace().next()?.parse().ok());
    listed.or_else(|| {
        cgroup
            .pids()
            .ok()?
            .into_iter()
            .find(|&pid| parent_of(pid) == Some(agent))
    })
}

/// The local ports of the listening sockets in a `/proc/net/tcp{,6}` table (state `0A`).
fn listening_in(table: &str) -> impl Iterator<Item = u16> + '_ {
    table.lines().skip(1).filter_map(|line| {
        let mut fields = line.split_whitespace();
        let local = fields.nth(1)?;
        let state = fields.nth(1)?;
        let (_, port) = local.rsplit_once(':')?;
        (state == "0A").then(|| u16::from_str_radix(port, 16).ok())?
    })
}

/// The first subordinate id of the box running as `uid`: above 2^31, a block of
/// [`SUBORDINATE_IDS`](crate::spec::containers::SUBORDINATE_IDS) per uid of the range, so
/// boxes of one backend never share one. (32767 blocks fit below 2^32; a range longer than
/// that wraps, and the uids 32767 apart share ids — far more boxes than one host runs.)
fn subordinate_start(uids: &std::ops::Range<u32>, uid: u32) -> u32 {
    let block = crate::spec::containers::SUBORDINATE_IDS + 1;
    let slot = (uid - uids.start) % 32_767;
    (1 << 31) + slot * block
}

/// How the server reaches the agent of a native box.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AgentTransport {
    /// A socketpair on the agent's stdin: the box lives as long as that one connection.
    #[default]
    Socketpair,
    /// TCP on a port of `bind` (picked by the kernel), authenticated with a per-box key
    /// ([`crate::transport`]). The box outlives its connections: see
    /// [`NativeSandbox::agent_endpoint`].
    Tcp { bind: IpAddr },
}

/// How the native backend starts agents and whom sandboxed code runs as.
#[derive(Debug, Clone)]
pub struct NativeConfig {
    /// The agent program and its arguments, e.g. `[current_exe, "agent"]`.
    pub agent_argv: Vec<String>,
    /// The unprivileged uids of sandboxed processes (not real users on the host). Each live
    /// sandbox runs as its own uid from this range (its gid equals its uid), so per-user
    /// kernel limits — inotify instances and watches, `RLIMIT_NPROC`, message queues, keys —
    /// are never shared between sandboxes. The range bounds how many sandboxes can exist at
    /// once.
    pub uids: std::ops::Range<u32>,
    /// Install the seccomp filter in every sandboxed process.
    pub seccomp: bool,
    /// How long a new sandbox may take to report ready.
    pub ready_timeout: Duration,
}

pub struct NativeBackend {
    config: NativeConfig,
    transport: AgentTransport,
    cgroups: Arc<CgroupManager>,
    uids: Arc<UidAllocator>,
    features: Vec<String>,
}

/// Hands out the uids of [`NativeConfig::uids`], one per live sandbox.
#[derive(Debug)]
struct UidAllocator {
    range: std::ops::Range<u32>,
    state: Mutex<UidState>,
}

#[derive(Debug, Default)]
struct UidState {
    used: std::collections::HashSet<u32>,
    /// Where the next search starts, so a freed uid is not handed out again at once.
    cursor: u32,
}

impl UidAllocator {
    fn new(range: std::ops::Range<u32>) -> Self {
        Self {
            state: Mutex::new(UidState {
                cursor: range.start,
                ..UidState::default()
            }),
            range,
        }
    }

    fn allocate(self: &Arc<Self>) -> Option<UidLease> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let len = self.range.len() as u32;
        for step in 0..len {
            let uid = self.range.start + (st.cursor - self.range.start + step) % len;
            if st.used.insert(uid) {
                st.cursor = if uid + 1 >= self.range.end {
                    self.range.start
                } else {
                    uid + 1
                };
                return Some(UidLease {
                    uid,
                    allocator: self.clone(),
                    reusable: AtomicBool::new(true),
                });
            }
        }
        None
    }
}

/// A sandbox's uid, given back when the sandbox is gone.
#[derive(Debug)]
struct UidLease {
    uid: u32,
    allocator: Arc<UidAllocator>,
    /// Cleared when teardown failed: processes of this uid may still live, so it is never
    /// handed out again.
    reusable: AtomicBool,
}

impl Drop for UidLease {
    fn drop(&mut self) {
        if self.reusable.load(Ordering::SeqCst) {
            let mut st = self
                .allocator
                .state
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            st.used.remove(&self.uid);
        } else {
            tracing::warn!(
                uid = self.uid,
                "a sandbox uid is retired after a failed teardown"
            );
        }
    }
}

impl NativeBackend {
    /// Checks the host (privileges, cgroups, seccomp), then proves it works by creating one
    /// sandbox and running `/bin/true` in it. The error says exactly what is missing.
    pub async fn new(config: NativeConfig) -> Result<Self, SandboxError> {
        Self::with_transport(config, AgentTransport::default()).await
    }

    /// [`new`](Self::new) with agents reached over `transport`. (Not a field of
    /// [`NativeConfig`], so that the config's existing struct literals stay valid.)
    pub async fn with_transport(
        config: NativeConfig,
        transport: AgentTransport,
    ) -> Result<Self, SandboxError> {
        if !nix::unistd::geteuid().is_root() {
            return Err(SandboxError::Unavailable(format!(
                "the native backend must run as root (it creates namespaces, mounts and cgroups); \
                 running as uid {}",
                nix::unistd::geteuid()
            )));
        }
        if config.agent_argv.is_empty() {
            return Err(SandboxError::Unavailable(
                "no agent program configured".into(),
            ));
        }
        if config.uids.is_empty() || config.uids.start == 0 {
            return Err(SandboxError::Unavailable(format!(
                "the sandbox uid range {}..{} must be non-empty and exclude root",
                config.uids.start, config.uids.end
            )));
        }
        let cgroups =
            CgroupManager::new().map_err(|e| SandboxError::Unavailable(format!("cgroups: {e}")))?;
        if config.seccomp {
            SyscallFilter::new().map_err(|e| SandboxError::Unavailable(format!("seccomp: {e}")))?;
        }
        let mut backend = Self {
            uids: Arc::new(UidAllocator::new(config.uids.clone())),
            config,
            transport,
            cgroups: Arc::new(cgroups),
            features: Vec::new(),
        };
        let limits = SandboxLimits {
            memory_bytes: 64 << 20,
            pids: 8,
            cpu_millicores: None,
            workspace_bytes: 1 << 20,
            tmp_bytes: 1 << 20,
            shm_bytes: 1 << 20,
        };
        let (sandbox, features) = backend
            .start(&SandboxSpec::new(limits))
            .await
            .map_err(|e| SandboxError::Unavailable(format!("self-test: {e}")))?;
        let check = async {
            let out = sandbox
                .spawn(ProcessSpec {
                    limits: ProcessLimits::default(),
                    ..ProcessSpec::new(["/bin/true"])
                })
                .await?
                .output(b"")
                .await?;
            if out.exit.code == Some(0) {
                Ok(())
            } else {
                Err(SandboxError::Spawn(format!(
                    "/bin/true in a sandbox ended with {:?}",
                    out.exit
                )))
            }
        };
        let result = check.await;
        sandbox.destroy().await?;
        result.map_err(|e| SandboxError::Unavailable(format!("self-test: {e}")))?;
        backend.features = features;
        Ok(backend)
    }

    /// [`Backend::create`] returning the native type, for what only a native box has
    /// ([`NativeSandbox::agent_endpoint`]).
    pub async fn create_native(&self, spec: &SandboxSpec) -> Result<NativeSandbox, SandboxError> {
        self.start(spec).await.map(|(sandbox, _)| sandbox)
    }

    async fn start(
        &self,
        spec: &SandboxSpec,
    ) -> Result<(NativeSandbox, Vec<String>), SandboxError> {
        let uid = self.uids.allocate().ok_or_else(|| {
            SandboxError::Unavailable(format!(
                "all {} sandbox uids are in use (sandbox.uids)",
                self.config.uids.len()
            ))
        })?;
        let device = match &spec.workspace {
            WorkspaceSpec::Ephemeral => None,
            WorkspaceSpec::Persistent { dir, max_files } => {
                let image = loopdev::prepare(dir, spec.limits.workspace_bytes, *max_files).await?;
                Some(LoopDevice::attach(&image).await?)
            }
        };
        let engine = match &spec.containers {
            None => None,
            Some(containers) => {
                let made = async {
                    let image = loopdev::scratch(
                        &containers.dir,
                        containers.disk_bytes,
                        containers.max_files,
                    )
                    .await?;
                    match LoopDevice::attach(&image).await {
                        Ok(device) => Ok((image, device)),
                        Err(e) => {
                            let _ = std::fs::remove_file(&image);
                            Err(e)
                        }
                    }
                };
                match made.await {
                    Ok(made) => Some(made),
                    Err(e) => {
                        if let Some(device) = device {
                            device.detach().await;
                        }
                        return Err(e);
                    }
                }
            }
        };
        let containers = spec
            .containers
            .as_ref()
            .zip(engine.as_ref())
            .map(|(c, (_, device))| ContainersSetup {
                device: device.path.clone(),
                image_store: c.image_store.clone(),
                sub_start: subordinate_start(&self.config.uids, uid.uid),
            });
        let result = self
            .start_agent(
                spec,
                uid,
                device.as_ref().map(|d| d.path.clone()),
                containers,
            )
            .await;
        // Mounted by now if the agent is ready: the kernel keeps the device until the sandbox's
        // mount goes. Otherwise it goes at once.
        if let Some(device) = device {
            device.detach().await;
        }
        // The engine's disk likewise, and its file is unlinked: its space returns when the
        // box's mount goes, with nothing to clean up after a crash but the file name.
        if let Some((image, device)) = engine {
            device.detach().await;
            if let Err(e) = std::fs::remove_file(&image) {
                tracing::warn!(image = %image.display(), error = %e, "unlinking a scratch disk");
            }
        }
        result
    }

    async fn start_agent(
        &self,
        spec: &SandboxSpec,
        uid: UidLease,
        workspace_device: Option<PathBuf>,
        containers: Option<ContainersSetup>,
    ) -> Result<(NativeSandbox, Vec<String>), SandboxError> {
        let id = format!("sb-{}", uuid::Uuid::now_v7().simple());
        let limits = &spec.limits;
        let cgroup = self.cgroups.create(
            &id,
            &CgroupLimits {
                memory_bytes: limits.memory_bytes,
                pids: limits.pids,
                cpu_millicores: limits.cpu_millicores,
            },
        )?;
        let cgroup = Arc::new(cgroup);
        // Until the sandbox exists, a failure must remove the cgroup (and with it the agent).
        let fail = |cgroup: &Cgroup, e| abandon(cgroup, e);
        let (ours, theirs) = std::os::unix::net::UnixStream::pair()
            .map_err(|e| fail(&cgroup, io("socketpair", e)))?;
        ours.set_nonblocking(true)
            .map_err(|e| fail(&cgroup, io("socket", e)))?;
        let listener = match self.transport {
            AgentTransport::Socketpair => None,
            AgentTransport::Tcp { bind } => Some(
                std::net::TcpListener::bind((bind, 0))
                    .map_err(|e| fail(&cgroup, io(&format!("binding a port on {bind}"), e)))?,
            ),
        };
        let mut command = tokio::process::Command::new(&self.config.agent_argv[0]);
        command.args(&self.config.agent_argv[1..]);
        if listener.is_some() {
            command.arg(crate::agent::LISTEN_INHERITED);
        }
        let child = command
            // The agent and everything it starts see none of the server's environment.
            .env_clear()
            .stdin(Stdio::from(OwnedFd::from(theirs)))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                let context = format!("starting the agent {}", self.config.agent_argv[0]);
                fail(&cgroup, io(&context, e))
            })?;
        let setup = AgentSetup {
            root: spec.root.clone(),
            limits: spec.limits,
            hostname: spec.hostname.clone(),
            cgroup_procs: cgroup.procs_files(),
            oom_events: cgroup.oom_events_file(),
            uid: uid.uid,
            gid: uid.uid,
            seccomp: self.config.seccomp,
            workspace_device,
            volumes: spec.volumes.clone(),
            containers,
        };
        let connected = match listener {
            None => match tokio::net::UnixStream::from_std(ours) {
                Ok(stream) => AgentConnection::handshake(stream, &setup, self.config.ready_timeout)
                    .await
                    .map(|(conn, features)| (conn, features, None)),
                Err(e) => Err(io("socket", e)),
            },
            Some(listener) => {
                let timeout = self.config.ready_timeout;
                async {
                    let endpoint = hand_over(&ours, listener)?;
                    drop(ours);
                    let (conn, features) =
                        AgentConnection::connect_tcp(&endpoint, Some(&setup), timeout).await?;
                    Ok((conn, features, Some(endpoint)))
                }
                .await
            }
        };
        let (conn, features, endpoint) = match connected {
            Ok(ok) => ok,
            Err(e) => {
                let cg = cgroup.clone();
                let e = tokio::task::spawn_blocking(move || abandon(&cg, e))
                    .await
                    .unwrap_or_else(|join| SandboxError::Setup(join.to_string()));
                drop(child);
                return Err(e);
            }
        };
        // PID 1 of the box (the agent's child) unshared the network namespace before it said
        // it was ready.
        let box_pid = child.id().and_then(|agent| box_pid(agent, &cgroup));
        let netns = box_pid
            .ok_or_else(|| SandboxError::Setup("the sandbox's PID 1 is not to be found".into()))
            .and_then(|pid| {
                std::fs::File::open(format!("/proc/{pid}/ns/net"))
                    .map_err(|e| io("opening the sandbox's network namespace", e))
            });
        let netns = match netns {
            Ok(file) => Arc::new(OwnedFd::from(file)),
            Err(e) => {
                let cg = cgroup.clone();
                drop(child);
                return Err(tokio::task::spawn_blocking(move || abandon(&cg, e))
                    .await
                    .unwrap_or_else(|join| SandboxError::Setup(join.to_string())));
            }
        };
        Ok((
            NativeSandbox {
                id,
                conn,
                endpoint,
                netns,
                box_pid,
                cgroup,
                child: Mutex::new(Some(child)),
                destroyed: AtomicBool::new(false),
                uid,
            },
            features,
        ))
    }

    /// Kills and removes every sandbox cgroup this backend created (server shutdown).
    pub fn cleanup(&self) -> Result<(), SandboxError> {
        Ok(self.cgroups.cleanup()?)
    }
}

/// Gives the agent its listening socket and a fresh key over the socket on its stdin (the
/// socket as `SCM_RIGHTS`, the key as the message): never through its environment or
/// arguments, which other processes can read. The server keeps no copy of the listener.
fn hand_over(
    agent: &std::os::unix::net::UnixStream,
    listener: std::net::TcpListener,
) -> Result<AgentEndpoint, SandboxError> {
    use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
    use std::os::fd::AsRawFd;
    let addr = listener
        .local_addr()
        .map_err(|e| io("the agent's listening address", e))?;
    let key = AgentKey::generate();
    let fds = [listener.as_raw_fd()];
    // Tiny, into an empty socket buffer: it cannot block.
    let sent = sendmsg::<()>(
        agent.as_raw_fd(),
        &[std::io::IoSlice::new(key.as_bytes())],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .map_err(|e| io("handing the listener to the agent", e.into()))?;
    if sent != key.as_bytes().len() {
        return Err(SandboxError::Setup(
            "the agent's socket took part of the key".into(),
        ));
    }
    Ok(AgentEndpoint { addr, key })
}

fn abandon(cgroup: &Cgroup, e: SandboxError) -> SandboxError {
    if let Err(cleanup) = cgroup.destroy() {
        tracing::warn!(error = %cleanup, "removing a failed sandbox's cgroup");
    }
    e
}

fn io(context: &str, source: std::io::Error) -> SandboxError {
    SandboxError::Io {
        context: context.to_owned(),
        source,
    }
}

#[async_trait]
impl Backend for NativeBackend {
    fn report(&self) -> BackendReport {
        let version = match self.cgroups.version() {
            crate::cgroup::CgroupVersion::V1 => "v1",
            crate::cgroup::CgroupVersion::V2 => "v2",
        };
        BackendReport {
            backend: "native",
            features: self.features.clone(),
            details: vec![("cgroup".into(), version.into())],
        }
    }

    async fn create(&self, spec: &SandboxSpec) -> Result<Box<dyn Sandbox>, SandboxError> {
        let (sandbox, _) = self.start(spec).await?;
        Ok(Box::new(sandbox))
    }

    async fn shutdown(&self) -> Result<(), SandboxError> {
        let cgroups = self.cgroups.clone();
        tokio::task::spawn_blocking(move || cgroups.cleanup())
            .await
            .map_err(|e| SandboxError::Setup(format!("cleanup task: {e}")))??;
        Ok(())
    }
}

impl Drop for NativeBackend {
    fn drop(&mut self) {
        // Sandboxes still alive die with their cgroups; the instance's parent cgroup goes too.
        if let Err(e) = self.cgroups.cleanup() {
            tracing::warn!(error = %e, "removing the sandbox cgroups");
        }
    }
}

pub struct NativeSandbox {
    id: String,
    conn: AgentConnection,
    /// Where the agent listens, with the TCP transport.
    endpoint: Option<AgentEndpoint>,
    /// The sandbox's network namespace, where [`Sandbox::connect`] makes its sockets.
    netns: Arc<OwnedFd>,
    /// The host pid of the box's PID 1 (a process of its network namespace).
    box_pid: Option<u32>,
    cgroup: Arc<Cgroup>,
    child: Mutex<Option<tokio::process::Child>>,
    destroyed: AtomicBool,
    /// Dropped after the sandbox (fields drop after `Drop::drop`), so the uid is free again
    /// only once nothing of this box runs.
    uid: UidLease,
}

impl NativeSandbox {
    /// How the agent is reached over TCP (`None` with the socketpair): a later
    /// [`AgentConnection::connect_tcp`] with no set-up reaches this box again once the
    /// connection before it has ended. It serves one connection at a time; the processes of
    /// a connection die when it ends, files stay.
    pub fn agent_endpoint(&self) -> Option<&AgentEndpoint> {
        self.endpoint.as_ref()
    }

    fn teardown(&self) -> Result<(), SandboxError> {
        if self.destroyed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        // Killing the cgroup takes the agent, PID 1 and everything they started; the mounts
        // die with the last process of the mount namespace.
        let result = self.cgroup.destroy();
        if result.is_err() {
            self.uid.reusable.store(false, Ordering::SeqCst);
        }
        if let Some(mut child) = self.child.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = child.start_kill();
            let _ = child.try_wait();
        }
        Ok(result?)
    }
}

#[async_trait]
impl Sandbox for NativeSandbox {
    fn id(&self) -> &str {
        &self.id
    }

    fn agent(&self) -> &AgentConnection {
        &self.conn
    }

    async fn usage(&self) -> Result<Usage, SandboxError> {
        let u = self.cgroup.usage()?;
        Ok(Usage {
            memory_bytes: u.memory_current_bytes,
            memory_peak_bytes: u.memory_peak_bytes,
            cpu_ms: u.cpu_usage_ns / 1_000_000,
            pids: u.pids_current,
            oom_kills: u.oom_kills,
        })
    }

    async fn connect(&self, port: u16) -> Result<tokio::net::TcpStream, SandboxError> {
        let socket = socket_in(self.netns.clone()).await?;
        let socket = tokio::net::TcpSocket::from_std_stream(socket);
        socket
            .connect(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
            .await
            .map_err(|e| io(&format!("connecting to port {port} in the sandbox"), e))
    }

    async fn listening_ports(&self) -> Vec<u16> {
        // /proc/<pid>/net shows the sockets of that process's network namespace.
        let Some(pid) = self.box_pid else {
            return Vec::new();
        };
        let mut ports = Vec::new();
        for table in ["tcp", "tcp6"] {
            if let Ok(text) = tokio::fs::read_to_string(format!("/proc/{pid}/net/{table}")).await {
                ports.extend(listening_in(&text));
            }
        }
        ports.sort_unstable();
        ports.dedup();
        ports
    }

    async fn destroy(&self) -> Result<(), SandboxError> {
        let child = self.child.lock().unwrap_or_else(|p| p.into_inner()).take();
        let cgroup = self.cgroup.clone();
        if self.destroyed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        let result = tokio::task::spawn_blocking(move || cgroup.destroy())
            .await
            .map_err(|e| SandboxError::Setup(format!("teardown task: {e}")))
            .and_then(|r| r.map_err(SandboxError::from));
        if result.is_err() {
            self.uid.reusable.store(false, Ordering::SeqCst);
        }
        result?;
        if let Some(mut child) = child {
            // The agent was killed with its cgroup; collect its exit status.
            let _ = child.wait().await;
        }
        Ok(())
    }
}

impl Drop for NativeSandbox {
    fn drop(&mut self) {
        if let Err(e) = self.teardown() {
            tracing::warn!(sandbox = %self.id, error = %e, "tearing down a dropped sandbox");
        }
    }
}

/// The agent program of the running binary: `[current_exe, "agent"]`.
pub fn current_exe_agent() -> std::io::Result<Vec<String>> {
    let exe: PathBuf = std::env::current_exe()?;
    Ok(vec![exe.to_string_lossy().into_owned(), "agent".into()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_ports_are_read_from_proc_net_tcp() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 1 1 0 100 0 0 10 0
   1: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000  1000        0 2 1 0 20 4 30 10 -1
   2: 00000000:1388 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 3 1 0 100 0 0 10 0
";
        assert_eq!(listening_in(table).collect::<Vec<_>>(), vec![8080, 5000]);
    }

    #[test]
    fn subordinate_ids_of_boxes_do_not_meet_and_stay_below_2_to_the_32() {
        let uids = 1_900_000_000..1_900_010_000;
        let first = subordinate_start(&uids, uids.start);
        let second = subordinate_start(&uids, uids.start + 1);
        assert_eq!(first, 1 << 31);
        assert!(second >= first + crate::spec::containers::SUBORDINATE_IDS);
        let last = subordinate_start(&uids, uids.end - 1);
        assert!(u64::from(last) + u64::from(crate::spec::containers::SUBORDINATE_IDS) < 1 << 32);
        let wrapped = subordinate_start(&(0..40_000), 32_767 + 5);
        assert_eq!(wrapped, subordinate_start(&(0..40_000), 5));
    }

    #[test]
    fn uids_are_unique_while_leased_and_reused_after() {
        let uids = Arc::new(UidAllocator::new(100..103));
        let a = uids.allocate().unwrap();
        let b = uids.allocate().unwrap();
        let c = uids.allocate().unwrap();
        let mut got = vec![a.uid, b.uid, c.uid];
        got.sort();
        assert_eq!(got, vec![100, 101, 102]);
        assert!(uids.allocate().is_none(), "the range is exhausted");
        let freed = b.uid;
        drop(b);
        let again = uids.allocate().unwrap();
        assert_eq!(again.uid, freed);
        // A uid whose sandbox could not be torn down is never handed out again.
        a.reusable.store(false, Ordering::SeqCst);
        drop(a);
        assert!(uids.allocate().is_none());
        drop(c);
        assert_eq!(uids.allocate().unwrap().uid, 102);
    }

    #[test]
    fn a_freed_uid_waits_for_the_rest_of_the_range() {
        let uids = Arc::new(UidAllocator::new(10..14));
        let first = uids.allocate().unwrap();
        assert_eq!(first.uid, 10);
        drop(first);
        let order: Vec<u32> = (0..4)
            .map(|_| uids.allocate().unwrap())
            .map(|l| {
                let uid = l.uid;
                std::mem::forget(l);
                uid
            })
            .collect();
        assert_eq!(order, vec![11, 12, 13, 10]);
    }
}
