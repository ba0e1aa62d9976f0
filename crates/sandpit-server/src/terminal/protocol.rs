//! The terminal protocol's decisions, free of I/O (see `docs/terminal-protocol.md`): parsing
//! and bounding what a client sends, the messages the server sends, per-client flow control
//! ([`Flow`]: window, acknowledgements, resynchronisation by snapshot) and the token bucket
//! ([`TokenBucket`]) that paces how fast the hub consumes a shell's output. The hub and the
//! WebSocket driver do the I/O around these.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Largest binary (keyboard input) frame a client may send. A paste larger than this is a
/// client that does not chunk its input, or an attack.
pub const MAX_INPUT_BYTES: usize = 64 << 10;
/// Largest text (control) frame a client may send; every valid control message is far smaller.
pub const MAX_CONTROL_BYTES: usize = 1 << 10;
/// Terminal sizes are clamped to `1..=MAX_DIMENSION` rows and columns.
pub const MAX_DIMENSION: u16 = 500;

/// WebSocket close code for a message that breaks the protocol (RFC 6455 §7.4.1).
pub const CLOSE_POLICY: u16 = 1008;
/// WebSocket close code for a message that is too big to process.
pub const CLOSE_TOO_BIG: u16 = 1009;

/// What a client asks for in a text frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Resize the terminal (already clamped to `1..=MAX_DIMENSION`).
    Resize {
        rows: u16,
        cols: u16,
    },
    /// The client has consumed (rendered) this many more bytes of binary frames.
    Ack {
        bytes: u64,
    },
    Ping,
}

/// The wire form of [`Control`]; sizes arrive unclamped.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum ControlWire {
    Resize { rows: u64, cols: u64 },
    Ack { bytes: u64 },
    Ping,
}

/// A client broke the protocol; the connection is closed with [`Violation::close_code`] after
/// an `error` message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    #[error("input frames may hold at most {MAX_INPUT_BYTES} bytes")]
    InputTooLarge,
    #[error("control messages may hold at most {MAX_CONTROL_BYTES} bytes")]
    ControlTooLarge,
    #[error("not a valid control message: {0}")]
    Malformed(String),
}

impl Violation {
    pub fn close_code(&self) -> u16 {
        match self {
            Self::InputTooLarge | Self::ControlTooLarge => CLOSE_TOO_BIG,
            Self::Malformed(_) => CLOSE_POLICY,
        }
    }

    /// The stable code of the `error` message.
    pub fn error_code(&self) -> &'static str {
        match self {
            Self::InputTooLarge | Self::ControlTooLarge => "too_large",
            Self::Malformed(_) => "bad_message",
        }
    }
}

/// Checks a binary (input) frame's size.
pub fn check_input(bytes: &[u8]) -> Result<(), Violation> {
    if bytes.len() > MAX_INPUT_BYTES {
        return Err(Violation::InputTooLarge);
    }
    Ok(())
}

/// Parses a text (control) frame.
pub fn parse_control(text: &str) -> Result<Control, Violation> {
    if text.len() > MAX_CONTROL_BYTES {
        return Err(Violation::ControlTooLarge);
    }
    let wire: ControlWire =
        serde_json::from_str(text).map_err(|e| Violation::Malformed(e.to_string()))?;
    Ok(match wire {
        ControlWire::Resize { rows, cols } => {
            let (rows, cols) = clamp_size(rows, cols);
            Control::Resize { rows, cols }
        }
        ControlWire::Ack { bytes } => Control::Ack { bytes },
        ControlWire::Ping => Control::Ping,
    })
}

/// Clamps a requested size to `1..=MAX_DIMENSION` each way: a zero-sized terminal confuses
/// programs and a huge one costs memory in the server's screen model.
pub fn clamp_size(rows: u64, cols: u64) -> (u16, u16) {
    let clamp = |v: u64| v.clamp(1, u64::from(MAX_DIMENSION)) as u16;
    (clamp(rows), clamp(cols))
}

/// What the server sends in text frames.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// First message on every connection; a binary snapshot follows.
    Hello {
        rows: u16,
        cols: u16,
        read_only: bool,
        /// Bytes the client may have unacknowledged before output stops for it.
        window: u64,
    },
    /// The next binary frame is a snapshot that redraws the whole screen: the client fell a
    /// window behind and missed output.
    Snapshot,
    /// Someone resized the terminal.
    Size {
        rows: u16,
        cols: u16,
    },
    /// The shell ended; the server closes the connection next.
    Exit {
        code: Option<i32>,
        signal: Option<i32>,
    },
    Pong,
    Error {
        code: &'static str,
        message: String,
    },
}

impl ServerMessage {
    pub fn to_json(&self) -> String {
        // Serialising these plain structs cannot fail; an empty object is a harmless fallback.
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned())
    }
}

/// Whether an output chunk goes to a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deliver {
    Send,
    /// The client is a window behind: it misses this chunk and gets a snapshot later.
    Drop,
}

