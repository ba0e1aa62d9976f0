//! Executing runs: admission (a bounded number running and waiting), a sandbox from the warm
//! pool (or a new one for unusual sandbox limits), files written through the agent, compile
//! once, run once or per test case, and the sandbox reset and returned in the background.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use sandpit_sandbox::{
    Backend, ExitInfo, LimitKind, Pool, ProcessEvent, ProcessLimits, ProcessSpec, Sandbox,
    SandboxError, SandboxLimits, SandboxSpec, Stream, WorkspacePath,
};
use tokio::sync::{OnceCell, Semaphore};
use uuid::Uuid;

use super::model::{Plan, RunResult, RunState, Stage, StageStatus, TestResult, same_output};
use super::runtimes::{Detected, Registry, RuntimeConfig, VersionProbe, default_runtimes};
use crate::config::{RunLimits, RunsConfig};
use crate::error::ApiError;
use crate::sandbox::Sandboxes;

/// Host directories the sandbox's root is made of (see the agent's root builder); runtimes
/// whose programs resolve elsewhere cannot work inside.
const VISIBLE_ROOTS: &[&str] = &[
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/opt",
    "/etc/alternatives",
];

/// Sizes of the writable mounts of a run's sandbox.
const WORKSPACE_BYTES: u64 = 64 << 20;
const TMP_BYTES: u64 = 64 << 20;
const SHM_BYTES: u64 = 16 << 20;
const OPEN_FILES: u64 = 256;

pub struct Runs {
    config: RunsConfig,
    sandboxes: Arc<Sandboxes>,
    pool: Option<Arc<Pool>>,
    registry: OnceCell<Registry>,
    slots: Semaphore,
    waiting: AtomicUsize,
    max_waiting: usize,
    max_concurrent: usize,
}

/// The box a run gets (also the shape of the Kubernetes backend's warm pods).
pub(crate) fn sandbox_spec(limits: &RunLimits) -> SandboxSpec {
    SandboxSpec::new(SandboxLimits {
        memory_bytes: limits.memory_mb << 20,
        pids: limits.processes,
        cpu_millicores: Some(1000),
        workspace_bytes: WORKSPACE_BYTES,
        tmp_bytes: TMP_BYTES,
        shm_bytes: SHM_BYTES,
    })
}

