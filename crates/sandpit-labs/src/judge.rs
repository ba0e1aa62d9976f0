//! The judge: runs a step's checks inside a sandbox and turns what it finds into failures
//! `{code, message, hint}`, per-check reports and notes.
//!
//! Every check that runs code does it as its own process in the sandbox (the learner's uid,
//! the workspace as cwd) with its own wall/CPU/output limits; the judge only ever reads capped
//! output and files through the agent, so a learner's program can fail its own checks but not
//! steer the judge. A check that overruns its deadline is cut there and reported with the code
//! `<code>.timeout`.

use std::time::{Duration, Instant};

use sandpit_sandbox::protocol::FileError;
use sandpit_sandbox::{
    ExitInfo, LimitKind, Output, ProcessEvent, ProcessLimits, ProcessSpec, Sandbox, SandboxError,
    WorkspacePath,
};
use serde::Serialize;
use tokio::sync::mpsc::UnboundedSender;

use crate::dockerfile;
use crate::lab::{Check, CheckKind, Step};

mod image;

/// Output a check process may write before it is stopped.
const CHECK_OUTPUT_BYTES: u64 = 256 << 10;
/// Output quoted back as feedback or notes.
const FEEDBACK_CHARS: usize = 2_000;
/// Largest file a file check reads.
const MAX_READ_BYTES: u64 = 4 << 20;
/// Pauses between probes of an HTTP check: short at first (an app answers within tens of
/// milliseconds of starting), doubling up to the longest.
const PROBE_FIRST_PAUSE: Duration = Duration::from_millis(5);
const PROBE_LONGEST_PAUSE: Duration = Duration::from_millis(100);
const SIGKILL: i32 = 9;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    pub code: String,
    pub message: String,
    pub hint: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Passed,
    Failed,
    /// Cut at its deadline (a failure too).
    TimedOut,
    /// Not run here (an `image` check without a container engine); not a failure.
    Skipped,
}

/// What one check did.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub code: String,
    pub kind: &'static str,
    pub status: CheckStatus,
    pub elapsed_ms: f64,
    /// Time spent waiting on processes in the sandbox (the learner's program, a test run, the
    /// app starting); the rest of `elapsed_ms` is the judge's own overhead.
    pub program_ms: f64,
    /// Why it was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Sizes it measured (file bytes, image size), by name.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sizes: Vec<(String, u64)>,
}

/// The verdict on one step.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub passed: bool,
    pub failures: Vec<Failure>,
    pub checks: Vec<CheckReport>,
    /// Logs worth showing: a failing test's output, an app's last lines, skipped checks.
    pub notes: Vec<String>,
    pub total_ms: f64,
    pub program_ms: f64,
    pub overhead_ms: f64,
}

/// Progress while a step is judged.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum JudgeEvent {
    Started {
        step: String,
        checks: usize,
    },
    CheckStarted {
        index: usize,
        code: String,
        kind: &'static str,
    },
    CheckFinished {
        index: usize,
        code: String,
        status: CheckStatus,
        elapsed_ms: f64,
    },
    /// A line of what a running check does (an image check's build output).
    CheckOutput {
        index: usize,
        code: String,
        line: String,
    },
}

