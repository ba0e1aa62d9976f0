//! Replicas: several `sandpit serve` processes on one database, any of which serves any session.
//!
//! Each replica has a row in the store that its heartbeat keeps fresh. A session's sandbox runs
//! on the replica that claimed it (a placement in the store, claimed in one statement, so two
//! replicas racing to start a session's sandbox never both win). A request for a session that
//! reaches another replica is forwarded to the holder, byte for byte (WebSocket upgrades
//! included): [`forward`]. A replica that stops beating is gone after `dead_after`: its
//! sessions are suspended, and the next replica asked for one claims it and starts a sandbox on
//! the session's workspace (on storage the replicas share). A replica that finds its own row
//! gone (it was cut off long enough to be declared dead) drops every sandbox it holds before it
//! joins again, so a session never has two sandboxes on one workspace.
//!
//! What every replica must hear about goes through cluster events: a revoked credential or a
//! changed role reaches the other replicas' credential caches within a heartbeat. Rate limits
//! are kept per replica, each request costing as many tokens as there are live replicas, so a
//! user's total across replicas stays within the configured rate.

pub mod config;
pub mod forward;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use dashmap::DashMap;
use hmac::{Hmac, Mac};
use sandpit_store::{ClusterEventKind, Placement, Replica, Store, StoreError};
use uuid::Uuid;

pub use config::ClusterConfig;

use crate::state::AppState;

/// The header a replica puts on a request it forwards; its value proves the sender is a
/// replica (it is derived from the signing secret every replica shares).
pub const FORWARDED_HEADER: &str = "x-sandpit-forwarded";

pub struct Cluster {
    id: Uuid,
    advertise_url: String,
    config: ClusterConfig,
    store: Arc<dyn Store>,
    /// The value of [`FORWARDED_HEADER`] is this MAC's output, in hex.
    forward_mac: Hmac<sha2::Sha256>,
    /// One connection pool per peer, by its advertised URL.
    peers: DashMap<String, Arc<sandpit_proxy::Upstream>>,
    /// Live replicas at the last heartbeat (at least 1: this one).
    live: AtomicU32,
    /// The last cluster event applied here.
    last_event: AtomicI64,
    /// Recently looked-up holders of sessions held elsewhere, so a stream of requests for one
    /// session costs one store query a heartbeat rather than one each (see [`HOLDER_TTL`]).
    holders: DashMap<Uuid, (std::time::Instant, String)>,
    /// Set when a graceful stop begins: no session is claimed from then on.
    leaving: std::sync::atomic::AtomicBool,
    /// When the store last took this replica's heartbeat.
    last_heartbeat: std::sync::Mutex<std::time::Instant>,
}

/// How long a looked-up holder is trusted. A session moves only when its holder is gone or
/// stops; a request forwarded to a holder that no longer answers drops the entry at once.
const HOLDER_TTL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ClusterReport {
    /// This replica's id (its address is not shown: `/readyz` is public).
    pub replica_id: Uuid,
    /// Replicas with a fresh heartbeat, this one included.
    pub live_replicas: u32,
}

impl Cluster {
    pub fn new(
        config: ClusterConfig,
        store: Arc<dyn Store>,
        secret: &[u8],
        bound: std::net::SocketAddr,
    ) -> Self {
        let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(secret)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(b"sandpit replica forwarding v1");
        Self {
            id: Uuid::now_v7(),
            advertise_url: config.advertise_url(bound),
            config,
            store,
            forward_mac: mac,
            peers: DashMap::new(),
            live: AtomicU32::new(1),
            last_event: AtomicI64::new(0),
            holders: DashMap::new(),
            leaving: std::sync::atomic::AtomicBool::new(false),
            last_heartbeat: std::sync::Mutex::new(std::time::Instant::now()),
        }
    }

    pub fn id(&self) -> Uuid {
        self.id
    }

    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// Replicas alive at the last heartbeat.
    pub fn live_replicas(&self) -> u32 {
        self.live.load(Ordering::Relaxed).max(1)
    }

    pub fn report(&self) -> ClusterReport {
        ClusterReport {
            replica_id: self.id,
            live_replicas: self.live_replicas(),
        }
    }

    fn alive_after(&self) -> DateTime<Utc> {
        Utc::now() - self.config.dead_after()
    }

