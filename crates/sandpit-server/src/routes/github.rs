//! "Sign in with GitHub" (OAuth 2.0 web application flow).
//!
//! `GET /api/v1/auth/github` sends the browser to GitHub with a random `state` that is also kept
//! in a signed, short-lived cookie; `GET /api/v1/auth/github/callback` checks the two match,
//! exchanges the code, reads the profile, then signs in the linked user, links the account to the
//! user already signed in, or creates a new user. GitHub's URLs come from the config so tests run
//! the whole flow against a local fake GitHub.

use axum::extract::State;
use axum::response::{IntoResponse, Redirect};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite, SignedCookieJar};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use rand::RngCore;
use sandpit_store::{NewIdentity, Role, StoreError, User};
use secrecy::ExposeSecret;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::accounts::insert_user;
use crate::auth::{self, Authenticated};
use crate::domain::{Email, Username};
use crate::error::{ApiError, ApiResult, ErrorEnvelope, Query};
use crate::state::AppState;

pub const STATE_COOKIE: &str = "sandpit_oauth_state";
const STATE_COOKIE_PATH: &str = "/api/v1/auth/github";
const PROVIDER: &str = "github";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start))
        .routes(routes!(callback))
}

fn callback_url(state: &AppState) -> String {
    format!("{}/api/v1/auth/github/callback", state.public_url)
}

fn ensure_enabled(state: &AppState) -> ApiResult<()> {
    if state.config.github_enabled() {
        Ok(())
    } else {
        Err(ApiError::NotEnabled(
            "GitHub sign-in is not configured on this server",
        ))
    }
}

/// Start signing in with GitHub: redirects to GitHub's consent page.
#[utoipa::path(get, path = "/api/v1/auth/github", tag = "auth",
    responses(
        (status = 303, description = "Redirect to GitHub"),
        (status = 404, description = "GitHub sign-in is not configured", body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope),
    ))]
async fn start(
    State(state): State<AppState>,
    jar: SignedCookieJar,
) -> ApiResult<impl IntoResponse> {
    ensure_enabled(&state)?;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let nonce = URL_SAFE_NO_PAD.encode(bytes);
    let gh = &state.config.auth.github;
    let mut url = url::Url::parse(&gh.authorize_url).map_err(ApiError::internal)?;
    url.query_pairs_mut()
        .append_pair("client_id", &gh.client_id)
        .append_pair("redirect_uri", &callback_url(&state))
        .append_pair("scope", "read:user user:email")
        .append_pair("state", &nonce);
    let cookie = Cookie::build((STATE_COOKIE, nonce))
        .path(STATE_COOKIE_PATH)
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.secure_cookies)
        .max_age(time::Duration::minutes(10))
        .build();
    Ok((jar.add(cookie), Redirect::to(url.as_str())))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct CallbackParams {
    /// The authorization code GitHub issued.
    code: Option<String>,
    /// Must equal the value sandpit sent (and kept in a signed cookie).
    state: Option<String>,
    /// Set by GitHub when the user declined.
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
struct TokenReply {
    access_token: Option<String>,
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
struct GithubUser {
    id: i64,
    login: String,
    email: Option<String>,
}

#[derive(Debug, Deserialize)]
struct GithubEmail {
    email: String,
    primary: bool,
    verified: bool,
}

/// GitHub redirects here after consent; signs in (or links) and redirects into the app.
#[utoipa::path(get, path = "/api/v1/auth/github/callback", tag = "auth",
    params(CallbackParams),
    responses(
        (status = 303, description = "Signed in; session cookie set; redirect into the app"),
        (status = 400, description = "Missing code, or state missing/mismatched/expired", body = ErrorEnvelope),
        (status = 404, description = "GitHub sign-in is not configured", body = ErrorEnvelope),
        (status = 409, description = "This GitHub account is linked to another user", body = ErrorEnvelope),
        (status = 502, description = "GitHub failed or refused the code", body = ErrorEnvelope),
    ))]
async fn callback(
    State(state): State<AppState>,
    signed: SignedCookieJar,
    jar: CookieJar,
    axum::Extension(authenticated): axum::Extension<Authenticated>,
    Query(params): Query<CallbackParams>,
) -> ApiResult<impl IntoResponse> {
    ensure_enabled(&state)?;
    let expected = signed.get(STATE_COOKIE).map(|c| c.value().to_owned());
    let signed = signed.remove(Cookie::build(STATE_COOKIE).path(STATE_COOKIE_PATH));
    if params.error.is_some() {
        return Err(ApiError::BadRequest(
            "GitHub sign-in was cancelled or refused".into(),
        ));
    }
    let states_match = match (&expected, &params.state) {
        (Some(a), Some(b)) => constant_time_eq(a.as_bytes(), b.as_bytes()),
        _ => false,
    };
    if !states_match {
        return Err(ApiError::BadRequest(
            "sign-in state is missing, expired or does not match; start again".into(),
        ));
    }
    let code = params
        .code
        .filter(|c| !c.is_empty() && c.len() <= 512)
        .ok_or_else(|| ApiError::BadRequest("missing authorization code".into()))?;

    let access_token = exchange_code(&state, &code).await?;
    let profile_json = fetch_json(&state, "/user", &access_token).await?;
    let profile: GithubUser = serde_json::from_value(profile_json.clone())
        .map_err(|e| upstream("GitHub returned an unexpected profile", e.to_string()))?;
    let email = match profile.email.clone() {
        Some(e) => Some(e),
        None => primary_email(&state, &access_token).await,
    };

    let current = authenticated.0.map(|p| p.user.clone());
    let user = link_or_create(&state, current, &profile, profile_json, email).await?;
    let (_, token) = auth::start_session(&state, user.id, "GitHub sign-in").await?;
    tracing::info!(user.id = %user.id, "signed in with GitHub");
    Ok((
        signed,
        jar.add(auth::session_cookie(&state, token)),
        Redirect::to(&state.config.auth.github.redirect_after_login),
    ))
}

