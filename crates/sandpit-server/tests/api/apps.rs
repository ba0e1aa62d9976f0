//! Deployed apps: a learner's FastAPI, Flask or Express app from a session, a project or the
//! request, deployed through its stages, served by the platform's proxy in both modes, idle
//! stopped, woken, redeployed without a failed request, rolled back and deleted — and every
//! way an app can be wrong, each a clear stage failure or a clear page.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Answer, TestApp};

const PATIENCE: Duration = Duration::from_secs(120);

const FASTAPI: &str = r#"from fastapi import FastAPI, Request

app = FastAPI()


@app.get("/")
def root():
    return {"message": "hello"}


@app.get("/headers")
def headers(request: Request):
    return {k: v for k, v in request.headers.items()}


@app.get("/cookie")
def cookie():
    from fastapi.responses import JSONResponse
    r = JSONResponse({"ok": True})
    r.set_cookie("sandpit_session", "stolen", path="/")
    r.set_cookie("app_pref", "dark")
    return r


@app.get("/log")
def log(line: str):
    print(line, flush=True)
    return {"logged": line}
"#;

async fn create_app(app: &TestApp, token: &str, body: Value) -> Value {
    let a = app.post("/api/v1/apps", Some(token), body).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    a.body
}

/// Deploys `files` (path → text) to `id`; returns the deployment.
async fn deploy(app: &TestApp, token: &str, id: &str, files: &[(&str, &str)]) -> Value {
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
async fn finished(app: &TestApp, token: &str, job: &str) -> Value {
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

/// Deploys and expects a failure; returns the job's error.
async fn deploy_fails(app: &TestApp, token: &str, id: &str, files: &[(&str, &str)]) -> Value {
    let d = deploy(app, token, id, files).await;
    let job = finished(app, token, d["job_id"].as_str().unwrap()).await;
    assert_eq!(job["state"], "failed", "{job}");
    job["error"].clone()
}

/// A request through the proxy; `Answer.body` is JSON when the app answered JSON.
async fn visit(app: &TestApp, path: &str) -> Answer {
    app.send(app.client.get(app.url(path))).await
}

#[tokio::test]
async fn a_fastapi_app_from_a_session_is_deployed_and_served_on_its_path() {
    let app = TestApp::spawn().await;
    let (_, ada) = app.signup("ada").await;
    let session = app.post("/api/v1/sessions", Some(&ada), json!({})).await;
    assert_eq!(session.status, StatusCode::CREATED, "{}", session.body);
    let session = session.body["id"].as_str().unwrap().to_owned();
    let put = app
        .send(
            app.client
                .put(app.url(&format!("/api/v1/sessions/{session}/files/main.py")))
                .bearer_auth(&ada)
                .body(FASTAPI),
        )
        .await;
    assert_eq!(put.status, StatusCode::CREATED, "{}", put.body);

    let created = create_app(&app, &ada, json!({"name": "hello", "runtime": "python"})).await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(
        created["url"]
            .as_str()
            .unwrap()
            .ends_with("/user/ada/app/hello/"),
        "{created}"
    );
    let d = app
        .post(
            &format!("/api/v1/apps/{id}/deploy"),
            Some(&ada),
            json!({ "session_id": session }),
        )
        .await;
    assert_eq!(d.status, StatusCode::ACCEPTED, "{}", d.body);
    assert_eq!(d.body["version"]["version"], 1);
    let job = finished(&app, &ada, d.body["job_id"].as_str().unwrap()).await;
    assert_eq!(job["state"], "completed", "{job}");

    let status = app
        .get(&format!("/api/v1/apps/{id}/status"), Some(&ada))
        .await;
    assert_eq!(status.status, StatusCode::OK, "{}", status.body);
    assert_eq!(status.body["live_version"], 1, "{}", status.body);

    let hello = visit(&app, "/user/ada/app/hello/").await;
    assert_eq!(hello.status, StatusCode::OK, "{}", hello.body);
    assert_eq!(hello.body, json!({"message": "hello"}));
    assert_eq!(
        hello.headers["content-security-policy"],
        sandpit_proxy::SANDBOX_CSP
    );
}

#[tokio::test]
async fn a_wrong_app_fails_its_stage_naming_the_file_and_line() {
    let app = TestApp::spawn().await;
    let (_, ada) = app.signup("ada").await;
    let id = create_app(&app, &ada, json!({"name": "wrong", "runtime": "python"})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let cases: &[(&str, &str, Option<u64>)] = &[
        ("def broken(:\n    pass\n", "syntax_error", Some(1)),
        (
            "import os\nimport subprocess\napp = None\n",
            "forbidden_import",
            Some(2),
        ),
        (
            "from fastapi import FastAPI\napi = FastAPI()\n",
            "app_not_found",
            None,
        ),
    ];
    for (source, code, line) in cases {
        let error = deploy_fails(&app, &ada, &id, &[("main.py", source)]).await;
        assert_eq!(error["code"], *code, "{error}");
        let versions = app
            .get(&format!("/api/v1/apps/{id}/versions"), Some(&ada))
            .await;
        let latest = &versions.body["versions"][0];
        assert_eq!(latest["state"], "failed", "{latest}");
        assert_eq!(latest["error"]["stage"], "validating", "{latest}");
        assert_eq!(latest["error"]["code"], *code, "{latest}");
        assert_eq!(latest["error"]["file"], "main.py", "{latest}");
        if let Some(line) = line {
            assert_eq!(latest["error"]["line"], *line, "{latest}");
        }
        assert!(
            !latest["error"]["message"].as_str().unwrap_or("").is_empty(),
            "{latest}"
        );
    }
    // Nothing went live, so the app's address says so instead of proxying anywhere.
    let page = visit(&app, "/user/ada/app/wrong/").await;
    assert!(page.status.is_client_error() || page.status == StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        page.headers.contains_key("x-sandpit-proxy"),
        "{:?}",
        page.headers
    );

    // Another user sees none of it.
    let (_, bob) = app.signup("bob").await;
    app.get(&format!("/api/v1/apps/{id}"), Some(&bob))
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    app.post(
        &format!("/api/v1/apps/{id}/deploy"),
        Some(&bob),
        json!({"files": {"main.py": "x"}}),
    )
    .await
    .expect_error(StatusCode::NOT_FOUND, "not_found");
}
