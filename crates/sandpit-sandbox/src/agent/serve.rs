//! The agent's request loop (single-threaded: a current-thread runtime and a `LocalSet`, so
//! forking from it is safe and state is a plain `RefCell`).

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use nix::fcntl::{FcntlArg, FdFlag, OFlag, fcntl};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use tokio::io::unix::AsyncFd;
use tokio::sync::{mpsc, oneshot};

use super::sys::{self, ChildSetup, Reaped};
use super::{Channel, files, root, tree};
use crate::protocol::{
    AgentSetup, Event, ExitInfo, FileError, Frame, LimitKind, MAX_FRAME, OUTPUT_WINDOW,
    OutputWindow, ProtocolError, Reply, Request, Stream, encode, read_frame,
};
use crate::screen::{self, ScreenModel};
use crate::seccomp::SyscallFilter;
use crate::spec::{ProcessLimits, ProcessSpec, StdioMode};
use crate::transport::AgentState;

pub struct Context {
    pub setup: AgentSetup,
    pub filter: Option<SyscallFilter>,
    pub cap_last: u32,
    pub oom: Option<File>,
    /// What `Ready` reported, said again to every later TCP connection.
    pub features: Vec<String>,
    pub mode: Mode,
}

/// Where the agent serves from, which decides how it ends processes and resets the box.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// PID 1 of a box the agent built: `kill(-1)` reaches exactly the box's processes, and the
    /// scratch mounts are the agent's to replace.
    Box,
    /// The agent is a pod's process ([`super::pod`]): it kills the process trees it started
    /// and empties the scratch directories. `change_identity`: the agent runs as root and
    /// drops to the set-up's uid for every spawn and file request; otherwise everything runs
    /// as the agent's own uid.
    Pod { change_identity: bool },
}

impl Mode {
    fn change_identity(self) -> bool {
        match self {
            Self::Box => true,
            Self::Pod { change_identity } => change_identity,
        }
    }
}

struct Proc {
    pid: libc::pid_t,
    stdin: Option<mpsc::UnboundedSender<Vec<u8>>>,
    pty: Option<Rc<AsyncFd<OwnedFd>>>,
    credit: Rc<Credit>,
    /// A held process's screen model, resized with its terminal.
    held: Option<Rc<HeldIo>>,
}

/// A held process ([`crate::spec::Hold`]): what outlives the connection that started it.
struct Held {
    pid: libc::pid_t,
    /// Keeps the process's stdin task going between connections (once every sender is gone
    /// the terminal would get end-of-file and the shell would log out).
    stdin: mpsc::UnboundedSender<Vec<u8>>,
    pty: Rc<AsyncFd<OwnedFd>>,
    io: Rc<HeldIo>,
    grace: Duration,
}

/// Where a held process's output goes: always into its screen model, and to the connection
/// it is attached to, if any.
struct HeldIo {
    target: RefCell<Option<Target>>,
    screen: RefCell<ScreenModel>,
    /// Wakes its watcher when the target changes.
    changed: tokio::sync::Notify,
    /// Counts target changes: a grace timer ends the process only if nothing attached since.
    generation: Cell<u64>,
}

impl HeldIo {
    fn retarget(&self, target: Option<Target>) {
        *self.target.borrow_mut() = target;
        self.generation.set(self.generation.get() + 1);
        self.changed.notify_one();
    }
}

/// One process of one connection: where its events go.
#[derive(Clone)]
struct Target {
    out: Out,
    id: u32,
    credit: Rc<Credit>,
}

/// How fast a held process's output is read while nobody is attached: its screen model keeps
/// up with an ordinary program, and a flood costs the agent little (the terminal blocks it).
const DETACHED_BYTES_PER_SEC: f64 = (1 << 20) as f64;
/// How long a held process has after SIGHUP before SIGKILL when its grace runs out.
const HANGUP_PATIENCE: Duration = Duration::from_secs(2);

/// A process's flow-control window and the wake-up for its watcher when an ack reopens it.
struct Credit {
    window: std::cell::Cell<OutputWindow>,
    reopened: tokio::sync::Notify,
}

impl Credit {
    fn new() -> Self {
        Self {
            window: std::cell::Cell::new(OutputWindow::new(OUTPUT_WINDOW)),
            reopened: tokio::sync::Notify::new(),
        }
    }

    fn is_open(&self) -> bool {
        self.window.get().is_open()
    }

    fn sent(&self, bytes: u64) {
        let mut w = self.window.get();
        w.sent(bytes);
        self.window.set(w);
    }

    fn acked(&self, bytes: u64) {
        let mut w = self.window.get();
        w.acked(bytes);
        self.window.set(w);
        if w.is_open() {
            self.reopened.notify_one();
        }
    }
}