fn upstream(public: &'static str, detail: String) -> ApiError {
    ApiError::Upstream { public, detail }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn exchange_code(state: &AppState, code: &str) -> ApiResult<String> {
    let gh = &state.config.auth.github;
    let secret = gh
        .client_secret
        .as_ref()
        .map(|s| s.expose_secret().to_owned())
        .unwrap_or_default();
    let callback = callback_url(state);
    let reply = state
        .http
        .post(&gh.token_url)
        .header(reqwest::header::ACCEPT, "application/json")
        .form(&[
            ("client_id", gh.client_id.as_str()),
            ("client_secret", secret.as_str()),
            ("code", code),
            ("redirect_uri", callback.as_str()),
        ])
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| upstream("could not reach GitHub", e.to_string()))?
        .json::<TokenReply>()
        .await
        .map_err(|e| upstream("GitHub returned an unexpected answer", e.to_string()))?;
    match reply {
        TokenReply {
            access_token: Some(t),
            ..
        } if !t.is_empty() => Ok(t),
        TokenReply { error, .. } => Err(upstream(
            "GitHub did not accept the sign-in code; start again",
            format!("token exchange refused: {}", error.unwrap_or_default()),
        )),
    }
}

async fn fetch_json(state: &AppState, path: &str, token: &str) -> ApiResult<serde_json::Value> {
    let url = format!(
        "{}{path}",
        state.config.auth.github.api_url.trim_end_matches('/')
    );
    state
        .http
        .get(url)
        .bearer_auth(token)
        .header(reqwest::header::ACCEPT, "application/vnd.github+json")
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| upstream("could not read the GitHub profile", e.to_string()))?
        .json()
        .await
        .map_err(|e| upstream("GitHub returned an unexpected profile", e.to_string()))
}

/// The primary verified address, when the profile keeps it private. Best effort: without it the
/// account simply has no e-mail.
async fn primary_email(state: &AppState, token: &str) -> Option<String> {
    let list = fetch_json(state, "/user/emails", token).await.ok()?;
    let emails: Vec<GithubEmail> = serde_json::from_value(list).ok()?;
    emails
        .into_iter()
        .find(|e| e.primary && e.verified)
        .map(|e| e.email)
}

async fn link_or_create(
    state: &AppState,
    current: Option<User>,
    profile: &GithubUser,
    profile_json: serde_json::Value,
    email: Option<String>,
) -> ApiResult<User> {
    let subject = profile.id.to_string();
    let now = Utc::now();
    if let Some(identity) = state.store.identity(PROVIDER, &subject).await? {
        if current.as_ref().is_some_and(|u| u.id != identity.user_id) {
            return Err(ApiError::Conflict(
                "this GitHub account is linked to another user".into(),
            ));
        }
        state
            .store
            .update_identity_profile(identity.id, profile_json, now)
            .await?;
        return state
            .store
            .user_by_id(identity.user_id)
            .await?
            .ok_or_else(|| ApiError::internal(anyhow::anyhow!("identity without user")));
    }
    let user = match current {
        Some(user) => user,
        None => {
            let email = email.as_deref().and_then(|e| Email::parse(e).ok());
            create_unique_user(state, &profile.login, email).await?
        }
    };
    state
        .store
        .link_identity(NewIdentity {
            id: Uuid::now_v7(),
            user_id: user.id,
            provider: PROVIDER.into(),
            subject,
            login: profile.login.clone(),
            profile: profile_json,
            created_at: now,
        })
        .await
        .map_err(|e| match e {
            // Two callbacks for the same new account raced; the other one linked it.
            StoreError::Conflict { .. } => {
                ApiError::Conflict("this GitHub account was just linked; sign in again".into())
            }
            other => other.into(),
        })?;
    Ok(user)
}

/// A new account named after the GitHub login, with a suffix when the name is taken.
async fn create_unique_user(
    state: &AppState,
    login: &str,
    email: Option<Email>,
) -> ApiResult<User> {
    let base: String = login
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .take(Username::MAX - 4)
        .collect();
    let base = if Username::parse(&base).is_ok() {
        base
    } else {
        "github-user".to_owned()
    };
    let mut candidates = vec![base.clone()];
    candidates.extend((1..=3).map(|n| format!("{base}-{n}")));
    candidates.push(format!(
        "{base}-{}",
        &Uuid::new_v4().simple().to_string()[..3]
    ));
    for candidate in candidates {
        let Ok(name) = Username::parse(&candidate) else {
            continue;
        };
        match insert_user(
            state.store.as_ref(),
            name,
            email.clone(),
            None,
            Role::Learner,
        )
        .await
        {
            Err(ApiError::Conflict(_)) => continue,
            other => return other,
        }
    }
    Err(ApiError::Conflict(
        "could not find a free username for this GitHub account".into(),
    ))
}
