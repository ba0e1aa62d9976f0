//! The server's side of the agent protocol, shared by every backend: a connection with one
//! reader task that routes events to the process or request waiting for them, and a writer
//! task. The reader never waits for anyone: each process's output is bounded by its flow-control
//! window ([`OUTPUT_WINDOW`](crate::protocol::OUTPUT_WINDOW)), which [`Process`] reopens with
//! acknowledgements as its owner consumes events. A process that floods output faster than its
//! owner reads is slowed down in the kernel; nothing is buffered without bound, and a process
//! nobody reads stalls only itself.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

use crate::error::SandboxError;
use crate::protocol::{
    AckBatcher, AgentSetup, DirEntry, Event, ExitInfo, FileError, Frame, MAX_FRAME, Precondition,
    ProtocolError, Reply, Request, Stream, TreeEntry, TreeListing, UnpackLimits, Unpacked, encode,
    read_frame,
};
use crate::spec::{ProcessSpec, WorkspacePath};
use crate::transport::{AgentEndpoint, AgentKey, AgentState, HandshakeError, client_handshake};

/// Stdin is sent in frames of at most this size.
const STDIN_CHUNK: usize = 256 << 10;

type FileResult = Result<(Reply, Vec<u8>), FileError>;

/// What [`Event::Attached`] says: pid, rows, cols, the snapshot.
type AttachedFrame = (u32, u16, u16, Vec<u8>);

/// A held process taken over by this connection ([`AgentConnection::attach`]).
pub struct Attached {
    pub process: Process,
    /// The terminal's size.
    pub rows: u16,
    pub cols: u16,
    /// Redraws the screen as it was when attached ([`crate::screen::snapshot`]); the
    /// process's output continues from there.
    pub snapshot: Vec<u8>,
}

#[derive(Default)]
struct Routes {
    procs: HashMap<u32, mpsc::UnboundedSender<ProcessEvent>>,
    spawns: HashMap<u32, oneshot::Sender<Result<u32, String>>>,
    attaches: HashMap<u32, oneshot::Sender<Option<AttachedFrame>>>,
    requests: HashMap<u32, oneshot::Sender<FileResult>>,
    closed: bool,
}

struct Inner {
    out: mpsc::Sender<Vec<u8>>,
    routes: Arc<Mutex<Routes>>,
    next: AtomicU32,
    /// The reader and writer tasks: aborted when the last handle goes or on
    /// [`AgentConnection::close`], which drops both halves of the stream and so closes it.
    tasks: [tokio::task::AbortHandle; 2],
}

impl Drop for Inner {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// A live connection to one sandbox's agent.
#[derive(Clone)]
pub struct AgentConnection {
    inner: Arc<Inner>,
}

/// What a running process reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcessEvent {
    Output(Stream, Vec<u8>),
    /// The last event of a process.
    Exited(ExitInfo),
}

/// Waits for the agent's first event: `Ready` (with its features) or why not.
async fn ready<R: AsyncRead + Unpin>(
    reader: &mut R,
    timeout: Duration,
) -> Result<Vec<String>, SandboxError> {
    let first = tokio::time::timeout(timeout, read_frame::<Event, _>(reader))
        .await
        .map_err(|_| SandboxError::Setup("the agent did not become ready in time".into()))?
        .map_err(|e| SandboxError::Setup(format!("the agent stopped during set-up ({e})")))?;
    match first.msg {
        Event::Ready { features } => Ok(features),
        Event::SetupFailed { error } => Err(SandboxError::Setup(error)),
        other => Err(SandboxError::Setup(format!(
            "unexpected first message {other:?}"
        ))),
    }
}