struct State {
    ctx: Context,
    procs: HashMap<u32, Proc>,
    /// Exit notifications for tracked processes; orphans are reaped and forgotten.
    waiting: HashMap<libc::pid_t, oneshot::Sender<Reaped>>,
    /// Held processes by name.
    held: HashMap<String, Held>,
}

type Shared = Rc<RefCell<State>>;
type Out = mpsc::Sender<Vec<u8>>;

const READ_CHUNK: usize = 32 << 10;

pub async fn serve(channel: Channel, ctx: Context) -> Result<(), ProtocolError> {
    let state: Shared = Rc::new(RefCell::new(State {
        ctx,
        procs: HashMap::new(),
        waiting: HashMap::new(),
        held: HashMap::new(),
    }));
    if let Some(containers) = &state.borrow().ctx.setup.containers {
        let setup = &state.borrow().ctx.setup;
        let grant = super::idmap::Grant {
            uid: setup.uid,
            gid: setup.gid,
            sub_start: containers.sub_start,
            sub_count: crate::spec::containers::SUBORDINATE_IDS,
        };
        let path = crate::spec::containers::IDMAP_SOCKET;
        let listener = tokio::net::UnixListener::bind(path)?;
        // The box's user connects (its peer credentials are checked on every connection).
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o666))?;
        tokio::task::spawn_local(super::idmap::serve(listener, grant));
    }
    let mut sigchld = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::child())?;
    {
        let state = state.clone();
        tokio::task::spawn_local(async move {
            while sigchld.recv().await.is_some() {
                reap_all(&state, false);
            }
        });
    }
    match channel {
        // The server is gone when this ends: PID 1 exits and the kernel kills everything in
        // the box.
        Channel::Pipe(stream) => {
            stream.set_nonblocking(true)?;
            let (reader, writer) = tokio::net::UnixStream::from_std(stream)?.into_split();
            serve_connection(&state, reader, writer, None).await
        }
        Channel::Tcp {
            stream,
            listener,
            key,
        } => {
            stream.set_read_timeout(None)?;
            stream.set_nonblocking(true)?;
            let listener = tokio::net::TcpListener::from_std(listener)?;
            let mut stream = tokio::net::TcpStream::from_std(stream)?;
            let mut greeting = None;
            loop {
                let (reader, writer) = stream.into_split();
                if let Err(e) = serve_connection(&state, reader, writer, greeting).await {
                    eprintln!("sandpit agent: the connection ended: {e}");
                }
                end_connection(&state);
                stream = super::listen::accept(&listener, &key, AgentState::Serving).await;
                if let Err(e) = crate::transport::tune(&stream) {
                    eprintln!("sandpit agent: socket options: {e}");
                }
                let features = state.borrow().ctx.features.clone();
                greeting = Some(Frame::new(Event::Ready { features }));
            }
        }
    }
}

