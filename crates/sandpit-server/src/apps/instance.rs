//! A running app: its server process in its own sandbox, watched by a supervisor that keeps
//! its output in the app's log and restarts it with backoff when it crashes, and the
//! [`Upstream`] the proxy forwards to (connections into the sandbox's loopback).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sandpit_proxy::{Connect, Mode, Presentation, Upstream, UpstreamOptions};
use sandpit_sandbox::{
    ProcessEvent, ProcessLimits, ProcessSpec, Sandbox, Stream, spec::default_env,
};
use tokio::sync::watch;
use uuid::Uuid;

use super::logs::{LineSplitter, Logs};
use super::model::Runtime;

/// The port an app listens on inside its sandbox (also given as `$PORT`).
pub const PORT: u16 = 8000;

/// How to run one version: from its runtime, entry and what validation found.
#[derive(Debug, Clone)]
pub struct Plan {
    pub runtime: Runtime,
    pub entry: String,
    /// Python: `asgi3` or `wsgi`.
    pub interface: Option<String>,
    /// The path prefix the app is served under (the path mode), for frameworks that build
    /// URLs (uvicorn's `--root-path`).
    pub root_path: Option<String>,
    /// The owner's variables and secrets.
    pub env: BTreeMap<String, String>,
}

/// Runs uvicorn's command line for a WSGI app under a path prefix. uvicorn (0.17, Debian's)
/// gives a WSGI app an empty `SCRIPT_NAME` whatever `--root-path` says, so Flask would build
/// its links without the app's prefix; this sets it from the ASGI `root_path`.
const WSGI_UNDER_PREFIX: &str = r#"import sys
import uvicorn
import uvicorn.middleware.wsgi as wsgi

build = wsgi.build_environ


def build_environ(scope, message, body):
    environ = build(scope, message, body)
    if not environ.get("SCRIPT_NAME"):
        environ["SCRIPT_NAME"] = scope.get("root_path", "")
    return environ


wsgi.build_environ = build_environ
sys.argv[0] = "uvicorn"
uvicorn.main()
"#;

impl Plan {
    pub fn argv(&self) -> Vec<String> {
        let port = PORT.to_string();
        let mut argv: Vec<String> = match self.runtime {
            Runtime::Python => {
                let wsgi_under_prefix =
                    self.interface.as_deref() == Some("wsgi") && self.root_path.is_some();
                let mut argv: Vec<String> = if wsgi_under_prefix {
                    vec![
                        "/usr/bin/python3".into(),
                        "-c".into(),
                        WSGI_UNDER_PREFIX.into(),
                    ]
                } else {
                    vec!["/usr/bin/python3".into(), "-m".into(), "uvicorn".into()]
                };
                argv.extend([
                    "--host".into(),
                    "127.0.0.1".into(),
                    "--port".into(),
                    port,
                    "--interface".into(),
                    self.interface.clone().unwrap_or_else(|| "auto".into()),
                ]);
                if let Some(root) = &self.root_path {
                    argv.extend(["--root-path".into(), root.clone()]);
                }
                argv.push(self.entry.clone());
                return argv;
            }
            Runtime::Node => vec!["/usr/bin/node".into()],
            Runtime::Static => vec![
                "/usr/bin/python3".into(),
                "-m".into(),
                "http.server".into(),
                port,
                "--bind".into(),
                "127.0.0.1".into(),
                "--directory".into(),
                "/workspace".into(),
            ],
        };
        if self.runtime == Runtime::Node {
            argv.push(self.entry.clone());
        }
        argv
    }

