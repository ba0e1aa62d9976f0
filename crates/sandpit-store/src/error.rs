/// Errors from the store. Constraint violations are mapped to domain variants in one place
/// per backend so callers never match on SQL error codes.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness (or similar) constraint refused the write; `constraint` names it in the
    /// backend-neutral form `table.column` (e.g. `users.username`).
    #[error("conflict on {constraint}")]
    Conflict { constraint: &'static str },
    /// A referenced row does not exist.
    #[error("not found")]
    NotFound,
    /// The database URL names no supported engine.
    #[error("unsupported database URL: expected sqlite: or postgres://")]
    UnsupportedUrl,
    /// Migrations failed.
    #[error("migration failed")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// A stored value could not be decoded (e.g. an unknown role string).
    #[error("corrupt value in {column}: {detail}")]
    Corrupt {
        column: &'static str,
        detail: String,
    },
    /// Any other database error.
    #[error("database error")]
    Database(#[source] sqlx::Error),
}
