//! The jobs API over real HTTP: asynchronous runs are durable jobs (their results survive a
//! restart and any server sharing the store answers for them), a job's events as server-sent
//! events resumed with `Last-Event-ID`, cancelling a running job, and the refusals.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::TestApp;

const PATIENCE: Duration = Duration::from_secs(60);

async fn start_run(app: &TestApp, token: &str, script: &str) -> String {
    let a = app
        .post(
            "/api/v1/runs?wait=false",
            Some(token),
            json!({"runtime": "bash", "files": [{"name": "a.sh", "content": script}]}),
        )
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.body);
    assert_eq!(a.body["state"], "pending");
    assert_eq!(a.body["runtime"], "bash");
    a.body["id"].as_str().unwrap().to_owned()
}

async fn job_in(app: &TestApp, token: &str, id: &str, states: &[&str]) -> Value {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let a = app.get(&format!("/api/v1/jobs/{id}"), Some(token)).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        if states.iter().any(|s| a.body["state"] == *s) {
            return a.body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "job still {}",
            a.body
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Reads a server-sent event stream to its end: `(id, event, data)` of each event.
async fn read_events(
    app: &TestApp,
    token: &str,
    id: &str,
    last_event_id: Option<&str>,
) -> Vec<(String, String, Value)> {
    let mut req = app
        .client
        .get(app.url(&format!("/api/v1/jobs/{id}/events")))
        .bearer_auth(token);
    if let Some(last) = last_event_id {
        req = req.header("last-event-id", last);
    }
    let mut res = req.send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let mut text = String::new();
    while let Some(chunk) = tokio::time::timeout(PATIENCE, res.chunk())
        .await
        .expect("the stream ends after the job's last state")
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
            let data = field("data")?;
            Some((
                field("id").unwrap_or_default(),
                field("event").unwrap_or_default(),
                serde_json::from_str(&data).unwrap(),
            ))
        })
        .collect()
}

