use chrono::{Duration, Utc};
use reqwest::{Method, StatusCode};
use sandpit_store::{CredentialKind, NewCredential};
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::helpers::TestApp;

/// Sign-up, cookie and bearer use, login, logout — on whichever store `app` runs.
async fn full_flow(app: &TestApp) {
    let signup = app
        .post(
            "/api/v1/auth/signup",
            None,
            json!({"username": "Ada", "password": "correct horse battery", "email": "ada@example.com"}),
        )
        .await;
    assert_eq!(signup.status, StatusCode::CREATED, "{}", signup.body);
    let cookie = signup.headers["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("sandpit_session=sps_"), "{cookie}");
    for flag in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age="] {
        assert!(cookie.contains(flag), "{flag} missing in {cookie}");
    }
    assert!(
        !cookie.contains("Secure"),
        "plain http must not set Secure: {cookie}"
    );
    let token = signup.body["token"].as_str().unwrap().to_owned();
    let user = &signup.body["user"];
    assert_eq!(user["username"], "Ada");
    assert_eq!(user["email"], "ada@example.com");
    assert_eq!(user["role"], "learner");
    assert!(user.get("password_hash").is_none());

    // The cookie alone authenticates …
    let session = cookie.split(';').next().unwrap().to_owned();
    let me = app.me_with_cookie(&session).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["id"], user["id"]);
    for key in ["id", "username", "email", "role", "created_at"] {
        assert!(me.body.get(key).is_some(), "{key} missing: {}", me.body);
    }
    // … and so does the token as a bearer.
    assert_eq!(
        app.get("/api/v1/auth/me", Some(&token)).await.body["username"],
        "Ada"
    );

    // Usernames are unique ignoring case.
    let dup = app
        .post(
            "/api/v1/auth/signup",
            None,
            json!({"username": "ada", "password": "another password"}),
        )
        .await;
    dup.expect_error(StatusCode::CONFLICT, "conflict");

    // Login (case-insensitive name) gives a second, independent session.
    let login = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"username": "ADA", "password": "correct horse battery"}),
        )
        .await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    let second = login.body["token"].as_str().unwrap().to_owned();
    assert_ne!(second, token);
    assert!(
        login.headers["set-cookie"]
            .to_str()
            .unwrap()
            .contains("HttpOnly")
    );

    // Logout ends only the session that asked, and clears the cookie.
    let out = app
        .call(Method::POST, "/api/v1/auth/logout", Some(&token), None)
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    assert!(
        out.headers["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    app.get("/api/v1/auth/me", Some(&token))
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(
        app.get("/api/v1/auth/me", Some(&second)).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn full_flow_on_sqlite() {
    full_flow(&TestApp::spawn().await).await;
}

#[tokio::test]
async fn full_flow_on_postgres() {
    let app = TestApp::spawn_postgres().await;
    assert_eq!(app.state.store.backend(), "postgres");
    full_flow(&app).await;
}

#[tokio::test]
async fn wrong_password_and_unknown_user_look_the_same() {
    let app = TestApp::spawn().await;
    app.signup("grace").await;
    let wrong = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"username": "grace", "password": "not her password"}),
        )
        .await;
    let unknown = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"username": "nobody", "password": "not her password"}),
        )
        .await;
    let invalid_name = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"username": "x", "password": "y"}),
        )
        .await;
    for answer in [&wrong, &unknown, &invalid_name] {
        answer.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    assert_eq!(wrong.body, unknown.body);
    assert_eq!(wrong.body, invalid_name.body);
}