/// Serves one connection until it closes (`Ok`) or sends something that is not a frame.
/// `greeting`: a first event to send (`Ready` to a later TCP connection).
async fn serve_connection<R, W>(
    state: &Shared,
    mut reader: R,
    mut writer: W,
    greeting: Option<Frame<Event>>,
) -> Result<(), ProtocolError>
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin + 'static,
{
    let (out, mut out_rx) = mpsc::channel::<Vec<u8>>(256);
    let writer_task = tokio::task::spawn_local(async move {
        use tokio::io::AsyncWriteExt;
        while let Some(bytes) = out_rx.recv().await {
            if writer.write_all(&bytes).await.is_err() {
                break;
            }
        }
    });
    if let Some(greeting) = greeting {
        send(&out, greeting).await;
    }
    let result = loop {
        let frame = match read_frame::<Request, _>(&mut reader).await {
            Ok(frame) => frame,
            Err(ProtocolError::Closed) => break Ok(()),
            Err(ProtocolError::Io(e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionReset | io::ErrorKind::TimedOut
                ) =>
            {
                break Ok(());
            }
            Err(e) => break Err(e),
        };
        handle(state, &out, frame).await;
    };
    // The writer may be stuck on a peer that stopped reading; nothing more goes to it.
    writer_task.abort();
    result
}

/// After a TCP connection ends: every process in the box is killed (they belonged to it, and
/// their output has nowhere to go), reaped and forgotten — except held processes and their
/// sessions, which wait for the next connection to attach, for their grace period. Files stay.
fn end_connection(state: &Shared) {
    let kept = detach_held(state);
    let killed = if kept.is_empty() {
        kill_everything(state)
    } else {
        // Not a blocking reap: the held processes are still children.
        tree::kill_descendants(&kept, || reap_all(state, false)).map(|()| reap_all(state, false))
    };
    if let Err(e) = killed {
        eprintln!("sandpit agent: killing the connection's processes: {e}");
    }
    // Their watchers finish on their own; the next connection's ids start again at 1.
    state.borrow_mut().procs.clear();
}

/// Detaches every held process from the connection that ended and starts its grace period;
/// returns their pids (each leads its session).
fn detach_held(state: &Shared) -> HashSet<i32> {
    let st = state.borrow();
    let mut kept = HashSet::new();
    for (name, held) in &st.held {
        held.io.retarget(None);
        kept.insert(held.pid);
        tokio::task::spawn_local(end_after_grace(
            state.clone(),
            name.clone(),
            held.pid,
            held.io.generation.get(),
            held.grace,
        ));
    }
    kept
}

/// Ends a held process whose grace ran out with nothing attached since `generation`: SIGHUP to
/// its group (a shell passes it on to its jobs), then SIGKILL.
async fn end_after_grace(
    state: Shared,
    name: String,
    pid: libc::pid_t,
    generation: u64,
    grace: Duration,
) {
    tokio::time::sleep(grace).await;
    for signal in [Signal::SIGHUP, Signal::SIGKILL] {
        let unchanged = state
            .borrow()
            .held
            .get(&name)
            .is_some_and(|h| h.pid == pid && h.io.generation.get() == generation);
        if !unchanged {
            return;
        }
        let _ = killpg(Pid::from_raw(pid), signal);
        tokio::time::sleep(HANGUP_PATIENCE).await;
    }
}

async fn send(out: &Out, frame: Frame<Event>) {
    match encode(&frame) {
        Ok(bytes) => {
            let _ = out.send(bytes).await;
        }
        Err(e) => eprintln!("sandpit agent: encoding: {e}"),
    }
}

async fn handle(state: &Shared, out: &Out, frame: Frame<Request>) {
    match frame.msg {
        Request::Spawn { id, spec } => {
            let event = match spawn(state, out, id, spec) {
                Ok(pid) => Event::Spawned {
                    id,
                    pid: pid as u32,
                },
                Err(error) => Event::SpawnFailed { id, error },
            };
            send(out, Frame::new(event)).await;
        }
        Request::Attach { id, name } => {
            // The slot first: the answer must be queued before any output of the process,
            // which may go to this connection as soon as `attach` returns.
            let Ok(permit) = out.reserve().await else {
                return;
            };
            match encode(&attach(state, out, id, &name)) {
                Ok(bytes) => permit.send(bytes),
                Err(e) => eprintln!("sandpit agent: encoding: {e}"),
            }
        }
        Request::Stdin { id } => {
            let mut st = state.borrow_mut();
            if let Some(proc) = st.procs.get_mut(&id) {
                if frame.payload.is_empty() {
                    proc.stdin = None;
                } else if let Some(tx) = &proc.stdin {
                    let _ = tx.send(frame.payload);
                }
            }
        }
        Request::Signal { id, signal } => {
            let pid = state.borrow().procs.get(&id).map(|p| p.pid);
            if let (Some(pid), Ok(sig)) = (pid, Signal::try_from(signal)) {
                let _ = killpg(Pid::from_raw(pid), sig);
            }
        }
        Request::Ack { id, bytes } => {
            if let Some(proc) = state.borrow().procs.get(&id) {
                proc.credit.acked(bytes);
            }
        }
        Request::Resize { id, rows, cols } => {
            let st = state.borrow();
            if let Some(proc) = st.procs.get(&id)
                && let Some(pty) = &proc.pty
            {
                let _ = sys::set_winsize(pty.get_ref().as_fd(), rows, cols);
                if let Some(held) = &proc.held {
                    let (rows, cols) = (rows.clamp(1, 500), cols.clamp(1, 500));
                    let mut model = held.screen.borrow_mut();
                    model.parser().screen_mut().set_size(rows, cols);
                }
            }
        }
        Request::WriteFile {
            req,
            path,
            mode,
            expect,
        } => {
            let result = as_user(state, || {
                files::write(&path, &frame.payload, mode, expect.as_ref())
            });
            reply(
                out,
                req,
                result.map(|sha256| (Reply::Written { sha256 }, Vec::new())),
            )
            .await;
        }
        Request::ReadFile {
            req,
            path,
            max_bytes,
        } => {
            let result = as_user(state, || files::read(&path, max_bytes));
            reply(
                out,
                req,
                result.map(|(data, sha256)| (Reply::Read { sha256 }, data)),
            )
            .await;
        }
        Request::List { req, path } => {
            let result = as_user(state, || files::list(path.as_ref()));
            reply(
                out,
                req,
                result.map(|entries| (Reply::List { entries }, Vec::new())),
            )
            .await;
        }
        Request::Remove { req, path } => {
            let result = as_user(state, || files::remove(&path));
            reply(out, req, result.map(|()| (Reply::Ok, Vec::new()))).await;
        }
        Request::Mkdir { req, path } => {
            let result = as_user(state, || files::mkdir(&path));
            reply(out, req, result.map(|()| (Reply::Ok, Vec::new()))).await;
        }
        Request::Tree {
            req,
            path,
            max_entries,
        } => {
            let result = as_user(state, || files::tree(path.as_ref(), max_entries));
            reply(out, req, result.map(|tree| (Reply::Tree(tree), Vec::new()))).await;
        }
        Request::Stat { req, path } => {
            let result = as_user(state, || files::stat(&path));
            reply(
                out,
                req,
                result.map(|entry| (Reply::Stat { entry }, Vec::new())),
            )
            .await;
        }
        Request::Move {
            req,
            from,
            to,
            overwrite,
        } => {
            let result = as_user(state, || files::rename(&from, &to, overwrite));
            reply(out, req, result.map(|()| (Reply::Ok, Vec::new()))).await;
        }
        Request::Pack {
            req,
            path,
            max_bytes,
        } => {
            let result = as_user(state, || files::pack(path.as_ref(), max_bytes));
            reply(
                out,
                req,
                result.map(|(archive, entries)| (Reply::Packed { entries }, archive)),
            )
            .await;
        }
        Request::Unpack { req, path, limits } => {
            let result = as_user(state, || {
                files::unpack(path.as_ref(), &frame.payload, limits)
            });
            reply(
                out,
                req,
                result.map(|done| (Reply::Unpacked(done), Vec::new())),
            )
            .await;
        }
        Request::Reset { req } => {
            let result = reset(state).map_err(|e| FileError::Io(e.to_string()));
            reply(out, req, result.map(|()| (Reply::Ok, Vec::new()))).await;
        }
    }
}

async fn reply(out: &Out, req: u32, result: Result<(Reply, Vec<u8>), FileError>) {
    let frame = match result {
        Ok((reply, payload)) => Frame::with_payload(Event::Done { req, reply }, payload),
        Err(error) => Frame::new(Event::Failed { req, error }),
    };
    // An answer too large for one frame (a huge listing, a read with a huge `max_bytes`) must
    // still be answered: a request without an answer waits forever.
    let bytes = encode(&frame).or_else(|e| {
        let error = match e {
            ProtocolError::TooLarge(_) => FileError::TooLarge(MAX_FRAME as u64),
            e => FileError::Io(e.to_string()),
        };
        encode(&Frame::new(Event::Failed { req, error }))
    });
    match bytes {
        Ok(bytes) => {
            let _ = out.send(bytes).await;
        }
        Err(e) => eprintln!("sandpit agent: encoding: {e}"),
    }
}

/// Runs a file operation with the sandbox user's file-system rights.
fn as_user<T>(state: &Shared, op: impl FnOnce() -> Result<T, FileError>) -> Result<T, FileError> {
    let (uid, gid, change) = {
        let st = state.borrow();
        (
            st.ctx.setup.uid,
            st.ctx.setup.gid,
            st.ctx.mode.change_identity(),
        )
    };
    // An unprivileged agent already has the user's rights (its uid is the set-up's).
    if !change {
        return op();
    }
    sys::set_fs_identity(uid, gid);
    let result = op();
    sys::set_fs_identity(0, 0);
    result
}

/// Kills every process in the box, reaps them, and replaces the writable mounts and the IPC
/// namespace with fresh ones (in a pod: empties the scratch directories).
fn reset(state: &Shared) -> io::Result<()> {
    kill_everything(state)?;
    let st = state.borrow();
    match st.ctx.mode {
        Mode::Box => {
            root::reset_scratch(&st.ctx.setup)?;
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWIPC)?;
        }
        Mode::Pod { .. } => super::pod::empty_scratch()?,
    }
    Ok(())
}

