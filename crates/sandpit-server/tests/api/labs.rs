//! Labs as a learner meets them: the catalog, starting a lab, judging (JSON and server-sent
//! events), attempts and progress, hints from the ladder and from a model, and every refusal.

use std::sync::{Arc, Mutex};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::TestApp;

const PYTHON: &str = "python-functions";

fn python_lab() -> Arc<sandpit_labs::Lab> {
    let (catalog, _) = sandpit_labs::Catalog::load(&[], &["default"]);
    catalog
        .get(PYTHON)
        .expect("the python lab is built in")
        .clone()
}

async fn start(app: &TestApp, token: &str, slug: &str) -> (StatusCode, String) {
    let a = app
        .post(
            &format!("/api/v1/labs/{slug}/start"),
            Some(token),
            json!({}),
        )
        .await;
    assert!(a.status.is_success(), "{}", a.body);
    let id = a.body["session"]["id"].as_str().unwrap().to_owned();
    assert_eq!(a.body["session"]["lab"], slug);
    (a.status, id)
}

async fn judge(app: &TestApp, token: &str, session: &str, step: Option<&str>) -> Value {
    let body = match step {
        Some(s) => json!({ "step": s }),
        None => json!({}),
    };
    let a = app
        .post(
            &format!("/api/v1/sessions/{session}/judge"),
            Some(token),
            body,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    a.body
}

async fn put_file(app: &TestApp, token: &str, session: &str, path: &str, data: &[u8]) {
    let a = app
        .send(
            app.client
                .put(app.url(&format!("/api/v1/sessions/{session}/files/{path}")))
                .bearer_auth(token)
                .body(data.to_vec()),
        )
        .await;
    assert!(a.status.is_success(), "{path}: {}", a.body);
}

async fn hint(app: &TestApp, token: &str, session: &str) -> crate::helpers::Answer {
    app.post(
        &format!("/api/v1/sessions/{session}/hint"),
        Some(token),
        json!({}),
    )
    .await
}

fn lab_in<'a>(list: &'a Value, slug: &str) -> &'a Value {
    list["labs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["slug"] == slug || l["lab"] == slug)
        .unwrap_or_else(|| panic!("{slug} not listed: {list}"))
}

