//! The languages the stateless runs API can execute, and how they are found at start-up.
//!
//! A [`RuntimeConfig`] says how to ask a language for its version, how to compile a program and
//! how to run it. [`Registry::detect`] validates the configs (a bad one is a fatal config error),
//! then keeps only the runtimes whose programs a sandbox can actually reach and that answer a
//! version probe; the rest are returned as `skipped` with a reason, because the defaults name
//! languages that may simply not be installed.
//!
//! "Reachable" matters because a sandbox's root filesystem is a read-only view of a few host
//! directories (`/usr`, `/bin`, `/lib*`, `/etc/…`), not the whole host: `python3` on `PATH` may be
//! a pyenv shim under `/root` that works for the server and fails in every sandbox. So every
//! program is resolved through its symlinks and each hop must lie under a visible root.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// How long one version probe may take before its runtime is skipped. Generous because the probes
/// start together and a JVM on a busy two-core host is slow; without a bound a hung probe would
/// stop the server from starting.
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

/// More symlink hops than this means a loop (Linux itself gives up after 40).
const MAX_SYMLINK_HOPS: usize = 40;

/// Longest runtime name or alias; they appear in API requests and listings.
const MAX_NAME_LEN: usize = 32;

/// Longest file name Linux accepts (`NAME_MAX`).
const MAX_FILE_NAME_LEN: usize = 255;

/// One runtime as configured (`[[runs.runtimes]]`).
///
/// Programs run with the working directory set to the writable workspace the user's files were
/// written to, and the sandbox executes `argv[0]` as a path without searching `PATH`, so
/// programs are absolute paths as the sandbox sees them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// What clients ask for, e.g. `python3`: lowercase letters, digits and `+._-`, starting with a
    /// letter or digit; unique across names and aliases of all runtimes.
    pub name: String,
    /// Other names clients may use, e.g. `["python", "py"]`; same rules as `name`.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Prints the version; the first non-empty line of its combined stdout and stderr is shown to
    /// users. Running it is also how start-up checks the runtime works inside a sandbox.
    pub version_argv: Vec<String>,
    /// The file name the user's main source is expected under, e.g. `main.py` (a plain name in
    /// the workspace, no directories).
    pub source_file: String,
    /// Compiles the workspace once before any run, e.g. `["/usr/bin/gcc", "-O2", "-o", "main",
    /// "main.c"]`. None for interpreted languages.
    #[serde(default)]
    pub compile_argv: Option<Vec<String>>,
    /// Runs the program; the user's `args` are appended. For a compiled language `argv[0]` may be
    /// `./name`, a program the compile step wrote into the workspace.
    pub run_argv: Vec<String>,
    /// Extra environment for the version, compile and run commands, on top of the sandbox's base
    /// environment: e.g. `PATH` so `gcc` finds `as` and `ld`, or `GOCACHE` pointing at a writable
    /// directory. One map rather than one per step, because no language needs them to differ and
    /// the version probe should see what the compiler sees. (Avoid `JAVA_TOOL_OPTIONS`: the JVM
    /// announces it on stderr of every run; put JVM flags in the argv instead.)
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

impl RuntimeConfig {
    /// Whether programs are compiled once before they run.
    pub fn compiled(&self) -> bool {
        self.compile_argv.is_some()
    }
}

/// A runtime that was found usable at start-up.
#[derive(Debug, Clone)]
pub struct Runtime {
    pub name: String,
    pub aliases: Vec<String>,
    /// The first non-empty line the version command printed, e.g. `Python 3.11.2`.
    pub version: String,
    pub compiled: bool,
    pub config: RuntimeConfig,
}

impl Runtime {
    fn info(&self) -> RuntimeInfo {
        RuntimeInfo {
            name: self.name.clone(),
            version: self.version.clone(),
            aliases: self.aliases.clone(),
            compiled: self.compiled,
        }
    }
}

/// A language the runs API can execute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct RuntimeInfo {
    /// What to pass as `runtime` when starting a run.
    #[schema(example = "python3")]
    pub name: String,
    /// As the language itself reports it.
    #[schema(example = "Python 3.11.2")]
    pub version: String,
    /// Other accepted names.
    #[schema(example = json!(["python", "py"]))]
    pub aliases: Vec<String>,
    /// Whether programs are compiled once before they run (compile errors are reported separately).
    pub compiled: bool,
}

/// A runtime configuration that can never work; fatal at start-up so a typo is not silently
/// turned into a missing language.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RuntimeConfigError {
    #[error(
        "runtime {runtime:?}: {field} {value:?} must be 1 to {MAX_NAME_LEN} of a-z, 0-9, '+', '.', '_', '-', starting with a letter or digit"
    )]
    InvalidName {
        runtime: String,
        field: &'static str,
        value: String,
    },
    #[error("runtime {runtime:?}: {field} {value:?} is already used by runtime {other:?}")]
    Duplicate {
        runtime: String,
        field: &'static str,
        value: String,
        other: String,
    },
    #[error("runtime {runtime:?}: {field} must not be empty")]
    EmptyArgv {
        runtime: String,
        field: &'static str,
    },
    #[error("runtime {runtime:?}: {field}[0] {program:?} must be an absolute path{hint}")]
    RelativeProgram {
        runtime: String,
        field: &'static str,
        program: String,
        hint: &'static str,
    },
    #[error("runtime {runtime:?}: {field} contains a NUL byte")]
    NulInArgv {
        runtime: String,
        field: &'static str,
    },
    #[error("runtime {runtime:?}: source_file {value:?} {reason}")]
    InvalidSourceFile {
        runtime: String,
        value: String,
        reason: &'static str,
    },
    #[error("runtime {runtime:?}: env key {key:?} {reason}")]
    InvalidEnv {
        runtime: String,
        key: String,
        reason: &'static str,
    },
}

