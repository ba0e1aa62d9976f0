//! Agent jobs on projects (the CodeForge flow): `research`, `wireframe`, `code`, `qa` and
//! `pedagogy`, each a prompt template and an output schema ([`output`]), run as durable jobs
//! by the job queue's workers with the language model routed for the kind (`[llm.routes]`,
//! with its fallback).
//!
//! A `code` job proposes a change set against the versions of the files it read; the owner
//! accepts it (`POST /jobs/{id}/accept`), which applies it only if those files are unchanged,
//! or the job applies it at once when asked (`apply`). A `qa` job runs the project's tests in a
//! fresh sandbox, then has the model report on the run. Without a model for the kind a job
//! fails at once with `llm_not_configured`: there is no canned answer.

pub mod output;
pub mod routes;

use std::sync::Arc;

use async_trait::async_trait;
use sandpit_jobs::{Failure, Handler, JobContext};
use sandpit_store::{Expect, FileBatch, Job, ProjectFile};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use self::output::{Change, ChangeAction, ChangeLimits};
use crate::error::ApiError;
use crate::llm::{Llm, LlmError, Prompt, Task};
use crate::projects::{Projects, file_write};
use crate::runs::model::StageStatus;
use crate::runs::service::Runs;
use crate::sessions::files::FilePath;

/// An agent job's kind; also its job kind and its `[llm.routes]` task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Research,
    Wireframe,
    Code,
    Qa,
    Pedagogy,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Research,
        Kind::Wireframe,
        Kind::Code,
        Kind::Qa,
        Kind::Pedagogy,
    ];

    pub fn as_str(self) -> &'static str {
        self.task().as_str()
    }

    fn task(self) -> Task {
        match self {
            Kind::Research => Task::Research,
            Kind::Wireframe => Task::Wireframe,
            Kind::Code => Task::Code,
            Kind::Qa => Task::Qa,
            Kind::Pedagogy => Task::Pedagogy,
        }
    }

    /// Who the model is for this kind, and what it is to produce.
    fn role(self) -> &'static str {
        match self {
            Kind::Research => {
                "You are a careful technical researcher helping a learner plan a small software project. Investigate the request, weigh the options, and say what is known and what is still open."
            }
            Kind::Wireframe => {
                "You are a UX designer. Sketch the screens of the requested application as low-fidelity wireframes: each screen, its purpose and its elements, and how a user moves between screens."
            }
            Kind::Code => {
                "You are a senior software engineer making a focused change to a learner's project. Change only what the request needs, keep the project's style, and give every file you write in full."
            }
            Kind::Qa => {
                "You are a QA engineer. Read the project's test run and report: did it pass, what failed and why, and what to do about each failure."
            }
            Kind::Pedagogy => {
                "You are a patient programming teacher. Turn the request and the project into a short lesson: objectives, steps with explanations and exercises, and a few quiz questions."
            }
        }
    }
}

impl std::str::FromStr for Kind {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s).ok_or(())
    }
}

/// `POST /projects/{id}/jobs`: `{kind, input}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAgentJob {
    pub kind: Kind,
    #[serde(default)]
    pub input: AgentInput,
}

/// What the job is asked.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentInput {
    /// The request, in words (required but for `qa`): a question to research, an app to
    /// sketch, a change to make, a topic to teach. At most 20 000 characters.
    #[serde(default)]
    #[schema(example = "Add a function that reverses a string, with a test")]
    pub prompt: String,
    /// `code`: apply the change set at once instead of proposing it.
    #[serde(default)]
    pub apply: bool,
    /// `qa`: the test command (argv, never through a shell); default
    /// `python3 -m unittest discover -v` when the project has Python tests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
}

pub const MAX_PROMPT_CHARS: usize = 20_000;
/// The most of the project's text the model is shown, and of any one file.
const CONTEXT_BYTES: usize = 96 << 10;
const CONTEXT_FILE_BYTES: usize = 32 << 10;
/// The most changes one code job may propose.
const MAX_CHANGES: usize = 100;

