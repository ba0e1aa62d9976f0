//! Hints and explanations. A language model answers when one is routed for the task; with
//! none, or when it fails or times out, the deterministic ladder does: the step's authored
//! hints (gentlest first), then the hints of the last judge failures. Never an error for the
//! learner, and the answer says who gave it.

use std::collections::BTreeSet;
use std::time::Instant;

use sandpit_labs::{CheckKind, Lab, Step};
use sandpit_sandbox::WorkspacePath;
use sandpit_store::Session;
use uuid::Uuid;

use super::model::{ExplainRequest, FailureView, HintView};
use super::{LabStep, Labs};
use crate::error::ApiError;
use crate::llm::{Prompt, Task};

/// Files quoted to the model: at most this many, each cut at `MAX_FILE_CHARS`.
const MAX_FILES: usize = 6;
const MAX_FILE_CHARS: usize = 6_000;
const MAX_TOPIC_CHARS: usize = 200;
const MAX_CODE_CHARS: usize = 20_000;
const MAX_ERROR_CHARS: usize = 5_000;

const NO_MODEL: &str = "no language model is configured";

const HINT_SYSTEM: &str = "You are a patient tutor in a hands-on coding lab. Give the learner \
ONE hint that gets them one step closer to passing the step's checks. Point at what is wrong in \
their files and why; do not write the full solution. Plain markdown, at most 120 words.";

const EXPLAIN_SYSTEM: &str = "You are a patient tutor in a hands-on coding lab. Explain what \
the learner asks about clearly and briefly, with a small example when it helps. If they show \
an error, say what causes it and how to fix it. Plain markdown, at most 200 words.";

impl Labs {
    /// A hint for a step of a caller's lab session.
    pub async fn hint(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        step: Option<&str>,
    ) -> Result<HintView, ApiError> {
        let LabStep { session, lab, step } = self.session_step(user_id, session_id, step).await?;
        self.spend_hint(session.id)?;
        let failures = self.last_failures(user_id, &session, &step).await?;
        let fallback_reason = if self.llm.routes(Task::Hint) {
            let files = self.relevant_files(&session, &lab, &step).await;
            let prompt = Prompt {
                system: HINT_SYSTEM.into(),
                user: hint_prompt(&lab, &step, &failures, &files),
            };
            match self.llm.complete(Task::Hint, &prompt).await {
                Ok(c) => return Ok(llm_answer(c, &step)),
                Err(e) => e.to_string(),
            }
        } else {
            NO_MODEL.to_owned()
        };
        Ok(self.ladder(&session, &step, &failures, true, Some(fallback_reason)))
    }

    /// An explanation of a topic, some code or an error, in a caller's lab session.
    pub async fn explain(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        req: ExplainRequest,
    ) -> Result<HintView, ApiError> {
        let field = |name, max: usize, v: &Option<String>| match v {
            Some(s) if s.chars().count() > max => Err(ApiError::Validation {
                field: name,
                message: format!("must be at most {max} characters"),
            }),
            _ => Ok(()),
        };
        field("topic", MAX_TOPIC_CHARS, &req.topic)?;
        field("code", MAX_CODE_CHARS, &req.code)?;
        field("error", MAX_ERROR_CHARS, &req.error)?;
        let blank = |v: &Option<String>| v.as_deref().is_none_or(|s| s.trim().is_empty());
        if blank(&req.topic) && blank(&req.code) && blank(&req.error) {
            return Err(ApiError::Validation {
                field: "topic",
                message: "say what to explain: a topic, some code or an error".into(),
            });
        }
        let LabStep { session, lab, step } = self.session_step(user_id, session_id, None).await?;
        self.spend_hint(session.id)?;
        let fallback_reason = if self.llm.routes(Task::Explain) {
            let prompt = Prompt {
                system: EXPLAIN_SYSTEM.into(),
                user: explain_prompt(&lab, &step, &req),
            };
            match self.llm.complete(Task::Explain, &prompt).await {
                Ok(c) => return Ok(llm_answer(c, &step)),
                Err(e) => e.to_string(),
            }
        } else {
            NO_MODEL.to_owned()
        };
        let failures = self.last_failures(user_id, &session, &step).await?;
        // An explanation does not climb the ladder: it shows the rung the learner is on.
        Ok(self.ladder(&session, &step, &failures, false, Some(fallback_reason)))
    }

