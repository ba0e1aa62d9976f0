//! "Sign in with GitHub" end to end against a local fake GitHub that speaks the real protocol:
//! form-encoded code exchange answering JSON, then `/user` and `/user/emails` with a bearer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use axum::routing::{get, post};
use axum::{Json, Router};
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::helpers::TestApp;

#[derive(Clone, Default)]
struct FakeGithub {
    /// code → (access token, profile)
    grants: Arc<Mutex<HashMap<String, (String, Value)>>>,
    /// Form fields of the last code exchange.
    last_exchange: Arc<Mutex<HashMap<String, String>>>,
}

impl FakeGithub {
    fn grant(&self, code: &str, profile: Value) {
        let token = format!("gho_{code}");
        self.grants
            .lock()
            .unwrap()
            .insert(code.into(), (token, profile));
    }

    fn profile_for(&self, headers: &HeaderMap) -> Option<Value> {
        let auth = headers.get("authorization")?.to_str().ok()?;
        let token = auth.strip_prefix("Bearer ")?;
        self.grants
            .lock()
            .unwrap()
            .values()
            .find(|(t, _)| t == token)
            .map(|(_, p)| p.clone())
    }
}

async fn access_token(
    State(fake): State<FakeGithub>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Json<Value> {
    assert_eq!(headers["accept"], "application/json");
    *fake.last_exchange.lock().unwrap() = form.clone();
    let ok_client = form.get("client_id").map(String::as_str) == Some("client-1")
        && form.get("client_secret").map(String::as_str) == Some("shh");
    let grant = fake
        .grants
        .lock()
        .unwrap()
        .get(form.get("code").map_or("", |c| c))
        .cloned();
    match grant {
        Some((token, _)) if ok_client => Json(
            json!({"access_token": token, "token_type": "bearer", "scope": "read:user,user:email"}),
        ),
        // GitHub answers 200 with an error object for bad codes.
        _ => Json(
            json!({"error": "bad_verification_code", "error_description": "The code passed is incorrect or expired."}),
        ),
    }
}

async fn user(
    State(fake): State<FakeGithub>,
    headers: HeaderMap,
) -> Result<Json<Value>, AxumStatus> {
    fake.profile_for(&headers)
        .map(Json)
        .ok_or(AxumStatus::UNAUTHORIZED)
}

async fn emails(
    State(fake): State<FakeGithub>,
    headers: HeaderMap,
) -> Result<Json<Value>, AxumStatus> {
    fake.profile_for(&headers).ok_or(AxumStatus::UNAUTHORIZED)?;
    Ok(Json(json!([
        {"email": "secondary@example.com", "primary": false, "verified": true},
        {"email": "octo@example.com", "primary": true, "verified": true},
    ])))
}

async fn spawn_fake() -> (FakeGithub, String) {
    let fake = FakeGithub::default();
    let router = Router::new()
        .route("/login/oauth/access_token", post(access_token))
        .route("/user", get(user))
        .route("/user/emails", get(emails))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (fake, base)
}

async fn app_with_github(base: &str) -> TestApp {
    let base = base.to_owned();
    TestApp::spawn_with(move |c| {
        c.auth.github.client_id = "client-1".into();
        c.auth.github.client_secret = Some(SecretString::from("shh"));
        c.auth.github.authorize_url = format!("{base}/login/oauth/authorize");
        c.auth.github.token_url = format!("{base}/login/oauth/access_token");
        c.auth.github.api_url = base.clone();
        c.auth.github.redirect_after_login = "/welcome".into();
    })
    .await
}

/// Starts the flow: returns the `state` GitHub would echo and the signed state cookie.
async fn begin(app: &TestApp, session_cookie: Option<&str>) -> (String, String) {
    let mut req = app.client.get(app.url("/api/v1/auth/github"));
    if let Some(c) = session_cookie {
        req = req.header("cookie", c);
    }
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let location = url::Url::parse(res.headers()["location"].to_str().unwrap()).unwrap();
    let query: HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(query["client_id"], "client-1");
    assert_eq!(
        query["redirect_uri"],
        app.url("/api/v1/auth/github/callback")
    );
    assert!(query["scope"].contains("user:email"));
    let cookie = res.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    let state_cookie = cookie.split(';').next().unwrap().to_owned();
    (query["state"].clone(), state_cookie)
}

async fn finish(app: &TestApp, code: &str, state: &str, cookies: &str) -> reqwest::Response {
    app.client
        .get(app.url("/api/v1/auth/github/callback"))
        .query(&[("code", code), ("state", state)])
        .header("cookie", cookies)
        .send()
        .await
        .unwrap()
}

fn session_from(res: &reqwest::Response) -> String {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|c| c.starts_with("sandpit_session="))
        .expect("session cookie set")
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn new_github_user_is_created_then_signed_in_again() {
    let (fake, base) = spawn_fake().await;
    let app = app_with_github(&base).await;
    assert_eq!(
        app.get("/api/v1/auth/providers", None).await.body["github"],
        true
    );
    fake.grant(
        "code-1",
        json!({"id": 4242, "login": "octocat", "email": null, "name": "Octo"}),
    );

    let (state, cookie) = begin(&app, None).await;
    let res = finish(&app, "code-1", &state, &cookie).await;
    assert_eq!(
        res.status(),
        StatusCode::SEE_OTHER,
        "{:?}",
        res.text().await
    );
    assert_eq!(res.headers()["location"], "/welcome");
    assert_eq!(
        fake.last_exchange.lock().unwrap()["redirect_uri"],
        app.url("/api/v1/auth/github/callback")
    );
    let session = session_from(&res);
    let me = app.me_with_cookie(&session).await;
    assert_eq!(me.body["username"], "octocat");
    assert_eq!(
        me.body["email"], "octo@example.com",
        "private e-mail read from /user/emails"
    );
    let id = me.body["id"].clone();

    // Signing in again with the same GitHub account finds the same user.
    fake.grant(
        "code-2",
        json!({"id": 4242, "login": "octocat-renamed", "email": null}),
    );
    let (state, cookie) = begin(&app, None).await;
    let res = finish(&app, "code-2", &state, &cookie).await;
    let again = app.me_with_cookie(&session_from(&res)).await;
    assert_eq!(again.body["id"], id);
    let identity = app
        .store()
        .identity("github", "4242")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        identity.profile["login"], "octocat-renamed",
        "profile refreshed"
    );
}

