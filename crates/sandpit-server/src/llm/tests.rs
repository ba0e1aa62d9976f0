//! Each protocol against a local fake server that speaks it and checks every request it gets
//! (path, auth headers, model, where the system and user text go, temperature and token limit),
//! answering 400/401 like the real service when something is off, and a realistic body when
//! not. What the fake refused is kept, so a failing test says why.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use figment::providers::Env;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use secrecy::SecretString;
use serde_json::{Value, json};

use super::*;
use crate::config::Config;
use crate::metrics::LlmLabels;

const SYSTEM: &str = "You are a patient tutor. Give one hint, never the solution.";
const USER: &str = "Step 2: print the numbers 1 to 3.\nMy code:\nfor i in range(3): print(i)";
const KEY: &str = "sk-test-5f0c1b9e8a7d";

/// What the fake does once a request has passed its checks.
#[derive(Clone, Debug)]
enum Mode {
    /// Answer with this text (split over several parts/blocks where the protocol has them).
    Answer(String),
    /// Wait this long, then answer.
    Sleep(Duration),
    /// Answer this status with the service's error body.
    Fail(u16),
    /// Answer 200 with a body that is not the protocol's JSON.
    Malformed,
    /// Answer 200 with well-formed JSON holding no text.
    Empty,
    /// Answer 200 with a body over the read cap.
    Huge,
}

#[derive(Clone)]
struct Fake {
    kind: ProviderKind,
    model: &'static str,
    key: Option<&'static str>,
    temperature: f64,
    max_tokens: u64,
    mode: Arc<Mutex<Mode>>,
    /// Requests that passed the checks.
    served: Arc<Mutex<u32>>,
    /// Why requests were refused.
    refused: Arc<Mutex<Vec<String>>>,
    base_url: String,
}

impl Fake {
    /// Starts a fake `kind` server on a free loopback port expecting `key` (none: no auth).
    async fn start(kind: ProviderKind, key: Option<&'static str>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (model, prefix) = match kind {
            ProviderKind::Openai => ("gpt-4o-mini", "/v1"),
            ProviderKind::Gemini => ("gemini-2.0-flash", "/v1beta"),
            ProviderKind::Anthropic => ("claude-3-5-haiku-20241022", "/v1"),
        };
        let fake = Fake {
            kind,
            model,
            key,
            temperature: 0.35,
            max_tokens: 321,
            mode: Arc::new(Mutex::new(Mode::Answer(format!("Answer from {kind}.")))),
            served: Arc::default(),
            refused: Arc::default(),
            base_url: format!("http://{addr}{prefix}"),
        };
        let router = match kind {
            ProviderKind::Openai => Router::new().route("/v1/chat/completions", post(openai)),
            ProviderKind::Gemini => Router::new().route("/v1beta/models/{action}", post(gemini)),
            ProviderKind::Anthropic => Router::new().route("/v1/messages", post(anthropic)),
        }
        .with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        fake
    }

    /// The provider config that this fake accepts.
    fn config(&self) -> ProviderConfig {
        ProviderConfig {
            base_url: Some(self.base_url.clone()),
            api_key: self.key.map(SecretString::from),
            temperature: self.temperature,
            max_tokens: self.max_tokens as u32,
            timeout_ms: 5_000,
            ..ProviderConfig::new(self.kind, self.model)
        }
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    fn served(&self) -> u32 {
        *self.served.lock().unwrap()
    }

    fn refused(&self) -> Vec<String> {
        self.refused.lock().unwrap().clone()
    }

    /// Checks what every protocol shares; the protocol handler checks its own shape.
    fn check(&self, headers: &HeaderMap, body: &Bytes) -> Result<Value, Box<Response>> {
        let refuse = |status: StatusCode, why: String| {
            self.refused.lock().unwrap().push(why.clone());
            Err(Box::new(
                (status, error_body(self.kind, status, &why)).into_response(),
            ))
        };
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let presented = match self.kind {
            ProviderKind::Openai => header("authorization").map(|v| v.to_owned()),
            ProviderKind::Gemini => header("x-goog-api-key").map(|v| v.to_owned()),
            ProviderKind::Anthropic => header("x-api-key").map(|v| v.to_owned()),
        };
        let expected = self.key.map(|k| match self.kind {
            ProviderKind::Openai => format!("Bearer {k}"),
            _ => k.to_owned(),
        });
        if presented != expected {
            return refuse(
                StatusCode::UNAUTHORIZED,
                format!("credentials: got {presented:?}"),
            );
        }
        if self.kind == ProviderKind::Anthropic && header("anthropic-version") != Some("2023-06-01")
        {
            return refuse(
                StatusCode::BAD_REQUEST,
                format!("anthropic-version: {:?}", header("anthropic-version")),
            );
        }
        if header("content-type") != Some("application/json") {
            return refuse(
                StatusCode::BAD_REQUEST,
                format!("content-type: {:?}", header("content-type")),
            );
        }
        match serde_json::from_slice(body) {
            Ok(v) => Ok(v),
            Err(e) => refuse(StatusCode::BAD_REQUEST, format!("body: {e}")),
        }
    }

    fn check_numbers(&self, temperature: &Value, max_tokens: &Value) -> Result<(), String> {
        if temperature.as_f64() != Some(self.temperature) {
            return Err(format!("temperature: {temperature}"));
        }
        if max_tokens.as_u64() != Some(self.max_tokens) {
            return Err(format!("max tokens: {max_tokens}"));
        }
        Ok(())
    }

    /// The mode's answer: `Ok(texts)` for a normal answer, else the whole response.
    async fn behave(&self) -> Result<Vec<String>, Response> {
        let mode = self.mode.lock().unwrap().clone();
        *self.served.lock().unwrap() += 1;
        match mode {
            Mode::Answer(text) => Ok(split(&text)),
            Mode::Sleep(d) => {
                tokio::time::sleep(d).await;
                Ok(vec!["Too late.".into()])
            }
            Mode::Fail(status) => {
                let status = StatusCode::from_u16(status).unwrap();
                Err((status, error_body(self.kind, status, "overloaded")).into_response())
            }
            Mode::Malformed => Err((
                [("content-type", "application/json")],
                "<html><body>502 Bad Gateway</body></html>",
            )
                .into_response()),
            Mode::Empty => Ok(Vec::new()),
            Mode::Huge => Ok(vec!["x".repeat(MAX_BODY_BYTES + 1)]),
        }
    }

    fn refuse(&self, why: String) -> Response {
        self.refused.lock().unwrap().push(why.clone());
        (
            StatusCode::BAD_REQUEST,
            error_body(self.kind, StatusCode::BAD_REQUEST, &why),
        )
            .into_response()
    }
}