impl Runs {
    pub fn new(config: RunsConfig, sandboxes: Arc<Sandboxes>) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let max_concurrent = match config.max_concurrent {
            0 => cores,
            n => n,
        };
        let max_waiting = match config.max_queued {
            0 => 8 * cores,
            n => n,
        };
        // One ready sandbox per run slot at least: a run that finds none would otherwise create
        // one, and the pool would destroy it again on return.
        let pool = match sandboxes.backend() {
            Ok(backend) if config.warm_pool > 0 => Some(Pool::new(
                backend.clone(),
                sandbox_spec(&config.default_limits),
                config.warm_pool.max(max_concurrent),
            )),
            _ => None,
        };
        Self {
            config,
            sandboxes,
            pool,
            registry: OnceCell::new(),
            slots: Semaphore::new(max_concurrent),
            waiting: AtomicUsize::new(0),
            max_waiting,
            max_concurrent,
        }
    }

    fn backend(&self) -> Result<&Arc<dyn Backend>, ApiError> {
        self.sandboxes
            .backend()
            .map_err(|why| ApiError::Unavailable {
                code: "sandbox_unavailable",
                message: format!("code cannot run on this server: {why}"),
                retry_after: None,
            })
    }

    /// The installed runtimes, detected on first use by running each version command in a
    /// sandbox (so only runtimes that work inside are offered).
    pub async fn registry(&self) -> Result<&Registry, ApiError> {
        let backend = self.backend()?.clone();
        self.registry
            .get_or_try_init(|| async {
                let configs = if self.config.runtimes.is_empty() {
                    default_runtimes()
                } else {
                    self.config.runtimes.clone()
                };
                let roots: Vec<_> = VISIBLE_ROOTS.iter().map(Into::into).collect();
                let probe = SandboxProbe {
                    backend,
                    limits: self.config.compile_limits,
                };
                let Detected { registry, skipped } = Registry::detect(configs, &roots, &probe)
                    .await
                    .map_err(ApiError::internal)?;
                for (name, reason) in skipped {
                    tracing::info!(runtime = %name, reason = %reason, "runtime not offered");
                }
                tracing::info!(count = registry.len(), "runtimes detected");
                Ok(registry)
            })
            .await
    }

    /// Waits for a run slot; refuses at once when too many runs are already waiting.
    async fn admit(&self) -> Result<tokio::sync::SemaphorePermit<'_>, ApiError> {
        if let Ok(permit) = self.slots.try_acquire() {
            return Ok(permit);
        }
        let waiting = self.waiting.fetch_add(1, Ordering::SeqCst);
        if waiting >= self.max_waiting {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(busy());
        }
        let permit = self.slots.acquire().await;
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        permit.map_err(|_| busy())
    }

    /// Runs a validated plan to completion.
    pub async fn execute(&self, id: Uuid, plan: Plan) -> Result<RunResult, ApiError> {
        let _permit = self.admit().await?;
        let backend = self.backend()?;
        let default = &self.config.default_limits;
        let standard = plan.limits.memory_mb == default.memory_mb
            && plan.limits.processes == default.processes;
        let result = match (&self.pool, standard) {
            (Some(pool), true) => {
                let lease = pool.acquire().await.map_err(sandbox_error)?;
                let result = run_plan(lease.sandbox(), id, &plan, &self.config).await;
                // Reset and return it after answering.
                tokio::spawn(lease.release());
                result
            }
            _ => {
                let sandbox = backend
                    .create(&sandbox_spec(&plan.limits))
                    .await
                    .map_err(sandbox_error)?;
                let result = run_plan(sandbox.as_ref(), id, &plan, &self.config).await;
                tokio::spawn(async move {
                    if let Err(e) = sandbox.destroy().await {
                        tracing::warn!(error = %e, "destroying a run's sandbox");
                    }
                });
                result
            }
        };
        result.map_err(sandbox_error)
    }

    /// Runs `argv` in a fresh sandbox whose workspace holds `files` (a project's tests, say),
    /// within the run limits' maximum time and the default ones otherwise; counts as a run.
    pub async fn run_files(
        &self,
        files: Vec<(WorkspacePath, Vec<u8>)>,
        argv: Vec<String>,
    ) -> Result<Stage, ApiError> {
        let _permit = self.admit().await?;
        let limits = RunLimits {
            wall_ms: self.config.max_limits.wall_ms,
            cpu_ms: self.config.max_limits.cpu_ms,
            ..self.config.default_limits
        };
        let sandbox = self
            .backend()?
            .create(&sandbox_spec(&limits))
            .await
            .map_err(sandbox_error)?;
        let ran = async {
            for (path, content) in files {
                sandbox.write_file(&path, content, 0o644).await?;
            }
            let mut spec = ProcessSpec::new(argv);
            spec.limits = process_limits(&limits, OPEN_FILES);
            execute(sandbox.as_ref(), spec, b"").await
        }
        .await;
        if let Err(e) = sandbox.destroy().await {
            tracing::warn!(error = %e, "destroying a sandbox");
        }
        ran.map_err(sandbox_error)
    }

    /// How many runs execute at once.
    pub fn max_concurrent(&self) -> usize {
        self.max_concurrent
    }

    pub fn config(&self) -> &RunsConfig {
        &self.config
    }

    pub async fn shutdown(&self) {
        if let Some(pool) = &self.pool {
            pool.shutdown().await;
        }
        if let Ok(backend) = self.sandboxes.backend()
            && let Err(e) = backend.shutdown().await
        {
            tracing::warn!(error = %e, "sandbox backend shutdown");
        }
    }
}

/// Too many runs waiting.
pub fn busy() -> ApiError {
    ApiError::Unavailable {
        code: "busy",
        message: "too many runs are waiting; retry shortly".into(),
        retry_after: Some(Duration::from_secs(1)),
    }
}

fn sandbox_error(e: SandboxError) -> ApiError {
    match e {
        SandboxError::Unavailable(why) => ApiError::Unavailable {
            code: "sandbox_unavailable",
            message: format!("code cannot run on this server: {why}"),
            retry_after: None,
        },
        other => ApiError::internal(other),
    }
}

fn process_limits(limits: &RunLimits, open_files: u64) -> ProcessLimits {
    ProcessLimits {
        wall_ms: Some(limits.wall_ms),
        cpu_ms: Some(limits.cpu_ms),
        file_size_bytes: limits.file_size_bytes,
        open_files,
        output_bytes: Some(limits.output_bytes),
    }
}

fn spec(argv: Vec<String>, runtime: &RuntimeConfig, limits: ProcessLimits) -> ProcessSpec {
    let mut spec = ProcessSpec::new(argv);
    spec.env.extend(runtime.env.clone());
    spec.limits = limits;
    spec
}