/// How a version command gets run. The real one runs it inside a sandbox (with the config's
/// `env`), so a runtime is only listed if it actually works there; tests use fakes.
#[async_trait]
pub trait VersionProbe: Send + Sync {
    /// Runs `runtime.version_argv` and returns its combined stdout and stderr (some languages,
    /// Java among them, print their version on stderr), or why it failed.
    async fn version(&self, runtime: &RuntimeConfig) -> Result<String, String>;
}

/// The outcome of [`Registry::detect`].
#[derive(Debug)]
pub struct Detected {
    pub registry: Registry,
    /// `(runtime name, reason)` for every configured runtime that is not usable, in config order;
    /// the server logs them.
    pub skipped: Vec<(String, String)>,
}

/// The runtimes found usable at start-up, by name and alias.
#[derive(Debug, Default)]
pub struct Registry {
    /// Keyed by name; a BTreeMap so listings come out sorted.
    runtimes: BTreeMap<String, Runtime>,
    /// Alias → name.
    aliases: HashMap<String, String>,
}

impl Registry {
    /// Validates the configs (unique names and aliases across all runtimes, non-empty argv with an
    /// absolute `argv[0]`, `source_file` a plain file name), resolves every program (`argv[0]` of
    /// the version, compile and run commands) through its symlinks and checks each hop lies under
    /// one of `visible_roots`, then asks `probe` for the version of each remaining runtime,
    /// concurrently. Runtimes that are missing, invisible to the sandbox or fail the probe are
    /// left out with the reason in [`Detected::skipped`].
    pub async fn detect<P: VersionProbe>(
        configs: Vec<RuntimeConfig>,
        visible_roots: &[PathBuf],
        probe: &P,
    ) -> Result<Detected, RuntimeConfigError> {
        detect_with_timeout(configs, visible_roots, probe, PROBE_TIMEOUT).await
    }

    /// The runtime called `name_or_alias` (exact, case-sensitive match).
    pub fn get(&self, name_or_alias: &str) -> Option<&Runtime> {
        self.runtimes.get(name_or_alias).or_else(|| {
            self.aliases
                .get(name_or_alias)
                .and_then(|name| self.runtimes.get(name))
        })
    }

    /// Every runtime, sorted by name.
    pub fn list(&self) -> Vec<RuntimeInfo> {
        self.runtimes.values().map(Runtime::info).collect()
    }

    pub fn len(&self) -> usize {
        self.runtimes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.runtimes.is_empty()
    }
}

/// [`Registry::detect`] with the probe timeout as a parameter, so a test can hang a probe
/// without waiting half a minute.
async fn detect_with_timeout<P: VersionProbe>(
    configs: Vec<RuntimeConfig>,
    visible_roots: &[PathBuf],
    probe: &P,
    timeout: Duration,
) -> Result<Detected, RuntimeConfigError> {
    validate(&configs)?;

    // Compare canonical paths on both sides: `/bin` is a symlink to `/usr/bin` on merged-/usr
    // systems, and a program's hops are canonicalised below. A root that does not exist hides
    // nothing and is dropped.
    let roots: Vec<PathBuf> = visible_roots
        .iter()
        .filter_map(|root| fs::canonicalize(root).ok())
        .collect();

    // A few stat calls per runtime at start-up: cheap enough not to need a blocking thread.
    let mut skipped = Vec::new();
    let mut candidates = Vec::new();
    for config in configs {
        match check_programs(&config, &roots) {
            Ok(()) => candidates.push(config),
            Err(reason) => skipped.push((config.name, reason)),
        }
    }

    let probes = candidates.iter().map(|config| async move {
        match tokio::time::timeout(timeout, probe.version(config)).await {
            Ok(Ok(output)) => first_line(&output)
                .map(str::to_owned)
                .ok_or_else(|| "the version command printed nothing".to_owned()),
            Ok(Err(reason)) => Err(format!("version probe failed: {reason}")),
            Err(_) => Err(format!(
                "version probe timed out after {} s",
                timeout.as_secs_f64()
            )),
        }
    });
    let versions = futures::future::join_all(probes).await;

    let mut registry = Registry::default();
    for (config, version) in candidates.into_iter().zip(versions) {
        match version {
            Ok(version) => {
                for alias in &config.aliases {
                    registry.aliases.insert(alias.clone(), config.name.clone());
                }
                registry.runtimes.insert(
                    config.name.clone(),
                    Runtime {
                        name: config.name.clone(),
                        aliases: config.aliases.clone(),
                        version,
                        compiled: config.compiled(),
                        config,
                    },
                );
            }
            Err(reason) => skipped.push((config.name, reason)),
        }
    }
    Ok(Detected { registry, skipped })
}

fn first_line(output: &str) -> Option<&str> {
    output.lines().map(str::trim).find(|line| !line.is_empty())
}

/// Checks every config on its own and all names and aliases together.
fn validate(configs: &[RuntimeConfig]) -> Result<(), RuntimeConfigError> {
    // name or alias → the runtime that claimed it first
    let mut claimed: HashMap<&str, &str> = HashMap::new();
    for config in configs {
        let runtime = config.name.as_str();
        let names = std::iter::once(("name", runtime))
            .chain(config.aliases.iter().map(|a| ("aliases", a.as_str())));
        for (field, value) in names {
            if !valid_name(value) {
                return Err(RuntimeConfigError::InvalidName {
                    runtime: runtime.to_owned(),
                    field,
                    value: value.to_owned(),
                });
            }
            if let Some(other) = claimed.insert(value, runtime) {
                return Err(RuntimeConfigError::Duplicate {
                    runtime: runtime.to_owned(),
                    field,
                    value: value.to_owned(),
                    other: other.to_owned(),
                });
            }
        }

        validate_argv(config, "version_argv", &config.version_argv, false)?;
        if let Some(compile) = &config.compile_argv {
            validate_argv(config, "compile_argv", compile, false)?;
        }
        validate_argv(config, "run_argv", &config.run_argv, config.compiled())?;
        validate_source_file(config)?;
        for (key, value) in &config.env {
            let reason = if key.is_empty() {
                Some("must not be empty")
            } else if key.contains('=') {
                Some("must not contain '='")
            } else if key.contains('\0') || value.contains('\0') {
                Some("or its value contains a NUL byte")
            } else {
                None
            };
            if let Some(reason) = reason {
                return Err(RuntimeConfigError::InvalidEnv {
                    runtime: runtime.to_owned(),
                    key: key.clone(),
                    reason,
                });
            }
        }
    }
    Ok(())
}

