//! Agent jobs end to end (issue 12's "done when"), as a new user would go, against a local fake
//! OpenAI-compatible server speaking the real protocol: create a project, upload files, start
//! a `code` job, watch its progress events, accept its change set, run a `qa` job that runs
//! the project's tests in a sandbox; a server stopped mid-job, whose job completes exactly
//! once after the restart. On SQLite and PostgreSQL. Then the bad input: no model, unknown
//! kinds, oversize input, a model that answers nonsense or never answers, a stale change set.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::TestApp;

const PATIENCE: Duration = Duration::from_secs(60);

/// What the fake model does with the next request of a kind.
#[derive(Clone)]
enum Reply {
    Text(String),
    /// Never answers (the provider's timeout fires).
    Hang,
}

/// A fake OpenAI-compatible chat completions server. Replies are queued per job kind (told
/// apart by the system prompt's role); with nothing queued it answers the kind's default.
/// Replies waiting, per job kind.
type Queues = Vec<(&'static str, VecDeque<Reply>)>;

#[derive(Clone, Default)]
struct FakeModel {
    queued: Arc<Mutex<Queues>>,
    seen: Arc<Mutex<Vec<Value>>>,
}

fn kind_of(system: &str) -> &'static str {
    [
        ("software engineer", "code"),
        ("QA engineer", "qa"),
        ("researcher", "research"),
        ("UX designer", "wireframe"),
        ("teacher", "pedagogy"),
    ]
    .into_iter()
    .find(|(marker, _)| system.contains(marker))
    .map_or("other", |(_, kind)| kind)
}

const CODE_REPLY: &str = r#"Here is the change:
```json
{"summary": "Adds reverse() with a test",
 "changes": [
  {"path": "main.py", "action": "write", "content": "def greet(name):\n    return f\"Hello, {name}!\"\n\n\ndef reverse(text):\n    return text[::-1]\n"},
  {"path": "test_reverse.py", "action": "write", "content": "import unittest\n\nfrom main import reverse\n\n\nclass ReverseTest(unittest.TestCase):\n    def test_reverses(self):\n        self.assertEqual(reverse(\"abc\"), \"cba\")\n\n\nif __name__ == \"__main__\":\n    unittest.main()\n"}
 ]}
```"#;

const QA_REPLY: &str = r#"{"verdict": "pass", "summary": "All tests pass.", "failures": []}"#;

