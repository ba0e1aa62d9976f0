//! `POST /api/v1/sessions/{id}/hint` and `/explain`: help for the learner, from a language
//! model when one is configured, else from the lab's hint ladder; the answer says which.
//! Both share a budget per session (`labs.hints_per_minute`, beyond: 429 + Retry-After).

use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::CurrentUser;
use crate::error::{ApiResult, ErrorEnvelope, Json, OptionalJson, Path};
use crate::labs::model::{ExplainRequest, HintRequest, HintView};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(hint))
        .routes(routes!(explain))
}

/// A hint for a step (the caller's first step not yet passed when `step` is absent). Without
/// a language model, each request climbs the ladder: the step's authored hints, then the
/// hints of the last judge failures.
#[utoipa::path(post, path = "/api/v1/sessions/{id}/hint", tag = "labs",
    security(("session_cookie" = []), ("bearer" = [])),
    params(("id" = Uuid, Path)),
    request_body(content = HintRequest, description = "May be empty"),
    responses(
        (status = 200, body = HintView),
        (status = 401, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 409, description = "`session_ended`, `not_a_lab_session`", body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope),
        (status = 429, description = "Over `labs.hints_per_minute`; see Retry-After", body = ErrorEnvelope),
    ))]
async fn hint(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
    Path(id): Path<Uuid>,
    OptionalJson(req): OptionalJson<HintRequest>,
) -> ApiResult<Json<HintView>> {
    Ok(Json(
        state
            .labs
            .hint(principal.user.id, id, req.step.as_deref())
            .await?,
    ))
}

/// Explains a topic, some code or an error message, in the context of the lab's current step.
#[utoipa::path(post, path = "/api/v1/sessions/{id}/explain", tag = "labs",
    security(("session_cookie" = []), ("bearer" = [])),
    params(("id" = Uuid, Path)),
    request_body = ExplainRequest,
    responses(
        (status = 200, body = HintView),
        (status = 401, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope),
    ))]
async fn explain(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
    Path(id): Path<Uuid>,
    Json(req): Json<ExplainRequest>,
) -> ApiResult<Json<HintView>> {
    Ok(Json(state.labs.explain(principal.user.id, id, req).await?))
}
