//! The PostgreSQL store. Native types throughout: `uuid`, `timestamptz`, `bytea`, `jsonb`.

use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use sqlx::Row;
use sqlx::error::ErrorKind;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::types::Json;
use uuid::Uuid;

use crate::{
    ATTEMPTS_LIMIT_MAX, Attempt, AttemptFilter, Credential, CredentialKind, EndReason,
    ExternalIdentity, LabAttempts, NewAttempt, NewCredential, NewIdentity, NewSession, NewUser,
    Result, Role, SESSIONS_LIVE_PER_USER, Session, SessionStatus, StepProgress, Store, StoreError,
    User,
};

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

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
/// (not `($3 IS NULL OR a.lab = $3)`, which a generic plan cannot put on an index).
/// `$1` is the user, `$2` the limit.
macro_rules! attempts_of_query {
    ($filter:literal) => {
        concat!(
            "SELECT ",
            attempt_cols!(),
            " FROM attempts a WHERE a.user_id = $1",
            $filter,
            " ORDER BY a.submitted_at DESC, a.id DESC LIMIT $2"
        )
    };
}

/// [`Store`] on PostgreSQL through a sqlx pool.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects to the database named by `url` (`postgres://…`). Does not migrate.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self> {
        let options = PgConnectOptions::from_str(url).map_err(StoreError::Database)?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .connect_with(options)
            .await
            .map_err(StoreError::Database)?;
        Ok(Self { pool })
    }
}

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
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
             VALUES ($1, $2, $3, $4, $5, $6, $6)",
        )
        .bind(new.id)
        .bind(&new.username)
        .bind(&new.email)
        .bind(&new.password_hash)
        .bind(new.role.as_str())
        .bind(created_at)
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
            " FROM users u WHERE u.id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?
        .map(|row| user_at(&row, 0))
        .transpose()
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<User>> {
        // Exactly the expression of the unique index `users_username_key`, so it is used.
        sqlx::query(concat!(
            "SELECT ",
            user_cols!(),
            r#" FROM users u WHERE lower(u.username COLLATE "C") = lower($1 COLLATE "C")"#
        ))
        .bind(username)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?
        .map(|row| user_at(&row, 0))
        .transpose()
    }

    async fn set_user_role(&self, id: Uuid, role: Role) -> Result<()> {
        let done = sqlx::query("UPDATE users SET role = $1, updated_at = $2 WHERE id = $3")
            .bind(role.as_str())
            .bind(micros(Utc::now()))
            .bind(id)
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
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
        )
        .bind(new.id)
        .bind(new.user_id)
        .bind(&new.provider)
        .bind(&new.subject)
        .bind(&new.login)
        .bind(Json(&new.profile))
        .bind(created_at)
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
            " FROM external_identities i WHERE i.provider = $1 AND i.subject = $2"
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
            " FROM external_identities i WHERE i.user_id = $1 ORDER BY i.created_at, i.id"
        ))
        .bind(user_id)
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
            "UPDATE external_identities SET profile = $1, updated_at = $2 WHERE id = $3",
        )
        .bind(Json(&profile))
        .bind(micros(at))
        .bind(id)
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
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(new.id)
        .bind(new.user_id)
        .bind(new.kind.as_str())
        .bind(&new.name)
        .bind(&new.prefix)
        .bind(&new.token_hash[..])
        .bind(created_at)
        .bind(expires_at)
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
             WHERE c.token_hash = $1 AND c.revoked_at IS NULL \
             AND (c.expires_at IS NULL OR c.expires_at > $2)"
        ))
        .bind(&token_hash[..])
        .bind(now)
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
             WHERE c.user_id = $1 AND c.kind = 'api_token' AND c.revoked_at IS NULL \
             ORDER BY c.created_at DESC, c.id DESC"
        ))
        .bind(user_id)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?
        .iter()
        .map(credential_at)
        .collect()
    }

    async fn revoke_credential(&self, user_id: Uuid, id: Uuid, at: DateTime<Utc>) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE credentials SET revoked_at = $1 \
             WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL",
        )
        .bind(micros(at))
        .bind(id)
        .bind(user_id)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn touch_credential(&self, id: Uuid, at: DateTime<Utc>) -> Result<()> {
        // The throttle is in the WHERE clause so most calls match no row and write nothing.
        let at = micros(at);
        sqlx::query(
            "UPDATE credentials SET last_used_at = $1 \
             WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $3)",
        )
        .bind(at)
        .bind(id)
        .bind(at - TOUCH_INTERVAL)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn purge_credentials(&self, before: DateTime<Utc>) -> Result<u64> {
        let done = sqlx::query("DELETE FROM credentials WHERE expires_at < $1 OR revoked_at < $1")
            .bind(micros(before))
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected())
    }

    async fn create_session(&self, new: NewSession, max_live: u32) -> Result<Session> {
        let created_at = micros(new.created_at);
        let expires_at = micros(new.expires_at);
        // Under READ COMMITTED two transactions could both count `max_live - 1` and both
        // insert. Locking the user's row first serialises session creation per user; each
        // statement after the lock sees what the previous holder committed. NO KEY UPDATE
        // (not UPDATE) so inserts elsewhere that reference the user (their foreign-key checks
        // take KEY SHARE) do not wait on it.
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let user: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM users WHERE id = $1 FOR NO KEY UPDATE")
                .bind(new.user_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
        if user.is_none() {
            return Err(StoreError::NotFound);
        }
        let live: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sessions WHERE user_id = $1 AND status = 'live'",
        )
        .bind(new.user_id)
        .fetch_one(&mut *tx)
        .await
        .map_err(map_err)?;
        if live >= i64::from(max_live) {
            return Err(StoreError::Conflict {
                constraint: SESSIONS_LIVE_PER_USER,
            });
        }
        sqlx::query(
            "INSERT INTO sessions (id, user_id, environment, lab, status, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, 'live', $5, $6)",
        )
        .bind(new.id)
        .bind(new.user_id)
        .bind(&new.environment)
        .bind(&new.lab)
        .bind(created_at)
        .bind(expires_at)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
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
            " FROM sessions s WHERE s.id = $1"
        ))
        .bind(id)
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
                " FROM sessions s WHERE s.user_id = $1 ORDER BY s.created_at DESC, s.id DESC"
            )
        } else {
            concat!(
                "SELECT ",
                session_cols!(),
                " FROM sessions s WHERE s.user_id = $1 AND s.status = 'live' \
                 ORDER BY s.created_at DESC, s.id DESC"
            )
        };
        sqlx::query(query)
            .bind(user_id)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?
            .iter()
            .map(session_at)
            .collect()
    }

    async fn extend_session(&self, id: Uuid, expires_at: DateTime<Utc>) -> Result<bool> {
        let done =
            sqlx::query("UPDATE sessions SET expires_at = $1 WHERE id = $2 AND status = 'live'")
                .bind(micros(expires_at))
                .bind(id)
                .execute(&self.pool)
                .await
                .map_err(map_err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn end_session(&self, id: Uuid, at: DateTime<Utc>, reason: EndReason) -> Result<bool> {
        // A concurrent ender waits for the first one's row lock, then re-checks
        // `status = 'live'` on the committed row and matches nothing.
        let done = sqlx::query(
            "UPDATE sessions SET status = 'ended', ended_at = $1, end_reason = $2 \
             WHERE id = $3 AND status = 'live'",
        )
        .bind(micros(at))
        .bind(reason.as_str())
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn expired_sessions(&self, now: DateTime<Utc>) -> Result<Vec<Session>> {
        sqlx::query(concat!(
            "SELECT ",
            session_cols!(),
            " FROM sessions s WHERE s.status = 'live' AND s.expires_at <= $1 \
             ORDER BY s.expires_at, s.id"
        ))
        .bind(micros(now))
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
        // Two concurrent first passes of one step: the second insert into lab_progress waits
        // for the first transaction, then does nothing, so the first passed_at stays.
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        sqlx::query(
            "INSERT INTO attempts (id, user_id, session_id, lab, step, passed, failures, \
             metrics, notes, submitted_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(new.id)
        .bind(new.user_id)
        .bind(new.session_id)
        .bind(&new.lab)
        .bind(&new.step)
        .bind(new.passed)
        .bind(Json(&new.failures))
        .bind(Json(&new.metrics))
        .bind(Json(&new.notes))
        .bind(submitted_at)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        if new.passed {
            sqlx::query(
                "INSERT INTO lab_progress (user_id, lab, step, passed_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            )
            .bind(new.user_id)
            .bind(&new.lab)
            .bind(&new.step)
            .bind(submitted_at)
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
            " FROM attempts a WHERE a.id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?
        .map(|row| attempt_at(&row))
        .transpose()
    }

    async fn attempts_of(&self, user_id: Uuid, filter: AttemptFilter) -> Result<Vec<Attempt>> {
        let query = match (&filter.lab, &filter.session_id) {
            (None, None) => attempts_of_query!(""),
            (Some(_), None) => attempts_of_query!(" AND a.lab = $3"),
            (None, Some(_)) => attempts_of_query!(" AND a.session_id = $3"),
            (Some(_), Some(_)) => attempts_of_query!(" AND a.lab = $3 AND a.session_id = $4"),
        };
        let mut query = sqlx::query(query)
            .bind(user_id)
            .bind(i64::from(filter.limit.min(ATTEMPTS_LIMIT_MAX)));
        if let Some(lab) = filter.lab {
            query = query.bind(lab);
        }
        if let Some(session_id) = filter.session_id {
            query = query.bind(session_id);
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
            "SELECT lab, step, passed_at FROM lab_progress WHERE user_id = $1 \
             ORDER BY lab, passed_at, step",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?
        .iter()
        .map(|row| {
            Ok(StepProgress {
                lab: get(row, 0)?,
                step: get(row, 1)?,
                passed_at: get(row, 2)?,
            })
        })
        .collect()
    }

    async fn attempt_counts(&self, user_id: Uuid) -> Result<Vec<LabAttempts>> {
        sqlx::query(
            "SELECT lab, COUNT(*), COUNT(*) FILTER (WHERE passed), MAX(submitted_at) \
             FROM attempts \
             WHERE user_id = $1 GROUP BY lab ORDER BY lab",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?
        .iter()
        .map(|row| {
            Ok(LabAttempts {
                lab: get(row, 0)?,
                attempts: get::<i64>(row, 1)?.unsigned_abs(),
                passed: get::<i64>(row, 2)?.unsigned_abs(),
                last_submitted_at: get(row, 3)?,
            })
        })
        .collect()
    }
}

/// The one place PostgreSQL errors become domain errors. Constraint names are those of
/// `migrations/postgres`.
fn map_err(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &e {
        match db.kind() {
            ErrorKind::UniqueViolation => {
                let constraint = match db.constraint() {
                    Some("users_username_key") => Some("users.username"),
                    Some("users_pkey") => Some("users.id"),
                    Some("external_identities_provider_subject_key") => {
                        Some("external_identities.subject")
                    }
                    Some("external_identities_pkey") => Some("external_identities.id"),
                    Some("credentials_token_hash_key") => Some("credentials.token_hash"),
                    Some("credentials_pkey") => Some("credentials.id"),
                    // (id, user_id) is unique because id is; either index may see a taken id.
                    Some("sessions_pkey" | "sessions_id_user_id_key") => Some("sessions.id"),
                    Some("attempts_pkey") => Some("attempts.id"),
                    Some("jobs_pkey") => Some("jobs.id"),
                    Some("projects_user_id_name_key") => Some("projects.name"),
                    Some("projects_pkey") => Some("projects.id"),
                    Some("apps_user_id_name_key") => Some("apps.name"),
                    Some("apps_pkey") => Some("apps.id"),
                    _ => None,
                };
                if let Some(constraint) = constraint {
                    return StoreError::Conflict { constraint };
                }
            }
            ErrorKind::ForeignKeyViolation => return StoreError::NotFound,
            _ => {}
        }
    }
    StoreError::Database(e)
}

/// `timestamptz` holds microseconds; truncating here (as the encoder does) means the value a
/// write returns is the value a later read returns.
fn micros(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(6)
}

fn corrupt(column: &'static str, detail: impl ToString) -> StoreError {
    StoreError::Corrupt {
        column,
        detail: detail.to_string(),
    }
}

fn get<'r, T>(row: &'r PgRow, i: usize) -> Result<T>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    row.try_get(i).map_err(StoreError::Database)
}

/// Decodes [`user_cols!`] starting at column `at`.
fn user_at(row: &PgRow, at: usize) -> Result<User> {
    Ok(User {
        id: get(row, at)?,
        username: get(row, at + 1)?,
        email: get(row, at + 2)?,
        password_hash: get(row, at + 3)?,
        role: get::<&str>(row, at + 4)?
            .parse()
            .map_err(|e| corrupt("users.role", e))?,
        created_at: get(row, at + 5)?,
        updated_at: get(row, at + 6)?,
    })
}

/// Decodes [`identity_cols!`].
fn identity_at(row: &PgRow) -> Result<ExternalIdentity> {
    let Json(profile) = get(row, 5)?;
    Ok(ExternalIdentity {
        id: get(row, 0)?,
        user_id: get(row, 1)?,
        provider: get(row, 2)?,
        subject: get(row, 3)?,
        login: get(row, 4)?,
        profile,
        created_at: get(row, 6)?,
        updated_at: get(row, 7)?,
    })
}

/// Decodes [`credential_cols!`].
fn credential_at(row: &PgRow) -> Result<Credential> {
    let hash: &[u8] = get(row, 5)?;
    Ok(Credential {
        id: get(row, 0)?,
        user_id: get(row, 1)?,
        kind: get::<&str>(row, 2)?
            .parse::<CredentialKind>()
            .map_err(|e| corrupt("credentials.kind", e))?,
        name: get(row, 3)?,
        prefix: get(row, 4)?,
        token_hash: hash
            .try_into()
            .map_err(|_| corrupt("credentials.token_hash", format!("{} bytes", hash.len())))?,
        created_at: get(row, 6)?,
        expires_at: get(row, 7)?,
        last_used_at: get(row, 8)?,
        revoked_at: get(row, 9)?,
    })
}

/// Decodes [`session_cols!`].
fn session_at(row: &PgRow) -> Result<Session> {
    Ok(Session {
        id: get(row, 0)?,
        user_id: get(row, 1)?,
        environment: get(row, 2)?,
        lab: get(row, 3)?,
        status: get::<&str>(row, 4)?
            .parse()
            .map_err(|e| corrupt("sessions.status", e))?,
        created_at: get(row, 5)?,
        expires_at: get(row, 6)?,
        ended_at: get(row, 7)?,
        end_reason: get::<Option<&str>>(row, 8)?
            .map(str::parse)
            .transpose()
            .map_err(|e| corrupt("sessions.end_reason", e))?,
    })
}

/// Decodes [`attempt_cols!`].
fn attempt_at(row: &PgRow) -> Result<Attempt> {
    let Json(failures) = get(row, 6)?;
    let Json(metrics) = get(row, 7)?;
    let Json(notes) = get(row, 8)?;
    Ok(Attempt {
        id: get(row, 0)?,
        user_id: get(row, 1)?,
        session_id: get(row, 2)?,
        lab: get(row, 3)?,
        step: get(row, 4)?,
        passed: get(row, 5)?,
        failures,
        metrics,
        notes,
        submitted_at: get(row, 9)?,
    })
}

// --- jobs: the shared SQL of `crate::jobs`, and PostgreSQL's lease ---

fn id_arg(id: Uuid) -> Uuid {
    id
}

fn opt_id_arg(id: Option<Uuid>) -> Option<Uuid> {
    id
}

fn ts_arg(t: DateTime<Utc>) -> DateTime<Utc> {
    t
}

fn opt_ts_arg(t: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    t
}

impl crate::jobs::Columns for PgRow {
    fn uuid(&self, i: usize, _: &'static str) -> Result<Uuid> {
        get(self, i)
    }
    fn opt_uuid(&self, i: usize, _: &'static str) -> Result<Option<Uuid>> {
        get(self, i)
    }
    fn time(&self, i: usize, _: &'static str) -> Result<DateTime<Utc>> {
        get(self, i)
    }
    fn opt_time(&self, i: usize, _: &'static str) -> Result<Option<DateTime<Utc>>> {
        get(self, i)
    }
    fn text(&self, i: usize) -> Result<String> {
        get(self, i)
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>> {
        get(self, i)
    }
    fn int(&self, i: usize) -> Result<i64> {
        get(self, i)
    }
    fn opt_int(&self, i: usize) -> Result<Option<i64>> {
        get(self, i)
    }
    fn boolean(&self, i: usize) -> Result<bool> {
        get(self, i)
    }
    fn json(&self, i: usize) -> Result<serde_json::Value> {
        let Json(v) = get(self, i)?;
        Ok(v)
    }
    fn opt_json(&self, i: usize) -> Result<Option<serde_json::Value>> {
        let v: Option<Json<serde_json::Value>> = get(self, i)?;
        Ok(v.map(|Json(v)| v))
    }
}

/// `FOR UPDATE SKIP LOCKED`: concurrent leases (other workers, other server processes) each
/// lock the rows they pick and pass over the ones another has locked, so no job is taken twice
/// and no one waits.
async fn lease_statement(
    conn: &mut sqlx::PgConnection,
    lease: crate::jobs::Lease<'_>,
) -> Result<Vec<crate::Job>> {
    let rows = sqlx::query(concat!(
        "UPDATE jobs SET state = 'running', lease_owner = $1, lease_expires_at = $2, \
         attempts = attempts + 1, started_at = COALESCE(started_at, $3), updated_at = $3, \
         last_event = last_event + 1 \
         WHERE id IN (SELECT id FROM jobs WHERE state = 'queued' AND run_at <= $3 \
             AND kind = ANY($4) \
             ORDER BY priority DESC, run_at, id LIMIT $5 FOR UPDATE SKIP LOCKED) \
         RETURNING ",
        job_cols!()
    ))
    .bind(lease.owner)
    .bind(micros(lease.until))
    .bind(micros(lease.now))
    .bind(lease.kinds)
    .bind(i64::from(lease.limit))
    .fetch_all(conn)
    .await
    .map_err(map_err)?;
    rows.iter().map(crate::jobs::job_at).collect()
}

job_store_impl!(PgStore, sqlx::Postgres, lease_statement);

fn bytes_at(row: &PgRow, i: usize) -> Result<Vec<u8>> {
    get(row, i)
}

project_store_impl!(PgStore, sqlx::Postgres);

app_store_impl!(PgStore, sqlx::Postgres);
database_store_impl!(PgStore);
cluster_store_impl!(PgStore);
