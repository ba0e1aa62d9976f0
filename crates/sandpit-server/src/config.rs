//! Typed configuration: defaults → TOML file → `SANDPIT_SECTION__KEY` environment → `*_file`
//! variants for every secret. [`Config::load`] does the layering; [`DEFAULT_CONFIG_TOML`] is the
//! commented file `sandpit config default` prints (a test keeps it equal to the defaults).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// Top-level keys the environment may set. Other `SANDPIT_*` variables (for example the test
/// tooling's `SANDPIT_TEST_PG_URL`) are not configuration and are ignored.
const SECTIONS: &[&str] = &[
    "data_dir",
    "server",
    "database",
    "auth",
    "rate_limit",
    "log",
    "sandbox",
    "runs",
    "judge0",
    "sessions",
    "labs",
    "jobs",
    "projects",
    "apps",
    "user_databases",
    "docker",
    "cluster",
    "kubernetes",
    "llm",
];

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where sandpit keeps its SQLite database and generated signing secret.
    pub data_dir: PathBuf,
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub auth: AuthConfig,
    pub rate_limit: RateLimitConfig,
    pub log: LogConfig,
    pub sandbox: SandboxConfig,
    pub runs: RunsConfig,
    pub sessions: SessionsConfig,
    pub labs: LabsConfig,
    pub jobs: JobsConfig,
    pub projects: ProjectsConfig,
    pub apps: crate::apps::config::AppsConfig,
    /// Users' own databases (a SQLite file each by default).
    pub user_databases: crate::databases::config::UserDatabasesConfig,
    /// The docker environment (sessions with a container engine of their own).
    pub docker: crate::docker::config::DockerConfig,
    /// Replicas on one database: how this one is reached, heartbeats, shared workspaces.
    pub cluster: crate::cluster::ClusterConfig,
    /// The Kubernetes sandbox backend's settings (namespace, image, agent_port, warm_pods …),
    /// read by that backend (crates/sandpit-kube, `KubeConfig`, which checks every key) when
    /// `sandbox.backend = "kubernetes"`; kept as a table so a build without it still starts.
    pub kubernetes: std::collections::BTreeMap<String, serde_json::Value>,
    /// Language models for hints and explanations (none by default).
    pub llm: crate::llm::LlmConfig,
    /// The Judge0-compatible API (`/judge0`): callbacks, batch and zip sizes.
    pub judge0: crate::compat::judge0::Judge0Config,
}

/// Labs: where more lab folders come from, and the learner-facing limits of judge and hints.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LabsConfig {
    /// Folders of labs loaded besides the built-in ones: each folder holding a `lab.toml`,
    /// or each sub-folder that does. A broken lab is skipped with a logged reason.
    pub dirs: Vec<PathBuf>,
    /// Hint and explain requests per session per minute (beyond: 429 with Retry-After).
    pub hints_per_minute: u32,
}

impl Default for LabsConfig {
    fn default() -> Self {
        Self {
            dirs: Vec::new(),
            hints_per_minute: 5,
        }
    }
}

/// Projects: a user's files kept in the store, with agent jobs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProjectsConfig {
    /// Projects one user may have.
    pub max_per_user: u32,
    /// Files per project, bytes per file and per project, and per archive upload.
    pub max_files: u64,
    pub max_file_bytes: u64,
    pub max_bytes: u64,
    pub max_archive_bytes: u64,
}

impl Default for ProjectsConfig {
    fn default() -> Self {
        Self {
            max_per_user: 20,
            max_files: 1000,
            max_file_bytes: 8 << 20,
            max_bytes: 64 << 20,
            max_archive_bytes: 32 << 20,
        }
    }
}

/// The durable job queue's workers (asynchronous runs, and later deploys and agent jobs).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobsConfig {
    /// A worker holds a job by a lease it renews every third of this; a job whose server died
    /// runs again about this long after.
    pub lease_seconds: u64,
    /// How often workers look for jobs enqueued by other server processes (their own are
    /// taken at once).
    pub poll_ms: u64,
    /// One attempt's time limit, per job kind unless `kind_timeout_seconds` names it.
    pub timeout_seconds: u64,
    pub kind_timeout_seconds: std::collections::BTreeMap<String, u64>,
    /// Attempts before a job that keeps failing (retryably) fails.
    pub max_attempts: u32,
    /// Retries wait `backoff_base_ms · 2^(attempt-1)` (at most `backoff_max_seconds`), half
    /// of it random.
    pub backoff_base_ms: u64,
    pub backoff_max_seconds: u64,
    /// Finished jobs (and asynchronous runs' results) are kept this long.
    pub keep_finished_days: u64,
}

impl Default for JobsConfig {
    fn default() -> Self {
        Self {
            lease_seconds: 30,
            poll_ms: 500,
            timeout_seconds: 300,
            kind_timeout_seconds: std::collections::BTreeMap::new(),
            max_attempts: 3,
            backoff_base_ms: 1000,
            backoff_max_seconds: 300,
            keep_finished_days: 7,
        }
    }
}

impl JobsConfig {
    /// The time limit of one attempt of `kind`.
    pub fn timeout(&self, kind: &str) -> Duration {
        Duration::from_secs(
            self.kind_timeout_seconds
                .get(kind)
                .copied()
                .unwrap_or(self.timeout_seconds),
        )
    }
}

