//! An app's life after its first deploy: redeployed with no failed request, idle-stopped and
//! woken, deleted when idle for long unless pinned, rolled back, stopped, started, deleted.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{
    browse, create_app, deploy_ok, eventually, finished, launched, proxy_page, status, visit,
};
use crate::helpers::TestApp;

fn versioned(n: u32) -> String {
    format!(
        "from fastapi import FastAPI\n\napp = FastAPI()\n\n\n@app.get(\"/\")\ndef root():\n    \
         return {{\"version\": {n}}}\n"
    )
}

/// What one client loop saw: the versions answered, in order, and every failure.
#[derive(Default)]
struct Seen {
    versions: Vec<i64>,
    failures: Vec<String>,
}

#[tokio::test]
async fn a_redeploy_moves_traffic_without_a_failed_request() {
    let app = TestApp::spawn().await;
    let (_, ada) = app.signup("ada").await;
    let id = launched(
        &app,
        &ada,
        json!({"name": "live", "runtime": "python"}),
        &[("main.py", &versioned(1))],
    )
    .await;

    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let url = app.url("/user/ada/app/live/");
    // A few clients, each sending one request after another the whole time.
    let loops: Vec<_> = (0..4)
        .map(|_| {
            let (stop, answered, url) = (stop.clone(), answered.clone(), url.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let mut seen = Seen::default();
                while !stop.load(Ordering::SeqCst) {
                    match client.get(&url).send().await {
                        Ok(r) if r.status().is_success() => match r.json::<Value>().await {
                            Ok(v) => seen.versions.push(v["version"].as_i64().unwrap_or(-1)),
                            Err(e) => seen.failures.push(format!("body: {e}")),
                        },
                        Ok(r) => seen.failures.push(format!(
                            "{}: {}",
                            r.status(),
                            r.text().await.unwrap_or_default()
                        )),
                        Err(e) => seen.failures.push(format!("connection: {e}")),
                    }
                    answered.fetch_add(1, Ordering::SeqCst);
                }
                seen
            })
        })
        .collect();
    let at_least = |n: usize| {
        let answered = answered.clone();
        async move {
            eventually("the clients' requests", || {
                let answered = answered.clone();
                async move { (answered.load(Ordering::SeqCst) >= n).then_some(()) }
            })
            .await;
        }
    };
    at_least(20).await;

    deploy_ok(&app, &ada, &id, &[("main.py", &versioned(2))]).await;
    // The old instance drains and stops meanwhile; keep going well past that.
    let after = answered.load(Ordering::SeqCst);
    at_least(after + 100).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    at_least(answered.load(Ordering::SeqCst) + 20).await;
    stop.store(true, Ordering::SeqCst);

    let mut total = 0;
    for each in loops {
        let seen = each.await.unwrap();
        assert!(
            seen.failures.is_empty(),
            "failed requests: {:?}",
            seen.failures
        );
        total += seen.versions.len();
        assert_eq!(seen.versions.first(), Some(&1), "{:?}", seen.versions);
        assert_eq!(seen.versions.last(), Some(&2), "{:?}", seen.versions);
        // Once a client got version 2, every later answer is version 2.
        let switched = seen.versions.iter().position(|v| *v == 2).unwrap();
        assert!(
            seen.versions[switched..].iter().all(|v| *v == 2),
            "{:?}",
            seen.versions
        );
        assert!(seen.versions[..switched].iter().all(|v| *v == 1));
    }
    assert!(total > 100, "{total} answers");
    let s = status(&app, &ada, &id).await;
    assert_eq!(s["live_version"], 2, "{s}");
    assert_eq!(s["serving_version"], 2, "{s}");
}

