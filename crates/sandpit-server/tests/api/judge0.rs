//! The Judge0-compatible API's own server-side behaviour (its client's view is
//! scripts/compat/clients.py, with Judge0's SDK): a waited-for submission, the fields Judge0's
//! clients parse, repeated runs, and a callback PUT to an allowlisted host.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Answer, TestApp};

async fn submit(app: &TestApp, token: &str, query: &str, body: Value) -> Answer {
    app.send(
        app.client
            .post(app.url(&format!("/judge0/submissions{query}")))
            .header("x-auth-token", token)
            .json(&body),
    )
    .await
}

#[tokio::test]
async fn a_waited_for_submission_answers_with_judge0s_fields() {
    let app = TestApp::spawn().await;
    let (_, token) = app.signup("judge").await;
    let a = submit(
        &app,
        &token,
        "?wait=true&fields=*",
        json!({"source_code": "print(input())", "language_id": 71, "stdin": "hi",
               "expected_output": "hi", "number_of_runs": 3}),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let b = &a.body;
    assert_eq!(
        b["status"],
        json!({"id": 3, "description": "Accepted"}),
        "{b}"
    );
    assert_eq!(
        (b["status_id"].clone(), b["stdout"].clone()),
        (json!(3), json!("hi\n"))
    );
    assert_eq!(b["number_of_runs"], 3);
    assert_eq!(b["language"]["id"], 71);
    assert!(
        b["language"]["name"]
            .as_str()
            .unwrap()
            .starts_with("Python (3."),
        "{b}"
    );
    // Times are strings of seconds, timestamps are Judge0's (milliseconds, Z).
    let time: f64 = b["time"].as_str().unwrap().parse().unwrap();
    assert!(time >= 0.0, "{b}");
    let created = b["created_at"].as_str().unwrap();
    assert!(created.ends_with('Z') && created.len() == 24, "{created}");
    let token_id = b["token"].as_str().unwrap();
    assert_eq!(
        uuid::Uuid::parse_str(token_id).unwrap().get_version_num(),
        4
    );
    // The defaults limits it ran under are reported.
    let runs = &app.state.config.runs.default_limits;
    assert_eq!(b["memory_limit"], runs.memory_mb << 10);

    // Read back by token, base64-encoded, with only the fields asked for.
    let again = app
        .send(
            app.client
                .get(app.url(&format!(
                    "/judge0/submissions/{token_id}?base64_encoded=true&fields=stdout,status_id"
                )))
                .bearer_auth(&token),
        )
        .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(again.body, json!({"stdout": "aGkK", "status_id": 3}));
}

#[tokio::test]
async fn a_finished_submission_is_put_to_an_allowed_callback_host() {
    // A stand-in for the submitter's server: records the first PUT it gets.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (got, mut received) = tokio::sync::mpsc::channel::<Value>(1);
    let hook = axum::Router::new().route(
        "/hook",
        axum::routing::put(move |axum::Json(body): axum::Json<Value>| {
            let got = got.clone();
            async move {
                let _ = got.send(body).await;
                StatusCode::NO_CONTENT
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, hook).await });

    let app = TestApp::spawn_with(|c| c.judge0.callback_hosts = vec!["127.0.0.1".into()]).await;
    let (_, token) = app.signup("caller").await;
    let refused = submit(
        &app,
        &token,
        "",
        json!({"source_code": "echo hi", "language_id": 46,
               "callback_url": format!("http://localhost:{port}/hook")}),
    )
    .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused.body["callback_url"][0]
            .as_str()
            .unwrap()
            .contains("localhost")
    );

    let a = submit(
        &app,
        &token,
        "",
        json!({"source_code": "echo called back", "language_id": 46,
               "callback_url": format!("http://127.0.0.1:{port}/hook")}),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let body = tokio::time::timeout(Duration::from_secs(60), received.recv())
        .await
        .expect("the callback came")
        .unwrap();
    assert_eq!(body["token"], a.body["token"]);
    assert_eq!(body["status"]["id"], 3, "{body}");
    assert_eq!(body["stdout"], "called back\n");
}
