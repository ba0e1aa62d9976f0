//! The agent protocol: what the server and the in-sandbox agent say to each other over one
//! stream socket. Every backend speaks it, so spawning, streaming and file access look the same
//! whether the box is a native namespace set, a container or a pod.
//!
//! A frame is `[u32 body_len][u32 json_len][json][payload]` (little-endian lengths), where the
//! JSON is a [`Request`], [`Event`] or the first [`AgentSetup`], and the payload carries bytes
//! (process output, stdin, file contents) without JSON escaping. [`FrameDecoder`] is a pure
//! state machine over bytes; the async read/write helpers are a thin driver on top.
//!
//! Over the socketpair a box has one connection for its whole life: the server's first frame
//! is the [`AgentSetup`], the agent's first is [`Event::Ready`] (or [`Event::SetupFailed`]).
//! Over TCP ([`crate::transport`]) the handshake comes first and a box may see many
//! connections, one at a time: the [`AgentSetup`] is sent on the first only, when the
//! handshake says the agent awaits it; on every later one the agent sends [`Event::Ready`] at
//! once and no set-up is sent. Request and process ids belong to their connection.

use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::spec::{ProcessSpec, RootSpec, SandboxLimits, WorkspacePath};

/// Largest frame either side accepts; larger ones are a protocol error.
pub const MAX_FRAME: usize = 64 << 20;

/// Sent once per box by the server, as the first frame of its first connection: how the agent
/// builds the box.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentSetup {
    pub root: RootSpec,
    pub limits: SandboxLimits,
    pub hostname: String,
    /// `cgroup.procs` files the agent writes itself into before unsharing.
    pub cgroup_procs: Vec<PathBuf>,
    /// The cgroup file that counts OOM kills (`memory.oom_control` on v1, `memory.events` on
    /// v2); opened before the root changes so memory-limit kills can be told apart.
    pub oom_events: Option<PathBuf>,
    /// The unprivileged identity sandboxed processes run as.
    pub uid: u32,
    pub gid: u32,
    /// Whether to install the seccomp filter in every process.
    pub seccomp: bool,
    /// A block device holding the workspace's filesystem (ext4), mounted at `/workspace` in
    /// place of a tmpfs and handed to the sandbox user. `None`: a fresh tmpfs.
    #[serde(default)]
    pub workspace_device: Option<PathBuf>,
    /// Host directories bound into the box (see [`crate::spec::Volume`]).
    #[serde(default)]
    pub volumes: Vec<crate::spec::Volume>,
    /// A container engine's room (see [`crate::spec::ContainersSpec`]).
    #[serde(default)]
    pub containers: Option<ContainersSetup>,
}

