use reqwest::{Method, StatusCode};
use serde_json::json;
use uuid::Uuid;

use crate::helpers::TestApp;

#[tokio::test]
async fn personal_tokens_are_shown_once_work_and_revoke() {
    let app = TestApp::spawn().await;
    let (_, session) = app.signup("tokens").await;

    let created = app
        .post(
            "/api/v1/tokens",
            Some(&session),
            json!({"name": " ci ", "expires_in_days": 30}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let secret = created.body["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("spt_"));
    let token = &created.body["token"];
    assert_eq!(token["name"], "ci");
    assert!(secret.starts_with(token["prefix"].as_str().unwrap()));
    assert!(token["expires_at"].is_string());

    // The secret authenticates, and listing never shows it again.
    assert_eq!(
        app.get("/api/v1/auth/me", Some(&secret)).await.body["username"],
        "tokens"
    );
    let list = app.get("/api/v1/tokens", Some(&session)).await;
    assert_eq!(list.status, StatusCode::OK);
    let tokens = list.body["tokens"].as_array().unwrap();
    assert_eq!(
        tokens.len(),
        1,
        "sessions must not be listed: {}",
        list.body
    );
    assert!(!list.body.to_string().contains(&secret));
    assert!(
        tokens[0]["last_used_at"].is_string(),
        "use is recorded: {}",
        list.body
    );

    // Nobody else can see or revoke it: another user's token is a 404.
    let (_, other) = app.signup("someone").await;
    assert_eq!(
        app.get("/api/v1/tokens", Some(&other)).await.body["tokens"],
        json!([])
    );
    let path = format!("/api/v1/tokens/{}", token["id"].as_str().unwrap());
    app.call(Method::DELETE, &path, Some(&other), None)
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(
        app.get("/api/v1/auth/me", Some(&secret)).await.status,
        StatusCode::OK
    );

    // The owner revokes it; it stops working at once; a second delete is a 404.
    assert_eq!(
        app.call(Method::DELETE, &path, Some(&session), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    app.get("/api/v1/auth/me", Some(&secret))
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
    app.call(Method::DELETE, &path, Some(&session), None)
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(
        app.get("/api/v1/tokens", Some(&session)).await.body["tokens"],
        json!([])
    );
}

#[tokio::test]
async fn token_input_is_validated() {
    let app = TestApp::spawn().await;
    let (_, session) = app.signup("validator").await;
    for (body, field) in [
        (json!({"name": ""}), "name"),
        (json!({"name": "x".repeat(65)}), "name"),
        (
            json!({"name": "ok", "expires_in_days": 0}),
            "expires_in_days",
        ),
        (
            json!({"name": "ok", "expires_in_days": 3651}),
            "expires_in_days",
        ),
    ] {
        let a = app.post("/api/v1/tokens", Some(&session), body).await;
        let message = a.expect_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert!(message.starts_with(field), "{message}");
    }
    app.post("/api/v1/tokens", None, json!({"name": "x"}))
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
    app.call(
        Method::DELETE,
        "/api/v1/tokens/not-a-uuid",
        Some(&session),
        None,
    )
    .await
    .expect_error(StatusCode::BAD_REQUEST, "bad_request");
    let random = format!("/api/v1/tokens/{}", Uuid::now_v7());
    app.call(Method::DELETE, &random, Some(&session), None)
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
}