/// Per-client flow control. Every binary frame (output or snapshot) counts against a window
/// until the client acknowledges it. While less than a window is in flight output is sent;
/// once a window is in flight the client is *behind*: output is dropped for it (so neither the
/// server's queue nor the browser's grows) until its acknowledgements bring what is in flight
/// down to half a window, when it gets a fresh snapshot instead of the bytes it missed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    window: u64,
    sent: u64,
    acked: u64,
    behind: bool,
}

impl Flow {
    pub fn new(window: u64) -> Self {
        Self {
            window: window.max(1),
            sent: 0,
            acked: 0,
            behind: false,
        }
    }

    /// Bytes sent and not yet acknowledged.
    pub fn in_flight(&self) -> u64 {
        self.sent - self.acked
    }

    pub fn is_behind(&self) -> bool {
        self.behind
    }

    /// An output chunk of `len` bytes is ready. The window may be overshot by one chunk, so
    /// a client gets at most a window plus a chunk beyond its acknowledgements.
    pub fn offer(&mut self, len: u64) -> Deliver {
        if !self.behind && self.in_flight() >= self.window {
            self.behind = true;
        }
        if self.behind {
            return Deliver::Drop;
        }
        self.sent += len;
        Deliver::Send
    }

    /// A snapshot of `len` bytes was sent (on attach or to resynchronise).
    pub fn sent_snapshot(&mut self, len: u64) {
        self.sent += len;
    }

    /// The client acknowledged `bytes` more. Returns whether to send it a snapshot now (and
    /// then record it with [`Flow::sent_snapshot`]). Acknowledging more than was sent (a
    /// confused or hostile client) only empties what is in flight.
    pub fn ack(&mut self, bytes: u64) -> bool {
        self.acked = self.acked.saturating_add(bytes).min(self.sent);
        if self.behind && self.in_flight() <= self.window / 2 {
            self.behind = false;
            return true;
        }
        false
    }
}