/// Runs every check of `step` in order (all of them, so the learner sees every failure).
pub async fn judge_step(
    sandbox: &dyn Sandbox,
    step: &Step,
    events: Option<&UnboundedSender<JudgeEvent>>,
) -> Result<Outcome, SandboxError> {
    let send = |e: JudgeEvent| {
        if let Some(tx) = events {
            let _ = tx.send(e);
        }
    };
    let started = Instant::now();
    send(JudgeEvent::Started {
        step: step.id.clone(),
        checks: step.checks.len(),
    });
    let mut outcome = Outcome {
        passed: true,
        failures: Vec::new(),
        checks: Vec::new(),
        notes: Vec::new(),
        total_ms: 0.0,
        program_ms: 0.0,
        overhead_ms: 0.0,
    };
    for (index, check) in step.checks.iter().enumerate() {
        send(JudgeEvent::CheckStarted {
            index,
            code: check.code.clone(),
            kind: check.kind.name(),
        });
        let t = Instant::now();
        let mut run = CheckRun::default();
        // The check's own limits end its processes at the deadline; this bound also covers
        // waiting on the agent, with a second's grace for the processes' own timeout to win.
        let mut progress = |line: String| {
            send(JudgeEvent::CheckOutput {
                index,
                code: check.code.clone(),
                line,
            })
        };
        let verdict = match tokio::time::timeout(
            // An image check cleans up after its deadline (stops its container).
            check.timeout
                + Duration::from_secs(if matches!(check.kind, CheckKind::Image { .. }) {
                    30
                } else {
                    1
                }),
            run_check(sandbox, check, &mut run, &mut progress),
        )
        .await
        {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => return Err(e),
            Err(_) => Verdict::TimedOut,
        };
        let elapsed_ms = ms(t.elapsed());
        let status = match &verdict {
            Verdict::Pass => CheckStatus::Passed,
            Verdict::Skip(_) => CheckStatus::Skipped,
            Verdict::TimedOut => CheckStatus::TimedOut,
            Verdict::Fail(_) => CheckStatus::Failed,
        };
        let mut reason = None;
        match verdict {
            Verdict::Pass => {}
            Verdict::Skip(why) => {
                outcome.notes.push(format!(
                    "{} ({}) skipped: {why}",
                    check.code,
                    check.kind.name()
                ));
                reason = Some(why);
            }
            Verdict::TimedOut => outcome.failures.push(Failure {
                code: format!("{}.timeout", check.code),
                message: format!(
                    "the check did not finish within {:.1} s",
                    check.timeout.as_secs_f64()
                ),
                hint: timeout_hint(check),
            }),
            Verdict::Fail(failures) => outcome.failures.extend(failures),
        }
        outcome.notes.append(&mut run.notes);
        outcome.program_ms += run.program_ms;
        outcome.checks.push(CheckReport {
            code: check.code.clone(),
            kind: check.kind.name(),
            status,
            elapsed_ms,
            program_ms: run.program_ms,
            reason,
            sizes: run.sizes,
        });
        send(JudgeEvent::CheckFinished {
            index,
            code: check.code.clone(),
            status,
            elapsed_ms,
        });
    }
    outcome.passed = outcome.failures.is_empty();
    outcome.total_ms = ms(started.elapsed());
    outcome.overhead_ms = (outcome.total_ms - outcome.program_ms).max(0.0);
    Ok(outcome)
}

