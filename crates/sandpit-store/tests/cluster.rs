//! Replicas, session placements and cluster events ([`ClusterStore`]) on both engines: a claim
//! is taken over only from a replica that is gone, racing claims have one winner, a graceful
//! stop suspends its sessions at once, events are read in order.

#![expect(
    clippy::unwrap_used,
    reason = "in a test, a failed unwrap is a failed test"
)]

#[macro_use]
mod common;

use std::sync::Arc;

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use sandpit_store::{
    ClusterEventKind, EndReason, NewSession, NewUser, Placement, Replica, Role, Store, StoreError,
};
use uuid::Uuid;

fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

async fn session(store: &dyn Store) -> Uuid {
    let user = Uuid::now_v7();
    store
        .create_user(NewUser {
            id: user,
            username: format!("u{}", user.simple()),
            email: None,
            password_hash: None,
            role: Role::Learner,
            created_at: now(),
        })
        .await
        .unwrap();
    let id = Uuid::new_v4();
    store
        .create_session(
            NewSession {
                id,
                user_id: user,
                environment: "default".into(),
                lab: None,
                created_at: now(),
                expires_at: now() + TimeDelta::hours(1),
            },
            10,
        )
        .await
        .unwrap();
    id
}

async fn replica(store: &dyn Store, url: &str, heartbeat_at: DateTime<Utc>) -> Uuid {
    let id = Uuid::now_v7();
    store
        .register_replica(Replica {
            id,
            advertise_url: url.into(),
            started_at: heartbeat_at,
            heartbeat_at,
        })
        .await
        .unwrap();
    id
}

async fn a_claim_is_taken_over_only_from_a_gone_replica(store: Arc<dyn Store>) {
    let s = session(&*store).await;
    let t = now();
    let a = replica(&*store, "http://a:8080", t).await;
    let b = replica(&*store, "http://b:8080", t).await;
    let alive_after = t - TimeDelta::seconds(10);

    assert_eq!(
        store.claim_session(s, a, t, alive_after).await.unwrap(),
        Placement::Mine
    );
    // Again: still mine.
    assert_eq!(
        store.claim_session(s, a, t, alive_after).await.unwrap(),
        Placement::Mine
    );
    assert_eq!(
        store.claim_session(s, b, t, alive_after).await.unwrap(),
        Placement::Elsewhere {
            replica_id: a,
            advertise_url: "http://a:8080".into()
        }
    );
    assert_eq!(
        store.session_holder(s, alive_after).await.unwrap(),
        Some((a, "http://a:8080".into()))
    );
    assert_eq!(
        store
            .held_sessions(&[s, Uuid::new_v4()], alive_after)
            .await
            .unwrap(),
        vec![s]
    );

    // B keeps beating; A's last heartbeat falls before the dead-after line: B takes over.
    let later = t + TimeDelta::seconds(30);
    assert!(store.heartbeat_replica(b, later).await.unwrap());
    let alive_after = later - TimeDelta::seconds(10);
    assert_eq!(store.session_holder(s, alive_after).await.unwrap(), None);
    assert_eq!(
        store.held_sessions(&[s], alive_after).await.unwrap(),
        Vec::<Uuid>::new()
    );
    assert_eq!(
        store.claim_session(s, b, later, alive_after).await.unwrap(),
        Placement::Mine
    );
    assert_eq!(
        store.claim_session(s, a, later, alive_after).await.unwrap(),
        Placement::Elsewhere {
            replica_id: b,
            advertise_url: "http://b:8080".into()
        }
    );
    // A learns it was declared dead when its row is pruned.
    assert_eq!(store.prune_replicas(alive_after).await.unwrap(), 1);
    assert!(!store.heartbeat_replica(a, later).await.unwrap());
    let live = store.live_replicas(alive_after).await.unwrap();
    assert_eq!(live.iter().map(|r| r.id).collect::<Vec<_>>(), vec![b]);

    // Releasing is the holder's alone.
    assert!(!store.release_session(s, a).await.unwrap());
    assert!(store.release_session(s, b).await.unwrap());
    assert_eq!(store.session_holder(s, alive_after).await.unwrap(), None);
}

async fn only_live_sessions_are_placed(store: Arc<dyn Store>) {
    let t = now();
    let a = replica(&*store, "http://a", t).await;
    let missing = store
        .claim_session(Uuid::new_v4(), a, t, t - TimeDelta::seconds(10))
        .await;
    assert!(matches!(missing, Err(StoreError::NotFound)), "{missing:?}");
    let s = session(&*store).await;
    assert!(store.end_session(s, t, EndReason::User).await.unwrap());
    let ended = store
        .claim_session(s, a, t, t - TimeDelta::seconds(10))
        .await;
    assert!(matches!(ended, Err(StoreError::NotFound)), "{ended:?}");
}

