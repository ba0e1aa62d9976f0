//! Deploying: the stages an app goes through, each runtime's hello app answering, and each
//! stage's failure with its code, message, file and line.

use reqwest::StatusCode;
use serde_json::json;

use super::{
    FASTAPI, create_app, deploy_fails, deploy_ok, finished, latest_error, launched, proxy_page,
    visit,
};
use crate::helpers::TestApp;

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

const EXPRESS: &str = r#"const express = require('express');

const app = express();
app.get('/', (req, res) => {
  res.json({ from: 'express', path: req.path, prefix: req.get('x-forwarded-prefix') });
});
app.get('/items/:id', (req, res) => res.json({ id: req.params.id, q: req.query.q }));
// No host: what most tutorials write; the platform must still reach it.
app.listen(process.env.PORT, () => console.log(`listening on ${process.env.PORT}`));
"#;

const FLASK: &str = r#"from flask import Flask, jsonify, request, session, url_for

app = Flask(__name__)
app.secret_key = "not a secret"


@app.get("/visits")
def visits():
    session["n"] = session.get("n", 0) + 1
    return jsonify(n=session["n"])


@app.get("/")
def root():
    return jsonify(src="flask", script_root=request.script_root, link=url_for("echo"))


@app.post("/echo")
def echo():
    return jsonify(got=request.get_json())
"#;