    /// The command line as the app's log shows it (the WSGI launcher by name, not its text).
    pub fn describe(&self) -> String {
        self.argv()
            .iter()
            .map(|a| {
                if a == WSGI_UNDER_PREFIX {
                    "<uvicorn with SCRIPT_NAME from --root-path>"
                } else {
                    a.as_str()
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    pub fn env(&self) -> BTreeMap<String, String> {
        let mut env = default_env();
        env.extend(self.env.clone());
        for (k, v) in [
            ("PORT", PORT.to_string()),
            ("HOST", "127.0.0.1".into()),
            ("PYTHONUNBUFFERED", "1".into()),
            ("PYTHONDONTWRITEBYTECODE", "1".into()),
            ("PYTHONPATH", "/workspace".into()),
            ("NODE_PATH", "/usr/share/nodejs".into()),
            ("NODE_ENV", "production".into()),
        ] {
            env.insert(k.into(), v);
        }
        env
    }

    fn process(&self) -> ProcessSpec {
        let mut spec = ProcessSpec::new(self.argv());
        spec.env = self.env();
        spec.limits = ProcessLimits {
            wall_ms: None,
            cpu_ms: None,
            output_bytes: None,
            ..ProcessLimits::default()
        };
        spec
    }
}

/// How the instance is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Starting,
    Ready,
    /// Its process ended; it restarts after a backoff.
    Crashed,
    Stopped,
}

/// Why a new instance did not come up.
#[derive(Debug, Clone)]
pub struct StartFailure {
    pub code: &'static str,
    pub message: String,
}

/// Dials the app's port inside its sandbox.
struct SandboxPort(Arc<dyn Sandbox>);

#[async_trait]
impl Connect for SandboxPort {
    async fn connect(&self) -> std::io::Result<tokio::net::TcpStream> {
        self.0
            .connect(PORT)
            .await
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::ConnectionRefused, e.to_string()))
    }
}

pub struct Instance {
    pub app_id: Uuid,
    pub version: i64,
    pub started_at: DateTime<Utc>,
    sandbox: Arc<dyn Sandbox>,
    upstream: Upstream,
    health: watch::Sender<Health>,
    restarts: AtomicU32,
    stopping: AtomicBool,
    /// Set once the first start succeeded: only then does a crash restart the process.
    launched: AtomicBool,
    logs: Arc<Logs>,
    plan: Plan,
    /// Requests being forwarded (responses still streaming included).
    in_flight: Arc<AtomicUsize>,
}

/// One request in flight on an instance; dropped when its response has been sent.
pub struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Restart backoff: 1 s doubling to 30 s.
fn backoff(restarts: u32) -> Duration {
    Duration::from_secs(1u64 << restarts.min(5)).min(Duration::from_secs(30))
}

fn describe_exit(info: &sandpit_sandbox::ExitInfo) -> String {
    match (info.code, info.signal, info.limit) {
        (_, _, Some(limit)) => format!("was stopped by its {limit:?} limit"),
        (Some(code), _, _) => format!("exited with code {code}"),
        (_, Some(9), _) => "was killed (signal 9; out of memory?)".into(),
        (_, Some(sig), _) => format!("was ended by signal {sig}"),
        _ => "ended".into(),
    }
}

impl Instance {
    /// Starts `plan`'s server in `sandbox` (which already holds the files) and waits until it
    /// answers an HTTP request. On failure the sandbox is destroyed.
    pub async fn launch(
        app_id: Uuid,
        version: i64,
        sandbox: Arc<dyn Sandbox>,
        plan: Plan,
        logs: Arc<Logs>,
        start_timeout: Duration,
        response_timeout: Duration,
    ) -> Result<Arc<Self>, StartFailure> {
        let upstream = Upstream::new(
            Arc::new(SandboxPort(sandbox.clone())),
            UpstreamOptions {
                max_idle: 8,
                connect_timeout: Duration::from_secs(2),
                response_timeout,
            },
        );
        let instance = Arc::new(Self {
            app_id,
            version,
            started_at: Utc::now(),
            sandbox,
            upstream,
            health: watch::channel(Health::Starting).0,
            restarts: AtomicU32::new(0),
            stopping: AtomicBool::new(false),
            launched: AtomicBool::new(false),
            logs,
            plan,
            in_flight: Arc::default(),
        });
        let result = instance.clone().first_start(start_timeout).await;
        match result {
            Ok(()) => {
                instance.launched.store(true, Ordering::SeqCst);
                instance.health.send_replace(Health::Ready);
                Ok(instance)
            }
            Err(failure) => {
                instance.stop().await;
                Err(failure)
            }
        }
    }

