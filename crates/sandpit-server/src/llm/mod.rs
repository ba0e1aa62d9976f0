//! Language models behind one interface. Providers are configured by name (`[llm.providers]`)
//! and routed per [`Task`] (`[llm.routes]`); each speaks one protocol ([`Provider`]):
//! OpenAI-compatible chat completions, Gemini `generateContent`, or Anthropic messages.
//!
//! [`Llm::complete`] is the one place that enforces what every protocol shares: the whole-request
//! timeout, the caps on the response body and text, the error taxonomy, one log line per
//! failure and the completion counter. No task routed means no LLM: callers fall back to the
//! lab's authored hints, and `/readyz` says so without calling that an error.

pub mod config;

mod anthropic;
mod gemini;
mod openai;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::http::{HeaderMap, HeaderValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use serde::Serialize;
use serde::de::DeserializeOwned;
use utoipa::ToSchema;

pub use config::{LlmConfig, LlmConfigError, ProviderConfig, ProviderKind, RoutesConfig};

use crate::metrics::LlmLabels;

/// Most bytes of a provider's response body read; a larger one is a protocol error.
pub const MAX_BODY_BYTES: usize = 1 << 20;
/// Most bytes of completion text kept for a hint or an explanation (cut at a character
/// boundary).
pub const MAX_TEXT_BYTES: usize = 8 << 10;
/// … and for an agent job's answer (a code job's answer carries whole files).
pub const MAX_JOB_TEXT_BYTES: usize = 512 << 10;

/// What a completion is for; each task is routed to a provider on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Task {
    Hint,
    Explain,
    /// The agent job kinds.
    Research,
    Wireframe,
    Code,
    Qa,
    Pedagogy,
}

impl Task {
    pub const ALL: [Task; 7] = [
        Task::Hint,
        Task::Explain,
        Task::Research,
        Task::Wireframe,
        Task::Code,
        Task::Qa,
        Task::Pedagogy,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Task::Hint => "hint",
            Task::Explain => "explain",
            Task::Research => "research",
            Task::Wireframe => "wireframe",
            Task::Code => "code",
            Task::Qa => "qa",
            Task::Pedagogy => "pedagogy",
        }
    }

    /// The most text kept of an answer.
    pub fn max_text_bytes(self) -> usize {
        match self {
            Task::Hint | Task::Explain => MAX_TEXT_BYTES,
            _ => MAX_JOB_TEXT_BYTES,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prompt {
    /// Instructions: who the model is and how to answer.
    pub system: String,
    /// The learner's material: the step, their code, the judge's findings.
    pub user: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completion {
    /// The model's answer, trimmed, at most [`MAX_TEXT_BYTES`].
    pub text: String,
    /// The provider's name in the config.
    pub provider: String,
    /// `openai`, `gemini` or `anthropic`.
    pub kind: &'static str,
    pub model: String,
}

/// Why no completion came back. Never holds a key, a prompt or the provider's error body.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LlmError {
    #[error("no language model is configured for this task")]
    NotConfigured,
    #[error("the language model did not answer in time")]
    Timeout,
    #[error("the language model's server answered HTTP {status}")]
    Status { status: u16 },
    #[error("unexpected answer from the language model: {0}")]
    Protocol(String),
    #[error("cannot reach the language model: {0}")]
    Transport(String),
}

impl LlmError {
    /// A stable name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            LlmError::NotConfigured => "not_configured",
            LlmError::Timeout => "timeout",
            LlmError::Status { .. } => "status",
            LlmError::Protocol(_) => "protocol",
            LlmError::Transport(_) => "transport",
        }
    }
}

/// One protocol. An implementation builds the request from its own settings and the prompt and
/// reads the text out of the answer; [`Llm::complete`] adds the timeout, caps and logging.
#[async_trait]
pub trait Provider: Send + Sync {
    /// `openai`, `gemini` or `anthropic`.
    fn kind(&self) -> &'static str;
    fn model(&self) -> &str;
    /// The model's text for `prompt` (not yet trimmed or capped).
    async fn complete(&self, prompt: &Prompt) -> Result<String, LlmError>;
}

/// What `/readyz` shows for one routed task: never the key or the base URL.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct LlmRoute {
    /// The provider's name in the config.
    #[schema(example = "main")]
    pub provider: String,
    /// `openai`, `gemini` or `anthropic`.
    #[schema(example = "openai")]
    pub kind: &'static str,
    #[schema(example = "gpt-4o-mini")]
    pub model: String,
}