/// Splits a text in two (at a character boundary) so multi-part answers are exercised.
fn split(text: &str) -> Vec<String> {
    let mut mid = text.len() / 2;
    while !text.is_char_boundary(mid) {
        mid -= 1;
    }
    vec![text[..mid].to_owned(), text[mid..].to_owned()]
}

/// The service's own error shape.
fn error_body(kind: ProviderKind, status: StatusCode, message: &str) -> axum::Json<Value> {
    axum::Json(match kind {
        ProviderKind::Openai => json!({"error": {
            "message": message, "type": "invalid_request_error", "param": null,
            "code": if status == StatusCode::UNAUTHORIZED { "invalid_api_key" } else { "bad_request" }}}),
        ProviderKind::Gemini => json!({"error": {
            "code": status.as_u16(), "message": message,
            "status": if status == StatusCode::UNAUTHORIZED { "UNAUTHENTICATED" } else { "INVALID_ARGUMENT" }}}),
        ProviderKind::Anthropic => json!({"type": "error", "error": {
            "type": if status == StatusCode::UNAUTHORIZED { "authentication_error" } else { "invalid_request_error" },
            "message": message}}),
    })
}

async fn openai(State(fake): State<Fake>, headers: HeaderMap, body: Bytes) -> Response {
    let req = match fake.check(&headers, &body) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let expected_messages =
        json!([{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}]);
    if req["model"] != fake.model {
        return fake.refuse(format!("model: {}", req["model"]));
    }
    if req["messages"] != expected_messages {
        return fake.refuse(format!("messages: {}", req["messages"]));
    }
    if let Err(why) = fake.check_numbers(&req["temperature"], &req["max_tokens"]) {
        return fake.refuse(why);
    }
    let texts = match fake.behave().await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let content = if texts.is_empty() {
        Value::Null
    } else {
        Value::String(texts.concat())
    };
    axum::Json(json!({
        "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
        "object": "chat.completion",
        "created": 1741569952,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content, "refusal": null, "annotations": []},
            "logprobs": null,
            "finish_reason": "stop"
        }],
        "usage": {"prompt_tokens": 42, "completion_tokens": 12, "total_tokens": 54},
        "service_tier": "default",
        "system_fingerprint": "fp_06737a9306"
    }))
    .into_response()
}

