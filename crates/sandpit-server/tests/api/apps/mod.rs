//! Deployed apps: a learner's FastAPI, Flask or Express app from a session, a project or the
//! request, deployed through its stages, served by the platform's proxy in both modes, idle
//! stopped, woken, redeployed without a failed request, rolled back and deleted — and every
//! way an app can be wrong, each a clear stage failure or a clear page.
//!
//! Every test runs real apps in real sandboxes behind the real server; the helpers here create,
//! deploy and visit them.

mod deploy;
mod failures;
mod lifecycle;
mod logs;
mod serving;

use std::future::Future;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Answer, TestApp};

pub const PATIENCE: Duration = Duration::from_secs(120);

/// A FastAPI app with a route for each thing the tests look at.
pub const FASTAPI: &str = r#"import asyncio
import urllib.request

from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import JSONResponse

app = FastAPI()


@app.get("/")
def root():
    return {"message": "hello"}


@app.get("/headers")
def headers(request: Request):
    return {k: v for k, v in request.headers.items()}


@app.get("/cookie")
def cookie():
    r = JSONResponse({"ok": True})
    r.set_cookie("sandpit_session", "stolen", path="/")
    r.set_cookie("theme", "dark", path="/")
    r.set_cookie("app_pref", "dark")
    r.set_cookie("cart", "3", path="/user/ada/app/hello/")
    r.set_cookie("wide", "1", path="/user/ada/app/hello", domain="127.0.0.1")
    return r


@app.get("/log")
def log(line: str):
    print(line, flush=True)
    return {"logged": line}


@app.get("/slow")
async def slow(seconds: float):
    await asyncio.sleep(seconds)
    return {"slept": seconds}


@app.get("/reach")
def reach(url: str):
    try:
        with urllib.request.urlopen(url, timeout=3) as r:
            return {"reached": True, "status": r.status, "body": r.read(200).decode()}
    except Exception as e:
        return {"reached": False, "error": f"{type(e).__name__}: {e}"}


@app.websocket("/ws")
async def ws(socket: WebSocket):
    await socket.accept()
    while True:
        text = await socket.receive_text()
        await socket.send_text(f"echo: {text}")
"#;

pub async fn create_app(app: &TestApp, token: &str, body: Value) -> Value {
    let a = app.post("/api/v1/apps", Some(token), body).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    a.body
}

/// Deploys `files` (path → text) to `id`; returns the deployment.
pub async fn deploy(app: &TestApp, token: &str, id: &str, files: &[(&str, &str)]) -> Value {
    let files: serde_json::Map<String, Value> = files
        .iter()
        .map(|(p, c)| ((*p).to_owned(), Value::String((*c).to_owned())))
        .collect();
    let a = app
        .post(
            &format!("/api/v1/apps/{id}/deploy"),
            Some(token),
            json!({ "files": files }),
        )
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.body);
    a.body
}

/// Waits for a job to finish; returns it.
pub async fn finished(app: &TestApp, token: &str, job: &str) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let a = app.get(&format!("/api/v1/jobs/{job}"), Some(token)).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        if ["completed", "failed", "cancelled"]
            .iter()
            .any(|s| a.body["state"] == *s)
        {
            return a.body;
        }
        assert!(Instant::now() < deadline, "deploy still {}", a.body);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Deploys and expects the job to complete (the version is live); returns the job.
pub async fn deploy_ok(app: &TestApp, token: &str, id: &str, files: &[(&str, &str)]) -> Value {
    let d = deploy(app, token, id, files).await;
    let job = finished(app, token, d["job_id"].as_str().unwrap()).await;
    assert_eq!(job["state"], "completed", "{job}");
    job
}

/// Deploys and expects a failure; returns the job's error.
pub async fn deploy_fails(app: &TestApp, token: &str, id: &str, files: &[(&str, &str)]) -> Value {
    let d = deploy(app, token, id, files).await;
    let job = finished(app, token, d["job_id"].as_str().unwrap()).await;
    assert_eq!(job["state"], "failed", "{job}");
    job["error"].clone()
}

/// The newest version's recorded failure `{stage, code, message, file?, line?, logs?}`.
pub async fn latest_error(app: &TestApp, token: &str, id: &str) -> Value {
    let versions = app
        .get(&format!("/api/v1/apps/{id}/versions"), Some(token))
        .await;
    assert_eq!(versions.status, StatusCode::OK, "{}", versions.body);
    let latest = &versions.body["versions"][0];
    assert_eq!(latest["state"], "failed", "{latest}");
    latest["error"].clone()
}

/// Creates an app (`body` as for `POST /apps`) and deploys `files` to it; returns its id.
pub async fn launched(app: &TestApp, token: &str, body: Value, files: &[(&str, &str)]) -> String {
    let id = create_app(app, token, body).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    deploy_ok(app, token, &id, files).await;
    id
}

/// A request through the proxy; `Answer.body` is JSON when the app answered JSON.
pub async fn visit(app: &TestApp, path: &str) -> Answer {
    app.send(app.client.get(app.url(path))).await
}

/// A browser's request through the proxy (it asks for HTML).
pub async fn browse(app: &TestApp, path: &str) -> Answer {
    app.send(
        app.client
            .get(app.url(path))
            .header("accept", "text/html,application/xhtml+xml,*/*;q=0.8"),
    )
    .await
}

pub async fn status(app: &TestApp, token: &str, id: &str) -> Value {
    let a = app
        .get(&format!("/api/v1/apps/{id}/status"), Some(token))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    a.body
}

/// Asserts one of the proxy's own pages: HTML, this status, `x-sandpit-proxy: code`; returns
/// its text.
#[track_caller]
pub fn proxy_page(answer: &Answer, status: StatusCode, code: &str) -> String {
    assert_eq!(answer.status, status, "{}", answer.body);
    assert_eq!(
        answer
            .headers
            .get("x-sandpit-proxy")
            .map(|v| v.to_str().unwrap()),
        Some(code),
        "{:?} {}",
        answer.headers,
        answer.body
    );
    assert!(
        answer.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"),
        "{:?}",
        answer.headers
    );
    let text = answer.body.as_str().unwrap_or_default().to_owned();
    assert!(text.contains(&format!("<code>{code}</code>")), "{text}");
    text
}

/// Polls `check` until it gives a value (at most [`PATIENCE`]).
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "still waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
