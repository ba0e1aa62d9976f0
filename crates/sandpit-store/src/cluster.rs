//! What server replicas sharing one database know of each other: who is running (a heartbeat
//! per replica), which replica holds each session's sandbox (a placement, claimed in one
//! statement so two replicas racing for a session never both win), and events every replica
//! must hear about (a credential revoked, a role changed). The SQL is written once for both
//! engines ([`cluster_store_impl!`]).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::Result;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replica {
    pub id: Uuid,
    /// Where other replicas reach this one's HTTP API (forwarded session requests).
    pub advertise_url: String,
    pub started_at: DateTime<Utc>,
    pub heartbeat_at: DateTime<Utc>,
}

/// Where a session's sandbox is, after a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// The claiming replica holds it (it did already, or took it over just now).
    Mine,
    /// A live replica holds it.
    Elsewhere {
        replica_id: Uuid,
        advertise_url: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterEventKind {
    /// A credential was revoked: every replica drops it from its cache.
    CredentialRevoked,
    /// A user's role or account changed: every replica drops their cached credentials.
    UserChanged,
}

impl ClusterEventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CredentialRevoked => "credential_revoked",
            Self::UserChanged => "user_changed",
        }
    }
}

impl std::str::FromStr for ClusterEventKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "credential_revoked" => Ok(Self::CredentialRevoked),
            "user_changed" => Ok(Self::UserChanged),
            other => Err(format!("unknown cluster event kind {other:?}")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterEvent {
    pub seq: i64,
    pub kind: ClusterEventKind,
    pub subject: Uuid,
    pub at: DateTime<Utc>,
}

#[async_trait]
pub trait ClusterStore: Send + Sync {
    /// Inserts a replica's row, or refreshes it (same id).
    async fn register_replica(&self, replica: Replica) -> Result<()>;
    /// Records a heartbeat. False when the replica's row is gone (it was declared dead): it
    /// must give up its sandboxes before it registers again.
    async fn heartbeat_replica(&self, id: Uuid, at: DateTime<Utc>) -> Result<bool>;
    /// Removes a replica's row and its placements (a graceful stop: its sessions are
    /// suspended at once rather than after the dead-after interval).
    async fn remove_replica(&self, id: Uuid) -> Result<()>;
    /// Replicas whose heartbeat is after `alive_after`, by id.
    async fn live_replicas(&self, alive_after: DateTime<Utc>) -> Result<Vec<Replica>>;
    /// Deletes the rows of replicas whose heartbeat is at or before `dead_before` (their
    /// placements name no live replica from then on). Returns how many went.
    async fn prune_replicas(&self, dead_before: DateTime<Utc>) -> Result<u64>;

    /// Claims a live session for `replica_id` unless a replica alive after `alive_after`
    /// (another one) holds it. Atomic: of two replicas claiming a suspended session at once,
    /// one gets [`Placement::Mine`] and the other [`Placement::Elsewhere`] naming the first.
    /// A session that is not live (or does not exist) and has no placement →
    /// [`crate::StoreError::NotFound`].
    async fn claim_session(
        &self,
        session_id: Uuid,
        replica_id: Uuid,
        at: DateTime<Utc>,
        alive_after: DateTime<Utc>,
    ) -> Result<Placement>;
    /// The live replica holding a session, if any: `(replica_id, advertise_url)`.
    async fn session_holder(
        &self,
        session_id: Uuid,
        alive_after: DateTime<Utc>,
    ) -> Result<Option<(Uuid, String)>>;
    /// Of `session_ids`, those a replica alive after `alive_after` holds.
    async fn held_sessions(
        &self,
        session_ids: &[Uuid],
        alive_after: DateTime<Utc>,
    ) -> Result<Vec<Uuid>>;
    /// Gives a session up (its sandbox is gone). False when `replica_id` did not hold it.
    async fn release_session(&self, session_id: Uuid, replica_id: Uuid) -> Result<bool>;

    /// Appends an event for every replica.
    async fn publish_cluster_event(
        &self,
        kind: ClusterEventKind,
        subject: Uuid,
        at: DateTime<Utc>,
    ) -> Result<()>;
    /// Events after `seq`, oldest first, at most `limit`.
    async fn cluster_events_after(&self, seq: i64, limit: u32) -> Result<Vec<ClusterEvent>>;
    /// The newest event's number (0 when there is none): where a starting replica begins.
    async fn last_cluster_event(&self) -> Result<i64>;
    /// Deletes events older than `before`. Returns how many went.
    async fn prune_cluster_events(&self, before: DateTime<Utc>) -> Result<u64>;
}

macro_rules! replica_cols {
    () => {
        "id, advertise_url, started_at, heartbeat_at"
    };
}

/// Decodes [`replica_cols!`].
pub(crate) fn replica_at(row: &impl crate::jobs::Columns) -> Result<Replica> {
    Ok(Replica {
        id: row.uuid(0, "replicas.id")?,
        advertise_url: row.text(1)?,
        started_at: row.time(2, "replicas.started_at")?,
        heartbeat_at: row.time(3, "replicas.heartbeat_at")?,
    })
}

/// Decodes `seq, kind, subject, at`.
pub(crate) fn cluster_event_at(row: &impl crate::jobs::Columns) -> Result<ClusterEvent> {
    Ok(ClusterEvent {
        seq: row.int(0)?,
        kind: row
            .text(1)?
            .parse()
            .map_err(|detail| crate::StoreError::Corrupt {
                column: "cluster_events.kind",
                detail,
            })?,
        subject: row.uuid(2, "cluster_events.subject")?,
        at: row.time(3, "cluster_events.at")?,
    })
}

/// The [`ClusterStore`] implementation of one engine, written once, in the terms
/// `job_store_impl!` uses (`id_arg`, `ts_arg`, `micros`, `map_err`).
macro_rules! cluster_store_impl {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::cluster::ClusterStore for $store {
            async fn register_replica(
                &self,
                replica: $crate::cluster::Replica,
            ) -> $crate::Result<()> {
                sqlx::query(
                    "INSERT INTO replicas (id, advertise_url, started_at, heartbeat_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO UPDATE SET \
                     advertise_url = excluded.advertise_url, heartbeat_at = excluded.heartbeat_at",
                )
                .bind(id_arg(replica.id))
                .bind(&replica.advertise_url)
                .bind(ts_arg(micros(replica.started_at)))
                .bind(ts_arg(micros(replica.heartbeat_at)))
                .execute(&self.pool)
                .await
                .map_err(map_err)?;
                Ok(())
            }

            async fn heartbeat_replica(
                &self,
                id: uuid::Uuid,
                at: chrono::DateTime<chrono::Utc>,
            ) -> $crate::Result<bool> {
                let done = sqlx::query("UPDATE replicas SET heartbeat_at = $2 WHERE id = $1")
                    .bind(id_arg(id))
                    .bind(ts_arg(micros(at)))
                    .execute(&self.pool)
                    .await
                    .map_err(map_err)?;
                Ok(done.rows_affected() > 0)
            }

            async fn remove_replica(&self, id: uuid::Uuid) -> $crate::Result<()> {
                let mut tx = self.pool.begin().await.map_err(map_err)?;
                sqlx::query("DELETE FROM session_placements WHERE replica_id = $1")
                    .bind(id_arg(id))
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                sqlx::query("DELETE FROM replicas WHERE id = $1")
                    .bind(id_arg(id))
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                tx.commit().await.map_err(map_err)
            }

            async fn live_replicas(
                &self,
                alive_after: chrono::DateTime<chrono::Utc>,
            ) -> $crate::Result<Vec<$crate::cluster::Replica>> {
                let rows = sqlx::query(concat!(
                    "SELECT ",
                    replica_cols!(),
                    " FROM replicas WHERE heartbeat_at > $1 ORDER BY id"
                ))
                .bind(ts_arg(micros(alive_after)))
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
                rows.iter().map($crate::cluster::replica_at).collect()
            }

            async fn prune_replicas(
                &self,
                dead_before: chrono::DateTime<chrono::Utc>,
            ) -> $crate::Result<u64> {
                let done = sqlx::query("DELETE FROM replicas WHERE heartbeat_at <= $1")
                    .bind(ts_arg(micros(dead_before)))
                    .execute(&self.pool)
                    .await
                    .map_err(map_err)?;
                Ok(done.rows_affected())
            }

            async fn claim_session(
                &self,
                session_id: uuid::Uuid,
                replica_id: uuid::Uuid,
                at: chrono::DateTime<chrono::Utc>,
                alive_after: chrono::DateTime<chrono::Utc>,
            ) -> $crate::Result<$crate::cluster::Placement> {
                // The upsert's WHERE is evaluated on the row as it is when the statement holds
                // its lock (PostgreSQL re-checks a concurrently updated row; SQLite has one
                // writer), so a takeover happens only from a holder that is really gone.
                // Only a live session is placed; `WHERE EXISTS` also ends SQLite's SELECT
                // before ON CONFLICT (the upsert's parsing ambiguity).
                sqlx::query(
                    "INSERT INTO session_placements (session_id, replica_id, claimed_at) \
                     SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM sessions \
                     WHERE id = $1 AND status = 'live') ON CONFLICT (session_id) DO UPDATE SET \
                     replica_id = excluded.replica_id, claimed_at = excluded.claimed_at \
                     WHERE session_placements.replica_id <> excluded.replica_id \
                     AND NOT EXISTS (SELECT 1 FROM replicas WHERE \
                     replicas.id = session_placements.replica_id AND replicas.heartbeat_at > $4)",
                )
                .bind(id_arg(session_id))
                .bind(id_arg(replica_id))
                .bind(ts_arg(micros(at)))
                .bind(ts_arg(micros(alive_after)))
                .execute(&self.pool)
                .await
                .map_err(map_err)?;
                let row = sqlx::query(
                    "SELECT p.replica_id, r.advertise_url FROM session_placements p \
                     LEFT JOIN replicas r ON r.id = p.replica_id WHERE p.session_id = $1",
                )
                .bind(id_arg(session_id))
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
                use $crate::jobs::Columns as _;
                match row {
                    None => Err($crate::StoreError::NotFound),
                    Some(row) => {
                        let holder = row.uuid(0, "session_placements.replica_id")?;
                        if holder == replica_id {
                            return Ok($crate::cluster::Placement::Mine);
                        }
                        Ok($crate::cluster::Placement::Elsewhere {
                            replica_id: holder,
                            // Pruned between the two statements: it is gone, and the caller's
                            // next claim takes the session over.
                            advertise_url: row.opt_text(1)?.unwrap_or_default(),
                        })
                    }
                }
            }

            async fn session_holder(
                &self,
                session_id: uuid::Uuid,
                alive_after: chrono::DateTime<chrono::Utc>,
            ) -> $crate::Result<Option<(uuid::Uuid, String)>> {
                let row = sqlx::query(
                    "SELECT p.replica_id, r.advertise_url FROM session_placements p \
                     JOIN replicas r ON r.id = p.replica_id \
                     WHERE p.session_id = $1 AND r.heartbeat_at > $2",
                )
                .bind(id_arg(session_id))
                .bind(ts_arg(micros(alive_after)))
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
                use $crate::jobs::Columns as _;
                row.map(|row| Ok((row.uuid(0, "session_placements.replica_id")?, row.text(1)?)))
                    .transpose()
            }

            async fn held_sessions(
                &self,
                session_ids: &[uuid::Uuid],
                alive_after: chrono::DateTime<chrono::Utc>,
            ) -> $crate::Result<Vec<uuid::Uuid>> {
                use $crate::jobs::Columns as _;
                let mut held = Vec::new();
                // A user has a handful of sessions; one indexed lookup each keeps the SQL the
                // same on both engines (no array binding).
                for id in session_ids {
                    let row = sqlx::query(
                        "SELECT p.session_id FROM session_placements p \
                         JOIN replicas r ON r.id = p.replica_id \
                         WHERE p.session_id = $1 AND r.heartbeat_at > $2",
                    )
                    .bind(id_arg(*id))
                    .bind(ts_arg(micros(alive_after)))
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(map_err)?;
                    if let Some(row) = row {
                        held.push(row.uuid(0, "session_placements.session_id")?);
                    }
                }
                Ok(held)
            }

            async fn release_session(
                &self,
                session_id: uuid::Uuid,
                replica_id: uuid::Uuid,
            ) -> $crate::Result<bool> {
                let done = sqlx::query(
                    "DELETE FROM session_placements WHERE session_id = $1 AND replica_id = $2",
                )
                .bind(id_arg(session_id))
                .bind(id_arg(replica_id))
                .execute(&self.pool)
                .await
                .map_err(map_err)?;
                Ok(done.rows_affected() > 0)
            }

            async fn publish_cluster_event(
                &self,
                kind: $crate::cluster::ClusterEventKind,
                subject: uuid::Uuid,
                at: chrono::DateTime<chrono::Utc>,
            ) -> $crate::Result<()> {
                sqlx::query("INSERT INTO cluster_events (kind, subject, at) VALUES ($1, $2, $3)")
                    .bind(kind.as_str())
                    .bind(id_arg(subject))
                    .bind(ts_arg(micros(at)))
                    .execute(&self.pool)
                    .await
                    .map_err(map_err)?;
                Ok(())
            }

            async fn cluster_events_after(
                &self,
                seq: i64,
                limit: u32,
            ) -> $crate::Result<Vec<$crate::cluster::ClusterEvent>> {
                let rows = sqlx::query(
                    "SELECT seq, kind, subject, at FROM cluster_events WHERE seq > $1 \
                     ORDER BY seq LIMIT $2",
                )
                .bind(seq)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
                rows.iter().map($crate::cluster::cluster_event_at).collect()
            }

            async fn last_cluster_event(&self) -> $crate::Result<i64> {
                let seq: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM cluster_events")
                    .fetch_one(&self.pool)
                    .await
                    .map_err(map_err)?;
                Ok(seq.unwrap_or(0))
            }

            async fn prune_cluster_events(
                &self,
                before: chrono::DateTime<chrono::Utc>,
            ) -> $crate::Result<u64> {
                let done = sqlx::query("DELETE FROM cluster_events WHERE at < $1")
                    .bind(ts_arg(micros(before)))
                    .execute(&self.pool)
                    .await
                    .map_err(map_err)?;
                Ok(done.rows_affected())
            }
        }
    };
}
