//! `[user_databases]`: where users' own databases live, and the viewer's bounds.

use std::path::PathBuf;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::config::ConfigError;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UserDatabasesConfig {
    /// A PostgreSQL server where each user gets a role and a database of their own, as an
    /// account that may create roles and databases (`CREATEROLE CREATEDB`), e.g.
    /// `postgres://sandpit_admin:…@db.internal:5432/postgres`. Empty: each user's database
    /// is a SQLite file in `data_dir/user-databases`.
    #[serde(serialize_with = "crate::config::serialize_secret_opt")]
    pub postgres_url: Option<SecretString>,
    /// Read `postgres_url` from this file instead.
    pub postgres_url_file: Option<PathBuf>,
    /// Rows one viewer page or console answer holds at most.
    pub max_rows: u32,
    /// Longest text of one cell the viewer sends (longer ones are cut and marked).
    pub max_cell_chars: u32,
    /// How long one viewer statement may run.
    pub statement_timeout_ms: u64,
    /// Connections one user's apps may hold to their PostgreSQL database at once.
    pub max_connections: u32,
}

impl Default for UserDatabasesConfig {
    fn default() -> Self {
        Self {
            postgres_url: None,
            postgres_url_file: None,
            max_rows: 200,
            max_cell_chars: 2000,
            statement_timeout_ms: 5000,
            max_connections: 10,
        }
    }
}

impl UserDatabasesConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, problem: &str| ConfigError::Invalid {
            key,
            problem: problem.to_owned(),
        };
        if !(1..=10_000).contains(&self.max_rows) {
            return Err(invalid("user_databases.max_rows", "must be 1 to 10000"));
        }
        if self.max_cell_chars < 16 {
            return Err(invalid(
                "user_databases.max_cell_chars",
                "must be at least 16",
            ));
        }
        if !(100..=600_000).contains(&self.statement_timeout_ms) {
            return Err(invalid(
                "user_databases.statement_timeout_ms",
                "must be 100 to 600000",
            ));
        }
        if !(1..=1000).contains(&self.max_connections) {
            return Err(invalid(
                "user_databases.max_connections",
                "must be 1 to 1000",
            ));
        }
        Ok(())
    }
}
