//! Drop-in APIs of the code-execution services people already have clients for, answered by
//! sandpit's own runs engine and job queue: Judge0 CE under `/judge0`, Piston v2 under
//! `/piston`.

pub mod judge0;
pub mod piston;

use axum::Router;
use axum::middleware::from_fn_with_state;

use crate::state::AppState;

/// What every compatible API's routes share with sandpit's own: a body as large as a run
/// request, the API rate limit, and the caller resolved from its credential (each API first
/// moves its own credential header into `Authorization: Bearer`).
fn with_api_layers(routes: Router<AppState>, state: &AppState) -> Router<AppState> {
    routes
        .layer(axum::extract::DefaultBodyLimit::max(
            state.config.runs.max_request_bytes,
        ))
        .layer(from_fn_with_state(state.clone(), crate::limits::limit_api))
        .layer(from_fn_with_state(state.clone(), crate::auth::authenticate))
}