struct Route {
    name: String,
    provider: Arc<dyn Provider>,
    timeout: Duration,
}

/// The configured providers, routed per task, with the fallback tried when a task's provider
/// fails (or a task has none). Built once at start-up; cheap to share.
pub struct Llm {
    routes: BTreeMap<Task, Route>,
    fallback: Option<Route>,
    completions: Option<Family<LlmLabels, Counter>>,
}

impl fmt::Debug for Llm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Llm")
            .field("routes", &self.readiness())
            .finish_non_exhaustive()
    }
}

impl Llm {
    /// Validates `config` and builds one provider per configured name. `http` is shared; each
    /// request sets its own timeout, overriding the client's.
    pub fn new(config: &LlmConfig, http: reqwest::Client) -> Result<Self, LlmConfigError> {
        config.validate()?;
        let mut built: BTreeMap<&str, (Arc<dyn Provider>, Duration)> = BTreeMap::new();
        for (name, p) in &config.providers {
            let invalid = |problem: String| LlmConfigError::Invalid {
                provider: name.clone(),
                problem,
            };
            let endpoint = Endpoint {
                http: http.clone(),
                base: config::parse_base_url(p.base_url())
                    .map_err(|e| invalid(format!("base_url: {e}")))?,
                timeout: Duration::from_millis(p.timeout_ms),
            };
            let provider: Arc<dyn Provider> = match p.kind {
                ProviderKind::Openai => {
                    Arc::new(openai::OpenAi::new(endpoint, p).map_err(invalid)?)
                }
                ProviderKind::Gemini => {
                    Arc::new(gemini::Gemini::new(endpoint, p).map_err(invalid)?)
                }
                ProviderKind::Anthropic => {
                    Arc::new(anthropic::Anthropic::new(endpoint, p).map_err(invalid)?)
                }
            };
            built.insert(name, (provider, Duration::from_millis(p.timeout_ms)));
        }
        let route = |name: &str| {
            let (provider, timeout) = built.get(name)?;
            Some(Route {
                name: name.to_owned(),
                provider: provider.clone(),
                timeout: *timeout,
            })
        };
        let llm = Self {
            routes: Task::ALL
                .into_iter()
                .filter_map(|task| Some((task, route(config.routes.get(task)?)?)))
                .collect(),
            fallback: config.routes.fallback.as_deref().and_then(route),
            completions: None,
        };
        let routes = llm.readiness();
        if routes.is_empty() {
            tracing::info!(
                "no language model routed; hints come from the labs' authored hints and agent jobs fail with llm_not_configured"
            );
        }
        for (task, r) in routes {
            tracing::info!(
                llm.task = task,
                llm.provider = %r.provider,
                llm.kind = r.kind,
                llm.model = %r.model,
                "language model routed"
            );
        }
        Ok(llm)
    }

    /// Counts completions in this family, by provider and outcome.
    pub fn with_metrics(mut self, completions: Family<LlmLabels, Counter>) -> Self {
        self.completions = Some(completions);
        self
    }

    /// Whether a provider answers `task` (else the caller uses its fallback at once).
    pub fn routes(&self, task: Task) -> bool {
        self.routes.contains_key(&task) || self.fallback.is_some()
    }

    /// Asks the provider routed for `task`, then the fallback provider when that one fails
    /// (or `task` has none routed). Failures are logged here, once per provider asked, without
    /// the key or the prompt; callers need not log them again.
    pub async fn complete(&self, task: Task, prompt: &Prompt) -> Result<Completion, LlmError> {
        let primary = self.routes.get(&task);
        let fallback = self
            .fallback
            .as_ref()
            .filter(|f| primary.is_none_or(|p| p.name != f.name));
        let Some(first) = primary.or(fallback) else {
            return Err(LlmError::NotConfigured);
        };
        match self.ask(first, task, prompt).await {
            Err(e) if primary.is_some() => match fallback {
                Some(fallback) => self.ask(fallback, task, prompt).await,
                None => Err(e),
            },
            other => other,
        }
    }

