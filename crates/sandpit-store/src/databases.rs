//! Per-user databases: which user has one, of which engine, and (PostgreSQL) its role's
//! current password. The SQL is written once for both engines ([`database_store_impl!`]).
//!
//! The password is kept, unlike tokens (whose SHA-256 alone is): the server hands it to the
//! user's apps as `DATABASE_URL`. The API shows it once, when it is made or rotated.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::Result;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserDatabase {
    pub user_id: Uuid,
    /// `sqlite` or `postgres`.
    pub engine: String,
    /// PostgreSQL: the database's and its role's name; SQLite: the file's name.
    pub name: String,
    /// PostgreSQL: the role's password.
    pub secret: Option<String>,
    pub created_at: DateTime<Utc>,
    pub rotated_at: Option<DateTime<Utc>>,
}

/// The [`crate::StoreError::Conflict`] constraint of [`DatabaseStore::create_user_database`]
/// when the user has one already.
pub const ONE_PER_USER: &str = "user_databases.user_id";

#[async_trait]
pub trait DatabaseStore: Send + Sync {
    /// One per user: a second → `Conflict { ONE_PER_USER }`; an unknown user → `NotFound`.
    async fn create_user_database(&self, db: UserDatabase) -> Result<UserDatabase>;
    async fn user_database(&self, user_id: Uuid) -> Result<Option<UserDatabase>>;
    /// Records a new password. False when the user has no database.
    async fn rotate_user_database(
        &self,
        user_id: Uuid,
        secret: &str,
        at: DateTime<Utc>,
    ) -> Result<bool>;
    /// False when there was none.
    async fn delete_user_database(&self, user_id: Uuid) -> Result<bool>;
}

macro_rules! user_database_cols {
    () => {
        "user_id, engine, name, secret, created_at, rotated_at"
    };
}

/// Decodes [`user_database_cols!`].
pub(crate) fn user_database_at(row: &impl crate::jobs::Columns) -> Result<UserDatabase> {
    Ok(UserDatabase {
        user_id: row.uuid(0, "user_databases.user_id")?,
        engine: row.text(1)?,
        name: row.text(2)?,
        secret: row.opt_text(3)?,
        created_at: row.time(4, "user_databases.created_at")?,
        rotated_at: row.opt_time(5, "user_databases.rotated_at")?,
    })
}

/// The [`DatabaseStore`] implementation of one engine, written once, in the terms
/// `job_store_impl!` uses.
macro_rules! database_store_impl {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::databases::DatabaseStore for $store {
            async fn create_user_database(
                &self,
                db: $crate::databases::UserDatabase,
            ) -> $crate::Result<$crate::databases::UserDatabase> {
                let at = micros(db.created_at);
                let done = sqlx::query(
                    "INSERT INTO user_databases (user_id, engine, name, secret, created_at, \
                     rotated_at) VALUES ($1, $2, $3, $4, $5, NULL) \
                     ON CONFLICT (user_id) DO NOTHING",
                )
                .bind(id_arg(db.user_id))
                .bind(&db.engine)
                .bind(&db.name)
                .bind(&db.secret)
                .bind(ts_arg(at))
                .execute(&self.pool)
                .await
                .map_err(map_err)?;
                if done.rows_affected() == 0 {
                    return Err($crate::StoreError::Conflict {
                        constraint: $crate::databases::ONE_PER_USER,
                    });
                }
                Ok($crate::databases::UserDatabase {
                    created_at: at,
                    rotated_at: None,
                    ..db
                })
            }

            async fn user_database(
                &self,
                user_id: uuid::Uuid,
            ) -> $crate::Result<Option<$crate::databases::UserDatabase>> {
                let row = sqlx::query(concat!(
                    "SELECT ",
                    user_database_cols!(),
                    " FROM user_databases WHERE user_id = $1"
                ))
                .bind(id_arg(user_id))
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
                row.as_ref()
                    .map($crate::databases::user_database_at)
                    .transpose()
            }

            async fn rotate_user_database(
                &self,
                user_id: uuid::Uuid,
                secret: &str,
                at: chrono::DateTime<chrono::Utc>,
            ) -> $crate::Result<bool> {
                let done = sqlx::query(
                    "UPDATE user_databases SET secret = $2, rotated_at = $3 WHERE user_id = $1",
                )
                .bind(id_arg(user_id))
                .bind(secret)
                .bind(ts_arg(micros(at)))
                .execute(&self.pool)
                .await
                .map_err(map_err)?;
                Ok(done.rows_affected() > 0)
            }

            async fn delete_user_database(&self, user_id: uuid::Uuid) -> $crate::Result<bool> {
                let done = sqlx::query("DELETE FROM user_databases WHERE user_id = $1")
                    .bind(id_arg(user_id))
                    .execute(&self.pool)
                    .await
                    .map_err(map_err)?;
                Ok(done.rows_affected() > 0)
            }
        }
    };
}