/// A token bucket measured in bytes: [`TokenBucket::take`] says how long to pause after
/// consuming a chunk so that, over time, at most `rate` bytes per second pass, with bursts of
/// up to `burst` bytes at full speed (an editor redrawing, `cat` of a short file).
#[derive(Debug, Clone, Copy)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(rate_bytes_per_sec: u64, burst_bytes: u64, now: Instant) -> Self {
        let burst = burst_bytes.max(1) as f64;
        Self {
            rate: rate_bytes_per_sec.max(1) as f64,
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Consumes `bytes` (the bucket may go into debt) and returns how long to wait before
    /// consuming more.
    pub fn take(&mut self, now: Instant, bytes: u64) -> Duration {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.tokens -= bytes as f64;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIB: u64 = 1 << 10;

    #[test]
    fn output_flows_until_a_window_is_in_flight() {
        let mut flow = Flow::new(256 * KIB);
        for _ in 0..4 {
            assert_eq!(flow.offer(64 * KIB), Deliver::Send);
        }
        assert_eq!(flow.in_flight(), 256 * KIB);
        assert_eq!(flow.offer(1), Deliver::Drop);
        assert!(flow.is_behind());
        assert_eq!(
            flow.in_flight(),
            256 * KIB,
            "dropped bytes are not in flight"
        );
    }

    #[test]
    fn the_window_is_overshot_by_at_most_one_chunk() {
        let mut flow = Flow::new(100);
        assert_eq!(flow.offer(99), Deliver::Send);
        assert_eq!(flow.offer(50), Deliver::Send);
        assert_eq!(flow.offer(1), Deliver::Drop);
        assert_eq!(flow.in_flight(), 149);
    }

    #[test]
    fn acks_in_batches_keep_output_flowing() {
        let mut flow = Flow::new(256 * KIB);
        for _ in 0..1000 {
            assert_eq!(flow.offer(16 * KIB), Deliver::Send);
            if flow.in_flight() >= 64 * KIB {
                assert!(!flow.ack(64 * KIB), "no snapshot for a client keeping up");
            }
        }
        assert!(!flow.is_behind());
    }

    #[test]
    fn a_client_behind_gets_a_snapshot_once_half_the_window_is_acked() {
        let mut flow = Flow::new(100);
        assert_eq!(flow.offer(100), Deliver::Send);
        assert_eq!(flow.offer(10), Deliver::Drop);
        assert!(!flow.ack(40), "60 still in flight, more than half a window");
        assert_eq!(
            flow.offer(10),
            Deliver::Drop,
            "still behind: no stale bytes"
        );
        assert!(flow.ack(10), "50 in flight: resynchronise");
        assert!(!flow.is_behind());
        flow.sent_snapshot(30);
        assert_eq!(flow.in_flight(), 80);
        assert_eq!(
            flow.offer(5),
            Deliver::Send,
            "live again after the snapshot"
        );
        assert!(!flow.ack(85), "a client keeping up needs no snapshot");
    }

    #[test]
    fn a_snapshot_larger_than_the_window_only_delays_output() {
        let mut flow = Flow::new(100);
        flow.sent_snapshot(300);
        assert_eq!(flow.offer(1), Deliver::Drop);
        assert!(!flow.ack(100));
        assert!(
            flow.ack(200),
            "resynchronised once the snapshot is consumed"
        );
    }

    #[test]
    fn over_acknowledging_only_empties_the_window() {
        let mut flow = Flow::new(100);
        flow.offer(10);
        assert!(!flow.ack(u64::MAX));
        assert_eq!(flow.in_flight(), 0);
        assert!(!flow.ack(u64::MAX));
        assert_eq!(flow.offer(100), Deliver::Send);
        assert_eq!(
            flow.in_flight(),
            100,
            "past acks give no credit for the future"
        );
        assert_eq!(flow.offer(1), Deliver::Drop);
    }

    #[test]
    fn a_zero_window_is_one_byte() {
        let mut flow = Flow::new(0);
        assert_eq!(flow.offer(5), Deliver::Send);
        assert_eq!(flow.offer(5), Deliver::Drop);
    }

    #[test]
    fn control_messages_parse() {
        assert_eq!(
            parse_control(r#"{"type":"resize","rows":40,"cols":100}"#),
            Ok(Control::Resize {
                rows: 40,
                cols: 100
            })
        );
        assert_eq!(
            parse_control(r#"{"type":"ack","bytes":65536}"#),
            Ok(Control::Ack { bytes: 65536 })
        );
        assert_eq!(parse_control(r#"{"type":"ping"}"#), Ok(Control::Ping));
    }

    #[test]
    fn sizes_are_clamped() {
        assert_eq!(
            parse_control(r#"{"type":"resize","rows":0,"cols":100000}"#),
            Ok(Control::Resize {
                rows: 1,
                cols: MAX_DIMENSION
            })
        );
        assert_eq!(clamp_size(u64::MAX, 0), (MAX_DIMENSION, 1));
        assert_eq!(clamp_size(24, 80), (24, 80));
    }

    #[test]
    fn bad_control_messages_are_violations() {
        for bad in [
            "",
            "not json",
            "[]",
            r#"{"type":"resize","rows":-1,"cols":80}"#,
            r#"{"type":"resize","rows":24.5,"cols":80}"#,
            r#"{"type":"resize","rows":24}"#,
            r#"{"type":"ack","bytes":"many"}"#,
            r#"{"type":"ack","bytes":1,"extra":true}"#,
            r#"{"type":"launch"}"#,
            r#"{"rows":24,"cols":80}"#,
        ] {
            let err = parse_control(bad).expect_err(bad);
            assert_eq!(err.close_code(), CLOSE_POLICY, "{bad}");
            assert_eq!(err.error_code(), "bad_message");
        }
    }

    #[test]
    fn oversized_frames_are_violations() {
        let big = format!(r#"{{"type":"ping","pad":"{}"}}"#, "x".repeat(2000));
        assert_eq!(parse_control(&big), Err(Violation::ControlTooLarge));
        assert_eq!(Violation::ControlTooLarge.close_code(), CLOSE_TOO_BIG);
        assert_eq!(check_input(&vec![0; MAX_INPUT_BYTES]), Ok(()));
        assert_eq!(
            check_input(&vec![0; MAX_INPUT_BYTES + 1]),
            Err(Violation::InputTooLarge)
        );
        assert_eq!(Violation::InputTooLarge.close_code(), CLOSE_TOO_BIG);
    }

    #[test]
    fn server_messages_serialise_as_documented() {
        let hello = ServerMessage::Hello {
            rows: 24,
            cols: 80,
            read_only: false,
            window: 262144,
        };
        assert_eq!(
            hello.to_json(),
            r#"{"type":"hello","rows":24,"cols":80,"read_only":false,"window":262144}"#
        );
        assert_eq!(
            ServerMessage::Exit {
                code: Some(0),
                signal: None
            }
            .to_json(),
            r#"{"type":"exit","code":0,"signal":null}"#
        );
        assert_eq!(ServerMessage::Snapshot.to_json(), r#"{"type":"snapshot"}"#);
        assert_eq!(ServerMessage::Pong.to_json(), r#"{"type":"pong"}"#);
        assert_eq!(
            ServerMessage::Error {
                code: "too_large",
                message: "m".into()
            }
            .to_json(),
            r#"{"type":"error","code":"too_large","message":"m"}"#
        );
    }

    fn ms(d: Duration) -> u64 {
        (d.as_secs_f64() * 1000.0).round() as u64
    }

    #[test]
    fn the_bucket_allows_a_burst_then_paces() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(1000, 500, start);
        assert_eq!(bucket.take(start, 500), Duration::ZERO);
        assert_eq!(ms(bucket.take(start, 100)), 100);
        // After the pause the debt is paid; the next chunk waits for its own tokens.
        let later = start + Duration::from_millis(100);
        assert_eq!(ms(bucket.take(later, 250)), 250);
    }

    #[test]
    fn the_bucket_refills_up_to_its_burst() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(1000, 500, start);
        assert_eq!(bucket.take(start, 500), Duration::ZERO);
        let much_later = start + Duration::from_secs(60);
        assert_eq!(bucket.take(much_later, 500), Duration::ZERO);
        assert!(
            bucket.take(much_later, 1) > Duration::ZERO,
            "no credit beyond the burst"
        );
    }
}
