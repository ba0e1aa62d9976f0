//! The `image` check: builds the learner's Dockerfile with the session's own container engine
//! (`docker` in a box of the `docker` environment), weighs and inspects the image, runs it,
//! asks it for its health path on its port, and stops it with SIGTERM as `docker stop` does.
//!
//! The judge's container runs with no network of its own (`--network none`) and is probed from
//! inside its network namespace (`podman unshare nsenter`), so a container the learner started
//! on the same port never stands in for it, and the judge's never collides with theirs. What a
//! published port would not reach (an app listening on 127.0.0.1 only) is told apart by the
//! container's own socket table.

use std::time::{Duration, Instant};

use sandpit_sandbox::spec::containers;
use sandpit_sandbox::{ProcessEvent, ProcessLimits, ProcessSpec, Sandbox, SandboxError};

use super::{Check, CheckRun, PROBE, Probe, Verdict, parse_response, tail};
use crate::judge::Failure;
use crate::lab::CheckKind;

/// The tag the judge builds (one per session engine, so rebuilding reuses its layer cache).
const TAG: &str = "localhost/sandpit-check:latest";
/// The judge's container.
const CONTAINER: &str = "sandpit-check";
/// Build output kept for notes, and the longest line passed on as progress.
const LOG_BYTES: usize = 64 << 10;
const PROGRESS_LINE_CHARS: usize = 300;
/// Largest file a build may write (the engine's disk is the real bound).
const BUILD_FILE_BYTES: u64 = 8 << 30;

/// What the image check reads from `docker image inspect`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Facts {
    pub size_bytes: u64,
    pub layers: usize,
    pub user: String,
    pub exposed: Vec<String>,
    pub healthcheck: bool,
}

/// What `docker image inspect --format` prints: one JSON object of just the facts (the whole
/// inspection, with the image's history, can run to many kilobytes).
const FACTS_FORMAT: &str = r#"{"size":{{.Size}},"layers":{{len .RootFS.Layers}},"user":{{json .Config.User}},"ports":{{json .Config.ExposedPorts}},"health":{{json .Config.Healthcheck}}}"#;

/// Reads the facts out of what [`FACTS_FORMAT`] printed.
pub(super) fn facts(json: &str) -> Option<Facts> {
    let line = json.lines().rev().find(|l| l.starts_with('{'))?;
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    let healthcheck = match v["health"]["Test"].as_array() {
        Some(test) => !test.is_empty() && test[0] != "NONE",
        None => false,
    };
    Some(Facts {
        size_bytes: v["size"].as_u64()?,
        layers: v["layers"].as_u64()? as usize,
        user: v["user"].as_str().unwrap_or_default().to_owned(),
        exposed: v["ports"]
            .as_object()
            .map(|ports| ports.keys().cloned().collect())
            .unwrap_or_default(),
        healthcheck,
    })
}

/// Whether an image's `USER` is root: unset, `root`, uid 0, with or without a group.
pub(super) fn is_root(user: &str) -> bool {
    let name = user.split(':').next().unwrap_or_default().trim();
    name.is_empty() || name == "root" || name == "0"
}

/// The local addresses listening on `port` in a `/proc/net/tcp{,6}` table.
pub(super) fn listeners(table: &str, port: u16) -> Vec<String> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let local = fields.nth(1)?;
            let state = fields.nth(1)?;
            let (addr, p) = local.rsplit_once(':')?;
            (state == "0A" && u16::from_str_radix(p, 16).ok()? == port).then(|| addr.to_owned())
        })
        .collect()
}

/// Whether every listener is on a loopback address (`127.x` or `::1`), as the kernel writes
/// them (IPv4 in little-endian hex; IPv6 as four little-endian words).
pub(super) fn loopback_only(addresses: &[String]) -> bool {
    !addresses.is_empty()
        && addresses.iter().all(|a| {
            (a.len() == 8 && a.ends_with("7F"))
                || a == "00000000000000000000000001000000"
                || (a.len() == 32 && a.starts_with("0000000000000000FFFF0000") && a.ends_with("7F"))
        })
}