impl AgentInput {
    /// Checks what can be checked before the job is queued.
    pub fn validate(&self, kind: Kind) -> Result<(), ApiError> {
        let invalid = |field, message: &str| ApiError::Validation {
            field,
            message: message.to_owned(),
        };
        if self.prompt.chars().count() > MAX_PROMPT_CHARS {
            return Err(invalid("input.prompt", "must be at most 20000 characters"));
        }
        if kind != Kind::Qa && self.prompt.trim().is_empty() {
            return Err(invalid("input.prompt", "say what the job is to do"));
        }
        if self.apply && kind != Kind::Code {
            return Err(invalid("input.apply", "only a code job applies changes"));
        }
        if let Some(command) = &self.command {
            if kind != Kind::Qa {
                return Err(invalid("input.command", "only a qa job runs a command"));
            }
            if command.is_empty()
                || command[0].is_empty()
                || command.len() > 64
                || command.iter().any(|a| a.contains('\0') || a.len() > 4096)
            {
                return Err(invalid(
                    "input.command",
                    "must name a program, at most 64 arguments, no NUL bytes",
                ));
            }
        }
        Ok(())
    }
}

/// Runs the agent jobs of one kind.
pub struct AgentJob {
    pub kind: Kind,
    pub llm: Arc<Llm>,
    pub projects: Arc<Projects>,
    pub runs: Arc<Runs>,
}

#[async_trait]
impl Handler for AgentJob {
    fn concurrency(&self) -> usize {
        // Mostly waiting for a model.
        8
    }

    async fn run(&self, ctx: JobContext) -> Result<Value, Failure> {
        let job = ctx.job().clone();
        let input: AgentInput = serde_json::from_value(job.input.clone())
            .map_err(|e| Failure::fatal("invalid_input", e.to_string()))?;
        if !self.llm.routes(self.kind.task()) {
            return Err(Failure::fatal(
                "llm_not_configured",
                format!(
                    "no language model answers {} jobs on this server: set llm.routes.{} (or llm.routes.fallback)",
                    self.kind.as_str(),
                    self.kind.as_str()
                ),
            ));
        }
        let project_id = job
            .project_id
            .ok_or_else(|| Failure::fatal("invalid_input", "an agent job names a project"))?;
        ctx.progress(5, Some("reading the project")).await;
        let files = self
            .projects
            .contents(project_id)
            .await
            .map_err(|e| store_failure(&e))?;
        let mut extra = String::new();
        let mut tests = None;
        if self.kind == Kind::Qa {
            let ran = self.run_tests(&ctx, &input, &files).await?;
            extra = ran.1;
            tests = Some(ran.0);
        }
        ctx.progress(40, Some("asking the language model")).await;
        let prompt = Prompt {
            system: format!(
                "{}\n\nAnswer with one JSON object and nothing else, of this shape:\n{}",
                self.kind.role(),
                output::schema_text(self.kind)
            ),
            user: format!(
                "Request:\n{}\n\n{}{}",
                if input.prompt.trim().is_empty() {
                    "(none: report on the test run)"
                } else {
                    input.prompt.trim()
                },
                extra,
                project_context(&files)
            ),
        };
        let completion = self
            .llm
            .complete(self.kind.task(), &prompt)
            .await
            .map_err(llm_failure)?;
        ctx.progress(80, Some("checking the answer")).await;
        let limits = ChangeLimits {
            max_changes: MAX_CHANGES,
            max_file_bytes: self.projects.config().max_file_bytes,
        };
        let mut answer = output::read(self.kind, &completion.text, limits).map_err(|e| {
            Failure::retryable(
                "llm_invalid_output",
                format!("the model's answer could not be used: {e}"),
            )
        })?;
        let mut result = json!({
            "kind": self.kind.as_str(),
            "provider": completion.provider,
            "model": completion.model,
        });
        if let Some(tests) = tests {
            result["tests"] = tests;
        }
        if self.kind == Kind::Code {
            let mut changes: Vec<Change> = serde_json::from_value(answer["changes"].take())
                .map_err(|e| Failure::fatal("internal_error", e.to_string()))?;
            // Against the versions read: accepting later checks they are unchanged.
            for change in &mut changes {
                change.base_sha256 = files
                    .iter()
                    .find(|f| f.meta.path == change.path)
                    .map(|f| f.meta.sha256.clone());
            }
            let applied = if input.apply {
                ctx.progress(90, Some("applying the changes")).await;
                apply(&self.projects, project_id, &changes)
                    .await
                    .map_err(|e| match e {
                        ApiError::Refused { code, message } => Failure::fatal(code, message),
                        other => Failure::fatal(other.code(), other.to_string()),
                    })?;
                true
            } else {
                false
            };
            answer["changes"] = serde_json::to_value(&changes).unwrap_or_default();
            result["applied"] = Value::Bool(applied);
        }
        result["output"] = answer;
        Ok(result)
    }
}