/// Kills every process the agent started, and theirs, and reaps them all.
fn kill_everything(state: &Shared) -> io::Result<()> {
    let mode = state.borrow().ctx.mode;
    match mode {
        // kill(-1) from PID 1 reaches every other process in the namespace.
        Mode::Box => match kill(Pid::from_raw(-1), Signal::SIGKILL) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
            Err(e) => return Err(e.into()),
        },
        Mode::Pod { .. } => tree::kill_descendants(&HashSet::new(), || reap_all(state, false))?,
    }
    reap_all(state, true);
    // Held processes went too; their watchers finish on their own.
    state.borrow_mut().held.clear();
    Ok(())
}

/// Reaps exited children and hands tracked exits to their watchers. `block`: until no child
/// is left (after a kill of everything).
fn reap_all(state: &Shared, block: bool) {
    loop {
        match sys::reap(block) {
            Ok(Some(reaped)) => {
                let tx = state.borrow_mut().waiting.remove(&reaped.pid);
                if let Some(tx) = tx {
                    let _ = tx.send(reaped);
                }
            }
            Ok(None) => return,
            Err(e) => {
                eprintln!("sandpit agent: wait: {e}");
                return;
            }
        }
    }
}

fn oom_kills(file: Option<&File>) -> u64 {
    let Some(file) = file else { return 0 };
    let mut buf = [0u8; 1024];
    let Ok(n) = file.read_at(&mut buf, 0) else {
        return 0;
    };
    String::from_utf8_lossy(&buf[..n])
        .lines()
        .find_map(|line| line.strip_prefix("oom_kill "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn nonblocking_cloexec(fd: &OwnedFd) -> io::Result<()> {
    let flags = OFlag::from_bits_truncate(fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL)?);
    fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    fcntl(fd.as_raw_fd(), FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
    Ok(())
}

fn async_fd(fd: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
    nonblocking_cloexec(&fd)?;
    sys::register(fd)
}

fn spawn(state: &Shared, out: &Out, id: u32, spec: ProcessSpec) -> Result<libc::pid_t, String> {
    spec.validate().map_err(|e| e.to_string())?;
    if state.borrow().procs.contains_key(&id) {
        return Err(format!("process id {id} is in use"));
    }
    let mut cmd = Command::new(&spec.argv[0]);
    cmd.args(&spec.argv[1..])
        .env_clear()
        .envs(&spec.env)
        .current_dir(&spec.cwd);
    let mut pty_master = None;
    let mut merged = None;
    match spec.stdio {
        StdioMode::Pipes => {
            cmd.stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
        }
        StdioMode::Merged => {
            // Close-on-exec in the agent; the child gets its copies as fds 1 and 2. The write
            // ends the agent holds go with `cmd` after the spawn, so the output ends at EOF.
            let (read, write) =
                nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
            let write2 = write.try_clone().map_err(|e| format!("pipe: {e}"))?;
            cmd.stdin(Stdio::piped())
                .stdout(Stdio::from(write))
                .stderr(Stdio::from(write2));
            merged = Some(read);
        }
        StdioMode::Pty { rows, cols } => {
            let ws = nix::pty::Winsize {
                ws_row: rows,
                ws_col: cols,
                ws_xpixel: 0,
                ws_ypixel: 0,
            };
            let pty = nix::pty::openpty(Some(&ws), None).map_err(|e| format!("openpty: {e}"))?;
            // openpty's descriptors are inheritable; later children must not get them.
            for fd in [&pty.master, &pty.slave] {
                fcntl(fd.as_raw_fd(), FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))
                    .map_err(|e| format!("pty: {e}"))?;
            }
            let dup = |fd: &OwnedFd| fd.try_clone().map_err(|e| format!("pty: {e}"));
            cmd.stdin(Stdio::from(dup(&pty.slave)?))
                .stdout(Stdio::from(dup(&pty.slave)?))
                .stderr(Stdio::from(pty.slave));
            pty_master = Some(pty.master);
        }
    }
    let (setup, filter, cap_last, oom_before, change_identity) = {
        let st = state.borrow();
        (
            (st.ctx.setup.uid, st.ctx.setup.gid),
            st.ctx.filter.clone(),
            st.ctx.cap_last,
            oom_kills(st.ctx.oom.as_ref()),
            st.ctx.mode.change_identity(),
        )
    };
    let limits = spec.limits;
    let started = Instant::now();
    let mut child = sys::spawn_sandboxed(
        &mut cmd,
        ChildSetup {
            uid: setup.0,
            gid: setup.1,
            pty: pty_master.is_some(),
            cpu_seconds: limits.cpu_ms.map(|ms| ms.div_ceil(1000).max(1)),
            file_size_bytes: limits.file_size_bytes,
            open_files: limits.open_files,
            cap_last,
            filter,
            change_identity,
        },
    )
    .map_err(|e| format!("cannot start {}: {e}", spec.argv[0]))?;
    drop(cmd);
    let pid = child.id() as libc::pid_t;
    let (exit_tx, exit_rx) = oneshot::channel();
    let mut st = state.borrow_mut();
    st.waiting.insert(pid, exit_tx);

    let io_setup = (|| -> io::Result<_> {
        Ok(match pty_master {
            Some(master) => {
                let master = Rc::new(async_fd(master)?);
                (
                    Some(Input::Fd(master.clone())),
                    Some(Output::Pty(master)),
                    None,
                )
            }
            None => {
                let stdin = child.stdin.take().map(|s| async_fd(s.into())).transpose()?;
                let stdout = match merged {
                    Some(read) => Some(async_fd(read)?),
                    None => child
                        .stdout
                        .take()
                        .map(|s| async_fd(s.into()))
                        .transpose()?,
                };
                let stderr = child
                    .stderr
                    .take()
                    .map(|s| async_fd(s.into()))
                    .transpose()?;
                (
                    stdin.map(|fd| Input::Fd(Rc::new(fd))),
                    stdout.map(Output::Pipe),
                    stderr.map(Output::Pipe),
                )
            }
        })
    })();
    let (stdin, stdout, stderr) = match io_setup {
        Ok(io) => io,
        Err(e) => {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            return Err(format!("setting up the process's streams: {e}"));
        }
    };
    let pty = match &stdout {
        Some(Output::Pty(master)) => Some(master.clone()),
        _ => None,
    };
    let stdin_tx = stdin.map(|input| {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::task::spawn_local(feed_stdin(input, rx, pty.is_some()));
        tx
    });
    let credit = Rc::new(Credit::new());
    let target = Target {
        out: out.clone(),
        id,
        credit: credit.clone(),
    };
    let held = match (&spec.hold, spec.stdio, &pty, &stdin_tx) {
        (Some(hold), StdioMode::Pty { rows, cols }, Some(pty), Some(stdin)) => {
            let (rows, cols) = (rows.clamp(1, 500), cols.clamp(1, 500));
            let io = Rc::new(HeldIo {
                target: RefCell::new(Some(target.clone())),
                screen: RefCell::new(ScreenModel::new(rows, cols, hold.scrollback)),
                changed: tokio::sync::Notify::new(),
                generation: Cell::new(0),
            });
            let replaced = st.held.insert(
                hold.name.clone(),
                Held {
                    pid,
                    stdin: stdin.clone(),
                    pty: pty.clone(),
                    io: io.clone(),
                    grace: Duration::from_millis(hold.grace_ms),
                },
            );
            // One process per name: the one it replaces ends.
            if let Some(old) = replaced {
                let _ = killpg(Pid::from_raw(old.pid), Signal::SIGKILL);
            }
            Some(io)
        }
        _ => None,
    };
    st.procs.insert(
        id,
        Proc {
            pid,
            stdin: stdin_tx,
            pty,
            credit,
            held: held.clone(),
        },
    );
    drop(st);
    let route = match held {
        Some(io) => Route::Held(io),
        None => Route::Fixed(target),
    };
    tokio::task::spawn_local(watch(Watch {
        state: state.clone(),
        pid,
        route,
        stdout,
        stderr,
        exit: exit_rx,
        limits,
        started,
        oom_before,
    }));
    Ok(pid)
}

/// Attaches the process held under `name` to this connection as process `id`: the answer is
/// [`Event::Attached`] with the screen as it is now, or [`Event::NotHeld`].
fn attach(state: &Shared, out: &Out, id: u32, name: &str) -> Frame<Event> {
    let mut st = state.borrow_mut();
    if st.procs.contains_key(&id) {
        return Frame::new(Event::NotHeld { id });
    }
    let Some(held) = st.held.get(name) else {
        return Frame::new(Event::NotHeld { id });
    };
    let (pid, io) = (held.pid, held.io.clone());
    let (stdin, pty) = (held.stdin.clone(), held.pty.clone());
    let credit = Rc::new(Credit::new());
    let (snapshot, rows, cols) = {
        let mut model = io.screen.borrow_mut();
        let parser = model.parser();
        let mut snapshot = screen::snapshot(parser);
        if snapshot.len() > MAX_FRAME / 2 {
            // A long history of dense colour: the visible screen alone still fits a frame.
            snapshot = screen::snapshot_visible(parser);
        }
        let (rows, cols) = parser.screen().size();
        (snapshot, rows, cols)
    };
    // From here on its output goes to this connection, after the snapshot.
    io.retarget(Some(Target {
        out: out.clone(),
        id,
        credit: credit.clone(),
    }));
    st.procs.insert(
        id,
        Proc {
            pid,
            stdin: Some(stdin),
            pty: Some(pty),
            credit,
            held: Some(io),
        },
    );
    Frame::with_payload(
        Event::Attached {
            id,
            pid: pid as u32,
            rows,
            cols,
        },
        snapshot,
    )
}

enum Input {
    Fd(Rc<AsyncFd<OwnedFd>>),
}

enum Output {
    Pipe(AsyncFd<OwnedFd>),
    Pty(Rc<AsyncFd<OwnedFd>>),
}

impl Output {
    fn fd(&self) -> &AsyncFd<OwnedFd> {
        match self {
            Output::Pipe(fd) => fd,
            Output::Pty(fd) => fd,
        }
    }
}

async fn feed_stdin(input: Input, mut rx: mpsc::UnboundedReceiver<Vec<u8>>, pty: bool) {
    let Input::Fd(fd) = input;
    while let Some(data) = rx.recv().await {
        if write_all(&fd, &data).await.is_err() {
            return;
        }
    }
    // The sender was dropped: stdin is closed. A terminal has no separate stdin to close, so it
    // gets end-of-file the way a keyboard sends it.
    if pty {
        let _ = write_all(&fd, b"\x04").await;
    }
}

async fn write_all(fd: &AsyncFd<OwnedFd>, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        let mut guard = fd.writable().await?;
        match guard
            .try_io(|inner| nix::unistd::write(inner.get_ref(), data).map_err(io::Error::from))
        {
            Ok(Ok(n)) => data = &data[n..],
            Ok(Err(e)) => return Err(e),
            Err(_would_block) => continue,
        }
    }
    Ok(())
}

/// Reads once; `Ok(0)` at end of stream (a terminal's EIO after hang-up counts as that).
async fn read_some(fd: &AsyncFd<OwnedFd>, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        let mut guard = fd.readable().await?;
        match guard.try_io(|inner| read_now(inner.get_ref(), buf)) {
            Ok(result) => return result,
            Err(_would_block) => continue,
        }
    }
}