/// What the check's processes get: the engine's environment, the workspace as home.
fn spec(argv: &[&str], limits: ProcessLimits) -> ProcessSpec {
    let mut spec = ProcessSpec::new(argv.iter().copied());
    containers::apply_env(&mut spec);
    spec.env
        .insert("HOME".into(), sandpit_sandbox::spec::WORKSPACE_DIR.into());
    spec.limits = limits;
    spec
}

fn limits(budget: Duration) -> ProcessLimits {
    let ms = budget.as_millis().max(1) as u64;
    ProcessLimits {
        wall_ms: Some(ms),
        cpu_ms: None,
        file_size_bytes: BUILD_FILE_BYTES,
        open_files: 4096,
        output_bytes: Some(4 << 20),
    }
}

struct Ran {
    code: Option<i32>,
    timed_out: bool,
    out: String,
}

/// Runs an engine command to its end (or the deadline); `progress` gets each output line.
async fn docker(
    sandbox: &dyn Sandbox,
    argv: &[&str],
    deadline: Instant,
    run: &mut CheckRun,
    mut progress: Option<&mut (dyn FnMut(String) + Send)>,
) -> Result<Ran, SandboxError> {
    let budget = deadline.saturating_duration_since(Instant::now());
    let mut process = match sandbox.spawn(spec(argv, limits(budget))).await {
        Ok(p) => p,
        Err(SandboxError::Spawn(why)) => {
            return Ok(Ran {
                code: None,
                timed_out: false,
                out: format!("{} could not start: {why}", argv[0]),
            });
        }
        Err(e) => return Err(e),
    };
    let mut log = Vec::new();
    let mut pending = Vec::new();
    let exit = loop {
        match process.next_event().await {
            Some(ProcessEvent::Output(_, bytes)) => {
                log.extend_from_slice(&bytes);
                if log.len() > 2 * LOG_BYTES {
                    log.drain(..log.len() - LOG_BYTES);
                }
                if let Some(progress) = progress.as_mut() {
                    pending.extend_from_slice(&bytes);
                    while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                        let line: Vec<u8> = pending.drain(..=end).collect();
                        let line = String::from_utf8_lossy(&line);
                        let line = line.trim_end();
                        if !line.is_empty() && !is_engine_noise(line) {
                            progress(line.chars().take(PROGRESS_LINE_CHARS).collect());
                        }
                    }
                }
            }
            Some(ProcessEvent::Exited(exit)) => break exit,
            None => return Err(SandboxError::Setup("the sandbox was lost".into())),
        }
    };
    run.program_ms += exit.wall_ms as f64;
    let out = String::from_utf8_lossy(&log)
        .lines()
        .filter(|l| !is_engine_noise(l))
        .collect::<Vec<_>>()
        .join("\n");
    Ok(Ran {
        code: exit.code,
        timed_out: matches!(
            exit.limit,
            Some(sandpit_sandbox::LimitKind::WallTime | sandpit_sandbox::LimitKind::CpuTime)
        ),
        out,
    })
}

/// Rootless Podman's warnings about the box it runs in, which say nothing about the image.
fn is_engine_noise(line: &str) -> bool {
    line.starts_with("time=\"")
        && (line.contains("level=warning")
            || line.contains("level=error msg=\"cannot find UID/GID"))
        || line.starts_with("Resource limits are not supported")
}

/// The last line that says what went wrong in a build's output.
fn build_error(log: &str) -> String {
    log.lines()
        .rev()
        .find(|l| l.starts_with("Error:") || l.contains("error"))
        .or_else(|| log.lines().next_back())
        .unwrap_or("no output")
        .trim()
        .to_owned()
}