/// What the agent mounts for a container engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainersSetup {
    /// The block device of the engine's disk (ext4), mounted at
    /// [`crate::spec::containers::DISK_DIR`].
    pub device: PathBuf,
    /// The shared base-image store, bound read-only and id-mapped to the box's user.
    pub image_store: Option<PathBuf>,
    /// The first of the box's subordinate ids ([`crate::spec::containers::SUBORDINATE_IDS`]
    /// of them): host ids no other box has, for its containers' users.
    pub sub_start: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    Spawn {
        id: u32,
        spec: ProcessSpec,
    },
    /// Takes over the process held under `name` (see [`crate::spec::Hold`]) as process `id`
    /// of this connection: answered with [`Event::Attached`] (then its output, live) or
    /// [`Event::NotHeld`].
    Attach {
        id: u32,
        name: String,
    },
    /// Payload: bytes for the process's stdin. An empty payload closes stdin.
    Stdin {
        id: u32,
    },
    /// Sends a signal to the process's group.
    Signal {
        id: u32,
        signal: i32,
    },
    Resize {
        id: u32,
        rows: u16,
        cols: u16,
    },
    /// The reader of process `id` has consumed `bytes` more bytes of its output (see
    /// [`OutputWindow`]).
    Ack {
        id: u32,
        bytes: u64,
    },
    /// Payload: the new contents. Parent directories are created. The file is replaced
    /// atomically (readers see the old or the new contents, never a mix), and only if `expect`
    /// holds at that moment. Answered with [`Reply::Written`].
    WriteFile {
        req: u32,
        path: WorkspacePath,
        mode: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expect: Option<Precondition>,
    },
    ReadFile {
        req: u32,
        path: WorkspacePath,
        max_bytes: u64,
    },
    /// Lists a directory (`None`: the workspace root).
    List {
        req: u32,
        path: Option<WorkspacePath>,
    },
    /// Removes a file or a directory tree.
    Remove {
        req: u32,
        path: WorkspacePath,
    },
    Mkdir {
        req: u32,
        path: WorkspacePath,
    },
    /// Lists a directory tree (`None`: the whole workspace) depth first, siblings sorted by
    /// name, without following links; at most `max_entries` entries.
    Tree {
        req: u32,
        path: Option<WorkspacePath>,
        max_entries: u32,
    },
    /// Describes one path without following a link at its end.
    Stat {
        req: u32,
        path: WorkspacePath,
    },
    /// Renames a file or directory within the workspace; the parent of `to` is created.
    Move {
        req: u32,
        from: WorkspacePath,
        to: WorkspacePath,
        overwrite: bool,
    },
    /// Archives a directory (`None`: the workspace) as `.tar.gz`: the reply's payload.
    Pack {
        req: u32,
        path: Option<WorkspacePath>,
        max_bytes: u64,
    },
    /// Payload: a `.tar.gz` to unpack into a directory (`None`: the workspace), created if
    /// missing. Existing files of the same name are replaced; all or nothing.
    Unpack {
        req: u32,
        path: Option<WorkspacePath>,
        limits: UnpackLimits,
    },
    /// Kills every process and empties the workspace, `/tmp` and `/dev/shm`, so the box can be
    /// handed to someone else with no trace of the previous use.
    Reset {
        req: u32,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// Setup finished; the box is ready for requests. Also the first frame of every later TCP
    /// connection (the features as reported at set-up).
    Ready {
        features: Vec<String>,
    },
    /// Setup failed; the agent exits after sending this.
    SetupFailed {
        error: String,
    },
    Spawned {
        id: u32,
        pid: u32,
    },
    SpawnFailed {
        id: u32,
        error: String,
    },
    /// Payload: a snapshot of the held process's screen ([`crate::screen::snapshot`]), which
    /// its output after this frame continues. `rows`×`cols`: the terminal's size.
    Attached {
        id: u32,
        pid: u32,
        rows: u16,
        cols: u16,
    },
    /// Nothing is held under the name (it never was, it exited, or its grace ran out).
    NotHeld {
        id: u32,
    },
    /// Payload: output bytes.
    Output {
        id: u32,
        stream: Stream,
    },
    /// The process ended. No output for `id` follows.
    Exited {
        id: u32,
        exit: ExitInfo,
    },
    Done {
        req: u32,
        reply: Reply,
    },
    Failed {
        req: u32,
        error: FileError,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Successful answers to file and reset requests. `Read` and `Packed` carry bytes as payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reply {
    Ok,
    /// `sha256`: hex digest of the contents, for a later [`Precondition::Sha256`].
    Read {
        sha256: String,
    },
    /// `sha256`: hex digest of what was written.
    Written {
        sha256: String,
    },
    List {
        entries: Vec<DirEntry>,
    },
    Tree(TreeListing),
    Stat {
        entry: TreeEntry,
    },
    /// `entries`: how many entries the archive holds.
    Packed {
        entries: u32,
    },
    Unpacked(Unpacked),
}

/// A directory tree, possibly cut short.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeListing {
    pub entries: Vec<TreeEntry>,
    /// More entries exist beyond `max_entries`.
    pub truncated: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeEntry {
    /// Relative to the workspace, `/`-separated.
    pub path: String,
    pub kind: EntryKind,
    /// Bytes of a regular file; 0 for anything else.
    pub size: u64,
    /// Last modification, unix milliseconds.
    pub modified_ms: i64,
}

/// What must hold for a write to go ahead (optimistic concurrency).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Precondition {
    /// The file exists with contents of this hex SHA-256 (as from [`Reply::Read`]).
    Sha256(String),
    /// Nothing exists at the path.
    Absent,
}

/// Bounds on what an uploaded archive may unpack to, counted as it is decompressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnpackLimits {
    pub max_entries: u32,
    /// Sum of the sizes of all files.
    pub max_total_bytes: u64,
    pub max_file_bytes: u64,
}

/// What an unpack wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unpacked {
    pub entries: u32,
    pub bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirEntry {
    pub name: String,
    pub kind: EntryKind,
    pub size: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    Other,
}

/// Why a file request failed, in terms callers can map to API errors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", content = "message", rename_all = "snake_case")]
pub enum FileError {
    #[error("no such file or directory")]
    NotFound,
    #[error("already exists")]
    AlreadyExists,
    #[error("not a directory")]
    NotADirectory,
    #[error("is a directory")]
    IsADirectory,
    #[error("larger than {0} bytes")]
    TooLarge(u64),
    /// A write's [`Precondition`] did not hold; `current` is the hex SHA-256 of what is there
    /// (`None`: nothing, or not a regular file).
    #[error("the file changed since it was read")]
    Conflict { current: Option<String> },
    #[error("the workspace is full")]
    NoSpace,
    #[error("refused: {0}")]
    Refused(String),
    #[error("{0}")]
    Io(String),
}