async fn gemini(
    State(fake): State<Fake>,
    UrlPath(action): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = match fake.check(&headers, &body) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    if action != format!("{}:generateContent", fake.model) {
        return fake.refuse(format!("path: models/{action}"));
    }
    if req["systemInstruction"] != json!({"parts": [{"text": SYSTEM}]}) {
        return fake.refuse(format!("systemInstruction: {}", req["systemInstruction"]));
    }
    if req["contents"] != json!([{"role": "user", "parts": [{"text": USER}]}]) {
        return fake.refuse(format!("contents: {}", req["contents"]));
    }
    let config = &req["generationConfig"];
    if let Err(why) = fake.check_numbers(&config["temperature"], &config["maxOutputTokens"]) {
        return fake.refuse(why);
    }
    let texts = match fake.behave().await {
        Ok(t) => t,
        Err(r) => return r,
    };
    // A thinking model's reasoning comes first, marked as a thought: not part of the answer.
    let mut parts =
        vec![json!({"text": "The learner wants a hint about range().", "thought": true})];
    parts.extend(texts.into_iter().map(|t| json!({"text": t})));
    axum::Json(json!({
        "candidates": [{
            "content": {"parts": parts, "role": "model"},
            "finishReason": "STOP",
            "avgLogprobs": -0.21
        }],
        "usageMetadata": {"promptTokenCount": 40, "candidatesTokenCount": 11, "totalTokenCount": 51},
        "modelVersion": "gemini-2.0-flash",
        "responseId": "kHbRZ9XqB5-mnvgP0cLX4Q0"
    }))
    .into_response()
}

async fn anthropic(State(fake): State<Fake>, headers: HeaderMap, body: Bytes) -> Response {
    let req = match fake.check(&headers, &body) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    if req["model"] != fake.model {
        return fake.refuse(format!("model: {}", req["model"]));
    }
    if req["system"] != SYSTEM {
        return fake.refuse(format!("system: {}", req["system"]));
    }
    if req["messages"] != json!([{"role": "user", "content": USER}]) {
        return fake.refuse(format!("messages: {}", req["messages"]));
    }
    if let Err(why) = fake.check_numbers(&req["temperature"], &req["max_tokens"]) {
        return fake.refuse(why);
    }
    let texts = match fake.behave().await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let mut content = vec![
        json!({"type": "thinking", "thinking": "A hint, not the answer.", "signature": "EqQB"}),
    ];
    content.extend(
        texts
            .into_iter()
            .map(|t| json!({"type": "text", "text": t})),
    );
    axum::Json(json!({
        "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
        "type": "message",
        "role": "assistant",
        "model": fake.model,
        "content": content,
        "stop_reason": "end_turn",
        "stop_sequence": null,
        "usage": {"input_tokens": 38, "output_tokens": 14}
    }))
    .into_response()
}

fn prompt() -> Prompt {
    Prompt {
        system: SYSTEM.into(),
        user: USER.into(),
    }
}

/// An `Llm` with one provider per `(name, config)`, and the routes given.
fn llm(providers: &[(&str, ProviderConfig)], hint: Option<&str>, explain: Option<&str>) -> Llm {
    let config = LlmConfig {
        providers: providers
            .iter()
            .map(|(n, c)| ((*n).to_owned(), c.clone()))
            .collect(),
        routes: RoutesConfig {
            hint: hint.map(str::to_owned),
            explain: explain.map(str::to_owned),
            ..RoutesConfig::default()
        },
    };
    Llm::new(&config, reqwest::Client::new()).expect("valid config")
}

/// One provider routed for both tasks.
fn single(fake: &Fake) -> Llm {
    llm(&[("main", fake.config())], Some("main"), Some("main"))
}

