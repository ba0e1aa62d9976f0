//! Sessions end to end: lifecycle, ownership, the live cap, exec in the session's sandbox, the
//! reaper, and reconciliation after a restart — with real sandboxes.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Answer, TestApp};

async fn create(app: &TestApp, token: &str) -> Value {
    let a = app.post("/api/v1/sessions", Some(token), json!({})).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    a.body
}

async fn exec(app: &TestApp, token: &str, id: &str, body: Value) -> Answer {
    app.post(&format!("/api/v1/sessions/{id}/exec"), Some(token), body)
        .await
}

async fn sh(app: &TestApp, token: &str, id: &str, script: &str) -> Value {
    let a = exec(app, token, id, json!({"argv": ["/bin/sh", "-c", script]})).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    a.body
}

fn workspaces(app: &TestApp) -> Vec<String> {
    match std::fs::read_dir(app.data_dir().join("workspaces")) {
        Ok(entries) => entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            // The backend's spare images, not workspaces.
            .filter(|name| !name.starts_with('.'))
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[tokio::test]
async fn a_session_lives_runs_commands_and_ends() {
    let app = TestApp::spawn().await;
    let (_, alice) = app.signup("alice").await;
    let created = create(&app, &alice).await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["status"], "running");
    assert_eq!(created["environment"], "default");
    let made =
        chrono::DateTime::parse_from_rfc3339(created["created_at"].as_str().unwrap()).unwrap();
    let expires =
        chrono::DateTime::parse_from_rfc3339(created["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!((expires - made).num_seconds(), 30 * 60);
    assert_eq!(workspaces(&app).len(), 1);
    let ready = app.get("/readyz", None).await;
    assert_eq!(ready.body["sessions"]["running"], 1, "{}", ready.body);
    let metrics = app
        .send(app.client.get(app.url("/metrics")))
        .await
        .body
        .as_str()
        .unwrap()
        .to_owned();
    assert!(metrics.contains("sandpit_sessions_running 1"), "{metrics}");
    // Memory in aggregate only: the page is public, and session ids must not leak from it.
    let gauge = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} in {metrics}"))
    };
    assert!(gauge("sandpit_sessions_memory_bytes") > 0, "{metrics}");
    assert_eq!(
        gauge("sandpit_sessions_memory_bytes"),
        gauge("sandpit_session_memory_max_bytes"),
        "one session: the sum is the largest"
    );
    assert!(!metrics.contains(&id), "{metrics}");

    let listed = app.get("/api/v1/sessions", Some(&alice)).await;
    assert_eq!(listed.body["sessions"][0]["id"], id.as_str());
    let got = app
        .get(&format!("/api/v1/sessions/{id}"), Some(&alice))
        .await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.body["status"], "running");

    // Commands run in the session's sandbox and its files persist between them.
    let out = sh(&app, &alice, &id, "echo hello > note.txt; id -un; pwd").await;
    assert_eq!(out["status"], "ok", "{out}");
    assert_eq!(out["stdout"], "sandbox\n/workspace\n");
    let out = exec(&app, &alice, &id, json!({"argv": ["cat", "note.txt"]})).await;
    assert_eq!(out.body["stdout"], "hello\n", "{}", out.body);
    let out = exec(
        &app,
        &alice,
        &id,
        json!({"argv": ["/bin/cat"], "stdin": "piped in", "cwd": "."}),
    )
    .await;
    assert_eq!(out.body["stdout"], "piped in");
    let out = exec(
        &app,
        &alice,
        &id,
        json!({"argv": ["/bin/sleep", "10"], "timeout_ms": 300}),
    )
    .await;
    assert_eq!(out.body["status"], "time_limit", "{}", out.body);
    let out = exec(&app, &alice, &id, json!({"argv": ["/no/such/program"]})).await;
    assert_eq!(out.body["status"], "runtime_error", "{}", out.body);

    // Extending moves the expiry later, never earlier.
    let ext = app
        .post(
            &format!("/api/v1/sessions/{id}/extend"),
            Some(&alice),
            json!({"ttl_seconds": 3600}),
        )
        .await;
    assert_eq!(ext.status, StatusCode::OK, "{}", ext.body);
    let later =
        chrono::DateTime::parse_from_rfc3339(ext.body["expires_at"].as_str().unwrap()).unwrap();
    assert!(later > expires);
    let ext = app
        .post(
            &format!("/api/v1/sessions/{id}/extend"),
            Some(&alice),
            json!({"ttl_seconds": 60}),
        )
        .await;
    let unchanged =
        chrono::DateTime::parse_from_rfc3339(ext.body["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!(
        unchanged, later,
        "a shorter ttl must not shorten the session"
    );

    // Ending stops it, deletes the workspace, and every later use is refused.
    let end = app
        .call(
            Method::DELETE,
            &format!("/api/v1/sessions/{id}"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(end.status, StatusCode::NO_CONTENT, "{}", end.body);
    assert!(workspaces(&app).is_empty());
    let got = app
        .get(&format!("/api/v1/sessions/{id}"), Some(&alice))
        .await;
    assert_eq!(got.body["status"], "ended");
    assert_eq!(got.body["end_reason"], "user");
    exec(&app, &alice, &id, json!({"argv": ["true"]}))
        .await
        .expect_error(StatusCode::CONFLICT, "session_ended");
    app.call(
        Method::DELETE,
        &format!("/api/v1/sessions/{id}"),
        Some(&alice),
        None,
    )
    .await
    .expect_error(StatusCode::CONFLICT, "session_ended");
    app.post(
        &format!("/api/v1/sessions/{id}/extend"),
        Some(&alice),
        json!({}),
    )
    .await
    .expect_error(StatusCode::CONFLICT, "session_ended");
    let live = app.get("/api/v1/sessions", Some(&alice)).await;
    assert_eq!(live.body["sessions"], json!([]));
    let all = app.get("/api/v1/sessions?all=true", Some(&alice)).await;
    assert_eq!(all.body["sessions"][0]["id"], id.as_str());
}

#[tokio::test]
async fn another_users_session_is_not_found() {
    let app = TestApp::spawn().await;
    let (_, alice) = app.signup("alice").await;
    let (_, mallory) = app.signup("mallory").await;
    let id = create(&app, &alice).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/api/v1/sessions/{id}");
    app.get(&path, Some(&mallory))
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    app.call(Method::DELETE, &path, Some(&mallory), None)
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    app.post(&format!("{path}/extend"), Some(&mallory), json!({}))
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    exec(&app, &mallory, &id, json!({"argv": ["true"]}))
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    let theirs = app.get("/api/v1/sessions?all=true", Some(&mallory)).await;
    assert_eq!(theirs.body["sessions"], json!([]));
    app.get(&path, None)
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
    // Alice's session is untouched.
    assert_eq!(app.get(&path, Some(&alice)).await.body["status"], "running");
}

#[tokio::test]
async fn live_sessions_are_capped_per_user() {
    let app = TestApp::spawn_with(|c| c.sessions.max_per_user = 2).await;
    let (_, alice) = app.signup("alice").await;
    let (_, bob) = app.signup("bob").await;
    let first = create(&app, &alice).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    create(&app, &alice).await;
    let message = app
        .post("/api/v1/sessions", Some(&alice), json!({}))
        .await
        .expect_error(StatusCode::CONFLICT, "session_limit");
    assert!(message.contains("max_per_user"), "{message}");
    // Another user has their own allowance.
    create(&app, &bob).await;
    let end = app
        .call(
            Method::DELETE,
            &format!("/api/v1/sessions/{first}"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(end.status, StatusCode::NO_CONTENT);
    create(&app, &alice).await;
}

#[tokio::test]
async fn bad_session_requests_are_refused_clearly() {
    let app = TestApp::spawn().await;
    let (_, alice) = app.signup("alice").await;
    app.post("/api/v1/sessions", Some(&alice), json!({"ttl_seconds": 5}))
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    app.post(
        "/api/v1/sessions",
        Some(&alice),
        json!({"ttl_seconds": 10_000_000}),
    )
    .await
    .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    app.post(
        "/api/v1/sessions",
        Some(&alice),
        json!({"environment": "../../etc"}),
    )
    .await
    .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    app.post("/api/v1/sessions", Some(&alice), json!({"bogus": 1}))
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    app.get("/api/v1/sessions/not-a-uuid", Some(&alice))
        .await
        .expect_error(StatusCode::BAD_REQUEST, "bad_request");
    let id = create(&app, &alice).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for (body, field) in [
        (json!({"argv": []}), "argv"),
        (json!({"argv": [""]}), "argv"),
        (json!({"argv": ["/bin/echo", "a\u{0}b"]}), "argv"),
        (json!({"argv": ["true"], "timeout_ms": 0}), "timeout_ms"),
        (
            json!({"argv": ["true"], "timeout_ms": 999_999_999}),
            "timeout_ms",
        ),
        (json!({"argv": ["true"], "cwd": "../.."}), "cwd"),
        (json!({"argv": ["true"], "cwd": "/etc"}), "cwd"),
    ] {
        let message = exec(&app, &alice, &id, body.clone())
            .await
            .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert!(message.starts_with(field), "{body}: {message}");
    }
    // Arguments are passed as they are, never through a shell.
    let out = exec(
        &app,
        &alice,
        &id,
        json!({"argv": ["/bin/echo", "$(id)", "; rm -rf /workspace", "a\nb", "'\""]}),
    )
    .await;
    assert_eq!(out.body["stdout"], "$(id) ; rm -rf /workspace a\nb '\"\n");
}

#[tokio::test]
async fn the_reaper_ends_expired_sessions() {
    let app = TestApp::spawn().await;
    let (_, alice) = app.signup("alice").await;
    let id = create(&app, &alice).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    sh(&app, &alice, &id, "echo x > f").await;
    // Not yet due.
    app.state.sessions.reap(chrono::Utc::now()).await;
    assert_eq!(
        app.get(&format!("/api/v1/sessions/{id}"), Some(&alice))
            .await
            .body["status"],
        "running"
    );
    app.state
        .sessions
        .reap(chrono::Utc::now() + chrono::Duration::hours(1))
        .await;
    let got = app
        .get(&format!("/api/v1/sessions/{id}"), Some(&alice))
        .await;
    assert_eq!(got.body["status"], "ended");
    assert_eq!(got.body["end_reason"], "expired");
    assert!(workspaces(&app).is_empty());
    assert_eq!(app.state.sessions.counts().reaped, 1);
    assert_eq!(app.state.sessions.counts().running, 0);
}

#[tokio::test]
async fn a_restart_keeps_workspaces_and_restarts_sandboxes_on_demand() {
    let app = TestApp::spawn().await;
    let (_, alice) = app.signup("alice").await;
    let id = create(&app, &alice).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    sh(
        &app,
        &alice,
        &id,
        "mkdir -p src && echo 'print(6*7)' > src/main.py; sleep 1000 &",
    )
    .await;
    // A workspace nobody owns (say, left by a crash) goes at start-up.
    let orphan = app
        .data_dir()
        .join("workspaces")
        .join("0123456789abcdef0123456789abcdef");
    std::fs::create_dir_all(&orphan).unwrap();

    let app = app.restart().await;
    assert!(!orphan.exists());
    let got = app
        .get(&format!("/api/v1/sessions/{id}"), Some(&alice))
        .await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.body);
    assert_eq!(got.body["status"], "suspended");
    let out = sh(
        &app,
        &alice,
        &id,
        "/usr/bin/python3 src/main.py; pgrep sleep || echo none",
    )
    .await;
    assert_eq!(out["stdout"], "42\nnone\n", "{out}");
    let got = app
        .get(&format!("/api/v1/sessions/{id}"), Some(&alice))
        .await;
    assert_eq!(got.body["status"], "running");
}

#[tokio::test]
async fn sessions_work_on_postgres() {
    let app = TestApp::spawn_postgres().await;
    let (_, alice) = app.signup("alice").await;
    let id = create(&app, &alice).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = sh(&app, &alice, &id, "echo pg > f && cat f").await;
    assert_eq!(out["stdout"], "pg\n");
    let app = app.restart().await;
    let out = sh(&app, &alice, &id, "cat f").await;
    assert_eq!(out["stdout"], "pg\n");
    let end = app
        .call(
            Method::DELETE,
            &format!("/api/v1/sessions/{id}"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(end.status, StatusCode::NO_CONTENT);
}