/// A fake OpenAI-compatible server: answers every chat completion with `reply` and keeps the
/// requests it got.
async fn fake_openai(reply: &'static str) -> (String, Arc<Mutex<Vec<Value>>>) {
    use axum::routing::post;
    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    let kept = seen.clone();
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        post(move |headers: axum::http::HeaderMap, body: axum::Json<Value>| {
            let kept = kept.clone();
            async move {
                let authorized = headers
                    .get("authorization")
                    .is_some_and(|v| v == "Bearer test-key");
                if !authorized {
                    return (StatusCode::UNAUTHORIZED, axum::Json(json!({"error": {"message": "bad key"}})));
                }
                kept.lock().unwrap().push(body.0.clone());
                (
                    StatusCode::OK,
                    axum::Json(json!({
                        "id": "chatcmpl-1",
                        "object": "chat.completion",
                        "model": body.0["model"],
                        "choices": [{"index": 0, "finish_reason": "stop",
                            "message": {"role": "assistant", "content": reply}}],
                        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
                    })),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, seen)
}

/// The issue's "done when", as a new user would go, on SQLite …
#[tokio::test]
async fn a_new_learner_completes_the_python_lab_and_gets_hints() {
    journey(TestApp::spawn().await).await;
}

/// … and on PostgreSQL.
#[tokio::test]
async fn a_new_learner_completes_the_python_lab_on_postgres() {
    journey(TestApp::spawn_postgres().await).await;
}

async fn journey(app: TestApp) {
    let lab = python_lab();
    let (_, token) = app.signup("ada").await;

    let list = app.get("/api/v1/labs", Some(&token)).await;
    assert_eq!(list.status, StatusCode::OK);
    let listed = lab_in(&list.body, PYTHON);
    assert_eq!(listed["progress"]["completed"], false);
    assert_eq!(listed["steps"], lab.steps.len());

    let (status, session) = start(&app, &token, PYTHON).await;
    assert_eq!(status, StatusCode::CREATED);
    // Starting again resumes the same session.
    let (status, again) = start(&app, &token, PYTHON).await;
    assert_eq!((status, again.as_str()), (StatusCode::OK, session.as_str()));
    let active = app
        .get(&format!("/api/v1/labs/{PYTHON}/active"), Some(&token))
        .await;
    assert_eq!(active.body["id"], session.as_str());
    // The starter files are in the workspace.
    let tree = app
        .get(&format!("/api/v1/sessions/{session}/files"), Some(&token))
        .await;
    for path in lab.starter.keys() {
        assert!(
            tree.body.to_string().contains(path.as_str()),
            "{path} missing: {}",
            tree.body
        );
    }

    // The starter fails with codes, messages and hints.
    let first = &lab.steps[0];
    let attempt = judge(&app, &token, &session, None).await;
    assert_eq!(attempt["step"], first.id.as_str());
    assert_eq!(attempt["passed"], false, "{attempt}");
    let failures = attempt["failures"].as_array().unwrap();
    assert!(!failures.is_empty());
    for f in failures {
        for key in ["code", "message", "hint"] {
            assert!(
                !f[key].as_str().unwrap_or_default().is_empty(),
                "{key} empty in {f}"
            );
        }
    }
    assert!(
        attempt["metrics"]["checks"]
            .as_array()
            .is_some_and(|c| !c.is_empty())
    );
    let fetched = app
        .get(
            &format!("/api/v1/attempts/{}", attempt["id"].as_str().unwrap()),
            Some(&token),
        )
        .await;
    assert_eq!(fetched.body, attempt);

    // No model configured: the lab's first authored hint, then the next.
    let h = hint(&app, &token, &session).await;
    assert_eq!(h.status, StatusCode::OK, "{}", h.body);
    assert_eq!(h.body["source"], "authored", "{}", h.body);
    assert_eq!(h.body["text"], first.hints[0].as_str());
    assert_eq!(h.body["level"], 1);

    // The fix, through the files API; every step passes in turn.
    for (path, data) in &lab.solution {
        put_file(&app, &token, &session, path.as_str(), data).await;
    }
    for step in &lab.steps {
        let attempt = judge(&app, &token, &session, None).await;
        assert_eq!(attempt["step"], step.id.as_str());
        assert_eq!(attempt["passed"], true, "{attempt}");
        assert_eq!(attempt["failures"], json!([]));
    }
    let progress = app.get("/api/v1/progress", Some(&token)).await;
    let mine = lab_in(&progress.body, PYTHON);
    assert_eq!(mine["completed"], true, "{mine}");
    assert_eq!(
        mine["steps_passed"].as_array().unwrap().len(),
        lab.steps.len()
    );
    assert_eq!(mine["attempts"], 1 + lab.steps.len());
    let list = app.get("/api/v1/labs", Some(&token)).await;
    assert_eq!(lab_in(&list.body, PYTHON)["progress"]["completed"], true);
    let attempts = app
        .get(
            &format!("/api/v1/attempts?lab={PYTHON}&session={session}"),
            Some(&token),
        )
        .await;
    assert_eq!(
        attempts.body["attempts"].as_array().unwrap().len(),
        1 + lab.steps.len()
    );
    assert_eq!(attempts.body["attempts"][0]["passed"], true, "newest first");

    // Now with a model: its text, with the step and the learner's files in the prompt.
    let (base, seen) = fake_openai("Fake tutor: look at your return value.").await;
    let app = app
        .restart_with(|c| configure_openai(c, &base, "test-key"))
        .await;
    let h = hint(&app, &token, &session).await;
    assert_eq!(h.status, StatusCode::OK, "{}", h.body);
    assert_eq!(h.body["source"], "llm", "{}", h.body);
    assert_eq!(h.body["text"], "Fake tutor: look at your return value.");
    let prompt = seen.lock().unwrap()[0].to_string();
    // A file the learner edits (in the starter), as they left it.
    let (file, content) = lab
        .solution
        .iter()
        .find(|(p, _)| lab.starter.contains_key(*p))
        .unwrap();
    assert!(
        prompt.contains(file.as_str()),
        "the learner's file is not in the prompt"
    );
    let line = String::from_utf8_lossy(content)
        .lines()
        .find(|l| l.trim().len() > 8)
        .unwrap()
        .trim()
        .to_owned();
    assert!(
        prompt.contains(
            &serde_json::to_string(&line)
                .unwrap()
                .trim_matches('"')
                .to_owned()
        )
    );
    // Five a minute per session: the sixth is refused with Retry-After.
    for _ in 0..4 {
        assert_eq!(hint(&app, &token, &session).await.status, StatusCode::OK);
    }
    let refused = hint(&app, &token, &session).await;
    refused.expect_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let retry: u64 = refused.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
}

fn configure_openai(c: &mut sandpit_server::Config, base: &str, key: &str) {
    use sandpit_server::llm::{ProviderConfig, ProviderKind};
    let mut provider = ProviderConfig::new(ProviderKind::Openai, "fake-model");
    provider.base_url = Some(base.to_owned());
    provider.api_key = Some(secrecy::SecretString::from(key.to_owned()));
    c.llm.providers.insert("main".into(), provider);
    c.llm.routes.hint = Some("main".into());
    c.llm.routes.explain = Some("main".into());
}

/// A provider that fails or is too slow never fails the learner: the ladder answers, and
/// the answer says why.
#[tokio::test]
async fn a_failing_model_falls_back_to_the_ladder() {
    let (base, _) = fake_openai("unused").await;
    let app = TestApp::spawn_with(|c| configure_openai(c, &base, "wrong-key")).await;
    let (_, token) = app.signup("bob").await;
    let (_, session) = start(&app, &token, PYTHON).await;
    let h = hint(&app, &token, &session).await;
    assert_eq!(h.status, StatusCode::OK, "{}", h.body);
    assert_eq!(h.body["source"], "authored");
    assert!(
        h.body["fallback_reason"]
            .as_str()
            .is_some_and(|r| !r.is_empty()),
        "{}",
        h.body
    );
    let e = app
        .post(
            &format!("/api/v1/sessions/{session}/explain"),
            Some(&token),
            json!({"error": "NameError: name 'x' is not defined"}),
        )
        .await;
    assert_eq!(e.status, StatusCode::OK, "{}", e.body);
    assert_eq!(e.body["source"], "authored");
}

/// The failures' hints follow the authored ones on the ladder, and the last rung repeats.
#[tokio::test]
async fn the_ladder_climbs_into_the_last_failures() {
    let lab = python_lab();
    let step = &lab.steps[0];
    let app = TestApp::spawn_with(|c| c.labs.hints_per_minute = 100).await;
    let (_, token) = app.signup("cleo").await;
    let (_, session) = start(&app, &token, PYTHON).await;
    let attempt = judge(&app, &token, &session, Some(&step.id)).await;
    let failure_hint = attempt["failures"][0]["hint"].as_str().unwrap().to_owned();
    let mut texts = Vec::new();
    for _ in 0..step.hints.len() + attempt["failures"].as_array().unwrap().len() + 1 {
        let h = hint(&app, &token, &session).await;
        texts.push((
            h.body["source"].as_str().unwrap().to_owned(),
            h.body["text"].as_str().unwrap().to_owned(),
        ));
    }
    for (i, authored) in step.hints.iter().enumerate() {
        assert_eq!(texts[i], ("authored".to_owned(), authored.clone()));
    }
    let after = &texts[step.hints.len()];
    assert_eq!(after.0, "failures");
    assert!(after.1.contains(&failure_hint), "{after:?}");
    assert_eq!(
        texts[texts.len() - 1],
        texts[texts.len() - 2],
        "the last rung repeats"
    );
}

#[tokio::test]
async fn judge_progress_streams_as_server_sent_events() {
    let app = TestApp::spawn().await;
    let (_, token) = app.signup("dan").await;
    let (_, session) = start(&app, &token, PYTHON).await;
    let res = app
        .client
        .post(app.url(&format!("/api/v1/sessions/{session}/judge")))
        .bearer_auth(&token)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let text = res.text().await.unwrap();
    let events: Vec<(String, Value)> = text
        .split("\n\n")
        .filter_map(|block| {
            let name = block.lines().find_map(|l| l.strip_prefix("event: "))?;
            let data = block.lines().find_map(|l| l.strip_prefix("data: "))?;
            Some((name.to_owned(), serde_json::from_str(data).unwrap()))
        })
        .collect();
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.first(), Some(&"started"), "{names:?}");
    assert_eq!(names.last(), Some(&"attempt"), "{names:?}");
    let checks = events[0].1["checks"].as_u64().unwrap() as usize;
    assert_eq!(
        names.iter().filter(|n| **n == "check_finished").count(),
        checks
    );
    let attempt = &events.last().unwrap().1;
    assert_eq!(attempt["passed"], false);
    // The streamed attempt is stored like any other.
    let stored = app
        .get(
            &format!("/api/v1/attempts/{}", attempt["id"].as_str().unwrap()),
            Some(&token),
        )
        .await;
    assert_eq!(&stored.body, attempt);
}

#[tokio::test]
async fn judge_hint_and_lab_refusals() {
    let app = TestApp::spawn().await;
    let (_, token) = app.signup("eve").await;
    let (_, other) = app.signup("mallory").await;
    let (_, session) = start(&app, &token, PYTHON).await;

    app.post("/api/v1/labs/no-such-lab/start", Some(&token), json!({}))
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    app.get("/api/v1/labs/no-such-lab", Some(&token))
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    app.get("/api/v1/labs/shell-basics/active", Some(&token))
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    app.get("/api/v1/labs", None)
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "unauthorized");

    // Another user's session, attempt and hints are not found.
    let path = format!("/api/v1/sessions/{session}/judge");
    app.post(&path, Some(&other), json!({}))
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    app.post(
        &format!("/api/v1/sessions/{session}/hint"),
        Some(&other),
        json!({}),
    )
    .await
    .expect_error(StatusCode::NOT_FOUND, "not_found");
    let attempt = judge(&app, &token, &session, None).await;
    let attempt_path = format!("/api/v1/attempts/{}", attempt["id"].as_str().unwrap());
    app.get(&attempt_path, Some(&other))
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    let theirs = app.get("/api/v1/attempts", Some(&other)).await;
    assert_eq!(theirs.body["attempts"], json!([]));

    // Bad input.
    let msg = app
        .post(&path, Some(&token), json!({"step": "no-such-step"}))
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert!(msg.contains("no-such-step"), "{msg}");
    // A misspelt field is JSON of the wrong shape, as on every route; broken JSON is another.
    app.post(&path, Some(&token), json!({"stepp": "x"}))
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    app.send(
        app.client
            .post(app.url(&path))
            .bearer_auth(&token)
            .body("{\"step\": "),
    )
    .await
    .expect_error(StatusCode::BAD_REQUEST, "invalid_json");
    app.get("/api/v1/attempts?limit=0", Some(&token))
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    app.post(
        &format!("/api/v1/sessions/{session}/explain"),
        Some(&token),
        json!({}),
    )
    .await
    .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");

    // A session without a lab cannot be judged.
    let plain = app.post("/api/v1/sessions", Some(&token), json!({})).await;
    let plain = plain.body["id"].as_str().unwrap().to_owned();
    app.post(
        &format!("/api/v1/sessions/{plain}/judge"),
        Some(&token),
        json!({}),
    )
    .await
    .expect_error(StatusCode::CONFLICT, "not_a_lab_session");

    // An ended session: 409, and nothing recorded.
    let ended = app
        .call(
            Method::DELETE,
            &format!("/api/v1/sessions/{session}"),
            Some(&token),
            None,
        )
        .await;
    assert!(ended.status.is_success(), "{}", ended.body);
    app.post(&path, Some(&token), json!({}))
        .await
        .expect_error(StatusCode::CONFLICT, "session_ended");
    app.post(
        &format!("/api/v1/sessions/{session}/hint"),
        Some(&token),
        json!({}),
    )
    .await
    .expect_error(StatusCode::CONFLICT, "session_ended");
    let mine = app.get("/api/v1/attempts", Some(&token)).await;
    assert_eq!(mine.body["attempts"].as_array().unwrap().len(), 1);
}

/// A lab folder from the config: a broken lab beside it is skipped (logged), and the checks
/// that misbehave are cut at their limits and reported with clear codes.
#[tokio::test]
async fn hostile_checks_are_cut_at_their_limits() {
    let labs = tempfile::TempDir::new().unwrap();
    let good = labs.path().join("hostile");
    std::fs::create_dir_all(good.join("steps")).unwrap();
    std::fs::create_dir_all(good.join("solution")).unwrap();
    std::fs::write(good.join("steps/one.md"), "# One\n").unwrap();
    std::fs::write(good.join("solution/done.txt"), "done\n").unwrap();
    std::fs::write(
        good.join("lab.toml"),
        r#"slug = "hostile"
title = "Hostile checks"
summary = "Checks that hang, flood and find a busy port."
difficulty = "advanced"

[[steps]]
id = "one"
title = "One"
text = "steps/one.md"

[[steps.checks]]
type = "command"
code = "hangs"
script = "sleep 60"
message = "never"
hint = "never"
timeout_ms = 1500

[[steps.checks]]
type = "command"
code = "floods"
script = "yes flood"
message = "never"
hint = "never"

[[steps.checks]]
type = "http"
code = "busy"
port = 8765
path = "/"
start = ["/usr/bin/python3", "-m", "http.server", "8765"]
message = "never"
hint = "never"
timeout_ms = 5000

[[steps.checks]]
type = "file_exists"
code = "done"
path = "done.txt"
message = "done.txt is missing"
hint = "create it"
"#,
    )
    .unwrap();
    let broken = labs.path().join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(broken.join("lab.toml"), "slug = \"broken\"\ntitle = ").unwrap();
    let dir = labs.path().to_path_buf();
    let app = TestApp::spawn_with(|c| c.labs.dirs = vec![dir]).await;
    let (_, token) = app.signup("frank").await;
    let list = app.get("/api/v1/labs", Some(&token)).await;
    lab_in(&list.body, "hostile");
    assert!(
        !list.body.to_string().contains("\"broken\""),
        "the broken lab is skipped"
    );

    let (_, session) = start(&app, &token, "hostile").await;
    // The learner's own server holds the port the check wants.
    let server = app
        .client
        .post(app.url(&format!("/api/v1/sessions/{session}/exec")))
        .bearer_auth(&token)
        .json(&json!({"argv": ["/bin/bash", "-c", "setsid /usr/bin/python3 -m http.server 8765 >/dev/null 2>&1 & sleep 1"]}))
        .send()
        .await
        .unwrap();
    assert!(server.status().is_success());
    let attempt = judge(&app, &token, &session, None).await;
    let codes: Vec<&str> = attempt["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        [
            "hangs.timeout",
            "floods.output_limit",
            "busy.port_busy",
            "done"
        ],
        "{attempt}"
    );
    let checks = attempt["metrics"]["checks"].as_array().unwrap();
    assert_eq!(checks[0]["status"], "timed_out");
    assert!(
        checks[0]["elapsed_ms"].as_f64().unwrap() < 30_000.0,
        "cut at its deadline"
    );
    // The server is still fine and the session still usable.
    let again = app
        .get(&format!("/api/v1/sessions/{session}"), Some(&token))
        .await;
    assert_eq!(again.body["status"], "running");
}

