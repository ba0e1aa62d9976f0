//! How a run ended, in Judge0's terms (status, message, time as seconds, memory in KiB), and a
//! submission as Judge0 answers it: the fields asked for, texts base64-encoded when asked.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::catalog::Status;
use super::submission::Submission;
use crate::runs::model::{RunResult, Stage, StageStatus, same_output};

/// A finished submission's result, stored as its job's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub status_id: u8,
    pub stdout: Option<String>,
    pub stderr: Option<String>,
    pub compile_output: Option<String>,
    pub message: Option<String>,
    /// CPU seconds (the mean over `number_of_runs`).
    pub time: Option<f64>,
    pub wall_time: Option<f64>,
    /// KiB, the most of any run.
    pub memory: Option<u64>,
    pub exit_code: Option<i32>,
    pub exit_signal: Option<i32>,
    pub finished_at: DateTime<Utc>,
}

impl Outcome {
    /// A submission that could not be run, with why.
    pub fn internal(message: String) -> Self {
        Self {
            status_id: Status::InternalError.id(),
            stdout: None,
            stderr: None,
            compile_output: None,
            message: Some(message),
            time: None,
            wall_time: None,
            memory: None,
            exit_code: None,
            exit_signal: None,
            finished_at: Utc::now(),
        }
    }

    /// Judge0's reading of a run of `submission`.
    pub fn of_run(result: &RunResult, submission: &Submission) -> Self {
        // Filled in below from the stages; an Internal Error only if nothing ran.
        let mut outcome = Self {
            message: None,
            ..Self::internal(String::new())
        };
        if let Some(compile) = &result.compile {
            let text = format!("{}{}", compile.stdout, compile.stderr);
            outcome.compile_output = (!text.is_empty()).then_some(text);
            if compile.status != StageStatus::Ok {
                outcome.status_id = Status::CompilationError.id();
                if compile.status == StageStatus::TimeLimit {
                    outcome.message = Some("Compilation time limit exceeded.".into());
                }
                outcome.exit_code = compile.exit_code;
                return outcome;
            }
        }
        let runs: Vec<&Stage> = match (&result.run, &result.tests) {
            (Some(run), _) => vec![run],
            (None, Some(tests)) => tests.iter().map(|t| &t.stage).collect(),
            (None, None) => Vec::new(),
        };
        // The first run that did not end well decides, as a judge would report it; else the last.
        let Some(decisive) = runs
            .iter()
            .find(|s| s.status != StageStatus::Ok)
            .or(runs.last())
        else {
            return Self::internal("the program did not run".into());
        };
        let n = runs.len() as f64;
        outcome.time = Some(runs.iter().map(|s| s.cpu_ms as f64).sum::<f64>() / n / 1000.0);
        outcome.wall_time = Some(runs.iter().map(|s| s.wall_ms as f64).sum::<f64>() / n / 1000.0);
        outcome.memory = runs.iter().map(|s| s.memory_kb).max();
        outcome.stdout = Some(decisive.stdout.clone());
        outcome.stderr = Some(decisive.stderr.clone());
        outcome.exit_code = decisive.exit_code;
        outcome.exit_signal = decisive.signal;
        let (status, message) = status_of(decisive, submission);
        outcome.status_id = status.id();
        outcome.message = message;
        outcome
    }
}

fn status_of(stage: &Stage, submission: &Submission) -> (Status, Option<String>) {
    match stage.status {
        StageStatus::TimeLimit => (
            Status::TimeLimitExceeded,
            Some("Time limit exceeded".into()),
        ),
        // Past cpu_time_limit but within its extra time: still over the limit.
        StageStatus::Ok if stage.cpu_ms > submission.cpu_limit_ms() => (
            Status::TimeLimitExceeded,
            Some("Time limit exceeded".into()),
        ),
        StageStatus::MemoryLimit => (
            Status::RuntimeErrorOther,
            Some("Memory limit exceeded".into()),
        ),
        StageStatus::OutputLimit => (Status::Sigxfsz, Some("Output limit exceeded".into())),
        StageStatus::InternalError => (Status::InternalError, Some(stage.stderr.clone())),
        StageStatus::RuntimeError | StageStatus::CompileError | StageStatus::Killed => {
            match (stage.signal, stage.exit_code) {
                (Some(signal), _) => (
                    Status::of_signal(signal),
                    Some(format!("Caught fatal signal {signal}")),
                ),
                (None, Some(code)) => (
                    Status::Nzec,
                    Some(format!("Exited with error status {code}")),
                ),
                // Could not be started at all.
                (None, None) if stage.stderr.contains("format") => {
                    (Status::ExecFormatError, Some(stage.stderr.clone()))
                }
                (None, None) => (Status::RuntimeErrorOther, Some(stage.stderr.clone())),
            }
        }
        StageStatus::Ok => match submission.expected() {
            Some(expected) if !same_output(&stage.stdout, &expected) => (Status::WrongAnswer, None),
            _ => (Status::Accepted, None),
        },
    }
}

