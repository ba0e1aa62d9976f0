//! JSON shapes of `/api/v1/database`: the caller's own database, its credentials (shown once)
//! and the viewer's tables, rows and console.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// A SQLite file, reached by apps at `/data/app.sqlite`.
    Sqlite,
    /// A database and a role of its own on the configured PostgreSQL server.
    Postgres,
}

impl Engine {
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Sqlite => "sqlite",
            Engine::Postgres => "postgres",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Engine::Sqlite, Engine::Postgres]
            .into_iter()
            .find(|e| e.as_str() == raw)
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DatabaseView {
    pub engine: Engine,
    /// PostgreSQL: the database's (and its role's) name; SQLite: the file's.
    pub name: String,
    /// What the caller's apps get as `DATABASE_URL`, with the password left out.
    #[schema(example = "sqlite:////data/app.sqlite")]
    pub app_url: String,
    /// SQLite: the file's size now.
    pub size_bytes: Option<u64>,
    pub created_at: DateTime<Utc>,
    pub rotated_at: Option<DateTime<Utc>>,
}

/// A PostgreSQL role's credentials: shown when the database is made and when they are
/// rotated, never again.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Credentials {
    pub username: String,
    pub password: String,
    pub database: String,
    /// How an app of the caller's reaches it (`DATABASE_URL`, with the password).
    pub app_url: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DatabaseCreated {
    pub database: DatabaseView,
    /// PostgreSQL only (a SQLite file has none).
    pub credentials: Option<Credentials>,
    /// After a rotation: the jobs deploying the caller's running apps again with the new
    /// credentials (follow them at `/api/v1/jobs/{id}/events`).
    pub redeploys: Vec<uuid::Uuid>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Column {
    pub name: String,
    /// The declared type, as the engine names it (may be empty in SQLite).
    #[serde(rename = "type")]
    pub ty: String,
    #[serde(default)]
    pub primary_key: bool,
    #[serde(default)]
    pub not_null: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TableView {
    pub name: String,
    /// `table` or `view`.
    pub kind: String,
    /// Rows in it now (views: not counted).
    pub rows: Option<u64>,
    pub columns: Vec<Column>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TableList {
    pub tables: Vec<TableView>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RowsQuery {
    /// Rows to skip (default 0).
    pub offset: Option<u64>,
    /// Rows to send (default and most: `user_databases.max_rows`).
    pub limit: Option<u32>,
}

/// A page of a table's rows, in its storage order (SQLite: by rowid; PostgreSQL: by its
/// primary key when it has one).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RowsPage {
    pub columns: Vec<Column>,
    /// Each row's cells in column order: numbers, text, booleans, null; binary as
    /// `{"bytes": n, "hex": "…"}`. Cells longer than the viewer's limit are cut and end in `…`.
    #[schema(value_type = Vec<Vec<Object>>)]
    pub rows: Vec<Vec<serde_json::Value>>,
    pub offset: u64,
    pub limit: u32,
    pub total: u64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryRequest {
    /// One SQL statement.
    #[schema(example = "SELECT * FROM notes ORDER BY id DESC")]
    pub sql: String,
    /// Let it change data or the schema. Without it the statement runs read-only, and one
    /// that writes is refused with `read_only` (the web console asks before it sends this).
    #[serde(default)]
    pub write: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct QueryResult {
    /// Empty for a statement that returns no rows.
    pub columns: Vec<Column>,
    #[schema(value_type = Vec<Vec<Object>>)]
    pub rows: Vec<Vec<serde_json::Value>>,
    /// More rows than were sent (`user_databases.max_rows`).
    pub truncated: bool,
    /// Rows a write changed.
    pub rows_affected: Option<u64>,
}
