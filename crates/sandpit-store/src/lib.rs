//! sandpit's persistent state.
//!
//! One [`Store`] trait, two implementations chosen once at start-up from the database URL:
//! [`sqlite::SqliteStore`] (the zero-set-up default) and [`postgres::PgStore`]. Both run their own
//! migrations (`migrations/sqlite`, `migrations/postgres`) and pass one shared test suite
//! (`tests/store.rs`).
//!
//! The job queue's part ([`JobStore`]), the projects' ([`ProjectStore`]), the apps'
//! ([`AppStore`]), the per-user databases' ([`DatabaseStore`]) and the replicas' ([`ClusterStore`]), supertraits of [`Store`],
//! are SQL written once for both engines; see [`jobs`], [`projects`], [`apps`],
//! [`databases`] and [`cluster`].
//!
//! Conventions every table follows (later tables — sessions, attempts, jobs, apps — too):
//! - ids are UUIDv7 (time-ordered, so indexes stay append-mostly), `uuid` in PostgreSQL and
//!   hyphenated `TEXT` in SQLite;
//! - timestamps are UTC, `timestamptz` in PostgreSQL and RFC 3339 `TEXT` in SQLite, always
//!   written by the application (not `DEFAULT now()`) so both stores agree to the microsecond;
//! - free-form JSON is `jsonb` in PostgreSQL and `TEXT` in SQLite, read and written as
//!   `sqlx::types::Json<T>`;
//! - secrets (token values) are never stored, only their SHA-256.

mod error;
// First: its macros are used by the engines' modules.
#[macro_use]
pub mod jobs;
#[macro_use]
pub mod projects;
#[macro_use]
pub mod apps;
#[macro_use]
pub mod databases;
#[macro_use]
pub mod cluster;
pub mod model;
pub mod postgres;
pub mod sqlite;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

pub use apps::{APPS_PER_USER, App, AppPatch, AppStore, AppVersion, NewApp, NewAppVersion};
pub use cluster::{ClusterEvent, ClusterEventKind, ClusterStore, Placement, Replica};
pub use databases::{DatabaseStore, ONE_PER_USER, UserDatabase};
pub use error::StoreError;
pub use jobs::{
    CancelOutcome, JOBS_LIMIT_MAX, Job, JobError, JobEvent, JobEventKind, JobFilter, JobOutcome,
    JobState, JobStore, Lease, NewJob,
};
pub use model::*;
pub use projects::{
    Expect, FileBatch, FileWrite, MoveOutcome, NewProject, PROJECTS_PER_USER, Project, ProjectFile,
    ProjectFileMeta, ProjectLimits, ProjectStore, WriteOutcome,
};