#[tokio::test]
async fn each_protocol_returns_its_text() {
    for kind in [
        ProviderKind::Openai,
        ProviderKind::Gemini,
        ProviderKind::Anthropic,
    ] {
        let fake = Fake::start(kind, Some(KEY)).await;
        fake.set(Mode::Answer(
            "  Try range(1, 4): the end is exclusive — ünïcode survives.\n".into(),
        ));
        let got = single(&fake).complete(Task::Hint, &prompt()).await;
        assert_eq!(
            got,
            Ok(Completion {
                text: "Try range(1, 4): the end is exclusive — ünïcode survives.".into(),
                provider: "main".into(),
                kind: kind.as_str(),
                model: fake.model.into(),
            }),
            "{kind}: refused {:?}",
            fake.refused()
        );
        assert_eq!(fake.served(), 1, "{kind}");
    }
}

#[tokio::test]
async fn an_openai_compatible_server_without_a_key_gets_no_authorization() {
    // A local Ollama: no key configured, and the fake refuses any Authorization header.
    let fake = Fake::start(ProviderKind::Openai, None).await;
    let got = single(&fake).complete(Task::Explain, &prompt()).await;
    assert_eq!(
        got.map(|c| c.text),
        Ok("Answer from openai.".into()),
        "refused {:?}",
        fake.refused()
    );
}

#[tokio::test]
async fn a_gemini_model_may_be_named_with_its_models_prefix() {
    let fake = Fake::start(ProviderKind::Gemini, Some(KEY)).await;
    let config = ProviderConfig {
        model: "models/gemini-2.0-flash".into(),
        ..fake.config()
    };
    let got = llm(&[("g", config)], Some("g"), None)
        .complete(Task::Hint, &prompt())
        .await;
    assert!(got.is_ok(), "{got:?}, refused {:?}", fake.refused());
}

#[tokio::test]
async fn each_task_goes_to_its_own_provider() {
    let cheap = Fake::start(ProviderKind::Openai, Some(KEY)).await;
    let smart = Fake::start(ProviderKind::Anthropic, Some(KEY)).await;
    let llm = llm(
        &[("cheap", cheap.config()), ("smart", smart.config())],
        Some("cheap"),
        Some("smart"),
    );
    assert!(llm.routes(Task::Hint) && llm.routes(Task::Explain));

    let hint = llm.complete(Task::Hint, &prompt()).await.unwrap();
    assert_eq!((hint.provider.as_str(), hint.kind), ("cheap", "openai"));
    assert_eq!((cheap.served(), smart.served()), (1, 0));

    let explain = llm.complete(Task::Explain, &prompt()).await.unwrap();
    assert_eq!(
        (explain.provider.as_str(), explain.kind),
        ("smart", "anthropic")
    );
    assert_eq!(explain.text, "Answer from anthropic.");
    assert_eq!((cheap.served(), smart.served()), (1, 1));

    let readiness = llm.readiness();
    assert_eq!(
        readiness["hint"],
        LlmRoute {
            provider: "cheap".into(),
            kind: "openai",
            model: "gpt-4o-mini".into()
        }
    );
    assert_eq!(readiness["explain"].model, "claude-3-5-haiku-20241022");
}

#[tokio::test]
async fn no_route_is_not_configured() {
    let fake = Fake::start(ProviderKind::Openai, Some(KEY)).await;
    // A provider exists but only `explain` is routed to it.
    let llm = llm(&[("main", fake.config())], None, Some("main"));
    assert!(!llm.routes(Task::Hint));
    assert_eq!(
        llm.complete(Task::Hint, &prompt()).await,
        Err(LlmError::NotConfigured)
    );
    assert_eq!(fake.served(), 0, "nothing was sent");
    assert_eq!(llm.readiness().into_keys().collect::<Vec<_>>(), ["explain"]);

    let none = Llm::new(&LlmConfig::default(), reqwest::Client::new()).unwrap();
    assert!(!none.routes(Task::Hint) && !none.routes(Task::Explain));
    assert!(none.readiness().is_empty());
    assert_eq!(
        none.complete(Task::Explain, &prompt()).await,
        Err(LlmError::NotConfigured)
    );
}

