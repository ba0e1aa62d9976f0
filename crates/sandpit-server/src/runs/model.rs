//! The runs API's request and result shapes, and the validation that turns a request into a
//! [`Plan`] the executor can trust.

use base64::Engine;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::runtimes::{Registry, Runtime};
use crate::config::{RunLimits, RunsConfig};
use crate::error::ApiError;
use sandpit_sandbox::WorkspacePath;

/// `POST /api/v1/runs`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    /// A runtime name or alias from `GET /api/v1/runtimes`.
    #[schema(example = "python3")]
    pub runtime: String,
    /// The program's files. The first one is the main file: it is saved under the runtime's
    /// source file name (e.g. `main.py`) unless a file of that name is given.
    pub files: Vec<RunFile>,
    /// Standard input (when there are no test cases).
    #[serde(default)]
    pub stdin: String,
    /// Arguments appended to the runtime's run command. Passed as an array, never through a shell.
    #[serde(default)]
    pub args: Vec<String>,
    /// Limits for this run; each is capped by the server's maximum.
    #[serde(default)]
    pub limits: RequestedLimits,
    /// Test cases: the program is compiled once and run once per case.
    pub tests: Option<Vec<TestCase>>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunFile {
    /// A relative path such as `main.py` or `src/util.py`.
    pub name: String,
    pub content: String,
    #[serde(default)]
    pub encoding: Encoding,
}

#[derive(Debug, Default, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    #[default]
    Utf8,
    Base64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestCase {
    #[serde(default)]
    pub stdin: String,
    /// When set, the case passes if stdout equals it, ignoring trailing whitespace on each line
    /// and trailing empty lines.
    pub expected_stdout: Option<String>,
}

/// Limits a run asks for; missing ones take the server's defaults.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestedLimits {
    pub wall_ms: Option<u64>,
    pub cpu_ms: Option<u64>,
    pub memory_mb: Option<u64>,
    pub processes: Option<u64>,
    pub output_bytes: Option<u64>,
    pub file_size_bytes: Option<u64>,
}

/// How one execution ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StageStatus {
    Ok,
    RuntimeError,
    CompileError,
    TimeLimit,
    MemoryLimit,
    OutputLimit,
    /// Ended by a signal that no limit explains (e.g. SIGKILL from inside).
    Killed,
    InternalError,
}

/// One execution: the compile step, the run, or one test case.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Stage {
    pub status: StageStatus,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    /// Output as UTF-8 (invalid sequences replaced).
    pub stdout: String,
    pub stderr: String,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    pub wall_ms: u64,
    pub cpu_ms: u64,
    pub memory_kb: u64,
}