    /// Registers this replica (at start-up, and again after it was declared dead). Events
    /// older than now were for caches this process never had.
    pub async fn join(&self) -> Result<(), StoreError> {
        if self.last_event.load(Ordering::Relaxed) == 0 {
            let last = self.store.last_cluster_event().await?;
            self.last_event.store(last, Ordering::Relaxed);
        }
        let now = Utc::now();
        self.store
            .register_replica(Replica {
                id: self.id,
                advertise_url: self.advertise_url.clone(),
                started_at: now,
                heartbeat_at: now,
            })
            .await?;
        tracing::info!(replica.id = %self.id, advertise_url = %self.advertise_url, "joined the cluster");
        Ok(())
    }

    /// At the start of a graceful stop: from now on this replica claims no session.
    pub fn begin_leaving(&self) {
        self.leaving.store(true, Ordering::SeqCst);
    }

    /// At shutdown, after this replica's sandboxes are gone: its sessions are suspended at once.
    pub async fn leave(&self) {
        if let Err(e) = self.store.remove_replica(self.id).await {
            tracing::warn!(error = %e, "leaving the cluster");
        }
    }

    /// The advertised URL of another live replica holding `session_id`, if one does.
    pub async fn holder_elsewhere(&self, session_id: Uuid) -> Result<Option<String>, StoreError> {
        if let Some(entry) = self.holders.get(&session_id)
            && entry.0.elapsed() < HOLDER_TTL
        {
            return Ok(Some(entry.1.clone()));
        }
        let holder = self
            .store
            .session_holder(session_id, self.alive_after())
            .await?
            .filter(|(replica, _)| *replica != self.id)
            .map(|(_, url)| url);
        match &holder {
            Some(url) => {
                if self.holders.len() > 100_000 {
                    self.holders.retain(|_, (at, _)| at.elapsed() < HOLDER_TTL);
                }
                self.holders
                    .insert(session_id, (std::time::Instant::now(), url.clone()));
            }
            None => {
                self.holders.remove(&session_id);
            }
        }
        Ok(holder)
    }

    /// Forgets a looked-up holder (it did not answer, or the session moved here).
    pub fn forget_holder(&self, session_id: Uuid) {
        self.holders.remove(&session_id);
    }

    /// Ids of the live replicas (this one included), or `None` when the store cannot say.
    pub async fn live_ids(&self) -> Option<std::collections::HashSet<String>> {
        match self.store.live_replicas(self.alive_after()).await {
            Ok(live) => Some(live.iter().map(|r| r.id.to_string()).collect()),
            Err(e) => {
                tracing::warn!(error = %e, "listing replicas");
                None
            }
        }
    }

    /// Of `ids`, the sessions some live replica (this one included) holds.
    pub async fn held(&self, ids: &[Uuid]) -> Result<Vec<Uuid>, StoreError> {
        self.store.held_sessions(ids, self.alive_after()).await
    }

    /// Claims a session's sandbox for this replica (see [`sandpit_store::ClusterStore::claim_session`]).
    pub async fn claim(&self, session_id: Uuid) -> Result<Placement, StoreError> {
        self.forget_holder(session_id);
        if self.leaving.load(Ordering::SeqCst) {
            // Stopping: a sandbox started now would die at once. The session stays for the
            // next replica (the caller is told to retry).
            return Ok(Placement::Elsewhere {
                replica_id: self.id,
                advertise_url: String::new(),
            });
        }
        self.store
            .claim_session(session_id, self.id, Utc::now(), self.alive_after())
            .await
    }

    /// Gives up a session (its sandbox is gone).
    pub async fn release(&self, session_id: Uuid) {
        if let Err(e) = self.store.release_session(session_id, self.id).await {
            tracing::warn!(session.id = %session_id, error = %e, "releasing a session's placement");
        }
    }

    /// Tells every replica (this one included, at its next heartbeat) about a change.
    pub async fn publish(&self, kind: ClusterEventKind, subject: Uuid) {
        if let Err(e) = self
            .store
            .publish_cluster_event(kind, subject, Utc::now())
            .await
        {
            tracing::warn!(error = %e, kind = kind.as_str(), "publishing a cluster event");
        }
    }

    /// Whether a request came from another replica (checked in constant time).
    pub fn is_forwarded(&self, headers: &http::HeaderMap) -> bool {
        headers
            .get(FORWARDED_HEADER)
            .and_then(|v| hex::decode(v.as_bytes()).ok())
            .is_some_and(|bytes| self.forward_mac.clone().verify_slice(&bytes).is_ok())
    }

    /// The value of [`FORWARDED_HEADER`] on a request this replica forwards.
    fn forward_token(&self) -> String {
        hex::encode(self.forward_mac.clone().finalize().into_bytes())
    }