#[tokio::test]
async fn an_idle_app_is_stopped_and_its_next_request_wakes_it() {
    let app = TestApp::spawn().await;
    let (_, ada) = app.signup("ada").await;
    let id = launched(
        &app,
        &ada,
        json!({"name": "sleepy", "runtime": "python"}),
        &[("main.py", &versioned(1))],
    )
    .await;
    assert_eq!(
        visit(&app, "/user/ada/app/sleepy/").await.body["version"],
        1
    );

    // A sweep now stops nothing: it just had a request.
    app.state.apps.sweep(Instant::now(), Utc::now()).await;
    assert_eq!(status(&app, &ada, &id).await["state"], "running");

    app.state
        .apps
        .sweep(Instant::now() + Duration::from_secs(31 * 60), Utc::now())
        .await;
    let s = status(&app, &ada, &id).await;
    assert_eq!(s["state"], "idle", "{s}");
    assert_eq!(s["serving_version"], Value::Null, "{s}");
    assert_eq!(s["live_version"], 1, "{s}");
    let logs = app
        .get(&format!("/api/v1/apps/{id}/logs"), Some(&ada))
        .await;
    assert!(
        logs.body
            .to_string()
            .contains("stopped after 30 minutes without a request"),
        "{}",
        logs.body
    );

    // A browser is told it is starting (and the page reloads itself)…
    let page = browse(&app, "/user/ada/app/sleepy/").await;
    let text = proxy_page(&page, StatusCode::SERVICE_UNAVAILABLE, "app_starting");
    assert!(
        page.headers.contains_key("retry-after"),
        "{:?}",
        page.headers
    );
    assert!(text.contains("Starting the app"), "{text}");
    assert!(text.contains("http-equiv=\"refresh\""), "{text}");
    // …a program's request waits for it and gets its answer.
    let woken = visit(&app, "/user/ada/app/sleepy/").await;
    assert_eq!(woken.status, StatusCode::OK, "{}", woken.body);
    assert_eq!(woken.body, json!({"version": 1}));
    let s = status(&app, &ada, &id).await;
    assert_eq!(s["state"], "running", "{s}");
    assert_eq!(s["serving_version"], 1, "{s}");
    let logs = app
        .get(&format!("/api/v1/apps/{id}/logs"), Some(&ada))
        .await;
    let log = logs.body.to_string();
    assert!(log.contains("woken by a request"), "{log}");
    // Said after it answers again, for whoever follows the log.
    let woken_at = log.find("woken by a request").unwrap();
    assert!(log[woken_at..].contains("version 1 is live again"), "{log}");

    // Idle again, then a program comes first: it waits and is answered.
    app.state
        .apps
        .sweep(Instant::now() + Duration::from_secs(31 * 60), Utc::now())
        .await;
    assert_eq!(status(&app, &ada, &id).await["state"], "idle");
    assert_eq!(
        visit(&app, "/user/ada/app/sleepy/").await.body["version"],
        1
    );
}