impl AgentConnection {
    /// Sends the set-up, waits for the agent to report ready (or why not), then starts the
    /// connection's tasks. Returns the isolation features the agent reported. For a stream
    /// that needs no authentication (the native backend's socketpair).
    pub async fn handshake<S>(
        stream: S,
        setup: &AgentSetup,
        timeout: Duration,
    ) -> Result<(Self, Vec<String>), SandboxError>
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (mut reader, mut writer) = tokio::io::split(stream);
        writer
            .write_all(&encode(&Frame::new(setup.clone()))?)
            .await?;
        let features = ready(&mut reader, timeout).await?;
        Ok((Self::start(reader, writer), features))
    }

    /// Connects to an agent listening on TCP (see [`crate::transport`]): proves that this side
    /// holds the box's key and checks that the agent does, then sends `setup` if the agent
    /// awaits it (the box's first connection) or goes straight to serving (a later one, for
    /// which `setup` must be `None`). `timeout` bounds the handshake and, separately, the
    /// set-up. Returns the isolation features the agent reported.
    pub async fn connect_tcp(
        endpoint: &AgentEndpoint,
        setup: Option<&AgentSetup>,
        timeout: Duration,
    ) -> Result<(Self, Vec<String>), SandboxError> {
        let stream = tokio::time::timeout(timeout, tokio::net::TcpStream::connect(endpoint.addr))
            .await
            .map_err(|_| HandshakeError::Timeout(timeout))?
            .map_err(|e| SandboxError::Io {
                context: format!("connecting to the agent at {}", endpoint.addr),
                source: e,
            })?;
        crate::transport::tune(&stream)?;
        Self::authenticate(stream, &endpoint.key, setup, timeout).await
    }

    /// [`connect_tcp`](Self::connect_tcp) over a stream already connected to an agent's
    /// listener (a port-forward, a proxy).
    pub async fn authenticate<S>(
        mut stream: S,
        key: &AgentKey,
        setup: Option<&AgentSetup>,
        timeout: Duration,
    ) -> Result<(Self, Vec<String>), SandboxError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let state = client_handshake(&mut stream, key, timeout).await?;
        let (mut reader, mut writer) = tokio::io::split(stream);
        match (state, setup) {
            (AgentState::AwaitingSetup, Some(setup)) => {
                writer
                    .write_all(&encode(&Frame::new(setup.clone()))?)
                    .await?;
            }
            (AgentState::AwaitingSetup, None) => {
                return Err(SandboxError::Setup(
                    "the agent awaits its set-up, and none was given".into(),
                ));
            }
            (AgentState::Serving, Some(_)) => {
                return Err(SandboxError::Setup(
                    "the agent was set up by an earlier connection".into(),
                ));
            }
            (AgentState::Serving, None) => {}
        }
        let features = ready(&mut reader, timeout).await?;
        Ok((Self::start(reader, writer), features))
    }

    fn start<R, W>(mut reader: R, mut writer: W) -> Self
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let (out, mut out_rx) = mpsc::channel::<Vec<u8>>(64);
        let writer_task = tokio::spawn(async move {
            while let Some(bytes) = out_rx.recv().await {
                if writer.write_all(&bytes).await.is_err() {
                    break;
                }
            }
        });
        let routes = Arc::new(Mutex::new(Routes::default()));
        let reader_routes = routes.clone();
        let reader_task = tokio::spawn(async move {
            loop {
                let frame = match read_frame::<Event, _>(&mut reader).await {
                    Ok(frame) => frame,
                    Err(_) => break,
                };
                route(&reader_routes, frame);
            }
            close_routes(&reader_routes);
        });
        Self {
            inner: Arc::new(Inner {
                out,
                routes,
                next: AtomicU32::new(1),
                tasks: [writer_task.abort_handle(), reader_task.abort_handle()],
            }),
        }
    }

    /// Closes the connection now, for every clone of it: waiters see
    /// [`SandboxError::Lost`]. (Dropping the last clone closes it too.) Over TCP the box lives
    /// on and takes a new connection; its processes are killed.
    pub fn close(&self) {
        for task in &self.inner.tasks {
            task.abort();
        }
        close_routes(&self.inner.routes);
    }

    fn next_id(&self) -> u32 {
        self.inner.next.fetch_add(1, Ordering::Relaxed)
    }

    async fn send(&self, frame: Frame<Request>) -> Result<(), SandboxError> {
        let bytes = encode(&frame)?;
        self.inner
            .out
            .send(bytes)
            .await
            .map_err(|_| SandboxError::Lost)
    }

    /// Starts a process. Its events arrive on the returned [`Process`].
    pub async fn spawn(&self, spec: ProcessSpec) -> Result<Process, SandboxError> {
        spec.validate()?;
        let id = self.next_id();
        // Unbounded in type, bounded in fact: the agent sends at most one window of output
        // beyond what this process has acknowledged, then its exit.
        let (events_tx, events) = mpsc::unbounded_channel();
        let (spawned_tx, spawned) = oneshot::channel();
        {
            let mut r = lock(&self.inner.routes);
            if r.closed {
                return Err(SandboxError::Lost);
            }
            r.procs.insert(id, events_tx);
            r.spawns.insert(id, spawned_tx);
        }
        self.send(Frame::new(Request::Spawn { id, spec })).await?;
        match spawned.await {
            Ok(Ok(pid)) => Ok(Process {
                id,
                pid,
                events,
                acks: AckBatcher::default(),
                conn: self.clone(),
            }),
            Ok(Err(error)) => {
                lock(&self.inner.routes).procs.remove(&id);
                Err(SandboxError::Spawn(error))
            }
            Err(_) => Err(SandboxError::Lost),
        }
    }

    /// Takes over the process held under `name` ([`crate::spec::Hold`]), as a connection
    /// before this one left it: `None` when nothing is held by that name (it never was, it
    /// exited, or its grace period ran out).
    pub async fn attach(&self, name: &str) -> Result<Option<Attached>, SandboxError> {
        let id = self.next_id();
        let (events_tx, events) = mpsc::unbounded_channel();
        let (attached_tx, attached) = oneshot::channel();
        {
            let mut r = lock(&self.inner.routes);
            if r.closed {
                return Err(SandboxError::Lost);
            }
            r.procs.insert(id, events_tx);
            r.attaches.insert(id, attached_tx);
        }
        self.send(Frame::new(Request::Attach {
            id,
            name: name.to_owned(),
        }))
        .await?;
        match attached.await {
            Ok(Some((pid, rows, cols, snapshot))) => Ok(Some(Attached {
                process: Process {
                    id,
                    pid,
                    events,
                    acks: AckBatcher::default(),
                    conn: self.clone(),
                },
                rows,
                cols,
                snapshot,
            })),
            Ok(None) => {
                lock(&self.inner.routes).procs.remove(&id);
                Ok(None)
            }
            Err(_) => Err(SandboxError::Lost),
        }
    }

    async fn request(
        &self,
        make: impl FnOnce(u32) -> Request,
        payload: Vec<u8>,
    ) -> Result<(Reply, Vec<u8>), SandboxError> {
        let req = self.next_id();
        // Encoded first: a payload too large for a frame is the caller's error, and leaves no
        // request waiting for an answer that never comes.
        let bytes = encode(&Frame::with_payload(make(req), payload)).map_err(|e| match e {
            ProtocolError::TooLarge(_) => SandboxError::File(FileError::TooLarge(MAX_FRAME as u64)),
            e => e.into(),
        })?;
        let (tx, rx) = oneshot::channel();
        {
            let mut r = lock(&self.inner.routes);
            if r.closed {
                return Err(SandboxError::Lost);
            }
            r.requests.insert(req, tx);
        }
        if self.inner.out.send(bytes).await.is_err() {
            lock(&self.inner.routes).requests.remove(&req);
            return Err(SandboxError::Lost);
        }
        match rx.await {
            Ok(result) => result.map_err(SandboxError::File),
            Err(_) => Err(SandboxError::Lost),
        }
    }

    /// Writes a file (replacing it atomically); see [`write_file_if`](Self::write_file_if).
    pub async fn write_file(
        &self,
        path: &WorkspacePath,
        data: Vec<u8>,
        mode: u32,
    ) -> Result<(), SandboxError> {
        self.write_file_if(path, data, mode, None).await.map(drop)
    }

    /// Writes a file only if `expect` holds when the agent gets to it (else
    /// [`FileError::Conflict`] with the current hash); returns the SHA-256 of the new contents.
    pub async fn write_file_if(
        &self,
        path: &WorkspacePath,
        data: Vec<u8>,
        mode: u32,
        expect: Option<Precondition>,
    ) -> Result<String, SandboxError> {
        let path = path.clone();
        match self
            .request(
                |req| Request::WriteFile {
                    req,
                    path,
                    mode,
                    expect,
                },
                data,
            )
            .await?
        {
            (Reply::Written { sha256 }, _) => Ok(sha256),
            (other, _) => Err(unexpected(other)),
        }
    }

    pub async fn read_file(
        &self,
        path: &WorkspacePath,
        max_bytes: u64,
    ) -> Result<Vec<u8>, SandboxError> {
        self.read_file_with_hash(path, max_bytes)
            .await
            .map(|(data, _)| data)
    }

    /// Reads a file and the hex SHA-256 of what was read, for a later
    /// [`Precondition::Sha256`].
    pub async fn read_file_with_hash(
        &self,
        path: &WorkspacePath,
        max_bytes: u64,
    ) -> Result<(Vec<u8>, String), SandboxError> {
        let path = path.clone();
        match self
            .request(
                |req| Request::ReadFile {
                    req,
                    path,
                    max_bytes,
                },
                Vec::new(),
            )
            .await?
        {
            (Reply::Read { sha256 }, data) => Ok((data, sha256)),
            (other, _) => Err(unexpected(other)),
        }
    }

    /// The tree below `dir` (`None`: the whole workspace), depth first with siblings sorted by
    /// name, links listed and not followed, at most `max_entries` entries.
    pub async fn tree(
        &self,
        dir: Option<&WorkspacePath>,
        max_entries: u32,
    ) -> Result<TreeListing, SandboxError> {
        let path = dir.cloned();
        match self
            .request(
                |req| Request::Tree {
                    req,
                    path,
                    max_entries,
                },
                Vec::new(),
            )
            .await?
        {
            (Reply::Tree(tree), _) => Ok(tree),
            (other, _) => Err(unexpected(other)),
        }
    }

    /// Describes a path; a link at its end is described, not followed.
    pub async fn stat(&self, path: &WorkspacePath) -> Result<TreeEntry, SandboxError> {
        let path = path.clone();
        match self
            .request(|req| Request::Stat { req, path }, Vec::new())
            .await?
        {
            (Reply::Stat { entry }, _) => Ok(entry),
            (other, _) => Err(unexpected(other)),
        }
    }

    /// Renames a file or directory; the parent of `to` is created. An existing `to` is
    /// [`FileError::AlreadyExists`] unless `overwrite`.
    pub async fn rename(
        &self,
        from: &WorkspacePath,
        to: &WorkspacePath,
        overwrite: bool,
    ) -> Result<(), SandboxError> {
        let (from, to) = (from.clone(), to.clone());
        self.request(
            |req| Request::Move {
                req,
                from,
                to,
                overwrite,
            },
            Vec::new(),
        )
        .await
        .map(drop)
    }

    /// A `.tar.gz` of `dir` (`None`: the workspace); [`FileError::TooLarge`] beyond `max_bytes`
    /// (or what one frame can carry).
    pub async fn pack(
        &self,
        dir: Option<&WorkspacePath>,
        max_bytes: u64,
    ) -> Result<Vec<u8>, SandboxError> {
        let path = dir.cloned();
        match self
            .request(
                |req| Request::Pack {
                    req,
                    path,
                    max_bytes,
                },
                Vec::new(),
            )
            .await?
        {
            (Reply::Packed { .. }, archive) => Ok(archive),
            (other, _) => Err(unexpected(other)),
        }
    }

    /// Unpacks a `.tar.gz` into `dir` (`None`: the workspace), all or nothing, within `limits`.
    pub async fn unpack(
        &self,
        dir: Option<&WorkspacePath>,
        archive: Vec<u8>,
        limits: UnpackLimits,
    ) -> Result<Unpacked, SandboxError> {
        let path = dir.cloned();
        match self
            .request(|req| Request::Unpack { req, path, limits }, archive)
            .await?
        {
            (Reply::Unpacked(done), _) => Ok(done),
            (other, _) => Err(unexpected(other)),
        }
    }

    pub async fn list(&self, dir: Option<&WorkspacePath>) -> Result<Vec<DirEntry>, SandboxError> {
        let path = dir.cloned();
        match self
            .request(|req| Request::List { req, path }, Vec::new())
            .await?
        {
            (Reply::List { entries }, _) => Ok(entries),
            (other, _) => Err(unexpected(other)),
        }
    }

    pub async fn remove(&self, path: &WorkspacePath) -> Result<(), SandboxError> {
        let path = path.clone();
        self.request(|req| Request::Remove { req, path }, Vec::new())
            .await
            .map(drop)
    }

    pub async fn mkdir(&self, path: &WorkspacePath) -> Result<(), SandboxError> {
        let path = path.clone();
        self.request(|req| Request::Mkdir { req, path }, Vec::new())
            .await
            .map(drop)
    }

    pub async fn reset(&self) -> Result<(), SandboxError> {
        self.request(|req| Request::Reset { req }, Vec::new())
            .await
            .map(drop)
    }

    /// Whether the agent connection is gone.
    pub fn is_closed(&self) -> bool {
        lock(&self.inner.routes).closed
    }
}