    async fn last_failures(
        &self,
        user_id: Uuid,
        session: &Session,
        step: &Step,
    ) -> Result<Vec<FailureView>, ApiError> {
        Ok(self
            .last_attempt(user_id, session, &step.id)
            .await?
            .and_then(|a| serde_json::from_value(a.failures).ok())
            .unwrap_or_default())
    }

    fn ladder(
        &self,
        session: &Session,
        step: &Step,
        failures: &[FailureView],
        climb: bool,
        fallback_reason: Option<String>,
    ) -> HintView {
        let rungs = ladder(step, failures);
        let mut levels = super::lock(&self.hint_levels);
        let (seen, used) = levels
            .entry((session.id, step.id.clone()))
            .or_insert((0, Instant::now()));
        *used = Instant::now();
        let index = if climb {
            let i = (*seen).min(rungs.len().saturating_sub(1));
            *seen += 1;
            i
        } else {
            seen.saturating_sub(1).min(rungs.len().saturating_sub(1))
        };
        let (source, text) = rungs.get(index).cloned().unwrap_or((
            "authored",
            "Read the step's instructions once more, then press Check to see what the judge finds."
                .to_owned(),
        ));
        HintView {
            text,
            source,
            step: step.id.clone(),
            provider: None,
            model: None,
            fallback_reason,
            level: Some(index + 1),
            levels: Some(rungs.len().max(1)),
        }
    }

    /// The files a hint should see: those the step's checks look at and the lab's starter
    /// files, read through the sandbox (what cannot be read is left out).
    async fn relevant_files(
        &self,
        session: &Session,
        lab: &Lab,
        step: &Step,
    ) -> Vec<(String, String)> {
        let Ok(sandbox) = self.sessions.sandbox_of_session(session).await else {
            return Vec::new();
        };
        let mut paths: BTreeSet<WorkspacePath> = BTreeSet::new();
        for check in &step.checks {
            match &check.kind {
                CheckKind::FileExists { path }
                | CheckKind::FileMatches { path, .. }
                | CheckKind::Dockerfile { path, .. } => {
                    paths.insert(path.clone());
                }
                CheckKind::Image { dockerfile, .. } => {
                    paths.insert(dockerfile.clone());
                }
                _ => {}
            }
        }
        paths.extend(lab.starter.keys().cloned());
        let mut files = Vec::new();
        for path in paths.into_iter().take(MAX_FILES * 2) {
            if files.len() == MAX_FILES {
                break;
            }
            if let Ok(data) = sandbox.read_file(&path, (MAX_FILE_CHARS * 4) as u64).await
                && let Ok(text) = String::from_utf8(data)
            {
                files.push((path.to_string(), cut(&text, MAX_FILE_CHARS)));
            }
        }
        files
    }
}

fn llm_answer(c: crate::llm::Completion, step: &Step) -> HintView {
    HintView {
        text: c.text,
        source: "llm",
        step: step.id.clone(),
        provider: Some(c.provider),
        model: Some(c.model),
        fallback_reason: None,
        level: None,
        levels: None,
    }
}

/// The deterministic ladder: authored hints, then the last failures' hints (each once).
pub fn ladder(step: &Step, failures: &[FailureView]) -> Vec<(&'static str, String)> {
    let mut rungs: Vec<(&'static str, String)> =
        step.hints.iter().map(|h| ("authored", h.clone())).collect();
    for f in failures {
        let text = if f.hint.is_empty() {
            f.message.clone()
        } else {
            format!("{}. {}", f.message.trim_end_matches('.'), f.hint)
        };
        if !rungs.iter().any(|(_, t)| *t == text) {
            rungs.push(("failures", text));
        }
    }
    rungs
}

fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        format!("{}\n… (cut)", text.chars().take(max).collect::<String>())
    }
}