/// Learners' sessions: a sandbox with a persistent workspace and a time to live.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionsConfig {
    /// Live sessions one user may have at once (beyond: 409).
    pub max_per_user: u32,
    /// Time to live of a new session, and the most a create or an extend may ask for.
    pub default_ttl_seconds: u64,
    pub max_ttl_seconds: u64,
    /// How often expired sessions are looked for.
    pub reap_interval_seconds: u64,
    /// Each session's sandbox: memory, processes, CPU (thousandths of a core), workspace disk,
    /// `/tmp`.
    pub memory_mb: u64,
    pub processes: u64,
    pub cpu_millicores: u32,
    pub workspace_mb: u64,
    pub tmp_mb: u64,
    /// Workspace files: entries a workspace can hold (files, directories, links — however made),
    /// largest file through the files API, largest archive upload or download.
    pub max_files: u64,
    pub max_file_bytes: u64,
    pub max_archive_bytes: u64,
    /// `POST /sessions/{id}/exec`: default and largest timeout, output cap.
    pub exec_default_timeout_ms: u64,
    pub exec_max_timeout_ms: u64,
    pub exec_output_bytes: u64,
    /// The web terminal.
    pub terminal: crate::terminal::TerminalConfig,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        Self {
            max_per_user: 3,
            default_ttl_seconds: 30 * 60,
            max_ttl_seconds: 4 * 60 * 60,
            reap_interval_seconds: 15,
            memory_mb: 512,
            processes: 256,
            cpu_millicores: 1000,
            workspace_mb: 256,
            tmp_mb: 64,
            max_files: 10_000,
            max_file_bytes: 8 << 20,
            max_archive_bytes: 32 << 20,
            exec_default_timeout_ms: 10_000,
            exec_max_timeout_ms: 120_000,
            exec_output_bytes: 1 << 20,
            terminal: crate::terminal::TerminalConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SandboxConfig {
    /// `native`: Linux namespaces, cgroups (v1 or v2) and seccomp on this host; needs root.
    /// `kubernetes`: a pod per sandbox (`[kubernetes]`; a build with the `kubernetes` feature).
    pub backend: SandboxBackend,
    /// The agent program (and arguments) started in every sandbox. Empty: this binary's
    /// `agent` subcommand.
    pub agent: Vec<String>,
    /// The first uid of sandboxed code; each live sandbox runs as its own uid (gid = uid) from
    /// `uid .. uid + uids`, so sandboxes share no per-user kernel limit. No host accounts are
    /// needed; `uids` also bounds how many sandboxes exist at once.
    pub uid: u32,
    pub uids: u32,
    /// Filter system calls (mount, ptrace, new namespaces, kernel modules …) with seccomp.
    pub seccomp: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SandboxBackend {
    Native,
    /// One pod per sandbox ([kubernetes]); needs a build with the `kubernetes` feature.
    Kubernetes,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunsConfig {
    /// Runs executing at once. 0: one per CPU core.
    pub max_concurrent: usize,
    /// Runs that may wait for a free slot; beyond that new runs get 503. 0: 8 per CPU core.
    pub max_queued: usize,
    /// Sandboxes kept ready so a run does not wait for one to be created (at least one per run
    /// slot when above 0; 0 turns the pool off).
    pub warm_pool: usize,
    /// Limits of a run that asks for none.
    pub default_limits: RunLimits,
    /// The most a run may ask for; a request above them is refused (422).
    pub max_limits: RunLimits,
    /// Limits of the compile step of compiled languages.
    pub compile_limits: RunLimits,
    /// Files per run, test cases per run.
    pub max_files: usize,
    pub max_tests: usize,
    /// Largest run request (files and stdin together), in bytes.
    pub max_request_bytes: usize,
    /// Languages. Empty: the built-in list (bash, python3, node, c, cpp, java, rust, go), each
    /// offered when installed. See `RuntimeConfig` in the docs for the fields.
    pub runtimes: Vec<crate::runs::runtimes::RuntimeConfig>,
}

/// Limits of one run (or of its compile step).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunLimits {
    /// Wall-clock time per execution.
    pub wall_ms: u64,
    /// CPU time per execution.
    pub cpu_ms: u64,
    /// Memory of the whole sandbox, files in /tmp and the workspace included.
    pub memory_mb: u64,
    /// Processes and threads at once.
    pub processes: u64,
    /// stdout and stderr together, per execution.
    pub output_bytes: u64,
    /// Largest file a program may write.
    pub file_size_bytes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on; port 0 picks a free port (tests).
    pub bind: SocketAddr,
    /// The address users reach sandpit at. OAuth redirect URIs are built from it, and cookies are
    /// marked `Secure` when it is `https://`. Empty: derived from `bind`.
    pub public_url: String,
    /// Largest accepted request body, in bytes.
    pub body_limit_bytes: usize,
    /// Take the client address from the last `X-Forwarded-For` entry (only behind a proxy you run).
    pub trust_forwarded_for: bool,
    /// Origins allowed to call the API from another site (CORS), e.g. `https://app.example.com`.
    pub cors_allowed_origins: Vec<String>,
    /// How long in-flight requests may take to finish after SIGINT/SIGTERM.
    pub shutdown_grace_seconds: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://path?mode=rwc` or `postgres://user@host/db`. Empty: SQLite in `data_dir`.
    #[serde(serialize_with = "serialize_secret_opt")]
    pub url: Option<SecretString>,
    /// Read the URL (it may hold a password) from this file instead.
    pub url_file: Option<PathBuf>,
    pub max_connections: u32,
    /// Apply pending migrations when `serve` starts.
    pub migrate_on_start: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Key that signs cookies such as the OAuth state; at least 32 bytes. Empty: generated on
    /// first start and kept in `data_dir/secret.key`.
    #[serde(serialize_with = "serialize_secret_opt")]
    pub secret: Option<SecretString>,
    pub secret_file: Option<PathBuf>,
    /// Lifetime of a sign-in (cookie and session token), in hours.
    pub session_ttl_hours: u64,
    /// Name of the session cookie.
    pub cookie_name: String,
    /// Whether anyone may create an account through `POST /api/v1/auth/signup`.
    pub allow_signup: bool,
    pub github: GithubConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GithubConfig {
    /// GitHub sign-in is enabled when both the client id and secret are set.
    pub client_id: String,
    #[serde(serialize_with = "serialize_secret_opt")]
    pub client_secret: Option<SecretString>,
    pub client_secret_file: Option<PathBuf>,
    pub authorize_url: String,
    pub token_url: String,
    pub api_url: String,
    /// Where the browser goes after a successful GitHub sign-in.
    pub redirect_after_login: String,
    /// Timeout for each call to GitHub, in seconds.
    pub timeout_seconds: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Sign-up, login and GitHub sign-in requests per minute per client address.
    pub auth_per_minute: u32,
    /// Other API requests per minute per user (per client address when not signed in).
    pub api_per_minute: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `auto` (JSON unless stdout is a terminal), `json` or `pretty`.
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `sandpit_server=debug,info`; `RUST_LOG` overrides it.
    pub level: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Auto,
    Json,
    Pretty,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("sandpit-data"),
            server: ServerConfig::default(),
            database: DatabaseConfig::default(),
            auth: AuthConfig::default(),
            rate_limit: RateLimitConfig::default(),
            log: LogConfig::default(),
            sandbox: SandboxConfig::default(),
            runs: RunsConfig::default(),
            sessions: SessionsConfig::default(),
            labs: LabsConfig::default(),
            jobs: JobsConfig::default(),
            projects: ProjectsConfig::default(),
            apps: crate::apps::config::AppsConfig::default(),
            user_databases: crate::databases::config::UserDatabasesConfig::default(),
            docker: crate::docker::config::DockerConfig::default(),
            cluster: crate::cluster::ClusterConfig::default(),
            kubernetes: std::collections::BTreeMap::new(),
            llm: crate::llm::LlmConfig::default(),
            judge0: crate::compat::judge0::Judge0Config::default(),
        }
    }
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            backend: SandboxBackend::Native,
            agent: Vec::new(),
            uid: 1_900_000_000,
            uids: 10_000,
            seccomp: true,
        }
    }
}