fn unexpected(reply: Reply) -> SandboxError {
    SandboxError::Protocol(ProtocolError::Malformed(format!(
        "unexpected reply {reply:?}"
    )))
}

/// Every waiter learns the agent is gone: their channels close.
fn close_routes(routes: &Mutex<Routes>) {
    let mut r = lock(routes);
    r.closed = true;
    r.procs.clear();
    r.spawns.clear();
    r.attaches.clear();
    r.requests.clear();
}

fn lock(m: &Mutex<Routes>) -> std::sync::MutexGuard<'_, Routes> {
    // A panic while holding this lock cannot leave the maps inconsistent (single inserts and
    // removes), so a poisoned lock is still usable.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn route(routes: &Mutex<Routes>, frame: Frame<Event>) {
    match frame.msg {
        Event::Spawned { id, pid } => {
            if let Some(tx) = lock(routes).spawns.remove(&id) {
                let _ = tx.send(Ok(pid));
            }
        }
        Event::SpawnFailed { id, error } => {
            if let Some(tx) = lock(routes).spawns.remove(&id) {
                let _ = tx.send(Err(error));
            }
        }
        Event::Attached {
            id,
            pid,
            rows,
            cols,
        } => {
            if let Some(tx) = lock(routes).attaches.remove(&id) {
                let _ = tx.send(Some((pid, rows, cols, frame.payload)));
            }
        }
        Event::NotHeld { id } => {
            if let Some(tx) = lock(routes).attaches.remove(&id) {
                let _ = tx.send(None);
            }
        }
        Event::Output { id, stream } => {
            let tx = lock(routes).procs.get(&id).cloned();
            if let Some(tx) = tx {
                let _ = tx.send(ProcessEvent::Output(stream, frame.payload));
            }
        }
        Event::Exited { id, exit } => {
            let tx = lock(routes).procs.remove(&id);
            if let Some(tx) = tx {
                let _ = tx.send(ProcessEvent::Exited(exit));
            }
        }
        Event::Done { req, reply } => {
            if let Some(tx) = lock(routes).requests.remove(&req) {
                let _ = tx.send(Ok((reply, frame.payload)));
            }
        }
        Event::Failed { req, error } => {
            if let Some(tx) = lock(routes).requests.remove(&req) {
                let _ = tx.send(Err(error));
            }
        }
        Event::Ready { .. } | Event::SetupFailed { .. } => {}
    }
}