    async fn first_start(self: Arc<Self>, timeout: Duration) -> Result<(), StartFailure> {
        self.logs.push(
            "platform",
            &format!(
                "starting version {}: {}",
                self.version,
                self.plan.describe()
            ),
        );
        let process = self
            .sandbox
            .spawn(self.plan.process())
            .await
            .map_err(|e| StartFailure {
                code: "start_failed",
                message: format!("the app's server could not be started: {e}"),
            })?;
        let (exited_tx, mut exited) = watch::channel(None::<String>);
        tokio::spawn(self.clone().supervise(process, exited_tx));
        let deadline = tokio::time::Instant::now() + timeout;
        let mut pause = Duration::from_millis(20);
        loop {
            if let Some(how) = exited.borrow().clone() {
                return Err(StartFailure {
                    code: "app_exited",
                    message: format!("the app {how} before it answered on port {PORT}"),
                });
            }
            if self.probe().await {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                let ports = self.sandbox.listening_ports().await;
                let message = match ports.as_slice() {
                    [] => format!(
                        "the app did not listen on port {PORT} within {} s (it must serve \
                         on 127.0.0.1:$PORT)",
                        timeout.as_secs()
                    ),
                    ports if !ports.contains(&PORT) => format!(
                        "the app listens on port {}, not on {PORT}: use the PORT variable",
                        ports
                            .iter()
                            .map(u16::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    _ => format!(
                        "the app listens on port {PORT} but answered no HTTP request within \
                         {} s",
                        timeout.as_secs()
                    ),
                };
                return Err(StartFailure {
                    code: "start_timeout",
                    message,
                });
            }
            let _ = tokio::time::timeout(pause, exited.changed()).await;
            pause = (pause * 2).min(Duration::from_millis(200));
        }
    }

    /// Whether the app answers `GET /` with any HTTP response.
    async fn probe(&self) -> bool {
        let req = http::Request::get("/")
            .header(http::header::HOST, "localhost")
            .header(http::header::USER_AGENT, "sandpit-probe")
            .body(http_body_util::Empty::<bytes::Bytes>::new());
        let Ok(req) = req else { return false };
        let presentation = Presentation {
            mode: Mode::Domain,
            platform_cookies: Arc::from(Vec::new()),
            client_ip: None,
            scheme: "http",
            host: "localhost".into(),
        };
        match tokio::time::timeout(
            Duration::from_secs(2),
            self.upstream.forward(req, &presentation),
        )
        .await
        {
            Ok(Ok(response)) => {
                // Read the body so the connection goes back to the pool.
                let _ = http_body_util::BodyExt::collect(response.into_body()).await;
                true
            }
            _ => false,
        }
    }

    /// Follows the process: its output into the log; when it ends, restarts it (after the
    /// first successful start) with backoff, until the instance stops.
    async fn supervise(
        self: Arc<Self>,
        mut process: sandpit_sandbox::Process,
        exited: watch::Sender<Option<String>>,
    ) {
        loop {
            let mut out = LineSplitter::default();
            let mut err = LineSplitter::default();
            let mut how = "ended".to_owned();
            while let Some(event) = process.next_event().await {
                match event {
                    ProcessEvent::Output(Stream::Stdout, bytes) => {
                        out.feed(&bytes, |l| self.logs.push("stdout", l));
                    }
                    ProcessEvent::Output(Stream::Stderr, bytes) => {
                        err.feed(&bytes, |l| self.logs.push("stderr", l));
                    }
                    ProcessEvent::Exited(info) => {
                        how = describe_exit(&info);
                        break;
                    }
                }
            }
            out.finish(|l| self.logs.push("stdout", l));
            err.finish(|l| self.logs.push("stderr", l));
            if self.stopping.load(Ordering::SeqCst) {
                return;
            }
            exited.send_replace(Some(how.clone()));
            if !self.launched.load(Ordering::SeqCst) {
                self.logs.push("platform", &format!("the app {how}"));
                return;
            }
            let restarts = self.restarts.fetch_add(1, Ordering::SeqCst);
            let wait = backoff(restarts);
            self.health.send_replace(Health::Crashed);
            self.logs.push(
                "platform",
                &format!("the app {how}; restarting in {} s", wait.as_secs()),
            );
            tokio::time::sleep(wait).await;
            if self.stopping.load(Ordering::SeqCst) {
                return;
            }
            match self.sandbox.spawn(self.plan.process()).await {
                Ok(next) => {
                    process = next;
                    self.health.send_replace(Health::Starting);
                    let me = self.clone();
                    tokio::spawn(async move { me.await_ready().await });
                }
                Err(e) => {
                    self.logs
                        .push("platform", &format!("the app could not be restarted: {e}"));
                    self.health.send_replace(Health::Stopped);
                    return;
                }
            }
        }
    }

    /// After a restart: Ready once it answers again.
    async fn await_ready(self: Arc<Self>) {
        let mut pause = Duration::from_millis(50);
        while *self.health.borrow() == Health::Starting {
            if self.probe().await {
                self.health
                    .send_if_modified(|h| std::mem::replace(h, Health::Ready) == Health::Starting);
                return;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }

    pub fn health(&self) -> Health {
        *self.health.borrow()
    }

    /// Waits (up to `timeout`) for the instance to be ready; false if it is not by then.
    pub async fn ready_within(&self, timeout: Duration) -> bool {
        let mut health = self.health.subscribe();
        tokio::time::timeout(timeout, health.wait_for(|h| *h == Health::Ready))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    pub fn restarts(&self) -> u32 {
        self.restarts.load(Ordering::SeqCst)
    }

    /// Counts a request until the returned guard is dropped.
    pub fn begin(&self) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(self.in_flight.clone())
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    pub fn upstream(&self) -> &Upstream {
        &self.upstream
    }

    /// The sandbox it runs in (the apps bench dials the app's port directly, as the proxy's
    /// connector does, to compare).
    pub fn sandbox(&self) -> &Arc<dyn Sandbox> {
        &self.sandbox
    }

    /// Stops the process and destroys the sandbox. Idempotent.
    pub async fn stop(&self) {
        if self.stopping.swap(true, Ordering::SeqCst) {
            return;
        }
        self.health.send_replace(Health::Stopped);
        if let Err(e) = self.sandbox.destroy().await {
            tracing::warn!(app.id = %self.app_id, error = %e, "destroying an app's sandbox");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(runtime: Runtime, entry: &str) -> Plan {
        Plan {
            runtime,
            entry: entry.into(),
            interface: Some("wsgi".into()),
            root_path: Some("/user/ada/app/hi".into()),
            env: BTreeMap::from([
                ("GREETING".into(), "hi".into()),
                ("PORT".into(), "1".into()),
            ]),
        }
    }

    #[test]
    fn each_runtime_runs_its_server_on_the_port() {
        let mut asgi = plan(Runtime::Python, "main:app");
        asgi.interface = Some("asgi3".into());
        assert_eq!(
            asgi.argv(),
            [
                "/usr/bin/python3",
                "-m",
                "uvicorn",
                "--host",
                "127.0.0.1",
                "--port",
                "8000",
                "--interface",
                "asgi3",
                "--root-path",
                "/user/ada/app/hi",
                "main:app"
            ]
        );
        // WSGI under a prefix: the same command line through the launcher that passes the
        // prefix on as SCRIPT_NAME.
        let wsgi = plan(Runtime::Python, "main:app");
        let argv = wsgi.argv();
        assert_eq!(argv[..2], ["/usr/bin/python3", "-c"]);
        assert_eq!(argv[2], WSGI_UNDER_PREFIX);
        assert_eq!(
            argv[3..],
            asgi.argv()[3..]
                .iter()
                .map(|a| a.replace("asgi3", "wsgi"))
                .collect::<Vec<_>>()[..]
        );
        assert!(!wsgi.describe().contains("import"), "{}", wsgi.describe());
        let mut domain = wsgi.clone();
        domain.root_path = None;
        assert_eq!(domain.argv()[..3], ["/usr/bin/python3", "-m", "uvicorn"]);
        assert_eq!(
            plan(Runtime::Node, "src/app.js").argv(),
            ["/usr/bin/node", "src/app.js"]
        );
        assert!(
            plan(Runtime::Static, "index.html")
                .argv()
                .contains(&"http.server".to_owned())
        );
        let env = plan(Runtime::Node, "a.js").env();
        assert_eq!(env["PORT"], "8000", "the platform's PORT wins");
        assert_eq!(env["GREETING"], "hi");
        assert_eq!(env["NODE_PATH"], "/usr/share/nodejs");
    }

    #[test]
    fn restarts_back_off_to_half_a_minute() {
        let waits: Vec<u64> = (0..8).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30, 30]);
    }
}