impl AgentJob {
    /// Runs the project's tests in a fresh sandbox; returns the run for the result, and the
    /// part of the prompt that shows it.
    async fn run_tests(
        &self,
        ctx: &JobContext,
        input: &AgentInput,
        files: &[ProjectFile],
    ) -> Result<(Value, String), Failure> {
        let argv = match &input.command {
            Some(argv) => argv.clone(),
            None if files.iter().any(|f| is_python_test(&f.meta.path)) => {
                ["python3", "-m", "unittest", "discover", "-v"]
                    .map(String::from)
                    .to_vec()
            }
            None => {
                return Err(Failure::fatal(
                    "no_tests",
                    "the project has no tests this job knows how to run; give input.command",
                ));
            }
        };
        ctx.progress(15, Some(&format!("running the tests: {}", argv.join(" "))))
            .await;
        let workspace = files
            .iter()
            .map(|f| {
                let path = FilePath::parse(&f.meta.path)
                    .map_err(|e| Failure::fatal("invalid_input", e.to_string()))?;
                Ok((path.workspace().clone(), f.content.clone()))
            })
            .collect::<Result<Vec<_>, Failure>>()?;
        let stage = self
            .runs
            .run_files(workspace, argv.clone())
            .await
            .map_err(|e| match e {
                ApiError::Unavailable { code, message, .. } => Failure::retryable(code, message),
                other => Failure::retryable(other.code(), other.to_string()),
            })?;
        let output = format!("{}{}", stage.stdout, stage.stderr);
        for line in output
            .lines()
            .rev()
            .take(20)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
        {
            ctx.log(line).await;
        }
        let passed = stage.status == StageStatus::Ok;
        let run = json!({
            "command": argv,
            "passed": passed,
            "status": stage.status,
            "exit_code": stage.exit_code,
            "stdout": stage.stdout,
            "stderr": stage.stderr,
            "wall_ms": stage.wall_ms,
        });
        let shown = format!(
            "The test run: `{}` ended {:?} (exit code {:?}).\nstdout:\n{}\nstderr:\n{}\n\n",
            argv.join(" "),
            stage.status,
            stage.exit_code,
            tail(&stage.stdout, 8 << 10),
            tail(&stage.stderr, 8 << 10)
        );
        Ok((run, shown))
    }
}

fn is_python_test(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    name.ends_with(".py") && (name.starts_with("test_") || name.ends_with("_test.py"))
}