#[tokio::test]
async fn a_provider_slower_than_its_timeout_times_out() {
    for kind in [ProviderKind::Openai, ProviderKind::Gemini] {
        let fake = Fake::start(kind, Some(KEY)).await;
        fake.set(Mode::Sleep(Duration::from_secs(10)));
        let config = ProviderConfig {
            timeout_ms: 300,
            ..fake.config()
        };
        // The shared client's own (shorter) timeout must not be what fires: the provider's
        // timeout overrides it.
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let llm = Llm::new(
            &LlmConfig {
                providers: [("slow".to_owned(), config)].into(),
                routes: RoutesConfig {
                    hint: Some("slow".into()),
                    ..RoutesConfig::default()
                },
            },
            http,
        )
        .unwrap();
        let started = Instant::now();
        let got = llm.complete(Task::Hint, &prompt()).await;
        let took = started.elapsed();
        assert_eq!(got, Err(LlmError::Timeout), "{kind}");
        assert!(
            took >= Duration::from_millis(290) && took < Duration::from_secs(3),
            "{kind}: {took:?}"
        );
        assert_eq!(fake.served(), 1, "{kind}: the request reached the server");
    }
}

#[tokio::test]
async fn the_provider_timeout_overrides_a_shorter_client_timeout() {
    let fake = Fake::start(ProviderKind::Anthropic, Some(KEY)).await;
    fake.set(Mode::Sleep(Duration::from_millis(600)));
    // The app's shared client times out GitHub calls sooner than an LLM may take.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let llm = Llm::new(
        &LlmConfig {
            providers: [("main".to_owned(), fake.config())].into(),
            routes: RoutesConfig {
                hint: Some("main".into()),
                ..RoutesConfig::default()
            },
        },
        http,
    )
    .unwrap();
    let got = llm.complete(Task::Hint, &prompt()).await;
    assert_eq!(got.map(|c| c.text), Ok("Too late.".into()));
}

#[tokio::test]
async fn a_server_error_is_a_status() {
    for kind in [
        ProviderKind::Openai,
        ProviderKind::Gemini,
        ProviderKind::Anthropic,
    ] {
        let fake = Fake::start(kind, Some(KEY)).await;
        fake.set(Mode::Fail(500));
        let got = single(&fake).complete(Task::Hint, &prompt()).await;
        assert_eq!(got, Err(LlmError::Status { status: 500 }), "{kind}");
        assert!(fake.refused().is_empty(), "{kind}: {:?}", fake.refused());
    }
}

#[tokio::test]
async fn a_wrong_key_is_a_401_and_the_error_never_holds_a_key() {
    for kind in [
        ProviderKind::Openai,
        ProviderKind::Gemini,
        ProviderKind::Anthropic,
    ] {
        let fake = Fake::start(kind, Some(KEY)).await;
        let wrong = "sk-wrong-0b7d2c";
        let config = ProviderConfig {
            api_key: Some(SecretString::from(wrong)),
            ..fake.config()
        };
        let got = llm(&[("main", config)], Some("main"), None)
            .complete(Task::Hint, &prompt())
            .await;
        assert_eq!(got, Err(LlmError::Status { status: 401 }), "{kind}");
        assert_eq!(fake.refused().len(), 1, "{kind}");
        let shown = format!("{:?} {}", got, got.as_ref().unwrap_err());
        assert!(!shown.contains(wrong) && !shown.contains(KEY), "{shown}");
    }
}

#[tokio::test]
async fn malformed_or_empty_answers_are_protocol_errors() {
    for kind in [
        ProviderKind::Openai,
        ProviderKind::Gemini,
        ProviderKind::Anthropic,
    ] {
        let fake = Fake::start(kind, Some(KEY)).await;
        let llm = single(&fake);
        for mode in [Mode::Malformed, Mode::Empty, Mode::Huge] {
            fake.set(mode.clone());
            let got = llm.complete(Task::Hint, &prompt()).await;
            assert!(
                matches!(got, Err(LlmError::Protocol(_))),
                "{kind} {mode:?}: {got:?}"
            );
        }
        // Whitespace only is no answer either.
        fake.set(Mode::Answer(" \n\t ".into()));
        let got = llm.complete(Task::Hint, &prompt()).await;
        assert!(matches!(got, Err(LlmError::Protocol(_))), "{kind}: {got:?}");
        assert!(fake.refused().is_empty(), "{kind}: {:?}", fake.refused());
    }
}

