//! What the tests of the real `sandpit serve` share: a server process on a port of its
//! choosing, its log, a SIGKILL, a graceful stop when dropped.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Hang guard for start-up; never a speed target.
const START_GUARD: Duration = Duration::from_secs(120);

/// One `sandpit serve` process.
pub struct Server {
    child: Child,
    pub pid: u32,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    log: PathBuf,
}

impl Server {
    /// Starts `sandpit serve` in `root` with a clean environment plus `env` (its data
    /// directory, database … are the caller's), logging JSON to `log`, and waits for its
    /// "listening" line, which names the bound address.
    pub async fn start(root: &Path, log: PathBuf, env: &[(&str, String)]) -> Self {
        let out = File::create(&log).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_sandpit"));
        command
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("SANDPIT_LOG__FORMAT", "json")
            .env("SANDPIT_SERVER__BIND", "127.0.0.1:0");
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command
            .current_dir(root)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            // Sandbox agents inherit stderr: a file, so no pipe is held open by them.
            .stderr(out)
            .spawn()
            .unwrap();
        let pid = child.id();
        let mut server = Self {
            child,
            pid,
            base: String::new(),
            log,
        };
        let deadline = Instant::now() + START_GUARD;
        loop {
            if let Some(addr) = listening_addr(&server.log) {
                server.base = format!("http://{addr}");
                return server;
            }
            if let Some(status) = server.child.try_wait().unwrap() {
                panic!(
                    "{} exited during start-up ({status}):\n{}",
                    server.log.display(),
                    server.log_tail()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} did not start:\n{}",
                server.log.display(),
                server.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// How the process ended, if it has.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// SIGKILL: no shutdown code runs, as in a crash or an OOM kill.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    /// A graceful stop (the server removes its sandboxes and cgroups), SIGKILL if it hangs.
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_some() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The address in the "listening" JSON log line, once it is written.
fn listening_addr(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|entry| entry["fields"]["message"] == "listening")
        .and_then(|entry| entry["fields"]["addr"].as_str().map(str::to_owned))
}