impl From<std::io::Error> for FileError {
    fn from(e: std::io::Error) -> Self {
        use std::io::ErrorKind as K;
        match e.kind() {
            K::NotFound => Self::NotFound,
            K::AlreadyExists => Self::AlreadyExists,
            K::NotADirectory => Self::NotADirectory,
            K::IsADirectory => Self::IsADirectory,
            K::StorageFull | K::QuotaExceeded | K::FileTooLarge => Self::NoSpace,
            _ => match e.raw_os_error() {
                Some(libc::ELOOP) | Some(libc::EXDEV) => {
                    Self::Refused("the path leaves the workspace through a link".into())
                }
                _ => Self::Io(e.to_string()),
            },
        }
    }
}

/// How a process ended and what it used.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitInfo {
    /// Exit code when it exited normally.
    pub code: Option<i32>,
    /// Signal number when a signal ended it.
    pub signal: Option<i32>,
    pub wall_ms: u64,
    /// User + system CPU time of the process and the children it waited for.
    pub cpu_ms: u64,
    /// Peak resident memory of the largest process in its tree.
    pub memory_kb: u64,
    /// The limit that ended it, if any.
    pub limit: Option<LimitKind>,
    /// Output beyond the output limit was dropped.
    pub output_truncated: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitKind {
    WallTime,
    CpuTime,
    Memory,
    Output,
}

/// A decoded frame: a message plus its byte payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame<M> {
    pub msg: M,
    pub payload: Vec<u8>,
}

impl<M> Frame<M> {
    pub fn new(msg: M) -> Self {
        Self {
            msg,
            payload: Vec::new(),
        }
    }

    pub fn with_payload(msg: M, payload: Vec<u8>) -> Self {
        Self { msg, payload }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("frame of {0} bytes exceeds the limit")]
    TooLarge(usize),
    #[error("malformed frame: {0}")]
    Malformed(String),
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("the peer closed the connection")]
    Closed,
}

/// Encodes one frame.
pub fn encode<M: Serialize>(frame: &Frame<M>) -> Result<Vec<u8>, ProtocolError> {
    let json =
        serde_json::to_vec(&frame.msg).map_err(|e| ProtocolError::Malformed(e.to_string()))?;
    let body = 4 + json.len() + frame.payload.len();
    if body > MAX_FRAME {
        return Err(ProtocolError::TooLarge(body));
    }
    let mut out = Vec::with_capacity(4 + body);
    out.extend_from_slice(&(body as u32).to_le_bytes());
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(&frame.payload);
    Ok(out)
}

/// Decodes one frame body (everything after the leading length).
fn decode_body<M: DeserializeOwned>(body: &[u8]) -> Result<Frame<M>, ProtocolError> {
    let Some((len, rest)) = body.split_first_chunk::<4>() else {
        return Err(ProtocolError::Malformed("short body".into()));
    };
    let json_len = u32::from_le_bytes(*len) as usize;
    if json_len > rest.len() {
        return Err(ProtocolError::Malformed("json length past the end".into()));
    }
    let (json, payload) = rest.split_at(json_len);
    let msg = serde_json::from_slice(json).map_err(|e| ProtocolError::Malformed(e.to_string()))?;
    Ok(Frame {
        msg,
        payload: payload.to_vec(),
    })
}

/// Incremental decoder: feed bytes as they arrive, take complete frames out.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
}

impl FrameDecoder {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame, `Ok(None)` when more bytes are needed.
    pub fn next_frame<M: DeserializeOwned>(&mut self) -> Result<Option<Frame<M>>, ProtocolError> {
        let Some(len) = self.buf.first_chunk::<4>() else {
            return Ok(None);
        };
        let body = u32::from_le_bytes(*len) as usize;
        if body > MAX_FRAME {
            return Err(ProtocolError::TooLarge(body));
        }
        if self.buf.len() < 4 + body {
            return Ok(None);
        }
        let frame = decode_body(&self.buf[4..4 + body]);
        self.buf.drain(..4 + body);
        frame.map(Some)
    }
}