fn valid_name(name: &str) -> bool {
    let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+._-".contains(&b);
    name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && name.bytes().all(allowed)
}

/// `argv` must name a program by absolute path; a compiled runtime's run command may instead
/// start the compile step's output as `./name`.
fn validate_argv(
    config: &RuntimeConfig,
    field: &'static str,
    argv: &[String],
    may_run_workspace_program: bool,
) -> Result<(), RuntimeConfigError> {
    let runtime = || config.name.clone();
    let Some(program) = argv.first() else {
        return Err(RuntimeConfigError::EmptyArgv {
            runtime: runtime(),
            field,
        });
    };
    if argv.iter().any(|arg| arg.contains('\0')) {
        return Err(RuntimeConfigError::NulInArgv {
            runtime: runtime(),
            field,
        });
    }
    let absolute = Path::new(program).is_absolute();
    let workspace_program = may_run_workspace_program && workspace_program(program).is_some();
    if !absolute && !workspace_program {
        return Err(RuntimeConfigError::RelativeProgram {
            runtime: runtime(),
            field,
            program: program.clone(),
            hint: if may_run_workspace_program {
                " or ./name for a program the compile step writes (the sandbox does not search PATH)"
            } else {
                " (the sandbox does not search PATH)"
            },
        });
    }
    Ok(())
}

/// `./name` → `name`, for a program in the workspace; anything else → None.
fn workspace_program(program: &str) -> Option<&str> {
    program
        .strip_prefix("./")
        .filter(|name| plain_file_name(name).is_ok())
}

fn validate_source_file(config: &RuntimeConfig) -> Result<(), RuntimeConfigError> {
    plain_file_name(&config.source_file).map_err(|reason| RuntimeConfigError::InvalidSourceFile {
        runtime: config.name.clone(),
        value: config.source_file.clone(),
        reason,
    })
}

/// A single path component naming a file in the workspace.
fn plain_file_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        Err("must not be empty")
    } else if name == "." || name == ".." {
        Err("must name a file, not a directory")
    } else if name.contains('/') {
        Err("must be a plain file name without '/'")
    } else if name.contains('\0') {
        Err("must not contain a NUL byte")
    } else if name.len() > MAX_FILE_NAME_LEN {
        Err("is longer than 255 bytes")
    } else {
        Ok(())
    }
}

/// Checks each distinct host program the runtime starts; the first problem is the skip reason.
fn check_programs(config: &RuntimeConfig, roots: &[PathBuf]) -> Result<(), String> {
    let mut programs: Vec<(&str, &str)> = Vec::new();
    programs.extend(
        config
            .version_argv
            .first()
            .map(|p| ("version_argv", p.as_str())),
    );
    if let Some(compile) = &config.compile_argv {
        programs.extend(compile.first().map(|p| ("compile_argv", p.as_str())));
    }
    programs.extend(
        config
            .run_argv
            .first()
            .filter(|p| workspace_program(p).is_none())
            .map(|p| ("run_argv", p.as_str())),
    );
    for (i, (field, program)) in programs.iter().enumerate() {
        if programs[..i].iter().any(|(_, seen)| seen == program) {
            continue;
        }
        resolve_visible(Path::new(program), roots)
            .map_err(|problem| format!("{field}[0] {program}: {problem}"))?;
    }
    Ok(())
}

/// Follows `program` through its symlinks like `execve` would and returns the executable it ends
/// at. Every hop, not only the end, must lie under a (canonical) root: `/usr/bin/java` links to
/// `/etc/alternatives/java`, which only resolves in a sandbox that shows `/etc/alternatives`.
/// Symlinked directories on the way (`/bin` → `/usr/bin`) are resolved with `canonicalize`.
fn resolve_visible(program: &Path, roots: &[PathBuf]) -> Result<PathBuf, String> {
    let mut current = program.to_path_buf();
    for _ in 0..MAX_SYMLINK_HOPS {
        let (Some(dir), Some(name)) = (current.parent(), current.file_name()) else {
            return Err(format!("{} is not a file", current.display()));
        };
        let dir = fs::canonicalize(dir).map_err(|e| not_found(&current, program, &e))?;
        let location = dir.join(name);
        let meta =
            fs::symlink_metadata(&location).map_err(|e| not_found(&location, program, &e))?;
        if !roots.iter().any(|root| location.starts_with(root)) {
            let via = if location == program {
                String::new()
            } else {
                format!("resolves to {}, which ", location.display())
            };
            return Err(format!(
                "{via}is not visible in the sandbox (visible: {})",
                display_roots(roots)
            ));
        }
        if meta.file_type().is_symlink() {
            let target = fs::read_link(&location)
                .map_err(|e| format!("cannot read link {}: {e}", location.display()))?;
            // An absolute target replaces `dir`; a relative one is taken from the link's directory.
            current = dir.join(target);
            continue;
        }
        if !meta.is_file() {
            return Err(format!("{} is not a file", location.display()));
        }
        if meta.permissions().mode() & 0o111 == 0 {
            return Err(format!("{} is not executable", location.display()));
        }
        return Ok(location);
    }
    Err("too many levels of symbolic links".to_owned())
}

fn not_found(path: &Path, program: &Path, error: &std::io::Error) -> String {
    let problem = if error.kind() == std::io::ErrorKind::NotFound {
        "is not found".to_owned()
    } else {
        format!("cannot be read: {error}")
    };
    if path == program {
        problem
    } else {
        format!("resolves to {}, which {problem}", path.display())
    }
}