fn timeout_hint(check: &Check) -> String {
    let mut hint = String::from(
        "Something kept running: look for an endless loop, a program waiting for input, or a \
         server that never starts answering.",
    );
    if let Some(h) = &check.hint {
        hint.push(' ');
        hint.push_str(h);
    }
    hint
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

enum Verdict {
    Pass,
    Fail(Vec<Failure>),
    TimedOut,
    Skip(String),
}

/// What a check gathered besides its verdict.
#[derive(Default)]
struct CheckRun {
    program_ms: f64,
    notes: Vec<String>,
    sizes: Vec<(String, u64)>,
}

impl Check {
    fn fail(&self, message: impl Into<String>) -> Verdict {
        Verdict::Fail(vec![Failure {
            code: self.code.clone(),
            message: message.into(),
            hint: self.hint.clone().unwrap_or_default(),
        }])
    }

    /// The author's message, or `fallback` when there is none.
    fn fail_default(&self, fallback: impl Into<String>) -> Verdict {
        match &self.message {
            Some(m) => self.fail(m.clone()),
            None => self.fail(fallback),
        }
    }

    fn fail_coded(&self, suffix: &str, message: String, hint: &str) -> Verdict {
        Verdict::Fail(vec![Failure {
            code: format!("{}.{suffix}", self.code),
            message,
            hint: hint.to_owned(),
        }])
    }
}

async fn run_check(
    sandbox: &dyn Sandbox,
    check: &Check,
    run: &mut CheckRun,
    progress: &mut (dyn FnMut(String) + Send),
) -> Result<Verdict, SandboxError> {
    match &check.kind {
        CheckKind::FileExists { path } => Ok(match file_state(sandbox, path).await? {
            Ok(()) => Verdict::Pass,
            Err(_) => check.fail_default(format!("{path} does not exist")),
        }),
        CheckKind::FileAbsent { path } => Ok(match file_state(sandbox, path).await? {
            Ok(()) => check.fail_default(format!("{path} should not exist")),
            Err(_) => Verdict::Pass,
        }),
        CheckKind::FileMatches { path, pattern } => {
            let data = match read(sandbox, path).await? {
                Ok(d) => d,
                Err(why) => {
                    return Ok(check.fail(format!(
                        "{}: {path} {why}",
                        check.message.as_deref().unwrap_or("cannot check the file")
                    )));
                }
            };
            run.sizes.push((path.to_string(), data.len() as u64));
            let text = String::from_utf8_lossy(&data);
            Ok(if pattern.is_match(&text) {
                Verdict::Pass
            } else {
                check.fail_default(format!("{path} does not match {}", pattern.as_str()))
            })
        }
        CheckKind::Command {
            argv,
            script,
            stdin,
            exit_code,
            stdout_contains,
            stdout_matches,
        } => {
            let limits = check_limits(check.timeout);
            let out = execute(sandbox, argv.clone(), stdin.as_deref(), limits).await?;
            run.program_ms += out.exit.wall_ms as f64;
            command_verdict(
                check,
                &out,
                *script,
                *exit_code,
                stdout_contains.as_deref(),
                stdout_matches.as_ref(),
                run,
            )
        }
        CheckKind::Http { .. } => http_check(sandbox, check, run).await,
        CheckKind::Dockerfile {
            path,
            rules,
            dockerignore_excludes,
        } => dockerfile_check(sandbox, check, path, rules, dockerignore_excludes, run).await,
        CheckKind::Image { .. } => image::check(sandbox, check, run, progress).await,
    }
}

/// `Ok(Ok(()))` when the path exists (a link counts, it is not followed), `Ok(Err(why))` when
/// it does not or cannot be reached.
async fn file_state(
    sandbox: &dyn Sandbox,
    path: &WorkspacePath,
) -> Result<Result<(), String>, SandboxError> {
    match sandbox.stat(path).await {
        Ok(_) => Ok(Ok(())),
        Err(SandboxError::File(e)) => Ok(Err(e.to_string())),
        Err(e) => Err(e),
    }
}

async fn read(
    sandbox: &dyn Sandbox,
    path: &WorkspacePath,
) -> Result<Result<Vec<u8>, String>, SandboxError> {
    match sandbox.read_file(path, MAX_READ_BYTES).await {
        Ok(d) => Ok(Ok(d)),
        Err(SandboxError::File(FileError::NotFound)) => Ok(Err("does not exist".into())),
        Err(SandboxError::File(FileError::TooLarge(n))) => {
            Ok(Err(format!("is too large to check (over {n} bytes)")))
        }
        Err(SandboxError::File(e)) => Ok(Err(format!("cannot be read: {e}"))),
        Err(e) => Err(e),
    }
}

fn check_limits(timeout: Duration) -> ProcessLimits {
    let ms = timeout.as_millis() as u64;
    ProcessLimits {
        wall_ms: Some(ms),
        cpu_ms: Some(ms),
        file_size_bytes: 64 << 20,
        open_files: 1024,
        output_bytes: Some(CHECK_OUTPUT_BYTES),
    }
}

struct Finished {
    exit: ExitInfo,
    stdout: String,
    stderr: String,
    /// Why it never ran (the program does not exist …).
    not_run: Option<String>,
}

/// Runs `argv` to its end in the sandbox and collects its output
/// ([`sandpit_sandbox::Process::output`]).
async fn run_to_end(
    sandbox: &dyn Sandbox,
    argv: Vec<String>,
    stdin: &[u8],
    limits: ProcessLimits,
) -> Result<Output, SandboxError> {
    let mut spec = ProcessSpec::new(argv);
    spec.limits = limits;
    sandbox.spawn(spec).await?.output(stdin).await
}

/// A check's program run to its end, its output as text; a program that could not start is
/// a result too (the check fails with why).
async fn execute(
    sandbox: &dyn Sandbox,
    argv: Vec<String>,
    stdin: Option<&str>,
    limits: ProcessLimits,
) -> Result<Finished, SandboxError> {
    let stdin = stdin.unwrap_or_default().as_bytes();
    match run_to_end(sandbox, argv, stdin, limits).await {
        Ok(out) => Ok(Finished {
            exit: out.exit,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            not_run: None,
        }),
        Err(SandboxError::Spawn(why)) => Ok(Finished {
            exit: ExitInfo::default(),
            stdout: String::new(),
            stderr: String::new(),
            not_run: Some(why),
        }),
        Err(e) => Err(e),
    }
}

/// The last `FEEDBACK_CHARS` characters of `text`, trimmed.
fn tail(text: &str) -> String {
    let text = text.trim();
    let count = text.chars().count();
    if count <= FEEDBACK_CHARS {
        return text.to_owned();
    }
    let skip = count - FEEDBACK_CHARS;
    format!("…{}", text.chars().skip(skip).collect::<String>())
}

fn command_verdict(
    check: &Check,
    out: &Finished,
    script: bool,
    exit_code: i32,
    contains: Option<&str>,
    matches: Option<&regex::Regex>,
    run: &mut CheckRun,
) -> Result<Verdict, SandboxError> {
    if let Some(why) = &out.not_run {
        return Ok(check.fail(format!("the check could not start its program: {why}")));
    }
    match out.exit.limit {
        Some(LimitKind::WallTime | LimitKind::CpuTime) => return Ok(Verdict::TimedOut),
        Some(LimitKind::Output) => {
            return Ok(check.fail_coded(
                "output_limit",
                format!(
                    "the check printed more than {} KiB and was stopped",
                    CHECK_OUTPUT_BYTES >> 10
                ),
                "Remove prints in loops, or endless output, from your program.",
            ));
        }
        Some(LimitKind::Memory) => {
            return Ok(check.fail_coded(
                "memory_limit",
                "the check ran out of memory".into(),
                "Your program uses more memory than the lab allows; look for data that grows without end.",
            ));
        }
        None => {}
    }
    let output = [out.stdout.as_str(), out.stderr.as_str()]
        .iter()
        .filter(|s| !s.trim().is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("\n");
    let code_ok = out.exit.code == Some(exit_code);
    let contains_ok = contains.is_none_or(|c| out.stdout.contains(c));
    let matches_ok = matches.is_none_or(|r| r.is_match(&out.stdout));
    if code_ok && contains_ok && matches_ok {
        return Ok(Verdict::Pass);
    }
    if !output.is_empty() {
        run.notes
            .push(format!("{} output:\n{}", check.code, tail(&output)));
    }
    let what = match (out.exit.code, out.exit.signal) {
        (Some(c), _) if c != exit_code => format!("exited with code {c}, expected {exit_code}"),
        (None, Some(s)) => format!("was killed by signal {s}"),
        _ if !contains_ok => format!("did not print {:?}", contains.unwrap_or_default()),
        _ => format!(
            "printed nothing matching {}",
            matches.map(|r| r.as_str()).unwrap_or_default()
        ),
    };
    // A script's own words are the feedback (Killercoda's verify.sh style).
    let message = match (&check.message, script && !output.is_empty()) {
        (_, true) => tail(&output),
        (Some(m), false) => m.clone(),
        (None, false) => format!("the check {what}"),
    };
    Ok(check.fail(message))
}

// ---------------------------------------------------------------------------------------------
// HTTP

/// Connects to 127.0.0.1:$1 inside the sandbox with bash's /dev/tcp, sends one HTTP/1.0 GET
/// for $2 and copies the answer to stdout. Exit 111 means nothing listens yet.
const PROBE: &str = r#"exec 3<>"/dev/tcp/127.0.0.1/$1" 2>/dev/null || exit 111
printf 'GET %s HTTP/1.0\r\nHost: localhost:%s\r\nUser-Agent: sandpit-judge\r\nAccept: */*\r\nConnection: close\r\n\r\n' "$2" "$1" >&3
cat <&3"#;

/// The answer to one probe.
enum Probe {
    /// Nothing listens on the port (yet).
    Refused,
    Answer {
        status: u16,
        body: Vec<u8>,
    },
    /// Something answered with what is not HTTP.
    Garbage(String),
}

async fn probe(
    sandbox: &dyn Sandbox,
    port: u16,
    path: &str,
    budget: Duration,
) -> Result<Probe, SandboxError> {
    let argv = vec![
        "/bin/bash".to_owned(),
        "-c".to_owned(),
        PROBE.to_owned(),
        "probe".to_owned(),
        port.to_string(),
        path.to_owned(),
    ];
    let mut limits = check_limits(budget.max(Duration::from_millis(200)));
    limits.output_bytes = Some(1 << 20);
    let out = run_to_end(sandbox, argv, b"", limits).await?;
    if out.exit.code == Some(111) {
        return Ok(Probe::Refused);
    }
    if matches!(
        out.exit.limit,
        Some(LimitKind::WallTime | LimitKind::CpuTime)
    ) && out.stdout.is_empty()
    {
        return Ok(Probe::Garbage(
            "it accepted the connection but never answered".into(),
        ));
    }
    Ok(parse_response(&out.stdout))
}

fn parse_response(raw: &[u8]) -> Probe {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(raw) {
        Ok(httparse::Status::Complete(len)) => Probe::Answer {
            status: response.code.unwrap_or(0),
            body: raw[len..].to_vec(),
        },
        Ok(httparse::Status::Partial) if raw.is_empty() => {
            Probe::Garbage("it closed the connection without answering".into())
        }
        Ok(httparse::Status::Partial) => Probe::Garbage("its answer was cut short".into()),
        Err(e) => Probe::Garbage(format!("its answer is not HTTP ({e})")),
    }
}

async fn http_check(
    sandbox: &dyn Sandbox,
    check: &Check,
    run: &mut CheckRun,
) -> Result<Verdict, SandboxError> {
    let CheckKind::Http {
        port,
        path,
        start,
        expect_status,
        body_contains,
        json,
    } = &check.kind
    else {
        unreachable!("http_check is only called for http checks");
    };
    let deadline = Instant::now() + check.timeout;
    let mut app = None;
    if let Some(argv) = start {
        // A server the learner left running in the terminal would answer in place of the
        // code being judged (and the judge's copy could not bind): say so instead.
        if !matches!(
            probe(sandbox, *port, path, Duration::from_secs(2)).await?,
            Probe::Refused
        ) {
            return Ok(check.fail_coded(
                "port_busy",
                format!("something is already listening on port {port}, so the judge cannot start {} there", argv.join(" ")),
                "Stop the server you started yourself (Ctrl+C in the terminal), then check again.",
            ));
        }
        let mut spec = ProcessSpec::new(argv.clone());
        spec.limits = check_limits(check.timeout + Duration::from_secs(1));
        spec.limits.output_bytes = Some(4 << 20);
        spec.env.insert("PYTHONUNBUFFERED".into(), "1".into());
        spec.env.insert("PORT".into(), port.to_string());
        match sandbox.spawn(spec).await {
            Ok(p) => app = Some(AppProcess::new(p)),
            Err(SandboxError::Spawn(why)) => {
                return Ok(check.fail(format!(
                    "the judge could not start {}: {why}",
                    argv.join(" ")
                )));
            }
            Err(e) => return Err(e),
        }
    }
    let started = Instant::now();
    let mut pause = PROBE_FIRST_PAUSE;
    let verdict = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break Verdict::TimedOut;
        }
        let answer = probe(sandbox, *port, path, left.min(Duration::from_secs(5))).await?;
        match answer {
            Probe::Refused => {
                if let Some(app) = app.as_mut()
                    && let Some(exit) = app.exited()
                {
                    let how = match (exit.code, exit.signal) {
                        (Some(c), _) => format!("exited with code {c}"),
                        (_, Some(s)) => format!("was killed by signal {s}"),
                        _ => "stopped".into(),
                    };
                    break check.fail(format!(
                        "{} {how} before answering on port {port}",
                        start.as_ref().map(|a| a.join(" ")).unwrap_or_default()
                    ));
                }
                tokio::time::sleep(pause.min(left)).await;
                pause = (pause * 2).min(PROBE_LONGEST_PAUSE);
            }
            Probe::Garbage(why) => {
                break check.fail_default(format!(
                    "the server on port {port} answered GET {path} badly: {why}"
                ));
            }
            Probe::Answer { status, body } => {
                run.sizes.push(("response_bytes".into(), body.len() as u64));
                break http_verdict(
                    check,
                    *port,
                    path,
                    status,
                    &body,
                    *expect_status,
                    body_contains.as_deref(),
                    json.as_ref(),
                );
            }
        }
    };
    if let Some(app) = app {
        run.program_ms += ms(started.elapsed());
        let log = app.stop().await;
        if !matches!(verdict, Verdict::Pass) && !log.trim().is_empty() {
            run.notes
                .push(format!("{} app output:\n{}", check.code, tail(&log)));
        }
    }
    Ok(verdict)
}