fn read_now(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<usize> {
    match nix::unistd::read(fd.as_raw_fd(), buf) {
        Ok(n) => Ok(n),
        Err(nix::errno::Errno::EIO) => Ok(0),
        Err(e) => Err(e.into()),
    }
}

struct Watch {
    state: Shared,
    pid: libc::pid_t,
    route: Route,
    stdout: Option<Output>,
    stderr: Option<Output>,
    exit: oneshot::Receiver<Reaped>,
    limits: ProcessLimits,
    started: Instant,
    oom_before: u64,
}

/// Where a watcher sends a process's events.
enum Route {
    /// An ordinary process: the connection that started it, for its whole life.
    Fixed(Target),
    /// A held process: the connection attached now (if any), and its screen model.
    Held(Rc<HeldIo>),
}

impl Route {
    fn target(&self) -> Option<Target> {
        match self {
            Self::Fixed(target) => Some(target.clone()),
            Self::Held(io) => io.target.borrow().clone(),
        }
    }

    /// Whether output may be read now: the reader's window is open, or nobody is attached.
    fn is_open(&self) -> bool {
        self.target().is_none_or(|t| t.credit.is_open())
    }

    /// Returns when the window may have reopened, or (held) the target changed.
    async fn reopened(&self) {
        let target = self.target();
        let ack = async {
            match &target {
                Some(t) => t.credit.reopened.notified().await,
                None => std::future::pending().await,
            }
        };
        match self {
            Self::Fixed(_) => ack.await,
            Self::Held(io) => tokio::select! {
                () = ack => {},
                () = io.changed.notified() => {},
            },
        }
    }
}

/// Output accounting for one process: forwards bytes until the output limit, then kills.
struct Sink {
    route: Route,
    pid: libc::pid_t,
    left: Option<u64>,
    truncated: bool,
}

impl Sink {
    async fn emit(&mut self, stream: Stream, bytes: &[u8]) {
        let allowed = match self.left {
            Some(left) => {
                let n = (bytes.len() as u64).min(left) as usize;
                self.left = Some(left - n as u64);
                if n < bytes.len() {
                    self.truncated = true;
                    let _ = killpg(Pid::from_raw(self.pid), Signal::SIGKILL);
                }
                &bytes[..n]
            }
            None => bytes,
        };
        if allowed.is_empty() {
            return;
        }
        if let Route::Held(io) = &self.route {
            io.screen.borrow_mut().feed(allowed);
        }
        match self.route.target() {
            Some(target) => {
                let frame = Frame::with_payload(
                    Event::Output {
                        id: target.id,
                        stream,
                    },
                    allowed.to_vec(),
                );
                target.credit.sent(allowed.len() as u64);
                send(&target.out, frame).await;
            }
            // Held with nobody attached: read on, paced.
            None => {
                let secs = allowed.len() as f64 / DETACHED_BYTES_PER_SEC;
                tokio::time::sleep(Duration::from_secs_f64(secs)).await;
            }
        }
    }

    /// Reads what is already buffered without waiting (after the process exited, a pipe may
    /// still be held open by a background child; its later output is not this process's).
    /// Ignores the window but stops after one window's worth, so a background writer that keeps
    /// the pipe full cannot keep it going.
    async fn drain(&mut self, stream: Stream, fd: &AsyncFd<OwnedFd>, buf: &mut [u8]) {
        let mut budget = OUTPUT_WINDOW;
        while budget > 0 {
            match read_now(fd.get_ref(), buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    budget = budget.saturating_sub(n as u64);
                    self.emit(stream, &buf[..n]).await;
                }
            }
        }
    }
}

