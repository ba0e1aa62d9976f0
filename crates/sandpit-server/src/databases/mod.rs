//! Per-user databases (issue 13): each user may have one database of their own — a SQLite
//! file with the embedded default ([`sqlite`]), or a role and a database on a configured
//! PostgreSQL server ([`postgres`]) — that their apps reach through `DATABASE_URL`, and a
//! viewer (tables, paged rows, a console that is read-only unless asked) in the web app.
//! Nobody reaches another user's: the viewer only ever opens the caller's own, and an app's
//! sandbox holds only its owner's file or socket.

pub mod config;
pub mod model;
pub mod postgres;
pub mod routes;
pub mod sqlite;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::Utc;
use sandpit_sandbox::Volume;
use sandpit_store::{Store, StoreError, UserDatabase};
use serde_json::json;
use uuid::Uuid;

use self::config::UserDatabasesConfig;
use self::model::{
    Credentials, DatabaseCreated, DatabaseView, Engine, QueryResult, RowsPage, TableList,
};
use self::postgres::Postgres;
use crate::error::ApiError;
use crate::sandbox::Sandboxes;

/// What an app's sandbox gets of its owner's database.
pub struct AppDatabase {
    pub volume: Volume,
    pub env: BTreeMap<String, String>,
}

pub struct Databases {
    store: Arc<dyn Store>,
    config: UserDatabasesConfig,
    /// `data_dir/user-databases`: a directory per user (the SQLite file, or the socket).
    root: PathBuf,
    sandboxes: Arc<Sandboxes>,
    postgres: Option<Postgres>,
}

/// A viewer's refusal as the API's error.
pub(crate) fn viewer_error(code: &str, message: String) -> ApiError {
    match code {
        "read_only" => ApiError::Refused {
            code: "read_only",
            message,
        },
        "no_such_table" => ApiError::NotFound(message),
        "sql_error" | "statement_timeout" => ApiError::Validation {
            field: "sql",
            message,
        },
        "bad_request" => ApiError::BadRequest(message),
        other => ApiError::internal(anyhow::anyhow!("database viewer: {other}: {message}")),
    }
}

fn none() -> ApiError {
    ApiError::NotFound("you have no database yet: make one with POST /api/v1/database".into())
}

impl Databases {
    pub fn new(
        config: UserDatabasesConfig,
        data_dir: &std::path::Path,
        store: Arc<dyn Store>,
        sandboxes: Arc<Sandboxes>,
    ) -> anyhow::Result<Self> {
        let root = data_dir.join("user-databases");
        let postgres = match &config.postgres_url {
            Some(url) => Some(Postgres::new(url, root.clone(), config.clone())?),
            None => None,
        };
        Ok(Self {
            store,
            config,
            root,
            sandboxes,
            postgres,
        })
    }

    /// The engine a new database gets on this server.
    pub fn engine(&self) -> Engine {
        if self.postgres.is_some() {
            Engine::Postgres
        } else {
            Engine::Sqlite
        }
    }

    fn postgres(&self) -> Result<&Postgres, ApiError> {
        self.postgres.as_ref().ok_or_else(|| ApiError::Unavailable {
            code: "database_unavailable",
            message: "this database is on PostgreSQL, which this server is not configured \
                      to reach (user_databases.postgres_url)"
                .into(),
            retry_after: None,
        })
    }

    async fn row(&self, user_id: Uuid) -> Result<UserDatabase, ApiError> {
        self.store
            .user_database(user_id)
            .await
            .map_err(ApiError::internal)?
            .ok_or_else(none)
    }

    fn engine_of(row: &UserDatabase) -> Result<Engine, ApiError> {
        Engine::parse(&row.engine).ok_or_else(|| {
            ApiError::internal(anyhow::anyhow!("user database engine {:?}", row.engine))
        })
    }

    fn view_of(&self, row: &UserDatabase) -> Result<DatabaseView, ApiError> {
        let engine = Self::engine_of(row)?;
        Ok(DatabaseView {
            engine,
            name: row.name.clone(),
            app_url: match engine {
                Engine::Sqlite => sqlite::app_url(),
                Engine::Postgres => postgres::app_url(&row.name, None),
            },
            size_bytes: match engine {
                Engine::Sqlite => sqlite::size(&self.root, row.user_id),
                Engine::Postgres => None,
            },
            created_at: row.created_at,
            rotated_at: row.rotated_at,
        })
    }

    fn credentials(name: &str, password: String) -> Credentials {
        Credentials {
            username: name.to_owned(),
            database: name.to_owned(),
            app_url: postgres::app_url(name, Some(&password)),
            password,
        }
    }