pub(super) async fn check(
    sandbox: &dyn Sandbox,
    check: &Check,
    run: &mut CheckRun,
    progress: &mut (dyn FnMut(String) + Send),
) -> Result<Verdict, SandboxError> {
    let CheckKind::Image {
        dockerfile,
        port,
        health_path,
        max_size_mb,
        max_layers,
        non_root,
        healthcheck,
        stop_timeout_s,
    } = &check.kind
    else {
        unreachable!("image::check is only called for image checks");
    };
    let deadline = Instant::now() + check.timeout;
    let engine = format!("{}/docker", containers::BIN_DIR);
    let probe_engine = docker(
        sandbox,
        &["/usr/bin/test", "-x", &engine],
        deadline,
        run,
        None,
    )
    .await?;
    if probe_engine.code != Some(0) {
        return Ok(Verdict::Skip(
            "this session has no container engine (the lab's environment is not `docker`, or \
             this server cannot run one); the Dockerfile's static rules are checked instead"
                .into(),
        ));
    }
    if super::file_state(sandbox, dockerfile).await?.is_err() {
        return Ok(check.fail_coded(
            "no_dockerfile",
            format!("there is no {dockerfile} to build"),
            "Write the Dockerfile in the workspace's top folder (or where the lab says).",
        ));
    }

    // Build.
    progress(format!("docker build -f {dockerfile} ."));
    let file = dockerfile.to_string();
    let built = docker(
        sandbox,
        &["docker", "build", "--tag", TAG, "--file", &file, "."],
        deadline,
        run,
        Some(progress),
    )
    .await?;
    if built.timed_out {
        run.notes
            .push(format!("build log (the end):\n{}", tail(&built.out)));
        return Ok(Verdict::TimedOut);
    }
    if built.code != Some(0) {
        run.notes
            .push(format!("build log (the end):\n{}", tail(&built.out)));
        return Ok(Verdict::Fail(vec![Failure {
            code: format!("{}.build_failed", check.code),
            message: format!("docker build failed: {}", build_error(&built.out)),
            hint: check.hint.clone().unwrap_or_else(|| {
                "Read the build log in the notes: the failing instruction is the last STEP it \
                 names. Base images here are the ones `docker images` lists (no registry is \
                 reachable)."
                    .into()
            }),
        }]));
    }

    // Weigh and inspect.
    let inspected = docker(
        sandbox,
        &["docker", "image", "inspect", "--format", FACTS_FORMAT, TAG],
        deadline,
        run,
        None,
    )
    .await?;
    let Some(facts) = facts(&inspected.out) else {
        return Ok(check.fail(format!(
            "the built image could not be inspected: {}",
            tail(&inspected.out)
        )));
    };
    run.sizes.push(("image_bytes".into(), facts.size_bytes));
    run.sizes.push(("image_layers".into(), facts.layers as u64));
    let mut failures = Vec::new();
    let mut fail = |suffix: &str, message: String, hint: &str| {
        failures.push(Failure {
            code: format!("{}.{suffix}", check.code),
            message,
            hint: hint.to_owned(),
        });
    };
    let mb = |bytes: u64| bytes as f64 / 1e6;
    if let Some(max) = max_size_mb
        && facts.size_bytes > max * 1_000_000
    {
        fail(
            "too_large",
            format!(
                "the image is {:.0} MB; at most {max} MB is allowed",
                mb(facts.size_bytes)
            ),
            "Start from a slim base image, install with --no-cache-dir, and in a multi-stage \
             build copy only what the app needs into the last stage.",
        );
    }
    if let Some(max) = max_layers
        && facts.layers > *max as usize
    {
        fail(
            "too_many_layers",
            format!(
                "the image has {} layers; at most {max} are allowed",
                facts.layers
            ),
            "Each RUN, COPY and ADD makes a layer: join related RUN commands with &&.",
        );
    }
    if *non_root && is_root(&facts.user) {
        fail(
            "runs_as_root",
            match facts.user.as_str() {
                "" => "the image runs as root (it sets no USER)".into(),
                user => format!("the image runs as root (USER {user})"),
            },
            "Create a user (`RUN useradd --uid 10001 app`) and switch to it with `USER 10001` \
             after the steps that need root.",
        );
    }
    if let Some(port) = port
        && !facts.exposed.iter().any(|p| p == &format!("{port}/tcp"))
    {
        fail(
            "port_not_exposed",
            format!(
                "the image does not EXPOSE {port} (it exposes {})",
                if facts.exposed.is_empty() {
                    "nothing".to_owned()
                } else {
                    facts.exposed.join(", ")
                }
            ),
            "Add `EXPOSE` with the port the app listens on.",
        );
    }
    if *healthcheck && !facts.healthcheck {
        fail(
            "no_healthcheck",
            "the image has no HEALTHCHECK".into(),
            "Add a HEALTHCHECK whose command asks the app's health endpoint, e.g. with Python's \
             urllib (slim images have no curl).",
        );
    }
    if !failures.is_empty() {
        return Ok(Verdict::Fail(failures));
    }
    let Some(port) = *port else {
        return Ok(Verdict::Pass);
    };

    // Run it, with a network namespace of its own.
    let _ = docker(
        sandbox,
        &["docker", "rm", "--force", CONTAINER],
        deadline,
        run,
        None,
    )
    .await?;
    progress(format!("docker run {TAG}"));
    let started = docker(
        sandbox,
        &[
            "docker",
            "run",
            "--detach",
            "--name",
            CONTAINER,
            "--network",
            "none",
            TAG,
        ],
        deadline,
        run,
        None,
    )
    .await?;
    if started.code != Some(0) {
        return Ok(check.fail_coded(
            "start_failed",
            format!("the container did not start: {}", build_error(&started.out)),
            "Check CMD (or ENTRYPOINT): the program must exist in the image.",
        ));
    }
    let verdict = run_and_stop(
        sandbox,
        check,
        run,
        progress,
        port,
        health_path.as_deref(),
        *stop_timeout_s,
        deadline,
    )
    .await;
    let _ = docker(
        sandbox,
        &["docker", "rm", "--force", CONTAINER],
        deadline + Duration::from_secs(10),
        run,
        None,
    )
    .await;
    verdict
}