async fn watch(w: Watch) {
    let Watch {
        state,
        pid,
        route,
        stdout,
        stderr,
        mut exit,
        limits,
        started,
        oom_before,
    } = w;
    let mut sink = Sink {
        route,
        pid,
        left: limits.output_bytes,
        truncated: false,
    };
    let mut out_open = stdout.is_some();
    let mut err_open = stderr.is_some();
    let mut out_buf = vec![0u8; READ_CHUNK];
    let mut err_buf = vec![0u8; READ_CHUNK];
    let deadline = limits
        .wall_ms
        .map(|ms| tokio::time::Instant::from_std(started) + std::time::Duration::from_millis(ms));
    let mut wall_hit = false;
    let reaped = loop {
        let open = sink.route.is_open();
        tokio::select! {
            r = async {
                match &stdout { Some(o) => read_some(o.fd(), &mut out_buf).await, None => std::future::pending().await }
            }, if out_open && open => match r {
                Ok(0) | Err(_) => out_open = false,
                Ok(n) => {
                    let chunk = out_buf[..n].to_vec();
                    sink.emit(Stream::Stdout, &chunk).await;
                }
            },
            r = async {
                match &stderr { Some(o) => read_some(o.fd(), &mut err_buf).await, None => std::future::pending().await }
            }, if err_open && open => match r {
                Ok(0) | Err(_) => err_open = false,
                Ok(n) => {
                    let chunk = err_buf[..n].to_vec();
                    sink.emit(Stream::Stderr, &chunk).await;
                }
            },
            () = async {
                match deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await }
            }, if !wall_hit => {
                wall_hit = true;
                let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            },
            // The reader is a window behind: wait for its ack (the process's writes block
            // meanwhile; its wall-time limit still runs), or for a held process's next reader.
            () = sink.route.reopened(), if !open => {},
            r = &mut exit => break r.ok(),
        }
    };
    let wall_ms = started.elapsed().as_millis() as u64;
    if out_open && let Some(o) = &stdout {
        sink.drain(Stream::Stdout, o.fd(), &mut out_buf).await;
    }
    if err_open && let Some(o) = &stderr {
        sink.drain(Stream::Stderr, o.fd(), &mut err_buf).await;
    }
    let oom_after = oom_kills(state.borrow().ctx.oom.as_ref());
    let exit = classify(
        reaped.as_ref(),
        &limits,
        wall_ms,
        wall_hit,
        sink.truncated,
        oom_after > oom_before,
    );
    let target = sink.route.target();
    {
        let mut st = state.borrow_mut();
        // Only this process's entries: after a reconnection the id may be another's, and a
        // name may hold a newer process.
        if let Some(target) = &target
            && st
                .procs
                .get(&target.id)
                .is_some_and(|p| Rc::ptr_eq(&p.credit, &target.credit))
        {
            st.procs.remove(&target.id);
        }
        if let Route::Held(io) = &sink.route {
            st.held.retain(|_, held| !Rc::ptr_eq(&held.io, io));
        }
    }
    if let Some(target) = target {
        send(
            &target.out,
            Frame::new(Event::Exited {
                id: target.id,
                exit,
            }),
        )
        .await;
    }
}