    pub async fn get(&self, user_id: Uuid) -> Result<DatabaseView, ApiError> {
        self.view_of(&self.row(user_id).await?)
    }

    pub async fn create(&self, user_id: Uuid) -> Result<DatabaseCreated, ApiError> {
        let engine = self.engine();
        let (name, password) = match engine {
            Engine::Sqlite => (sqlite::FILE.to_owned(), None),
            Engine::Postgres => (postgres::name_for(user_id), Some(Postgres::password())),
        };
        // The row first: it claims the user's one database, so two requests never both
        // make (or drop) the objects.
        let row = self
            .store
            .create_user_database(UserDatabase {
                user_id,
                engine: engine.as_str().into(),
                name: name.clone(),
                secret: password.clone(),
                created_at: Utc::now(),
                rotated_at: None,
            })
            .await
            .map_err(|e| match e {
                StoreError::Conflict { .. } => ApiError::Refused {
                    code: "database_exists",
                    message: "you have a database already (one per user)".into(),
                },
                e => ApiError::internal(e),
            })?;
        let made = match (engine, &password) {
            (Engine::Postgres, Some(password)) => self.postgres()?.create(&name, password).await,
            _ => {
                let root = self.root.clone();
                tokio::task::spawn_blocking(move || {
                    // A directory left by a database deleted half-way goes first.
                    sqlite::delete(&root, user_id)?;
                    sqlite::create(&root, user_id)
                })
                .await
                .map_err(ApiError::internal)
                .and_then(|r| r.map_err(ApiError::internal))
            }
        };
        if let Err(e) = made {
            let _ = self.store.delete_user_database(user_id).await;
            return Err(e);
        }
        tracing::info!(user.id = %user_id, engine = engine.as_str(), "user database created");
        Ok(DatabaseCreated {
            database: self.view_of(&row)?,
            credentials: password.map(|p| Self::credentials(&name, p)),
            redeploys: Vec::new(),
        })
    }

    /// A new password for the role (PostgreSQL); apps started from now on get it.
    pub async fn rotate(&self, user_id: Uuid) -> Result<DatabaseCreated, ApiError> {
        let row = self.row(user_id).await?;
        if Self::engine_of(&row)? == Engine::Sqlite {
            return Err(ApiError::Refused {
                code: "no_credentials",
                message: "a SQLite database is a file your apps open: it has no credentials \
                          to rotate"
                    .into(),
            });
        }
        let password = self.postgres()?.rotate(&row.name).await?;
        let at = Utc::now();
        self.store
            .rotate_user_database(user_id, &password, at)
            .await
            .map_err(ApiError::internal)?;
        tracing::info!(user.id = %user_id, "user database credentials rotated");
        let row = UserDatabase {
            secret: Some(password.clone()),
            rotated_at: Some(at),
            ..row
        };
        Ok(DatabaseCreated {
            database: self.view_of(&row)?,
            credentials: Some(Self::credentials(&row.name, password)),
            redeploys: Vec::new(),
        })
    }

    pub async fn delete(&self, user_id: Uuid) -> Result<(), ApiError> {
        let row = self.row(user_id).await?;
        match Self::engine_of(&row)? {
            Engine::Sqlite => {
                let root = self.root.clone();
                tokio::task::spawn_blocking(move || sqlite::delete(&root, user_id))
                    .await
                    .map_err(ApiError::internal)?
                    .map_err(ApiError::internal)?;
            }
            Engine::Postgres => {
                let pg = self.postgres()?;
                pg.stop_forwarder(user_id);
                pg.drop_objects(&row.name).await?;
                let root = self.root.clone();
                let _ = tokio::task::spawn_blocking(move || sqlite::delete(&root, user_id)).await;
            }
        }
        self.store
            .delete_user_database(user_id)
            .await
            .map_err(ApiError::internal)?;
        tracing::info!(user.id = %user_id, "user database deleted");
        Ok(())
    }

    fn secret(row: &UserDatabase) -> Result<&str, ApiError> {
        row.secret.as_deref().ok_or_else(|| {
            ApiError::internal(anyhow::anyhow!("a PostgreSQL database without a password"))
        })
    }

    pub async fn tables(&self, user_id: Uuid) -> Result<TableList, ApiError> {
        let row = self.row(user_id).await?;
        match Self::engine_of(&row)? {
            Engine::Sqlite => {
                let ok = sqlite::view(
                    &self.sandboxes,
                    &self.config,
                    &self.root,
                    user_id,
                    json!({"op": "tables"}),
                )
                .await?;
                serde_json::from_value(ok).map_err(ApiError::internal)
            }
            Engine::Postgres => {
                self.postgres()?
                    .tables(&row.name, Self::secret(&row)?)
                    .await
            }
        }
    }

