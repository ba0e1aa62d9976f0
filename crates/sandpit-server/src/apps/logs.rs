//! An app's log: the last lines its processes wrote (and what the platform did to it), kept in
//! memory per app across its instances, with a live feed for `logs?follow=true`.
//!
//! A flooding app cannot make the server store or forward without end: lines beyond a rate
//! (a token bucket) and beyond the ring's size are counted as dropped, not kept.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Instant;

use chrono::Utc;
use tokio::sync::broadcast;

use super::model::{AppLogs, LogLine};

/// Longest line kept; the rest of a longer one is cut.
const MAX_LINE: usize = 4096;
/// Lines per second an app may log, and the burst above it.
const RATE: f64 = 500.0;
const BURST: f64 = 2000.0;

pub struct Logs {
    inner: Mutex<Inner>,
    feed: broadcast::Sender<LogLine>,
    capacity: usize,
}

struct Inner {
    lines: VecDeque<LogLine>,
    next_seq: u64,
    dropped: u64,
    tokens: f64,
    refilled: Instant,
}

impl Logs {
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                lines: VecDeque::with_capacity(capacity.min(1024)),
                next_seq: 1,
                dropped: 0,
                tokens: BURST,
                refilled: Instant::now(),
            }),
            feed: broadcast::channel(256).0,
            capacity,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds one line (`stream`: stdout, stderr or platform). Platform lines are never
    /// rate-limited: they say what happened to the app.
    pub fn push(&self, stream: &'static str, text: &str) {
        let mut cut = text.trim_end_matches(['\r', '\n']);
        if cut.len() > MAX_LINE {
            let mut end = MAX_LINE;
            while !cut.is_char_boundary(end) {
                end -= 1;
            }
            cut = &cut[..end];
        }
        let line = {
            let mut inner = self.lock();
            let now = Instant::now();
            let elapsed = now.duration_since(inner.refilled).as_secs_f64();
            inner.tokens = (inner.tokens + elapsed * RATE).min(BURST);
            inner.refilled = now;
            if stream != "platform" {
                if inner.tokens < 1.0 {
                    inner.dropped += 1;
                    return;
                }
                inner.tokens -= 1.0;
            }
            let line = LogLine {
                seq: inner.next_seq,
                at: Utc::now(),
                stream: stream.to_owned(),
                text: cut.to_owned(),
            };
            inner.next_seq += 1;
            if inner.lines.len() == self.capacity {
                inner.lines.pop_front();
                inner.dropped += 1;
            }
            inner.lines.push_back(line.clone());
            line
        };
        // Nobody following is fine.
        let _ = self.feed.send(line);
    }

    /// The last `tail` lines kept, and how many were dropped.
    pub fn tail(&self, tail: usize) -> AppLogs {
        let inner = self.lock();
        let skip = inner.lines.len().saturating_sub(tail);
        AppLogs {
            lines: inner.lines.iter().skip(skip).cloned().collect(),
            dropped: inner.dropped,
        }
    }

    /// Lines after `seq` still kept (a follower catching up).
    pub fn since(&self, seq: u64) -> Vec<LogLine> {
        self.lock()
            .lines
            .iter()
            .filter(|l| l.seq > seq)
            .cloned()
            .collect()
    }

    /// The last `n` lines as text, for a failed deploy's report.
    pub fn last_text(&self, n: usize) -> Vec<String> {
        self.tail(n)
            .lines
            .into_iter()
            .map(|l| format!("[{}] {}", l.stream, l.text))
            .collect()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<LogLine> {
        self.feed.subscribe()
    }
}

/// Splits a process's output chunks into lines (a line may arrive in pieces).
#[derive(Default)]
pub struct LineSplitter {
    pending: Vec<u8>,
}

impl LineSplitter {
    /// Feeds a chunk; calls `line` for each complete line.
    pub fn feed(&mut self, chunk: &[u8], mut line: impl FnMut(&str)) {
        self.pending.extend_from_slice(chunk);
        while let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
            let rest = self.pending.split_off(end + 1);
            let whole = std::mem::replace(&mut self.pending, rest);
            line(&String::from_utf8_lossy(&whole));
        }
        if self.pending.len() > MAX_LINE {
            let whole = std::mem::take(&mut self.pending);
            line(&String::from_utf8_lossy(&whole));
        }
    }

    /// What is left when the stream ends.
    pub fn finish(&mut self, mut line: impl FnMut(&str)) {
        if !self.pending.is_empty() {
            let whole = std::mem::take(&mut self.pending);
            line(&String::from_utf8_lossy(&whole));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_keeps_the_newest_lines_and_counts_the_rest() {
        let logs = Logs::new(3);
        for i in 0..5 {
            logs.push("stdout", &format!("line {i}\n"));
        }
        let tail = logs.tail(10);
        let texts: Vec<_> = tail.lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["line 2", "line 3", "line 4"]);
        assert_eq!(tail.dropped, 2);
        assert_eq!(logs.since(4).len(), 1);
        assert_eq!(logs.tail(1).lines[0].seq, 5);
    }

    #[test]
    fn a_flood_is_cut_to_the_rate_but_platform_lines_pass() {
        let logs = Logs::new(100_000);
        for _ in 0..10_000 {
            logs.push("stdout", "spam");
        }
        logs.push("platform", "restarting");
        let tail = logs.tail(1);
        assert_eq!(tail.lines[0].text, "restarting");
        // The burst passes, then roughly the rate for the (short) time the loop took.
        assert!(tail.dropped >= 5000, "{}", tail.dropped);
    }

    #[test]
    fn lines_are_split_across_chunks_and_long_ones_cut() {
        let mut split = LineSplitter::default();
        let mut out = Vec::new();
        split.feed(b"hel", |l| out.push(l.to_owned()));
        split.feed(b"lo\nwor", |l| out.push(l.to_owned()));
        split.feed(b"ld\n\n", |l| out.push(l.to_owned()));
        split.finish(|l| out.push(l.to_owned()));
        assert_eq!(out, ["hello\n", "world\n", "\n"]);
        let mut long = Vec::new();
        split.feed(&vec![b'x'; MAX_LINE + 10], |l| long.push(l.len()));
        assert_eq!(long, [MAX_LINE + 10]);
        let logs = Logs::new(2);
        logs.push("stdout", &"é".repeat(MAX_LINE));
        assert!(logs.tail(1).lines[0].text.len() <= MAX_LINE);
    }
}
