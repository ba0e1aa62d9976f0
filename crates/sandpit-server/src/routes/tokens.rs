//! `/api/v1/tokens`: personal API tokens for scripts and CLIs.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::Utc;
use sandpit_store::{CredentialKind, NewCredential};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::views::TokenView;
use crate::auth::{CurrentUser, token};
use crate::domain::TokenName;
use crate::error::{ApiError, ApiResult, ErrorEnvelope, Json, Path};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_token, list_tokens))
        .routes(routes!(delete_token))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// What the token is for, 1–64 characters.
    #[schema(example = "ci")]
    pub name: String,
    /// Days until it expires (1–3650); omitted: it never expires.
    #[schema(minimum = 1, maximum = 3650)]
    pub expires_in_days: Option<u32>,
}

/// The new token. `secret` is shown this once; sandpit keeps only its hash.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedToken {
    pub token: TokenView,
    #[schema(example = "spt_Ab3dE9xY…")]
    pub secret: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenList {
    pub tokens: Vec<TokenView>,
}

/// Create a personal API token.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens",
    security(("session_cookie" = []), ("bearer" = [])),
    request_body = CreateToken,
    responses(
        (status = 201, body = CreatedToken),
        (status = 401, body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope),
    ))]
async fn create_token(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
    Json(req): Json<CreateToken>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    let name = TokenName::parse(&req.name)?;
    let now = Utc::now();
    let expires_at = match req.expires_in_days {
        None => None,
        Some(days @ 1..=3650) => Some(now + chrono::Duration::days(i64::from(days))),
        Some(_) => {
            return Err(ApiError::Validation {
                field: "expires_in_days",
                message: "must be between 1 and 3650".into(),
            });
        }
    };
    let minted = token::mint(CredentialKind::ApiToken);
    let credential = state
        .store
        .create_credential(NewCredential {
            id: Uuid::now_v7(),
            user_id: principal.user.id,
            kind: CredentialKind::ApiToken,
            name: name.into_inner(),
            prefix: minted.display_prefix,
            token_hash: minted.hash,
            created_at: now,
            expires_at,
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            token: credential.into(),
            secret: minted.value,
        }),
    ))
}

/// List your personal API tokens (newest first; secrets are never shown again).
#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens",
    security(("session_cookie" = []), ("bearer" = [])),
    responses((status = 200, body = TokenList), (status = 401, body = ErrorEnvelope)))]
async fn list_tokens(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
) -> ApiResult<Json<TokenList>> {
    let tokens = state.store.list_api_tokens(principal.user.id).await?;
    Ok(Json(TokenList {
        tokens: tokens.into_iter().map(TokenView::from).collect(),
    }))
}

/// Revoke one of your personal API tokens. Someone else's token id answers 404.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens",
    security(("session_cookie" = []), ("bearer" = [])),
    params(("id" = Uuid, Path, description = "Token id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 400, description = "Malformed id", body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
    ))]
async fn delete_token(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    // Session ids are never shown by the API, so only token ids can be named here.
    let revoked = state
        .store
        .revoke_credential(principal.user.id, id, Utc::now())
        .await?;
    state.auth_cache.forget_credential(id);
    if !revoked {
        return Err(ApiError::not_found("token"));
    }
    // Other replicas' caches forget it within a heartbeat.
    state
        .cluster
        .publish(sandpit_store::ClusterEventKind::CredentialRevoked, id)
        .await;
    Ok(StatusCode::NO_CONTENT)
}