#[tokio::test]
async fn long_answers_are_cut_at_a_character_boundary() {
    let fake = Fake::start(ProviderKind::Gemini, Some(KEY)).await;
    // 3-byte characters: 8 KiB is not a multiple of 3, so a byte cut would split one.
    fake.set(Mode::Answer("€".repeat(5_000)));
    let text = single(&fake)
        .complete(Task::Hint, &prompt())
        .await
        .unwrap()
        .text;
    assert_eq!(text.len(), MAX_TEXT_BYTES / 3 * 3);
    assert!(text.chars().all(|c| c == '€'));
}

#[tokio::test]
async fn an_unreachable_provider_is_a_transport_error() {
    // A port that was free a moment ago: connection refused.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let config = ProviderConfig {
        base_url: Some(format!("http://127.0.0.1:{port}/v1")),
        ..ProviderConfig::new(ProviderKind::Openai, "llama3.2")
    };
    let got = llm(&[("local", config)], Some("local"), None)
        .complete(Task::Hint, &prompt())
        .await;
    let Err(LlmError::Transport(message)) = got else {
        panic!("{got:?}")
    };
    assert!(!message.contains("127.0.0.1"), "no URL: {message}");
}

#[tokio::test]
async fn completions_are_counted_by_provider_and_outcome() {
    let fake = Fake::start(ProviderKind::Openai, Some(KEY)).await;
    let family = Family::<LlmLabels, Counter>::default();
    let llm = single(&fake).with_metrics(family.clone());
    llm.complete(Task::Hint, &prompt()).await.unwrap();
    llm.complete(Task::Explain, &prompt()).await.unwrap();
    fake.set(Mode::Fail(503));
    llm.complete(Task::Hint, &prompt()).await.unwrap_err();
    let count = |outcome| {
        family
            .get_or_create(&LlmLabels {
                provider: "main".into(),
                outcome,
            })
            .get()
    };
    assert_eq!((count("ok"), count("status"), count("timeout")), (2, 1, 0));
}

// --- configuration -------------------------------------------------------------------------

/// Loads a config from this TOML and these environment variables, as `sandpit serve` would.
#[expect(
    clippy::result_large_err,
    reason = "figment::Jail fixes the closure's error type to figment::Error"
)]
fn load(toml: &str, env: &[(&str, &str)]) -> Result<Config, String> {
    let mut out = None;
    figment::Jail::expect_with(|jail| {
        jail.clear_env();
        jail.create_file("sandpit.toml", toml)?;
        for (k, v) in env {
            jail.set_env(k, v);
        }
        out = Some(
            Config::load_from(Some(Path::new("sandpit.toml")), Env::prefixed("SANDPIT_"))
                .map_err(|e| e.to_string()),
        );
        Ok(())
    });
    out.expect("the jail ran")
}

const GOOD: &str = r#"
[llm.providers.main]
kind = "openai"
api_key = "sk-live-abcdef123456"
model = "gpt-4o-mini"

[llm.providers.claude]
kind = "anthropic"
api_key = "sk-ant-api03-xyz987"
model = "claude-3-5-haiku-20241022"
temperature = 0.5
max_tokens = 300
timeout_ms = 8000

[llm.routes]
hint = "main"
explain = "claude"
"#;

#[test]
fn a_good_config_loads_with_defaults_filled_in() {
    let config = load(GOOD, &[]).unwrap();
    let main = &config.llm.providers["main"];
    assert_eq!(main.kind, ProviderKind::Openai);
    assert_eq!(main.base_url(), "https://api.openai.com/v1");
    assert_eq!(main.key(), Some("sk-live-abcdef123456"));
    assert_eq!(
        (main.temperature, main.max_tokens, main.timeout_ms),
        (0.2, 600, 15_000)
    );
    let claude = &config.llm.providers["claude"];
    assert_eq!(claude.base_url(), "https://api.anthropic.com/v1");
    assert_eq!((claude.max_tokens, claude.timeout_ms), (300, 8000));
    assert_eq!(config.llm.routes.get(Task::Explain), Some("claude"));
    assert_eq!(
        ProviderConfig::new(ProviderKind::Gemini, "m").base_url(),
        "https://generativelanguage.googleapis.com/v1beta"
    );
    let built = Llm::new(&config.llm, reqwest::Client::new()).unwrap();
    assert_eq!(built.readiness()["explain"].kind, "anthropic");
}