/// A process running in a sandbox.
pub struct Process {
    id: u32,
    pid: u32,
    events: mpsc::UnboundedReceiver<ProcessEvent>,
    acks: AckBatcher,
    conn: AgentConnection,
}

/// Everything a finished process wrote, and how it ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub exit: ExitInfo,
}

impl Process {
    /// The process id inside the sandbox.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The next output chunk or the exit; `None` if the sandbox was lost. Taking an output
    /// chunk counts as consuming it: the process may send more (see [`AckBatcher`]).
    pub async fn next_event(&mut self) -> Option<ProcessEvent> {
        let event = self.events.recv().await?;
        if let ProcessEvent::Output(_, bytes) = &event
            && let Some(n) = self.acks.consumed(bytes.len() as u64)
        {
            // A lost connection shows up as `None` on the next call.
            let _ = self
                .conn
                .send(Frame::new(Request::Ack {
                    id: self.id,
                    bytes: n,
                }))
                .await;
        }
        Some(event)
    }

    /// A handle that writes stdin, resizes and signals this process while another task owns
    /// the `Process` and reads its events.
    pub fn control(&self) -> ProcessControl {
        ProcessControl {
            id: self.id,
            conn: self.conn.clone(),
        }
    }

    pub async fn write_stdin(&self, data: &[u8]) -> Result<(), SandboxError> {
        self.control().write_stdin(data).await
    }