/// Reads one frame; `Closed` at a clean end of stream.
pub async fn read_frame<M: DeserializeOwned, R: AsyncRead + Unpin>(
    reader: &mut R,
) -> Result<Frame<M>, ProtocolError> {
    let mut len = [0u8; 4];
    match reader.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            return Err(ProtocolError::Closed);
        }
        Err(e) => return Err(e.into()),
    }
    let body = u32::from_le_bytes(len) as usize;
    if body > MAX_FRAME {
        return Err(ProtocolError::TooLarge(body));
    }
    let mut buf = vec![0u8; body];
    reader.read_exact(&mut buf).await?;
    decode_body(&buf)
}

pub async fn write_frame<M: Serialize, W: AsyncWrite + Unpin>(
    writer: &mut W,
    frame: &Frame<M>,
) -> Result<(), ProtocolError> {
    writer.write_all(&encode(frame)?).await?;
    Ok(())
}

/// Blocking read of one frame, for the agent before its runtime starts.
pub fn read_frame_blocking<M: DeserializeOwned>(
    reader: &mut impl std::io::Read,
) -> Result<Frame<M>, ProtocolError> {
    let mut len = [0u8; 4];
    reader.read_exact(&mut len).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            ProtocolError::Closed
        } else {
            e.into()
        }
    })?;
    let body = u32::from_le_bytes(len) as usize;
    if body > MAX_FRAME {
        return Err(ProtocolError::TooLarge(body));
    }
    let mut buf = vec![0u8; body];
    reader.read_exact(&mut buf)?;
    decode_body(&buf)
}

/// How many bytes of one process's output may be sent and not yet acknowledged. The agent stops
/// reading a process's pipes or terminal when its window is full, so a process whose reader
/// falls behind is slowed down in the kernel (its writes block) while every other process and
/// request on the same connection goes on.
pub const OUTPUT_WINDOW: u64 = 1 << 20;

/// The sender's side of per-process flow control: bytes in flight against a window. Pure
/// state; the agent drives it from its read loop and its `Ack` handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputWindow {
    in_flight: u64,
    size: u64,
}

impl OutputWindow {
    pub fn new(size: u64) -> Self {
        Self { in_flight: 0, size }
    }

    /// Whether more output may be read and sent.
    pub fn is_open(&self) -> bool {
        self.in_flight < self.size
    }

    pub fn sent(&mut self, bytes: u64) {
        self.in_flight = self.in_flight.saturating_add(bytes);
    }

    /// A reader acknowledged `bytes`; more than is in flight (a confused or hostile peer) only
    /// empties the window.
    pub fn acked(&mut self, bytes: u64) {
        self.in_flight = self.in_flight.saturating_sub(bytes);
    }
}

/// The reader's side: counts consumed bytes and says when to acknowledge them, in batches of a
/// quarter window so acknowledgements cost little and the sender rarely stalls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AckBatcher {
    unacked: u64,
}