/// The user message of a hint request: the step, the last failures, the learner's files.
pub fn hint_prompt(
    lab: &Lab,
    step: &Step,
    failures: &[FailureView],
    files: &[(String, String)],
) -> String {
    let mut p = format!(
        "Lab: {}\nStep: {}\n\nInstructions of the step:\n{}\n",
        lab.title,
        step.title,
        cut(&step.markdown, 8_000)
    );
    if failures.is_empty() {
        p.push_str("\nThe learner has not run the checks of this step yet (or they passed).\n");
    } else {
        p.push_str("\nWhat the checks found on the last attempt:\n");
        for f in failures {
            p.push_str(&format!("- {}: {} (hint: {})\n", f.code, f.message, f.hint));
        }
    }
    if !step.hints.is_empty() {
        p.push_str("\nThe lab author's hints, gentlest first:\n");
        for h in &step.hints {
            p.push_str(&format!("- {h}\n"));
        }
    }
    for (path, text) in files {
        p.push_str(&format!("\nThe learner's file {path}:\n```\n{text}\n```\n"));
    }
    p
}

fn explain_prompt(lab: &Lab, step: &Step, req: &ExplainRequest) -> String {
    let mut p = format!("Lab: {}\nStep: {}\n", lab.title, step.title);
    if let Some(topic) = req.topic.as_deref().filter(|t| !t.trim().is_empty()) {
        p.push_str(&format!("\nExplain: {topic}\n"));
    }
    if let Some(code) = req.code.as_deref().filter(|t| !t.trim().is_empty()) {
        p.push_str(&format!("\nThe code:\n```\n{code}\n```\n"));
    }
    if let Some(error) = req.error.as_deref().filter(|t| !t.trim().is_empty()) {
        p.push_str(&format!("\nThe error:\n```\n{error}\n```\n"));
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lab() -> Lab {
        let (catalog, _) = sandpit_labs::Catalog::load(&[], &["default", "docker"]);
        (**catalog.get("python-functions").expect("built in")).clone()
    }

    fn failure(code: &str, message: &str, hint: &str) -> FailureView {
        FailureView {
            code: code.into(),
            message: message.into(),
            hint: hint.into(),
        }
    }

    #[test]
    fn the_ladder_is_authored_hints_then_failures_without_repeats() {
        let lab = lab();
        let step = &lab.steps[0];
        let f = failure(
            "slugify-cases",
            "slugify(\"A B\") returned 'A B'",
            "Lower-case it.",
        );
        let rungs = ladder(step, &[f.clone(), f]);
        assert_eq!(
            rungs.len(),
            step.hints.len() + 1,
            "a repeated failure is one rung"
        );
        for (rung, hint) in rungs.iter().zip(&step.hints) {
            assert_eq!(rung, &("authored", hint.clone()));
        }
        assert_eq!(
            rungs.last(),
            Some(&(
                "failures",
                "slugify(\"A B\") returned 'A B'. Lower-case it.".to_owned()
            ))
        );
    }

    #[test]
    fn the_hint_prompt_carries_the_step_failures_hints_and_files() {
        let lab = lab();
        let step = &lab.steps[0];
        let files = vec![(
            "text_tools.py".to_owned(),
            "def slugify(t):\n    return t\n".to_owned(),
        )];
        let p = hint_prompt(
            &lab,
            step,
            &[failure("slugify-cases", "wrong case", "lower it")],
            &files,
        );
        assert!(p.contains(&step.title));
        assert!(p.contains(step.markdown.lines().next().unwrap_or_default()));
        assert!(p.contains("- slugify-cases: wrong case (hint: lower it)"));
        assert!(p.contains(&step.hints[0]));
        assert!(p.contains("The learner's file text_tools.py:\n```\ndef slugify(t):"));
        let none = hint_prompt(&lab, step, &[], &[]);
        assert!(none.contains("has not run the checks"));
    }

    #[test]
    fn long_files_are_cut() {
        let long = "y".repeat(MAX_FILE_CHARS + 10);
        let cut = cut(&long, MAX_FILE_CHARS);
        assert!(cut.ends_with("… (cut)"));
        assert_eq!(cut.chars().filter(|c| *c == 'y').count(), MAX_FILE_CHARS);
    }
}