/// Result alias for store operations.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Everything sandpit persists. Implementations must be cheap to clone behind an `Arc`
/// and safe to share between tasks.
#[async_trait]
pub trait Store:
    JobStore + ProjectStore + AppStore + DatabaseStore + ClusterStore + Send + Sync + 'static
{
    /// Which engine this is, for logs and the readiness report (`"sqlite"`, `"postgres"`).
    fn backend(&self) -> &'static str;

    /// Applies pending migrations. Idempotent.
    async fn migrate(&self) -> Result<()>;

    /// A cheap round trip proving the database answers (for `/readyz`).
    async fn ping(&self) -> Result<()>;

    /// Closes every connection (at shutdown, so SQLite checkpoints its WAL). Later calls fail.
    async fn close(&self);

    // --- users ---

    /// Inserts a user. A taken username (case-insensitive) → [`StoreError::Conflict`]
    /// with `constraint = "users.username"`.
    async fn create_user(&self, new: NewUser) -> Result<User>;
    async fn user_by_id(&self, id: Uuid) -> Result<Option<User>>;
    /// Case-insensitive lookup.
    async fn user_by_username(&self, username: &str) -> Result<Option<User>>;
    async fn set_user_role(&self, id: Uuid, role: Role) -> Result<()>;
    /// How many users exist (used to decide bootstrap behaviour).
    async fn count_users(&self) -> Result<u64>;

    // --- external identities (GitHub) ---

    /// Links an external identity to a user. The same (provider, subject) already linked →
    /// [`StoreError::Conflict`] with `constraint = "external_identities.subject"`.
    async fn link_identity(&self, new: NewIdentity) -> Result<ExternalIdentity>;
    async fn identity(&self, provider: &str, subject: &str) -> Result<Option<ExternalIdentity>>;
    async fn identities_of(&self, user_id: Uuid) -> Result<Vec<ExternalIdentity>>;
    /// Refreshes the stored profile JSON and `updated_at` of a linked identity.
    async fn update_identity_profile(
        &self,
        id: Uuid,
        profile: serde_json::Value,
        at: DateTime<Utc>,
    ) -> Result<()>;

    // --- credentials: login sessions and personal API tokens ---

    /// Stores a credential (only the hash of its secret value).
    async fn create_credential(&self, new: NewCredential) -> Result<Credential>;
    /// Finds a live credential by the SHA-256 of its value: not revoked and not expired at `now`.
    /// Returns it together with its user.
    async fn authenticate(
        &self,
        token_hash: &[u8; 32],
        now: DateTime<Utc>,
    ) -> Result<Option<(Credential, User)>>;
    /// Personal API tokens of a user (kind = `api_token`), newest first, revoked ones excluded.
    async fn list_api_tokens(&self, user_id: Uuid) -> Result<Vec<Credential>>;
    /// Revokes a credential if it belongs to `user_id`. Returns false when there is no such
    /// live credential of that user (so another user's token id looks like a missing one).
    async fn revoke_credential(&self, user_id: Uuid, id: Uuid, at: DateTime<Utc>) -> Result<bool>;
    /// Records use; implementations may skip the write when `last_used_at` is recent.
    async fn touch_credential(&self, id: Uuid, at: DateTime<Utc>) -> Result<()>;
    /// Deletes credentials that expired before `before` or were revoked before it.
    /// Returns how many rows went.
    async fn purge_credentials(&self, before: DateTime<Utc>) -> Result<u64>;

    // --- sessions: a learner's sandbox and workspace, with a TTL ---

    /// Inserts a live session unless its user already has `max_live` live sessions: then
    /// [`StoreError::Conflict`] with `constraint =` [`SESSIONS_LIVE_PER_USER`]. Atomic: two
    /// concurrent calls never both pass the cap. An unknown user → [`StoreError::NotFound`];
    /// a taken id → [`StoreError::Conflict`] with `constraint = "sessions.id"`.
    async fn create_session(&self, new: NewSession, max_live: u32) -> Result<Session>;
    async fn session(&self, id: Uuid) -> Result<Option<Session>>;
    /// A user's sessions, newest first; ended ones only when `include_ended`.
    async fn sessions_of(&self, user_id: Uuid, include_ended: bool) -> Result<Vec<Session>>;
    /// Sets `expires_at` of a live session. False if it is not live (or does not exist).
    async fn extend_session(&self, id: Uuid, expires_at: DateTime<Utc>) -> Result<bool>;
    /// Ends a live session (status, `ended_at`, `end_reason`). False if it was not live, so of
    /// two concurrent enders exactly one sees `true` (and only its reason is kept).
    async fn end_session(&self, id: Uuid, at: DateTime<Utc>, reason: EndReason) -> Result<bool>;
    /// Live sessions whose `expires_at <= now`, oldest expiry first (for the reaper).
    async fn expired_sessions(&self, now: DateTime<Utc>) -> Result<Vec<Session>>;
    /// Every live session, oldest first (start-up reconciliation).
    async fn live_sessions(&self) -> Result<Vec<Session>>;

    // --- attempts: judge runs, and the lab progress they make ---

    /// Inserts an attempt; when it passed, records the step as passed for its user (first time
    /// only) in the same transaction. The session must exist and belong to `user_id`, else
    /// [`StoreError::NotFound`] (an unknown user too); a taken id → [`StoreError::Conflict`]
    /// with `constraint = "attempts.id"`. `failures` and `notes` must be JSON arrays and
    /// `metrics` a JSON object, else [`StoreError::Database`] (a check constraint).
    async fn create_attempt(&self, new: NewAttempt) -> Result<Attempt>;
    async fn attempt(&self, id: Uuid) -> Result<Option<Attempt>>;
    /// A user's attempts, newest first (`submitted_at`, then id), filtered; at most
    /// `filter.limit`, capped at [`ATTEMPTS_LIMIT_MAX`].
    async fn attempts_of(&self, user_id: Uuid, filter: AttemptFilter) -> Result<Vec<Attempt>>;
    /// Every step a user has passed, all labs, ordered by lab (byte order, in both engines)
    /// then `passed_at` (then step).
    async fn progress_of(&self, user_id: Uuid) -> Result<Vec<StepProgress>>;
    /// Per lab, ordered by lab (byte order): how many attempts a user made, how many passed, the last one's
    /// time. Labs without attempts are absent.
    async fn attempt_counts(&self, user_id: Uuid) -> Result<Vec<LabAttempts>>;
}

/// The most attempts one [`Store::attempts_of`] call returns, whatever `filter.limit` asks.
pub const ATTEMPTS_LIMIT_MAX: u32 = 500;

/// The [`StoreError::Conflict`] constraint of [`Store::create_session`] when the user already
/// has `max_live` live sessions. Not a database constraint: the cap is a parameter, checked
/// atomically with the insert.
pub const SESSIONS_LIVE_PER_USER: &str = "sessions.live_per_user";

/// Opens the store named by a database URL: `sqlite://path?mode=rwc` (or `sqlite::memory:`)
/// or `postgres://…` / `postgresql://…`. Does not migrate.
pub async fn connect(url: &str, max_connections: u32) -> Result<std::sync::Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        Ok(std::sync::Arc::new(
            sqlite::SqliteStore::connect(url, max_connections).await?,
        ))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(std::sync::Arc::new(
            postgres::PgStore::connect(url, max_connections).await?,
        ))
    } else {
        Err(StoreError::UnsupportedUrl)
    }
}