#[tokio::test]
async fn taken_username_gets_a_suffix_and_signed_in_user_links() {
    let (fake, base) = spawn_fake().await;
    let app = app_with_github(&base).await;
    let (_, _) = app.signup("octocat").await;
    fake.grant(
        "c1",
        json!({"id": 1, "login": "octocat", "email": "o@example.com"}),
    );
    let (state, cookie) = begin(&app, None).await;
    let res = finish(&app, "c1", &state, &cookie).await;
    let me = app.me_with_cookie(&session_from(&res)).await;
    assert_eq!(me.body["username"], "octocat-1");

    // A signed-in user links a new GitHub account to themself …
    let (ada, ada_token) = app.signup("ada").await;
    let ada_cookie = format!("sandpit_session={ada_token}");
    fake.grant("c2", json!({"id": 2, "login": "ada-gh", "email": null}));
    let (state, cookie) = begin(&app, Some(&ada_cookie)).await;
    let res = finish(&app, "c2", &state, &format!("{cookie}; {ada_cookie}")).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let linked = app.store().identity("github", "2").await.unwrap().unwrap();
    assert_eq!(linked.user_id.to_string(), ada["id"].as_str().unwrap());

    // … but not one that belongs to someone else.
    fake.grant("c3", json!({"id": 1, "login": "octocat", "email": null}));
    let (state, cookie) = begin(&app, Some(&ada_cookie)).await;
    let res = finish(&app, "c3", &state, &format!("{cookie}; {ada_cookie}")).await;
    assert_eq!(res.status(), StatusCode::CONFLICT);
}

#[tokio::test]
async fn bad_state_bad_code_and_disabled_are_clear_errors() {
    let (fake, base) = spawn_fake().await;
    let app = app_with_github(&base).await;
    fake.grant("good", json!({"id": 7, "login": "seven", "email": null}));
    let (state, cookie) = begin(&app, None).await;

    let error_of = |res: reqwest::Response| async move {
        let status = res.status();
        let body: Value = res.json().await.unwrap();
        (status, body["error"]["code"].as_str().unwrap().to_owned())
    };
    // No cookie, a different state, a forged cookie.
    let res = app
        .client
        .get(app.url("/api/v1/auth/github/callback"))
        .query(&[("code", "good"), ("state", state.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_of(res).await,
        (StatusCode::BAD_REQUEST, "bad_request".into())
    );
    let res = finish(&app, "good", "other-state", &cookie).await;
    assert_eq!(
        error_of(res).await,
        (StatusCode::BAD_REQUEST, "bad_request".into())
    );
    let forged = format!("sandpit_oauth_state={state}");
    let res = finish(&app, "good", &state, &forged).await;
    assert_eq!(
        error_of(res).await,
        (StatusCode::BAD_REQUEST, "bad_request".into())
    );
    // The user declined at GitHub.
    let res = app
        .client
        .get(app.url("/api/v1/auth/github/callback"))
        .query(&[("error", "access_denied"), ("state", state.as_str())])
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_of(res).await,
        (StatusCode::BAD_REQUEST, "bad_request".into())
    );
    // GitHub refuses the code.
    let res = finish(&app, "expired-code", &state, &cookie).await;
    assert_eq!(
        error_of(res).await,
        (StatusCode::BAD_GATEWAY, "upstream_error".into())
    );
    // GitHub is unreachable.
    let dead = app_with_github("http://127.0.0.1:9").await;
    let (state, cookie) = begin(&dead, None).await;
    let res = finish(&dead, "good", &state, &cookie).await;
    assert_eq!(
        error_of(res).await,
        (StatusCode::BAD_GATEWAY, "upstream_error".into())
    );
    assert_eq!(
        app.store().count_users().await.unwrap(),
        0,
        "no account was created"
    );

    // Not configured: both routes say so.
    let plain = TestApp::spawn().await;
    plain
        .get("/api/v1/auth/github", None)
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_enabled");
    plain
        .get("/api/v1/auth/github/callback?code=a&state=b", None)
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_enabled");
}