impl Default for RunsConfig {
    fn default() -> Self {
        Self {
            max_concurrent: 0,
            max_queued: 0,
            warm_pool: 2,
            default_limits: RunLimits {
                wall_ms: 5_000,
                cpu_ms: 3_000,
                memory_mb: 256,
                processes: 64,
                output_bytes: 1 << 20,
                file_size_bytes: 16 << 20,
            },
            max_limits: RunLimits {
                wall_ms: 30_000,
                cpu_ms: 20_000,
                memory_mb: 1024,
                processes: 256,
                output_bytes: 8 << 20,
                file_size_bytes: 64 << 20,
            },
            compile_limits: RunLimits {
                wall_ms: 30_000,
                cpu_ms: 20_000,
                memory_mb: 512,
                processes: 64,
                output_bytes: 1 << 20,
                file_size_bytes: 64 << 20,
            },
            max_files: 32,
            max_tests: 64,
            max_request_bytes: 4 << 20,
            runtimes: Vec::new(),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8000)),
            public_url: String::new(),
            body_limit_bytes: 1024 * 1024,
            trust_forwarded_for: false,
            cors_allowed_origins: Vec::new(),
            shutdown_grace_seconds: 10,
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: None,
            url_file: None,
            max_connections: 8,
            migrate_on_start: true,
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            secret: None,
            secret_file: None,
            session_ttl_hours: 24 * 7,
            cookie_name: "sandpit_session".into(),
            allow_signup: true,
            github: GithubConfig::default(),
        }
    }
}

impl Default for GithubConfig {
    fn default() -> Self {
        Self {
            client_id: String::new(),
            client_secret: None,
            client_secret_file: None,
            authorize_url: "https://github.com/login/oauth/authorize".into(),
            token_url: "https://github.com/login/oauth/access_token".into(),
            api_url: "https://api.github.com".into(),
            redirect_after_login: "/".into(),
            timeout_seconds: 10,
        }
    }
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            auth_per_minute: 10,
            api_per_minute: 600,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Auto,
            level: "info".into(),
        }
    }
}

