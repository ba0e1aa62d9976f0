//! [`TerminalHub`]: one shell process, one screen model, many clients.
//!
//! A task owns the [`Process`] and consumes its output continuously, paced by a
//! [`TokenBucket`]: each chunk goes into the `vt100` screen model and, under the same lock, to
//! every attached client whose [`Flow`] window is open. Attaching takes a snapshot under that
//! lock too, so a client sees each byte exactly once, either in its snapshot or live. Clients
//! hold an [`Attachment`]; their queues are bounded by their window (plus one chunk and one
//! snapshot), not by how much the shell writes.
//!
//! Stdin, resizes and signals go through a [`ProcessControl`], so keystrokes (Ctrl-C into a
//! flood) reach the PTY at once while the task is pacing output.
//!
//! When the last client detaches the shell keeps running for the grace period; then (or on
//! [`TerminalHub::close`]) it gets SIGHUP, then SIGKILL, and the hub is closed for good.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::body::Bytes;
use sandpit_sandbox::{ExitInfo, Process, ProcessControl, ProcessEvent};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::protocol::{Deliver, Flow, TokenBucket, clamp_size};
use super::{TerminalConfig, TerminalError, screen};

/// Output events read ahead of the hub (each at most the agent's 32 KiB read).
const EVENT_QUEUE: usize = 16;
/// Queued output is merged into chunks of about this size (at most twice it).
const COALESCE_BYTES: usize = 32 << 10;
/// How long a hung-up shell may take to exit before it gets SIGKILL.
const HANGUP_PATIENCE: Duration = Duration::from_secs(2);
/// How long to wait for the exit after SIGKILL before reporting the hub closed anyway.
const KILL_PATIENCE: Duration = Duration::from_secs(5);

/// What a client receives, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HubEvent {
    /// Terminal output.
    Output(Bytes),
    /// The client fell a window behind and missed output: this redraws the screen (see
    /// [`screen::snapshot`]).
    Snapshot(Bytes),
    /// The terminal was resized (by any writer).
    Resized { rows: u16, cols: u16 },
    /// The shell ended; nothing follows.
    Exit(ShellEnd),
}

/// How a hub's shell ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShellEnd {
    /// It exited (by itself, or after the hub hung up on it).
    Exited(ExitInfo),
    /// The sandbox's agent went away (the sandbox was destroyed or crashed), or the shell
    /// outlived SIGKILL.
    Lost,
}

impl ShellEnd {
    /// The exit code and signal as clients are told them: both `None` when lost.
    pub fn code_and_signal(&self) -> (Option<i32>, Option<i32>) {
        match self {
            Self::Exited(exit) => (exit.code, exit.signal),
            Self::Lost => (None, None),
        }
    }
}

struct Client {
    flow: Flow,
    tx: mpsc::UnboundedSender<HubEvent>,
}

struct State {
    screen: screen::ScreenModel,
    clients: HashMap<u64, Client>,
    next_client: u64,
    /// Set once the shell has ended.
    ended: Option<ShellEnd>,
}

/// One shell and its clients. See the module docs.
pub struct TerminalHub {
    config: TerminalConfig,
    control: ProcessControl,
    state: Mutex<State>,
    /// The number of attached clients, watched by the task for the grace period.
    clients: watch::Sender<usize>,
    /// Set by [`TerminalHub::close`].
    close: watch::Sender<bool>,
    /// Set when the shell has ended and every client was told.
    closed: watch::Sender<bool>,
}

impl TerminalHub {
    /// Takes over `process`, a shell the caller spawned on a PTY of `rows`×`cols` (with no wall,
    /// CPU or output limit: it is interactive), and starts consuming its output. The grace
    /// period runs from now until the first client attaches.
    pub fn start(process: Process, rows: u16, cols: u16, config: TerminalConfig) -> Arc<Self> {
        Self::resume(process, rows, cols, &[], config)
    }