async fn run_plan(
    sandbox: &dyn Sandbox,
    id: Uuid,
    plan: &Plan,
    config: &RunsConfig,
) -> Result<RunResult, SandboxError> {
    for (path, content) in &plan.files {
        sandbox.write_file(path, content.clone(), 0o644).await?;
    }
    let runtime = &plan.runtime.config;
    let mut result = RunResult {
        id,
        state: RunState::Done,
        runtime: plan.runtime.name.clone(),
        compile: None,
        run: None,
        tests: None,
    };
    if let Some(compile_argv) = &runtime.compile_argv {
        let c = &config.compile_limits;
        let limits = ProcessLimits {
            wall_ms: Some(c.wall_ms),
            cpu_ms: Some(c.cpu_ms),
            file_size_bytes: c.file_size_bytes,
            open_files: OPEN_FILES,
            output_bytes: Some(c.output_bytes),
        };
        let mut argv = compile_argv.clone();
        argv.extend(plan.compile_args.iter().cloned());
        let mut stage = execute(sandbox, spec(argv, runtime, limits), b"").await?;
        if stage.status == StageStatus::RuntimeError {
            stage.status = StageStatus::CompileError;
        }
        let failed = stage.status != StageStatus::Ok;
        result.compile = Some(stage);
        if failed {
            return Ok(result);
        }
    }
    let mut argv = runtime.run_argv.clone();
    argv.extend(plan.args.iter().cloned());
    let limits = process_limits(&plan.limits, OPEN_FILES);
    let mut tests = Vec::new();
    for (stdin, expected) in &plan.cases {
        let stage = execute_merged(
            sandbox,
            spec(argv.clone(), runtime, limits),
            stdin,
            plan.merge_stderr,
        )
        .await?;
        let passed = expected
            .as_ref()
            .map(|e| stage.status == StageStatus::Ok && same_output(&stage.stdout, e));
        tests.push(TestResult { stage, passed });
    }
    if plan.has_tests {
        result.tests = Some(tests);
    } else {
        result.run = tests.pop().map(|t| t.stage);
    }
    Ok(result)
}

/// Runs one process to its end and describes it. A program that cannot be started (e.g. the
/// compiler produced nothing) is a runtime error of the program, not of the server.
pub(crate) async fn execute(
    sandbox: &dyn Sandbox,
    spec: ProcessSpec,
    stdin: &[u8],
) -> Result<Stage, SandboxError> {
    execute_merged(sandbox, spec, stdin, false).await
}

/// [`execute`], with stderr and stdout one pipe (`2>&1`) when `merge_stderr`.
async fn execute_merged(
    sandbox: &dyn Sandbox,
    mut spec: ProcessSpec,
    stdin: &[u8],
    merge_stderr: bool,
) -> Result<Stage, SandboxError> {
    if merge_stderr {
        spec.stdio = sandpit_sandbox::StdioMode::Merged;
    }
    let mut process = match sandbox.spawn(spec).await {
        Ok(p) => p,
        Err(SandboxError::Spawn(message)) => {
            return Ok(Stage::not_run(StageStatus::RuntimeError, message));
        }
        Err(e) => return Err(e),
    };
    if !stdin.is_empty() {
        process.write_stdin(stdin).await?;
    }
    process.close_stdin().await?;
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let mut last = Stream::Stdout;
    let exit = loop {
        match process.next_event().await {
            Some(ProcessEvent::Output(stream, bytes)) => {
                last = stream;
                match stream {
                    Stream::Stdout => stdout.extend_from_slice(&bytes),
                    Stream::Stderr => stderr.extend_from_slice(&bytes),
                }
            }
            Some(ProcessEvent::Exited(exit)) => break exit,
            None => return Err(SandboxError::Lost),
        }
    };
    Ok(stage(exit, stdout, stderr, last))
}

pub(crate) fn stage(exit: ExitInfo, stdout: Vec<u8>, stderr: Vec<u8>, last: Stream) -> Stage {
    let status = match exit.limit {
        Some(LimitKind::WallTime | LimitKind::CpuTime) => StageStatus::TimeLimit,
        Some(LimitKind::Memory) => StageStatus::MemoryLimit,
        Some(LimitKind::Output) => StageStatus::OutputLimit,
        None => match (exit.code, exit.signal) {
            (Some(0), _) => StageStatus::Ok,
            // SIGKILL that no limit explains.
            (_, Some(9)) => StageStatus::Killed,
            _ => StageStatus::RuntimeError,
        },
    };
    Stage {
        status,
        exit_code: exit.code,
        signal: exit.signal,
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        // The output limit covers both streams; the one written last is the one cut.
        stdout_truncated: exit.output_truncated && last == Stream::Stdout,
        stderr_truncated: exit.output_truncated && last == Stream::Stderr,
        wall_ms: exit.wall_ms,
        cpu_ms: exit.cpu_ms,
        memory_kb: exit.memory_kb,
    }
}

/// Runs a runtime's version command in a fresh sandbox.
struct SandboxProbe {
    backend: Arc<dyn Backend>,
    limits: RunLimits,
}

#[async_trait]
impl VersionProbe for SandboxProbe {
    async fn version(&self, runtime: &RuntimeConfig) -> Result<String, String> {
        let sandbox = self
            .backend
            .create(&sandbox_spec(&self.limits))
            .await
            .map_err(|e| e.to_string())?;
        let limits = process_limits(&self.limits, OPEN_FILES);
        let result = execute(
            sandbox.as_ref(),
            spec(runtime.version_argv.clone(), runtime, limits),
            b"",
        )
        .await;
        let _ = sandbox.destroy().await;
        let stage = result.map_err(|e| e.to_string())?;
        if stage.status != StageStatus::Ok {
            return Err(format!(
                "the version command failed in a sandbox ({:?}): {}",
                stage.status,
                stage.stderr.lines().next().unwrap_or_default()
            ));
        }
        Ok(format!("{}\n{}", stage.stdout, stage.stderr))
    }
}