/// Secrets are never written back out (the default config has none, and `Debug` redacts them).
pub(crate) fn serialize_secret_opt<S: serde::Serializer>(
    _: &Option<SecretString>,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.serialize_none()
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid configuration: {0}")]
    Parse(#[from] Box<figment::Error>),
    #[error("{key} and {key}_file are both set; set one")]
    BothSecretSources { key: String },
    #[error("cannot read {key}_file {path}")]
    ReadSecretFile {
        key: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{key}: {problem}")]
    Invalid { key: &'static str, problem: String },
    #[error(transparent)]
    Llm(#[from] crate::llm::LlmConfigError),
}

impl Config {
    /// Layers defaults, the TOML file (if given), and the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_from(file, Env::prefixed("SANDPIT_"))
    }

    /// Like [`Config::load`] with an explicit environment provider (tests pass a fixed one).
    pub fn load_from(file: Option<&Path>, env: Env) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            figment = figment.merge(Toml::file_exact(path));
        }
        let env = env.split("__").filter(|key| {
            let top = key.as_str().split('.').next().unwrap_or_default();
            SECTIONS.iter().any(|s| s.eq_ignore_ascii_case(top))
        });
        let mut config: Config = figment.merge(env).extract().map_err(Box::new)?;
        config.resolve_secret_files()?;
        config.validate()?;
        Ok(config)
    }

    fn resolve_secret_files(&mut self) -> Result<(), ConfigError> {
        resolve_secret(
            "database.url",
            &mut self.database.url,
            &self.database.url_file,
        )?;
        resolve_secret("auth.secret", &mut self.auth.secret, &self.auth.secret_file)?;
        resolve_secret(
            "user_databases.postgres_url",
            &mut self.user_databases.postgres_url,
            &self.user_databases.postgres_url_file,
        )?;
        resolve_secret(
            "auth.github.client_secret",
            &mut self.auth.github.client_secret,
            &self.auth.github.client_secret_file,
        )?;
        for (name, provider) in &mut self.llm.providers {
            resolve_secret(
                &format!("llm.providers.{name}.api_key"),
                &mut provider.api_key,
                &provider.api_key_file,
            )?;
        }
        Ok(())
    }

    /// Where session workspaces live (`cluster.workspaces_dir`, else `data_dir/workspaces`).
    pub fn workspaces_dir(&self) -> PathBuf {
        if self.cluster.workspaces_dir.as_os_str().is_empty() {
            self.data_dir.join("workspaces")
        } else {
            self.cluster.workspaces_dir.clone()
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, problem: &str| ConfigError::Invalid {
            key,
            problem: problem.to_owned(),
        };
        if let Some(secret) = &self.auth.secret
            && secret.expose_secret().len() < 32
        {
            return Err(invalid("auth.secret", "must be at least 32 bytes"));
        }
        if self.auth.session_ttl_hours == 0 {
            return Err(invalid("auth.session_ttl_hours", "must be at least 1"));
        }
        if self.rate_limit.auth_per_minute == 0 || self.rate_limit.api_per_minute == 0 {
            return Err(invalid(
                "rate_limit",
                "limits must be at least 1 per minute",
            ));
        }
        let sandbox = &self.sandbox;
        let uid_end = u64::from(sandbox.uid) + u64::from(sandbox.uids);
        if sandbox.uid == 0
            || sandbox.uids == 0
            || uid_end > u64::from(u32::MAX)
            || (u64::from(sandbox.uid) < 65536 && uid_end > 65534)
        {
            return Err(invalid(
                "sandbox.uid",
                "uid .. uid + uids must be non-empty, exclude root and 65534/65535 (nobody) and end below 2^32",
            ));
        }
        let sessions = &self.sessions;
        if sessions.max_per_user == 0
            || sessions.default_ttl_seconds == 0
            || sessions.default_ttl_seconds > sessions.max_ttl_seconds
            || sessions.reap_interval_seconds == 0
        {
            return Err(invalid(
                "sessions",
                "max_per_user, default_ttl_seconds and reap_interval_seconds must be above 0, default_ttl_seconds at most max_ttl_seconds",
            ));
        }
        if sessions.max_files < 16
            || sessions.max_file_bytes == 0
            || sessions.max_archive_bytes == 0
            || sessions.max_archive_bytes > 60 << 20
        {
            return Err(invalid(
                "sessions",
                "max_files must be at least 16, max_file_bytes above 0, max_archive_bytes between 1 and 62914560",
            ));
        }
        if sessions.memory_mb < 32 || sessions.processes == 0 || sessions.workspace_mb < 8 {
            return Err(invalid(
                "sessions",
                "memory_mb must be at least 32, processes above 0, workspace_mb at least 8",
            ));
        }
        if sessions.exec_default_timeout_ms == 0
            || sessions.exec_default_timeout_ms > sessions.exec_max_timeout_ms
        {
            return Err(invalid(
                "sessions.exec_default_timeout_ms",
                "must be above 0 and at most exec_max_timeout_ms",
            ));
        }
        if self.labs.hints_per_minute == 0 {
            return Err(invalid("labs.hints_per_minute", "must be at least 1"));
        }
        if let Err(e) = sessions.terminal.validate() {
            return Err(invalid("sessions.terminal", &e.to_string()));
        }
        let runs = &self.runs;
        for (key, limits) in [
            ("runs.default_limits", &runs.default_limits),
            ("runs.max_limits", &runs.max_limits),
            ("runs.compile_limits", &runs.compile_limits),
        ] {
            if limits.wall_ms == 0
                || limits.cpu_ms == 0
                || limits.memory_mb < 16
                || limits.processes == 0
                || limits.file_size_bytes == 0
            {
                return Err(invalid(
                    key,
                    "wall_ms, cpu_ms, processes and file_size_bytes must be above 0, memory_mb at least 16",
                ));
            }
        }
        let (d, m) = (&runs.default_limits, &runs.max_limits);
        if d.wall_ms > m.wall_ms
            || d.cpu_ms > m.cpu_ms
            || d.memory_mb > m.memory_mb
            || d.processes > m.processes
            || d.output_bytes > m.output_bytes
            || d.file_size_bytes > m.file_size_bytes
        {
            return Err(invalid(
                "runs.default_limits",
                "must not exceed runs.max_limits",
            ));
        }
        if runs.max_files == 0 || runs.max_tests == 0 || runs.max_request_bytes < 1024 {
            return Err(invalid(
                "runs",
                "max_files and max_tests must be at least 1, max_request_bytes at least 1024",
            ));
        }
        if self.server.body_limit_bytes < 1024 {
            return Err(invalid("server.body_limit_bytes", "must be at least 1024"));
        }
        if !self.server.public_url.is_empty() {
            url::Url::parse(&self.server.public_url)
                .map_err(|e| invalid("server.public_url", &e.to_string()))?;
        }
        for origin in &self.server.cors_allowed_origins {
            axum::http::HeaderValue::from_str(origin)
                .map_err(|_| invalid("server.cors_allowed_origins", "not a valid origin"))?;
        }
        if !self
            .auth
            .cookie_name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(invalid("auth.cookie_name", "use letters, digits and _"));
        }
        let gh = &self.auth.github;
        for (key, value) in [
            ("auth.github.authorize_url", &gh.authorize_url),
            ("auth.github.token_url", &gh.token_url),
            ("auth.github.api_url", &gh.api_url),
        ] {
            url::Url::parse(value).map_err(|e| invalid(key, &e.to_string()))?;
        }
        if !gh.redirect_after_login.starts_with('/') || gh.redirect_after_login.starts_with("//") {
            return Err(invalid(
                "auth.github.redirect_after_login",
                "must be a path on this site, such as /",
            ));
        }
        let jobs = &self.jobs;
        if jobs.lease_seconds < 3 {
            return Err(invalid("jobs.lease_seconds", "must be at least 3"));
        }
        if !(10..=60_000).contains(&jobs.poll_ms) {
            return Err(invalid("jobs.poll_ms", "must be between 10 and 60000"));
        }
        if jobs.timeout_seconds == 0 || jobs.kind_timeout_seconds.values().any(|t| *t == 0) {
            return Err(invalid("jobs.timeout_seconds", "timeouts must be above 0"));
        }
        if jobs.max_attempts == 0 {
            return Err(invalid("jobs.max_attempts", "must be at least 1"));
        }
        let projects = &self.projects;
        if projects.max_per_user == 0
            || projects.max_files == 0
            || projects.max_file_bytes == 0
            || projects.max_bytes < projects.max_file_bytes
            || projects.max_archive_bytes == 0
        {
            return Err(invalid(
                "projects",
                "limits must be above 0, and max_bytes at least max_file_bytes",
            ));
        }
        if jobs.backoff_base_ms == 0 || jobs.backoff_max_seconds == 0 {
            return Err(invalid("jobs.backoff_base_ms", "backoff must be above 0"));
        }
        self.apps.validate()?;
        self.user_databases.validate()?;
        self.docker.validate()?;
        self.cluster.validate()?;
        self.llm.validate()?;
        Ok(())
    }

    /// The public base URL without a trailing slash.
    pub fn public_url(&self, bound: SocketAddr) -> String {
        if self.server.public_url.is_empty() {
            format!("http://{bound}")
        } else {
            self.server.public_url.trim_end_matches('/').to_owned()
        }
    }

    /// The database URL, defaulting to SQLite inside the data directory.
    pub fn database_url(&self) -> SecretString {
        match &self.database.url {
            Some(url) if !url.expose_secret().is_empty() => url.clone(),
            _ => SecretString::from(format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("sandpit.db").display()
            )),
        }
    }

    /// Whether GitHub sign-in is configured.
    pub fn github_enabled(&self) -> bool {
        !self.auth.github.client_id.is_empty()
            && self
                .auth
                .github
                .client_secret
                .as_ref()
                .is_some_and(|s| !s.expose_secret().is_empty())
    }
}