impl AckBatcher {
    /// Records `bytes` consumed; returns how many to acknowledge now, if it is time.
    pub fn consumed(&mut self, bytes: u64) -> Option<u64> {
        self.unacked += bytes;
        if self.unacked >= OUTPUT_WINDOW / 4 {
            Some(std::mem::take(&mut self.unacked))
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_closes_when_full_and_reopens_on_ack() {
        let mut w = OutputWindow::new(100);
        assert!(w.is_open());
        w.sent(60);
        assert!(w.is_open());
        w.sent(40);
        assert!(!w.is_open(), "100 of 100 in flight");
        w.acked(1);
        assert!(w.is_open());
        w.sent(500);
        assert!(!w.is_open(), "a read may overshoot; still closed");
        w.acked(u64::MAX);
        assert_eq!(
            w,
            OutputWindow::new(100),
            "an excessive ack only empties it"
        );
    }

    #[test]
    fn acks_come_in_quarter_window_batches() {
        let mut b = AckBatcher::default();
        let quarter = OUTPUT_WINDOW / 4;
        assert_eq!(b.consumed(quarter - 1), None);
        assert_eq!(b.consumed(1), Some(quarter));
        assert_eq!(b.consumed(10), None, "the batch starts again");
        assert_eq!(b.consumed(3 * quarter), Some(3 * quarter + 10));
        // A window's worth of output always produces acks before the window closes.
        let mut w = OutputWindow::new(OUTPUT_WINDOW);
        let mut b = AckBatcher::default();
        for _ in 0..100 {
            assert!(w.is_open());
            w.sent(32 << 10);
            if let Some(n) = b.consumed(32 << 10) {
                w.acked(n);
            }
        }
    }

    #[test]
    fn frames_survive_arbitrary_splits() {
        let frames = vec![
            Frame::new(Request::Reset { req: 1 }),
            Frame::with_payload(Request::Stdin { id: 7 }, b"hello\0\xffworld".to_vec()),
            Frame::new(Request::Spawn {
                id: 2,
                spec: ProcessSpec::new(["/bin/echo", "a\nb", "$(x)", "'\""]),
            }),
        ];
        let bytes: Vec<u8> = frames.iter().flat_map(|f| encode(f).unwrap()).collect();
        for chunk in [1, 3, 7, bytes.len()] {
            let mut decoder = FrameDecoder::default();
            let mut out = Vec::new();
            for piece in bytes.chunks(chunk) {
                decoder.push(piece);
                while let Some(frame) = decoder.next_frame::<Request>().unwrap() {
                    out.push(frame);
                }
            }
            assert_eq!(out, frames, "split every {chunk} bytes");
        }
    }

    #[test]
    fn oversized_and_malformed_frames_are_errors() {
        let mut decoder = FrameDecoder::default();
        decoder.push(&u32::MAX.to_le_bytes());
        assert!(matches!(
            decoder.next_frame::<Request>(),
            Err(ProtocolError::TooLarge(_))
        ));
        let mut decoder = FrameDecoder::default();
        let mut bytes = 9u32.to_le_bytes().to_vec();
        bytes.extend_from_slice(&99u32.to_le_bytes());
        bytes.extend_from_slice(b"{}{}{");
        decoder.push(&bytes);
        assert!(matches!(
            decoder.next_frame::<Request>(),
            Err(ProtocolError::Malformed(_))
        ));
        let mut decoder = FrameDecoder::default();
        let mut bytes = 6u32.to_le_bytes().to_vec();
        bytes.extend_from_slice(&2u32.to_le_bytes());
        bytes.extend_from_slice(b"{}");
        decoder.push(&bytes);
        assert!(matches!(
            decoder.next_frame::<Request>(),
            Err(ProtocolError::Malformed(_))
        ));
    }

    #[test]
    fn file_messages_round_trip_through_json() {
        let requests = [
            Request::WriteFile {
                req: 1,
                path: WorkspacePath::parse("a/b").unwrap(),
                mode: 0o644,
                expect: Some(Precondition::Sha256("ab".repeat(32))),
            },
            Request::WriteFile {
                req: 2,
                path: WorkspacePath::parse("c").unwrap(),
                mode: 0o600,
                expect: Some(Precondition::Absent),
            },
            Request::Unpack {
                req: 3,
                path: None,
                limits: UnpackLimits {
                    max_entries: 10,
                    max_total_bytes: 1 << 20,
                    max_file_bytes: 1 << 10,
                },
            },
        ];
        for request in requests {
            let json = serde_json::to_string(&request).unwrap();
            assert_eq!(serde_json::from_str::<Request>(&json).unwrap(), request);
        }
        // A write from before preconditions existed still decodes.
        let old: Request =
            serde_json::from_str(r#"{"type":"write_file","req":1,"path":"x","mode":420}"#).unwrap();
        assert!(matches!(old, Request::WriteFile { expect: None, .. }));
        let replies = [
            Reply::Tree(TreeListing {
                entries: vec![TreeEntry {
                    path: "a/b".into(),
                    kind: EntryKind::File,
                    size: 3,
                    modified_ms: 1_700_000_000_000,
                }],
                truncated: true,
            }),
            Reply::Read {
                sha256: "00".into(),
            },
            Reply::Unpacked(Unpacked {
                entries: 2,
                bytes: 5,
            }),
        ];
        for reply in replies {
            let json = serde_json::to_string(&reply).unwrap();
            assert_eq!(serde_json::from_str::<Reply>(&json).unwrap(), reply);
        }
        for error in [
            FileError::Conflict { current: None },
            FileError::Conflict {
                current: Some("ff".into()),
            },
            FileError::Refused("x".into()),
        ] {
            let json = serde_json::to_string(&error).unwrap();
            assert_eq!(serde_json::from_str::<FileError>(&json).unwrap(), error);
        }
    }

    #[tokio::test]
    async fn async_and_blocking_readers_agree() {
        let frame = Frame::with_payload(
            Event::Output {
                id: 3,
                stream: Stream::Stderr,
            },
            vec![1, 2, 3],
        );
        let bytes = encode(&frame).unwrap();
        let read: Frame<Event> = read_frame(&mut bytes.as_slice()).await.unwrap();
        assert_eq!(read, frame);
        let read: Frame<Event> = read_frame_blocking(&mut bytes.as_slice()).unwrap();
        assert_eq!(read, frame);
        assert!(matches!(
            read_frame::<Event, _>(&mut [].as_slice()).await,
            Err(ProtocolError::Closed)
        ));
    }
}