impl Stage {
    /// A stage that never ran a program to its end, with the reason as stderr.
    pub fn not_run(status: StageStatus, reason: String) -> Self {
        Self {
            status,
            exit_code: None,
            signal: None,
            stdout: String::new(),
            stderr: reason,
            stdout_truncated: false,
            stderr_truncated: false,
            wall_ms: 0,
            cpu_ms: 0,
            memory_kb: 0,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TestResult {
    #[serde(flatten)]
    pub stage: Stage,
    /// Whether stdout matched `expected_stdout`; absent when no expectation was given.
    pub passed: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Accepted, waiting for a slot or running (asynchronous runs only).
    Pending,
    Done,
}

/// The result of a run.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RunResult {
    pub id: Uuid,
    pub state: RunState,
    /// The runtime's canonical name.
    pub runtime: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compile: Option<Stage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<Stage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tests: Option<Vec<TestResult>>,
}

/// A validated request.
#[derive(Debug)]
pub struct Plan {
    pub runtime: Runtime,
    pub files: Vec<(WorkspacePath, Vec<u8>)>,
    pub args: Vec<String>,
    /// One entry per execution: stdin and the expected stdout.
    pub cases: Vec<(Vec<u8>, Option<String>)>,
    pub has_tests: bool,
    pub limits: RunLimits,
    /// Appended to the runtime's compile command (allowlisted by the caller: Judge0's
    /// `compiler_options`).
    pub compile_args: Vec<String>,
    /// The program's stderr goes into its stdout, in the order written.
    pub merge_stderr: bool,
}

fn invalid(field: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::Validation {
        field,
        message: message.into(),
    }
}

impl RunRequest {
    pub fn validate(self, registry: &Registry, config: &RunsConfig) -> Result<Plan, ApiError> {
        let runtime = registry
            .get(&self.runtime)
            .ok_or_else(|| {
                invalid(
                    "runtime",
                    format!(
                        "unknown runtime {:?}; GET /api/v1/runtimes lists them",
                        self.runtime.chars().take(64).collect::<String>()
                    ),
                )
            })?
            .clone();
        if self.files.is_empty() {
            return Err(invalid("files", "give at least one file"));
        }
        if self.files.len() > config.max_files {
            return Err(invalid(
                "files",
                format!("at most {} files", config.max_files),
            ));
        }
        let mut files = Vec::with_capacity(self.files.len());
        for file in self.files {
            let path = WorkspacePath::parse(&file.name)
                .map_err(|e| invalid("files.name", e.to_string()))?;
            let content = match file.encoding {
                Encoding::Utf8 => file.content.into_bytes(),
                Encoding::Base64 => base64::engine::general_purpose::STANDARD
                    .decode(file.content.as_bytes())
                    .map_err(|e| invalid("files.content", format!("not valid base64: {e}")))?,
            };
            if files.iter().any(|(p, _)| *p == path) {
                return Err(invalid("files.name", format!("{path} is given twice")));
            }
            files.push((path, content));
        }
        let source = WorkspacePath::parse(&runtime.config.source_file)
            .map_err(|e| ApiError::internal(anyhow::anyhow!("runtime source file: {e}")))?;
        if !files.iter().any(|(p, _)| *p == source) {
            // The first file is the main one.
            files[0].0 = source;
        }
        if self.args.iter().any(|a| a.contains('\0')) {
            return Err(invalid("args", "arguments must not contain NUL bytes"));
        }
        let (cases, has_tests) = match self.tests {
            Some(tests) => {
                if tests.is_empty() {
                    return Err(invalid(
                        "tests",
                        "give at least one test case or leave tests out",
                    ));
                }
                if tests.len() > config.max_tests {
                    return Err(invalid(
                        "tests",
                        format!("at most {} test cases", config.max_tests),
                    ));
                }
                if !self.stdin.is_empty() {
                    return Err(invalid(
                        "stdin",
                        "with test cases, give stdin per test case",
                    ));
                }
                let cases = tests
                    .into_iter()
                    .map(|t| (t.stdin.into_bytes(), t.expected_stdout))
                    .collect();
                (cases, true)
            }
            None => (vec![(self.stdin.into_bytes(), None)], false),
        };
        let limits = resolve_limits(&self.limits, &config.default_limits, &config.max_limits)?;
        Ok(Plan {
            runtime,
            files,
            args: self.args,
            cases,
            has_tests,
            limits,
            compile_args: Vec::new(),
            merge_stderr: false,
        })
    }
}

fn resolve_limits(
    asked: &RequestedLimits,
    default: &RunLimits,
    max: &RunLimits,
) -> Result<RunLimits, ApiError> {
    fn pick(
        field: &'static str,
        asked: Option<u64>,
        default: u64,
        max: u64,
        min: u64,
    ) -> Result<u64, ApiError> {
        match asked {
            None => Ok(default),
            Some(v) if v > max => Err(invalid(
                field,
                format!("{v} is above this server's maximum of {max}"),
            )),
            Some(v) if v < min => Err(invalid(field, format!("must be at least {min}"))),
            Some(v) => Ok(v),
        }
    }
    Ok(RunLimits {
        wall_ms: pick(
            "limits.wall_ms",
            asked.wall_ms,
            default.wall_ms,
            max.wall_ms,
            1,
        )?,
        cpu_ms: pick("limits.cpu_ms", asked.cpu_ms, default.cpu_ms, max.cpu_ms, 1)?,
        memory_mb: pick(
            "limits.memory_mb",
            asked.memory_mb,
            default.memory_mb,
            max.memory_mb,
            16,
        )?,
        processes: pick(
            "limits.processes",
            asked.processes,
            default.processes,
            max.processes,
            1,
        )?,
        output_bytes: pick(
            "limits.output_bytes",
            asked.output_bytes,
            default.output_bytes,
            max.output_bytes,
            0,
        )?,
        file_size_bytes: pick(
            "limits.file_size_bytes",
            asked.file_size_bytes,
            default.file_size_bytes,
            max.file_size_bytes,
            1,
        )?,
    })
}

/// Output comparison for test cases: trailing whitespace on each line and trailing empty lines
/// do not count (what most judges do, so a missing final newline is not a failure).
pub fn same_output(actual: &str, expected: &str) -> bool {
    fn normal(s: &str) -> Vec<&str> {
        let mut lines: Vec<&str> = s.lines().map(str::trim_end).collect();
        while lines.last().is_some_and(|l| l.is_empty()) {
            lines.pop();
        }
        lines
    }
    normal(actual) == normal(expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_comparison_ignores_only_trailing_whitespace() {
        assert!(same_output("1\n2\n", "1\n2"));
        assert!(same_output("1  \n2\n\n\n", "1\n2\n"));
        assert!(!same_output("1\n 2\n", "1\n2\n"));
        assert!(!same_output("12\n", "1\n2\n"));
        assert!(same_output("", "\n"));
    }

    #[test]
    fn limits_above_the_maximum_name_the_field() {
        let d = RunsConfig::default();
        let asked = RequestedLimits {
            cpu_ms: Some(d.max_limits.cpu_ms + 1),
            ..RequestedLimits::default()
        };
        let err = resolve_limits(&asked, &d.default_limits, &d.max_limits).unwrap_err();
        assert!(matches!(
            err,
            ApiError::Validation {
                field: "limits.cpu_ms",
                ..
            }
        ));
        let asked = RequestedLimits {
            memory_mb: Some(1),
            ..RequestedLimits::default()
        };
        let err = resolve_limits(&asked, &d.default_limits, &d.max_limits).unwrap_err();
        assert!(matches!(
            err,
            ApiError::Validation {
                field: "limits.memory_mb",
                ..
            }
        ));
        let ok = resolve_limits(
            &RequestedLimits {
                wall_ms: Some(100),
                ..RequestedLimits::default()
            },
            &d.default_limits,
            &d.max_limits,
        )
        .unwrap();
        assert_eq!(ok.wall_ms, 100);
        assert_eq!(ok.cpu_ms, d.default_limits.cpu_ms);
    }
}