fn resolve_secret(
    key: &str,
    value: &mut Option<SecretString>,
    file: &Option<PathBuf>,
) -> Result<(), ConfigError> {
    let Some(path) = file else { return Ok(()) };
    if value
        .as_ref()
        .is_some_and(|v| !v.expose_secret().is_empty())
    {
        return Err(ConfigError::BothSecretSources {
            key: key.to_owned(),
        });
    }
    let content = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadSecretFile {
        key: key.to_owned(),
        path: path.clone(),
        source,
    })?;
    *value = Some(SecretString::from(
        content.trim_end_matches(['\n', '\r']).to_owned(),
    ));
    Ok(())
}

/// The commented default configuration printed by `sandpit config default`.
pub const DEFAULT_CONFIG_TOML: &str = r#"# sandpit configuration. Every key is optional; these are the defaults.
# Precedence: defaults < this file (--config or SANDPIT_CONFIG) < environment variables named
# SANDPIT_<SECTION>__<KEY> (e.g. SANDPIT_SERVER__BIND, SANDPIT_AUTH__GITHUB__CLIENT_ID).
# Every secret also has a *_file variant (e.g. SANDPIT_AUTH__SECRET_FILE=/run/secrets/key).

# Where the SQLite database and the generated signing secret live.
data_dir = "sandpit-data"

[server]
# Address to listen on (port 0 picks a free port).
bind = "127.0.0.1:8000"
# The address users reach sandpit at; OAuth redirect URIs are built from it and cookies are
# marked Secure when it starts with https://; pages of its origin alone may change things or
# open terminals with the sign-in cookie. Empty: http://<bind> (and localhost for a loopback
# bind, every interface address for 0.0.0.0).
public_url = ""
# Largest accepted request body, in bytes.
body_limit_bytes = 1048576
# Take the client address from X-Forwarded-For (only when behind your own reverse proxy).
trust_forwarded_for = false
# Other sites allowed to call the API from a browser (CORS) and to act with the sign-in cookie,
# e.g. ["https://app.example.com"].
cors_allowed_origins = []
# Seconds in-flight requests get to finish after SIGINT/SIGTERM.
shutdown_grace_seconds = 10

[database]
# sqlite://path?mode=rwc or postgres://user:password@host/db. Empty: SQLite in data_dir.
# url = ""
# url_file = "/run/secrets/database_url"
max_connections = 8
# Apply pending migrations when `serve` starts (`sandpit migrate` does it explicitly).
migrate_on_start = true

[auth]
# Signing key (at least 32 bytes). Empty: generated on first start into data_dir/secret.key.
# secret = ""
# secret_file = "/run/secrets/sandpit_secret"
# Lifetime of a sign-in, in hours.
session_ttl_hours = 168
cookie_name = "sandpit_session"
# Whether anyone may create an account with POST /api/v1/auth/signup.
allow_signup = true