    async fn ask(
        &self,
        route: &Route,
        task: Task,
        prompt: &Prompt,
    ) -> Result<Completion, LlmError> {
        let kind = route.provider.kind();
        let started = Instant::now();
        let result =
            match tokio::time::timeout(route.timeout, route.provider.complete(prompt)).await {
                Ok(result) => result.and_then(|t| finish_text(t, task.max_text_bytes())),
                Err(_elapsed) => Err(LlmError::Timeout),
            };
        let duration_ms = started.elapsed().as_millis() as u64;
        if let Some(completions) = &self.completions {
            completions
                .get_or_create(&LlmLabels {
                    provider: route.name.clone(),
                    outcome: result.as_ref().map_or_else(LlmError::kind, |_| "ok"),
                })
                .inc();
        }
        match result {
            Ok(text) => {
                tracing::debug!(
                    llm.task = task.as_str(),
                    llm.provider = %route.name,
                    llm.kind = kind,
                    duration_ms,
                    text_bytes = text.len(),
                    "language model answered"
                );
                Ok(Completion {
                    text,
                    provider: route.name.clone(),
                    kind,
                    model: route.provider.model().to_owned(),
                })
            }
            Err(e) => {
                let status = match &e {
                    LlmError::Status { status } => Some(*status),
                    _ => None,
                };
                tracing::warn!(
                    llm.task = task.as_str(),
                    llm.provider = %route.name,
                    llm.kind = kind,
                    error.kind = e.kind(),
                    status,
                    error = %e,
                    duration_ms,
                    "language model failed"
                );
                Err(e)
            }
        }
    }

    /// The routed tasks with their provider's name, kind and model; empty when none is routed.
    /// (`fallback` names the fallback provider.)
    pub fn readiness(&self) -> BTreeMap<&'static str, LlmRoute> {
        let view = |r: &Route| LlmRoute {
            provider: r.name.clone(),
            kind: r.provider.kind(),
            model: r.provider.model().to_owned(),
        };
        self.routes
            .iter()
            .map(|(task, r)| (task.as_str(), view(r)))
            .chain(self.fallback.as_ref().map(|r| ("fallback", view(r))))
            .collect()
    }
}

/// Trims and caps the model's text; an answer with no text is a protocol error.
fn finish_text(text: String, max: usize) -> Result<String, LlmError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(LlmError::Protocol("the answer holds no text".into()));
    }
    let mut end = trimmed.len().min(max);
    while !trimmed.is_char_boundary(end) {
        end -= 1;
    }
    Ok(trimmed[..end].to_owned())
}

/// Where and how a provider sends its requests; shared by the three protocols.
pub(crate) struct Endpoint {
    http: reqwest::Client,
    base: url::Url,
    timeout: Duration,
}

impl Endpoint {
    /// The base URL with `segments` appended (each percent-encoded as one segment).
    fn url(&self, segments: &[&str]) -> url::Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// POSTs `body` as JSON and decodes a 2xx answer of at most [`MAX_BODY_BYTES`] as `T`.
    async fn post_json<T: DeserializeOwned>(
        &self,
        url: url::Url,
        headers: HeaderMap,
        body: &impl Serialize,
    ) -> Result<T, LlmError> {
        let mut response = self
            .http
            .post(url)
            .headers(headers)
            .timeout(self.timeout)
            .json(body)
            .send()
            .await
            .map_err(from_reqwest)?;
        let status = response.status();
        if !status.is_success() {
            return Err(LlmError::Status {
                status: status.as_u16(),
            });
        }
        let too_big = || LlmError::Protocol(format!("response body over {MAX_BODY_BYTES} bytes"));
        if response
            .content_length()
            .is_some_and(|n| n > MAX_BODY_BYTES as u64)
        {
            return Err(too_big());
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(from_reqwest)? {
            if bytes.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(too_big());
            }
            bytes.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| LlmError::Protocol(format!("the body is not the expected JSON: {e}")))
    }
}

/// A header holding a key: marked sensitive so it never shows in `Debug` output.
fn secret_header(value: &str) -> Result<HeaderValue, String> {
    let mut value = HeaderValue::from_str(value)
        .map_err(|_| "api_key cannot go in an HTTP header".to_owned())?;
    value.set_sensitive(true);
    Ok(value)
}

/// A reqwest failure without its URL; the causes say what went wrong (refused, DNS, TLS …).
fn from_reqwest(e: reqwest::Error) -> LlmError {
    if e.is_timeout() {
        return LlmError::Timeout;
    }
    let e = e.without_url();
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    LlmError::Transport(message)
}
