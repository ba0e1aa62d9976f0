//! `/api/v1/users`: administration of accounts.

use axum::extract::State;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::views::{RoleName, UserView};
use crate::auth::{Admin, RequireRole};
use crate::error::{ApiError, ApiResult, ErrorEnvelope, Json, Path};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(set_role))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetRole {
    pub role: RoleName,
}

/// Change a user's role (admins only).
#[utoipa::path(put, path = "/api/v1/users/{id}/role", tag = "users",
    security(("session_cookie" = []), ("bearer" = [])),
    params(("id" = Uuid, Path, description = "User id")),
    request_body = SetRole,
    extensions(("x-sandpit-role" = json!("admin"))),
    responses(
        (status = 200, body = UserView),
        (status = 401, body = ErrorEnvelope),
        (status = 403, description = "Not an admin", body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
    ))]
async fn set_role(
    State(state): State<AppState>,
    _admin: RequireRole<Admin>,
    Path(id): Path<Uuid>,
    Json(req): Json<SetRole>,
) -> ApiResult<Json<UserView>> {
    state
        .store
        .set_user_role(id, req.role.into())
        .await
        .map_err(|e| match e {
            sandpit_store::StoreError::NotFound => ApiError::not_found("user"),
            other => other.into(),
        })?;
    state.auth_cache.forget_user(id);
    state
        .cluster
        .publish(sandpit_store::ClusterEventKind::UserChanged, id)
        .await;
    let user = state
        .store
        .user_by_id(id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    Ok(Json(user.into()))
}
