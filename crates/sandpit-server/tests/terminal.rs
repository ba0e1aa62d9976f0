#![expect(clippy::unwrap_used, reason = "tests")]
//! The terminal engine end to end: a real shell on a PTY in a real sandbox (native backend,
//! run as root), a tiny axum app serving `terminal::socket::serve` on port 0, and real
//! WebSocket clients that keep their own screen model (`vt100`) as xterm.js would.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use futures::{SinkExt, StreamExt};
use sandpit_sandbox::{
    Backend, NativeBackend, NativeConfig, ProcessLimits, ProcessSpec, Sandbox, SandboxLimits,
    SandboxSpec, StdioMode,
};
use sandpit_server::terminal::protocol::{MAX_CONTROL_BYTES, MAX_INPUT_BYTES};
use sandpit_server::terminal::{ShellEnd, TerminalConfig, TerminalError, TerminalHub, socket};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Upper bound for anything a test waits for, so a defect shows as a failure, not a hang.
const PATIENCE: Duration = Duration::from_secs(30);
const ROWS: u16 = 24;
const COLS: u16 = 80;
const WINDOW: u64 = 64 << 10;

async fn patiently<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, fut)
        .await
        .unwrap_or_else(|_| panic!("{what} did not happen within {PATIENCE:?}"))
}

/// A sandbox with a shell, its hub, and an app serving the hub on port 0.
struct Terminal {
    hub: Arc<TerminalHub>,
    addr: std::net::SocketAddr,
    sandbox: Box<dyn Sandbox>,
    backend: Arc<NativeBackend>,
}

impl Terminal {
    /// `slot` gives each test its own sandbox uids: tests run in parallel processes, each
    /// with its own backend, and two backends must not hand out the same uid.
    async fn start(slot: u32, config: TerminalConfig) -> Self {
        let first_uid = 63_000 + slot * 8;
        let backend = Arc::new(
            NativeBackend::new(NativeConfig {
                agent_argv: sandpit_testkit::agent_argv(),
                uids: first_uid..first_uid + 8,
                seccomp: true,
                ready_timeout: Duration::from_secs(10),
            })
            .await
            .unwrap(),
        );
        let sandbox = backend
            .create(&SandboxSpec::new(SandboxLimits {
                memory_bytes: 256 << 20,
                pids: 64,
                cpu_millicores: Some(1000),
                workspace_bytes: 32 << 20,
                tmp_bytes: 8 << 20,
                shm_bytes: 8 << 20,
            }))
            .await
            .unwrap();
        let mut spec = ProcessSpec::new(["/bin/bash", "--noprofile", "--norc", "-i"]);
        spec.env.insert("PS1".into(), "$ ".into());
        spec.env.insert("TERM".into(), "xterm-256color".into());
        spec.stdio = StdioMode::Pty {
            rows: ROWS,
            cols: COLS,
        };
        spec.limits = ProcessLimits {
            wall_ms: None,
            cpu_ms: None,
            output_bytes: None,
            ..ProcessLimits::default()
        };
        let shell = sandbox.spawn(spec).await.unwrap();
        let hub = TerminalHub::start(shell, ROWS, COLS, config);
        let app = Router::new()
            .route("/terminal", get(upgrade))
            .with_state(hub.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            hub,
            addr,
            sandbox,
            backend,
        }
    }

    async fn connect(&self) -> Client {
        Client::connect(self.addr, false).await
    }

    async fn viewer(&self) -> Client {
        Client::connect(self.addr, true).await
    }