#[tokio::test]
async fn an_express_app_and_a_flask_app_deploy_and_answer() {
    let app = TestApp::spawn().await;
    let (_, ada) = app.signup("ada").await;
    launched(
        &app,
        &ada,
        json!({"name": "shop", "runtime": "node"}),
        &[
            ("server.js", EXPRESS),
            (
                "package.json",
                r#"{"name": "shop", "dependencies": {"express": "^4.17.0"}}"#,
            ),
        ],
    )
    .await;
    let root = visit(&app, "/user/ada/app/shop/").await;
    assert_eq!(root.status, StatusCode::OK, "{}", root.body);
    assert_eq!(
        root.body,
        json!({"from": "express", "path": "/", "prefix": "/user/ada/app/shop"})
    );
    let item = visit(&app, "/user/ada/app/shop/items/42?q=red%20shoes").await;
    assert_eq!(
        item.body,
        json!({"id": "42", "q": "red shoes"}),
        "{}",
        item.body
    );

    launched(
        &app,
        &ada,
        json!({"name": "notes", "runtime": "python"}),
        &[("main.py", FLASK), ("requirements.txt", "flask>=2.0\n")],
    )
    .await;
    let root = visit(&app, "/user/ada/app/notes/").await;
    assert_eq!(root.status, StatusCode::OK, "{}", root.body);
    // WSGI under uvicorn: the prefix is the script root, so url_for builds the right links.
    assert_eq!(
        root.body,
        json!({
            "src": "flask",
            "script_root": "/user/ada/app/notes",
            "link": "/user/ada/app/notes/echo"
        })
    );
    let echo = app
        .send(
            app.client
                .post(app.url("/user/ada/app/notes/echo"))
                .json(&json!({"note": "buy milk"})),
        )
        .await;
    assert_eq!(echo.status, StatusCode::OK, "{}", echo.body);
    assert_eq!(echo.body, json!({"got": {"note": "buy milk"}}));
    // Flask's session cookie (Path=/ by default) works under the app's prefix.
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    for n in 1..=3 {
        let visits: serde_json::Value = browser
            .get(app.url("/user/ada/app/notes/visits"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(visits, json!({"n": n}));
    }
}

#[tokio::test]
async fn dependencies_are_only_what_is_allowed_and_installed_here() {
    let app = TestApp::spawn().await;
    let (_, ada) = app.signup("ada").await;
    let id = create_app(&app, &ada, json!({"name": "deps", "runtime": "python"})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let main = &("main.py", FASTAPI);

    let error = deploy_fails(
        &app,
        &ada,
        &id,
        &[
            *main,
            (
                "requirements.txt",
                "fastapi\n# the HTTP client\nrequests==2.31\n",
            ),
        ],
    )
    .await;
    assert_eq!(error["code"], "package_not_allowed", "{error}");
    let recorded = latest_error(&app, &ada, &id).await;
    assert_eq!(recorded["stage"], "installing", "{recorded}");
    assert_eq!(recorded["file"], "requirements.txt", "{recorded}");
    assert_eq!(recorded["line"], 3, "{recorded}");
    let message = recorded["message"].as_str().unwrap();
    assert!(message.contains("requests"), "{message}");
    assert!(
        message.contains("fastapi"),
        "names what is allowed: {message}"
    );

    deploy_fails(
        &app,
        &ada,
        &id,
        &[*main, ("requirements.txt", "fastapi==0.110\n")],
    )
    .await;
    let recorded = latest_error(&app, &ada, &id).await;
    assert_eq!(
        recorded["code"], "package_version_unavailable",
        "{recorded}"
    );
    assert_eq!(recorded["stage"], "installing", "{recorded}");
    assert_eq!(recorded["line"], 1, "{recorded}");
    let message = recorded["message"].as_str().unwrap();
    assert!(
        message.contains("0.110") && message.contains("0.92"),
        "says what is wanted and what is here: {message}"
    );
    assert!(message.contains("offline"), "{message}");

    let error = deploy_fails(
        &app,
        &ada,
        &id,
        &[
            *main,
            ("requirements.txt", "https://example.com/pkg.tar.gz\n"),
        ],
    )
    .await;
    assert_eq!(error["code"], "requirement_not_supported", "{error}");

    // What is here, at a version that is here, deploys.
    deploy_ok(
        &app,
        &ada,
        &id,
        &[*main, ("requirements.txt", "fastapi>=0.90,<1\nuvicorn\n")],
    )
    .await;
    assert_eq!(
        visit(&app, "/user/ada/app/deps/").await.body["message"],
        "hello"
    );

    let node = create_app(&app, &ada, json!({"name": "nodedeps", "runtime": "node"})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    deploy_fails(
        &app,
        &ada,
        &node,
        &[
            ("server.js", EXPRESS),
            (
                "package.json",
                r#"{"dependencies": {"express": "^4.17.0", "left-pad": "1.3.0"}}"#,
            ),
        ],
    )
    .await;
    let recorded = latest_error(&app, &ada, &node).await;
    assert_eq!(recorded["code"], "package_not_allowed", "{recorded}");
    assert_eq!(recorded["file"], "package.json", "{recorded}");
    assert!(
        recorded["message"].as_str().unwrap().contains("left-pad"),
        "{recorded}"
    );
}

#[tokio::test]
async fn an_app_that_exits_at_start_fails_starting_with_its_last_words() {
    let app = TestApp::spawn().await;
    let (_, ada) = app.signup("ada").await;
    let id = create_app(&app, &ada, json!({"name": "quits", "runtime": "node"})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    deploy_fails(
        &app,
        &ada,
        &id,
        &[(
            "server.js",
            "console.error('DATABASE_URL is not set, giving up');\nprocess.exit(3);\n",
        )],
    )
    .await;
    let recorded = latest_error(&app, &ada, &id).await;
    assert_eq!(recorded["stage"], "starting", "{recorded}");
    assert_eq!(recorded["code"], "app_exited", "{recorded}");
    let message = recorded["message"].as_str().unwrap();
    assert!(message.contains("exited with code 3"), "{message}");
    let logs = recorded["logs"].to_string();
    assert!(logs.contains("DATABASE_URL is not set"), "{logs}");

    // Nothing is live, and the app's address says so.
    assert_eq!(super::status(&app, &ada, &id).await["state"], "failed");
    let page = visit(&app, "/user/ada/app/quits/").await;
    proxy_page(&page, StatusCode::NOT_FOUND, "app_not_deployed");
}

#[tokio::test]
async fn an_app_on_the_wrong_port_or_on_none_fails_starting_and_says_which() {
    let app = TestApp::spawn_with(|c| c.apps.start_timeout_seconds = 3).await;
    let (_, ada) = app.signup("ada").await;
    let id = create_app(&app, &ada, json!({"name": "ports", "runtime": "node"})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let wrong_port =
        "require('http').createServer((q, s) => s.end('hi')).listen(8081, '127.0.0.1');\n";
    deploy_fails(&app, &ada, &id, &[("server.js", wrong_port)]).await;
    let recorded = latest_error(&app, &ada, &id).await;
    assert_eq!(recorded["stage"], "starting", "{recorded}");
    assert_eq!(recorded["code"], "start_timeout", "{recorded}");
    let message = recorded["message"].as_str().unwrap();
    assert!(
        message.contains("8081") && message.contains("PORT"),
        "names the port it used and the one to use: {message}"
    );

    let never = "console.log('thinking…');\nsetInterval(() => {}, 1000);\n";
    deploy_fails(&app, &ada, &id, &[("server.js", never)]).await;
    let recorded = latest_error(&app, &ada, &id).await;
    assert_eq!(recorded["code"], "start_timeout", "{recorded}");
    let message = recorded["message"].as_str().unwrap();
    assert!(
        message.contains("did not listen on port 8000 within 3 s"),
        "{message}"
    );
    assert!(
        recorded["logs"].to_string().contains("thinking"),
        "{recorded}"
    );

    // Python too: a server started at import is caught by the validation's time limit or the
    // start's; either way a clear failure, never a hung deploy.
    let py = create_app(&app, &ada, json!({"name": "pyport", "runtime": "python"})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let error = deploy_fails(
        &app,
        &ada,
        &py,
        &[(
            "main.py",
            "import time\n\n\ndef app(environ, start_response):\n    time.sleep(60)\n",
        )],
    )
    .await;
    let recorded = latest_error(&app, &ada, &py).await;
    assert_eq!(recorded["stage"], "starting", "{recorded} {error}");
    assert_eq!(recorded["code"], "start_timeout", "{recorded}");
    assert!(
        recorded["message"]
            .as_str()
            .unwrap()
            .contains("answered no HTTP request within 3 s"),
        "{recorded}"
    );
}