    pub async fn rows(
        &self,
        user_id: Uuid,
        table: &str,
        offset: Option<u64>,
        limit: Option<u32>,
    ) -> Result<RowsPage, ApiError> {
        let offset = offset.unwrap_or(0);
        let limit = limit.unwrap_or(self.config.max_rows);
        if !(1..=self.config.max_rows).contains(&limit) {
            return Err(ApiError::Validation {
                field: "limit",
                message: format!("must be 1 to {}", self.config.max_rows),
            });
        }
        if offset > i64::MAX as u64 {
            return Err(ApiError::Validation {
                field: "offset",
                message: "is too large".into(),
            });
        }
        let row = self.row(user_id).await?;
        match Self::engine_of(&row)? {
            Engine::Sqlite => {
                let ok = sqlite::view(
                    &self.sandboxes,
                    &self.config,
                    &self.root,
                    user_id,
                    json!({"op": "rows", "table": table, "offset": offset, "limit": limit}),
                )
                .await?;
                serde_json::from_value(ok).map_err(ApiError::internal)
            }
            Engine::Postgres => {
                self.postgres()?
                    .rows(&row.name, Self::secret(&row)?, table, offset, limit)
                    .await
            }
        }
    }

    pub async fn query(
        &self,
        user_id: Uuid,
        sql: &str,
        write: bool,
    ) -> Result<QueryResult, ApiError> {
        if sql.trim().is_empty() || sql.len() > 100_000 || sql.contains('\0') {
            return Err(ApiError::Validation {
                field: "sql",
                message: "must be one SQL statement of at most 100000 bytes".into(),
            });
        }
        let row = self.row(user_id).await?;
        let result = match Self::engine_of(&row)? {
            Engine::Sqlite => {
                let ok = sqlite::view(
                    &self.sandboxes,
                    &self.config,
                    &self.root,
                    user_id,
                    json!({"op": "query", "sql": sql, "write": write}),
                )
                .await?;
                serde_json::from_value(ok).map_err(ApiError::internal)?
            }
            Engine::Postgres => {
                self.postgres()?
                    .query(&row.name, Self::secret(&row)?, sql, write)
                    .await?
            }
        };
        if write {
            tracing::info!(user.id = %user_id, "user database written from the console");
        }
        Ok(result)
    }

    /// What the user's apps get: the volume holding their file or socket, and the variables
    /// that point there. `None` when they have no database (or it cannot be reached now:
    /// the app then starts without one, and says so in its log).
    pub async fn for_apps(&self, user_id: Uuid) -> Result<Option<AppDatabase>, String> {
        let row = match self.store.user_database(user_id).await {
            Ok(Some(row)) => row,
            Ok(None) => return Ok(None),
            Err(e) => return Err(format!("the database could not be looked up: {e}")),
        };
        let engine = Self::engine_of(&row).map_err(|e| e.to_string())?;
        Ok(Some(match engine {
            Engine::Sqlite
                if !std::fs::symlink_metadata(sqlite::dir(&self.root, user_id))
                    .is_ok_and(|m| m.is_dir()) =>
            {
                return Err("the database's directory is missing: delete and make it again".into());
            }
            Engine::Sqlite => AppDatabase {
                volume: sqlite::volume(&self.root, user_id),
                env: BTreeMap::from([
                    ("DATABASE_URL".into(), sqlite::app_url()),
                    (
                        "DATABASE_PATH".into(),
                        format!("{}/{}", sqlite::MOUNT, sqlite::FILE),
                    ),
                ]),
            },
            Engine::Postgres => {
                let pg = self.postgres().map_err(|e| e.to_string())?;
                let password = Self::secret(&row).map_err(|e| e.to_string())?;
                pg.ensure_forwarder(user_id).map_err(|e| e.to_string())?;
                AppDatabase {
                    volume: pg.volume(user_id),
                    env: BTreeMap::from([
                        (
                            "DATABASE_URL".into(),
                            postgres::app_url(&row.name, Some(password)),
                        ),
                        ("PGHOST".into(), postgres::MOUNT.into()),
                        ("PGUSER".into(), row.name.clone()),
                        ("PGDATABASE".into(), row.name.clone()),
                        ("PGPASSWORD".into(), password.to_owned()),
                    ]),
                }
            }
        }))
    }
}
