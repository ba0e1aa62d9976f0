//! An app's log: the last lines as JSON, and followed as server-sent events that resume after
//! the last one seen (`Last-Event-ID`).

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{FASTAPI, PATIENCE, launched, visit};
use crate::helpers::TestApp;

/// A followed log: reads its events one at a time.
struct Follow {
    response: reqwest::Response,
    buffer: String,
}

impl Follow {
    async fn open(app: &TestApp, token: &str, id: &str, last_event: Option<u64>) -> Self {
        let mut req = app
            .client
            .get(app.url(&format!("/api/v1/apps/{id}/logs?follow=true&tail=1000")))
            .bearer_auth(token);
        if let Some(seq) = last_event {
            req = req.header("last-event-id", seq.to_string());
        }
        let response = req.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Self {
            response,
            buffer: String::new(),
        }
    }

    /// The next `line` event: its id and its line.
    async fn next(&mut self) -> (u64, Value) {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let field = |name: &str| {
                    block
                        .lines()
                        .find_map(|l| l.strip_prefix(name))
                        .map(|v| v.trim_start().to_owned())
                };
                // Keep-alive comments carry no event.
                let (Some(id), Some(data)) = (field("id:"), field("data:")) else {
                    continue;
                };
                assert_eq!(field("event:").as_deref(), Some("line"), "{block}");
                let line: Value = serde_json::from_str(&data).unwrap();
                let id: u64 = id.parse().unwrap();
                assert_eq!(line["seq"], id, "{block}");
                return (id, line);
            }
            let chunk = tokio::time::timeout(PATIENCE, self.response.chunk())
                .await
                .expect("a log event in time")
                .unwrap()
                .expect("the stream stays open");
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// Reads events until the app's own line `text`; returns every event read.
    async fn until(&mut self, text: &str) -> Vec<(u64, Value)> {
        let mut read = Vec::new();
        loop {
            let event = self.next().await;
            let done = event.1["stream"] == "stdout" && event.1["text"] == text;
            read.push(event);
            if done {
                return read;
            }
        }
    }
}

fn texts(events: &[(u64, Value)]) -> Vec<&str> {
    events
        .iter()
        .filter(|(_, l)| {
            l["stream"] == "stdout" && l["text"].as_str().unwrap().starts_with("note-")
        })
        .map(|(_, l)| l["text"].as_str().unwrap())
        .collect()
}

async fn say(app: &TestApp, line: &str) {
    let said = visit(app, &format!("/user/ada/app/talk/log?line={line}")).await;
    assert_eq!(said.body, json!({"logged": line}), "{}", said.body);
}

#[tokio::test]
async fn logs_are_tailed_as_json_and_followed_as_events_that_resume() {
    let app = TestApp::spawn().await;
    let (_, ada) = app.signup("ada").await;
    let id = launched(
        &app,
        &ada,
        json!({"name": "talk", "runtime": "python"}),
        &[("main.py", FASTAPI)],
    )
    .await;
    for n in ["note-1", "note-2", "note-3"] {
        say(&app, n).await;
    }

    let all = app
        .get(&format!("/api/v1/apps/{id}/logs"), Some(&ada))
        .await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.body);
    assert_eq!(all.body["dropped"], 0, "{}", all.body);
    let lines = all.body["lines"].as_array().unwrap();
    let seqs: Vec<u64> = lines.iter().map(|l| l["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let has = |stream: &str, text: &str| {
        lines
            .iter()
            .any(|l| l["stream"] == stream && l["text"].as_str().unwrap().contains(text))
    };
    assert!(has("platform", "deploying version 1"), "{}", all.body);
    assert!(has("platform", "version 1 is live"), "{}", all.body);
    assert!(has("stdout", "note-2"), "{}", all.body);
    // uvicorn's own lines are the app's stderr.
    assert!(has("stderr", "Uvicorn running"), "{}", all.body);

    let tail = app
        .get(&format!("/api/v1/apps/{id}/logs?tail=2"), Some(&ada))
        .await;
    let tail_lines = tail.body["lines"].as_array().unwrap();
    assert_eq!(tail_lines.len(), 2, "{}", tail.body);
    // The newest two, consecutive. (Not necessarily the same newest as above: uvicorn may write
    // its access-log line for the last request after answering it.)
    let (a, b) = (
        tail_lines[0]["seq"].as_u64().unwrap(),
        tail_lines[1]["seq"].as_u64().unwrap(),
    );
    assert!(
        b >= *seqs.last().unwrap() && a + 1 == b,
        "the newest: {}",
        tail.body
    );

    // Followed: the backlog first, then lines as they are written.
    let mut follow = Follow::open(&app, &ada, &id, None).await;
    let backlog = follow.until("note-3").await;
    assert_eq!(texts(&backlog), ["note-1", "note-2", "note-3"]);
    let third = backlog.last().unwrap().0;
    say(&app, "note-4").await;
    let live = follow.until("note-4").await;
    assert_eq!(texts(&live), ["note-4"]);
    drop(follow);

    // Written while nobody followed, then picked up after the last event seen.
    say(&app, "note-5").await;
    let mut resumed = Follow::open(&app, &ada, &id, Some(third)).await;
    let caught_up = resumed.until("note-5").await;
    assert_eq!(texts(&caught_up), ["note-4", "note-5"]);
    assert!(
        caught_up.iter().all(|(seq, _)| *seq > third),
        "{caught_up:?}"
    );
    drop(resumed);

    // A Last-Event-ID that is no line's, another user, no user: the API's envelope.
    let bad = app
        .send(
            app.client
                .get(app.url(&format!("/api/v1/apps/{id}/logs?follow=true")))
                .bearer_auth(&ada)
                .header("last-event-id", "yesterday"),
        )
        .await;
    bad.expect_error(StatusCode::BAD_REQUEST, "bad_request");
    let (_, bob) = app.signup("bob").await;
    app.get(&format!("/api/v1/apps/{id}/logs"), Some(&bob))
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    app.get(&format!("/api/v1/apps/{id}/logs?follow=true"), None)
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
    app.get(&format!("/api/v1/apps/{id}/logs?tail=many"), Some(&ada))
        .await
        .expect_error(StatusCode::BAD_REQUEST, "bad_request");
}
