//! The `[llm]` section: named providers and which of them answers each task. Parsed and checked
//! once at start-up ([`LlmConfig::validate`]), so a typo in a route or a base URL stops the
//! server with a clear message instead of failing the first learner who asks for a hint.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use axum::http::HeaderValue;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::Task;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LlmConfig {
    /// Providers by name (the name shows in logs, metrics and `/readyz`).
    pub providers: BTreeMap<String, ProviderConfig>,
    /// Which provider answers which task; none routed = no LLM (authored hints only).
    pub routes: RoutesConfig,
}

/// One task → one provider name. A struct rather than a map so a misspelt task is an error.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoutesConfig {
    pub hint: Option<String>,
    pub explain: Option<String>,
    /// The agent job kinds.
    pub research: Option<String>,
    pub wireframe: Option<String>,
    pub code: Option<String>,
    pub qa: Option<String>,
    pub pedagogy: Option<String>,
    /// Asked when a task's provider fails, and for tasks no route names.
    pub fallback: Option<String>,
}

impl RoutesConfig {
    pub fn get(&self, task: Task) -> Option<&str> {
        match task {
            Task::Hint => self.hint.as_deref(),
            Task::Explain => self.explain.as_deref(),
            Task::Research => self.research.as_deref(),
            Task::Wireframe => self.wireframe.as_deref(),
            Task::Code => self.code.as_deref(),
            Task::Qa => self.qa.as_deref(),
            Task::Pedagogy => self.pedagogy.as_deref(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// The protocol spoken.
    pub kind: ProviderKind,
    /// Empty: the kind's public endpoint ([`ProviderKind::default_base_url`]).
    #[serde(default)]
    pub base_url: Option<String>,
    /// Optional for `openai` (a local Ollama or vLLM needs none), required for the others.
    #[serde(default, serialize_with = "crate::config::serialize_secret_opt")]
    pub api_key: Option<SecretString>,
    #[serde(default)]
    pub api_key_file: Option<PathBuf>,
    pub model: String,
    #[serde(default = "default_temperature")]
    pub temperature: f64,
    #[serde(default = "default_max_tokens")]
    pub max_tokens: u32,
    /// The whole request: connecting, waiting for the model, reading the answer.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_temperature() -> f64 {
    0.2
}

fn default_max_tokens() -> u32 {
    600
}

fn default_timeout_ms() -> u64 {
    15_000
}

impl ProviderConfig {
    /// A provider of `kind` for `model` with the defaults (tests and examples start here).
    pub fn new(kind: ProviderKind, model: impl Into<String>) -> Self {
        Self {
            kind,
            base_url: None,
            api_key: None,
            api_key_file: None,
            model: model.into(),
            temperature: default_temperature(),
            max_tokens: default_max_tokens(),
            timeout_ms: default_timeout_ms(),
        }
    }

    /// The key, if one is set and not empty (an empty environment variable counts as unset).
    pub fn key(&self) -> Option<&str> {
        self.api_key
            .as_ref()
            .map(|k| k.expose_secret())
            .filter(|k| !k.is_empty())
    }

    /// The configured base URL or the kind's default.
    pub fn base_url(&self) -> &str {
        match self.base_url.as_deref() {
            Some(url) if !url.is_empty() => url,
            _ => self.kind.default_base_url(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// Any OpenAI-compatible chat completions server: OpenAI, Ollama, vLLM, llama.cpp.
    Openai,
    Gemini,
    Anthropic,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Openai => "openai",
            ProviderKind::Gemini => "gemini",
            ProviderKind::Anthropic => "anthropic",
        }
    }

    pub fn default_base_url(self) -> &'static str {
        match self {
            ProviderKind::Openai => "https://api.openai.com/v1",
            ProviderKind::Gemini => "https://generativelanguage.googleapis.com/v1beta",
            ProviderKind::Anthropic => "https://api.anthropic.com/v1",
        }
    }

    /// The highest temperature the kind accepts (Anthropic's scale ends at 1).
    fn max_temperature(self) -> f64 {
        match self {
            ProviderKind::Anthropic => 1.0,
            ProviderKind::Openai | ProviderKind::Gemini => 2.0,
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What is wrong with `[llm]`. Every message names the key to fix and never holds a key.
#[derive(Debug, thiserror::Error)]
pub enum LlmConfigError {
    #[error(
        "llm.routes.{task} names provider {name:?}, which is not under [llm.providers] (known: {known})"
    )]
    UnknownProvider {
        task: &'static str,
        name: String,
        known: String,
    },
    #[error("llm.providers.{provider}: {problem}")]
    Invalid { provider: String, problem: String },
}

impl LlmConfig {
    /// Checks every provider (routed or not) and every route.
    pub fn validate(&self) -> Result<(), LlmConfigError> {
        for (name, provider) in &self.providers {
            validate_provider(name, provider).map_err(|problem| LlmConfigError::Invalid {
                provider: name.clone(),
                problem,
            })?;
        }
        let routed = Task::ALL
            .into_iter()
            .map(|task| (task.as_str(), self.routes.get(task)))
            .chain([("fallback", self.routes.fallback.as_deref())]);
        for (task, name) in routed {
            if let Some(name) = name
                && !self.providers.contains_key(name)
            {
                let known = self.providers.keys().cloned().collect::<Vec<_>>();
                return Err(LlmConfigError::UnknownProvider {
                    task,
                    name: name.to_owned(),
                    known: if known.is_empty() {
                        "none".into()
                    } else {
                        known.join(", ")
                    },
                });
            }
        }
        Ok(())
    }
}

fn validate_provider(name: &str, p: &ProviderConfig) -> Result<(), String> {
    // The name becomes a log field and a metrics label.
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err("provider names use letters, digits, - and _ (at most 64)".into());
    }
    if p.model.trim().is_empty() || p.model.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("model must be set, without spaces".into());
    }
    let max = p.kind.max_temperature();
    if !(0.0..=max).contains(&p.temperature) {
        return Err(format!(
            "temperature must be between 0 and {max} for kind {}, not {}",
            p.kind, p.temperature
        ));
    }
    if p.max_tokens == 0 {
        return Err("max_tokens must be at least 1".into());
    }
    if p.timeout_ms == 0 {
        return Err("timeout_ms must be at least 1".into());
    }
    parse_base_url(p.base_url()).map_err(|problem| format!("base_url: {problem}"))?;
    match p.key() {
        None if p.kind != ProviderKind::Openai => {
            return Err(format!("kind {} needs api_key (or api_key_file)", p.kind));
        }
        Some(key) if HeaderValue::from_str(key).is_err() => {
            return Err(
                "api_key holds characters that cannot go in an HTTP header (a stray newline?)"
                    .into(),
            );
        }
        _ => {}
    }
    Ok(())
}

/// An `http(s)` URL with a host and no credentials, query or fragment: the key has its own
/// setting (a secret), so nothing secret may hide in the URL, which is not redacted.
pub(crate) fn parse_base_url(raw: &str) -> Result<url::Url, String> {
    // The parse error never echoes the URL: an unparsable one may still hold a password.
    let url = url::Url::parse(raw).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "must be http:// or https://, not {}://",
            url.scheme()
        ));
    }
    if url.host().is_none() {
        return Err("needs a host".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not hold credentials; use api_key or api_key_file".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query or fragment".into());
    }
    Ok(url)
}