fn display_roots(roots: &[PathBuf]) -> String {
    if roots.is_empty() {
        return "nothing".to_owned();
    }
    roots
        .iter()
        .map(|root| root.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The languages commonly installed on Debian and Ubuntu, at the paths their packages use.
/// Missing ones are skipped at start-up, so listing a language here costs nothing.
pub fn default_runtimes() -> Vec<RuntimeConfig> {
    // `as`, `ld` and `cc` (the linker rustc calls) are looked up on PATH.
    let toolchain_path = ("PATH", "/usr/local/bin:/usr/bin:/bin");
    vec![
        runtime("bash", &[], "main.sh")
            .version(&["/bin/bash", "--version"])
            .run(&["/bin/bash", "main.sh"]),
        runtime("python3", &["python", "py"], "main.py")
            .version(&["/usr/bin/python3", "--version"])
            .run(&["/usr/bin/python3", "main.py"])
            // Keeps `__pycache__` out of the user's workspace when the program imports its own
            // modules.
            .env(&[("PYTHONDONTWRITEBYTECODE", "1")]),
        runtime("node", &["javascript", "js"], "main.js")
            .version(&["/usr/bin/node", "--version"])
            .run(&["/usr/bin/node", "main.js"]),
        // `-pipe` keeps the compiler's intermediate files off /tmp; the standard is pinned so a
        // compiler upgrade does not change what programs mean.
        runtime("c", &["gcc"], "main.c")
            .version(&["/usr/bin/gcc", "--version"])
            .compile(&[
                "/usr/bin/gcc",
                "-std=gnu17",
                "-O2",
                "-pipe",
                "-o",
                "main",
                "main.c",
                "-lm",
            ])
            .run(&["./main"])
            .env(&[toolchain_path]),
        runtime("cpp", &["c++", "g++"], "main.cpp")
            .version(&["/usr/bin/g++", "--version"])
            .compile(&[
                "/usr/bin/g++",
                "-std=gnu++17",
                "-O2",
                "-pipe",
                "-o",
                "main",
                "main.cpp",
            ])
            .run(&["./main"])
            .env(&[toolchain_path]),
        // Only a distribution rustc: the rustup proxy in ~/.cargo is invisible in a sandbox.
        // rustc's default edition is 2015; programs people write today expect 2021.
        runtime("rust", &["rs"], "main.rs")
            .version(&["/usr/bin/rustc", "--version"])
            .compile(&[
                "/usr/bin/rustc",
                "--edition=2021",
                "-O",
                "-o",
                "main",
                "main.rs",
            ])
            .run(&["./main"])
            .env(&[toolchain_path]),
        // The go command needs a writable build cache and home; /tmp is writable in a sandbox.
        // Static binaries without cgo need no C toolchain, and the network is off anyway, so
        // module and toolchain downloads are disabled rather than left to time out.
        runtime("go", &["golang"], "main.go")
            .version(&["/usr/bin/go", "version"])
            .compile(&["/usr/bin/go", "build", "-o", "main", "main.go"])
            .run(&["./main"])
            .env(&[
                toolchain_path,
                ("HOME", "/tmp"),
                ("GOCACHE", "/tmp/go-cache"),
                ("GOPATH", "/tmp/go"),
                ("CGO_ENABLED", "0"),
                ("GOPROXY", "off"),
                ("GOTOOLCHAIN", "local"),
            ]),
        // The serial GC keeps the JVM to a few threads (sandboxes limit processes) and
        // `-UsePerfData` stops it writing /tmp/hsperfdata_*. javac is short-lived, so C1 alone
        // compiles it faster. `java -version` prints on stderr, hence combined probe output.
        runtime("java", &[], "Main.java")
            .version(&[
                "/usr/bin/java",
                "-XX:+UseSerialGC",
                "-XX:-UsePerfData",
                "-version",
            ])
            .compile(&[
                "/usr/bin/javac",
                "-J-XX:+UseSerialGC",
                "-J-XX:-UsePerfData",
                "-J-XX:TieredStopAtLevel=1",
                "-encoding",
                "UTF-8",
                "Main.java",
            ])
            .run(&[
                "/usr/bin/java",
                "-XX:+UseSerialGC",
                "-XX:-UsePerfData",
                "-cp",
                ".",
                "Main",
            ]),
    ]
}

/// Starts a default runtime; the builder methods below keep [`default_runtimes`] readable.
fn runtime(name: &str, aliases: &[&str], source_file: &str) -> RuntimeConfig {
    RuntimeConfig {
        name: name.to_owned(),
        aliases: strings(aliases),
        version_argv: Vec::new(),
        source_file: source_file.to_owned(),
        compile_argv: None,
        run_argv: Vec::new(),
        env: BTreeMap::new(),
    }
}

impl RuntimeConfig {
    fn version(mut self, argv: &[&str]) -> Self {
        self.version_argv = strings(argv);
        self
    }

    fn compile(mut self, argv: &[&str]) -> Self {
        self.compile_argv = Some(strings(argv));
        self
    }

    fn run(mut self, argv: &[&str]) -> Self {
        self.run_argv = strings(argv);
        self
    }

    fn env(mut self, vars: &[(&str, &str)]) -> Self {
        self.env = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A probe answering from a closure, counting its calls.
    struct FnProbe<F> {
        answer: F,
        calls: AtomicUsize,
    }

    fn probe<F>(answer: F) -> FnProbe<F>
    where
        F: Fn(&RuntimeConfig) -> Result<String, String> + Send + Sync,
    {
        FnProbe {
            answer,
            calls: AtomicUsize::new(0),
        }
    }

    #[async_trait]
    impl<F> VersionProbe for FnProbe<F>
    where
        F: Fn(&RuntimeConfig) -> Result<String, String> + Send + Sync,
    {
        async fn version(&self, runtime: &RuntimeConfig) -> Result<String, String> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            (self.answer)(runtime)
        }
    }

    fn fixed(version: &str) -> FnProbe<impl Fn(&RuntimeConfig) -> Result<String, String>> {
        let version = version.to_owned();
        probe(move |_| Ok(version.clone()))
    }

    /// Runs the version command on the host (no sandbox) and returns stdout + stderr.
    struct HostProbe;

    #[async_trait]
    impl VersionProbe for HostProbe {
        async fn version(&self, runtime: &RuntimeConfig) -> Result<String, String> {
            let (program, args) = runtime.version_argv.split_first().ok_or("empty argv")?;
            let output = tokio::process::Command::new(program)
                .args(args)
                .envs(&runtime.env)
                .output()
                .await
                .map_err(|e| e.to_string())?;
            if !output.status.success() {
                return Err(format!("exited with {}", output.status));
            }
            let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&output.stderr));
            Ok(text)
        }
    }

    fn everything() -> Vec<PathBuf> {
        vec![PathBuf::from("/")]
    }

    /// An interpreted runtime whose every command is `program`.
    fn interpreted(name: &str, aliases: &[&str], program: &str) -> RuntimeConfig {
        runtime(name, aliases, "main.x")
            .version(&[program, "--version"])
            .run(&[program, "main.x"])
    }

    async fn detect_err(configs: Vec<RuntimeConfig>) -> RuntimeConfigError {
        Registry::detect(configs, &everything(), &fixed("X 1.0"))
            .await
            .expect_err("config should be rejected")
    }

    fn skip_reason<'a>(detected: &'a Detected, name: &str) -> &'a str {
        detected
            .skipped
            .iter()
            .find(|(skipped, _)| skipped == name)
            .map(|(_, reason)| reason.as_str())
            .unwrap_or_else(|| panic!("{name} not skipped: {:?}", detected.skipped))
    }

    fn write_executable(path: &Path) {
        fs::write(path, "#!/bin/sh\necho 1.0\n").unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[tokio::test]
    async fn defaults_keep_exactly_the_runtimes_installed_here() {
        let configs = default_runtimes();
        let installed: Vec<String> = configs
            .iter()
            .filter(|c| {
                let mut programs = vec![&c.version_argv[0], &c.run_argv[0]];
                programs.extend(c.compile_argv.as_ref().map(|argv| &argv[0]));
                programs
                    .iter()
                    .filter(|p| p.starts_with('/'))
                    .all(|p| Path::new(p).exists())
            })
            .map(|c| c.name.clone())
            .collect();

        let detected = Registry::detect(configs.clone(), &everything(), &fixed("X 1.0\n"))
            .await
            .unwrap();

        let found: Vec<&str> = detected
            .registry
            .runtimes
            .keys()
            .map(String::as_str)
            .collect();
        let mut expected: Vec<&str> = installed.iter().map(String::as_str).collect();
        expected.sort_unstable();
        assert_eq!(found, expected, "skipped: {:?}", detected.skipped);
        assert_eq!(
            detected.skipped.len() + found.len(),
            configs.len(),
            "every runtime is either found or skipped"
        );
        for must in ["bash", "python3", "c", "cpp"] {
            assert!(
                found.contains(&must),
                "{must} missing: {:?}",
                detected.skipped
            );
        }
        for runtime in detected.registry.list() {
            assert_eq!(runtime.version, "X 1.0");
        }
        for (name, reason) in &detected.skipped {
            assert!(reason.contains("not found"), "{name}: {reason}");
        }
    }

    #[tokio::test]
    async fn java_behind_etc_alternatives_needs_etc_alternatives_visible() {
        if !Path::new("/usr/bin/java").exists() {
            return; // nothing to show on a host without Java
        }
        let java: Vec<RuntimeConfig> = default_runtimes()
            .into_iter()
            .filter(|c| c.name == "java")
            .collect();
        let without = [
            "/usr", "/bin", "/lib", "/lib64", "/sbin", "/opt", "/etc/ssl",
        ]
        .map(PathBuf::from);
        let detected = Registry::detect(java.clone(), &without, &fixed("v"))
            .await
            .unwrap();
        let reason = skip_reason(&detected, "java");
        assert!(
            reason.contains("/etc/alternatives/java") && reason.contains("not visible"),
            "{reason}"
        );

        let mut with = without.to_vec();
        with.push(PathBuf::from("/etc/alternatives"));
        let detected = Registry::detect(java, &with, &fixed("v")).await.unwrap();
        assert!(
            detected.registry.get("java").is_some(),
            "{:?}",
            detected.skipped
        );
    }

    #[tokio::test]
    async fn the_host_reports_real_versions() {
        let detected = Registry::detect(
            default_runtimes(),
            &["/usr", "/bin", "/lib", "/lib64", "/etc/alternatives"].map(PathBuf::from),
            &HostProbe,
        )
        .await
        .unwrap();
        let python = detected
            .registry
            .get("python3")
            .expect("python3 on this host");
        assert!(
            python.version.starts_with("Python 3."),
            "{}",
            python.version
        );
        if let Some(java) = detected.registry.get("java") {
            // On stderr, and only the first of three lines.
            assert!(java.version.contains("version \""), "{}", java.version);
            assert!(!java.version.contains('\n'));
        }
        eprintln!(
            "{:#?}\nskipped: {:#?}",
            detected.registry.list(),
            detected.skipped
        );
    }

    #[tokio::test]
    async fn a_program_outside_the_roots_is_skipped_as_not_visible() {
        let tmp = tempfile::tempdir().unwrap();
        let inside = tmp.path().join("usr");
        let outside = tmp.path().join("root");
        fs::create_dir_all(inside.join("bin")).unwrap();
        fs::create_dir_all(outside.join(".pyenv/shims")).unwrap();
        write_executable(&outside.join(".pyenv/shims/python3"));
        write_executable(&inside.join("bin/python3.11"));
        // The pyenv case: a link the sandbox can see, pointing where it cannot.
        symlink(
            outside.join(".pyenv/shims/python3"),
            inside.join("bin/shim"),
        )
        .unwrap();
        // The Debian case: a relative link within the visible tree.
        symlink("python3.11", inside.join("bin/python3")).unwrap();

        let shim_path = outside.join(".pyenv/shims/python3");
        let configs = vec![
            interpreted("direct", &[], shim_path.to_str().unwrap()),
            interpreted("linked", &[], inside.join("bin/shim").to_str().unwrap()),
            interpreted("good", &[], inside.join("bin/python3").to_str().unwrap()),
        ];
        let probe = fixed("Python 3.11.2");
        let detected = Registry::detect(configs, std::slice::from_ref(&inside), &probe)
            .await
            .unwrap();

        let direct = skip_reason(&detected, "direct");
        assert!(direct.contains("not visible in the sandbox"), "{direct}");
        assert!(direct.starts_with("version_argv[0] "), "{direct}");
        let linked = skip_reason(&detected, "linked");
        assert!(
            linked.contains(&format!("resolves to {}", shim_path.display()))
                && linked.contains("not visible in the sandbox"),
            "{linked}"
        );
        let good = detected.registry.get("good").expect("good is found");
        assert_eq!(good.version, "Python 3.11.2");
        assert_eq!(
            probe.calls.load(Ordering::SeqCst),
            1,
            "skipped runtimes are not probed"
        );
    }

    #[tokio::test]
    async fn missing_broken_and_non_executable_programs_are_skipped() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        fs::write(dir.join("data"), "not a program").unwrap();
        symlink(dir.join("nowhere"), dir.join("dangling")).unwrap();
        symlink(dir.join("loop-b"), dir.join("loop-a")).unwrap();
        symlink(dir.join("loop-a"), dir.join("loop-b")).unwrap();
        let path = |name: &str| dir.join(name).to_str().unwrap().to_owned();
        let configs = vec![
            interpreted("missing", &[], &path("nope")),
            interpreted("dangling", &[], &path("dangling")),
            interpreted("data", &[], &path("data")),
            interpreted("dir", &[], dir.to_str().unwrap()),
            interpreted("loop", &[], &path("loop-a")),
        ];
        let detected = Registry::detect(configs, &[dir.to_path_buf()], &fixed("1"))
            .await
            .unwrap();
        assert!(detected.registry.is_empty());
        assert!(skip_reason(&detected, "missing").contains("not found"));
        let dangling = skip_reason(&detected, "dangling");
        assert!(
            dangling.contains("resolves to") && dangling.contains("not found"),
            "{dangling}"
        );
        assert!(skip_reason(&detected, "data").contains("not executable"));
        assert!(skip_reason(&detected, "dir").contains("not a file"));
        assert!(skip_reason(&detected, "loop").contains("symbolic links"));
        let order: Vec<&str> = detected.skipped.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(order, ["missing", "dangling", "data", "dir", "loop"]);
    }

    #[tokio::test]
    async fn every_program_of_a_runtime_is_checked_and_workspace_programs_are_not() {
        let tmp = tempfile::tempdir().unwrap();
        let tool = tmp.path().join("cc");
        write_executable(&tool);
        let tool = tool.to_str().unwrap();
        let missing = tmp.path().join("missing").to_str().unwrap().to_owned();

        let compiled = runtime("compiled", &[], "main.c")
            .version(&[tool, "--version"])
            .compile(&[tool, "main.c"])
            .run(&["./main"]);
        let no_compiler = RuntimeConfig {
            name: "no-compiler".into(),
            compile_argv: Some(vec![missing.clone(), "main.c".into()]),
            ..compiled.clone()
        };
        let no_runner = RuntimeConfig {
            name: "no-runner".into(),
            run_argv: vec![missing, "Main".into()],
            ..compiled.clone()
        };
        let detected = Registry::detect(
            vec![compiled, no_compiler, no_runner],
            &[tmp.path().to_path_buf()],
            &fixed("cc 1"),
        )
        .await
        .unwrap();
        assert!(detected.registry.get("compiled").is_some());
        assert!(skip_reason(&detected, "no-compiler").starts_with("compile_argv[0] "));
        assert!(skip_reason(&detected, "no-runner").starts_with("run_argv[0] "));
    }

    #[tokio::test]
    async fn roots_are_compared_canonically_and_missing_roots_ignored() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("usr-bin");
        fs::create_dir(&real).unwrap();
        write_executable(&real.join("tool"));
        // Merged /usr: `/bin` → `usr/bin`; programs and roots may be named either way.
        symlink("usr-bin", tmp.path().join("bin")).unwrap();
        let via_link = tmp.path().join("bin/tool");
        let roots = [tmp.path().join("bin"), tmp.path().join("does-not-exist")];
        let detected = Registry::detect(
            vec![interpreted("tool", &[], via_link.to_str().unwrap())],
            &roots,
            &fixed("tool 2"),
        )
        .await
        .unwrap();
        assert!(
            detected.registry.get("tool").is_some(),
            "{:?}",
            detected.skipped
        );
    }

    #[tokio::test]
    async fn duplicate_names_and_aliases_are_config_errors() {
        let a = interpreted("python3", &["python", "py"], "/usr/bin/python3");
        let err = detect_err(vec![a.clone(), interpreted("python", &[], "/x")]).await;
        assert_eq!(
            err,
            RuntimeConfigError::Duplicate {
                runtime: "python".into(),
                field: "name",
                value: "python".into(),
                other: "python3".into(),
            }
        );
        assert_eq!(
            err.to_string(),
            r#"runtime "python": name "python" is already used by runtime "python3""#
        );

        let err = detect_err(vec![a.clone(), interpreted("pypy", &["py"], "/x")]).await;
        assert!(
            matches!(&err, RuntimeConfigError::Duplicate { field: "aliases", value, other, .. }
                if value == "py" && other == "python3"),
            "{err}"
        );

        let err = detect_err(vec![a.clone(), interpreted("python3", &[], "/x")]).await;
        assert!(matches!(
            err,
            RuntimeConfigError::Duplicate { field: "name", .. }
        ));

        let err = detect_err(vec![interpreted("python3", &["py", "py"], "/x")]).await;
        assert!(matches!(
            err,
            RuntimeConfigError::Duplicate {
                field: "aliases",
                ..
            }
        ));
        let err = detect_err(vec![interpreted("python3", &["python3"], "/x")]).await;
        assert!(matches!(
            err,
            RuntimeConfigError::Duplicate {
                field: "aliases",
                ..
            }
        ));
    }

    #[tokio::test]
    async fn names_must_be_short_lowercase_words() {
        for bad in ["", "Python", "py thon", "-py", ".", "c#", &"a".repeat(33)] {
            let err = detect_err(vec![interpreted(bad, &[], "/x")]).await;
            assert!(
                matches!(&err, RuntimeConfigError::InvalidName { field: "name", value, .. } if value == bad),
                "{bad:?}: {err}"
            );
        }
        let err = detect_err(vec![interpreted("py", &["PY"], "/x")]).await;
        assert!(matches!(
            err,
            RuntimeConfigError::InvalidName {
                field: "aliases",
                ..
            }
        ));
        // Real names with punctuation are fine (the program is missing, so it is only skipped).
        let detected = Registry::detect(
            vec![interpreted(
                "c++",
                &["g++", "c++17", "x.y_z-1"],
                "/nonexistent",
            )],
            &everything(),
            &fixed("1"),
        )
        .await
        .unwrap();
        assert!(skip_reason(&detected, "c++").contains("not found"));
    }

    #[tokio::test]
    async fn source_file_must_be_a_plain_file_name() {
        for bad in ["", "../x", "a/b", "/main.py", "..", ".", "a\0b"] {
            let config = RuntimeConfig {
                source_file: bad.into(),
                ..interpreted("py", &[], "/usr/bin/python3")
            };
            let err = detect_err(vec![config]).await;
            assert!(
                matches!(&err, RuntimeConfigError::InvalidSourceFile { value, .. } if value == bad),
                "{bad:?}: {err}"
            );
            assert!(
                err.to_string().starts_with(r#"runtime "py": source_file "#),
                "{err}"
            );
        }
    }

    #[tokio::test]
    async fn argv_must_be_non_empty_and_start_with_an_absolute_path() {
        let base = interpreted("py", &[], "/usr/bin/python3");
        let err = detect_err(vec![RuntimeConfig {
            run_argv: vec![],
            ..base.clone()
        }])
        .await;
        assert_eq!(
            err.to_string(),
            r#"runtime "py": run_argv must not be empty"#
        );

        let err = detect_err(vec![RuntimeConfig {
            version_argv: vec!["python3".into(), "--version".into()],
            ..base.clone()
        }])
        .await;
        assert!(
            matches!(&err, RuntimeConfigError::RelativeProgram { field: "version_argv", program, .. } if program == "python3"),
            "{err}"
        );
        assert!(err.to_string().contains("does not search PATH"), "{err}");

        // `./main` is the compile step's output: only a compiled runtime may run it.
        let err = detect_err(vec![RuntimeConfig {
            run_argv: vec!["./main".into()],
            ..base.clone()
        }])
        .await;
        assert!(matches!(
            err,
            RuntimeConfigError::RelativeProgram {
                field: "run_argv",
                ..
            }
        ));
        let compiled = RuntimeConfig {
            compile_argv: Some(vec!["/usr/bin/gcc".into(), "main.c".into()]),
            run_argv: vec!["./main".into()],
            ..base.clone()
        };
        assert!(
            Registry::detect(vec![compiled.clone()], &everything(), &fixed("1"))
                .await
                .is_ok()
        );
        for bad in ["main", "../main", "./a/main", "./"] {
            let err = detect_err(vec![RuntimeConfig {
                run_argv: vec![bad.into()],
                ..compiled.clone()
            }])
            .await;
            assert!(
                matches!(
                    err,
                    RuntimeConfigError::RelativeProgram {
                        field: "run_argv",
                        ..
                    }
                ),
                "{bad}"
            );
        }

        let err = detect_err(vec![RuntimeConfig {
            compile_argv: Some(vec![]),
            ..base.clone()
        }])
        .await;
        assert!(matches!(
            err,
            RuntimeConfigError::EmptyArgv {
                field: "compile_argv",
                ..
            }
        ));

        let err = detect_err(vec![RuntimeConfig {
            run_argv: vec!["/usr/bin/python3".into(), "a\0b".into()],
            ..base.clone()
        }])
        .await;
        assert!(matches!(
            err,
            RuntimeConfigError::NulInArgv {
                field: "run_argv",
                ..
            }
        ));

        let err = detect_err(vec![RuntimeConfig {
            env: BTreeMap::from([("A=B".into(), "1".into())]),
            ..base
        }])
        .await;
        assert!(matches!(err, RuntimeConfigError::InvalidEnv { .. }));
    }

    #[tokio::test]
    async fn a_failing_probe_skips_the_runtime_with_its_reason() {
        let probe = probe(|config: &RuntimeConfig| match config.name.as_str() {
            "bash" => Err("exit status 127: error while loading shared libraries".into()),
            "sh" => Ok("  \n\n".into()),
            _ => Ok("GNU bash, version 5.2.15(1)-release\nCopyright".into()),
        });
        let detected = Registry::detect(
            vec![
                interpreted("bash", &[], "/bin/bash"),
                interpreted("sh", &[], "/bin/sh"),
                interpreted("ok", &[], "/bin/bash"),
            ],
            &everything(),
            &probe,
        )
        .await
        .unwrap();
        assert_eq!(
            detected.skipped,
            [
                (
                    "bash".to_owned(),
                    "version probe failed: exit status 127: error while loading shared libraries"
                        .to_owned()
                ),
                (
                    "sh".to_owned(),
                    "the version command printed nothing".to_owned()
                ),
            ]
        );
        assert_eq!(
            detected.registry.get("ok").map(|r| r.version.as_str()),
            Some("GNU bash, version 5.2.15(1)-release")
        );
    }

    #[tokio::test]
    async fn the_version_is_the_first_non_empty_trimmed_line() {
        let java = "\n   \nopenjdk version \"17.0.15\" 2025-04-15  \r\nOpenJDK Runtime Environment (build 17.0.15+6-Debian-1deb12u1)\nOpenJDK 64-Bit Server VM\n";
        let detected = Registry::detect(
            vec![interpreted("java", &[], "/bin/sh")],
            &everything(),
            &fixed(java),
        )
        .await
        .unwrap();
        assert_eq!(
            detected.registry.get("java").map(|r| r.version.as_str()),
            Some(r#"openjdk version "17.0.15" 2025-04-15"#)
        );
    }

    #[tokio::test]
    async fn a_hung_probe_is_skipped_after_the_timeout() {
        struct Hang;
        #[async_trait]
        impl VersionProbe for Hang {
            async fn version(&self, _: &RuntimeConfig) -> Result<String, String> {
                futures::future::pending().await
            }
        }
        let detected = detect_with_timeout(
            vec![interpreted("sh", &[], "/bin/sh")],
            &everything(),
            &Hang,
            Duration::from_millis(20),
        )
        .await
        .unwrap();
        assert!(detected.registry.is_empty());
        assert!(skip_reason(&detected, "sh").contains("timed out"));
    }

    #[tokio::test]
    async fn probes_run_concurrently() {
        struct Slow;
        #[async_trait]
        impl VersionProbe for Slow {
            async fn version(&self, _: &RuntimeConfig) -> Result<String, String> {
                tokio::time::sleep(Duration::from_millis(300)).await;
                Ok("1".into())
            }
        }
        let configs = (0..5)
            .map(|i| interpreted(&format!("sh{i}"), &[], "/bin/sh"))
            .collect();
        let start = std::time::Instant::now();
        let detected = Registry::detect(configs, &everything(), &Slow)
            .await
            .unwrap();
        assert_eq!(detected.registry.len(), 5);
        // One after the other would take 1.5 s.
        assert!(
            start.elapsed() < Duration::from_millis(1200),
            "{:?}",
            start.elapsed()
        );
    }

    #[tokio::test]
    async fn get_finds_names_and_aliases_and_list_is_sorted() {
        let compiled = runtime("c", &["gcc"], "main.c")
            .version(&["/bin/sh"])
            .compile(&["/bin/sh", "main.c"])
            .run(&["./main"]);
        let detected = Registry::detect(
            vec![
                interpreted("python3", &["python", "py"], "/bin/sh"),
                compiled,
                interpreted("bash", &[], "/bin/sh"),
            ],
            &everything(),
            &fixed("v1"),
        )
        .await
        .unwrap();
        let registry = detected.registry;
        assert_eq!(registry.get("py").map(|r| r.name.as_str()), Some("python3"));
        assert_eq!(
            registry.get("python").map(|r| r.name.as_str()),
            Some("python3")
        );
        assert_eq!(
            registry.get("python3").map(|r| r.name.as_str()),
            Some("python3")
        );
        assert_eq!(registry.get("gcc").map(|r| r.name.as_str()), Some("c"));
        assert!(
            registry.get("Python").is_none(),
            "lookups are case-sensitive"
        );
        assert!(registry.get("pyt").is_none());

        let list = registry.list();
        let names: Vec<&str> = list.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["bash", "c", "python3"]);
        let compiled: Vec<bool> = list.iter().map(|r| r.compiled).collect();
        assert_eq!(compiled, [false, true, false]);
        assert_eq!(
            serde_json::to_value(&list[2]).unwrap(),
            serde_json::json!({
                "name": "python3", "version": "v1", "aliases": ["python", "py"], "compiled": false
            })
        );
    }

    #[test]
    fn configs_read_from_toml_and_reject_unknown_fields() {
        #[derive(Deserialize)]
        struct Runs {
            runtimes: Vec<RuntimeConfig>,
        }
        let runs: Runs = toml::from_str(
            r#"
            [[runtimes]]
            name = "python3"
            aliases = ["py"]
            version_argv = ["/usr/bin/python3", "--version"]
            source_file = "main.py"
            run_argv = ["/usr/bin/python3", "main.py"]

            [[runtimes]]
            name = "c"
            version_argv = ["/usr/bin/gcc", "--version"]
            source_file = "main.c"
            compile_argv = ["/usr/bin/gcc", "-o", "main", "main.c"]
            run_argv = ["./main"]
            env = { PATH = "/usr/bin:/bin" }
            "#,
        )
        .unwrap();
        assert_eq!(runs.runtimes[0].aliases, ["py"]);
        assert!(!runs.runtimes[0].compiled());
        assert!(runs.runtimes[1].compiled());
        assert_eq!(runs.runtimes[1].env["PATH"], "/usr/bin:/bin");

        let err = toml::from_str::<RuntimeConfig>(
            r#"
            name = "py"
            version_argv = ["/usr/bin/python3"]
            source_file = "main.py"
            run_argv = ["/usr/bin/python3"]
            run_env = {}
            "#,
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(err.contains("unknown field `run_env`"), "{err}");

        // The defaults survive a round trip, so `config default` can print them.
        for config in default_runtimes() {
            let text = toml::to_string(&config).unwrap();
            assert_eq!(toml::from_str::<RuntimeConfig>(&text).unwrap(), config);
        }
    }
}