#[expect(
    clippy::too_many_arguments,
    reason = "one step of one check, split for reading"
)]
async fn run_and_stop(
    sandbox: &dyn Sandbox,
    check: &Check,
    run: &mut CheckRun,
    progress: &mut (dyn FnMut(String) + Send),
    port: u16,
    health_path: Option<&str>,
    stop_timeout_s: Option<u32>,
    deadline: Instant,
) -> Result<Verdict, SandboxError> {
    let logs = |out: &str| format!("the container's log (the end):\n{}", tail(out));
    let path = health_path.unwrap_or("/");
    let mut pause = Duration::from_millis(50);
    let (answer, netns) = loop {
        let state = docker(
            sandbox,
            &[
                "docker",
                "inspect",
                "--format",
                "{{.State.Running}} {{.State.Pid}} {{.State.ExitCode}}",
                CONTAINER,
            ],
            deadline,
            run,
            None,
        )
        .await?;
        let mut words = state.out.split_whitespace();
        let (running, pid, exit) = (words.next(), words.next(), words.next());
        if running != Some("true") {
            let log = docker(
                sandbox,
                &["docker", "logs", "--tail", "50", CONTAINER],
                deadline,
                run,
                None,
            )
            .await?;
            run.notes.push(logs(&log.out));
            return Ok(check.fail_coded(
                "exited",
                format!(
                    "the container stopped before it answered on port {port} (exit code {})",
                    exit.unwrap_or("unknown")
                ),
                "Run the image yourself (`docker run --rm IMAGE`) and read what it prints.",
            ));
        }
        let netns = format!("--net=/proc/{}/ns/net", pid.unwrap_or("0"));
        let port_text = port.to_string();
        let probed = docker(
            sandbox,
            &[
                "podman",
                "unshare",
                "nsenter",
                &netns,
                "--",
                "/bin/bash",
                "-c",
                PROBE,
                "probe",
                &port_text,
                path,
            ],
            deadline,
            run,
            None,
        )
        .await?;
        if probed.code != Some(111) && !probed.out.is_empty() {
            break (parse_response(probed.out.as_bytes()), netns);
        }
        if Instant::now() + pause >= deadline {
            let bound = listening(
                sandbox,
                &netns,
                port,
                deadline + Duration::from_secs(2),
                run,
            )
            .await?;
            let log = docker(
                sandbox,
                &["docker", "logs", "--tail", "50", CONTAINER],
                deadline + Duration::from_secs(4),
                run,
                None,
            )
            .await?;
            run.notes.push(logs(&log.out));
            return Ok(check
                .fail_coded(
                    "no_answer",
                    format!("nothing in the container answers on port {port}"),
                    "The app must listen on 0.0.0.0 at the port the image EXPOSEs.",
                )
                .or_loopback(check, &bound, port));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(500));
    };
    // Listening, but only where no published port reaches?
    let bound = listening(sandbox, &netns, port, deadline, run).await?;
    if loopback_only(&bound) {
        return Ok(loopback_failure(check, port));
    }
    match answer {
        Probe::Answer { status, .. } if (200..400).contains(&status) => {}
        Probe::Answer { status, body } => {
            return Ok(check.fail_coded(
                "unhealthy",
                format!(
                    "GET {path} on port {port} answered {status}: {}",
                    tail(&String::from_utf8_lossy(&body))
                ),
                "The health endpoint must answer 200 when the app is ready.",
            ));
        }
        Probe::Garbage(why) => {
            return Ok(check.fail_coded(
                "unhealthy",
                format!("GET {path} on port {port}: {why}"),
                "The app must answer HTTP on its port.",
            ));
        }
        Probe::Refused => unreachable!("a refused probe keeps waiting"),
    }

    // Stop it as `docker stop` does: SIGTERM, then SIGKILL after the grace period.
    let Some(grace) = stop_timeout_s else {
        return Ok(Verdict::Pass);
    };
    progress(format!("docker stop --time {grace} {CONTAINER}"));
    let grace_text = grace.to_string();
    let _ = docker(
        sandbox,
        &["docker", "stop", "--time", &grace_text, CONTAINER],
        deadline + Duration::from_secs(u64::from(grace) + 5),
        run,
        None,
    )
    .await?;
    let exit = docker(
        sandbox,
        &[
            "docker",
            "inspect",
            "--format",
            "{{.State.ExitCode}}",
            CONTAINER,
        ],
        deadline + Duration::from_secs(u64::from(grace) + 10),
        run,
        None,
    )
    .await?;
    if exit.out.trim() == "137" {
        return Ok(check.fail_coded(
            "ignores_sigterm",
            format!("the container did not stop within {grace} s of SIGTERM and was killed"),
            "A program that is PID 1 gets no default SIGTERM handling: handle SIGTERM in the \
             app (Python: `signal.signal(signal.SIGTERM, …)`), or use the exec form of CMD so \
             no shell sits in between.",
        ));
    }
    Ok(Verdict::Pass)
}

