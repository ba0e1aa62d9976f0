//! A deployed app misbehaving while it runs: crashing in a loop, flooding its log, answering
//! too slowly, reaching for the server or the network. Each is a clear page or a visible
//! state, and the server stays well.

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{FASTAPI, browse, eventually, launched, proxy_page, status, visit};
use crate::helpers::TestApp;

const CRASHY: &str = r#"const http = require('http');

http.createServer((req, res) => {
  if (req.url === '/crash') {
    console.error('about to crash');
    process.exit(7);
  }
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ pid: process.pid }));
}).listen(process.env.PORT, '127.0.0.1');
"#;

async fn log_text(app: &TestApp, token: &str, id: &str) -> String {
    let a = app
        .get(&format!("/api/v1/apps/{id}/logs?tail=1000"), Some(token))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    a.body["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            format!(
                "[{}] {}",
                l["stream"].as_str().unwrap(),
                l["text"].as_str().unwrap()
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn an_app_that_keeps_crashing_is_restarted_with_backoff_and_says_so() {
    let app = TestApp::spawn().await;
    let (_, ada) = app.signup("ada").await;
    let id = launched(
        &app,
        &ada,
        json!({"name": "crashy", "runtime": "node"}),
        &[("server.js", CRASHY)],
    )
    .await;
    let mut pids = Vec::new();
    for round in 1..=3u32 {
        let up = visit(&app, "/user/ada/app/crashy/").await;
        assert_eq!(up.status, StatusCode::OK, "round {round}: {}", up.body);
        pids.push(up.body["pid"].clone());
        // The request that kills it gets the proxy's page with the reason, not a bare 502.
        let crash = visit(&app, "/user/ada/app/crashy/crash").await;
        let text = proxy_page(&crash, StatusCode::BAD_GATEWAY, "app_error");
        assert!(text.contains("closed the connection"), "{text}");
        let s = eventually("the restart to be counted", || async {
            let s = status(&app, &ada, &id).await;
            (s["restarts"].as_u64() == Some(u64::from(round))).then_some(s)
        })
        .await;
        assert!(
            ["crashed", "starting", "running"].contains(&s["state"].as_str().unwrap()),
            "{s}"
        );
        // Each restart waits twice as long as the one before.
        let wait = 1u64 << (round - 1);
        eventually("the platform's restart line", || async {
            let logs = log_text(&app, &ada, &id).await;
            logs.contains(&format!(
                "[platform] the app exited with code 7; restarting in {wait} s"
            ))
            .then_some(())
        })
        .await;
        // While it is down, a browser is told it is restarting.
        let page = browse(&app, "/user/ada/app/crashy/").await;
        if page.status != StatusCode::OK {
            let text = proxy_page(&page, StatusCode::SERVICE_UNAVAILABLE, "app_restarting");
            assert!(text.contains("restart"), "{text}");
        }
        // A program waits for the restart.
        let back = visit(&app, "/user/ada/app/crashy/").await;
        assert_eq!(back.status, StatusCode::OK, "{}", back.body);
        assert_eq!(status(&app, &ada, &id).await["state"], "running");
    }
    let logs = log_text(&app, &ada, &id).await;
    assert!(logs.contains("[stderr] about to crash"), "{logs}");
    // A new process each time.
    pids.dedup();
    assert_eq!(pids.len(), 3, "{pids:?}");
}

const FLOOD: &str = r#"import sys

from fastapi import FastAPI

app = FastAPI()


@app.get("/")
def root():
    return {"ok": True}


@app.get("/flood")
def flood(lines: int):
    for i in range(lines):
        print(f"spam {i} " + "x" * 200)
    sys.stdout.flush()
    return {"printed": lines}
"#;

#[tokio::test]
async fn an_app_flooding_its_log_has_lines_dropped_and_the_server_stays_responsive() {
    let app = TestApp::spawn_with(|c| c.apps.log_lines = 500).await;
    let (_, ada) = app.signup("ada").await;
    let id = launched(
        &app,
        &ada,
        json!({"name": "noisy", "runtime": "python"}),
        &[("main.py", FLOOD)],
    )
    .await;
    let flood = visit(&app, "/user/ada/app/noisy/flood?lines=200000").await;
    assert_eq!(flood.status, StatusCode::OK, "{}", flood.body);
    // While the supervisor works through the flood, the platform and the app answer.
    for _ in 0..5 {
        assert_eq!(app.get("/healthz", None).await.status, StatusCode::OK);
        assert_eq!(
            visit(&app, "/user/ada/app/noisy/").await.body,
            json!({"ok": true})
        );
    }
    let logs = eventually("the flood to be counted", || async {
        let logs = app
            .get(&format!("/api/v1/apps/{id}/logs?tail=10000"), Some(&ada))
            .await;
        (logs.body["dropped"].as_u64().unwrap_or(0) > 100_000).then_some(logs.body)
    })
    .await;
    let lines = logs["lines"].as_array().unwrap();
    assert!(lines.len() <= 500, "kept {} lines", lines.len());
    // What is kept is the newest, and the platform's own lines are never rate-limited.
    assert!(
        lines
            .iter()
            .any(|l| l["text"].as_str().unwrap().starts_with("spam")),
        "{logs}"
    );
    assert_eq!(status(&app, &ada, &id).await["state"], "running");
}

#[tokio::test]
async fn a_slow_answer_gets_the_proxys_timeout_page_with_the_reason() {
    let app = TestApp::spawn_with(|c| c.apps.response_timeout_seconds = 2).await;
    let (_, ada) = app.signup("ada").await;
    launched(
        &app,
        &ada,
        json!({"name": "slow", "runtime": "python"}),
        &[("main.py", FASTAPI)],
    )
    .await;
    let quick = visit(&app, "/user/ada/app/slow/slow?seconds=0.1").await;
    assert_eq!(quick.body, json!({"slept": 0.1}), "{}", quick.body);
    let late = visit(&app, "/user/ada/app/slow/slow?seconds=10").await;
    let text = proxy_page(&late, StatusCode::GATEWAY_TIMEOUT, "app_error");
    assert!(text.contains("no response within 2s"), "{text}");
    // The app still answers the next request.
    assert_eq!(
        visit(&app, "/user/ada/app/slow/").await.body,
        json!({"message": "hello"})
    );
}

fn reached(answer: &Value) -> (bool, String) {
    (
        answer["reached"].as_bool().unwrap(),
        answer["error"].as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test]
async fn an_app_cannot_reach_the_server_another_app_or_the_network() {
    let app = TestApp::spawn().await;
    let (_, ada) = app.signup("ada").await;
    let port = app.base.rsplit(':').next().unwrap().to_owned();
    launched(
        &app,
        &ada,
        json!({"name": "prying", "runtime": "python"}),
        &[("main.py", FASTAPI)],
    )
    .await;
    launched(
        &app,
        &ada,
        json!({"name": "neighbour", "runtime": "static"}),
        &[("index.html", "neighbour\n")],
    )
    .await;
    // From outside, both answer.
    assert_eq!(
        visit(&app, "/user/ada/app/neighbour/").await.body,
        "neighbour\n"
    );
    // Its own port, from inside, answers: the probe is real.
    let own = visit(
        &app,
        "/user/ada/app/prying/reach?url=http://127.0.0.1:8000/",
    )
    .await;
    assert!(reached(&own.body).0, "{}", own.body);
    // …and it is the app itself there, not its neighbour (each has a loopback of its own).
    assert!(
        own.body["body"].as_str().unwrap().contains("hello"),
        "{}",
        own.body
    );

    for target in [
        // The platform's own port, as if it were on the app's loopback.
        format!("http://127.0.0.1:{port}/healthz"),
        // A private network address and a public one.
        "http://10.0.0.1/".to_owned(),
        "http://192.168.1.1/".to_owned(),
        "http://1.1.1.1/".to_owned(),
        // A name (no resolver either).
        "http://example.com/".to_owned(),
    ] {
        let answer = app
            .send(
                app.client
                    .get(app.url("/user/ada/app/prying/reach"))
                    .query(&[("url", &target)]),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        let (ok, error) = reached(&answer.body);
        assert!(!ok, "{target} was reached: {}", answer.body);
        assert!(
            [
                "Connection refused",
                "Network is unreachable",
                "Name or service",
                "resolution"
            ]
            .iter()
            .any(|e| error.contains(e)),
            "{target}: {error}"
        );
    }
}