#[expect(
    clippy::too_many_arguments,
    reason = "one call site; the fields of one check"
)]
fn http_verdict(
    check: &Check,
    port: u16,
    path: &str,
    status: u16,
    body: &[u8],
    expect_status: u16,
    contains: Option<&str>,
    json: Option<&(String, serde_json::Value)>,
) -> Verdict {
    let text = String::from_utf8_lossy(body);
    let shown = |t: &str| {
        let t: String = t.chars().take(200).collect();
        t
    };
    let mut problems = Vec::new();
    if status != expect_status {
        problems.push(format!(
            "GET {path} on port {port} answered {status}, expected {expect_status}"
        ));
    }
    if let Some(c) = contains
        && !text.contains(c)
    {
        problems.push(format!(
            "the body of GET {path} does not contain {c:?} (it was {:?})",
            shown(&text)
        ));
    }
    if let Some((pointer, expected)) = json {
        match serde_json::from_slice::<serde_json::Value>(body) {
            Err(_) => problems.push(format!(
                "GET {path} did not answer JSON (it was {:?})",
                shown(&text)
            )),
            Ok(value) => match value.pointer(pointer) {
                None => problems.push(format!("the JSON answer of GET {path} has no {pointer}")),
                Some(found) if found != expected => problems.push(format!(
                    "{pointer} in the JSON answer of GET {path} is {found}, expected {expected}"
                )),
                Some(_) => {}
            },
        }
    }
    if problems.is_empty() {
        return Verdict::Pass;
    }
    let detail = problems.join("; ");
    match &check.message {
        Some(m) => check.fail(format!("{m} ({detail})")),
        None => check.fail(detail),
    }
}

