//! `/api/v1/database`: the caller's own database — making it, its credentials (rotated on
//! demand, shown once), deleting it — and the viewer: tables, a table's rows a page at a time,
//! and a console that runs one statement, read-only unless `write` is set.

use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::model::{
    DatabaseCreated, DatabaseView, QueryRequest, QueryResult, RowsPage, RowsQuery, TableList,
};
use crate::auth::CurrentUser;
use crate::error::{ApiResult, ErrorEnvelope, Json, Path, Query};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_database, get_database, delete_database))
        .routes(routes!(rotate_credentials))
        .routes(routes!(list_tables))
        .routes(routes!(table_rows))
        .routes(routes!(run_query))
}

/// Make the caller's database: a SQLite file, or a PostgreSQL role and database when the
/// server has one configured (its password is in this answer and never shown again).
#[utoipa::path(post, path = "/api/v1/database", tag = "database",
    security(("session_cookie" = []), ("bearer" = [])),
    responses(
        (status = 201, body = DatabaseCreated),
        (status = 409, description = "`database_exists`: one per user", body = ErrorEnvelope),
        (status = 502, description = "The PostgreSQL server refused or is unreachable", body = ErrorEnvelope),
        (status = 503, description = "No sandbox backend (the SQLite viewer needs one)", body = ErrorEnvelope),
    ))]
async fn create_database(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
) -> ApiResult<(StatusCode, Json<DatabaseCreated>)> {
    let created = state.databases.create(principal.user.id).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// The caller's database (without its password).
#[utoipa::path(get, path = "/api/v1/database", tag = "database",
    security(("session_cookie" = []), ("bearer" = [])),
    responses(
        (status = 200, body = DatabaseView),
        (status = 404, description = "The caller has none", body = ErrorEnvelope),
    ))]
async fn get_database(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
) -> ApiResult<Json<DatabaseView>> {
    Ok(Json(state.databases.get(principal.user.id).await?))
}

/// Delete the caller's database and everything in it. Running apps keep what they hold open
/// until they restart.
#[utoipa::path(delete, path = "/api/v1/database", tag = "database",
    security(("session_cookie" = []), ("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "The caller has none", body = ErrorEnvelope),
        (status = 502, body = ErrorEnvelope),
    ))]
async fn delete_database(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
) -> ApiResult<StatusCode> {
    state.databases.delete(principal.user.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A new password for the caller's PostgreSQL role, shown once; the old one stops working.
/// The caller's running apps are deployed again from their live versions with the new one
/// (traffic moves when each is healthy); `redeploys` are those deploys' jobs.
#[utoipa::path(post, path = "/api/v1/database/rotate", tag = "database",
    security(("session_cookie" = []), ("bearer" = [])),
    responses(
        (status = 200, body = DatabaseCreated),
        (status = 404, description = "The caller has none", body = ErrorEnvelope),
        (status = 409, description = "`no_credentials`: a SQLite file has none", body = ErrorEnvelope),
        (status = 502, body = ErrorEnvelope),
    ))]
async fn rotate_credentials(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
) -> ApiResult<Json<DatabaseCreated>> {
    let mut rotated = state.databases.rotate(principal.user.id).await?;
    rotated.redeploys = state.apps.redeploy_live(principal.user.id).await;
    Ok(Json(rotated))
}

/// The tables and views of the caller's database, with their columns and row counts.
#[utoipa::path(get, path = "/api/v1/database/tables", tag = "database",
    security(("session_cookie" = []), ("bearer" = [])),
    responses(
        (status = 200, body = TableList),
        (status = 404, description = "The caller has no database", body = ErrorEnvelope),
        (status = 502, body = ErrorEnvelope),
        (status = 503, body = ErrorEnvelope),
    ))]
async fn list_tables(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
) -> ApiResult<Json<TableList>> {
    Ok(Json(state.databases.tables(principal.user.id).await?))
}

/// A page of a table's (or view's) rows.
#[utoipa::path(get, path = "/api/v1/database/tables/{name}/rows", tag = "database",
    security(("session_cookie" = []), ("bearer" = [])),
    params(("name" = String, Path, description = "A table or view"), RowsQuery),
    responses(
        (status = 200, body = RowsPage),
        (status = 404, description = "No database, or no such table", body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope),
        (status = 502, body = ErrorEnvelope),
        (status = 503, body = ErrorEnvelope),
    ))]
async fn table_rows(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
    Path(name): Path<String>,
    Query(page): Query<RowsQuery>,
) -> ApiResult<Json<RowsPage>> {
    let rows = state
        .databases
        .rows(principal.user.id, &name, page.offset, page.limit)
        .await?;
    Ok(Json(rows))
}

/// Run one SQL statement: read-only unless `write` (then it commits).
#[utoipa::path(post, path = "/api/v1/database/query", tag = "database",
    security(("session_cookie" = []), ("bearer" = [])),
    request_body = QueryRequest,
    responses(
        (status = 200, body = QueryResult),
        (status = 404, description = "The caller has no database", body = ErrorEnvelope),
        (status = 409, description = "`read_only`: the statement writes and `write` is not set", body = ErrorEnvelope),
        (status = 422, description = "The database refused the statement (its message), or it ran too long", body = ErrorEnvelope),
        (status = 502, body = ErrorEnvelope),
        (status = 503, body = ErrorEnvelope),
    ))]
async fn run_query(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
    Json(req): Json<QueryRequest>,
) -> ApiResult<Json<QueryResult>> {
    let result = state
        .databases
        .query(principal.user.id, &req.sql, req.write)
        .await?;
    Ok(Json(result))
}