[auth.github]
# GitHub sign-in is enabled when both client_id and client_secret are set.
# The OAuth app's callback URL is <public_url>/api/v1/auth/github/callback.
client_id = ""
# client_secret = ""
# client_secret_file = "/run/secrets/github_client_secret"
authorize_url = "https://github.com/login/oauth/authorize"
token_url = "https://github.com/login/oauth/access_token"
api_url = "https://api.github.com"
# Where the browser lands after signing in with GitHub.
redirect_after_login = "/"
# Timeout for each call to GitHub, in seconds.
timeout_seconds = 10

[rate_limit]
# Sign-up, login and GitHub sign-in requests per minute per client address.
auth_per_minute = 10
# Other API requests per minute per user (per client address when not signed in).
api_per_minute = 600

[log]
# auto (JSON unless stdout is a terminal), json or pretty.
format = "auto"
# A tracing filter such as "info" or "sandpit_server=debug,info"; RUST_LOG overrides it.
level = "info"

[sandbox]
# native: Linux namespaces, cgroups (v1 or v2) and seccomp on this host; needs root. When it
# cannot work here, start-up and /readyz say exactly why and runs are refused (never unsandboxed).
# kubernetes: a pod per sandbox, set up in [kubernetes] (docs/kubernetes.md); needs a build with
# `--features kubernetes`.
backend = "native"
# The agent started in every sandbox. Empty: this binary's `agent` subcommand.
agent = []
# Each live sandbox runs as its own uid (gid = uid) from uid .. uid + uids, so sandboxes share no
# per-user kernel limit (inotify, process counts …); no such accounts are needed on the host. The
# default sits above systemd's container range and below 2^31, clear of subuid ranges and nobody.
uid = 1900000000
uids = 10000
# Filter system calls (mount, ptrace, new namespaces, kernel modules ...) with seccomp.
seccomp = true

[runs]
# Runs executing at once (0: one per CPU core) and runs that may wait for a slot (0: 8 per
# core); beyond that new runs are answered 503 with Retry-After.
max_concurrent = 0
max_queued = 0
# Sandboxes kept ready so a run does not wait for one to be created (at least one per run slot
# when above 0; 0 turns the pool off).
warm_pool = 2
max_files = 32
max_tests = 64
# Largest run request (files and stdin together), in bytes.
max_request_bytes = 4194304
# Languages. Empty: the built-in list (bash, python3, node, c, cpp, java, rust, go), each offered
# when installed. An entry looks like:
# [[runs.runtimes]]
# name = "python3"
# aliases = ["python", "py"]
# version_argv = ["/usr/bin/python3", "--version"]
# source_file = "main.py"
# run_argv = ["/usr/bin/python3", "main.py"]
# compile_argv = ["/usr/bin/gcc", "-O2", "-o", "main", "main.c"]   # compiled languages only
# env = { PYTHONDONTWRITEBYTECODE = "1" }
runtimes = []

# Limits of a run that asks for none; the most a run may ask for; limits of compile steps.
# wall_ms and cpu_ms apply per execution (each test case), memory_mb to the whole sandbox.
[runs.default_limits]
wall_ms = 5000
cpu_ms = 3000
memory_mb = 256
processes = 64
output_bytes = 1048576
file_size_bytes = 16777216

[runs.max_limits]
wall_ms = 30000
cpu_ms = 20000
memory_mb = 1024
processes = 256
output_bytes = 8388608
file_size_bytes = 67108864

[runs.compile_limits]
wall_ms = 30000
cpu_ms = 20000
memory_mb = 512
processes = 64
output_bytes = 1048576
file_size_bytes = 67108864

[labs]
# More lab folders besides the built-in labs (each holds a lab.toml, or its sub-folders do).
dirs = []
# Hint and explain requests per session per minute (beyond: 429 with Retry-After).
hints_per_minute = 5

[jobs]
# Workers hold a job by a lease they renew every third of this; a job whose server died runs
# again about this long after.
lease_seconds = 30
# How often workers look for jobs enqueued by other server processes (their own: at once).
poll_ms = 500
# One attempt's time limit; kind_timeout_seconds sets it per job kind, e.g. { run = 120 }.
timeout_seconds = 300
kind_timeout_seconds = {}
# Attempts before a job that keeps failing fails; retries back off exponentially from
# backoff_base_ms up to backoff_max_seconds, with jitter.
max_attempts = 3
backoff_base_ms = 1000
backoff_max_seconds = 300
# Finished jobs (and asynchronous runs' results) are kept this long.
keep_finished_days = 7

[projects]
# Projects one user may have.
max_per_user = 20
# Files per project; bytes per file, per project, and per archive upload.
max_files = 1000
max_file_bytes = 8388608
max_bytes = 67108864
max_archive_bytes = 33554432

[apps]
# Apps one user may have.
max_per_user = 5
# Serve apps at {app}-{user}.{domain} (a wildcard DNS name pointing here, never a parent of
# this site's host) instead of under /user/{user}/app/{app}/ on this site. The separate domain
# is the safe mode: an app cannot read or set this site's cookies at all, while the path mode
# only strips them from requests and filters the app's Set-Cookie. Empty: the path mode.
domain = ""
# An app with no request for idle_stop_minutes stops (the next request starts it again); one
# not pinned is deleted after idle_delete_hours.
idle_stop_minutes = 30
idle_delete_hours = 24
# Each running app's sandbox: memory, processes, CPU (1000 = one core), workspace size.
memory_mb = 256
pids = 64
cpu_millicores = 500
workspace_mb = 64
# An app's files: how many, and their total bytes.
max_files = 500
max_bytes = 8388608
# How long a new instance has to answer its first HTTP request, and the proxy waits for a
# response.
start_timeout_seconds = 20
response_timeout_seconds = 60
# Versions kept per app for rollbacks (the live one always); log lines kept per app.
keep_versions = 5
log_lines = 1000
# Instances one server runs at once (beyond, the least recently used stops).
max_running = 20