#[tokio::test]
async fn an_async_run_is_a_job_with_events_that_resume() {
    let app = TestApp::spawn().await;
    let (_, alice) = app.signup("alice").await;
    let (_, bob) = app.signup("bob").await;
    let id = start_run(&app, &alice, "echo from a job").await;

    let events = read_events(&app, &alice, &id, None).await;
    let names: Vec<(&str, &str)> = events
        .iter()
        .map(|(_, event, data)| (event.as_str(), data["data"]["state"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(
        names,
        [
            ("state", "queued"),
            ("state", "running"),
            ("result", ""),
            ("state", "completed")
        ]
    );
    let ids: Vec<&str> = events.iter().map(|(id, _, _)| id.as_str()).collect();
    assert_eq!(ids, ["1", "2", "3", "4"]);
    assert_eq!(
        events[2].2["data"]["result"]["run"]["stdout"],
        "from a job\n"
    );
    // A client that reconnects after event 2 gets the rest, and a finished stream ends.
    let resumed = read_events(&app, &alice, &id, Some("2")).await;
    assert_eq!(
        resumed
            .iter()
            .map(|(id, _, _)| id.as_str())
            .collect::<Vec<_>>(),
        ["3", "4"]
    );
    assert!(read_events(&app, &alice, &id, Some("4")).await.is_empty());

    let job = job_in(&app, &alice, &id, &["completed"]).await;
    assert_eq!(
        (job["kind"].as_str(), job["attempts"].as_u64()),
        (Some("run"), Some(1))
    );
    assert_eq!(job["progress"], 100);
    assert_eq!(job["result"]["run"]["stdout"], "from a job\n");
    let listed = app
        .get("/api/v1/jobs?kind=run&state=completed", Some(&alice))
        .await;
    assert_eq!(listed.body["jobs"][0]["id"], id.as_str(), "{}", listed.body);

    // Another user sees none of it.
    for path in [
        format!("/api/v1/jobs/{id}"),
        format!("/api/v1/jobs/{id}/events"),
        format!("/api/v1/runs/{id}"),
    ] {
        app.get(&path, Some(&bob))
            .await
            .expect_error(StatusCode::NOT_FOUND, "not_found");
    }
    app.post(&format!("/api/v1/jobs/{id}/cancel"), Some(&bob), json!({}))
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(
        app.get("/api/v1/jobs", Some(&bob)).await.body["jobs"],
        json!([])
    );

    // The result outlives the server.
    let app = app.restart().await;
    let a = app.get(&format!("/api/v1/runs/{id}"), Some(&alice)).await;
    assert_eq!(a.body["state"], "done", "{}", a.body);
    assert_eq!(a.body["run"]["stdout"], "from a job\n");
}

#[tokio::test]
async fn any_server_on_the_store_answers_for_a_run() {
    let a = TestApp::spawn_postgres().await;
    let url = a.state.config.database.url.clone();
    let b = TestApp::spawn_with(|c| c.database.url = url).await;
    let (_, alice) = a.signup("alice").await;
    let id = start_run(&a, &alice, "echo shared").await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let done = loop {
        let got = b.get(&format!("/api/v1/runs/{id}"), Some(&alice)).await;
        assert_eq!(got.status, StatusCode::OK, "{}", got.body);
        if got.body["state"] == "done" {
            break got;
        }
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(done.body["run"]["stdout"], "shared\n");
    // And its event stream, from the other server.
    let events = read_events(&b, &alice, &id, None).await;
    assert_eq!(events.last().unwrap().2["data"]["state"], "completed");
}

#[tokio::test]
async fn cancelling_stops_a_running_job() {
    let app = TestApp::spawn().await;
    let (_, alice) = app.signup("alice").await;
    let id = start_run(&app, &alice, "sleep 30; echo never").await;
    job_in(&app, &alice, &id, &["running"]).await;
    let cancel = format!("/api/v1/jobs/{id}/cancel");
    let a = app.post(&cancel, Some(&alice), json!({})).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(a.body["cancel_requested"] == true || a.body["state"] == "cancelled");
    let job = job_in(&app, &alice, &id, &["cancelled", "completed", "failed"]).await;
    assert_eq!(job["state"], "cancelled", "{job}");
    let run = app.get(&format!("/api/v1/runs/{id}"), Some(&alice)).await;
    assert_eq!(run.body["state"], "done");
    assert_eq!(run.body["run"]["status"], "internal_error");
    assert!(
        run.body["run"]["stderr"]
            .as_str()
            .unwrap()
            .contains("cancelled")
    );
    let again = app
        .post(&cancel, Some(&alice), json!({}))
        .await
        .expect_error(StatusCode::CONFLICT, "job_finished");
    assert!(again.contains("cancelled"), "{again}");
}

#[tokio::test]
async fn bad_job_requests_are_refused_clearly() {
    let app = TestApp::spawn().await;
    let (_, alice) = app.signup("alice").await;
    app.get("/api/v1/jobs?limit=0", Some(&alice))
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    app.get("/api/v1/jobs?state=sleeping", Some(&alice))
        .await
        .expect_error(StatusCode::BAD_REQUEST, "bad_request");
    app.get("/api/v1/jobs/not-a-uuid", Some(&alice))
        .await
        .expect_error(StatusCode::BAD_REQUEST, "bad_request");
    app.get(
        &format!("/api/v1/jobs/{}", uuid::Uuid::now_v7()),
        Some(&alice),
    )
    .await
    .expect_error(StatusCode::NOT_FOUND, "not_found");
    app.get("/api/v1/jobs", None)
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
    let id = start_run(&app, &alice, "true").await;
    app.send(
        app.client
            .get(app.url(&format!("/api/v1/jobs/{id}/events")))
            .bearer_auth(&alice)
            .header("last-event-id", "yesterday"),
    )
    .await
    .expect_error(StatusCode::BAD_REQUEST, "bad_request");
}