/// The addresses listening on `port` in the container's network namespace (`netns` is
/// nsenter's `--net=…`), from its own socket tables.
async fn listening(
    sandbox: &dyn Sandbox,
    netns: &str,
    port: u16,
    deadline: Instant,
    run: &mut CheckRun,
) -> Result<Vec<String>, SandboxError> {
    let table = docker(
        sandbox,
        &[
            "podman",
            "unshare",
            "nsenter",
            netns,
            "--",
            "/bin/cat",
            "/proc/self/net/tcp",
            "/proc/self/net/tcp6",
        ],
        deadline,
        run,
        None,
    )
    .await?;
    Ok(listeners(&table.out, port))
}

fn loopback_failure(check: &Check, port: u16) -> Verdict {
    check.fail_coded(
        "loopback_only",
        format!(
            "the app listens on port {port} of 127.0.0.1 only, which a published port cannot reach"
        ),
        "Listen on 0.0.0.0 (all interfaces) inside a container.",
    )
}

impl Verdict {
    /// A "no answer" that was really an app on the loopback address only.
    fn or_loopback(self, check: &Check, bound: &[String], port: u16) -> Verdict {
        if loopback_only(bound) {
            loopback_failure(check, port)
        } else {
            self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INSPECT: &str = r#"{"size":52000000,"layers":3,"user":"10001:10001","ports":{"8000/tcp":{}},"health":{"Test":["CMD","python","-c","x"],"Interval":30000000000}}"#;

    #[test]
    fn facts_come_from_the_inspect_json() {
        let f = facts(INSPECT).unwrap();
        assert_eq!(
            f,
            Facts {
                size_bytes: 52_000_000,
                layers: 3,
                user: "10001:10001".into(),
                exposed: vec!["8000/tcp".into()],
                healthcheck: true,
            }
        );
        let bare =
            facts(r#"{"size":1,"layers":1,"user":"","ports":null,"health":{"Test":["NONE"]}}"#)
                .unwrap();
        assert!(!bare.healthcheck);
        assert!(bare.exposed.is_empty());
        assert_eq!(bare.user, "");
        assert!(facts("not json").is_none());
        assert!(facts(r#"{"layers":1}"#).is_none(), "no size, no facts");
        let none = facts(r#"{"size":1,"layers":1,"user":"","ports":null,"health":null}"#).unwrap();
        assert!(!none.healthcheck);
    }

    #[test]
    fn root_is_told_by_name_or_number() {
        for root in ["", "root", "0", "0:0", "root:staff", " 0 "] {
            assert!(is_root(root), "{root:?}");
        }
        for user in ["10001", "app", "10001:10001", "nobody"] {
            assert!(!is_root(user), "{user:?}");
        }
    }

    #[test]
    fn listeners_and_loopback_are_read_from_the_socket_table() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 1 1 0 100 0 0 10 0
   1: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 3 1 0 100 0 0 10 0
   2: 0100007F:1F40 0100007F:D431 01 00000000:00000000 00:00000000 00000000  1000        0 2 1 0 20 4 30 10 -1
";
        assert_eq!(listeners(table, 8000), vec!["0100007F"]);
        assert_eq!(listeners(table, 8080), vec!["00000000"]);
        assert!(listeners(table, 9000).is_empty());
        assert!(loopback_only(&listeners(table, 8000)));
        assert!(!loopback_only(&listeners(table, 8080)));
        assert!(
            !loopback_only(&[]),
            "nothing listening is not 'loopback only'"
        );
        assert!(loopback_only(&["00000000000000000000000001000000".into()]));
        assert!(!loopback_only(&["00000000000000000000000000000000".into()]));
    }

    #[test]
    fn a_build_error_is_the_last_line_that_says_so() {
        let log = "STEP 1/3: FROM python:3.11-slim\nSTEP 2/3: RUN pip install flask\nERROR: No matching distribution\nError: building at STEP \"RUN pip install flask\": exit status 1";
        assert_eq!(
            build_error(log),
            "Error: building at STEP \"RUN pip install flask\": exit status 1"
        );
        assert_eq!(build_error(""), "no output");
        assert!(is_engine_noise("time=\"2026\" level=warning msg=\"x\""));
        assert!(!is_engine_noise("STEP 1/3: FROM x"));
    }
}
