//! The HTTP surface: one module per resource, assembled here with the OpenAPI document and the
//! cross-cutting layers (request id, tracing, panics, CORS, body limit, metrics, auth, limits).

mod attempts;
mod auth;
mod files;
pub mod github;
mod hints;
mod labs;
pub mod openapi;
mod ops;
mod runs;
mod sessions;
mod tokens;
mod users;
pub mod views;
mod web;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use tracing::Span;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::state::AppState;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Every documented route with its handler, split into the router and the OpenAPI document.
pub fn documented(state: &AppState) -> (Router<AppState>, serde_json::Value) {
    let limited = auth::limited_router()
        .merge(github::router())
        .route_layer(from_fn_with_state(state.clone(), crate::limits::limit_auth));
    let api = OpenApiRouter::new()
        .merge(limited)
        .merge(auth::router())
        .merge(tokens::router())
        .merge(users::router())
        .merge(runs::router(state))
        .merge(sessions::router())
        .merge(files::router(state))
        .merge(labs::router())
        .merge(attempts::router())
        .merge(hints::router())
        .merge(crate::jobs::routes::router())
        .merge(crate::projects::routes::router(state))
        .merge(crate::agents::routes::router());
    let api = api
        .merge(crate::apps::routes::router(state))
        .merge(crate::databases::routes::router());
    let api = api
        .layer(from_fn_with_state(
            state.clone(),
            crate::cluster::forward::route_sessions,
        ))
        .layer(from_fn_with_state(state.clone(), crate::limits::limit_api))
        .layer(from_fn_with_state(state.clone(), crate::auth::authenticate));
    let (router, doc) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(api)
        .merge(ops::router())
        .routes(routes!(openapi::openapi_json))
        .routes(routes!(openapi::api_docs))
        .split_for_parts();
    (router, openapi::finish(doc))
}

async fn api_not_found() -> ApiError {
    ApiError::NotFound("no such API route".into())
}

async fn method_not_allowed(method: Method) -> ApiError {
    ApiError::MethodNotAllowed(format!("{method} is not allowed on this route"))
}

fn cors(state: &AppState) -> CorsLayer {
    let origins: Vec<HeaderValue> = state
        .config
        .server
        .cors_allowed_origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION, REQUEST_ID])
        .expose_headers([REQUEST_ID, header::RETRY_AFTER])
        .allow_credentials(true)
        .max_age(Duration::from_secs(3600))
}

fn request_span(req: &Request) -> Span {
    let request_id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    // The path only: query strings can carry OAuth codes.
    tracing::info_span!(
        "request",
        request_id = %request_id,
        http.method = %req.method(),
        http.path = %req.uri().path(),
    )
}

/// A client's request id is kept only when it is short and plain (letters, digits, `-_.:`);
/// anything else is dropped so `SetRequestIdLayer` makes a fresh one and logs stay clean.
async fn drop_unusable_request_id(mut req: Request) -> Request {
    let usable = req.headers().get(&REQUEST_ID).is_none_or(|v| {
        v.len() <= 128
            && v.as_bytes()
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(b))
    });
    if !usable {
        req.headers_mut().remove(&REQUEST_ID);
    }
    req
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ApiError::internal(anyhow::anyhow!("handler panicked")).into_response()
}

/// The whole application router.
pub fn router(state: AppState) -> Router {
    let (documented, openapi) = documented(&state);
    let openapi = Arc::new(openapi);
    let documented = documented
        .merge(crate::apps::proxy::router())
        .merge(crate::compat::judge0::router(&state))
        .merge(crate::compat::piston::router(&state));
    let router = documented
        .route("/api", any(api_not_found))
        .route("/api/{*rest}", any(api_not_found))
        .fallback(web::spa)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::Extension(openapi))
        .layer(from_fn_with_state(state.clone(), crate::metrics::track));
    // Requests for an app's own host never reach the platform's routes.
    let router = router.layer(from_fn_with_state(
        state.clone(),
        crate::apps::proxy::host_mode,
    ));
    router
        .layer(DefaultBodyLimit::max(state.config.server.body_limit_bytes))
        .layer(cors(&state))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_request(())
                .on_response(|res: &Response, latency: Duration, _: &Span| {
                    tracing::info!(
                        http.status = res.status().as_u16(),
                        duration_ms = latency.as_secs_f64() * 1000.0,
                        "request finished"
                    );
                })
                .on_failure(()),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(axum::middleware::map_request(drop_unusable_request_id))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ))
        .with_state(state)
}

/// The OpenAPI document as JSON (for `sandpit openapi` and the snapshot test).
pub fn openapi_document(state: &AppState) -> serde_json::Value {
    documented(state).1
}
