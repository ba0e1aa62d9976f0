//! Anthropic messages: `POST {base}/messages` with `x-api-key` and `anthropic-version`.

use async_trait::async_trait;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};

use super::{Endpoint, LlmError, Prompt, Provider, ProviderConfig, secret_header};

/// The API version whose request and response shapes this module speaks.
const VERSION: &str = "2023-06-01";

pub(super) struct Anthropic {
    endpoint: Endpoint,
    headers: HeaderMap,
    model: String,
    temperature: f64,
    max_tokens: u32,
}

impl Anthropic {
    pub(super) fn new(endpoint: Endpoint, config: &ProviderConfig) -> Result<Self, String> {
        let key = config.key().ok_or("kind anthropic needs api_key")?;
        let mut headers = HeaderMap::new();
        headers.insert(HeaderName::from_static("x-api-key"), secret_header(key)?);
        headers.insert(
            HeaderName::from_static("anthropic-version"),
            HeaderValue::from_static(VERSION),
        );
        Ok(Self {
            endpoint,
            headers,
            model: config.model.clone(),
            temperature: config.temperature,
            max_tokens: config.max_tokens,
        })
    }
}

#[derive(Serialize)]
struct Request<'a> {
    model: &'a str,
    system: &'a str,
    messages: [Message<'a>; 1],
    max_tokens: u32,
    temperature: f64,
}

#[derive(Serialize)]
struct Message<'a> {
    role: &'static str,
    content: &'a str,
}

#[derive(Deserialize)]
struct Response {
    content: Vec<Block>,
    stop_reason: Option<String>,
}

#[derive(Deserialize)]
struct Block {
    #[serde(rename = "type")]
    kind: String,
    text: Option<String>,
}

#[async_trait]
impl Provider for Anthropic {
    fn kind(&self) -> &'static str {
        "anthropic"
    }

    fn model(&self) -> &str {
        &self.model
    }

    async fn complete(&self, prompt: &Prompt) -> Result<String, LlmError> {
        let body = Request {
            model: &self.model,
            system: &prompt.system,
            messages: [Message {
                role: "user",
                content: &prompt.user,
            }],
            max_tokens: self.max_tokens,
            temperature: self.temperature,
        };
        let url = self.endpoint.url(&["messages"]);
        let response: Response = self
            .endpoint
            .post_json(url, self.headers.clone(), &body)
            .await?;
        // Thinking and tool-use blocks are not the answer.
        let text: String = response
            .content
            .into_iter()
            .filter(|b| b.kind == "text")
            .filter_map(|b| b.text)
            .collect();
        if text.trim().is_empty() {
            return Err(LlmError::Protocol(format!(
                "no text blocks (stop reason: {})",
                response.stop_reason.as_deref().unwrap_or("none given")
            )));
        }
        Ok(text)
    }
}