    async fn wait_for_clients(&self, n: usize) {
        patiently(&format!("{n} clients attached"), async {
            while self.hub.clients() != n {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        if let Err(error) = self.backend.cleanup() {
            eprintln!("cleanup failed: {error}");
        }
    }
}

fn config() -> TerminalConfig {
    TerminalConfig {
        window_bytes: WINDOW,
        ..TerminalConfig::default()
    }
}

#[derive(serde::Deserialize)]
struct Params {
    #[serde(default)]
    read_only: bool,
}

async fn upgrade(
    State(hub): State<Arc<TerminalHub>>,
    Query(params): Query<Params>,
    ws: WebSocketUpgrade,
) -> Response {
    socket::limit(ws).on_upgrade(move |socket| socket::serve(socket, hub, params.read_only))
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What a client got next.
#[derive(Debug)]
enum Got {
    Bytes(Vec<u8>),
    Control(Value),
    Closed(Option<u16>),
}

/// A WebSocket client that renders what it receives into its own screen model and (unless
/// told not to) acknowledges it as xterm.js's write callback would.
struct Client {
    ws: Ws,
    hello: Value,
    screen: vt100::Parser,
    /// The last few KiB of raw output, to find short outputs in a flood.
    tail: Vec<u8>,
    acks: bool,
    unacked: u64,
    snapshots: usize,
}

impl Client {
    async fn connect(addr: std::net::SocketAddr, read_only: bool) -> Self {
        let url = format!("ws://{addr}/terminal?read_only={read_only}");
        let (ws, _) = patiently("connecting", tokio_tungstenite::connect_async(url))
            .await
            .unwrap();
        let mut client = Self {
            ws,
            hello: Value::Null,
            screen: vt100::Parser::new(ROWS, COLS, 1000),
            tail: Vec::new(),
            acks: true,
            unacked: 0,
            snapshots: 0,
        };
        let hello = client.next().await;
        let Got::Control(hello) = hello else {
            panic!("expected hello, got {hello:?}")
        };
        assert_eq!(hello["type"], "hello", "{hello}");
        assert_eq!(hello["read_only"], read_only);
        let rows = hello["rows"].as_u64().unwrap() as u16;
        let cols = hello["cols"].as_u64().unwrap() as u16;
        client.screen.screen_mut().set_size(rows, cols);
        client.hello = hello;
        let snapshot = client.next().await;
        assert!(matches!(snapshot, Got::Bytes(_)), "{snapshot:?}");
        client
    }

    /// The next message, with the bookkeeping a browser would do.
    async fn next(&mut self) -> Got {
        loop {
            let message = patiently("the next message", self.ws.next()).await;
            let got = match message {
                Some(Ok(Message::Binary(bytes))) => Got::Bytes(bytes.to_vec()),
                Some(Ok(Message::Text(text))) => {
                    Got::Control(serde_json::from_str(text.as_str()).unwrap())
                }
                Some(Ok(Message::Close(frame))) => Got::Closed(frame.map(|f| u16::from(f.code))),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => Got::Closed(None),
            };
            match &got {
                Got::Bytes(bytes) => {
                    self.screen.process(bytes);
                    self.tail.extend_from_slice(bytes);
                    let excess = self.tail.len().saturating_sub(4096);
                    self.tail.drain(..excess);
                    self.unacked += bytes.len() as u64;
                    if self.acks && self.unacked >= WINDOW / 4 {
                        self.ack().await;
                    }
                }
                Got::Control(value) if value["type"] == "snapshot" => self.snapshots += 1,
                _ => {}
            }
            return got;
        }
    }

    async fn ack(&mut self) {
        let bytes = std::mem::take(&mut self.unacked);
        self.text(json!({"type": "ack", "bytes": bytes})).await;
    }

    async fn text(&mut self, value: Value) {
        self.ws
            .send(Message::Text(value.to_string().into()))
            .await
            .unwrap();
    }

    async fn type_in(&mut self, keys: &str) {
        self.ws
            .send(Message::Binary(keys.as_bytes().to_vec().into()))
            .await
            .unwrap();
    }

    fn contents(&self) -> String {
        self.screen.screen().contents()
    }

    fn has_line(&self, line: &str) -> bool {
        self.contents().lines().any(|l| l.trim_end() == line)
    }

    /// Reads until the screen shows `line` as a whole line.
    async fn until_line(&mut self, line: &str) {
        patiently(&format!("the line {line:?}"), async {
            while !self.has_line(line) {
                if let Got::Closed(code) = self.next().await {
                    panic!("closed ({code:?}) before {line:?}: {}", self.contents());
                }
            }
        })
        .await;
    }

    /// Reads until `line` went by: in the raw output (it may scroll off in a flood), or on
    /// the screen (a snapshot may have replaced the bytes that carried it).
    async fn until_output(&mut self, line: &str) {
        let needle = format!("\r\n{line}\r\n");
        patiently(&format!("the output {line:?}"), async {
            loop {
                if String::from_utf8_lossy(&self.tail).contains(&needle) || self.has_line(line) {
                    return;
                }
                if let Got::Closed(code) = self.next().await {
                    panic!("closed ({code:?}) before {line:?}");
                }
            }
        })
        .await;
    }

    /// Reads until a control message of `kind`, returning it.
    async fn until_control(&mut self, kind: &str) -> Value {
        patiently(&format!("a {kind} message"), async {
            loop {
                match self.next().await {
                    Got::Control(value) if value["type"] == kind => return value,
                    Got::Closed(code) => panic!("closed ({code:?}) before a {kind} message"),
                    _ => {}
                }
            }
        })
        .await
    }

    /// Reads until the server closes; returns the close code.
    async fn until_closed(&mut self) -> Option<u16> {
        patiently("the close", async {
            loop {
                if let Got::Closed(code) = self.next().await {
                    return code;
                }
            }
        })
        .await
    }

    /// The prompt is back: the shell is idle.
    async fn until_prompt(&mut self) {
        patiently("the prompt", async {
            while !self.contents().trim_end().ends_with('$') {
                if let Got::Closed(code) = self.next().await {
                    panic!("closed ({code:?}) before the prompt");
                }
            }
        })
        .await;
    }
}

#[tokio::test]
async fn typing_a_command_shows_its_output() {
    let term = Terminal::start(0, config()).await;
    let mut client = term.connect().await;
    assert_eq!(client.hello["rows"], ROWS);
    assert_eq!(client.hello["cols"], COLS);
    assert_eq!(client.hello["window"], WINDOW);
    client.until_prompt().await;
    client.type_in("echo $((6*7))\r").await;
    client.until_line("42").await;
    client.text(json!({"type": "ping"})).await;
    client.until_control("pong").await;
    term.sandbox.destroy().await.unwrap();
}

#[tokio::test]
async fn a_resize_reaches_the_shell_and_every_client() {
    let term = Terminal::start(1, config()).await;
    let mut writer = term.connect().await;
    let mut viewer = term.viewer().await;
    writer.until_prompt().await;
    writer
        .text(json!({"type": "resize", "rows": 40, "cols": 100}))
        .await;
    let size = viewer.until_control("size").await;
    assert_eq!(
        (size["rows"].clone(), size["cols"].clone()),
        (json!(40), json!(100))
    );
    writer.screen.screen_mut().set_size(40, 100);
    writer.type_in("stty size\r").await;
    writer.until_line("40 100").await;
    assert_eq!(term.hub.size(), (40, 100));

    // Out-of-range sizes are clamped, not refused.
    writer
        .text(json!({"type": "resize", "rows": 0, "cols": 100000}))
        .await;
    writer.until_control("size").await;
    writer.screen.screen_mut().set_size(1, 500);
    assert_eq!(term.hub.size(), (1, 500));
    term.sandbox.destroy().await.unwrap();
}

#[tokio::test]
async fn a_read_only_viewer_sees_output_but_cannot_type_or_resize() {
    let term = Terminal::start(2, config()).await;
    let mut writer = term.connect().await;
    let mut viewer = term.viewer().await;
    writer.until_prompt().await;
    viewer.type_in("echo VIEWER$((1+1))\r").await;
    viewer
        .text(json!({"type": "resize", "rows": 10, "cols": 10}))
        .await;
    // Ping after both: the server has handled them once the pong arrives.
    viewer.text(json!({"type": "ping"})).await;
    viewer.until_control("pong").await;
    writer.type_in("echo WRITER$((1+1)); stty size\r").await;
    writer.until_line("24 80").await;
    viewer.until_line("24 80").await;
    assert!(viewer.has_line("WRITER2"), "{}", viewer.contents());
    for client in [&writer, &viewer] {
        assert!(
            !client.contents().contains("VIEWER"),
            "{}",
            client.contents()
        );
    }
    assert_eq!(term.hub.size(), (ROWS, COLS));
    term.sandbox.destroy().await.unwrap();
}

#[tokio::test]
async fn a_reconnect_gets_the_screen_and_cursor_back() {
    let term = Terminal::start(3, config()).await;
    let mut first = term.connect().await;
    first.until_prompt().await;
    for i in 0..30 {
        first.type_in(&format!("echo line-{i}\r")).await;
    }
    first.type_in("echo $((6*7))\r").await;
    first.until_line("42").await;
    first.until_prompt().await;
    let screen = first.contents();
    let cursor = first.screen.screen().cursor_position();
    drop(first);
    term.wait_for_clients(0).await;

    let second = term.connect().await;
    assert_eq!(second.contents(), screen);
    assert!(second.has_line("42"));
    assert_eq!(second.screen.screen().cursor_position(), cursor);
    // The lines that scrolled off the screen are in the new client's scrollback.
    let mut replay = second.screen;
    replay.screen_mut().set_scrollback(usize::MAX);
    assert!(replay.screen().scrollback() > 0);
    assert!(
        replay.screen().contents().contains("line-0"),
        "{}",
        replay.screen().contents()
    );
    term.sandbox.destroy().await.unwrap();
}

#[tokio::test]
async fn a_reconnect_restores_a_full_screen_program() {
    let term = Terminal::start(4, config()).await;
    let mut first = term.connect().await;
    first.until_prompt().await;
    first
        .type_in("printf '\\e[?1049h\\e[?2004h\\e[5;10HHELLO'; sleep 600\r")
        .await;
    patiently("HELLO on the alternate screen", async {
        while !(first.screen.screen().alternate_screen() && first.contents().contains("HELLO")) {
            first.next().await;
        }
    })
    .await;
    drop(first);
    term.wait_for_clients(0).await;

    // A fresh terminal fed only the reconnect snapshot.
    let second = term.connect().await;
    let screen = second.screen.screen();
    assert!(screen.alternate_screen());
    assert!(screen.bracketed_paste());
    let row: String = (9..14)
        .map(|col| screen.cell(4, col).unwrap().contents())
        .collect();
    assert_eq!(row, "HELLO", "{}", second.contents());
    assert_eq!(screen.cursor_position(), (4, 14));
    term.sandbox.destroy().await.unwrap();
}

#[tokio::test]
async fn a_flood_is_bounded_for_a_silent_client_and_ctrl_c_stops_it() {
    let term = Terminal::start(5, config()).await;
    let mut writer = term.connect().await;
    writer.until_prompt().await;

    // A client that reads but never acknowledges, as a frozen browser tab would.
    let mut silent = term.connect().await;
    silent.acks = false;
    let silent_bytes = Arc::new(AtomicU64::new(0));
    let silent_snapshots = Arc::new(AtomicU64::new(0));
    let silent_task = {
        let bytes = silent_bytes.clone();
        let snapshots = silent_snapshots.clone();
        tokio::spawn(async move {
            while let Some(Ok(message)) = silent.ws.next().await {
                match message {
                    Message::Binary(b) => {
                        bytes.fetch_add(b.len() as u64, Ordering::SeqCst);
                    }
                    Message::Text(t) if t.as_str().contains("snapshot") => {
                        snapshots.fetch_add(1, Ordering::SeqCst);
                    }
                    _ => {}
                }
            }
        })
    };

    writer.type_in("yes\r").await;
    let mut flooded = 0u64;
    // Sixteen windows: the silent client is long behind. (This client falls behind too, being
    // a debug build parsing every byte: it gets snapshots, as a slow browser would.)
    patiently("1 MiB of flood", async {
        while flooded < 1 << 20 {
            if let Got::Bytes(bytes) = writer.next().await {
                flooded += bytes.len() as u64;
            }
        }
    })
    .await;

    // The server still answers during the flood: a new client attaches and gets a pong.
    let mut third = term.connect().await;
    third.text(json!({"type": "ping"})).await;
    third.until_control("pong").await;

    // The silent client gets its window while the flood goes on. (Waited for before Ctrl-C:
    // under load the writer's megabyte can be mostly snapshots, less real output than a window.)
    patiently("the silent client's window", async {
        while silent_bytes.load(Ordering::SeqCst) < WINDOW {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;

    writer.type_in("\x03").await;
    writer.type_in("echo $((6*7))\r").await;
    writer.until_output("42").await;
    third.until_output("42").await;

    let silent_got = silent_bytes.load(Ordering::SeqCst);
    // The snapshot on attach, then at most a window plus one chunk (the agent reads at most
    // 64 KiB at a time), never the megabytes the others saw.
    let bound = WINDOW + (64 << 10) + (8 << 10);
    assert!(
        silent_got <= bound,
        "a silent client got {silent_got} bytes (bound {bound})"
    );
    assert_eq!(silent_snapshots.load(Ordering::SeqCst), 0);
    silent_task.abort();
    term.sandbox.destroy().await.unwrap();
}

#[tokio::test]
async fn a_second_client_is_served_while_a_background_job_floods() {
    let term = Terminal::start(11, config()).await;
    let mut flooder = term.connect().await;
    flooder.until_prompt().await;
    flooder.type_in("yes &\r").await;
    let mut flooded = 0u64;
    patiently("the flood", async {
        while flooded < 256 << 10 {
            if let Got::Bytes(bytes) = flooder.next().await {
                flooded += bytes.len() as u64;
            }
        }
    })
    .await;
    // The shell is still reading commands: another client stops the flood, then computes.
    // `yes` may die in the middle of a line, so the answer starts on a line of its own.
    let mut second = term.connect().await;
    second
        .type_in("kill $!; wait; printf '\\n%s\\n' $((6*7))\r")
        .await;
    second.until_output("42").await;
    flooder.until_output("42").await;
    term.sandbox.destroy().await.unwrap();
}

#[tokio::test]
async fn a_client_that_catches_up_gets_a_snapshot_instead_of_the_missed_bytes() {
    let term = Terminal::start(6, config()).await;
    let mut writer = term.connect().await;
    writer.until_prompt().await;
    let mut slow = term.connect().await;
    slow.acks = false;
    writer.type_in("seq 1 200000\r").await;
    writer.until_line("200000").await;
    writer.until_prompt().await;
    // The slow client now reads what it was sent (a window), then acknowledges it all.
    while slow.unacked < WINDOW {
        slow.next().await;
    }
    slow.ack().await;
    slow.until_control("snapshot").await;
    let snapshot = slow.next().await;
    assert!(matches!(snapshot, Got::Bytes(_)), "{snapshot:?}");
    assert_eq!(slow.snapshots, 1);
    assert_eq!(slow.contents(), writer.contents());
    assert!(slow.has_line("200000"));
    term.sandbox.destroy().await.unwrap();
}

#[tokio::test]
async fn bad_frames_close_only_that_client() {
    let term = Terminal::start(7, config()).await;
    let mut good = term.connect().await;
    good.until_prompt().await;

    let cases: Vec<(Message, u16, &str)> = vec![
        (Message::Text("not json".into()), 1008, "bad_message"),
        (
            Message::Text(r#"{"type":"resize","rows":-3,"cols":80}"#.into()),
            1008,
            "bad_message",
        ),
        (
            Message::Text(r#"{"type":"reboot"}"#.into()),
            1008,
            "bad_message",
        ),
        (
            Message::Text(
                format!(
                    r#"{{"type":"ping","x":"{}"}}"#,
                    "x".repeat(MAX_CONTROL_BYTES)
                )
                .into(),
            ),
            1009,
            "too_large",
        ),
        (
            Message::Binary(vec![b'a'; MAX_INPUT_BYTES + 1].into()),
            1009,
            "too_large",
        ),
    ];
    for (message, code, error) in cases {
        let mut bad = term.connect().await;
        bad.ws.send(message).await.unwrap();
        let reply = bad.until_control("error").await;
        assert_eq!(reply["code"], error, "{reply}");
        assert_eq!(bad.until_closed().await, Some(code));
    }
    // Far beyond the transport limit: the connection is dropped without reading it all.
    let mut huge = term.connect().await;
    let _ = huge
        .ws
        .send(Message::Binary(
            vec![b'a'; socket::MAX_MESSAGE_BYTES + 1].into(),
        ))
        .await;
    huge.until_closed().await;

    good.type_in("echo $((6*7))\r").await;
    good.until_line("42").await;
    assert!(
        !good.contents().contains("aaaa"),
        "no bad input reached the shell"
    );
    term.sandbox.destroy().await.unwrap();
}

#[tokio::test]
async fn clients_are_told_when_the_shell_exits() {
    let term = Terminal::start(8, config()).await;
    let mut client = term.connect().await;
    let mut viewer = term.viewer().await;
    client.until_prompt().await;
    client.type_in("exit 3\r").await;
    for c in [&mut client, &mut viewer] {
        let exit = c.until_control("exit").await;
        assert_eq!(exit, json!({"type": "exit", "code": 3, "signal": null}));
        assert_eq!(c.until_closed().await, Some(1000));
    }
    let Some(ShellEnd::Exited(exit)) = term.hub.exited() else {
        panic!("{:?}", term.hub.exited())
    };
    assert_eq!(exit.code, Some(3));
    assert!(matches!(term.hub.attach(false), Err(TerminalError::Closed)));
    // A late client is told the terminal has ended.
    let url = format!("ws://{}/terminal", term.addr);
    let (mut late, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let first = patiently("the late reply", late.next()).await;
    let Some(Ok(Message::Text(text))) = first else {
        panic!("{first:?}")
    };
    assert!(text.contains("ended"), "{text}");
    term.sandbox.destroy().await.unwrap();
}

#[tokio::test]
async fn the_shell_ends_after_the_grace_period_with_nobody_attached() {
    let term = Terminal::start(
        9,
        TerminalConfig {
            grace_secs: 1,
            ..config()
        },
    )
    .await;
    let mut client = term.connect().await;
    client.until_prompt().await;
    // A background job of the shell goes too (the shell passes SIGHUP on).
    client.type_in("sleep 600 &\r").await;
    client.until_prompt().await;
    drop(client);
    patiently("the hub closing", term.hub.closed()).await;
    let Some(ShellEnd::Exited(exit)) = term.hub.exited() else {
        panic!("{:?}", term.hub.exited())
    };
    assert_eq!(exit.signal, Some(libc::SIGHUP), "{exit:?}");
    assert!(matches!(term.hub.attach(false), Err(TerminalError::Closed)));
    patiently("the shell's job ending", async {
        loop {
            let ps = term
                .sandbox
                .spawn(ProcessSpec::new(["/bin/sh", "-c", "cat /proc/[0-9]*/comm"]))
                .await
                .unwrap()
                .output(b"")
                .await
                .unwrap();
            if !String::from_utf8_lossy(&ps.stdout).contains("sleep") {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    term.sandbox.destroy().await.unwrap();
}

#[tokio::test]
async fn a_client_attaching_within_the_grace_period_keeps_the_shell() {
    let term = Terminal::start(
        10,
        TerminalConfig {
            grace_secs: 3,
            ..config()
        },
    )
    .await;
    let mut client = term.connect().await;
    client.until_prompt().await;
    client.type_in("X=kept\r").await;
    client.until_prompt().await;
    drop(client);
    term.wait_for_clients(0).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let mut again = term.connect().await;
    // Past the first grace deadline while attached: the shell stays.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(!term.hub.is_closed());
    again.type_in("echo $X\r").await;
    again.until_line("kept").await;
    term.sandbox.destroy().await.unwrap();
}