# What apps may import beyond the standard library and their own files: installed packages
# (a requirement naming another is refused, as nothing is downloaded), and modules refused
# even from the standard library.
[apps.python]
packages = ["fastapi", "starlette", "pydantic", "flask", "werkzeug", "jinja2", "markupsafe", "itsdangerous", "click", "uvicorn", "anyio", "sniffio", "h11", "typing_extensions", "psycopg2"]
forbidden = ["subprocess", "_posixsubprocess", "ctypes", "multiprocessing", "pty"]

[apps.node]
packages = ["express"]
forbidden = ["child_process", "cluster", "worker_threads", "vm"]

[user_databases]
# Each user may have one database of their own, which their apps get as DATABASE_URL. Empty:
# a SQLite file each (data_dir/user-databases). Or a PostgreSQL server and an account there
# that may create roles and databases: each user gets a role and a database of their own.
# postgres_url = "postgres://sandpit_admin:secret@db.internal:5432/postgres"
# postgres_url_file = "/run/secrets/user-databases-url"
# The viewer: rows per page or console answer, longest cell sent, how long a statement runs.
max_rows = 200
max_cell_chars = 2000
statement_timeout_ms = 5000
# Connections one user's apps may hold to their PostgreSQL database at once.
max_connections = 10

[docker]
# The docker environment: sessions (and labs with environment = "docker") whose sandbox runs a
# container engine of its own — rootless Podman as `docker`, inside the session's limits. It is
# offered when this host can run it (checked at start-up; /readyz says why not).
enabled = true
# Base images, made by `sandpit images build` (no registry is needed). Empty: data_dir/images.
images_dir = ""
debian_mirror = "http://deb.debian.org/debian"
# Each docker session's engine disk (images, build layers, containers' files) and its entries.
disk_mb = 4096
disk_max_files = 500000
# A docker session gets at least this much memory and this many processes.
memory_mb = 1024
processes = 512

[cluster]
# Several `sandpit serve` processes on one PostgreSQL database serve any session: a request for
# a session whose sandbox another replica runs is forwarded there (docs/cluster.md).
# How the other replicas reach this one (http://host:port). Empty: the bound address
# (127.0.0.1 for 0.0.0.0), right for replicas on one host.
advertise_url = ""
# Heartbeat interval; a replica silent for dead_after_ms is gone, and its sessions start again
# on the next replica that serves them.
heartbeat_ms = 2000
dead_after_ms = 10000
# Where session workspaces live. Empty: data_dir/workspaces. Replicas that take over each
# other's sessions point this at storage they share.
workspaces_dir = ""

[kubernetes]
# Read when sandbox.backend = "kubernetes" (keys and defaults: docs/kubernetes.md): namespace,
# image, agent_port, runtime_class_name, warm_pods, workspace ("pvc" or "pod"),
# storage_class, workspace_size_mb, ready_timeout_ms, api_timeout_ms, api_url,
# service_account, image_pull_policy.

[sessions]
# Live sessions one user may have at once (beyond: 409 session_limit).
max_per_user = 3
# Time to live of a new session; the most a create or an extend may ask for.
default_ttl_seconds = 1800
max_ttl_seconds = 14400
# How often expired sessions are looked for and ended.
reap_interval_seconds = 15
# Each session's sandbox: memory, processes, CPU (1000 = one core), workspace disk, /tmp.
memory_mb = 512
processes = 256
cpu_millicores = 1000
workspace_mb = 256
tmp_mb = 64
# Entries a workspace can hold (however they are made), largest file through the files API,
# largest archive upload or download (bytes).
max_files = 10000
max_file_bytes = 8388608
max_archive_bytes = 33554432
# POST /api/v1/sessions/{id}/exec: default and largest timeout, output cap (bytes).
exec_default_timeout_ms = 10000
exec_max_timeout_ms = 120000
exec_output_bytes = 1048576

[sessions.terminal]
# How long a shell outlives its last client (a reconnect meanwhile gets the screen back).
grace_secs = 300
# Output a client may have unacknowledged; beyond it, it gets a fresh screen once it catches up.
window_bytes = 262144
# How fast a shell's output is consumed; a flood beyond it blocks the flooding program.
output_rate_bytes_per_sec = 4194304
# Lines of history kept and redrawn for a client that attaches.
scrollback = 1000

[judge0]
# The Judge0 CE-compatible API at /judge0 (docs/compat.md); its limits are [runs]'s.
# Hosts a submission's callback_url may name, exactly. Empty: callbacks are refused, so the
# server never calls an address a caller chose.
callback_hosts = []
# Submissions in one batch; largest unpacked additional_files zip (KiB).
max_batch_size = 20
max_extract_kb = 10240

[llm]
# Language models that write hints and explanations. Without one, hints come from the lab's
# authored hints. Providers by name; kind = "openai" (any OpenAI-compatible server: OpenAI,
# Ollama, vLLM, llama.cpp), "gemini" or "anthropic". base_url defaults per kind (OpenAI
# https://api.openai.com/v1, Gemini https://generativelanguage.googleapis.com/v1beta,
# Anthropic https://api.anthropic.com/v1); it may not hold credentials. api_key is required
# except for kind "openai" (a local Ollama needs none). temperature: 0..2 (anthropic: 0..1).
# timeout_ms covers the whole request. Environment: SANDPIT_LLM__PROVIDERS__MAIN__API_KEY_FILE.
# [llm.providers.main]
# kind = "openai"
# base_url = "https://api.openai.com/v1"
# api_key = "..."          # or api_key_file = "/run/secrets/openai"
# model = "gpt-4o-mini"
# temperature = 0.2
# max_tokens = 600
# timeout_ms = 15000