async fn racing_claims_have_one_winner(store: Arc<dyn Store>) {
    let t = now();
    let alive_after = t - TimeDelta::seconds(10);
    for _ in 0..5 {
        let s = session(&*store).await;
        let mut replicas = Vec::new();
        for i in 0..4 {
            replicas.push(replica(&*store, &format!("http://r{i}"), t).await);
        }
        let claims = replicas.iter().map(|&r| {
            let store = store.clone();
            tokio::spawn(
                async move { (r, store.claim_session(s, r, t, alive_after).await.unwrap()) },
            )
        });
        let results: Vec<_> = futures_join(claims).await;
        let winners: Vec<Uuid> = results
            .iter()
            .filter(|(_, p)| *p == Placement::Mine)
            .map(|(r, _)| *r)
            .collect();
        assert_eq!(winners.len(), 1, "{results:?}");
        for (_, p) in &results {
            if let Placement::Elsewhere { replica_id, .. } = p {
                assert_eq!(*replica_id, winners[0]);
            }
        }
    }
}

async fn futures_join<T: Send + 'static>(
    handles: impl Iterator<Item = tokio::task::JoinHandle<T>>,
) -> Vec<T> {
    let mut out = Vec::new();
    for h in handles.collect::<Vec<_>>() {
        out.push(h.await.unwrap());
    }
    out
}

async fn a_graceful_stop_suspends_its_sessions_at_once(store: Arc<dyn Store>) {
    let t = now();
    let alive_after = t - TimeDelta::seconds(10);
    let a = replica(&*store, "http://a", t).await;
    let b = replica(&*store, "http://b", t).await;
    let (s1, s2) = (session(&*store).await, session(&*store).await);
    store.claim_session(s1, a, t, alive_after).await.unwrap();
    store.claim_session(s2, b, t, alive_after).await.unwrap();
    store.remove_replica(a).await.unwrap();
    assert_eq!(store.session_holder(s1, alive_after).await.unwrap(), None);
    assert_eq!(
        store.session_holder(s2, alive_after).await.unwrap(),
        Some((b, "http://b".into()))
    );
    assert_eq!(
        store.claim_session(s1, b, t, alive_after).await.unwrap(),
        Placement::Mine
    );
    // Registering again (same id) refreshes the row.
    store
        .register_replica(Replica {
            id: b,
            advertise_url: "http://b2".into(),
            started_at: t,
            heartbeat_at: t,
        })
        .await
        .unwrap();
    assert_eq!(
        store.session_holder(s2, alive_after).await.unwrap(),
        Some((b, "http://b2".into()))
    );
}

async fn cluster_events_are_read_in_order_and_pruned(store: Arc<dyn Store>) {
    assert_eq!(store.last_cluster_event().await.unwrap(), 0);
    let old = now() - TimeDelta::hours(2);
    let (x, y) = (Uuid::now_v7(), Uuid::now_v7());
    store
        .publish_cluster_event(ClusterEventKind::CredentialRevoked, x, old)
        .await
        .unwrap();
    store
        .publish_cluster_event(ClusterEventKind::UserChanged, y, now())
        .await
        .unwrap();
    let all = store.cluster_events_after(0, 10).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(
        (all[0].kind, all[0].subject),
        (ClusterEventKind::CredentialRevoked, x)
    );
    assert_eq!(
        (all[1].kind, all[1].subject),
        (ClusterEventKind::UserChanged, y)
    );
    assert!(all[0].seq < all[1].seq);
    assert_eq!(store.last_cluster_event().await.unwrap(), all[1].seq);
    assert_eq!(
        store.cluster_events_after(all[0].seq, 10).await.unwrap(),
        vec![all[1].clone()]
    );
    assert_eq!(
        store.cluster_events_after(0, 1).await.unwrap(),
        vec![all[0].clone()]
    );
    assert_eq!(
        store
            .prune_cluster_events(now() - TimeDelta::hours(1))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store.cluster_events_after(0, 10).await.unwrap(),
        vec![all[1].clone()]
    );
}

engine_tests!(
    a_claim_is_taken_over_only_from_a_gone_replica,
    only_live_sessions_are_placed,
    racing_claims_have_one_winner,
    a_graceful_stop_suspends_its_sessions_at_once,
    cluster_events_are_read_in_order_and_pruned,
);