/// Turns a wait status and what the watcher saw into an [`ExitInfo`].
fn classify(
    reaped: Option<&Reaped>,
    limits: &ProcessLimits,
    wall_ms: u64,
    wall_hit: bool,
    truncated: bool,
    oom_killed: bool,
) -> ExitInfo {
    let mut info = ExitInfo {
        wall_ms,
        output_truncated: truncated,
        ..ExitInfo::default()
    };
    if let Some(r) = reaped {
        if libc::WIFEXITED(r.status) {
            info.code = Some(libc::WEXITSTATUS(r.status));
        } else if libc::WIFSIGNALED(r.status) {
            info.signal = Some(libc::WTERMSIG(r.status));
        }
        info.cpu_ms = r.cpu_ms;
        info.memory_kb = r.maxrss_kb;
    }
    let killed = info.signal == Some(libc::SIGKILL);
    let over_cpu = limits.cpu_ms.is_some_and(|limit| info.cpu_ms > limit);
    info.limit = if truncated {
        Some(LimitKind::Output)
    } else if info.signal == Some(libc::SIGXCPU) || over_cpu {
        Some(LimitKind::CpuTime)
    } else if wall_hit {
        Some(LimitKind::WallTime)
    } else if killed
        && limits.cpu_ms.is_some_and(|limit| {
            // SIGKILL from RLIMIT_CPU's hard limit (a second past the soft one). rusage can read
            // a little below what the kernel enforced, so most of the way there counts.
            let hard_ms = (limit.div_ceil(1000).max(1) + 1) * 1000;
            info.cpu_ms * 5 >= hard_ms * 4
        })
    {
        Some(LimitKind::CpuTime)
    } else if killed && oom_killed {
        Some(LimitKind::Memory)
    } else {
        None
    };
    info
}
