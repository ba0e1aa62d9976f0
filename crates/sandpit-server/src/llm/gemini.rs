//! Gemini: `POST {base}/models/{model}:generateContent` with the key in `x-goog-api-key` (never
//! in the URL, where proxies and logs would keep it).

use async_trait::async_trait;
use axum::http::{HeaderMap, HeaderName};
use serde::{Deserialize, Serialize};

use super::{Endpoint, LlmError, Prompt, Provider, ProviderConfig, secret_header};

pub(super) struct Gemini {
    endpoint: Endpoint,
    headers: HeaderMap,
    model: String,
    temperature: f64,
    max_tokens: u32,
}

impl Gemini {
    pub(super) fn new(endpoint: Endpoint, config: &ProviderConfig) -> Result<Self, String> {
        let key = config.key().ok_or("kind gemini needs api_key")?;
        let mut headers = HeaderMap::new();
        headers.insert(
            HeaderName::from_static("x-goog-api-key"),
            secret_header(key)?,
        );
        Ok(Self {
            endpoint,
            headers,
            // Google's own examples name models both ways: `gemini-2.0-flash` and
            // `models/gemini-2.0-flash`.
            model: config
                .model
                .strip_prefix("models/")
                .unwrap_or(&config.model)
                .to_owned(),
            temperature: config.temperature,
            max_tokens: config.max_tokens,
        })
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Request<'a> {
    system_instruction: Content<'a>,
    contents: [Content<'a>; 1],
    generation_config: GenerationConfig,
}

#[derive(Serialize)]
struct Content<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    parts: [Part<'a>; 1],
}

#[derive(Serialize)]
struct Part<'a> {
    text: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GenerationConfig {
    temperature: f64,
    max_output_tokens: u32,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Response {
    #[serde(default)]
    candidates: Vec<Candidate>,
    prompt_feedback: Option<PromptFeedback>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromptFeedback {
    block_reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Candidate {
    content: Option<AnswerContent>,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct AnswerContent {
    #[serde(default)]
    parts: Vec<AnswerPart>,
}

#[derive(Deserialize)]
struct AnswerPart {
    text: Option<String>,
    /// Thinking models may return their reasoning as parts marked `thought`; not the answer.
    #[serde(default)]
    thought: bool,
}

#[async_trait]
impl Provider for Gemini {
    fn kind(&self) -> &'static str {
        "gemini"
    }

    fn model(&self) -> &str {
        &self.model
    }

    async fn complete(&self, prompt: &Prompt) -> Result<String, LlmError> {
        let body = Request {
            system_instruction: Content {
                role: None,
                parts: [Part {
                    text: &prompt.system,
                }],
            },
            contents: [Content {
                role: Some("user"),
                parts: [Part { text: &prompt.user }],
            }],
            generation_config: GenerationConfig {
                temperature: self.temperature,
                max_output_tokens: self.max_tokens,
            },
        };
        let action = format!("{}:generateContent", self.model);
        let url = self.endpoint.url(&["models", &action]);
        let response: Response = self
            .endpoint
            .post_json(url, self.headers.clone(), &body)
            .await?;
        let Some(candidate) = response.candidates.into_iter().next() else {
            let reason = response
                .prompt_feedback
                .and_then(|f| f.block_reason)
                .unwrap_or_else(|| "none given".into());
            return Err(LlmError::Protocol(format!(
                "no candidates (block reason: {reason})"
            )));
        };
        let text: String = candidate
            .content
            .map(|c| c.parts)
            .unwrap_or_default()
            .into_iter()
            .filter(|p| !p.thought)
            .filter_map(|p| p.text)
            .collect();
        if text.trim().is_empty() {
            return Err(LlmError::Protocol(format!(
                "the candidate holds no text (finish reason: {})",
                candidate.finish_reason.as_deref().unwrap_or("none given")
            )));
        }
        Ok(text)
    }
}