#[tokio::test]
async fn apps_idle_for_a_day_are_deleted_unless_pinned() {
    let app = TestApp::spawn().await;
    let (_, ada) = app.signup("ada").await;
    let site = [("index.html", "<h1>kept</h1>\n")];
    let pinned = launched(
        &app,
        &ada,
        json!({"name": "kept", "runtime": "static", "pinned": true}),
        &site,
    )
    .await;
    let doomed = launched(
        &app,
        &ada,
        json!({"name": "doomed", "runtime": "static"}),
        &[("index.html", "<h1>doomed</h1>\n")],
    )
    .await;
    assert_eq!(
        visit(&app, "/user/ada/app/kept/").await.status,
        StatusCode::OK
    );
    assert_eq!(
        visit(&app, "/user/ada/app/doomed/").await.status,
        StatusCode::OK
    );

    // An hour short of the limit, nothing is deleted.
    app.state
        .apps
        .sweep(Instant::now(), Utc::now() + chrono::TimeDelta::hours(23))
        .await;
    assert_eq!(
        app.get(&format!("/api/v1/apps/{doomed}"), Some(&ada))
            .await
            .status,
        StatusCode::OK
    );

    let later = Instant::now() + Duration::from_secs(25 * 3600);
    app.state
        .apps
        .sweep(later, Utc::now() + chrono::TimeDelta::hours(25))
        .await;
    app.get(&format!("/api/v1/apps/{doomed}"), Some(&ada))
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    proxy_page(
        &visit(&app, "/user/ada/app/doomed/").await,
        StatusCode::NOT_FOUND,
        "app_not_found",
    );
    let list = app.get("/api/v1/apps", Some(&ada)).await;
    let names: Vec<&str> = list.body["apps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["kept"]);

    // The pinned one was only stopped, and wakes.
    assert_eq!(status(&app, &ada, &pinned).await["state"], "idle");
    let woken = visit(&app, "/user/ada/app/kept/").await;
    assert_eq!(woken.status, StatusCode::OK, "{}", woken.body);
    assert_eq!(woken.body, "<h1>kept</h1>\n");
}

fn site(text: &str) -> [(&'static str, String); 1] {
    [("index.html", format!("{text}\n"))]
}

async fn deploy_site(app: &TestApp, token: &str, id: &str, text: &str) {
    let files = site(text);
    deploy_ok(app, token, id, &[(files[0].0, files[0].1.as_str())]).await;
}

async fn rollback(app: &TestApp, token: &str, id: &str, body: Value) -> crate::helpers::Answer {
    app.post(&format!("/api/v1/apps/{id}/rollback"), Some(token), body)
        .await
}

#[tokio::test]
async fn a_rollback_goes_back_to_the_previous_version_or_a_named_one() {
    let app = TestApp::spawn().await;
    let (_, ada) = app.signup("ada").await;
    let id = create_app(&app, &ada, json!({"name": "site", "runtime": "static"})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    rollback(&app, &ada, &id, json!({}))
        .await
        .expect_error(StatusCode::CONFLICT, "no_previous_version");
    deploy_site(&app, &ada, &id, "one").await;
    rollback(&app, &ada, &id, json!({}))
        .await
        .expect_error(StatusCode::CONFLICT, "no_previous_version");
    deploy_site(&app, &ada, &id, "two").await;
    assert_eq!(visit(&app, "/user/ada/app/site/").await.body, "two\n");

    let back = rollback(&app, &ada, &id, json!({})).await;
    assert_eq!(back.status, StatusCode::ACCEPTED, "{}", back.body);
    assert_eq!(back.body["version"]["version"], 3, "{}", back.body);
    assert_eq!(back.body["version"]["source"], "version:1", "{}", back.body);
    let job = finished(&app, &ada, back.body["job_id"].as_str().unwrap()).await;
    assert_eq!(job["state"], "completed", "{job}");
    assert_eq!(visit(&app, "/user/ada/app/site/").await.body, "one\n");

    // With no body at all, too: the one live before the current (2).
    let back = app
        .send(
            app.client
                .post(app.url(&format!("/api/v1/apps/{id}/rollback")))
                .bearer_auth(&ada),
        )
        .await;
    assert_eq!(back.status, StatusCode::ACCEPTED, "{}", back.body);
    assert_eq!(back.body["version"]["source"], "version:2", "{}", back.body);
    finished(&app, &ada, back.body["job_id"].as_str().unwrap()).await;
    assert_eq!(visit(&app, "/user/ada/app/site/").await.body, "two\n");

    let named = rollback(&app, &ada, &id, json!({"version": 1})).await;
    assert_eq!(named.status, StatusCode::ACCEPTED, "{}", named.body);
    assert_eq!(
        named.body["version"]["source"], "version:1",
        "{}",
        named.body
    );
    finished(&app, &ada, named.body["job_id"].as_str().unwrap()).await;
    assert_eq!(visit(&app, "/user/ada/app/site/").await.body, "one\n");
    rollback(&app, &ada, &id, json!({"version": 99}))
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");

    let versions = app
        .get(&format!("/api/v1/apps/{id}/versions"), Some(&ada))
        .await;
    let states: Vec<(i64, &str)> = versions.body["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["version"].as_i64().unwrap(), v["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        states,
        [
            (5, "live"),
            (4, "superseded"),
            (3, "superseded"),
            (2, "superseded"),
            (1, "superseded")
        ]
    );

    // Another user cannot roll it back.
    let (_, bob) = app.signup("bob").await;
    rollback(&app, &bob, &id, json!({}))
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn a_stopped_started_and_deleted_app_each_answer_a_clear_page() {
    let app = TestApp::spawn().await;
    let (_, ada) = app.signup("ada").await;
    let files = site("up");
    let id = launched(
        &app,
        &ada,
        json!({"name": "site", "runtime": "static"}),
        &[(files[0].0, files[0].1.as_str())],
    )
    .await;
    assert_eq!(visit(&app, "/user/ada/app/site/").await.body, "up\n");

    let stop = app
        .post(&format!("/api/v1/apps/{id}/stop"), Some(&ada), json!({}))
        .await;
    assert_eq!(stop.status, StatusCode::NO_CONTENT, "{}", stop.body);
    assert_eq!(status(&app, &ada, &id).await["state"], "stopped");
    let text = proxy_page(
        &visit(&app, "/user/ada/app/site/").await,
        StatusCode::SERVICE_UNAVAILABLE,
        "app_stopped",
    );
    assert!(text.contains("stopped"), "{text}");
    proxy_page(
        &browse(&app, "/user/ada/app/site/index.html").await,
        StatusCode::SERVICE_UNAVAILABLE,
        "app_stopped",
    );
    let logs = app
        .get(&format!("/api/v1/apps/{id}/logs"), Some(&ada))
        .await;
    assert!(
        logs.body.to_string().contains("stopped by its owner"),
        "{}",
        logs.body
    );

    let start = app
        .post(&format!("/api/v1/apps/{id}/start"), Some(&ada), json!({}))
        .await;
    assert_eq!(start.status, StatusCode::NO_CONTENT, "{}", start.body);
    let again = visit(&app, "/user/ada/app/site/").await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(again.body, "up\n");
    assert_eq!(status(&app, &ada, &id).await["state"], "running");

    let deleted = app
        .call(
            reqwest::Method::DELETE,
            &format!("/api/v1/apps/{id}"),
            Some(&ada),
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.body);
    for path in ["/user/ada/app/site/", "/user/ada/app/site/deeper/page.html"] {
        let text = proxy_page(
            &visit(&app, path).await,
            StatusCode::NOT_FOUND,
            "app_not_found",
        );
        assert!(text.contains("No such app"), "{text}");
        proxy_page(
            &browse(&app, path).await,
            StatusCode::NOT_FOUND,
            "app_not_found",
        );
    }
    app.get(&format!("/api/v1/apps/{id}/status"), Some(&ada))
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    app.call(
        reqwest::Method::DELETE,
        &format!("/api/v1/apps/{id}"),
        Some(&ada),
        None,
    )
    .await
    .expect_error(StatusCode::NOT_FOUND, "not_found");
    // Nobody's app, and no such user, look the same.
    proxy_page(
        &visit(&app, "/user/nobody/app/site/").await,
        StatusCode::NOT_FOUND,
        "app_not_found",
    );
    // The name is free again.
    create_app(&app, &ada, json!({"name": "site", "runtime": "static"})).await;
}

#[tokio::test]
async fn an_app_that_cannot_wake_says_why() {
    let app = TestApp::spawn().await;
    let (_, ada) = app.signup("ada").await;
    // Variables apply from the next start: this one makes it fail to start.
    let server = "if (process.env.BROKEN) {\n  console.error('BROKEN is set');\n  process.exit(4);\n}\n\
                  require('http').createServer((q, s) => s.end('up')).listen(process.env.PORT);\n";
    let id = launched(
        &app,
        &ada,
        json!({"name": "fragile", "runtime": "node"}),
        &[("server.js", server)],
    )
    .await;
    assert_eq!(visit(&app, "/user/ada/app/fragile/").await.body, "up");
    let patch = app
        .call(
            reqwest::Method::PATCH,
            &format!("/api/v1/apps/{id}"),
            Some(&ada),
            Some(json!({"env": {"BROKEN": "1"}})),
        )
        .await;
    assert_eq!(patch.status, StatusCode::OK, "{}", patch.body);
    app.state
        .apps
        .sweep(Instant::now() + Duration::from_secs(31 * 60), Utc::now())
        .await;

    // A program waits for the start, and is told it failed, and why.
    let failed = visit(&app, "/user/ada/app/fragile/").await;
    let text = proxy_page(&failed, StatusCode::BAD_GATEWAY, "app_start_failed");
    assert!(text.contains("exited with code 4"), "{text}");
    let logs = app
        .get(&format!("/api/v1/apps/{id}/logs"), Some(&ada))
        .await;
    assert!(
        logs.body.to_string().contains("BROKEN is set"),
        "{}",
        logs.body
    );
    assert!(
        logs.body.to_string().contains("could not start"),
        "{}",
        logs.body
    );
    // A browser is shown the same reason (after the page that said it was starting).
    let page = eventually("the browser's failure page", || async {
        let page = browse(&app, "/user/ada/app/fragile/").await;
        (page.headers["x-sandpit-proxy"] == "app_start_failed").then_some(page)
    })
    .await;
    let text = proxy_page(&page, StatusCode::BAD_GATEWAY, "app_start_failed");
    assert!(text.contains("exited with code 4"), "{text}");

    // Fixed, it wakes again.
    app.call(
        reqwest::Method::PATCH,
        &format!("/api/v1/apps/{id}"),
        Some(&ada),
        Some(json!({"env": {}})),
    )
    .await;
    let up = visit(&app, "/user/ada/app/fragile/").await;
    assert_eq!(up.status, StatusCode::OK, "{}", up.body);
    assert_eq!(up.body, "up");
}

#[tokio::test]
async fn a_deployed_app_is_served_again_after_the_server_restarts() {
    let app = TestApp::spawn().await;
    let (_, ada) = app.signup("ada").await;
    let id = launched(
        &app,
        &ada,
        json!({"name": "durable", "runtime": "python"}),
        &[("main.py", &versioned(7))],
    )
    .await;
    assert_eq!(
        visit(&app, "/user/ada/app/durable/").await.body["version"],
        7
    );
    let app = app.restart().await;
    // No instance in this process yet: the first request starts the live version.
    let s = status(&app, &ada, &id).await;
    assert_eq!(s["state"], "idle", "{s}");
    let again = visit(&app, "/user/ada/app/durable/").await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(again.body, json!({"version": 7}));
    assert_eq!(status(&app, &ada, &id).await["state"], "running");
}