/// The last `max` bytes of `text` (cut at a character boundary).
fn tail(text: &str, max: usize) -> &str {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// The project's text files as the prompt shows them, within a budget; the rest by name.
fn project_context(files: &[ProjectFile]) -> String {
    let mut shown = String::from("The project's files:\n");
    let mut left = CONTEXT_BYTES;
    let mut omitted = Vec::new();
    for file in files {
        match std::str::from_utf8(&file.content) {
            Ok(text) if text.len() <= CONTEXT_FILE_BYTES && text.len() <= left => {
                left -= text.len();
                shown.push_str(&format!("\n--- {} ---\n{}\n", file.meta.path, text));
            }
            _ => omitted.push(file.meta.path.as_str()),
        }
    }
    if files.is_empty() {
        shown.push_str("(none yet)\n");
    }
    if !omitted.is_empty() {
        shown.push_str(&format!(
            "\nNot shown (binary or too large): {}\n",
            omitted.join(", ")
        ));
    }
    shown
}

fn llm_failure(e: LlmError) -> Failure {
    match e {
        LlmError::NotConfigured => Failure::fatal("llm_not_configured", e.to_string()),
        LlmError::Timeout => Failure::retryable("llm_timeout", e.to_string()),
        LlmError::Protocol(_) => Failure::retryable("llm_invalid_output", e.to_string()),
        LlmError::Status { .. } | LlmError::Transport(_) => {
            Failure::retryable("llm_unavailable", e.to_string())
        }
    }
}

fn store_failure(e: &ApiError) -> Failure {
    match e {
        ApiError::NotFound(_) => Failure::fatal("project_not_found", "the project was deleted"),
        other => Failure::retryable(other.code(), other.to_string()),
    }
}

/// Applies a change set if every file is still the version it was made against (else 409
/// `change_set_stale`, naming them); all or nothing.
pub async fn apply(
    projects: &Projects,
    project_id: uuid::Uuid,
    changes: &[Change],
) -> Result<(), ApiError> {
    let mut batch = FileBatch::default();
    for change in changes {
        let expect = match &change.base_sha256 {
            Some(sha) => Expect::Sha256(sha.clone()),
            None => Expect::Absent,
        };
        match change.action {
            ChangeAction::Write => batch.writes.push((
                file_write(
                    &change.path,
                    change.content.clone().unwrap_or_default().into_bytes(),
                ),
                expect,
            )),
            ChangeAction::Delete => batch.deletes.push((change.path.clone(), expect)),
        }
    }
    match projects.write_batch(project_id, batch).await {
        Err(ApiError::PreconditionFailed(_)) => {
            let stale = stale_paths(projects, project_id, changes).await?;
            Err(ApiError::Refused {
                code: "change_set_stale",
                message: format!(
                    "files changed since the job read them: {}; run the job again",
                    stale.join(", ")
                ),
            })
        }
        other => other,
    }
}

async fn stale_paths(
    projects: &Projects,
    project_id: uuid::Uuid,
    changes: &[Change],
) -> Result<Vec<String>, ApiError> {
    let current = projects.contents(project_id).await?;
    Ok(changes
        .iter()
        .filter(|c| {
            let now = current
                .iter()
                .find(|f| f.meta.path == c.path)
                .map(|f| &f.meta.sha256);
            now != c.base_sha256.as_ref()
        })
        .map(|c| c.path.clone())
        .collect())
}

/// A completed code job's change set, if the job is one and has not applied it.
pub fn change_set(job: &Job) -> Result<Vec<Change>, ApiError> {
    let refused = |message: &str| ApiError::Refused {
        code: "not_a_change_set",
        message: message.to_owned(),
    };
    if job.kind != Kind::Code.as_str() {
        return Err(refused("only a code job proposes changes"));
    }
    let Some(result) = job
        .result
        .as_ref()
        .filter(|_| job.state == sandpit_store::JobState::Completed)
    else {
        return Err(refused("the job has not completed"));
    };
    if result["applied"] == true {
        return Err(refused("the job applied its changes itself"));
    }
    serde_json::from_value(result["output"]["changes"].clone()).map_err(ApiError::internal)
}
