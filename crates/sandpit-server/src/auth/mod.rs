//! Who is calling: credentials from the session cookie or `Authorization: Bearer`, resolved once
//! per request by [`authenticate`] and read by the [`CurrentUser`] and [`RequireRole`] extractors.

pub mod cache;
pub mod origin;
pub mod password;
pub mod token;

use std::marker::PhantomData;
use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderMap, header, request::Parts};
use axum::middleware::Next;
use axum::response::Response;
use axum_extra::extract::cookie::{Cookie, SameSite};
use chrono::Utc;
use sandpit_store::{Credential, CredentialKind, NewCredential, Role, User};
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::AppState;

/// An authenticated caller: the user and the credential that proved it.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user: User,
    pub credential_id: Uuid,
    pub kind: CredentialKind,
}

/// What [`authenticate`] found, stored in the request's extensions.
#[derive(Debug, Clone, Default)]
pub struct Authenticated(pub Option<Arc<Principal>>);

/// Where a credential came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Bearer,
    /// The browser attached it: see [`origin`] for what that allows.
    Cookie,
}

/// The presented credential value, if any: a bearer token wins over the cookie.
fn presented<'a>(headers: &'a HeaderMap, cookie_name: &str) -> Option<(&'a str, Source)> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value = value.to_str().ok()?;
        let (scheme, token) = value.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| (token.trim(), Source::Bearer));
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == cookie_name)
        .map(|(_, value)| (value, Source::Cookie))
}

/// Middleware: resolves the caller once per request. Rejects only a cookie-carrying request
/// that changes state or opens a WebSocket from a foreign page (403 `origin_not_allowed`, see
/// [`origin`]); otherwise routes that need a user say so with [`CurrentUser`], so public routes
/// stay public even with a stale cookie.
pub async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let presented = presented(req.headers(), &state.config.auth.cookie_name);
    if presented.is_some_and(|(_, source)| source == Source::Cookie)
        && !state
            .origins
            .cookie_request_allowed(req.method(), req.headers())
    {
        return axum::response::IntoResponse::into_response(ApiError::ForeignOrigin);
    }
    let principal = match presented.and_then(|(value, _)| token::parse(value)) {
        Some(hash) => match resolve(&state, &hash).await {
            Ok(p) => p,
            Err(e) => return axum::response::IntoResponse::into_response(e),
        },
        None => None,
    };
    req.extensions_mut().insert(Authenticated(principal));
    next.run(req).await
}

/// The caller a request's bearer token or session cookie names, outside the API's
/// middleware (the app proxy checks private apps with it).
pub async fn principal_of(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<Arc<Principal>>, ApiError> {
    match presented(headers, &state.config.auth.cookie_name).and_then(|(v, _)| token::parse(v)) {
        Some(hash) => resolve(state, &hash).await,
        None => Ok(None),
    }
}

async fn resolve(state: &AppState, hash: &[u8; 32]) -> Result<Option<Arc<Principal>>, ApiError> {
    if let Some(principal) = state.auth_cache.get(hash) {
        return Ok(Some(principal));
    }
    let now = Utc::now();
    let Some((credential, user)) = state.store.authenticate(hash, now).await? else {
        return Ok(None);
    };
    // Use is recorded when the cache is (re)filled, so `last_used_at` is accurate to about a
    // minute without a write per request.
    state.store.touch_credential(credential.id, now).await?;
    let principal = Arc::new(Principal {
        user,
        credential_id: credential.id,
        kind: credential.kind,
    });
    let expires_in = credential
        .expires_at
        .map(|at| (at - now).to_std().unwrap_or_default());
    state
        .auth_cache
        .insert(*hash, principal.clone(), expires_in);
    Ok(Some(principal))
}

/// Extractor: the signed-in caller, or 401.
#[derive(Debug, Clone)]
pub struct CurrentUser(pub Arc<Principal>);

impl<S: Send + Sync> FromRequestParts<S> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Authenticated>()
            .and_then(|a| a.0.clone())
            .map(CurrentUser)
            .ok_or(ApiError::Unauthorized(
                "sign in, or send a valid token in Authorization: Bearer",
            ))
    }
}

/// A minimum role, as a type, for [`RequireRole`].
pub trait MinRole {
    const ROLE: Role;
}

/// Marker: authors and admins.
pub struct Author;
impl MinRole for Author {
    const ROLE: Role = Role::Author;
}

/// Marker: admins only.
pub struct Admin;
impl MinRole for Admin {
    const ROLE: Role = Role::Admin;
}

/// Extractor: the signed-in caller if their role is at least `R::ROLE`; 401 when not signed in,
/// 403 when the role is too low.
pub struct RequireRole<R: MinRole>(pub Arc<Principal>, PhantomData<R>);

impl<S: Send + Sync, R: MinRole> FromRequestParts<S> for RequireRole<R> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let CurrentUser(principal) = CurrentUser::from_request_parts(parts, state).await?;
        if principal.user.role < R::ROLE {
            return Err(ApiError::Forbidden("your role does not allow this"));
        }
        Ok(Self(principal, PhantomData))
    }
}

/// Creates a sign-in session for a user; returns the credential and its secret value.
pub async fn start_session(
    state: &AppState,
    user_id: Uuid,
    description: &str,
) -> Result<(Credential, String), ApiError> {
    let minted = token::mint(CredentialKind::Session);
    let now = Utc::now();
    let ttl = chrono::Duration::hours(
        i64::try_from(state.config.auth.session_ttl_hours).unwrap_or(i64::MAX / 3600),
    );
    let credential = state
        .store
        .create_credential(NewCredential {
            id: Uuid::now_v7(),
            user_id,
            kind: CredentialKind::Session,
            name: description.chars().take(200).collect(),
            prefix: minted.display_prefix,
            token_hash: minted.hash,
            created_at: now,
            expires_at: Some(now + ttl),
        })
        .await?;
    Ok((credential, minted.value))
}

/// The session cookie: HttpOnly, SameSite=Lax, Secure when the public URL is HTTPS.
pub fn session_cookie(state: &AppState, value: String) -> Cookie<'static> {
    let max_age =
        i64::try_from(state.config.auth.session_ttl_hours.saturating_mul(3600)).unwrap_or(i64::MAX);
    Cookie::build((state.config.auth.cookie_name.clone(), value))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.secure_cookies)
        .max_age(time::Duration::seconds(max_age))
        .build()
}

/// A cookie that clears the session cookie.
pub fn clear_session_cookie(state: &AppState) -> Cookie<'static> {
    let mut cookie = session_cookie(state, String::new());
    cookie.make_removal();
    cookie
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn bearer_wins_and_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; sandpit_session=tok; b=2"),
        );
        assert_eq!(
            presented(&h, "sandpit_session"),
            Some(("tok", Source::Cookie))
        );
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer  bt "),
        );
        assert_eq!(
            presented(&h, "sandpit_session"),
            Some(("bt", Source::Bearer))
        );
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic xyz"));
        assert_eq!(presented(&h, "sandpit_session"), None);
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("sandpit_sessionX=1"),
        );
        assert_eq!(presented(&h, "sandpit_session"), None);
    }
}
