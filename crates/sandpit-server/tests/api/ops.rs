use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::TestApp;

#[tokio::test]
async fn health_and_readiness() {
    let app = TestApp::spawn().await;
    let health = app.get("/healthz", None).await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.body["status"], "ok");

    let ready = app.get("/readyz", None).await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.body);
    assert_eq!(ready.body["status"], "ready");
    assert_eq!(ready.body["components"]["store"]["status"], "ok");
    assert_eq!(ready.body["components"]["store"]["backend"], "sqlite");
    // No LLM configured is a supported set-up (authored hints), not an error.
    let llm = &ready.body["components"]["llm"];
    assert_eq!(llm["status"], "ok", "{llm}");
    assert_eq!(
        llm["detail"],
        "not configured: hints come from the lab's authored hints"
    );
    assert!(llm.get("routes").is_none(), "{llm}");
}

#[tokio::test]
async fn readiness_reports_llm_routes_without_secrets() {
    use sandpit_server::llm::{ProviderConfig, ProviderKind};
    let app = TestApp::spawn_with(|c| {
        c.llm.providers.insert(
            "main".into(),
            ProviderConfig {
                // Nothing listens there: readiness reports the configuration, it never calls.
                base_url: Some("http://127.0.0.1:9/private-gateway/v1".into()),
                api_key: Some("sk-readyz-secret-42".into()),
                ..ProviderConfig::new(ProviderKind::Openai, "gpt-4o-mini")
            },
        );
        c.llm.routes.hint = Some("main".into());
    })
    .await;
    let ready = app.get("/readyz", None).await;
    let llm = &ready.body["components"]["llm"];
    assert_eq!(llm["status"], "ok", "{llm}");
    assert_eq!(
        llm["routes"],
        json!({"hint": {"provider": "main", "kind": "openai", "model": "gpt-4o-mini"}})
    );
    let text = ready.body.to_string();
    assert!(
        !text.contains("sk-readyz-secret-42") && !text.contains("private-gateway"),
        "{text}"
    );
}

#[tokio::test]
async fn readiness_reports_a_broken_store() {
    let app = TestApp::spawn().await;
    // The database stops answering under the running server.
    app.state.store.close().await;
    let ready = app.get("/readyz", None).await;
    assert_eq!(
        ready.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        ready.body
    );
    assert_eq!(ready.body["status"], "unready");
    assert_eq!(ready.body["components"]["store"]["status"], "error");
    assert!(ready.body["components"]["store"]["detail"].is_string());
    // Liveness is about the process, not its dependencies.
    assert_eq!(app.get("/healthz", None).await.status, StatusCode::OK);
}

#[tokio::test]
async fn request_ids_are_echoed_or_generated() {
    let app = TestApp::spawn().await;
    let given = app
        .send(
            app.client
                .get(app.url("/healthz"))
                .header("x-request-id", "trace-me-123"),
        )
        .await;
    assert_eq!(given.headers["x-request-id"], "trace-me-123");
    let generated = app.get("/api/v1/nowhere", None).await;
    let id = generated.headers["x-request-id"].to_str().unwrap();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    // Overlong or odd ids are replaced, so they never reach the logs.
    for bad in ["x".repeat(200), "a b".into(), "id\"injected".into()] {
        let a = app
            .send(
                app.client
                    .get(app.url("/healthz"))
                    .header("x-request-id", &bad),
            )
            .await;
        let id = a.headers["x-request-id"].to_str().unwrap();
        assert_ne!(id, bad);
        assert_eq!(id.len(), 36, "replaced by a UUID: {id}");
    }
}

#[tokio::test]
async fn security_headers_on_every_response() {
    let app = TestApp::spawn().await;
    for path in ["/", "/api/v1/auth/providers", "/api/v1/nowhere", "/healthz"] {
        let a = app.get(path, None).await;
        assert_eq!(a.headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(a.headers["x-frame-options"], "DENY", "{path}");
        assert_eq!(a.headers["referrer-policy"], "same-origin", "{path}");
    }
}

#[tokio::test]
async fn metrics_count_requests_by_route_template() {
    let app = TestApp::spawn().await;
    let (_, token) = app.signup("metered").await;
    app.get("/api/v1/auth/me", Some(&token)).await;
    app.call(
        Method::DELETE,
        &format!("/api/v1/tokens/{}", uuid::Uuid::now_v7()),
        Some(&token),
        None,
    )
    .await;
    let res = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = res.text().await.unwrap();
    assert!(
        text.contains(
            r#"sandpit_http_requests_total{method="GET",route="/api/v1/auth/me",status="200"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"route="/api/v1/tokens/{id}",status="404""#),
        "ids never become labels: {text}"
    );
    assert!(
        text.contains("sandpit_http_request_duration_seconds_bucket"),
        "{text}"
    );
}

#[tokio::test]
async fn cors_allows_only_configured_origins() {
    let app =
        TestApp::spawn_with(|c| c.server.cors_allowed_origins = vec!["https://ok.example".into()])
            .await;
    let preflight = |origin: &'static str| {
        app.client
            .request(Method::OPTIONS, app.url("/api/v1/auth/me"))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .send()
    };
    let ok = preflight("https://ok.example").await.unwrap();
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://ok.example"
    );
    assert_eq!(ok.headers()["access-control-allow-credentials"], "true");
    let evil = preflight("https://evil.example").await.unwrap();
    assert!(evil.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn unknown_routes_methods_and_the_spa() {
    let app = TestApp::spawn().await;
    app.get("/api/v1/nope", None)
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    app.get("/api", None)
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    app.call(Method::DELETE, "/api/v1/auth/me", None, None)
        .await
        .expect_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    app.call(Method::GET, "/api/v1/auth/login", None, None)
        .await
        .expect_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    app.call(Method::POST, "/some/page", None, Some(json!({})))
        .await
        .expect_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    app.get("/assets/missing.js", None)
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");

    // Any other GET is the web app (its shell page, or the "not built" page).
    for path in ["/", "/signin", "/labs/python/step/2"] {
        let res = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        assert!(
            res.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        assert!(
            res.text()
                .await
                .unwrap()
                .to_lowercase()
                .contains("<!doctype html>")
        );
    }
}

#[tokio::test]
async fn graceful_shutdown_stops_serving() {
    let dir = tempfile::TempDir::new().unwrap();
    let app = sandpit_server::App::build(crate::helpers::test_config(&dir))
        .await
        .unwrap();
    let url = format!("http://{}/healthz", app.addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    assert_eq!(reqwest::get(&url).await.unwrap().status(), StatusCode::OK);
    stop.send(()).unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(20), server)
        .await
        .expect("server stops")
        .unwrap()
        .unwrap();
    assert!(
        reqwest::get(&url).await.is_err(),
        "nothing listens any more"
    );
}