#[tokio::test]
async fn forged_expired_and_revoked_credentials_are_refused() {
    let app = TestApp::spawn().await;
    let (user, token) = app.signup("linus").await;
    let unauthorized =
        |a: crate::helpers::Answer| a.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");

    // Forged: right shape, unknown value; wrong shape; wrong scheme; garbage cookie.
    let forged = format!("sps_{}", "A".repeat(43));
    unauthorized(app.get("/api/v1/auth/me", Some(&forged)).await);
    unauthorized(app.get("/api/v1/auth/me", Some("not-a-token")).await);
    unauthorized(
        app.get("/api/v1/auth/me", Some(&token[..token.len() - 1]))
            .await,
    );
    let basic = app
        .send(
            app.client
                .get(app.url("/api/v1/auth/me"))
                .header("authorization", format!("Basic {token}")),
        )
        .await;
    unauthorized(basic);
    let cookie = app.me_with_cookie("sandpit_session=%%%").await;
    unauthorized(cookie);

    // Expired: a credential whose expiry has passed.
    let value = format!("sps_{}", "B".repeat(43));
    let now = Utc::now();
    app.store()
        .create_credential(NewCredential {
            id: Uuid::now_v7(),
            user_id: user["id"].as_str().unwrap().parse().unwrap(),
            kind: CredentialKind::Session,
            name: "old".into(),
            prefix: value[..12].into(),
            token_hash: Sha256::digest(value.as_bytes()).into(),
            created_at: now - Duration::days(10),
            expires_at: Some(now - Duration::seconds(1)),
        })
        .await
        .unwrap();
    unauthorized(app.get("/api/v1/auth/me", Some(&value)).await);

    // Revoked through logout.
    app.call(Method::POST, "/api/v1/auth/logout", Some(&token), None)
        .await;
    unauthorized(app.get("/api/v1/auth/me", Some(&token)).await);
}

#[tokio::test]
async fn public_routes_ignore_a_stale_cookie_and_signup_can_be_closed() {
    let app = TestApp::spawn_with(|c| c.auth.allow_signup = false).await;
    let providers = app
        .send(
            app.client
                .get(app.url("/api/v1/auth/providers"))
                .header("cookie", "sandpit_session=stale"),
        )
        .await;
    assert_eq!(providers.status, StatusCode::OK);
    assert_eq!(providers.body, json!({"signup": false, "github": false}));
    app.post(
        "/api/v1/auth/signup",
        None,
        json!({"username": "eve", "password": "long enough pw"}),
    )
    .await
    .expect_error(StatusCode::FORBIDDEN, "forbidden");
    // Logout without a session is harmless.
    assert_eq!(
        app.call(Method::POST, "/api/v1/auth/logout", None, None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn secure_cookie_when_served_over_https() {
    let app =
        TestApp::spawn_with(|c| c.server.public_url = "https://sandpit.example.org".into()).await;
    let a = app
        .post(
            "/api/v1/auth/signup",
            None,
            json!({"username": "sec", "password": "correct horse battery"}),
        )
        .await;
    assert!(a.headers["set-cookie"].to_str().unwrap().contains("Secure"));
}

#[tokio::test]
async fn roles_are_enforced_by_the_extractor() {
    let app = TestApp::spawn().await;
    let (learner, learner_token) = app.signup("learner1").await;
    let (_, admin_token) = app.admin("boss").await;
    let path = format!("/api/v1/users/{}/role", learner["id"].as_str().unwrap());

    app.call(Method::PUT, &path, None, Some(json!({"role": "author"})))
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
    app.call(
        Method::PUT,
        &path,
        Some(&learner_token),
        Some(json!({"role": "admin"})),
    )
    .await
    .expect_error(StatusCode::FORBIDDEN, "forbidden");

    let promoted = app
        .call(
            Method::PUT,
            &path,
            Some(&admin_token),
            Some(json!({"role": "author"})),
        )
        .await;
    assert_eq!(promoted.status, StatusCode::OK, "{}", promoted.body);
    assert_eq!(promoted.body["role"], "author");
    assert_eq!(
        app.get("/api/v1/auth/me", Some(&learner_token)).await.body["role"],
        "author"
    );

    let missing = format!("/api/v1/users/{}/role", Uuid::now_v7());
    app.call(
        Method::PUT,
        &missing,
        Some(&admin_token),
        Some(json!({"role": "author"})),
    )
    .await
    .expect_error(StatusCode::NOT_FOUND, "not_found");
    app.call(
        Method::PUT,
        &path,
        Some(&admin_token),
        Some(json!({"role": "root"})),
    )
    .await
    .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
}
