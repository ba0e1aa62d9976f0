use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::TestApp;

#[tokio::test]
async fn auth_endpoints_are_limited_per_address_with_retry_after() {
    let app = TestApp::spawn_with(|c| c.rate_limit.auth_per_minute = 3).await;
    let attempt = || {
        app.post(
            "/api/v1/auth/login",
            None,
            json!({"username": "nobody", "password": "whatever1"}),
        )
    };
    for _ in 0..3 {
        attempt()
            .await
            .expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    let limited = attempt().await;
    limited.expect_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let retry: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "one token per 20 s: {retry}");
    // Sign-up shares the bucket; other API routes do not.
    app.post(
        "/api/v1/auth/signup",
        None,
        json!({"username": "newbie", "password": "long enough pw"}),
    )
    .await
    .expect_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert_eq!(
        app.get("/api/v1/auth/providers", None).await.status,
        StatusCode::OK
    );

    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"sandpit_rate_limited_total{bucket="auth"} 2"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn api_is_limited_per_user_not_per_address() {
    let app = TestApp::spawn_with(|c| c.rate_limit.api_per_minute = 4).await;
    // Sign-ups themselves pass through the API bucket of the (anonymous) address.
    let (_, alice) = app.signup("alice").await;
    let (_, bob) = app.signup("bob").await;
    for _ in 0..4 {
        assert_eq!(
            app.get("/api/v1/auth/me", Some(&alice)).await.status,
            StatusCode::OK
        );
    }
    let limited = app.get("/api/v1/auth/me", Some(&alice)).await;
    limited.expect_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert!(limited.headers.contains_key("retry-after"));
    // Bob, on the same address, has his own bucket.
    assert_eq!(
        app.get("/api/v1/auth/me", Some(&bob)).await.status,
        StatusCode::OK
    );
    // Operations endpoints are never limited.
    for _ in 0..10 {
        assert_eq!(app.get("/healthz", None).await.status, StatusCode::OK);
    }
}