    /// Takes over a shell that was running before this hub (one the agent held while no
    /// server was attached, [`sandpit_sandbox::Attached`]): `screen` redraws what it showed,
    /// and is what the first clients see before its new output.
    pub fn resume(
        process: Process,
        rows: u16,
        cols: u16,
        screen: &[u8],
        config: TerminalConfig,
    ) -> Arc<Self> {
        let (rows, cols) = clamp_size(rows.into(), cols.into());
        let mut model = screen::ScreenModel::new(rows, cols, config.scrollback);
        model.feed(screen);
        let hub = Arc::new(Self {
            control: process.control(),
            state: Mutex::new(State {
                screen: model,
                clients: HashMap::new(),
                next_client: 1,
                ended: None,
            }),
            clients: watch::Sender::new(0),
            close: watch::Sender::new(false),
            closed: watch::Sender::new(false),
            config,
        });
        tokio::spawn(run(hub.clone(), process));
        hub
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the state consistent before anything can panic.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn config(&self) -> &TerminalConfig {
        &self.config
    }

    /// Attaches a client: its snapshot of the current screen, then live output.
    pub fn attach(self: &Arc<Self>, read_only: bool) -> Result<Attachment, TerminalError> {
        let mut state = self.lock();
        if state.ended.is_some() {
            return Err(TerminalError::Closed);
        }
        let parser = state.screen.parser();
        let snapshot = screen::snapshot(parser);
        let (rows, cols) = parser.screen().size();
        let mut flow = Flow::new(self.config.window_bytes);
        flow.sent_snapshot(snapshot.len() as u64);
        let (tx, events) = mpsc::unbounded_channel();
        let id = state.next_client;
        state.next_client += 1;
        state.clients.insert(id, Client { flow, tx });
        self.clients.send_replace(state.clients.len());
        Ok(Attachment {
            id,
            hub: self.clone(),
            read_only,
            rows,
            cols,
            snapshot: Bytes::from(snapshot),
            events,
        })
    }

    fn detach(&self, id: u64) {
        let mut state = self.lock();
        if state.clients.remove(&id).is_some() {
            self.clients.send_replace(state.clients.len());
        }
    }

    fn ack(&self, id: u64, bytes: u64) {
        let mut state = self.lock();
        let State {
            screen: model,
            clients,
            ..
        } = &mut *state;
        let Some(client) = clients.get_mut(&id) else {
            return;
        };
        if client.flow.ack(bytes) {
            let snapshot = screen::snapshot(model.parser());
            client.flow.sent_snapshot(snapshot.len() as u64);
            let _ = client.tx.send(HubEvent::Snapshot(Bytes::from(snapshot)));
        }
    }

    /// Feeds output to the screen model and to every client whose window is open.
    fn output(&self, bytes: Vec<u8>) {
        let bytes = Bytes::from(bytes);
        let mut state = self.lock();
        state.screen.feed(&bytes);
        for client in state.clients.values_mut() {
            if client.flow.offer(bytes.len() as u64) == Deliver::Send {
                // A client whose receiver is gone is being detached; nothing to do.
                let _ = client.tx.send(HubEvent::Output(bytes.clone()));
            }
        }
    }

    fn end(&self, exit: ShellEnd) {
        let mut state = self.lock();
        state.ended = Some(exit.clone());
        for (_, client) in state.clients.drain() {
            let _ = client.tx.send(HubEvent::Exit(exit.clone()));
        }
        self.clients.send_replace(0);
        drop(state);
        self.closed.send_replace(true);
    }

    /// Sends keyboard input to the shell.
    pub async fn input(&self, bytes: &[u8]) -> Result<(), TerminalError> {
        if self.is_closed() {
            return Err(TerminalError::Closed);
        }
        Ok(self.control.write_stdin(bytes).await?)
    }

    /// Resizes the terminal (clamped to `1..=500` each way): the PTY, the screen model, and
    /// every client is told.
    pub async fn resize(&self, rows: u16, cols: u16) -> Result<(), TerminalError> {
        let (rows, cols) = clamp_size(rows.into(), cols.into());
        {
            let mut state = self.lock();
            if state.ended.is_some() {
                return Err(TerminalError::Closed);
            }
            if state.screen.parser().screen().size() == (rows, cols) {
                return Ok(());
            }
            state.screen.parser().screen_mut().set_size(rows, cols);
            for client in state.clients.values() {
                let _ = client.tx.send(HubEvent::Resized { rows, cols });
            }
        }
        Ok(self.control.resize(rows, cols).await?)
    }

    /// The terminal's size, rows × columns.
    pub fn size(&self) -> (u16, u16) {
        self.lock().screen.parser().screen().size()
    }

    /// How many clients are attached.
    pub fn clients(&self) -> usize {
        self.lock().clients.len()
    }

    /// How the shell ended, once it has.
    pub fn exited(&self) -> Option<ShellEnd> {
        self.lock().ended.clone()
    }

    /// Whether the shell has ended; a closed hub accepts no clients.
    pub fn is_closed(&self) -> bool {
        self.lock().ended.is_some()
    }

    /// Waits until the shell has ended and every client was told.
    pub async fn closed(&self) {
        let mut closed = self.closed.subscribe();
        // The sender lives in `self`, so this only returns once the value is true.
        let _ = closed.wait_for(|closed| *closed).await;
    }

    /// Ends the shell (SIGHUP, then SIGKILL) and waits until the hub is closed.
    pub async fn close(&self) {
        self.close.send_replace(true);
        self.closed().await;
    }
}

/// Why the hub ends the shell itself.
#[derive(Debug, Clone, Copy)]
enum Reason {
    Idle,
    Closed,
}

/// The hub's task: consume output until the shell exits, the grace period runs out with
/// nobody attached, or someone closes the hub.
async fn run(hub: Arc<TerminalHub>, process: Process) {
    // `Process::next_event` acknowledges output as it goes and must not be cancelled halfway,
    // so a reader task owns it and hands events over through a short queue: while this task
    // pauses, the queue fills, the reader waits, the agent's window fills and the PTY blocks
    // the writer.
    let (tx, mut events) = mpsc::channel(EVENT_QUEUE);
    let reader = tokio::spawn(read_events(process, tx));
    let mut clients = hub.clients.subscribe();
    let mut close = hub.close.subscribe();
    let rate = hub.config.output_rate_bytes_per_sec;
    // A quarter second at full speed: an editor's redraw is never paced, a flood soon is.
    let mut bucket = TokenBucket::new(rate, rate / 4, std::time::Instant::now());
    let grace = hub.config.grace();
    let mut idle_since = Some(Instant::now());
    let reason = loop {
        let idle_deadline = idle_since.map(|since| since + grace);
        tokio::select! {
            () = requested(&mut close) => break Reason::Closed,
            () = sleep_until_some(idle_deadline) => break Reason::Idle,
            changed = clients.changed() => {
                if changed.is_err() {
                    break Reason::Closed;
                }
                // Any change that leaves nobody attached was a detach (perhaps right after an
                // attach this task never saw), so the grace period starts again.
                let count = *clients.borrow_and_update();
                idle_since = (count == 0).then(Instant::now);
            }
            event = events.recv() => match event {
                Some(ProcessEvent::Output(_, mut bytes)) => {
                    // A flood arrives as many small PTY reads; one screen update and one frame
                    // per client for what is already queued costs far less than one per read.
                    let mut exit = None;
                    while bytes.len() < COALESCE_BYTES {
                        match events.try_recv() {
                            Ok(ProcessEvent::Output(_, more)) => bytes.extend_from_slice(&more),
                            Ok(ProcessEvent::Exited(e)) => {
                                exit = Some(e);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    let len = bytes.len() as u64;
                    hub.output(bytes);
                    if let Some(exit) = exit {
                        hub.end(ShellEnd::Exited(exit));
                        return;
                    }
                    let pause = bucket.take(std::time::Instant::now(), len);
                    if !pause.is_zero() {
                        tokio::select! {
                            () = requested(&mut close) => break Reason::Closed,
                            () = tokio::time::sleep(pause) => {}
                        }
                    }
                }
                Some(ProcessEvent::Exited(exit)) => {
                    tracing::debug!(exit.code = ?exit.code, exit.signal = ?exit.signal, "shell exited");
                    hub.end(ShellEnd::Exited(exit));
                    return;
                }
                None => {
                    tracing::warn!("sandbox lost under a terminal");
                    hub.end(ShellEnd::Lost);
                    return;
                }
            }
        }
    };
    tracing::debug!(?reason, "ending the shell");
    let exit = hang_up(&hub, &mut events).await;
    reader.abort();
    hub.end(exit);
}

/// Hands the process's events over until its exit (or the sandbox is lost: the channel closes).
async fn read_events(mut process: Process, tx: mpsc::Sender<ProcessEvent>) {
    while let Some(event) = process.next_event().await {
        let last = matches!(event, ProcessEvent::Exited(_));
        if tx.send(event).await.is_err() || last {
            return;
        }
    }
}

/// SIGHUP to the shell's process group (a shell passes it on to its jobs), then SIGKILL if it
/// lingers. Output meanwhile still reaches the screen model, unpaced.
async fn hang_up(hub: &TerminalHub, events: &mut mpsc::Receiver<ProcessEvent>) -> ShellEnd {
    for (signal, patience) in [
        (libc::SIGHUP, HANGUP_PATIENCE),
        (libc::SIGKILL, KILL_PATIENCE),
    ] {
        if hub.control.signal(signal).await.is_err() {
            return ShellEnd::Lost;
        }
        let waited = tokio::time::timeout(patience, async {
            loop {
                match events.recv().await {
                    Some(ProcessEvent::Output(_, bytes)) => hub.output(bytes),
                    Some(ProcessEvent::Exited(exit)) => return ShellEnd::Exited(exit),
                    None => return ShellEnd::Lost,
                }
            }
        })
        .await;
        if let Ok(exit) = waited {
            return exit;
        }
    }
    tracing::warn!("a terminal's shell did not exit after SIGKILL");
    ShellEnd::Lost
}

/// Returns once the hub is asked to close.
async fn requested(close: &mut watch::Receiver<bool>) {
    // An error means the hub is gone, which also means close.
    let _ = close.wait_for(|close| *close).await;
}

async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// One client's view of a hub; detaches when dropped.
pub struct Attachment {
    id: u64,
    hub: Arc<TerminalHub>,
    read_only: bool,
    rows: u16,
    cols: u16,
    snapshot: Bytes,
    events: mpsc::UnboundedReceiver<HubEvent>,
}

impl Attachment {
    /// The screen when this client attached (already counted against its window).
    pub fn snapshot(&self) -> Bytes {
        self.snapshot.clone()
    }

    /// The size when this client attached.
    pub fn size(&self) -> (u16, u16) {
        (self.rows, self.cols)
    }

    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    pub fn window(&self) -> u64 {
        self.hub.config.window_bytes
    }

    /// The next event; `None` after [`HubEvent::Exit`].
    pub async fn next(&mut self) -> Option<HubEvent> {
        self.events.recv().await
    }

    /// The client consumed `bytes` more of what it was sent (output and snapshots).
    pub fn ack(&self, bytes: u64) {
        self.hub.ack(self.id, bytes);
    }

    /// Keyboard input; ignored for a read-only client.
    pub async fn input(&self, bytes: &[u8]) -> Result<(), TerminalError> {
        if self.read_only {
            return Ok(());
        }
        self.hub.input(bytes).await
    }

    /// Resizes the terminal; ignored for a read-only client.
    pub async fn resize(&self, rows: u16, cols: u16) -> Result<(), TerminalError> {
        if self.read_only {
            return Ok(());
        }
        self.hub.resize(rows, cols).await
    }
}

impl Drop for Attachment {
    fn drop(&mut self) {
        self.hub.detach(self.id);
    }
}