/// A program an HTTP check started: its output is drained as it comes (so it never stalls on
/// a full window) and the last of it kept for notes.
struct AppProcess {
    control: sandpit_sandbox::ProcessControl,
    task: tokio::task::JoinHandle<(Option<ExitInfo>, String)>,
    exit: tokio::sync::watch::Receiver<Option<ExitInfo>>,
}

impl AppProcess {
    fn new(mut process: sandpit_sandbox::Process) -> Self {
        let control = process.control();
        let (tx, exit) = tokio::sync::watch::channel(None);
        let task = tokio::spawn(async move {
            let mut log = Vec::new();
            let exit = loop {
                match process.next_event().await {
                    Some(ProcessEvent::Output(_, bytes)) => {
                        log.extend_from_slice(&bytes);
                        if log.len() > 16 << 10 {
                            log.drain(..log.len() - (8 << 10));
                        }
                    }
                    Some(ProcessEvent::Exited(e)) => {
                        let _ = tx.send(Some(e.clone()));
                        break Some(e);
                    }
                    None => break None,
                }
            };
            (exit, String::from_utf8_lossy(&log).into_owned())
        });
        Self {
            control,
            task,
            exit,
        }
    }

    fn exited(&mut self) -> Option<ExitInfo> {
        self.exit.borrow().clone()
    }