#[test]
fn keys_never_show_in_debug_or_config_show() {
    let config = load(GOOD, &[]).unwrap();
    let debug = format!("{config:?}");
    let shown = toml::to_string(&config).unwrap();
    let llm = format!(
        "{:?}",
        Llm::new(&config.llm, reqwest::Client::new()).unwrap()
    );
    for secret in ["sk-live-abcdef123456", "sk-ant-api03-xyz987"] {
        assert!(!debug.contains(secret), "Debug: {debug}");
        assert!(!shown.contains(secret), "config show: {shown}");
        assert!(!llm.contains(secret), "Llm Debug: {llm}");
    }
    // The providers are there, only the keys are not.
    assert!(debug.contains("gpt-4o-mini") && shown.contains("claude-3-5-haiku"));
}

#[test]
#[expect(
    clippy::result_large_err,
    reason = "figment::Jail fixes the closure's error type to figment::Error"
)]
fn the_environment_and_key_files_configure_providers() {
    figment::Jail::expect_with(|jail| {
        jail.clear_env();
        jail.create_file("gemini.key", "AIzaSyD-from-file\n")?;
        jail.set_env("SANDPIT_LLM__PROVIDERS__G__KIND", "gemini");
        jail.set_env("SANDPIT_LLM__PROVIDERS__G__MODEL", "gemini-2.0-flash");
        jail.set_env("SANDPIT_LLM__PROVIDERS__G__API_KEY_FILE", "gemini.key");
        jail.set_env("SANDPIT_LLM__PROVIDERS__G__TEMPERATURE", "1.5");
        jail.set_env("SANDPIT_LLM__ROUTES__HINT", "g");
        let config =
            Config::load_from(None, Env::prefixed("SANDPIT_")).map_err(|e| e.to_string())?;
        let g = &config.llm.providers["g"];
        assert_eq!(g.key(), Some("AIzaSyD-from-file"));
        assert_eq!(g.temperature, 1.5);
        assert_eq!(config.llm.routes.get(Task::Hint), Some("g"));

        jail.set_env("SANDPIT_LLM__PROVIDERS__G__API_KEY", "AIza-inline");
        let err = Config::load_from(None, Env::prefixed("SANDPIT_")).unwrap_err();
        assert!(
            err.to_string()
                .contains("llm.providers.g.api_key and llm.providers.g.api_key_file"),
            "{err}"
        );
        Ok(())
    });
}