    /// One round: the heartbeat (or, when this replica was declared dead, giving up its
    /// sandboxes and joining again), forgetting replicas long gone, and applying new events.
    pub async fn tick(&self, state: &AppState) {
        let beat = self.store.heartbeat_replica(self.id, Utc::now()).await;
        let mut last_ok = *self
            .last_heartbeat
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Silent for (nearly) dead-after, the others may take this replica's sessions over as
        // soon as they can reach the store: its sandboxes go first, before they can. (Alone, a
        // slow store is no reason to drop anything: there is nobody to take over.)
        let fence = self.live_replicas() > 1
            && last_ok.elapsed() + self.config.heartbeat() >= self.config.dead_after();
        match beat {
            Ok(true) => {
                if fence && !state.sessions.is_empty() {
                    tracing::warn!(replica.id = %self.id, silent_ms = last_ok.elapsed().as_millis() as u64, "this replica could not beat for too long; dropping its sandboxes");
                    state.sessions.shutdown().await;
                }
                last_ok = std::time::Instant::now();
            }
            Ok(false) => {
                tracing::warn!(replica.id = %self.id, "this replica was declared gone; dropping its sandboxes and joining again");
                state.sessions.shutdown().await;
                match self.join().await {
                    Ok(()) => last_ok = std::time::Instant::now(),
                    Err(e) => tracing::warn!(error = %e, "joining the cluster again"),
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cluster heartbeat");
                if fence && !state.sessions.is_empty() {
                    tracing::warn!(replica.id = %self.id, "the store is out of reach for too long; dropping this replica's sandboxes");
                    state.sessions.shutdown().await;
                }
            }
        }
        *self
            .last_heartbeat
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = last_ok;
        // Rows of replicas silent for ten dead-after intervals go; until then `/readyz` and
        // the claims treat them as gone anyway.
        let long_gone = Utc::now() - self.config.dead_after() * 10;
        if let Err(e) = self.store.prune_replicas(long_gone).await {
            tracing::warn!(error = %e, "pruning replicas");
        }
        match self.store.live_replicas(self.alive_after()).await {
            Ok(live) => {
                let n = u32::try_from(live.len()).unwrap_or(u32::MAX).max(1);
                self.live.store(n, Ordering::Relaxed);
                state.limits.set_replicas(n);
            }
            Err(e) => tracing::warn!(error = %e, "listing replicas"),
        }
        self.apply_events(state).await;
    }

    async fn apply_events(&self, state: &AppState) {
        loop {
            let after = self.last_event.load(Ordering::Relaxed);
            let events = match self.store.cluster_events_after(after, 500).await {
                Ok(events) => events,
                Err(e) => {
                    tracing::warn!(error = %e, "reading cluster events");
                    return;
                }
            };
            let Some(last) = events.last().map(|e| e.seq) else {
                return;
            };
            for event in &events {
                match event.kind {
                    ClusterEventKind::CredentialRevoked => {
                        state.auth_cache.forget_credential(event.subject);
                    }
                    ClusterEventKind::UserChanged => state.auth_cache.forget_user(event.subject),
                }
            }
            self.last_event.store(last, Ordering::Relaxed);
            if events.len() < 500 {
                return;
            }
        }
    }

    /// Heartbeats until the task is dropped; events older than a day are pruned hourly.
    pub async fn run(self: Arc<Self>, state: AppState) {
        let mut tick = tokio::time::interval(self.config.heartbeat());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut rounds = 0u64;
        let per_hour = (3_600_000 / self.config.heartbeat_ms.max(1)).max(1);
        loop {
            tick.tick().await;
            self.tick(&state).await;
            if rounds.is_multiple_of(per_hour)
                && let Err(e) = self
                    .store
                    .prune_cluster_events(Utc::now() - chrono::Duration::days(1))
                    .await
            {
                tracing::warn!(error = %e, "pruning cluster events");
            }
            rounds += 1;
        }
    }

    fn peer(&self, url: &str) -> Option<Arc<sandpit_proxy::Upstream>> {
        if let Some(peer) = self.peers.get(url) {
            return Some(peer.clone());
        }
        let parsed = url::Url::parse(url).ok()?;
        let host = parsed.host_str()?.to_owned();
        let port = parsed.port_or_known_default()?;
        let upstream = Arc::new(sandpit_proxy::Upstream::new(
            Arc::new(forward::Dial { host, port }),
            sandpit_proxy::UpstreamOptions {
                max_idle: 32,
                connect_timeout: Duration::from_secs(2),
                // A judge or an exec answers when it is done; the holder's own limits bound it.
                response_timeout: Duration::from_secs(15 * 60),
            },
        ));
        self.peers.insert(url.to_owned(), upstream.clone());
        Some(upstream)
    }
}