    /// Kills its whole process group and returns what it printed.
    async fn stop(self) -> String {
        let _ = self.control.signal(SIGKILL).await;
        match tokio::time::timeout(Duration::from_secs(5), self.task).await {
            Ok(Ok((_, log))) => log,
            _ => String::new(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Dockerfile

async fn dockerfile_check(
    sandbox: &dyn Sandbox,
    check: &Check,
    path: &WorkspacePath,
    rules: &[dockerfile::Rule],
    excludes: &[String],
    run: &mut CheckRun,
) -> Result<Verdict, SandboxError> {
    let data = match read(sandbox, path).await? {
        Ok(d) => d,
        Err(why) => {
            return Ok(check.fail_coded(
                "missing",
                format!("{path} {why}"),
                &format!("Create {path} in your workspace (the file name is case-sensitive)."),
            ));
        }
    };
    run.sizes.push((path.to_string(), data.len() as u64));
    let text = String::from_utf8_lossy(&data);
    let parsed = match dockerfile::parse(&text) {
        Ok(p) => p,
        Err(e) => {
            return Ok(check.fail_coded(
                "syntax",
                format!("{path}, line {}: {}", e.line, e.message),
                "Fix the instruction on that line; `docker build` would refuse this file too.",
            ));
        }
    };
    // `.dockerignore` lives at the root of the build context: the Dockerfile's folder.
    let ignore_path = match path.as_str().rsplit_once('/') {
        Some((dir, _)) => format!("{dir}/.dockerignore"),
        None => ".dockerignore".to_owned(),
    };
    let ignore = match WorkspacePath::parse(&ignore_path) {
        Ok(p) => read(sandbox, &p).await?.ok(),
        Err(_) => None,
    };
    let ignore_text = ignore.map(|d| String::from_utf8_lossy(&d).into_owned());
    let violations = dockerfile::check(&parsed, ignore_text.as_deref(), rules, excludes);
    if violations.is_empty() {
        return Ok(Verdict::Pass);
    }
    Ok(Verdict::Fail(
        violations
            .into_iter()
            .map(|v| Failure {
                code: format!("{}.{}", check.code, v.rule.name()),
                message: v.message,
                hint: v.hint,
            })
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(message: Option<&str>) -> Check {
        Check {
            code: "health".into(),
            message: message.map(Into::into),
            hint: Some("add the route".into()),
            timeout: Duration::from_secs(1),
            kind: CheckKind::FileExists {
                path: WorkspacePath::parse("x").unwrap_or_else(|_| unreachable!()),
            },
        }
    }

    fn failures(v: Verdict) -> Vec<Failure> {
        match v {
            Verdict::Fail(f) => f,
            Verdict::Pass => Vec::new(),
            Verdict::TimedOut | Verdict::Skip(_) => panic!("not a pass or a failure"),
        }
    }

    #[test]
    fn responses_parse_into_status_and_body() {
        let raw = b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{\"status\": \"ok\"}";
        match parse_response(raw) {
            Probe::Answer { status, body } => {
                assert_eq!(status, 200);
                assert_eq!(body, b"{\"status\": \"ok\"}");
            }
            _ => panic!("not an answer"),
        }
        assert!(
            matches!(parse_response(b""), Probe::Garbage(m) if m.contains("without answering"))
        );
        assert!(
            matches!(parse_response(b"HTTP/1.0 200 OK\r\nX: y"), Probe::Garbage(m) if m.contains("cut short"))
        );
        assert!(
            matches!(parse_response(b"SSH-2.0-OpenSSH\r\n\r\n"), Probe::Garbage(m) if m.contains("not HTTP"))
        );
    }

    #[test]
    fn http_verdicts_name_every_difference() {
        let c = check(None);
        let pointer = ("/status".to_owned(), serde_json::json!("ok"));
        let ok = http_verdict(
            &c,
            8000,
            "/health",
            200,
            b"{\"status\":\"ok\"}",
            200,
            Some("ok"),
            Some(&pointer),
        );
        assert!(failures(ok).is_empty());

        let f = failures(http_verdict(
            &c,
            8000,
            "/health",
            404,
            b"nope",
            200,
            None,
            Some(&pointer),
        ));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].code, "health");
        assert_eq!(f[0].hint, "add the route");
        assert!(
            f[0].message.contains("answered 404, expected 200"),
            "{}",
            f[0].message
        );
        assert!(
            f[0].message.contains("did not answer JSON"),
            "{}",
            f[0].message
        );

        let f = failures(http_verdict(
            &c,
            8000,
            "/health",
            200,
            b"{\"status\":\"down\"}",
            200,
            None,
            Some(&pointer),
        ));
        assert!(
            f[0].message
                .contains("/status in the JSON answer of GET /health is \"down\", expected \"ok\""),
            "{}",
            f[0].message
        );

        // The author's message leads; the detail follows.
        let c = check(Some("/health must answer"));
        let f = failures(http_verdict(&c, 8000, "/health", 500, b"", 200, None, None));
        assert!(
            f[0].message.starts_with("/health must answer ("),
            "{}",
            f[0].message
        );
    }

    #[test]
    fn feedback_keeps_the_end_of_long_output() {
        let long = format!("{}THE END", "x".repeat(5_000));
        let t = tail(&long);
        assert!(t.starts_with('…') && t.ends_with("THE END"));
        assert_eq!(t.chars().count(), FEEDBACK_CHARS + 1);
        assert_eq!(tail("  short \n"), "short");
    }
}