#[test]
fn bad_configs_are_refused_with_the_key_to_fix() {
    let provider = |extra: &str| {
        format!("[llm.providers.main]\nkind = \"openai\"\nmodel = \"gpt-4o-mini\"\n{extra}\n")
    };
    let cases: Vec<(String, &str)> = vec![
        (
            format!("{}[llm.routes]\nhint = \"mian\"\n", provider("")),
            "llm.routes.hint names provider \"mian\", which is not under [llm.providers] (known: main)",
        ),
        (
            "[llm.routes]\nexplain = \"main\"\n".into(),
            "llm.routes.explain names provider \"main\", which is not under [llm.providers] (known: none)",
        ),
        (
            "[llm.providers.main]\nkind = \"mistral\"\nmodel = \"m\"\n".into(),
            "found `mistral`, expected `one of `openai`, `gemini`, `anthropic``",
        ),
        (
            provider("base_url = \"not a url\""),
            "llm.providers.main: base_url: not a URL",
        ),
        (
            provider("base_url = \"ftp://models.example/v1\""),
            "llm.providers.main: base_url: must be http:// or https://",
        ),
        (
            provider("base_url = \"https://user:hunter2@models.example/v1\""),
            "llm.providers.main: base_url: must not hold credentials",
        ),
        (
            provider("base_url = \"https://models.example/v1?key=abc\""),
            "llm.providers.main: base_url: must not have a query",
        ),
        (
            provider("temperature = 2.5"),
            "llm.providers.main: temperature must be between 0 and 2",
        ),
        (
            provider("temperature = -0.1"),
            "llm.providers.main: temperature must be between 0 and 2",
        ),
        (
            "[llm.providers.main]\nkind = \"anthropic\"\nmodel = \"claude\"\napi_key = \"k\"\ntemperature = 1.5\n".into(),
            "llm.providers.main: temperature must be between 0 and 1 for kind anthropic",
        ),
        (
            provider("max_tokens = 0"),
            "llm.providers.main: max_tokens must be at least 1",
        ),
        (
            provider("timeout_ms = 0"),
            "llm.providers.main: timeout_ms must be at least 1",
        ),
        (
            "[llm.providers.main]\nkind = \"gemini\"\nmodel = \"gemini-2.0-flash\"\n".into(),
            "llm.providers.main: kind gemini needs api_key",
        ),
        (
            "[llm.providers.main]\nkind = \"anthropic\"\nmodel = \"claude\"\napi_key = \"\"\n".into(),
            "llm.providers.main: kind anthropic needs api_key",
        ),
        (
            "[llm.providers.main]\nkind = \"openai\"\nmodel = \"\"\n".into(),
            "llm.providers.main: model must be set",
        ),
        (
            "[llm.providers.main]\nkind = \"openai\"\nmodel = \" \"\n".into(),
            "llm.providers.main: model must be set",
        ),
        (
            "[llm.providers.main]\nkind = \"openai\"\n".into(),
            "missing field `model`",
        ),
        (
            "[llm.providers.\"my provider\"]\nkind = \"openai\"\nmodel = \"m\"\n".into(),
            "provider names use letters",
        ),
        (
            format!("{}[llm.routes]\nhnit = \"main\"\n", provider("")),
            "unknown field: found `hnit`",
        ),
        (
            provider("api_key = \"sk-line\\nbreak\""),
            "llm.providers.main: api_key holds characters that cannot go in an HTTP header",
        ),
    ];
    for (toml, expected) in cases {
        let err = load(&toml, &[]).expect_err(&toml);
        assert!(
            err.contains(expected),
            "{toml}\n→ {err}\nwanted: {expected}"
        );
        assert!(
            !err.contains("hunter2") && !err.contains("sk-line"),
            "no secret in errors: {err}"
        );
    }
    // Llm::new checks the same rules for configs built in code.
    let bad = LlmConfig {
        providers: [(
            "main".to_owned(),
            ProviderConfig {
                max_tokens: 0,
                ..ProviderConfig::new(ProviderKind::Openai, "m")
            },
        )]
        .into(),
        routes: RoutesConfig::default(),
    };
    let err = Llm::new(&bad, reqwest::Client::new()).unwrap_err();
    assert!(err.to_string().contains("max_tokens"), "{err}");
}

#[tokio::test]
async fn the_fallback_answers_when_the_routed_provider_fails_or_none_is_routed() {
    let primary = Fake::start(ProviderKind::Openai, Some(KEY)).await;
    let backup = Fake::start(ProviderKind::Anthropic, Some(KEY)).await;
    primary.set(Mode::Fail(503));
    backup.set(Mode::Answer("From the backup.".into()));
    let llm = Llm::new(
        &LlmConfig {
            providers: [
                ("primary".to_owned(), primary.config()),
                ("backup".to_owned(), backup.config()),
            ]
            .into(),
            routes: RoutesConfig {
                code: Some("primary".into()),
                fallback: Some("backup".into()),
                ..RoutesConfig::default()
            },
        },
        reqwest::Client::new(),
    )
    .unwrap();
    let got = llm.complete(Task::Code, &prompt()).await.unwrap();
    assert_eq!(
        (got.text.as_str(), got.provider.as_str()),
        ("From the backup.", "backup")
    );
    assert_eq!(
        (primary.served(), backup.served()),
        (1, 1),
        "the routed one was asked first"
    );
    // A task no route names goes to the fallback directly.
    assert!(llm.routes(Task::Research));
    let got = llm.complete(Task::Research, &prompt()).await.unwrap();
    assert_eq!(got.provider, "backup");
    assert_eq!(primary.served(), 1);
    // Both failing: the fallback's error.
    backup.set(Mode::Fail(500));
    assert_eq!(
        llm.complete(Task::Code, &prompt()).await,
        Err(LlmError::Status { status: 500 })
    );
    let readiness = llm.readiness();
    assert_eq!(readiness["code"].provider, "primary");
    assert_eq!(readiness["fallback"].provider, "backup");
    // A fallback naming no provider is a configuration error.
    let bad = LlmConfig {
        providers: [("primary".to_owned(), primary.config())].into(),
        routes: RoutesConfig {
            fallback: Some("nope".into()),
            ..RoutesConfig::default()
        },
    };
    assert!(Llm::new(&bad, reqwest::Client::new()).is_err());
}