[llm.routes]
# Which provider answers which task; none routed = no LLM (authored hints only; agent jobs
# fail with llm_not_configured). The agent job kinds: research, wireframe, code, qa,
# pedagogy (a code job's answer holds whole files: give its provider a large max_tokens).
# fallback is asked when a task's provider fails, and for tasks no route names.
# hint = "main"
# explain = "main"
# code = "main"
# fallback = "backup"
"#;

#[cfg(test)]
#[expect(
    clippy::result_large_err,
    reason = "figment::Jail fixes the closures' error type to figment::Error"
)]
mod tests {
    use super::*;

    #[test]
    fn every_section_takes_environment_variables() {
        let defaults = serde_json::to_value(Config::default()).unwrap();
        let mut keys: Vec<&str> = defaults
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut sections = SECTIONS.to_vec();
        keys.sort_unstable();
        sections.sort_unstable();
        assert_eq!(keys, sections, "SECTIONS must name every top-level key");
    }

    #[test]
    fn default_file_equals_defaults() {
        let from_file: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string(DEFAULT_CONFIG_TOML))
            .extract()
            .unwrap();
        assert_eq!(
            serde_json::to_value(&from_file).unwrap(),
            serde_json::to_value(Config::default()).unwrap()
        );
        // And the file really sets the keys rather than leaning on the defaults.
        let parsed: toml::Table = toml::from_str(DEFAULT_CONFIG_TOML).unwrap();
        assert_eq!(parsed["server"]["bind"].as_str(), Some("127.0.0.1:8000"));
        assert_eq!(
            parsed["rate_limit"]["auth_per_minute"].as_integer(),
            Some(10)
        );
    }

    #[test]
    fn environment_overrides_file_and_ignores_foreign_variables() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "sandpit.toml",
                "[server]\nbind = \"127.0.0.1:9000\"\n[rate_limit]\napi_per_minute = 5\n",
            )?;
            jail.set_env("SANDPIT_RATE_LIMIT__API_PER_MINUTE", "7");
            jail.set_env("SANDPIT_AUTH__GITHUB__CLIENT_ID", "abc");
            jail.set_env("SANDPIT_TEST_PG_URL", "postgres://ignored");
            let config =
                Config::load_from(Some(Path::new("sandpit.toml")), Env::prefixed("SANDPIT_"))
                    .map_err(|e| e.to_string())?;
            assert_eq!(config.server.bind.port(), 9000);
            assert_eq!(config.rate_limit.api_per_minute, 7);
            assert_eq!(config.auth.github.client_id, "abc");
            Ok(())
        });
    }

    #[test]
    fn secret_files_are_read_and_conflicts_rejected() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("gh", "s3cret\n")?;
            jail.set_env("SANDPIT_AUTH__GITHUB__CLIENT_ID", "id");
            jail.set_env("SANDPIT_AUTH__GITHUB__CLIENT_SECRET_FILE", "gh");
            let config =
                Config::load_from(None, Env::prefixed("SANDPIT_")).map_err(|e| e.to_string())?;
            let secret = config.auth.github.client_secret.as_ref().unwrap();
            assert_eq!(secret.expose_secret(), "s3cret");
            assert!(config.github_enabled());
            assert!(
                !format!("{config:?}").contains("s3cret"),
                "Debug must redact"
            );

            jail.set_env("SANDPIT_AUTH__GITHUB__CLIENT_SECRET", "other");
            let err = Config::load_from(None, Env::prefixed("SANDPIT_")).unwrap_err();
            assert!(err.to_string().contains("both set"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn rejects_typos_and_bad_values() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("SANDPIT_SERVER__BINDD", "127.0.0.1:1");
            assert!(Config::load_from(None, Env::prefixed("SANDPIT_")).is_err());
            jail.clear_env();
            jail.set_env("SANDPIT_AUTH__SECRET", "short");
            let err = Config::load_from(None, Env::prefixed("SANDPIT_")).unwrap_err();
            assert!(err.to_string().contains("auth.secret"), "{err}");
            jail.clear_env();
            // Sandbox uid ranges that would include root, nobody, or wrap around.
            for (uid, uids) in [("0", "10"), ("60000", "10000"), ("4294967290", "10")] {
                jail.set_env("SANDPIT_SANDBOX__UID", uid);
                jail.set_env("SANDPIT_SANDBOX__UIDS", uids);
                let err = Config::load_from(None, Env::prefixed("SANDPIT_")).unwrap_err();
                assert!(
                    err.to_string().contains("sandbox.uid"),
                    "{uid}+{uids}: {err}"
                );
            }
            jail.set_env("SANDPIT_SANDBOX__UID", "70000");
            jail.set_env("SANDPIT_SANDBOX__UIDS", "100");
            assert!(Config::load_from(None, Env::prefixed("SANDPIT_")).is_ok());
            Ok(())
        });
        let config = env_of_ok(&[("SANDPIT_DATA_DIR", "/tmp/x")]);
        assert_eq!(config.data_dir, PathBuf::from("/tmp/x"));
        assert!(
            config
                .database_url()
                .expose_secret()
                .starts_with("sqlite:///tmp/x/sandpit.db")
        );
    }

    fn env_of_ok(pairs: &[(&str, &str)]) -> Config {
        let mut out = None;
        figment::Jail::expect_with(|jail| {
            jail.clear_env();
            for (k, v) in pairs {
                jail.set_env(k, v);
            }
            out = Some(
                Config::load_from(None, Env::prefixed("SANDPIT_")).map_err(|e| e.to_string())?,
            );
            Ok(())
        });
        out.unwrap()
    }
}
