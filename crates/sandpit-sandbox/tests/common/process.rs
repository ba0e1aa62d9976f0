//! Helpers about processes shared by the suites that watch them from the host; a separate
//! module so a suite that needs none of it does not carry dead code.

use std::time::Duration;

use sandpit_sandbox::{ExitInfo, Output, Process, ProcessEvent};

use crate::common::text;

/// Upper bound for a condition to come true.
const PATIENCE: Duration = Duration::from_secs(30);

pub fn describe(out: &Output) -> String {
    format!(
        "{:?}\nstdout: {}\nstderr: {}",
        out.exit,
        text(&out.stdout),
        text(&out.stderr)
    )
}

/// Whether host process `pid` exists and has not ended (zombies have).
pub fn is_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let (_, rest) = stat.rsplit_once(')')?;
            rest.split_whitespace().next().map(|state| state != "Z")
        })
        .unwrap_or(false)
}

/// Polls `check` until it holds; panics with `what` if it never does.
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Like [`eventually`], for a check that has to wait on something itself.
pub async fn eventually_async(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Live host pids whose command line has `arg` as one of its arguments.
pub fn host_pids_with_arg(arg: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if cmdline.split(|&b| b == 0).any(|a| a == arg.as_bytes()) && is_alive(pid) {
            pids.push(pid);
        }
    }
    pids
}

/// Waits for `process` to exit, passing over its output.
pub async fn exit_ignoring_output(process: &mut Process) -> ExitInfo {
    tokio::time::timeout(PATIENCE, async {
        loop {
            match process.next_event().await {
                Some(ProcessEvent::Output(..)) => {}
                Some(ProcessEvent::Exited(exit)) => return exit,
                None => panic!("the connection was lost before the process exited"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the process did not exit within {PATIENCE:?}"))
}