impl FakeModel {
    fn push(&self, kind: &'static str, reply: Reply) {
        let mut queued = self.queued.lock().unwrap();
        match queued.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, q)) => q.push_back(reply),
            None => queued.push((kind, VecDeque::from([reply]))),
        }
    }

    fn next(&self, kind: &'static str) -> Reply {
        let mut queued = self.queued.lock().unwrap();
        let queued = queued.iter_mut().find(|(k, _)| *k == kind);
        if let Some(reply) = queued.and_then(|(_, q)| q.pop_front()) {
            return reply;
        }
        Reply::Text(match kind {
            "code" => CODE_REPLY.to_owned(),
            "qa" => QA_REPLY.to_owned(),
            _ => r#"{"summary": "s", "findings": []}"#.to_owned(),
        })
    }

    fn requests(&self, kind: &str) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|b| kind_of(b["messages"][0]["content"].as_str().unwrap_or("")) == kind)
            .count()
    }

    /// Serves it on a free port; returns the base URL (`…/v1`).
    async fn serve(&self) -> String {
        use axum::routing::post;
        let fake = self.clone();
        let app = axum::Router::new().route(
            "/v1/chat/completions",
            post(move |body: axum::Json<Value>| {
                let fake = fake.clone();
                async move {
                    fake.seen.lock().unwrap().push(body.0.clone());
                    let system = body.0["messages"][0]["content"].as_str().unwrap_or("");
                    let text = match fake.next(kind_of(system)) {
                        Reply::Text(text) => text,
                        Reply::Hang => {
                            tokio::time::sleep(Duration::from_secs(3600)).await;
                            String::new()
                        }
                    };
                    axum::Json(json!({
                        "id": "chatcmpl-1",
                        "object": "chat.completion",
                        "model": body.0["model"],
                        "choices": [{"index": 0, "finish_reason": "stop",
                            "message": {"role": "assistant", "content": text}}],
                    }))
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}/v1", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        base
    }
}

fn configure(c: &mut sandpit_server::Config, base: &str) {
    use sandpit_server::llm::{ProviderConfig, ProviderKind};
    let mut provider = ProviderConfig::new(ProviderKind::Openai, "fake-coder");
    provider.base_url = Some(base.to_owned());
    provider.max_tokens = 4000;
    provider.timeout_ms = 1500;
    c.llm.providers.insert("main".into(), provider);
    // Every agent kind through the fallback: no task is routed on its own.
    c.llm.routes.fallback = Some("main".into());
    c.jobs.lease_seconds = 3;
    c.jobs.poll_ms = 50;
    c.jobs.backoff_base_ms = 20;
    c.jobs.max_attempts = 2;
    // A stop is abrupt: running jobs are abandoned mid-attempt, as when a server dies.
    c.server.shutdown_grace_seconds = 0;
}

async fn start_job(app: &TestApp, token: &str, project: &str, body: Value) -> String {
    let a = app
        .post(
            &format!("/api/v1/projects/{project}/jobs"),
            Some(token),
            body,
        )
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.body);
    assert_eq!(a.body["state"], "queued");
    a.body["id"].as_str().unwrap().to_owned()
}

async fn finished(app: &TestApp, token: &str, id: &str) -> Value {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let a = app.get(&format!("/api/v1/jobs/{id}"), Some(token)).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        if matches!(
            a.body["state"].as_str(),
            Some("completed" | "failed" | "cancelled")
        ) {
            return a.body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "job still {}",
            a.body
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The job's events (its stream read to the end): `(event, data)`.
async fn events(app: &TestApp, token: &str, id: &str) -> Vec<(String, Value)> {
    let mut res = app
        .client
        .get(app.url(&format!("/api/v1/jobs/{id}/events")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let mut text = String::new();
    while let Some(chunk) = tokio::time::timeout(PATIENCE, res.chunk())
        .await
        .expect("the stream ends")
        .unwrap()
    {
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    text.split("\n\n")
        .filter_map(|block| {
            let field = |name: &str| {
                block
                    .lines()
                    .find_map(|l| l.strip_prefix(&format!("{name}:")))
                    .map(|v| v.trim().to_owned())
            };
            Some((
                field("event")?,
                serde_json::from_str(&field("data")?).unwrap(),
            ))
        })
        .collect()
}

fn tar_gz(files: &[(&str, &str)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    for (path, data) in files {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        header.set_size(data.len() as u64);
        builder
            .append_data(&mut header, path, data.as_bytes())
            .unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

#[tokio::test]
async fn a_new_user_builds_a_project_with_agents_on_sqlite() {
    let fake = FakeModel::default();
    let base = fake.serve().await;
    journey(TestApp::spawn_with(|c| configure(c, &base)).await, fake).await;
}

#[tokio::test]
async fn a_new_user_builds_a_project_with_agents_on_postgres() {
    let fake = FakeModel::default();
    let base = fake.serve().await;
    let url = sandpit_testkit::postgres_url().await;
    let app = TestApp::spawn_with(|c| {
        configure(c, &base);
        c.database.url = Some(secrecy::SecretString::from(url));
    })
    .await;
    journey(app, fake).await;
}

async fn journey(app: TestApp, fake: FakeModel) {
    let (_, ada) = app.signup("ada").await;
    let created = app
        .post(
            "/api/v1/projects",
            Some(&ada),
            json!({"name": "Strings", "description": "string helpers"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let project = created.body["id"].as_str().unwrap().to_owned();

    // Upload the starting files.
    let uploaded = app
        .send(
            app.client
                .post(app.url(&format!("/api/v1/projects/{project}/archive")))
                .bearer_auth(&ada)
                .header("content-type", "application/gzip")
                .body(tar_gz(&[
                    ("main.py", "def greet(name):\n    return f\"Hello, {name}!\"\n"),
                    (
                        "test_main.py",
                        "import unittest\n\nfrom main import greet\n\n\nclass T(unittest.TestCase):\n    def test_greet(self):\n        self.assertEqual(greet(\"Ada\"), \"Hello, Ada!\")\n",
                    ),
                ])),
        )
        .await;
    assert_eq!(uploaded.body["files"], 2, "{}", uploaded.body);

    // A code job: proposes a change set; its progress shows as events.
    let code = start_job(
        &app,
        &ada,
        &project,
        json!({"kind": "code", "input": {"prompt": "Add reverse(text) with a test"}}),
    )
    .await;
    let stream = events(&app, &ada, &code).await;
    let progress: Vec<&str> = stream
        .iter()
        .filter(|(e, _)| e == "progress")
        .map(|(_, d)| d["data"]["message"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        progress,
        [
            "reading the project",
            "asking the language model",
            "checking the answer"
        ]
    );
    assert_eq!(stream.last().unwrap().1["data"]["state"], "completed");
    let job = finished(&app, &ada, &code).await;
    assert_eq!(job["result"]["applied"], false);
    assert_eq!(job["result"]["provider"], "main");
    let changes = job["result"]["output"]["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 2);
    assert!(
        changes[0]["base_sha256"].is_string(),
        "main.py existed: {job}"
    );
    assert!(
        changes[1].get("base_sha256").is_none(),
        "test_reverse.py is new"
    );
    // The model saw the request and the project's files.
    let asked = fake.seen.lock().unwrap()[0].clone();
    let user = asked["messages"][1]["content"].as_str().unwrap();
    assert!(user.contains("Add reverse(text)") && user.contains("--- test_main.py ---"));
    // Proposed, not applied: the project is unchanged until accepted.
    let read = |path: &str| {
        let url = format!("/api/v1/projects/{project}/files/{path}");
        let (app, ada) = (&app, &ada);
        async move { app.get(&url, Some(ada)).await }
    };
    read("test_reverse.py")
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");

    let accept = format!("/api/v1/jobs/{code}/accept");
    let accepted = app.post(&accept, Some(&ada), json!({})).await;
    assert_eq!(accepted.status, StatusCode::OK, "{}", accepted.body);
    assert_eq!(
        accepted.body["changed"],
        json!(["main.py", "test_reverse.py"])
    );
    assert_eq!(accepted.body["already"], false);
    assert!(
        read("main.py")
            .await
            .body
            .as_str()
            .unwrap()
            .contains("def reverse")
    );
    let again = app.post(&accept, Some(&ada), json!({})).await;
    assert_eq!(again.body["already"], true, "{}", again.body);

    // A qa job: the project's tests run in a sandbox, then the model reports.
    let qa = start_job(&app, &ada, &project, json!({"kind": "qa"})).await;
    let job = finished(&app, &ada, &qa).await;
    assert_eq!(job["state"], "completed", "{job}");
    let tests = &job["result"]["tests"];
    assert_eq!(tests["passed"], true, "{tests}");
    assert_eq!(
        tests["command"],
        json!(["python3", "-m", "unittest", "discover", "-v"])
    );
    assert!(
        tests["stderr"].as_str().unwrap().contains("Ran 2 tests"),
        "{tests}"
    );
    assert_eq!(job["result"]["output"]["verdict"], "pass");
    let qa_events = events(&app, &ada, &qa).await;
    assert!(
        qa_events
            .iter()
            .any(|(e, d)| e == "log" && d["data"]["line"].as_str().unwrap_or("").contains("OK")),
        "the test output is logged: {qa_events:?}"
    );
    let listed = app
        .get(&format!("/api/v1/projects/{project}/jobs"), Some(&ada))
        .await;
    assert_eq!(listed.body["jobs"].as_array().unwrap().len(), 2);

    // The server stops while a job waits on the model; after a restart the job runs again
    // and completes exactly once.
    fake.push("research", Reply::Hang);
    let research = start_job(
        &app,
        &ada,
        &project,
        json!({"kind": "research", "input": {"prompt": "Which string algorithms matter?"}}),
    )
    .await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while fake.requests("research") == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the job never asked the model"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let app = app.restart().await;
    let job = finished(&app, &ada, &research).await;
    assert_eq!(job["state"], "completed", "{job}");
    assert_eq!(job["attempts"], 2, "{job}");
    let stream = events(&app, &ada, &research).await;
    let results = stream.iter().filter(|(e, _)| e == "result").count();
    let ends = stream
        .iter()
        .filter(|(_, d)| d["data"]["state"] == "completed")
        .count();
    assert_eq!((results, ends), (1, 1), "{stream:?}");
    assert!(
        stream
            .iter()
            .any(|(_, d)| d["data"]["error"]["code"] == "lease_expired"),
        "it ran again because its lease expired, not because an attempt failed: {stream:?}"
    );
}

#[tokio::test]
async fn agent_jobs_fail_clearly_and_never_half_apply() {
    let fake = FakeModel::default();
    let base = fake.serve().await;
    let app = TestApp::spawn_with(|c| configure(c, &base)).await;
    let (_, ada) = app.signup("ada").await;
    let (_, eve) = app.signup("eve").await;
    let created = app
        .post(
            "/api/v1/projects",
            Some(&ada),
            json!({"name": "p", "template": "python"}),
        )
        .await;
    let project = created.body["id"].as_str().unwrap().to_owned();
    let jobs = format!("/api/v1/projects/{project}/jobs");

    // Refused before anything is queued.
    for (body, field) in [
        (json!({"kind": "deploy", "input": {"prompt": "x"}}), "body"),
        (json!({"kind": "code", "input": {}}), "input.prompt"),
        (
            json!({"kind": "code", "input": {"prompt": "x".repeat(20_001)}}),
            "input.prompt",
        ),
        (
            json!({"kind": "research", "input": {"prompt": "x", "apply": true}}),
            "input.apply",
        ),
        (
            json!({"kind": "qa", "input": {"command": []}}),
            "input.command",
        ),
    ] {
        let msg = app
            .post(&jobs, Some(&ada), body)
            .await
            .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert!(msg.starts_with(field), "{msg}");
    }
    app.post(
        &jobs,
        Some(&eve),
        json!({"kind": "code", "input": {"prompt": "x"}}),
    )
    .await
    .expect_error(StatusCode::NOT_FOUND, "not_found");

    // A model that answers nonsense: retried, then failed with the reason.
    fake.push("code", Reply::Text("I cannot do that.".into()));
    fake.push(
        "code",
        Reply::Text(
            r#"{"summary": "s", "changes": [{"path": "../x", "action": "write", "content": ""}]}"#
                .into(),
        ),
    );
    let id = start_job(
        &app,
        &ada,
        &project,
        json!({"kind": "code", "input": {"prompt": "x"}}),
    )
    .await;
    let job = finished(&app, &ada, &id).await;
    assert_eq!(
        (job["state"].as_str(), job["attempts"].as_u64()),
        (Some("failed"), Some(2))
    );
    assert_eq!(job["error"]["code"], "llm_invalid_output", "{job}");
    assert!(
        job["error"]["message"].as_str().unwrap().contains("../x"),
        "{job}"
    );
    app.post(&format!("/api/v1/jobs/{id}/accept"), Some(&ada), json!({}))
        .await
        .expect_error(StatusCode::CONFLICT, "not_a_change_set");

    // A model that never answers: the provider's timeout, retried, then failed.
    fake.push("research", Reply::Hang);
    fake.push("research", Reply::Hang);
    let id = start_job(
        &app,
        &ada,
        &project,
        json!({"kind": "research", "input": {"prompt": "x"}}),
    )
    .await;
    let job = finished(&app, &ada, &id).await;
    assert_eq!(
        (job["state"].as_str(), job["attempts"].as_u64()),
        (Some("failed"), Some(2))
    );
    assert_eq!(job["error"]["code"], "llm_timeout", "{job}");
    app.post(&format!("/api/v1/jobs/{id}/cancel"), Some(&ada), json!({}))
        .await
        .expect_error(StatusCode::CONFLICT, "job_finished");

    // A change set whose files changed meanwhile is refused whole.
    let id = start_job(
        &app,
        &ada,
        &project,
        json!({"kind": "code", "input": {"prompt": "x"}}),
    )
    .await;
    finished(&app, &ada, &id).await;
    let edited = app
        .send(
            app.client
                .put(app.url(&format!("/api/v1/projects/{project}/files/main.py")))
                .bearer_auth(&ada)
                .body("print('mine')"),
        )
        .await;
    assert_eq!(edited.status, StatusCode::OK);
    let msg = app
        .post(&format!("/api/v1/jobs/{id}/accept"), Some(&ada), json!({}))
        .await
        .expect_error(StatusCode::CONFLICT, "change_set_stale");
    assert!(msg.contains("main.py"), "{msg}");
    let untouched = app
        .get(
            &format!("/api/v1/projects/{project}/files/test_reverse.py"),
            Some(&ada),
        )
        .await;
    assert_eq!(
        untouched.status,
        StatusCode::NOT_FOUND,
        "nothing half applied"
    );
    app.post(&format!("/api/v1/jobs/{id}/accept"), Some(&eve), json!({}))
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");

    // Applied at once when asked.
    let id = start_job(
        &app,
        &ada,
        &project,
        json!({"kind": "code", "input": {"prompt": "x", "apply": true}}),
    )
    .await;
    let job = finished(&app, &ada, &id).await;
    assert_eq!(job["result"]["applied"], true, "{job}");
    let applied = app
        .get(
            &format!("/api/v1/projects/{project}/files/test_reverse.py"),
            Some(&ada),
        )
        .await;
    assert_eq!(applied.status, StatusCode::OK);
}

#[tokio::test]
async fn without_a_model_agent_jobs_fail_at_once() {
    let app = TestApp::spawn().await;
    let (_, ada) = app.signup("ada").await;
    let created = app
        .post("/api/v1/projects", Some(&ada), json!({"name": "p"}))
        .await;
    let project = created.body["id"].as_str().unwrap().to_owned();
    let id = start_job(
        &app,
        &ada,
        &project,
        json!({"kind": "pedagogy", "input": {"prompt": "loops"}}),
    )
    .await;
    let job = finished(&app, &ada, &id).await;
    assert_eq!(
        (job["state"].as_str(), job["attempts"].as_u64()),
        (Some("failed"), Some(1))
    );
    assert_eq!(job["error"]["code"], "llm_not_configured");
    assert!(job["result"].is_null(), "no canned answer: {job}");
}
