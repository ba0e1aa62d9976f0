//! Deployed apps and their versions: the rows, the [`AppStore`] trait, and its SQL, written
//! once for both engines ([`app_store_impl!`]) as the job queue's is.
//!
//! A version is immutable: the files it was deployed from, as a `.tar.gz` bundle. A deploy
//! adds a `pending` version; when it turns healthy it becomes `live` and the one before it
//! `superseded` (kept, for a rollback), in one transaction with the app's `live_version`.
//! Versions are numbered per app under the app's row lock, so two deploys never share one.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::Result;

#[derive(Debug, Clone)]
pub struct NewApp {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    pub runtime: String,
    pub entry: String,
    pub public: bool,
    pub env: BTreeMap<String, String>,
    pub secrets: BTreeMap<String, String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    pub runtime: String,
    pub entry: String,
    pub public: bool,
    pub pinned: bool,
    pub env: BTreeMap<String, String>,
    pub secrets: BTreeMap<String, String>,
    /// `running` or `stopped`.
    pub desired: String,
    pub live_version: Option<i64>,
    pub last_request_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A change to an app; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct AppPatch {
    pub name: Option<String>,
    pub entry: Option<String>,
    pub public: Option<bool>,
    pub pinned: Option<bool>,
    pub env: Option<BTreeMap<String, String>>,
    pub secrets: Option<BTreeMap<String, String>>,
    pub desired: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewAppVersion {
    pub app_id: Uuid,
    pub bundle: Vec<u8>,
    pub files: u64,
    pub bytes: u64,
    pub source: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AppVersion {
    pub app_id: Uuid,
    pub version: i64,
    pub files: u64,
    pub bytes: u64,
    pub source: String,
    /// `pending`, `live`, `superseded`, `failed` or `cancelled`.
    pub state: String,
    pub job_id: Option<Uuid>,
    pub error: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// How to run it, as its deploy found (set when it went live).
    pub launch: Option<serde_json::Value>,
}

/// The [`crate::StoreError::Conflict`] constraint of [`AppStore::create_app`] when the user
/// has `max_per_user` apps.
pub const APPS_PER_USER: &str = "apps.per_user";

#[async_trait]
pub trait AppStore: Send + Sync {
    /// A user's name taken → `Conflict { constraint: "apps.name" }`; at the cap →
    /// [`APPS_PER_USER`]; an unknown user → [`crate::StoreError::NotFound`].
    async fn create_app(&self, new: NewApp, max_per_user: u32) -> Result<App>;
    async fn app(&self, id: Uuid) -> Result<Option<App>>;
    async fn app_named(&self, user_id: Uuid, name: &str) -> Result<Option<App>>;
    /// A user's apps, newest first.
    async fn apps_of(&self, user_id: Uuid) -> Result<Vec<App>>;
    /// Apps whose owner wants them running and that have a live version.
    async fn running_apps(&self) -> Result<Vec<App>>;
    /// `None` when there is no such app; a taken name → `Conflict { "apps.name" }`.
    async fn update_app(&self, id: Uuid, patch: AppPatch, at: DateTime<Utc>)
    -> Result<Option<App>>;
    /// Deletes it with its versions. False when there was none.
    async fn delete_app(&self, id: Uuid) -> Result<bool>;
    /// Records a request at `at`, if the last one recorded is older than `at - coarse`
    /// (traffic must not turn into a write per request).
    async fn touch_app(&self, id: Uuid, at: DateTime<Utc>, coarse: chrono::TimeDelta)
    -> Result<()>;
    /// Unpinned apps with no request (or, never requested, not created) since `before`.
    async fn idle_apps(&self, before: DateTime<Utc>) -> Result<Vec<App>>;

    /// Adds a `pending` version numbered one past the app's highest; keeps at most `keep`
    /// versions (never the live one, never a pending one). `NotFound` for no such app.
    async fn add_app_version(&self, new: NewAppVersion, keep: u32) -> Result<AppVersion>;
    async fn set_app_version_job(&self, app_id: Uuid, version: i64, job_id: Uuid) -> Result<()>;
    /// Newest first.
    async fn app_versions(&self, app_id: Uuid) -> Result<Vec<AppVersion>>;
    async fn app_version(&self, app_id: Uuid, version: i64) -> Result<Option<AppVersion>>;
    async fn app_bundle(&self, app_id: Uuid, version: i64) -> Result<Option<Vec<u8>>>;
    /// Makes `version` live (and the live one before it `superseded`) in one transaction,
    /// recording how it runs. False when the version is gone (the app was deleted meanwhile).
    async fn make_app_version_live(
        &self,
        app_id: Uuid,
        version: i64,
        launch: serde_json::Value,
        at: DateTime<Utc>,
    ) -> Result<bool>;
    /// Ends a version that never went live: `failed` (with the error) or `cancelled`.
    async fn end_app_version(
        &self,
        app_id: Uuid,
        version: i64,
        state: &str,
        error: Option<serde_json::Value>,
        at: DateTime<Utc>,
    ) -> Result<()>;
}

macro_rules! app_cols {
    () => {
        "id, user_id, name, runtime, entry, public, pinned, env, secrets, desired, live_version, \
         last_request_at, created_at, updated_at"
    };
}

macro_rules! app_version_cols {
    () => {
        "app_id, version, files, bytes, source, state, job_id, error, created_at, finished_at, \
         launch"
    };
}

fn strings(value: serde_json::Value, column: &'static str) -> Result<BTreeMap<String, String>> {
    serde_json::from_value(value).map_err(|e| crate::StoreError::Corrupt {
        column,
        detail: e.to_string(),
    })
}

/// Decodes [`app_cols!`].
pub(crate) fn app_at(row: &impl crate::jobs::Columns) -> Result<App> {
    Ok(App {
        id: row.uuid(0, "apps.id")?,
        user_id: row.uuid(1, "apps.user_id")?,
        name: row.text(2)?,
        runtime: row.text(3)?,
        entry: row.text(4)?,
        public: row.boolean(5)?,
        pinned: row.boolean(6)?,
        env: strings(row.json(7)?, "apps.env")?,
        secrets: strings(row.json(8)?, "apps.secrets")?,
        desired: row.text(9)?,
        live_version: row.opt_int(10)?,
        last_request_at: row.opt_time(11, "apps.last_request_at")?,
        created_at: row.time(12, "apps.created_at")?,
        updated_at: row.time(13, "apps.updated_at")?,
    })
}

/// Decodes [`app_version_cols!`].
pub(crate) fn app_version_at(row: &impl crate::jobs::Columns) -> Result<AppVersion> {
    let count = |v: i64| u64::try_from(v).unwrap_or(0);
    Ok(AppVersion {
        app_id: row.uuid(0, "app_versions.app_id")?,
        version: row.int(1)?,
        files: count(row.int(2)?),
        bytes: count(row.int(3)?),
        source: row.text(4)?,
        state: row.text(5)?,
        job_id: row.opt_uuid(6, "app_versions.job_id")?,
        error: row.opt_json(7)?,
        created_at: row.time(8, "app_versions.created_at")?,
        finished_at: row.opt_time(9, "app_versions.finished_at")?,
        launch: row.opt_json(10)?,
    })
}

/// The [`AppStore`] implementation of one engine, written once, in the terms
/// `job_store_impl!` uses.
macro_rules! app_store_impl {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::apps::AppStore for $store {
            async fn create_app(
                &self,
                new: $crate::apps::NewApp,
                max_per_user: u32,
            ) -> $crate::Result<$crate::apps::App> {
                let at = micros(new.created_at);
                let mut tx = self.pool.begin().await.map_err(map_err)?;
                under_user_cap!(tx, new.user_id, "apps", max_per_user,
                    $crate::apps::APPS_PER_USER);
                sqlx::query(
                    "INSERT INTO apps (id, user_id, name, runtime, entry, public, pinned, env, \
                     secrets, desired, live_version, last_request_at, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, FALSE, $7, $8, 'running', NULL, NULL, $9, $9)",
                )
                .bind(id_arg(new.id))
                .bind(id_arg(new.user_id))
                .bind(&new.name)
                .bind(&new.runtime)
                .bind(&new.entry)
                .bind(new.public)
                .bind(sqlx::types::Json(&new.env))
                .bind(sqlx::types::Json(&new.secrets))
                .bind(ts_arg(at))
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                tx.commit().await.map_err(map_err)?;
                Ok($crate::apps::App {
                    id: new.id,
                    user_id: new.user_id,
                    name: new.name,
                    runtime: new.runtime,
                    entry: new.entry,
                    public: new.public,
                    pinned: false,
                    env: new.env,
                    secrets: new.secrets,
                    desired: "running".into(),
                    live_version: None,
                    last_request_at: None,
                    created_at: at,
                    updated_at: at,
                })
            }

            async fn app(&self, id: uuid::Uuid) -> $crate::Result<Option<$crate::apps::App>> {
                let row = sqlx::query(concat!("SELECT ", app_cols!(), " FROM apps WHERE id = $1"))
                    .bind(id_arg(id))
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(map_err)?;
                row.as_ref().map($crate::apps::app_at).transpose()
            }

            async fn app_named(
                &self,
                user_id: uuid::Uuid,
                name: &str,
            ) -> $crate::Result<Option<$crate::apps::App>> {
                let row = sqlx::query(concat!(
                    "SELECT ", app_cols!(), " FROM apps WHERE user_id = $1 AND name = $2"
                ))
                .bind(id_arg(user_id))
                .bind(name)
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
                row.as_ref().map($crate::apps::app_at).transpose()
            }

            async fn apps_of(&self, user_id: uuid::Uuid) -> $crate::Result<Vec<$crate::apps::App>> {
                let rows = sqlx::query(concat!(
                    "SELECT ", app_cols!(),
                    " FROM apps WHERE user_id = $1 ORDER BY created_at DESC, id DESC"
                ))
                .bind(id_arg(user_id))
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
                rows.iter().map($crate::apps::app_at).collect()
            }

            async fn running_apps(&self) -> $crate::Result<Vec<$crate::apps::App>> {
                let rows = sqlx::query(concat!(
                    "SELECT ", app_cols!(),
                    " FROM apps WHERE desired = 'running' AND live_version IS NOT NULL ORDER BY id"
                ))
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
                rows.iter().map($crate::apps::app_at).collect()
            }

            async fn update_app(
                &self,
                id: uuid::Uuid,
                patch: $crate::apps::AppPatch,
                at: chrono::DateTime<chrono::Utc>,
            ) -> $crate::Result<Option<$crate::apps::App>> {
                let done = sqlx::query(
                    "UPDATE apps SET name = COALESCE($2, name), entry = COALESCE($3, entry), \
                     public = COALESCE($4, public), pinned = COALESCE($5, pinned), \
                     env = COALESCE($6, env), secrets = COALESCE($7, secrets), \
                     desired = COALESCE($8, desired), updated_at = $9 WHERE id = $1",
                )
                .bind(id_arg(id))
                .bind(patch.name)
                .bind(patch.entry)
                .bind(patch.public)
                .bind(patch.pinned)
                .bind(patch.env.map(sqlx::types::Json))
                .bind(patch.secrets.map(sqlx::types::Json))
                .bind(patch.desired)
                .bind(ts_arg(micros(at)))
                .execute(&self.pool)
                .await
                .map_err(map_err)?;
                if done.rows_affected() == 0 {
                    return Ok(None);
                }
                $crate::apps::AppStore::app(self, id).await
            }

            async fn delete_app(&self, id: uuid::Uuid) -> $crate::Result<bool> {
                let done = sqlx::query("DELETE FROM apps WHERE id = $1")
                    .bind(id_arg(id))
                    .execute(&self.pool)
                    .await
                    .map_err(map_err)?;
                Ok(done.rows_affected() == 1)
            }

            async fn touch_app(
                &self,
                id: uuid::Uuid,
                at: chrono::DateTime<chrono::Utc>,
                coarse: chrono::TimeDelta,
            ) -> $crate::Result<()> {
                sqlx::query(
                    "UPDATE apps SET last_request_at = $2 WHERE id = $1 \
                     AND (last_request_at IS NULL OR last_request_at < $3)",
                )
                .bind(id_arg(id))
                .bind(ts_arg(micros(at)))
                .bind(ts_arg(micros(at - coarse)))
                .execute(&self.pool)
                .await
                .map_err(map_err)?;
                Ok(())
            }

            async fn idle_apps(
                &self,
                before: chrono::DateTime<chrono::Utc>,
            ) -> $crate::Result<Vec<$crate::apps::App>> {
                let rows = sqlx::query(concat!(
                    "SELECT ", app_cols!(),
                    " FROM apps WHERE pinned = FALSE AND COALESCE(last_request_at, created_at) < $1 \
                     ORDER BY id"
                ))
                .bind(ts_arg(micros(before)))
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
                rows.iter().map($crate::apps::app_at).collect()
            }

            async fn add_app_version(
                &self,
                new: $crate::apps::NewAppVersion,
                keep: u32,
            ) -> $crate::Result<$crate::apps::AppVersion> {
                let at = micros(new.created_at);
                let mut tx = self.pool.begin().await.map_err(map_err)?;
                let app = sqlx::query("UPDATE apps SET updated_at = $2 WHERE id = $1")
                    .bind(id_arg(new.app_id))
                    .bind(ts_arg(at))
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                if app.rows_affected() == 0 {
                    return Err($crate::StoreError::NotFound);
                }
                let top = sqlx::query(
                    "SELECT CAST(COALESCE(MAX(version), 0) AS BIGINT) FROM app_versions \
                     WHERE app_id = $1",
                )
                .bind(id_arg(new.app_id))
                .fetch_one(&mut *tx)
                .await
                .map_err(map_err)?;
                let version = $crate::jobs::Columns::int(&top, 0)? + 1;
                let size = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
                sqlx::query(
                    "INSERT INTO app_versions (app_id, version, bundle, files, bytes, source, \
                     state, job_id, error, created_at, finished_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, 'pending', NULL, NULL, $7, NULL)",
                )
                .bind(id_arg(new.app_id))
                .bind(version)
                .bind(&new.bundle)
                .bind(size(new.files))
                .bind(size(new.bytes))
                .bind(&new.source)
                .bind(ts_arg(at))
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                // The oldest ended versions beyond `keep` go; the live one and pending ones stay.
                sqlx::query(
                    "DELETE FROM app_versions WHERE app_id = $1 AND state IN \
                     ('superseded', 'failed', 'cancelled') AND version <= $2 - $3",
                )
                .bind(id_arg(new.app_id))
                .bind(version)
                .bind(i64::from(keep))
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                tx.commit().await.map_err(map_err)?;
                Ok($crate::apps::AppVersion {
                    app_id: new.app_id,
                    version,
                    files: new.files,
                    bytes: new.bytes,
                    source: new.source,
                    state: "pending".into(),
                    job_id: None,
                    error: None,
                    created_at: at,
                    finished_at: None,
                    launch: None,
                })
            }

            async fn set_app_version_job(
                &self,
                app_id: uuid::Uuid,
                version: i64,
                job_id: uuid::Uuid,
            ) -> $crate::Result<()> {
                sqlx::query("UPDATE app_versions SET job_id = $3 WHERE app_id = $1 AND version = $2")
                    .bind(id_arg(app_id))
                    .bind(version)
                    .bind(id_arg(job_id))
                    .execute(&self.pool)
                    .await
                    .map_err(map_err)?;
                Ok(())
            }

            async fn app_versions(
                &self,
                app_id: uuid::Uuid,
            ) -> $crate::Result<Vec<$crate::apps::AppVersion>> {
                let rows = sqlx::query(concat!(
                    "SELECT ", app_version_cols!(),
                    " FROM app_versions WHERE app_id = $1 ORDER BY version DESC"
                ))
                .bind(id_arg(app_id))
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
                rows.iter().map($crate::apps::app_version_at).collect()
            }

            async fn app_version(
                &self,
                app_id: uuid::Uuid,
                version: i64,
            ) -> $crate::Result<Option<$crate::apps::AppVersion>> {
                let row = sqlx::query(concat!(
                    "SELECT ", app_version_cols!(),
                    " FROM app_versions WHERE app_id = $1 AND version = $2"
                ))
                .bind(id_arg(app_id))
                .bind(version)
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
                row.as_ref().map($crate::apps::app_version_at).transpose()
            }

            async fn app_bundle(
                &self,
                app_id: uuid::Uuid,
                version: i64,
            ) -> $crate::Result<Option<Vec<u8>>> {
                let row = sqlx::query(
                    "SELECT bundle FROM app_versions WHERE app_id = $1 AND version = $2",
                )
                .bind(id_arg(app_id))
                .bind(version)
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
                row.map(|r| bytes_at(&r, 0)).transpose()
            }

            async fn make_app_version_live(
                &self,
                app_id: uuid::Uuid,
                version: i64,
                launch: serde_json::Value,
                at: chrono::DateTime<chrono::Utc>,
            ) -> $crate::Result<bool> {
                let at = micros(at);
                let mut tx = self.pool.begin().await.map_err(map_err)?;
                let app = sqlx::query("UPDATE apps SET live_version = $2, updated_at = $3 WHERE id = $1")
                    .bind(id_arg(app_id))
                    .bind(version)
                    .bind(ts_arg(at))
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                let this = sqlx::query(
                    "UPDATE app_versions SET state = 'live', error = NULL, launch = $4, \
                     finished_at = COALESCE(finished_at, $3) WHERE app_id = $1 AND version = $2",
                )
                .bind(id_arg(app_id))
                .bind(version)
                .bind(ts_arg(at))
                .bind(sqlx::types::Json(launch))
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                if app.rows_affected() == 0 || this.rows_affected() == 0 {
                    return Ok(false);
                }
                sqlx::query(
                    "UPDATE app_versions SET state = 'superseded' WHERE app_id = $1 \
                     AND state = 'live' AND version <> $2",
                )
                .bind(id_arg(app_id))
                .bind(version)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                tx.commit().await.map_err(map_err)?;
                Ok(true)
            }

            async fn end_app_version(
                &self,
                app_id: uuid::Uuid,
                version: i64,
                state: &str,
                error: Option<serde_json::Value>,
                at: chrono::DateTime<chrono::Utc>,
            ) -> $crate::Result<()> {
                sqlx::query(
                    "UPDATE app_versions SET state = $3, error = $4, finished_at = $5 \
                     WHERE app_id = $1 AND version = $2 AND state = 'pending'",
                )
                .bind(id_arg(app_id))
                .bind(version)
                .bind(state)
                .bind(error.map(sqlx::types::Json))
                .bind(ts_arg(micros(at)))
                .execute(&self.pool)
                .await
                .map_err(map_err)?;
                Ok(())
            }
        }
    };
}
