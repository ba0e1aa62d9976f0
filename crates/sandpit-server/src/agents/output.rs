//! What each agent job kind asks the model for (its output schema) and how an answer is read:
//! the JSON object in the text, decoded into the kind's shape and checked, so a job's result
//! is always well-formed — an answer that is not is a failed attempt (`llm_invalid_output`),
//! retried, never stored.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::sessions::files::FilePath;

/// Why an answer cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct Invalid(pub String);

fn invalid(message: impl Into<String>) -> Invalid {
    Invalid(message.into())
}

/// The outermost JSON object in a model's text (which may wrap it in prose or a code fence).
pub fn json_object(text: &str) -> Result<serde_json::Value, Invalid> {
    let start = text.find('{');
    let end = text.rfind('}');
    let (Some(start), Some(end)) = (start, end) else {
        return Err(invalid("the answer holds no JSON object"));
    };
    if end < start {
        return Err(invalid("the answer holds no JSON object"));
    }
    serde_json::from_str(&text[start..=end])
        .map_err(|e| invalid(format!("the answer's JSON does not parse: {e}")))
}

fn decode<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T, Invalid> {
    serde_json::from_value(value)
        .map_err(|e| invalid(format!("the answer's JSON is not of the asked shape: {e}")))
}

fn required(field: &str, value: &str) -> Result<(), Invalid> {
    if value.trim().is_empty() {
        return Err(invalid(format!("`{field}` is empty")));
    }
    Ok(())
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Research {
    pub summary: String,
    pub findings: Vec<Finding>,
    #[serde(default)]
    pub open_questions: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Finding {
    pub title: String,
    pub detail: String,
    #[serde(default)]
    pub sources: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Wireframe {
    pub screens: Vec<Screen>,
    /// How a user moves between the screens.
    #[serde(default)]
    pub flow: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Screen {
    pub name: String,
    pub purpose: String,
    pub elements: Vec<Element>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Element {
    /// `heading`, `text`, `button`, `input`, `list`, `image` …
    pub kind: String,
    pub label: String,
    #[serde(default)]
    pub notes: Option<String>,
}

/// A code job's answer: the change set it proposes.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Code {
    pub summary: String,
    pub changes: Vec<Change>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Change {
    pub path: String,
    /// `write` (create or replace, with `content`) or `delete`.
    pub action: ChangeAction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// The version of the file the change was made against (hex SHA-256; absent when the
    /// file did not exist): accepting the change set checks it is still that version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_sha256: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ChangeAction {
    Write,
    Delete,
}

/// A qa job's report on the project's test run.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Qa {
    /// `pass` or `fail`.
    pub verdict: Verdict,
    pub summary: String,
    #[serde(default)]
    pub failures: Vec<QaFailure>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct QaFailure {
    pub test: String,
    pub problem: String,
    pub suggestion: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Pedagogy {
    pub objectives: Vec<String>,
    pub steps: Vec<Lesson>,
    #[serde(default)]
    pub quiz: Vec<Question>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Lesson {
    pub title: String,
    pub explanation: String,
    pub exercise: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Question {
    pub question: String,
    pub answer: String,
}

/// The shape each kind asks for, as the prompt spells it out.
pub fn schema_text(kind: super::Kind) -> &'static str {
    use super::Kind;
    match kind {
        Kind::Research => {
            r#"{"summary": string, "findings": [{"title": string, "detail": string, "sources": [string]}], "open_questions": [string]}"#
        }
        Kind::Wireframe => {
            r#"{"screens": [{"name": string, "purpose": string, "elements": [{"kind": "heading"|"text"|"button"|"input"|"list"|"image", "label": string, "notes": string}]}], "flow": [string]}"#
        }
        Kind::Code => {
            r#"{"summary": string, "changes": [{"path": string (relative, '/'-separated), "action": "write"|"delete", "content": string (the whole new file, for "write")}]}"#
        }
        Kind::Qa => {
            r#"{"verdict": "pass"|"fail", "summary": string, "failures": [{"test": string, "problem": string, "suggestion": string}]}"#
        }
        Kind::Pedagogy => {
            r#"{"objectives": [string], "steps": [{"title": string, "explanation": string, "exercise": string}], "quiz": [{"question": string, "answer": string}]}"#
        }
    }
}

/// Limits a code job's change set must keep.
#[derive(Debug, Clone, Copy)]
pub struct ChangeLimits {
    pub max_changes: usize,
    pub max_file_bytes: u64,
}

/// Reads a kind's answer: its JSON, decoded and checked. A code job's changes are returned
/// with their paths normalised.
pub fn read(
    kind: super::Kind,
    text: &str,
    limits: ChangeLimits,
) -> Result<serde_json::Value, Invalid> {
    use super::Kind;
    let value = json_object(text)?;
    let checked = match kind {
        Kind::Research => {
            let r: Research = decode(value)?;
            required("summary", &r.summary)?;
            serde_json::to_value(r)
        }
        Kind::Wireframe => {
            let w: Wireframe = decode(value)?;
            if w.screens.is_empty() {
                return Err(invalid("`screens` is empty"));
            }
            serde_json::to_value(w)
        }
        Kind::Code => {
            let mut c: Code = decode(value)?;
            required("summary", &c.summary)?;
            check_changes(&mut c.changes, limits)?;
            serde_json::to_value(c)
        }
        Kind::Qa => {
            let q: Qa = decode(value)?;
            required("summary", &q.summary)?;
            serde_json::to_value(q)
        }
        Kind::Pedagogy => {
            let p: Pedagogy = decode(value)?;
            if p.steps.is_empty() {
                return Err(invalid("`steps` is empty"));
            }
            serde_json::to_value(p)
        }
    };
    checked.map_err(|e| invalid(e.to_string()))
}

/// A change set must be non-empty, within the limits, name valid paths once each, and not
/// make a path both a file and a directory.
fn check_changes(changes: &mut [Change], limits: ChangeLimits) -> Result<(), Invalid> {
    if changes.is_empty() {
        return Err(invalid("`changes` is empty"));
    }
    if changes.len() > limits.max_changes {
        return Err(invalid(format!("more than {} changes", limits.max_changes)));
    }
    let mut written = std::collections::BTreeMap::new();
    for change in changes.iter_mut() {
        let path = FilePath::parse(&change.path)
            .map_err(|e| invalid(format!("change to {:?}: {e}", change.path)))?;
        change.path = path.workspace().as_str().to_owned();
        // The model's own `base_sha256` is not believed: the job sets it.
        change.base_sha256 = None;
        match (change.action, &change.content) {
            (ChangeAction::Write, None) => {
                return Err(invalid(format!("writing {} needs `content`", change.path)));
            }
            (ChangeAction::Write, Some(content))
                if content.len() as u64 > limits.max_file_bytes =>
            {
                return Err(invalid(format!(
                    "{} is over {} bytes",
                    change.path, limits.max_file_bytes
                )));
            }
            (ChangeAction::Delete, Some(_)) => change.content = None,
            _ => {}
        }
        if written.insert(change.path.clone(), Vec::new()).is_some() {
            return Err(invalid(format!("{} is changed twice", change.path)));
        }
    }
    if let Some((file, under)) = crate::projects::archive::collision(&written) {
        return Err(invalid(format!(
            "{file} is a file, so {under} cannot be under it"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::Kind;
    use super::*;

    const LIMITS: ChangeLimits = ChangeLimits {
        max_changes: 3,
        max_file_bytes: 20,
    };

    #[test]
    fn the_json_is_found_in_prose_and_fences() {
        let text = "Here you go:\n```json\n{\"summary\": \"s\", \"findings\": []}\n```\nEnjoy.";
        let got = read(Kind::Research, text, LIMITS).unwrap();
        assert_eq!(got["summary"], "s");
        assert_eq!(got["open_questions"], serde_json::json!([]));
        for bad in ["no json here", "{not json}", "} backwards {"] {
            assert!(read(Kind::Research, bad, LIMITS).is_err(), "{bad}");
        }
        // The shape is checked: a missing field, an empty summary.
        assert!(read(Kind::Research, r#"{"findings": []}"#, LIMITS).is_err());
        assert!(
            read(
                Kind::Research,
                r#"{"summary": " ", "findings": []}"#,
                LIMITS
            )
            .is_err()
        );
        assert!(read(Kind::Qa, r#"{"verdict": "maybe", "summary": "s"}"#, LIMITS).is_err());
    }

    #[test]
    fn change_sets_are_checked() {
        let ok = r#"{"summary": "s", "changes": [
            {"path": "./src/a.py", "action": "write", "content": "x = 1", "base_sha256": "forged"},
            {"path": "old.py", "action": "delete", "content": "ignored"}]}"#;
        let got = read(Kind::Code, ok, LIMITS).unwrap();
        assert_eq!(got["changes"][0]["path"], "src/a.py");
        assert!(
            got["changes"][0].get("base_sha256").is_none(),
            "not the model's to say"
        );
        assert!(got["changes"][1].get("content").is_none());
        for (bad, why) in [
            (r#"{"summary": "s", "changes": []}"#, "empty"),
            (
                r#"{"summary": "s", "changes": [{"path": "../x", "action": "write", "content": ""}]}"#,
                "escape",
            ),
            (
                r#"{"summary": "s", "changes": [{"path": "a", "action": "write"}]}"#,
                "no content",
            ),
            (
                r#"{"summary": "s", "changes": [{"path": "a", "action": "write", "content": "0123456789012345678901"}]}"#,
                "too big",
            ),
            (
                r#"{"summary": "s", "changes": [{"path": "a", "action": "delete"}, {"path": "a", "action": "delete"}]}"#,
                "twice",
            ),
            (
                r#"{"summary": "s", "changes": [{"path": "a", "action": "write", "content": ""}, {"path": "a/b", "action": "write", "content": ""}]}"#,
                "file and dir",
            ),
            (
                r#"{"summary": "s", "changes": [{"path": "a", "action": "delete"}, {"path": "b", "action": "delete"}, {"path": "c", "action": "delete"}, {"path": "d", "action": "delete"}]}"#,
                "too many",
            ),
        ] {
            assert!(read(Kind::Code, bad, LIMITS).is_err(), "{why}");
        }
    }
}