/// Every field a submission has, as `fields=*` lists them.
pub const ALL_FIELDS: &[&str] = &[
    "source_code",
    "language_id",
    "stdin",
    "expected_output",
    "stdout",
    "status_id",
    "created_at",
    "finished_at",
    "time",
    "memory",
    "stderr",
    "token",
    "number_of_runs",
    "cpu_time_limit",
    "cpu_extra_time",
    "wall_time_limit",
    "memory_limit",
    "stack_limit",
    "max_processes_and_or_threads",
    "enable_per_process_and_thread_time_limit",
    "enable_per_process_and_thread_memory_limit",
    "max_file_size",
    "compile_output",
    "exit_code",
    "exit_signal",
    "message",
    "wall_time",
    "compiler_options",
    "command_line_arguments",
    "redirect_stderr_to_stdout",
    "callback_url",
    "additional_files",
    "enable_network",
    "status",
    "language",
];

/// What Judge0 answers when no fields are asked for.
pub const DEFAULT_FIELDS: &[&str] = &[
    "token",
    "stdout",
    "time",
    "memory",
    "stderr",
    "compile_output",
    "message",
    "status",
];

/// The fields of a `fields` query: `*`, a comma-separated list, or the defaults. Unknown names
/// are refused, named.
pub fn fields(query: Option<&str>) -> Result<Vec<&'static str>, String> {
    let Some(query) = query.filter(|q| !q.trim().is_empty()) else {
        return Ok(DEFAULT_FIELDS.to_vec());
    };
    if query.trim() == "*" {
        return Ok(ALL_FIELDS.to_vec());
    }
    let mut out = Vec::new();
    let mut unknown = Vec::new();
    for name in query.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        match ALL_FIELDS.iter().find(|f| **f == name) {
            Some(f) => out.push(*f),
            None => unknown.push(name.chars().take(40).collect::<String>()),
        }
    }
    if unknown.is_empty() {
        Ok(out)
    } else {
        Err(format!("invalid fields: [{}]", unknown.join(", ")))
    }
}

/// A submission as Judge0 shows it.
pub struct View<'a> {
    pub token: Uuid,
    pub submission: &'a Submission,
    /// Queued or running: In Queue / Processing; else the outcome.
    pub pending: Option<Status>,
    pub outcome: Option<&'a Outcome>,
    pub language_name: Option<String>,
}

impl View<'_> {
    pub fn render(&self, fields: &[&str], base64: bool) -> Value {
        let text = |s: Option<&str>| -> Value {
            match s {
                None => Value::Null,
                Some(s) if base64 => Value::String(STANDARD.encode(s)),
                Some(s) => Value::String(s.to_owned()),
            }
        };
        let stored = |b64: Option<&str>| -> Value {
            let Some(b64) = b64 else { return Value::Null };
            if base64 {
                return Value::String(b64.to_owned());
            }
            let bytes = STANDARD.decode(b64).unwrap_or_default();
            Value::String(String::from_utf8_lossy(&bytes).into_owned())
        };
        let seconds = |s: Option<f64>| s.map_or(Value::Null, |s| Value::String(format!("{s:.3}")));
        let sub = self.submission;
        let out = self.outcome;
        let status = self
            .pending
            .or_else(|| out.and_then(|o| Status::from_id(o.status_id)))
            .unwrap_or(Status::InternalError);
        let mut map = Map::new();
        for field in fields {
            let value = match *field {
                "token" => json!(self.token),
                "source_code" => stored(Some(&sub.source_code)),
                "language_id" => json!(sub.language_id),
                "language" => json!({"id": sub.language_id, "name": self.language_name}),
                "stdin" => stored(Some(&sub.stdin)),
                "expected_output" => stored(sub.expected_output.as_deref()),
                "additional_files" => json!(sub.additional_files),
                "stdout" => text(out.and_then(|o| o.stdout.as_deref())),
                "stderr" => text(out.and_then(|o| o.stderr.as_deref())),
                "compile_output" => text(out.and_then(|o| o.compile_output.as_deref())),
                "message" => text(out.and_then(|o| o.message.as_deref())),
                "status" => json!(status.view()),
                "status_id" => json!(status.id()),
                "created_at" => json!(timestamp(sub.created_at)),
                "finished_at" => json!(out.map(|o| timestamp(o.finished_at))),
                "time" => seconds(out.and_then(|o| o.time)),
                "wall_time" => seconds(out.and_then(|o| o.wall_time)),
                "memory" => json!(out.and_then(|o| o.memory)),
                "exit_code" => json!(out.and_then(|o| o.exit_code)),
                "exit_signal" => json!(out.and_then(|o| o.exit_signal)),
                "number_of_runs" => json!(sub.number_of_runs),
                "cpu_time_limit" => json!(sub.cpu_time_limit),
                "cpu_extra_time" => json!(sub.cpu_extra_time),
                "wall_time_limit" => json!(sub.wall_time_limit),
                "memory_limit" => json!(sub.memory_limit),
                "stack_limit" => json!(sub.stack_limit),
                "max_processes_and_or_threads" => json!(sub.max_processes_and_or_threads),
                "enable_per_process_and_thread_time_limit"
                | "enable_per_process_and_thread_memory_limit"
                | "enable_network" => json!(false),
                "max_file_size" => json!(sub.max_file_size),
                "compiler_options" => json!(sub.compiler_options),
                "command_line_arguments" => json!(sub.command_line_arguments),
                "redirect_stderr_to_stdout" => json!(sub.redirect_stderr_to_stdout),
                "callback_url" => json!(sub.callback_url),
                _ => Value::Null,
            };
            map.insert((*field).to_owned(), value);
        }
        Value::Object(map)
    }
}

/// Judge0's timestamps: `2024-01-02T03:04:05.678Z`.
fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}