    pub async fn close_stdin(&self) -> Result<(), SandboxError> {
        self.control().close_stdin().await
    }

    /// Sends a signal to the process's group.
    pub async fn signal(&self, signal: i32) -> Result<(), SandboxError> {
        self.control().signal(signal).await
    }

    pub async fn resize(&self, rows: u16, cols: u16) -> Result<(), SandboxError> {
        self.control().resize(rows, cols).await
    }

    /// Feeds `stdin` (then closes it) and collects all output until the process exits. Output
    /// is bounded by the process's output limit, which the agent enforces.
    pub async fn output(mut self, stdin: &[u8]) -> Result<Output, SandboxError> {
        if !stdin.is_empty() {
            self.write_stdin(stdin).await?;
        }
        self.close_stdin().await?;
        let mut output = Output::default();
        loop {
            match self.next_event().await {
                Some(ProcessEvent::Output(Stream::Stdout, bytes)) => {
                    output.stdout.extend_from_slice(&bytes)
                }
                Some(ProcessEvent::Output(Stream::Stderr, bytes)) => {
                    output.stderr.extend_from_slice(&bytes)
                }
                Some(ProcessEvent::Exited(exit)) => {
                    output.exit = exit;
                    return Ok(output);
                }
                None => return Err(SandboxError::Lost),
            }
        }
    }
}

/// Controls a [`Process`] without owning its events (see [`Process::control`]). Requests for a
/// process that has ended are ignored by the agent.
#[derive(Clone)]
pub struct ProcessControl {
    id: u32,
    conn: AgentConnection,
}

impl ProcessControl {
    pub async fn write_stdin(&self, data: &[u8]) -> Result<(), SandboxError> {
        for chunk in data.chunks(STDIN_CHUNK) {
            self.conn
                .send(Frame::with_payload(
                    Request::Stdin { id: self.id },
                    chunk.to_vec(),
                ))
                .await?;
        }
        Ok(())
    }

    pub async fn close_stdin(&self) -> Result<(), SandboxError> {
        self.conn
            .send(Frame::new(Request::Stdin { id: self.id }))
            .await
    }

    /// Sends a signal to the process's group.
    pub async fn signal(&self, signal: i32) -> Result<(), SandboxError> {
        self.conn
            .send(Frame::new(Request::Signal {
                id: self.id,
                signal,
            }))
            .await
    }

    pub async fn resize(&self, rows: u16, cols: u16) -> Result<(), SandboxError> {
        self.conn
            .send(Frame::new(Request::Resize {
                id: self.id,
                rows,
                cols,
            }))
            .await
    }
}
