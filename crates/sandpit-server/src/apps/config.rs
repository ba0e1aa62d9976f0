//! `[apps]`: deployed apps' limits, idle times, the apps domain and each runtime's import rules.

use serde::{Deserialize, Serialize};

use crate::config::ConfigError;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AppsConfig {
    /// Apps one user may have.
    pub max_per_user: u32,
    /// Serve apps at `{app}-{user}.{domain}` instead of under `/user/{user}/app/{app}/` on the
    /// platform's own origin (empty: the path mode). A wildcard DNS name pointing at sandpit,
    /// never a parent of the platform's host: an app then cannot read or set the platform's
    /// cookies at all, which the path mode can only filter.
    pub domain: String,
    /// An app with no request for this long is stopped; the next request starts it again.
    pub idle_stop_minutes: u64,
    /// An app (not pinned) with no request for this long is deleted.
    pub idle_delete_hours: u64,
    /// Each running app's sandbox.
    pub memory_mb: u64,
    pub pids: u64,
    pub cpu_millicores: u32,
    pub workspace_mb: u64,
    /// An app's files: how many, and their total size.
    pub max_files: u64,
    pub max_bytes: u64,
    /// How long a new instance has to answer its first HTTP request.
    pub start_timeout_seconds: u64,
    /// How long the proxy waits for an app's response head.
    pub response_timeout_seconds: u64,
    /// Versions kept per app (the live one always), for rollbacks.
    pub keep_versions: u32,
    /// Log lines kept per app.
    pub log_lines: usize,
    /// Instances one server runs at once; beyond, the least recently used idle one stops.
    pub max_running: usize,
    pub python: RuntimeRules,
    pub node: RuntimeRules,
}

/// What a runtime's code may import beyond its standard library (and its own files).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RuntimeRules {
    /// Installed third-party packages an app may import and list as dependencies (import
    /// names; a requirement's `-` and `_` are the same).
    pub packages: Vec<String>,
    /// Modules an app may not import, with the standard library's included.
    pub forbidden: Vec<String>,
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

impl Default for AppsConfig {
    fn default() -> Self {
        Self {
            max_per_user: 5,
            domain: String::new(),
            idle_stop_minutes: 30,
            idle_delete_hours: 24,
            memory_mb: 256,
            pids: 64,
            cpu_millicores: 500,
            workspace_mb: 64,
            max_files: 500,
            max_bytes: 8 << 20,
            start_timeout_seconds: 20,
            response_timeout_seconds: 60,
            keep_versions: 5,
            log_lines: 1000,
            max_running: 20,
            python: RuntimeRules {
                packages: strings(&[
                    "fastapi",
                    "starlette",
                    "pydantic",
                    "flask",
                    "werkzeug",
                    "jinja2",
                    "markupsafe",
                    "itsdangerous",
                    "click",
                    "uvicorn",
                    "anyio",
                    "sniffio",
                    "h11",
                    "typing_extensions",
                    "psycopg2",
                ]),
                forbidden: strings(&[
                    "subprocess",
                    "_posixsubprocess",
                    "ctypes",
                    "multiprocessing",
                    "pty",
                ]),
            },
            node: RuntimeRules {
                packages: strings(&["express"]),
                forbidden: strings(&["child_process", "cluster", "worker_threads", "vm"]),
            },
        }
    }
}

impl AppsConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, problem: &str| ConfigError::Invalid {
            key,
            problem: problem.to_owned(),
        };
        if self.max_per_user == 0 || self.max_running == 0 {
            return Err(invalid("apps.max_per_user", "apps limits must be above 0"));
        }
        if self.idle_stop_minutes == 0 || self.idle_delete_hours == 0 {
            return Err(invalid(
                "apps.idle_stop_minutes",
                "idle times must be above 0",
            ));
        }
        if self.memory_mb < 32 || self.pids < 8 || self.cpu_millicores == 0 {
            return Err(invalid(
                "apps.memory_mb",
                "an app needs at least 32 MB, 8 processes and some CPU",
            ));
        }
        if self.workspace_mb == 0 || self.max_files == 0 || self.max_bytes == 0 {
            return Err(invalid("apps.max_bytes", "file limits must be above 0"));
        }
        if self.start_timeout_seconds == 0 || self.response_timeout_seconds == 0 {
            return Err(invalid(
                "apps.start_timeout_seconds",
                "timeouts must be above 0",
            ));
        }
        if self.keep_versions == 0 || self.log_lines == 0 {
            return Err(invalid(
                "apps.keep_versions",
                "keep_versions and log_lines must be above 0",
            ));
        }
        let domain = &self.domain;
        if !domain.is_empty()
            && !domain.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            })
        {
            return Err(invalid(
                "apps.domain",
                "must be a lowercase DNS name such as apps.example.com",
            ));
        }
        for (key, rules) in [("apps.python", &self.python), ("apps.node", &self.node)] {
            if rules.packages.iter().chain(&rules.forbidden).any(|m| {
                m.is_empty()
                    || !m
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_-.@/".contains(&b))
            }) {
                return Err(invalid(key, "module names are letters, digits and _-.@/"));
            }
        }
        Ok(())
    }

    pub fn limits(&self) -> sandpit_sandbox::SandboxLimits {
        sandpit_sandbox::SandboxLimits {
            memory_bytes: self.memory_mb << 20,
            pids: self.pids,
            cpu_millicores: Some(self.cpu_millicores),
            workspace_bytes: self.workspace_mb << 20,
            tmp_bytes: 32 << 20,
            shm_bytes: 8 << 20,
        }
    }
}
