//! OpenAI-compatible chat completions (OpenAI, Ollama, vLLM, llama.cpp):
//! `POST {base}/chat/completions` with `Authorization: Bearer` (omitted without a key).

use async_trait::async_trait;
use axum::http::{HeaderMap, header};
use serde::{Deserialize, Serialize};

use super::{Endpoint, LlmError, Prompt, Provider, ProviderConfig, secret_header};

pub(super) struct OpenAi {
    endpoint: Endpoint,
    headers: HeaderMap,
    model: String,
    temperature: f64,
    max_tokens: u32,
}

impl OpenAi {
    pub(super) fn new(endpoint: Endpoint, config: &ProviderConfig) -> Result<Self, String> {
        let mut headers = HeaderMap::new();
        if let Some(key) = config.key() {
            headers.insert(
                header::AUTHORIZATION,
                secret_header(&format!("Bearer {key}"))?,
            );
        }
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
    messages: [Message<'a>; 2],
    temperature: f64,
    max_tokens: u32,
}

#[derive(Serialize)]
struct Message<'a> {
    role: &'static str,
    content: &'a str,
}

#[derive(Deserialize)]
struct Response {
    choices: Vec<Choice>,
}

#[derive(Deserialize)]
struct Choice {
    message: AnswerMessage,
}

#[derive(Deserialize)]
struct AnswerMessage {
    /// Null when the model refused or only called tools.
    content: Option<String>,
}

#[async_trait]
impl Provider for OpenAi {
    fn kind(&self) -> &'static str {
        "openai"
    }

    fn model(&self) -> &str {
        &self.model
    }

    async fn complete(&self, prompt: &Prompt) -> Result<String, LlmError> {
        let body = Request {
            model: &self.model,
            messages: [
                Message {
                    role: "system",
                    content: &prompt.system,
                },
                Message {
                    role: "user",
                    content: &prompt.user,
                },
            ],
            temperature: self.temperature,
            max_tokens: self.max_tokens,
        };
        let url = self.endpoint.url(&["chat", "completions"]);
        let response: Response = self
            .endpoint
            .post_json(url, self.headers.clone(), &body)
            .await?;
        response
            .choices
            .into_iter()
            .next()
            .ok_or_else(|| LlmError::Protocol("no choices".into()))?
            .message
            .content
            .ok_or_else(|| LlmError::Protocol("choices[0].message.content is null".into()))
    }
}