#[tokio::test]
async fn a_killercoda_scenario_in_labs_dirs_is_served_with_its_setup() {
    let scenario = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../sandpit-labs/tests/killercoda/linux-logs");
    let app = TestApp::spawn_with(|c| c.labs.dirs = vec![scenario]).await;
    let (_, token) = app.signup("grace").await;
    let (_, session) = start(&app, &token, "linux-logs").await;
    // The scenario's background scripts (the lab's setup) ran at the session's start: the
    // logs they write are in the workspace, next to the starter files (its assets).
    for path in ["logs/app.log", "notes-step2.txt", "count.sh"] {
        let file = app
            .get(
                &format!("/api/v1/sessions/{session}/files/{path}"),
                Some(&token),
            )
            .await;
        assert_eq!(file.status, StatusCode::OK, "{path}: {}", file.body);
    }
    let attempt = judge(&app, &token, &session, Some("step1")).await;
    assert_eq!(attempt["passed"], false, "{attempt}");
    assert_eq!(attempt["failures"][0]["code"], "step1-verify");
    put_file(
        &app,
        &token,
        &session,
        "errors.txt",
        b"2026-12-01 09:00:02 ERROR disk full on /var\n2026-12-01 09:00:04 ERROR request timed out\n",
    )
    .await;
    let attempt = judge(&app, &token, &session, Some("step1")).await;
    assert_eq!(attempt["passed"], true, "{attempt}");
}
