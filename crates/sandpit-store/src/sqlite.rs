//! The SQLite store: the zero-set-up default.
//!
//! Ids are hyphenated UUID text and timestamps fixed-width RFC 3339 text (see [`ts`]): every
//! timestamp that reaches SQL goes through [`ts`], so comparing the text compares the instants.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use sqlx::Row;
use sqlx::error::ErrorKind;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::types::Json;
use uuid::Uuid;

use crate::{
    ATTEMPTS_LIMIT_MAX, Attempt, AttemptFilter, Credential, CredentialKind, EndReason,
    ExternalIdentity, LabAttempts, NewAttempt, NewCredential, NewIdentity, NewSession, NewUser,
    Result, Role, SESSIONS_LIVE_PER_USER, Session, SessionStatus, StepProgress, Store, StoreError,
    User,
};

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// How long a connection waits for another one's write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// `touch_credential` skips the write while `last_used_at` is younger than this.
const TOUCH_INTERVAL: TimeDelta = TimeDelta::seconds(60);

// Column lists as macros so they can be `concat!`ed into `&'static str` queries; the decoders
// below read them by position.
macro_rules! user_cols {
    () => {
        "u.id, u.username, u.email, u.password_hash, u.role, u.created_at, u.updated_at"
    };
}
macro_rules! identity_cols {
    () => {
        "i.id, i.user_id, i.provider, i.subject, i.login, i.profile, i.created_at, i.updated_at"
    };
}
macro_rules! credential_cols {
    () => {
        "c.id, c.user_id, c.kind, c.name, c.prefix, c.token_hash, c.created_at, c.expires_at, \
         c.last_used_at, c.revoked_at"
    };
}
const CREDENTIAL_NCOLS: usize = 10;
macro_rules! session_cols {
    () => {
        "s.id, s.user_id, s.environment, s.lab, s.status, s.created_at, s.expires_at, \
         s.ended_at, s.end_reason"
    };
}
macro_rules! attempt_cols {
    () => {
        "a.id, a.user_id, a.session_id, a.lab, a.step, a.passed, a.failures, a.metrics, \
         a.notes, a.submitted_at"
    };
}
/// `attempts_of` with the filter clause `$filter`: one static query per filter combination
/// (not `(?3 IS NULL OR a.lab = ?3)`), so each is planned onto the index that serves it.
/// `?1` is the user, `?2` the limit.
macro_rules! attempts_of_query {
    ($filter:literal) => {
        concat!(
            "SELECT ",
            attempt_cols!(),
            " FROM attempts a WHERE a.user_id = ?1",
            $filter,
            " ORDER BY a.submitted_at DESC, a.id DESC LIMIT ?2"
        )
    };
}

