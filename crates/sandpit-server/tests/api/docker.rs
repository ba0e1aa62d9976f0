//! The docker environment as a new learner meets it, through the terminal WebSocket: start the
//! Dockerfile lab, build and run the image in the terminal and `curl` it inside the session,
//! Check (the image check fails on the starter, with hints), fix the files, Check (it passes),
//! end the session — and nothing of its engine is left: no process, no disk, no mount. The base
//! images are the ones `sandpit images build` made (`sandpit_testkit::images_dir`).

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::TestApp;
use crate::journey::open;

const LAB: &str = "docker-dockerignore-health";

async fn docker_app() -> TestApp {
    let images = sandpit_testkit::images_dir();
    let app = TestApp::spawn_with(|c| c.docker.images_dir = images).await;
    // The engine is tried in the background at start-up; /readyz says when it answers.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let ready = app.get("/readyz", None).await;
        let docker = &ready.body["components"]["docker"];
        match docker["status"].as_str() {
            Some("ok") => break,
            Some("checking") if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => panic!("the docker environment is {other:?}: {docker}"),
        }
    }
    app
}

async fn judge(app: &TestApp, token: &str, session: &str, step: &str) -> Value {
    let a = app
        .post(
            &format!("/api/v1/sessions/{session}/judge"),
            Some(token),
            json!({ "step": step }),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    a.body
}

async fn put_file(app: &TestApp, token: &str, session: &str, path: &str, data: &str) {
    let a = app
        .send(
            app.client
                .put(app.url(&format!("/api/v1/sessions/{session}/files/{path}")))
                .bearer_auth(token)
                .body(data.to_owned()),
        )
        .await;
    assert!(a.status.is_success(), "{path}: {}", a.body);
}

/// Host processes in a cgroup named for the sandbox `id`.
fn processes_of(id: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/cgroup")).is_ok_and(|c| c.contains(id))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_builds_runs_and_checks_a_dockerfile_and_nothing_is_left() {
    let app = docker_app().await;
    let (_, token) = app.signup("whale").await;
    let started = app
        .post(
            &format!("/api/v1/labs/{LAB}/start"),
            Some(&token),
            json!({}),
        )
        .await;
    assert!(started.status.is_success(), "{}", started.body);
    let session = started.body["session"]["id"].as_str().unwrap().to_owned();
    assert_eq!(started.body["session"]["environment"], "docker");

    // The terminal: docker build, docker run -p, curl inside the session.
    let path = format!("/api/v1/sessions/{session}/terminal?rows=40&cols=120");
    let mut term = open(&app, &token, &path, Some(&app.base)).await.unwrap();
    term.type_line(
        "docker build -t app . > /tmp/build.log 2>&1 && echo built-$((6*7)) || tail -5 /tmp/build.log",
    )
    .await;
    term.until_screen("built-42").await;
    term.type_line(
        "docker run -d -p 8080:8000 --name web app >/dev/null 2>&1; \
         for i in $(seq 100); do curl -s -o /dev/null -w 'status-%{http_code}\\n' localhost:8080/ \
         | grep -q status-200 && echo answered-$((6*7)) && break; sleep 0.1; done",
    )
    .await;
    term.until_screen("answered-42").await;
    term.type_line("docker ps --format '{{.Names}} is {{.Status}}' 2>/dev/null")
        .await;
    term.until_screen("web is Up").await;
    // Layers are files: the shell may write files as large as the engine's disk (4 GiB).
    term.type_line("echo fsize-$(ulimit -f)").await;
    term.until_screen("fsize-4194304").await;

    // Check: the starter's image has no HEALTHCHECK (and the app no /health).
    let attempt = judge(&app, &token, &session, "health").await;
    assert_eq!(attempt["passed"], false, "{attempt}");
    let failures = attempt["failures"].as_array().unwrap();
    let image = failures
        .iter()
        .find(|f| f["code"] == "image.no_healthcheck")
        .unwrap_or_else(|| panic!("no image failure: {attempt}"));
    assert!(!image["message"].as_str().unwrap().is_empty());
    assert!(
        image["hint"].as_str().unwrap().contains("HEALTHCHECK"),
        "{image}"
    );
    let checks = attempt["metrics"]["checks"].as_array().unwrap();
    let image_check = checks.iter().find(|c| c["kind"] == "image").unwrap();
    assert_eq!(image_check["status"], "failed", "{image_check}");

    // The fix: the lab's own solution, written through the files API.
    let lab = sandpit_labs::Catalog::load(&[], sandpit_server::sessions::ENVIRONMENTS)
        .0
        .get(LAB)
        .unwrap()
        .clone();
    for (file, data) in lab.solved_files() {
        put_file(
            &app,
            &token,
            &session,
            file.as_str(),
            &String::from_utf8_lossy(&data),
        )
        .await;
    }
    let attempt = judge(&app, &token, &session, "health").await;
    assert_eq!(attempt["passed"], true, "{attempt}");
    let checks = attempt["metrics"]["checks"].as_array().unwrap();
    let image_check = checks.iter().find(|c| c["kind"] == "image").unwrap();
    assert_eq!(image_check["status"], "passed", "{image_check}");

    // The learner's own container ran all along; ending the session takes everything.
    let live = app
        .store()
        .session(session.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    let sandbox = app.state.sessions.sandbox_of_session(&live).await.unwrap();
    let box_id = sandbox.id().to_owned();
    drop(sandbox);
    assert!(!processes_of(&box_id).is_empty(), "the box runs");
    let engines = app.data_dir().join("engines");
    let ended = app
        .call(
            reqwest::Method::DELETE,
            &format!("/api/v1/sessions/{session}"),
            Some(&token),
            None,
        )
        .await;
    assert!(ended.status.is_success(), "{}", ended.body);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !processes_of(&box_id).is_empty() {
        assert!(Instant::now() < deadline, "processes of the box remain");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let loops = std::process::Command::new("losetup")
        .arg("-a")
        .output()
        .unwrap();
    let loops = String::from_utf8_lossy(&loops.stdout);
    assert!(
        !loops.contains(&engines.display().to_string()),
        "an engine disk is still attached: {loops}"
    );
    let left: Vec<_> = std::fs::read_dir(&engines)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "engine files remain: {left:?}");
}

#[tokio::test]
async fn a_docker_session_is_refused_with_the_reason_when_there_are_no_images() {
    let app = TestApp::spawn_with(|c| c.docker.images_dir = "/nonexistent/images".into()).await;
    let (_, token) = app.signup("no-whale").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let docker = loop {
        let ready = app.get("/readyz", None).await;
        let docker = ready.body["components"]["docker"].clone();
        if docker["status"] != "checking" || Instant::now() > deadline {
            // The server is ready without it: docker is optional.
            assert_eq!(ready.status, StatusCode::OK, "{}", ready.body);
            break docker;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(docker["status"], "unavailable", "{docker}");
    assert!(
        docker["detail"]
            .as_str()
            .unwrap()
            .contains("sandpit images build"),
        "{docker}"
    );
    let refused = app
        .post(
            "/api/v1/sessions",
            Some(&token),
            json!({"environment": "docker"}),
        )
        .await;
    let message = refused.expect_error(StatusCode::SERVICE_UNAVAILABLE, "docker_unavailable");
    assert!(message.contains("sandpit images build"), "{message}");
    let refused = app
        .post(
            &format!("/api/v1/labs/{LAB}/start"),
            Some(&token),
            json!({}),
        )
        .await;
    refused.expect_error(StatusCode::SERVICE_UNAVAILABLE, "docker_unavailable");
    // A plain session still starts.
    let plain = app.post("/api/v1/sessions", Some(&token), json!({})).await;
    assert_eq!(plain.status, StatusCode::CREATED, "{}", plain.body);
}
