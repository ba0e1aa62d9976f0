//! `/api/v1/auth`: sign-up, login, logout, the current user, and which sign-in methods exist.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum_extra::extract::CookieJar;
use chrono::Utc;
use sandpit_store::{CredentialKind, Role};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::views::UserView;
use crate::accounts;
use crate::auth::{self, Authenticated, CurrentUser, password};
use crate::domain::{Password, Username};
use crate::error::{ApiError, ApiResult, ErrorEnvelope, Json};
use crate::state::AppState;

/// Routes limited per client address (they cost an argon2 hash each).
pub fn limited_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(signup))
        .routes(routes!(login))
}

/// Routes under the ordinary per-user limit.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(logout))
        .routes(routes!(me))
        .routes(routes!(providers))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignupRequest {
    /// 3–32 letters, digits, `_` or `-`, starting with a letter or digit; unique ignoring case.
    #[schema(example = "ada", pattern = "^[A-Za-z0-9][A-Za-z0-9_-]{2,31}$")]
    pub username: String,
    /// 8–128 characters.
    #[schema(value_type = String, format = Password, example = "correct horse battery",
        min_length = 8, max_length = 128)]
    pub password: SecretString,
    #[schema(example = "ada@example.com")]
    pub email: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    #[schema(example = "ada")]
    pub username: String,
    #[schema(value_type = String, format = Password)]
    pub password: SecretString,
}

/// A signed-in user and the session token (also set as an HttpOnly cookie). Send the token as
/// `Authorization: Bearer <token>` from clients that don't keep cookies.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuthResponse {
    pub user: UserView,
    pub token: String,
}

/// Sign-in methods this server offers.
#[derive(Debug, Serialize, ToSchema)]
pub struct Providers {
    /// Password sign-up is open.
    pub signup: bool,
    /// "Sign in with GitHub" is configured.
    pub github: bool,
}

fn user_agent(headers: &HeaderMap) -> &str {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("unknown client")
}

/// Create an account and sign in.
#[utoipa::path(post, path = "/api/v1/auth/signup", tag = "auth",
    request_body = SignupRequest,
    responses(
        (status = 201, description = "Account created; session cookie set", body = AuthResponse),
        (status = 403, description = "Sign-up is disabled", body = ErrorEnvelope),
        (status = 409, description = "Username taken", body = ErrorEnvelope),
        (status = 422, description = "Invalid username, password or e-mail", body = ErrorEnvelope),
        (status = 429, description = "Too many attempts from this address", body = ErrorEnvelope),
    ))]
async fn signup(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    Json(req): Json<SignupRequest>,
) -> ApiResult<impl IntoResponse> {
    if !state.config.auth.allow_signup {
        return Err(ApiError::Forbidden("sign-up is disabled on this server"));
    }
    let user = accounts::register(
        state.store.as_ref(),
        &req.username,
        req.email.as_deref(),
        req.password,
        Role::Learner,
    )
    .await?;
    let (_, token) = auth::start_session(&state, user.id, user_agent(&headers)).await?;
    let jar = jar.add(auth::session_cookie(&state, token.clone()));
    tracing::info!(user.id = %user.id, "signed up");
    Ok((
        StatusCode::CREATED,
        jar,
        Json(AuthResponse {
            user: user.into(),
            token,
        }),
    ))
}

/// A hash no password matches, verified against when the user is unknown so that a wrong
/// username and a wrong password take the same time.
async fn decoy_hash() -> ApiResult<String> {
    static DECOY: OnceCell<String> = OnceCell::const_new();
    DECOY
        .get_or_try_init(|| password::hash(Uuid::new_v4().to_string()))
        .await
        .cloned()
}

/// Sign in with a username and password.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in; session cookie set", body = AuthResponse),
        (status = 401, description = "Unknown user or wrong password (the same answer for both)", body = ErrorEnvelope),
        (status = 429, description = "Too many attempts from this address", body = ErrorEnvelope),
    ))]
async fn login(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    Json(req): Json<LoginRequest>,
) -> ApiResult<impl IntoResponse> {
    const WRONG: ApiError = ApiError::Unauthorized("wrong username or password");
    // Out-of-range input can't name a real account; bail before any hashing work.
    let password = Password::parse(req.password).map_err(|_| WRONG)?;
    let user = match Username::parse(&req.username) {
        Ok(name) => state.store.user_by_username(name.as_str()).await?,
        Err(_) => None,
    };
    let (phc, user) = match user {
        Some(user) => match user.password_hash.clone() {
            Some(phc) => (phc, Some(user)),
            None => (decoy_hash().await?, None),
        },
        None => (decoy_hash().await?, None),
    };
    let matches = password::verify(password.expose().to_owned(), phc).await?;
    let Some(user) = user.filter(|_| matches) else {
        return Err(WRONG);
    };
    let (_, token) = auth::start_session(&state, user.id, user_agent(&headers)).await?;
    let jar = jar.add(auth::session_cookie(&state, token.clone()));
    tracing::info!(user.id = %user.id, "logged in");
    Ok((
        jar,
        Json(AuthResponse {
            user: user.into(),
            token,
        }),
    ))
}

/// Sign out: ends the session that made the request and clears the cookie. Personal API tokens
/// are not revoked by this (use `DELETE /api/v1/tokens/{id}`).
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth",
    responses((status = 204, description = "Signed out (also when not signed in)")))]
async fn logout(
    State(state): State<AppState>,
    jar: CookieJar,
    axum::Extension(authenticated): axum::Extension<Authenticated>,
) -> ApiResult<impl IntoResponse> {
    if let Some(p) = authenticated
        .0
        .filter(|p| p.kind == CredentialKind::Session)
    {
        state
            .store
            .revoke_credential(p.user.id, p.credential_id, Utc::now())
            .await?;
        state.auth_cache.forget_credential(p.credential_id);
        state
            .cluster
            .publish(
                sandpit_store::ClusterEventKind::CredentialRevoked,
                p.credential_id,
            )
            .await;
    }
    Ok((
        StatusCode::NO_CONTENT,
        jar.add(auth::clear_session_cookie(&state)),
    ))
}

/// The signed-in user.
#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth",
    security(("session_cookie" = []), ("bearer" = [])),
    responses(
        (status = 200, body = UserView),
        (status = 401, description = "Not signed in", body = ErrorEnvelope),
    ))]
async fn me(CurrentUser(principal): CurrentUser) -> Json<UserView> {
    Json(UserView::from(principal.user.clone()))
}

/// Which sign-in methods are available.
#[utoipa::path(get, path = "/api/v1/auth/providers", tag = "auth",
    responses((status = 200, body = Providers)))]
async fn providers(State(state): State<AppState>) -> Json<Providers> {
    Json(Providers {
        signup: state.config.auth.allow_signup,
        github: state.config.github_enabled(),
    })
}