/// [`Store`] on SQLite through a sqlx pool.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) the database named by `url` (`sqlite://path?mode=rwc`,
    /// `sqlite::memory:`). Does not migrate.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(StoreError::Database)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let pool = if in_memory {
            // An in-memory database lives exactly as long as its connection: keep one, forever.
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        } else {
            SqlitePoolOptions::new().max_connections(max_connections.max(1))
        };
        let pool = pool
            .connect_with(options)
            .await
            .map_err(StoreError::Database)?;
        Ok(Self { pool })
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn migrate(&self) -> Result<()> {
        MIGRATOR.run(&self.pool).await.map_err(StoreError::Migrate)
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(drop)
            .map_err(map_err)
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    async fn create_user(&self, new: NewUser) -> Result<User> {
        let created_at = micros(new.created_at);
        sqlx::query(
            "INSERT INTO users (id, username, email, password_hash, role, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
        )
        .bind(new.id.hyphenated())
        .bind(&new.username)
        .bind(&new.email)
        .bind(&new.password_hash)
        .bind(new.role.as_str())
        .bind(ts(created_at))
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(User {
            id: new.id,
            username: new.username,
            email: new.email,
            password_hash: new.password_hash,
            role: new.role,
            created_at,
            updated_at: created_at,
        })
    }

    async fn user_by_id(&self, id: Uuid) -> Result<Option<User>> {
        sqlx::query(concat!(
            "SELECT ",
            user_cols!(),
            " FROM users u WHERE u.id = ?1"
        ))
        .bind(id.hyphenated())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?
        .map(|row| user_at(&row, 0))
        .transpose()
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<User>> {
        // The column is COLLATE NOCASE, so this comparison (and its index) ignores case.
        sqlx::query(concat!(
            "SELECT ",
            user_cols!(),
            " FROM users u WHERE u.username = ?1"
        ))
        .bind(username)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?
        .map(|row| user_at(&row, 0))
        .transpose()
    }

    async fn set_user_role(&self, id: Uuid, role: Role) -> Result<()> {
        let done = sqlx::query("UPDATE users SET role = ?1, updated_at = ?2 WHERE id = ?3")
            .bind(role.as_str())
            .bind(ts(micros(Utc::now())))
            .bind(id.hyphenated())
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn count_users(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(n.unsigned_abs())
    }

    async fn link_identity(&self, new: NewIdentity) -> Result<ExternalIdentity> {
        let created_at = micros(new.created_at);
        sqlx::query(
            "INSERT INTO external_identities \
             (id, user_id, provider, subject, login, profile, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
        )
        .bind(new.id.hyphenated())
        .bind(new.user_id.hyphenated())
        .bind(&new.provider)
        .bind(&new.subject)
        .bind(&new.login)
        .bind(Json(&new.profile))
        .bind(ts(created_at))
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(ExternalIdentity {
            id: new.id,
            user_id: new.user_id,
            provider: new.provider,
            subject: new.subject,
            login: new.login,
            profile: new.profile,
            created_at,
            updated_at: created_at,
        })
    }

    async fn identity(&self, provider: &str, subject: &str) -> Result<Option<ExternalIdentity>> {
        sqlx::query(concat!(
            "SELECT ",
            identity_cols!(),
            " FROM external_identities i WHERE i.provider = ?1 AND i.subject = ?2"
        ))
        .bind(provider)
        .bind(subject)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?
        .map(|row| identity_at(&row))
        .transpose()
    }

    async fn identities_of(&self, user_id: Uuid) -> Result<Vec<ExternalIdentity>> {
        sqlx::query(concat!(
            "SELECT ",
            identity_cols!(),
            " FROM external_identities i WHERE i.user_id = ?1 ORDER BY i.created_at, i.id"
        ))
        .bind(user_id.hyphenated())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?
        .iter()
        .map(identity_at)
        .collect()
    }

    async fn update_identity_profile(
        &self,
        id: Uuid,
        profile: serde_json::Value,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let done = sqlx::query(
            "UPDATE external_identities SET profile = ?1, updated_at = ?2 WHERE id = ?3",
        )
        .bind(Json(&profile))
        .bind(ts(micros(at)))
        .bind(id.hyphenated())
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn create_credential(&self, new: NewCredential) -> Result<Credential> {
        let created_at = micros(new.created_at);
        let expires_at = new.expires_at.map(micros);
        sqlx::query(
            "INSERT INTO credentials \
             (id, user_id, kind, name, prefix, token_hash, created_at, expires_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )
        .bind(new.id.hyphenated())
        .bind(new.user_id.hyphenated())
        .bind(new.kind.as_str())
        .bind(&new.name)
        .bind(&new.prefix)
        .bind(&new.token_hash[..])
        .bind(ts(created_at))
        .bind(expires_at.map(ts))
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(Credential {
            id: new.id,
            user_id: new.user_id,
            kind: new.kind,
            name: new.name,
            prefix: new.prefix,
            token_hash: new.token_hash,
            created_at,
            expires_at,
            last_used_at: None,
            revoked_at: None,
        })
    }

    async fn authenticate(
        &self,
        token_hash: &[u8; 32],
        now: DateTime<Utc>,
    ) -> Result<Option<(Credential, User)>> {
        // The hot path of every authenticated request: one statement, one unique-index probe.
        let row = sqlx::query(concat!(
            "SELECT ",
            credential_cols!(),
            ", ",
            user_cols!(),
            " FROM credentials c JOIN users u ON u.id = c.user_id \
             WHERE c.token_hash = ?1 AND c.revoked_at IS NULL \
             AND (c.expires_at IS NULL OR c.expires_at > ?2)"
        ))
        .bind(&token_hash[..])
        .bind(ts(now))
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        match row {
            None => Ok(None),
            Some(row) => Ok(Some((
                credential_at(&row)?,
                user_at(&row, CREDENTIAL_NCOLS)?,
            ))),
        }
    }

    async fn list_api_tokens(&self, user_id: Uuid) -> Result<Vec<Credential>> {
        sqlx::query(concat!(
            "SELECT ",
            credential_cols!(),
            " FROM credentials c \
             WHERE c.user_id = ?1 AND c.kind = 'api_token' AND c.revoked_at IS NULL \
             ORDER BY c.created_at DESC, c.id DESC"
        ))
        .bind(user_id.hyphenated())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?
        .iter()
        .map(credential_at)
        .collect()
    }

    async fn revoke_credential(&self, user_id: Uuid, id: Uuid, at: DateTime<Utc>) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE credentials SET revoked_at = ?1 \
             WHERE id = ?2 AND user_id = ?3 AND revoked_at IS NULL",
        )
        .bind(ts(micros(at)))
        .bind(id.hyphenated())
        .bind(user_id.hyphenated())
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn touch_credential(&self, id: Uuid, at: DateTime<Utc>) -> Result<()> {
        let at = micros(at);
        let stale = ts(at - TOUCH_INTERVAL);
        // The throttle is in the WHERE clause so most calls change nothing. But in SQLite even
        // an UPDATE that matches no row takes the database's single write lock, which would
        // serialise every authenticated request; so first ask, with a read that runs
        // concurrently with others, whether there is anything to write.
        let due: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM credentials \
             WHERE id = ?1 AND (last_used_at IS NULL OR last_used_at < ?2)",
        )
        .bind(id.hyphenated())
        .bind(&stale)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        if due.is_none() {
            return Ok(());
        }
        sqlx::query(
            "UPDATE credentials SET last_used_at = ?1 \
             WHERE id = ?2 AND (last_used_at IS NULL OR last_used_at < ?3)",
        )
        .bind(ts(at))
        .bind(id.hyphenated())
        .bind(&stale)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn purge_credentials(&self, before: DateTime<Utc>) -> Result<u64> {
        let done = sqlx::query("DELETE FROM credentials WHERE expires_at < ?1 OR revoked_at < ?1")
            .bind(ts(micros(before)))
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected())
    }

    async fn create_session(&self, new: NewSession, max_live: u32) -> Result<Session> {
        let created_at = micros(new.created_at);
        let expires_at = micros(new.expires_at);
        // One statement, so the cap holds under concurrency: a write statement takes SQLite's
        // single write lock before it reads anything, so the count it sees cannot change
        // before its insert commits.
        let done = sqlx::query(
            "INSERT INTO sessions (id, user_id, environment, lab, status, created_at, expires_at) \
             SELECT ?1, ?2, ?3, ?4, 'live', ?5, ?6 \
             WHERE (SELECT COUNT(*) FROM sessions WHERE user_id = ?2 AND status = 'live') < ?7",
        )
        .bind(new.id.hyphenated())
        .bind(new.user_id.hyphenated())
        .bind(&new.environment)
        .bind(&new.lab)
        .bind(ts(created_at))
        .bind(ts(expires_at))
        .bind(i64::from(max_live))
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict {
                constraint: SESSIONS_LIVE_PER_USER,
            });
        }
        Ok(Session {
            id: new.id,
            user_id: new.user_id,
            environment: new.environment,
            lab: new.lab,
            status: SessionStatus::Live,
            created_at,
            expires_at,
            ended_at: None,
            end_reason: None,
        })
    }

    async fn session(&self, id: Uuid) -> Result<Option<Session>> {
        sqlx::query(concat!(
            "SELECT ",
            session_cols!(),
            " FROM sessions s WHERE s.id = ?1"
        ))
        .bind(id.hyphenated())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?
        .map(|row| session_at(&row))
        .transpose()
    }

    async fn sessions_of(&self, user_id: Uuid, include_ended: bool) -> Result<Vec<Session>> {
        let query = if include_ended {
            concat!(
                "SELECT ",
                session_cols!(),
                " FROM sessions s WHERE s.user_id = ?1 ORDER BY s.created_at DESC, s.id DESC"
            )
        } else {
            concat!(
                "SELECT ",
                session_cols!(),
                " FROM sessions s WHERE s.user_id = ?1 AND s.status = 'live' \
                 ORDER BY s.created_at DESC, s.id DESC"
            )
        };
        sqlx::query(query)
            .bind(user_id.hyphenated())
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?
            .iter()
            .map(session_at)
            .collect()
    }

    async fn extend_session(&self, id: Uuid, expires_at: DateTime<Utc>) -> Result<bool> {
        let done =
            sqlx::query("UPDATE sessions SET expires_at = ?1 WHERE id = ?2 AND status = 'live'")
                .bind(ts(micros(expires_at)))
                .bind(id.hyphenated())
                .execute(&self.pool)
                .await
                .map_err(map_err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn end_session(&self, id: Uuid, at: DateTime<Utc>, reason: EndReason) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE sessions SET status = 'ended', ended_at = ?1, end_reason = ?2 \
             WHERE id = ?3 AND status = 'live'",
        )
        .bind(ts(micros(at)))
        .bind(reason.as_str())
        .bind(id.hyphenated())
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn expired_sessions(&self, now: DateTime<Utc>) -> Result<Vec<Session>> {
        sqlx::query(concat!(
            "SELECT ",
            session_cols!(),
            " FROM sessions s WHERE s.status = 'live' AND s.expires_at <= ?1 \
             ORDER BY s.expires_at, s.id"
        ))
        .bind(ts(micros(now)))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?
        .iter()
        .map(session_at)
        .collect()
    }

    async fn live_sessions(&self) -> Result<Vec<Session>> {
        sqlx::query(concat!(
            "SELECT ",
            session_cols!(),
            " FROM sessions s WHERE s.status = 'live' ORDER BY s.created_at, s.id"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?
        .iter()
        .map(session_at)
        .collect()
    }

    async fn create_attempt(&self, new: NewAttempt) -> Result<Attempt> {
        let submitted_at = micros(new.submitted_at);
        // The first statement writes, so the transaction takes SQLite's write lock at once
        // (no read-to-write upgrade that could fail with SQLITE_BUSY).
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        sqlx::query(
            "INSERT INTO attempts (id, user_id, session_id, lab, step, passed, failures, \
             metrics, notes, submitted_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )
        .bind(new.id.hyphenated())
        .bind(new.user_id.hyphenated())
        .bind(new.session_id.hyphenated())
        .bind(&new.lab)
        .bind(&new.step)
        .bind(new.passed)
        .bind(Json(&new.failures))
        .bind(Json(&new.metrics))
        .bind(Json(&new.notes))
        .bind(ts(submitted_at))
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        if new.passed {
            sqlx::query(
                "INSERT INTO lab_progress (user_id, lab, step, passed_at) \
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
            )
            .bind(new.user_id.hyphenated())
            .bind(&new.lab)
            .bind(&new.step)
            .bind(ts(submitted_at))
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(Attempt {
            id: new.id,
            user_id: new.user_id,
            session_id: new.session_id,
            lab: new.lab,
            step: new.step,
            passed: new.passed,
            failures: new.failures,
            metrics: new.metrics,
            notes: new.notes,
            submitted_at,
        })
    }

    async fn attempt(&self, id: Uuid) -> Result<Option<Attempt>> {
        sqlx::query(concat!(
            "SELECT ",
            attempt_cols!(),
            " FROM attempts a WHERE a.id = ?1"
        ))
        .bind(id.hyphenated())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?
        .map(|row| attempt_at(&row))
        .transpose()
    }

    async fn attempts_of(&self, user_id: Uuid, filter: AttemptFilter) -> Result<Vec<Attempt>> {
        let query = match (&filter.lab, &filter.session_id) {
            (None, None) => attempts_of_query!(""),
            (Some(_), None) => attempts_of_query!(" AND a.lab = ?3"),
            (None, Some(_)) => attempts_of_query!(" AND a.session_id = ?3"),
            (Some(_), Some(_)) => attempts_of_query!(" AND a.lab = ?3 AND a.session_id = ?4"),
        };
        let mut query = sqlx::query(query)
            .bind(user_id.hyphenated())
            .bind(i64::from(filter.limit.min(ATTEMPTS_LIMIT_MAX)));
        if let Some(lab) = filter.lab {
            query = query.bind(lab);
        }
        if let Some(session_id) = filter.session_id {
            query = query.bind(session_id.hyphenated());
        }
        query
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?
            .iter()
            .map(attempt_at)
            .collect()
    }

    async fn progress_of(&self, user_id: Uuid) -> Result<Vec<StepProgress>> {
        sqlx::query(
            "SELECT lab, step, passed_at FROM lab_progress WHERE user_id = ?1 \
             ORDER BY lab, passed_at, step",
        )
        .bind(user_id.hyphenated())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?
        .iter()
        .map(|row| {
            Ok(StepProgress {
                lab: get_str(row, 0)?.to_owned(),
                step: get_str(row, 1)?.to_owned(),
                passed_at: get_ts(row, 2, "lab_progress.passed_at")?,
            })
        })
        .collect()
    }

    async fn attempt_counts(&self, user_id: Uuid) -> Result<Vec<LabAttempts>> {
        // MAX of the fixed-width text is the latest instant.
        sqlx::query(
            "SELECT lab, COUNT(*), SUM(passed), MAX(submitted_at) FROM attempts \
             WHERE user_id = ?1 GROUP BY lab ORDER BY lab",
        )
        .bind(user_id.hyphenated())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?
        .iter()
        .map(|row| {
            Ok(LabAttempts {
                lab: get_str(row, 0)?.to_owned(),
                attempts: get_count(row, 1)?,
                passed: get_count(row, 2)?,
                last_submitted_at: get_ts(row, 3, "attempts.submitted_at")?,
            })
        })
        .collect()
    }
}

/// The one place SQLite errors become domain errors.
fn map_err(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &e {
        match db.kind() {
            // SQLite names the columns, not the constraint:
            // "UNIQUE constraint failed: external_identities.provider, external_identities.subject".
            ErrorKind::UniqueViolation => {
                let columns = db.message();
                let constraint = [
                    ("users.username", "users.username"),
                    ("users.id", "users.id"),
                    ("external_identities.subject", "external_identities.subject"),
                    ("external_identities.id", "external_identities.id"),
                    ("credentials.token_hash", "credentials.token_hash"),
                    ("credentials.id", "credentials.id"),
                    ("sessions.id", "sessions.id"),
                    ("attempts.id", "attempts.id"),
                    ("jobs.id", "jobs.id"),
                    ("projects_user_id_name_key", "projects.name"),
                    ("projects.id", "projects.id"),
                    ("apps.user_id, apps.name", "apps.name"),
                    ("apps.id", "apps.id"),
                ]
                .into_iter()
                .find(|(column, _)| columns.contains(column));
                if let Some((_, constraint)) = constraint {
                    return StoreError::Conflict { constraint };
                }
            }
            ErrorKind::ForeignKeyViolation => return StoreError::NotFound,
            _ => {}
        }
    }
    StoreError::Database(e)
}

/// Timestamps are stored to the microsecond (PostgreSQL's precision), so both stores return
/// the same value for the same input.
fn micros(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(6)
}

/// The stored form of a timestamp: RFC 3339 UTC with exactly six fraction digits, so that
/// text order is time order (`…:00Z` would sort after `…:00.5Z`).
fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

fn corrupt(column: &'static str, detail: impl ToString) -> StoreError {
    StoreError::Corrupt {
        column,
        detail: detail.to_string(),
    }
}

fn get_str(row: &SqliteRow, i: usize) -> Result<&str> {
    row.try_get(i).map_err(StoreError::Database)
}

fn get_opt_str(row: &SqliteRow, i: usize) -> Result<Option<&str>> {
    row.try_get(i).map_err(StoreError::Database)
}

/// A `COUNT` or `SUM` of 0/1 values: never negative.
fn get_count(row: &SqliteRow, i: usize) -> Result<u64> {
    let n: i64 = row.try_get(i).map_err(StoreError::Database)?;
    Ok(n.unsigned_abs())
}

fn get_uuid(row: &SqliteRow, i: usize, column: &'static str) -> Result<Uuid> {
    Uuid::parse_str(get_str(row, i)?).map_err(|e| corrupt(column, e))
}

fn parse_ts(s: &str, column: &'static str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| corrupt(column, format!("{e}: {s:?}")))
}

fn get_ts(row: &SqliteRow, i: usize, column: &'static str) -> Result<DateTime<Utc>> {
    parse_ts(get_str(row, i)?, column)
}

fn get_opt_ts(row: &SqliteRow, i: usize, column: &'static str) -> Result<Option<DateTime<Utc>>> {
    get_opt_str(row, i)?
        .map(|s| parse_ts(s, column))
        .transpose()
}

/// Decodes [`user_cols!`] starting at column `at`.
fn user_at(row: &SqliteRow, at: usize) -> Result<User> {
    Ok(User {
        id: get_uuid(row, at, "users.id")?,
        username: get_str(row, at + 1)?.to_owned(),
        email: get_opt_str(row, at + 2)?.map(str::to_owned),
        password_hash: get_opt_str(row, at + 3)?.map(str::to_owned),
        role: get_str(row, at + 4)?
            .parse()
            .map_err(|e| corrupt("users.role", e))?,
        created_at: get_ts(row, at + 5, "users.created_at")?,
        updated_at: get_ts(row, at + 6, "users.updated_at")?,
    })
}

/// Decodes [`identity_cols!`].
fn identity_at(row: &SqliteRow) -> Result<ExternalIdentity> {
    let Json(profile) = row.try_get(5).map_err(StoreError::Database)?;
    Ok(ExternalIdentity {
        id: get_uuid(row, 0, "external_identities.id")?,
        user_id: get_uuid(row, 1, "external_identities.user_id")?,
        provider: get_str(row, 2)?.to_owned(),
        subject: get_str(row, 3)?.to_owned(),
        login: get_str(row, 4)?.to_owned(),
        profile,
        created_at: get_ts(row, 6, "external_identities.created_at")?,
        updated_at: get_ts(row, 7, "external_identities.updated_at")?,
    })
}

/// Decodes [`credential_cols!`].
fn credential_at(row: &SqliteRow) -> Result<Credential> {
    let hash: &[u8] = row.try_get(5).map_err(StoreError::Database)?;
    Ok(Credential {
        id: get_uuid(row, 0, "credentials.id")?,
        user_id: get_uuid(row, 1, "credentials.user_id")?,
        kind: get_str(row, 2)?
            .parse::<CredentialKind>()
            .map_err(|e| corrupt("credentials.kind", e))?,
        name: get_str(row, 3)?.to_owned(),
        prefix: get_str(row, 4)?.to_owned(),
        token_hash: hash
            .try_into()
            .map_err(|_| corrupt("credentials.token_hash", format!("{} bytes", hash.len())))?,
        created_at: get_ts(row, 6, "credentials.created_at")?,
        expires_at: get_opt_ts(row, 7, "credentials.expires_at")?,
        last_used_at: get_opt_ts(row, 8, "credentials.last_used_at")?,
        revoked_at: get_opt_ts(row, 9, "credentials.revoked_at")?,
    })
}

/// Decodes [`session_cols!`].
fn session_at(row: &SqliteRow) -> Result<Session> {
    Ok(Session {
        id: get_uuid(row, 0, "sessions.id")?,
        user_id: get_uuid(row, 1, "sessions.user_id")?,
        environment: get_str(row, 2)?.to_owned(),
        lab: get_opt_str(row, 3)?.map(str::to_owned),
        status: get_str(row, 4)?
            .parse()
            .map_err(|e| corrupt("sessions.status", e))?,
        created_at: get_ts(row, 5, "sessions.created_at")?,
        expires_at: get_ts(row, 6, "sessions.expires_at")?,
        ended_at: get_opt_ts(row, 7, "sessions.ended_at")?,
        end_reason: get_opt_str(row, 8)?
            .map(str::parse)
            .transpose()
            .map_err(|e| corrupt("sessions.end_reason", e))?,
    })
}

/// Decodes [`attempt_cols!`].
fn attempt_at(row: &SqliteRow) -> Result<Attempt> {
    let json = |i: usize| -> Result<serde_json::Value> {
        let Json(value) = row.try_get(i).map_err(StoreError::Database)?;
        Ok(value)
    };
    Ok(Attempt {
        id: get_uuid(row, 0, "attempts.id")?,
        user_id: get_uuid(row, 1, "attempts.user_id")?,
        session_id: get_uuid(row, 2, "attempts.session_id")?,
        lab: get_str(row, 3)?.to_owned(),
        step: get_str(row, 4)?.to_owned(),
        passed: row.try_get(5).map_err(StoreError::Database)?,
        failures: json(6)?,
        metrics: json(7)?,
        notes: json(8)?,
        submitted_at: get_ts(row, 9, "attempts.submitted_at")?,
    })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn stored_timestamps_are_fixed_width_and_sort_as_time() {
        let whole = Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).unwrap();
        let later = whole + TimeDelta::microseconds(500_000);
        assert_eq!(ts(whole), "2025-01-02T03:04:05.000000Z");
        assert_eq!(ts(later), "2025-01-02T03:04:05.500000Z");
        assert!(ts(whole) < ts(later));
        assert_eq!(parse_ts(&ts(later), "t").unwrap(), later);
    }
}

// --- jobs: the shared SQL of `crate::jobs`, and SQLite's lease ---

fn id_arg(id: Uuid) -> uuid::fmt::Hyphenated {
    id.hyphenated()
}

fn opt_id_arg(id: Option<Uuid>) -> Option<uuid::fmt::Hyphenated> {
    id.map(Uuid::hyphenated)
}

fn ts_arg(t: DateTime<Utc>) -> String {
    ts(t)
}

fn opt_ts_arg(t: Option<DateTime<Utc>>) -> Option<String> {
    t.map(ts)
}

impl crate::jobs::Columns for SqliteRow {
    fn uuid(&self, i: usize, column: &'static str) -> Result<Uuid> {
        get_uuid(self, i, column)
    }
    fn opt_uuid(&self, i: usize, column: &'static str) -> Result<Option<Uuid>> {
        get_opt_str(self, i)?
            .map(|s| Uuid::parse_str(s).map_err(|e| corrupt(column, e)))
            .transpose()
    }
    fn time(&self, i: usize, column: &'static str) -> Result<DateTime<Utc>> {
        get_ts(self, i, column)
    }
    fn opt_time(&self, i: usize, column: &'static str) -> Result<Option<DateTime<Utc>>> {
        get_opt_ts(self, i, column)
    }
    fn text(&self, i: usize) -> Result<String> {
        get_str(self, i).map(str::to_owned)
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>> {
        get_opt_str(self, i).map(|s| s.map(str::to_owned))
    }
    fn int(&self, i: usize) -> Result<i64> {
        self.try_get(i).map_err(StoreError::Database)
    }
    fn opt_int(&self, i: usize) -> Result<Option<i64>> {
        self.try_get(i).map_err(StoreError::Database)
    }
    fn boolean(&self, i: usize) -> Result<bool> {
        self.try_get(i).map_err(StoreError::Database)
    }
    fn json(&self, i: usize) -> Result<serde_json::Value> {
        let Json(v) = self.try_get(i).map_err(StoreError::Database)?;
        Ok(v)
    }
    fn opt_json(&self, i: usize) -> Result<Option<serde_json::Value>> {
        let v: Option<Json<serde_json::Value>> = self.try_get(i).map_err(StoreError::Database)?;
        Ok(v.map(|Json(v)| v))
    }
}

/// One statement: SQLite runs one writer at a time, and a write statement holds the lock from
/// its first read, so the rows it picks are taken by no one else.
async fn lease_statement(
    conn: &mut sqlx::SqliteConnection,
    lease: crate::jobs::Lease<'_>,
) -> Result<Vec<crate::Job>> {
    let kinds = serde_json::to_string(lease.kinds).unwrap_or_else(|_| "[]".into());
    let rows = sqlx::query(concat!(
        "UPDATE jobs SET state = 'running', lease_owner = $1, lease_expires_at = $2, \
         attempts = attempts + 1, started_at = COALESCE(started_at, $3), updated_at = $3, \
         last_event = last_event + 1 \
         WHERE id IN (SELECT id FROM jobs WHERE state = 'queued' AND run_at <= $3 \
             AND kind IN (SELECT value FROM json_each($4)) \
             ORDER BY priority DESC, run_at, id LIMIT $5) \
         RETURNING ",
        job_cols!()
    ))
    .bind(lease.owner)
    .bind(ts(micros(lease.until)))
    .bind(ts(micros(lease.now)))
    .bind(kinds)
    .bind(i64::from(lease.limit))
    .fetch_all(conn)
    .await
    .map_err(map_err)?;
    rows.iter().map(crate::jobs::job_at).collect()
}

job_store_impl!(SqliteStore, sqlx::Sqlite, lease_statement);

fn bytes_at(row: &SqliteRow, i: usize) -> Result<Vec<u8>> {
    row.try_get(i).map_err(StoreError::Database)
}

project_store_impl!(SqliteStore, sqlx::Sqlite);

app_store_impl!(SqliteStore, sqlx::Sqlite);
database_store_impl!(SqliteStore);
cluster_store_impl!(SqliteStore);
