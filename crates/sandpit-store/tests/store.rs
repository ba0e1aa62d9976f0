//! The one suite every [`Store`] implementation must pass.
//!
//! Each `async fn` below takes a freshly migrated store; [`engine_tests!`] turns every one into
//! a test in `mod sqlite` (a new database file in a temporary directory) and in `mod postgres`
//! (a new database from `sandpit_testkit::postgres_url`). Add a test by writing the function
//! and adding its name to the macro call at the bottom. (The job queue's suite is jobs.rs.)

// clippy's allow-unwrap-in-tests covers `#[test]` functions, not the suite's helpers.
#![expect(
    clippy::unwrap_used,
    reason = "in a test, a failed unwrap is a failed test"
)]

#[macro_use]
mod common;

use std::sync::Arc;

use chrono::{DateTime, SubsecRound, TimeDelta, TimeZone, Utc};
use sandpit_store::{
    ATTEMPTS_LIMIT_MAX, Attempt, AttemptFilter, Credential, CredentialKind, EndReason, LabAttempts,
    NewAttempt, NewCredential, NewIdentity, NewSession, NewUser, Role, SESSIONS_LIVE_PER_USER,
    Session, SessionStatus, StepProgress, Store, StoreError, User,
};
use serde_json::json;
use uuid::Uuid;

/// A fixed instant with a nanosecond part, so truncation to microseconds shows.
fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 14, 15, 9, 26).unwrap() + TimeDelta::nanoseconds(535_897_932)
}

fn secs(n: i64) -> TimeDelta {
    TimeDelta::seconds(n)
}

fn new_user(username: &str) -> NewUser {
    NewUser {
        id: Uuid::now_v7(),
        username: username.to_owned(),
        email: Some(format!("{}@example.org", username.to_lowercase())),
        password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned()),
        role: Role::Learner,
        created_at: t0(),
    }
}

async fn user(store: &dyn Store, username: &str) -> User {
    store.create_user(new_user(username)).await.unwrap()
}

/// A distinct, recognisable hash per `n`.
fn hash(n: u8) -> [u8; 32] {
    let mut h = [0xa5; 32];
    h[0] = n;
    h[31] = n;
    h
}

fn new_credential(user_id: Uuid, kind: CredentialKind, n: u8) -> NewCredential {
    NewCredential {
        id: Uuid::now_v7(),
        user_id,
        kind,
        name: format!("token {n}"),
        prefix: format!("sp_{n:02x}"),
        token_hash: hash(n),
        created_at: t0(),
        expires_at: None,
    }
}

async fn credential(store: &dyn Store, new: NewCredential) -> Credential {
    store.create_credential(new).await.unwrap()
}

fn new_identity(user_id: Uuid, subject: &str) -> NewIdentity {
    NewIdentity {
        id: Uuid::now_v7(),
        user_id,
        provider: "github".to_owned(),
        subject: subject.to_owned(),
        login: format!("octo{subject}"),
        profile: json!({ "id": 1, "login": format!("octo{subject}") }),
        created_at: t0(),
    }
}

/// A one-hour session of `user_id` created at `created_at`.
fn new_session(user_id: Uuid, created_at: DateTime<Utc>) -> NewSession {
    NewSession {
        id: Uuid::now_v7(),
        user_id,
        environment: "python-3.12".to_owned(),
        lab: Some("python-basics".to_owned()),
        created_at,
        expires_at: created_at + secs(3600),
    }
}

/// Creates a session with a cap high enough never to matter.
async fn session(store: &dyn Store, new: NewSession) -> Session {
    store.create_session(new, 100).await.unwrap()
}

fn ids(sessions: &[Session]) -> Vec<Uuid> {
    sessions.iter().map(|s| s.id).collect()
}

fn assert_conflict<T: std::fmt::Debug>(result: sandpit_store::Result<T>, expected: &str) {
    match result {
        Err(StoreError::Conflict { constraint }) => assert_eq!(constraint, expected),
        other => panic!("expected Conflict {{ {expected} }}, got {other:?}"),
    }
}

fn assert_not_found<T: std::fmt::Debug>(result: sandpit_store::Result<T>) {
    match result {
        Err(StoreError::NotFound) => {}
        other => panic!("expected NotFound, got {other:?}"),
    }
}

// --- the suite ---

async fn migrate_is_idempotent(store: Arc<dyn Store>) {
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    let alice = user(&*store, "alice").await;
    store.migrate().await.unwrap();
    assert_eq!(store.user_by_id(alice.id).await.unwrap(), Some(alice));
}

async fn ping_answers(store: Arc<dyn Store>) {
    store.ping().await.unwrap();
}

async fn create_and_get_user(store: Arc<dyn Store>) {
    let new = new_user("Alice");
    let created = store.create_user(new.clone()).await.unwrap();
    assert_eq!(created.id, new.id);
    assert_eq!(created.username, "Alice");
    assert_eq!(created.email.as_deref(), Some("alice@example.org"));
    assert_eq!(created.password_hash, new.password_hash);
    assert_eq!(created.role, Role::Learner);
    assert_eq!(created.updated_at, created.created_at);

    assert_eq!(
        store.user_by_id(new.id).await.unwrap().as_ref(),
        Some(&created)
    );
    for spelling in ["Alice", "alice", "ALICE", "aLiCe"] {
        assert_eq!(
            store.user_by_username(spelling).await.unwrap().as_ref(),
            Some(&created),
            "lookup by {spelling:?}"
        );
    }
    assert_eq!(store.user_by_id(Uuid::now_v7()).await.unwrap(), None);
    assert_eq!(store.user_by_username("alic").await.unwrap(), None);
    assert_eq!(store.user_by_username("alice%").await.unwrap(), None);

    // A GitHub-only account: no password, no email.
    let gh = NewUser {
        email: None,
        password_hash: None,
        ..new_user("octocat")
    };
    let created = store.create_user(gh.clone()).await.unwrap();
    assert_eq!(store.user_by_id(gh.id).await.unwrap(), Some(created));
}

async fn duplicate_username_conflicts_in_any_case(store: Arc<dyn Store>) {
    user(&*store, "Alice").await;
    assert_conflict(store.create_user(new_user("aLICE")).await, "users.username");
    assert_conflict(store.create_user(new_user("Alice")).await, "users.username");
    assert_eq!(store.count_users().await.unwrap(), 1);
    // The same id is a conflict too, on another constraint.
    let bob = user(&*store, "bob").await;
    assert_conflict(
        store
            .create_user(NewUser {
                id: bob.id,
                ..new_user("carol")
            })
            .await,
        "users.id",
    );
}

async fn set_user_role_changes_role(store: Arc<dyn Store>) {
    let alice = user(&*store, "alice").await;
    let bob = user(&*store, "bob").await;
    store.set_user_role(alice.id, Role::Admin).await.unwrap();

    let after = store.user_by_id(alice.id).await.unwrap().unwrap();
    assert_eq!(after.role, Role::Admin);
    assert_eq!(after.created_at, alice.created_at);
    assert!(after.updated_at > alice.updated_at, "updated_at moves on");
    assert_eq!(store.user_by_id(bob.id).await.unwrap(), Some(bob));

    store.set_user_role(alice.id, Role::Author).await.unwrap();
    assert_eq!(
        store.user_by_id(alice.id).await.unwrap().unwrap().role,
        Role::Author
    );
    assert_not_found(store.set_user_role(Uuid::now_v7(), Role::Admin).await);
}

async fn count_users_counts(store: Arc<dyn Store>) {
    assert_eq!(store.count_users().await.unwrap(), 0);
    for name in ["a", "b", "c"] {
        user(&*store, name).await;
    }
    assert_eq!(store.count_users().await.unwrap(), 3);
}

async fn link_and_look_up_identity(store: Arc<dyn Store>) {
    let alice = user(&*store, "alice").await;
    let bob = user(&*store, "bob").await;
    let first = store
        .link_identity(new_identity(alice.id, "1001"))
        .await
        .unwrap();
    assert_eq!(first.user_id, alice.id);
    assert_eq!(first.updated_at, first.created_at);
    // Same subject at another provider is another identity.
    let other_provider = store
        .link_identity(NewIdentity {
            provider: "gitlab".to_owned(),
            created_at: t0() + secs(1),
            ..new_identity(alice.id, "1001")
        })
        .await
        .unwrap();

    assert_eq!(
        store.identity("github", "1001").await.unwrap().as_ref(),
        Some(&first)
    );
    assert_eq!(
        store.identity("gitlab", "1001").await.unwrap().as_ref(),
        Some(&other_provider)
    );
    assert_eq!(store.identity("github", "1002").await.unwrap(), None);
    assert_eq!(
        store.identities_of(alice.id).await.unwrap(),
        vec![first, other_provider]
    );
    assert_eq!(store.identities_of(bob.id).await.unwrap(), vec![]);
}

async fn duplicate_identity_conflicts(store: Arc<dyn Store>) {
    let alice = user(&*store, "alice").await;
    let bob = user(&*store, "bob").await;
    let linked = store
        .link_identity(new_identity(alice.id, "1001"))
        .await
        .unwrap();
    // Neither the same user again nor another user may claim the same GitHub account.
    assert_conflict(
        store.link_identity(new_identity(alice.id, "1001")).await,
        "external_identities.subject",
    );
    assert_conflict(
        store.link_identity(new_identity(bob.id, "1001")).await,
        "external_identities.subject",
    );
    assert_eq!(
        store.identity("github", "1001").await.unwrap(),
        Some(linked)
    );
}

async fn identity_of_unknown_user_is_not_found(store: Arc<dyn Store>) {
    assert_not_found(
        store
            .link_identity(new_identity(Uuid::now_v7(), "1001"))
            .await,
    );
    assert_eq!(store.identity("github", "1001").await.unwrap(), None);
}

async fn identity_profile_round_trips(store: Arc<dyn Store>) {
    let alice = user(&*store, "alice").await;
    let linked = store
        .link_identity(new_identity(alice.id, "1001"))
        .await
        .unwrap();
    let profile = json!({
        "id": 1001,
        "login": "octocat",
        "name": "Zoë «Octo» 猫",
        "avatar_url": "https://avatars.example/u/1001?v=4",
        "site_admin": false,
        "bio": null,
        "score": 12.5,
        "big": 9_007_199_254_740_993_u64,
        "orgs": [{ "login": "rust-lang" }, { "login": "tokio-rs" }],
        "nested": { "empty": {}, "list": [] }
    });
    let at = t0() + secs(3600);
    store
        .update_identity_profile(linked.id, profile.clone(), at)
        .await
        .unwrap();
    let updated = store.identity("github", "1001").await.unwrap().unwrap();
    assert_eq!(updated.profile, profile);
    assert_eq!(updated.updated_at, at.trunc_subsecs(6));
    assert_eq!(updated.created_at, linked.created_at);
    assert_eq!(updated.login, linked.login);

    assert_not_found(
        store
            .update_identity_profile(Uuid::now_v7(), json!({}), at)
            .await,
    );
}

async fn authenticate_finds_credential_and_user(store: Arc<dyn Store>) {
    let alice = user(&*store, "alice").await;
    let bob = user(&*store, "bob").await;
    let session = credential(
        &*store,
        NewCredential {
            expires_at: Some(t0() + secs(3600)),
            ..new_credential(alice.id, CredentialKind::Session, 1)
        },
    )
    .await;
    let token = credential(&*store, new_credential(bob.id, CredentialKind::ApiToken, 2)).await;

    let (found, owner) = store
        .authenticate(&hash(1), t0() + secs(10))
        .await
        .unwrap()
        .expect("live session authenticates");
    assert_eq!(found, session);
    assert_eq!(owner, alice);

    let (found, owner) = store
        .authenticate(&hash(2), t0() + secs(10))
        .await
        .unwrap()
        .expect("token without expiry authenticates");
    assert_eq!(found, token);
    assert_eq!(owner, bob);

    assert_eq!(store.authenticate(&hash(3), t0()).await.unwrap(), None);
}

async fn credential_constraints(store: Arc<dyn Store>) {
    let alice = user(&*store, "alice").await;
    credential(
        &*store,
        new_credential(alice.id, CredentialKind::Session, 1),
    )
    .await;
    assert_conflict(
        store
            .create_credential(new_credential(alice.id, CredentialKind::ApiToken, 1))
            .await,
        "credentials.token_hash",
    );
    assert_not_found(
        store
            .create_credential(new_credential(Uuid::now_v7(), CredentialKind::Session, 2))
            .await,
    );
    assert_eq!(store.authenticate(&hash(2), t0()).await.unwrap(), None);
}

async fn expired_credential_is_not_authenticated(store: Arc<dyn Store>) {
    let alice = user(&*store, "alice").await;
    // Expiry on a whole second: in text form "…:00Z" would sort after "…:00.5Z" and an
    // expired credential would pass. Stored timestamps must compare as instants.
    let expires = Utc.with_ymd_and_hms(2025, 3, 14, 16, 0, 0).unwrap();
    credential(
        &*store,
        NewCredential {
            expires_at: Some(expires),
            ..new_credential(alice.id, CredentialKind::Session, 1)
        },
    )
    .await;
    let h = hash(1);
    let at = |delta: TimeDelta| store.authenticate(&h, expires + delta);

    assert!(at(-secs(1)).await.unwrap().is_some());
    assert!(at(-TimeDelta::microseconds(1)).await.unwrap().is_some());
    assert_eq!(
        at(TimeDelta::zero()).await.unwrap(),
        None,
        "expires_at is exclusive"
    );
    assert_eq!(at(TimeDelta::milliseconds(500)).await.unwrap(), None);
    assert_eq!(at(TimeDelta::microseconds(1)).await.unwrap(), None);
    assert_eq!(at(TimeDelta::days(400)).await.unwrap(), None);
}

async fn revoked_credential_is_not_authenticated(store: Arc<dyn Store>) {
    let alice = user(&*store, "alice").await;
    let c = credential(
        &*store,
        new_credential(alice.id, CredentialKind::Session, 1),
    )
    .await;
    assert!(store.authenticate(&hash(1), t0()).await.unwrap().is_some());

    assert!(
        store
            .revoke_credential(alice.id, c.id, t0() + secs(5))
            .await
            .unwrap()
    );
    assert_eq!(store.authenticate(&hash(1), t0()).await.unwrap(), None);
    assert_eq!(
        store.authenticate(&hash(1), t0() + secs(10)).await.unwrap(),
        None
    );
    // Already revoked: no longer a live credential.
    assert!(
        !store
            .revoke_credential(alice.id, c.id, t0() + secs(6))
            .await
            .unwrap()
    );
    assert!(
        !store
            .revoke_credential(alice.id, Uuid::now_v7(), t0())
            .await
            .unwrap()
    );
}

async fn revoke_by_another_user_does_nothing(store: Arc<dyn Store>) {
    let alice = user(&*store, "alice").await;
    let mallory = user(&*store, "mallory").await;
    let c = credential(
        &*store,
        new_credential(alice.id, CredentialKind::ApiToken, 1),
    )
    .await;

    assert!(
        !store
            .revoke_credential(mallory.id, c.id, t0())
            .await
            .unwrap()
    );
    let (still, owner) = store.authenticate(&hash(1), t0()).await.unwrap().unwrap();
    assert_eq!(still.revoked_at, None);
    assert_eq!(owner.id, alice.id);
    assert_eq!(store.list_api_tokens(alice.id).await.unwrap(), vec![c]);
}

async fn list_api_tokens_newest_first(store: Arc<dyn Store>) {
    let alice = user(&*store, "alice").await;
    let bob = user(&*store, "bob").await;
    let mut tokens = Vec::new();
    // Created out of order, and 1 µs apart, to test the ordering (not insertion order).
    for (n, offset_us) in [(1, 2), (2, 0), (3, 1)] {
        tokens.push(
            credential(
                &*store,
                NewCredential {
                    created_at: t0() + TimeDelta::microseconds(offset_us),
                    expires_at: Some(t0() + TimeDelta::days(30)),
                    ..new_credential(alice.id, CredentialKind::ApiToken, n)
                },
            )
            .await,
        );
    }
    let revoked = credential(
        &*store,
        NewCredential {
            created_at: t0() + secs(10),
            ..new_credential(alice.id, CredentialKind::ApiToken, 4)
        },
    )
    .await;
    assert!(
        store
            .revoke_credential(alice.id, revoked.id, t0() + secs(11))
            .await
            .unwrap()
    );
    credential(
        &*store,
        new_credential(alice.id, CredentialKind::Session, 5),
    )
    .await;
    credential(&*store, new_credential(bob.id, CredentialKind::ApiToken, 6)).await;

    let listed = store.list_api_tokens(alice.id).await.unwrap();
    let names: Vec<&str> = listed.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["token 1", "token 3", "token 2"]);
    assert_eq!(listed[0], tokens[0]);
    assert_eq!(listed[1], tokens[2]);
    assert_eq!(listed[2], tokens[1]);
    assert_eq!(
        store
            .list_api_tokens(bob.id)
            .await
            .unwrap()
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>(),
        ["token 6"]
    );
    assert_eq!(store.list_api_tokens(Uuid::now_v7()).await.unwrap(), vec![]);
}

async fn touch_records_use_at_most_once_a_minute(store: Arc<dyn Store>) {
    let alice = user(&*store, "alice").await;
    let c = credential(
        &*store,
        new_credential(alice.id, CredentialKind::Session, 1),
    )
    .await;
    let last_used = || async {
        let (c, _) = store.authenticate(&hash(1), t0()).await.unwrap().unwrap();
        c.last_used_at
    };
    assert_eq!(last_used().await, None);

    let first = t0() + secs(100);
    store.touch_credential(c.id, first).await.unwrap();
    assert_eq!(last_used().await, Some(first.trunc_subsecs(6)));

    store
        .touch_credential(c.id, first + secs(30))
        .await
        .unwrap();
    assert_eq!(last_used().await, Some(first.trunc_subsecs(6)), "throttled");
    store
        .touch_credential(c.id, first + secs(60))
        .await
        .unwrap();
    assert_eq!(
        last_used().await,
        Some(first.trunc_subsecs(6)),
        "exactly 60 s later is still throttled"
    );

    let later = first + secs(60) + TimeDelta::microseconds(1);
    store.touch_credential(c.id, later).await.unwrap();
    assert_eq!(last_used().await, Some(later.trunc_subsecs(6)));

    // Unknown id: nothing to record, not an error.
    store.touch_credential(Uuid::now_v7(), later).await.unwrap();
}

async fn purge_removes_only_old_rows(store: Arc<dyn Store>) {
    let alice = user(&*store, "alice").await;
    let cutoff = t0() + TimeDelta::days(10);
    let make = |n: u8, expires_at: Option<DateTime<Utc>>| NewCredential {
        expires_at,
        ..new_credential(alice.id, CredentialKind::Session, n)
    };
    // 1: expired before the cutoff        → purged
    // 2: revoked before the cutoff        → purged
    // 3: expires after the cutoff         → kept
    // 4: revoked after the cutoff         → kept
    // 5: no expiry, never revoked         → kept
    // 6: expires exactly at the cutoff    → kept (strictly before only)
    credential(&*store, make(1, Some(cutoff - secs(1)))).await;
    let c2 = credential(&*store, make(2, None)).await;
    credential(&*store, make(3, Some(cutoff + secs(1)))).await;
    let c4 = credential(&*store, make(4, None)).await;
    credential(&*store, make(5, None)).await;
    credential(&*store, make(6, Some(cutoff))).await;
    assert!(
        store
            .revoke_credential(alice.id, c2.id, cutoff - secs(1))
            .await
            .unwrap()
    );
    assert!(
        store
            .revoke_credential(alice.id, c4.id, cutoff + secs(1))
            .await
            .unwrap()
    );

    assert_eq!(store.purge_credentials(cutoff).await.unwrap(), 2);
    assert_eq!(store.purge_credentials(cutoff).await.unwrap(), 0);

    // Authenticating before any expiry shows which rows still exist (revoked ones never do).
    let exists = |n: u8| {
        let store = store.clone();
        async move { store.authenticate(&hash(n), t0()).await.unwrap().is_some() }
    };
    assert!(!exists(1).await);
    assert!(exists(3).await);
    assert!(exists(5).await);
    assert!(exists(6).await);

    // Far in the future everything that expired or was revoked goes: 3, 4 and 6.
    assert_eq!(
        store
            .purge_credentials(cutoff + TimeDelta::days(365))
            .await
            .unwrap(),
        3
    );
    assert!(exists(5).await);
    assert!(!exists(3).await);
}

async fn timestamps_round_trip_to_the_microsecond(store: Arc<dyn Store>) {
    let created = t0();
    let expected =
        Utc.with_ymd_and_hms(2025, 3, 14, 15, 9, 26).unwrap() + TimeDelta::microseconds(535_897);
    let alice = store
        .create_user(NewUser {
            created_at: created,
            ..new_user("alice")
        })
        .await
        .unwrap();
    assert_eq!(alice.created_at, expected, "create returns what is stored");
    let read = store.user_by_id(alice.id).await.unwrap().unwrap();
    assert_eq!(read.created_at, expected);
    assert_eq!(read.updated_at, expected);

    // Edge fractions: none, one microsecond, the last microsecond of a second.
    let instants = [
        Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap(),
        Utc.with_ymd_and_hms(1999, 12, 31, 23, 59, 59).unwrap() + TimeDelta::microseconds(1),
        Utc.with_ymd_and_hms(2024, 2, 29, 12, 0, 0).unwrap() + TimeDelta::nanoseconds(999_999_999),
    ];
    for (n, at) in (1..).zip(instants) {
        let stored = credential(
            &*store,
            NewCredential {
                created_at: at,
                expires_at: Some(at + TimeDelta::days(1)),
                ..new_credential(alice.id, CredentialKind::ApiToken, n)
            },
        )
        .await;
        let (read, _) = store.authenticate(&hash(n), at).await.unwrap().unwrap();
        assert_eq!(read, stored);
        assert_eq!(read.created_at, at.trunc_subsecs(6));
        assert_eq!(read.created_at.timestamp_subsec_nanos() % 1000, 0);
        assert_eq!(
            read.expires_at,
            Some((at + TimeDelta::days(1)).trunc_subsecs(6))
        );
    }
}

async fn create_and_get_session(store: Arc<dyn Store>) {
    let alice = user(&*store, "alice").await;
    let new = NewSession {
        expires_at: t0() + secs(1800) + TimeDelta::nanoseconds(999),
        ..new_session(alice.id, t0())
    };
    let created = store.create_session(new.clone(), 3).await.unwrap();
    let expected = Session {
        id: new.id,
        user_id: alice.id,
        environment: "python-3.12".to_owned(),
        lab: Some("python-basics".to_owned()),
        status: SessionStatus::Live,
        created_at: t0().trunc_subsecs(6),
        expires_at: new.expires_at.trunc_subsecs(6),
        ended_at: None,
        end_reason: None,
    };
    assert_eq!(created, expected, "create returns what is stored");
    assert_eq!(store.session(new.id).await.unwrap(), Some(expected));
    assert_eq!(
        created.created_at.timestamp_subsec_nanos(),
        535_897_000,
        "microsecond precision"
    );

    // A playground session: no lab.
    let playground = NewSession {
        lab: None,
        environment: "node-22".to_owned(),
        ..new_session(alice.id, t0() + secs(1))
    };
    let created = store.create_session(playground.clone(), 3).await.unwrap();
    assert_eq!(created.lab, None);
    assert_eq!(store.session(playground.id).await.unwrap(), Some(created));

    assert_eq!(store.session(Uuid::now_v7()).await.unwrap(), None);
    // A taken id, and an unknown user.
    assert_conflict(
        store
            .create_session(
                NewSession {
                    id: new.id,
                    ..new_session(alice.id, t0())
                },
                3,
            )
            .await,
        "sessions.id",
    );
    assert_not_found(
        store
            .create_session(new_session(Uuid::now_v7(), t0()), 3)
            .await,
    );
    assert_eq!(store.live_sessions().await.unwrap().len(), 2);
}

async fn sessions_of_newest_first(store: Arc<dyn Store>) {
    let alice = user(&*store, "alice").await;
    let bob = user(&*store, "bob").await;
    // Created out of order, 1 µs apart, so the order comes from created_at, not insertion.
    let mut made = Vec::new();
    for offset_us in [2, 0, 3, 1] {
        made.push(
            session(
                &*store,
                new_session(alice.id, t0() + TimeDelta::microseconds(offset_us)),
            )
            .await,
        );
    }
    let bobs = session(&*store, new_session(bob.id, t0() + secs(5))).await;
    // End the newest (offset 3) and one in the middle (offset 1).
    assert!(
        store
            .end_session(made[2].id, t0() + secs(10), EndReason::User)
            .await
            .unwrap()
    );
    assert!(
        store
            .end_session(made[3].id, t0() + secs(11), EndReason::Failed)
            .await
            .unwrap()
    );

    let live = store.sessions_of(alice.id, false).await.unwrap();
    assert_eq!(ids(&live), [made[0].id, made[1].id]);
    assert_eq!(live, [made[0].clone(), made[1].clone()]);

    let all = store.sessions_of(alice.id, true).await.unwrap();
    assert_eq!(ids(&all), [made[2].id, made[0].id, made[3].id, made[1].id]);
    assert_eq!(all[0].status, SessionStatus::Ended);
    assert_eq!(all[0].end_reason, Some(EndReason::User));
    assert_eq!(all[2].end_reason, Some(EndReason::Failed));

    for include_ended in [true, false] {
        assert_eq!(
            store.sessions_of(bob.id, include_ended).await.unwrap(),
            std::slice::from_ref(&bobs)
        );
    }
    assert_eq!(store.sessions_of(Uuid::now_v7(), true).await.unwrap(), []);
}

async fn live_session_cap_per_user(store: Arc<dyn Store>) {
    let alice = user(&*store, "alice").await;
    let bob = user(&*store, "bob").await;
    let mut live = Vec::new();
    for n in 0..3 {
        live.push(
            store
                .create_session(new_session(alice.id, t0() + secs(n)), 3)
                .await
                .unwrap(),
        );
    }
    let refused = new_session(alice.id, t0() + secs(3));
    assert_conflict(
        store.create_session(refused.clone(), 3).await,
        SESSIONS_LIVE_PER_USER,
    );
    assert_eq!(SESSIONS_LIVE_PER_USER, "sessions.live_per_user");
    assert_eq!(
        store.session(refused.id).await.unwrap(),
        None,
        "nothing written"
    );
    // The cap is per call: a lower one counts the sessions that already exist.
    assert_conflict(
        store.create_session(new_session(alice.id, t0()), 1).await,
        SESSIONS_LIVE_PER_USER,
    );
    assert_conflict(
        store.create_session(new_session(alice.id, t0()), 0).await,
        SESSIONS_LIVE_PER_USER,
    );
    // Per user: bob is not affected by alice's sessions.
    store
        .create_session(new_session(bob.id, t0()), 1)
        .await
        .unwrap();
    assert_conflict(
        store.create_session(new_session(bob.id, t0()), 1).await,
        SESSIONS_LIVE_PER_USER,
    );

    // Ending one frees a slot, exactly one.
    assert!(
        store
            .end_session(live[1].id, t0() + secs(60), EndReason::User)
            .await
            .unwrap()
    );
    let again = store.create_session(refused.clone(), 3).await.unwrap();
    assert_eq!(again.id, refused.id);
    assert_conflict(
        store
            .create_session(new_session(alice.id, t0() + secs(4)), 3)
            .await,
        SESSIONS_LIVE_PER_USER,
    );
    assert_eq!(store.sessions_of(alice.id, false).await.unwrap().len(), 3);
    assert_eq!(store.sessions_of(alice.id, true).await.unwrap().len(), 4);
}

async fn concurrent_creation_respects_the_cap(store: Arc<dyn Store>) {
    const TASKS: usize = 8;
    const CAP: u32 = 3;
    let alice = user(&*store, "alice").await;
    // Several rounds, each starting from no live session, to give a race more than one chance.
    for round in 0..3 {
        let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
        let mut tasks = tokio::task::JoinSet::new();
        for n in 0..TASKS {
            let store = store.clone();
            let barrier = barrier.clone();
            let new = new_session(
                alice.id,
                t0() + secs(100 * round + i64::try_from(n).unwrap()),
            );
            tasks.spawn(async move {
                barrier.wait().await;
                store.create_session(new, CAP).await
            });
        }
        let (mut created, mut refused) = (Vec::new(), 0);
        while let Some(result) = tasks.join_next().await {
            match result.unwrap() {
                Ok(session) => created.push(session),
                Err(StoreError::Conflict { constraint }) => {
                    assert_eq!(constraint, SESSIONS_LIVE_PER_USER);
                    refused += 1;
                }
                Err(other) => panic!("round {round}: unexpected error {other:?}"),
            }
        }
        assert_eq!(created.len(), 3, "round {round}: exactly the cap succeeds");
        assert_eq!(refused, TASKS - 3, "round {round}");
        let mut live = store.sessions_of(alice.id, false).await.unwrap();
        live.sort_by_key(|s| s.id);
        created.sort_by_key(|s| s.id);
        assert_eq!(
            live, created,
            "round {round}: the live ones are those created"
        );
        for s in &created {
            assert!(
                store
                    .end_session(s.id, t0() + secs(1000), EndReason::User)
                    .await
                    .unwrap()
            );
        }
    }
}

async fn extend_only_live_sessions(store: Arc<dyn Store>) {
    let alice = user(&*store, "alice").await;
    let s = session(&*store, new_session(alice.id, t0())).await;
    let later = t0() + TimeDelta::hours(2) + TimeDelta::nanoseconds(1_500);
    assert!(store.extend_session(s.id, later).await.unwrap());
    let read = store.session(s.id).await.unwrap().unwrap();
    assert_eq!(read.expires_at, later.trunc_subsecs(6));
    assert_eq!(
        Session {
            expires_at: s.expires_at,
            ..read
        },
        s,
        "nothing else changes"
    );

    assert!(
        store
            .end_session(s.id, t0() + secs(10), EndReason::User)
            .await
            .unwrap()
    );
    assert!(
        !store
            .extend_session(s.id, later + secs(3600))
            .await
            .unwrap()
    );
    assert_eq!(
        store.session(s.id).await.unwrap().unwrap().expires_at,
        later.trunc_subsecs(6),
        "an ended session keeps its expiry"
    );
    assert!(!store.extend_session(Uuid::now_v7(), later).await.unwrap());
}

async fn end_session_ends_once(store: Arc<dyn Store>) {
    let alice = user(&*store, "alice").await;
    let s = session(&*store, new_session(alice.id, t0())).await;
    let at = t0() + secs(60) + TimeDelta::nanoseconds(2_500);
    assert!(
        store
            .end_session(s.id, at, EndReason::Expired)
            .await
            .unwrap()
    );
    let ended = store.session(s.id).await.unwrap().unwrap();
    assert_eq!(
        ended,
        Session {
            status: SessionStatus::Ended,
            ended_at: Some(at.trunc_subsecs(6)),
            end_reason: Some(EndReason::Expired),
            ..s
        }
    );
    // Again, with another reason: refused, and the first end stands.
    assert!(
        !store
            .end_session(s.id, at + secs(1), EndReason::User)
            .await
            .unwrap()
    );
    assert_eq!(store.session(s.id).await.unwrap(), Some(ended));
    assert!(
        !store
            .end_session(Uuid::now_v7(), at, EndReason::User)
            .await
            .unwrap()
    );

    // Every reason round-trips.
    for (n, reason) in (0..).zip([
        EndReason::User,
        EndReason::Expired,
        EndReason::Failed,
        EndReason::Shutdown,
    ]) {
        let s = session(&*store, new_session(alice.id, t0() + secs(n))).await;
        assert!(store.end_session(s.id, at, reason).await.unwrap());
        assert_eq!(
            store.session(s.id).await.unwrap().unwrap().end_reason,
            Some(reason)
        );
    }

    // Concurrent enders: exactly one wins, and its reason is the one kept.
    let s = session(&*store, new_session(alice.id, t0())).await;
    let reasons = [
        EndReason::User,
        EndReason::Expired,
        EndReason::Failed,
        EndReason::Shutdown,
    ];
    let barrier = Arc::new(tokio::sync::Barrier::new(8));
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..8 {
        let (store, barrier, reason) = (store.clone(), barrier.clone(), reasons[n % 4]);
        tasks.spawn(async move {
            barrier.wait().await;
            (reason, store.end_session(s.id, at, reason).await.unwrap())
        });
    }
    let mut winners = Vec::new();
    while let Some(result) = tasks.join_next().await {
        let (reason, won) = result.unwrap();
        if won {
            winners.push(reason);
        }
    }
    assert_eq!(winners.len(), 1, "exactly one ender sees true");
    assert_eq!(
        store.session(s.id).await.unwrap().unwrap().end_reason,
        Some(winners[0])
    );
}

async fn expired_sessions_boundary_and_order(store: Arc<dyn Store>) {
    let alice = user(&*store, "alice").await;
    let bob = user(&*store, "bob").await;
    // `now` on a whole second: in text form "…:00Z" would sort after "…:00.5Z".
    let now = Utc.with_ymd_and_hms(2025, 3, 14, 16, 0, 0).unwrap();
    let expiring = |user_id: Uuid, expires_at: DateTime<Utc>| NewSession {
        expires_at,
        ..new_session(user_id, t0())
    };
    let at_now = session(&*store, expiring(alice.id, now)).await;
    let hour_ago = session(&*store, expiring(bob.id, now - secs(3600))).await;
    let just_before = session(
        &*store,
        expiring(alice.id, now - TimeDelta::microseconds(1)),
    )
    .await;
    let _just_after = session(
        &*store,
        expiring(alice.id, now + TimeDelta::microseconds(1)),
    )
    .await;
    let _half_second = session(
        &*store,
        expiring(bob.id, now + TimeDelta::milliseconds(500)),
    )
    .await;
    let ended = session(&*store, expiring(bob.id, now - secs(7200))).await;
    assert!(
        store
            .end_session(ended.id, now - secs(7000), EndReason::User)
            .await
            .unwrap()
    );

    let due = store.expired_sessions(now).await.unwrap();
    assert_eq!(
        ids(&due),
        [hour_ago.id, just_before.id, at_now.id],
        "oldest expiry first; expires_at == now counts; ended ones never"
    );
    assert_eq!(due[0], hour_ago);

    assert_eq!(
        store
            .expired_sessions(now - secs(3600) - TimeDelta::microseconds(1))
            .await
            .unwrap(),
        []
    );
    assert_eq!(
        ids(&store.expired_sessions(now - secs(3600)).await.unwrap()),
        [hour_ago.id]
    );
    assert_eq!(
        store.expired_sessions(now + secs(1)).await.unwrap().len(),
        5
    );

    // Extending moves a session out of the reaper's view; ending removes it.
    assert!(
        store
            .extend_session(at_now.id, now + secs(60))
            .await
            .unwrap()
    );
    assert!(
        store
            .end_session(hour_ago.id, now, EndReason::Expired)
            .await
            .unwrap()
    );
    assert_eq!(
        ids(&store.expired_sessions(now).await.unwrap()),
        [just_before.id]
    );
}

async fn live_sessions_excludes_ended(store: Arc<dyn Store>) {
    assert_eq!(store.live_sessions().await.unwrap(), []);
    let alice = user(&*store, "alice").await;
    let bob = user(&*store, "bob").await;
    let a1 = session(&*store, new_session(alice.id, t0() + secs(2))).await;
    let a2 = session(&*store, new_session(alice.id, t0() + secs(1))).await;
    let b1 = session(&*store, new_session(bob.id, t0())).await;
    let b2 = session(&*store, new_session(bob.id, t0() + secs(3))).await;
    assert!(
        store
            .end_session(a2.id, t0() + secs(9), EndReason::Shutdown)
            .await
            .unwrap()
    );

    let live = store.live_sessions().await.unwrap();
    assert_eq!(live, [b1.clone(), a1.clone(), b2.clone()], "oldest first");
    for s in [&a1, &b1, &b2] {
        assert!(
            store
                .end_session(s.id, t0() + secs(9), EndReason::Shutdown)
                .await
                .unwrap()
        );
    }
    assert_eq!(store.live_sessions().await.unwrap(), []);
}

/// An attempt of `session` (and its user) at `lab`/`step`, submitted `at`; a failing one
/// carries one failure.
fn new_attempt(
    session: &Session,
    lab: &str,
    step: &str,
    passed: bool,
    at: DateTime<Utc>,
) -> NewAttempt {
    NewAttempt {
        id: Uuid::now_v7(),
        user_id: session.user_id,
        session_id: session.id,
        lab: lab.to_owned(),
        step: step.to_owned(),
        passed,
        failures: if passed {
            json!([])
        } else {
            json!([{ "check": "output", "message": "expected 42" }])
        },
        metrics: json!({ "duration_ms": 12 }),
        notes: json!([]),
        submitted_at: at,
    }
}

async fn attempt(store: &dyn Store, new: NewAttempt) -> Attempt {
    store.create_attempt(new).await.unwrap()
}

fn attempt_ids(attempts: &[Attempt]) -> Vec<Uuid> {
    attempts.iter().map(|a| a.id).collect()
}

fn filter(lab: Option<&str>, session_id: Option<Uuid>, limit: u32) -> AttemptFilter {
    AttemptFilter {
        lab: lab.map(str::to_owned),
        session_id,
        limit,
    }
}

fn progress(lab: &str, step: &str, passed_at: DateTime<Utc>) -> StepProgress {
    StepProgress {
        lab: lab.to_owned(),
        step: step.to_owned(),
        passed_at: passed_at.trunc_subsecs(6),
    }
}

async fn create_and_get_attempt(store: Arc<dyn Store>) {
    let alice = user(&*store, "alice").await;
    let s = session(&*store, new_session(alice.id, t0())).await;
    let new = NewAttempt {
        failures: json!([
            { "check": "stdout", "expected": "42\n", "got": "41\n", "line": 3 },
            "plain text failure: ünïcödé ✓, \"quotes\" and \\ backslash"
        ]),
        metrics: json!({
            "duration_ms": 1234,
            "ratio": 0.1,
            "big": 9_007_199_254_740_993_u64,
            "nested": { "tests": [1, 2, 3], "ok": false, "none": null },
        }),
        notes: json!(["note one", { "hint": "use print()" }]),
        ..new_attempt(&s, "python-basics", "hello-world", false, t0() + secs(60))
    };
    let created = store.create_attempt(new.clone()).await.unwrap();
    let expected = Attempt {
        id: new.id,
        user_id: alice.id,
        session_id: s.id,
        lab: "python-basics".to_owned(),
        step: "hello-world".to_owned(),
        passed: false,
        failures: new.failures.clone(),
        metrics: new.metrics.clone(),
        notes: new.notes.clone(),
        submitted_at: (t0() + secs(60)).trunc_subsecs(6),
    };
    assert_eq!(created, expected, "create returns what is stored");
    assert_eq!(store.attempt(new.id).await.unwrap(), Some(expected));
    assert_eq!(
        created.submitted_at.timestamp_subsec_nanos(),
        535_897_000,
        "microsecond precision"
    );

    // A passing attempt round-trips `passed` too.
    let passing = attempt(
        &*store,
        new_attempt(&s, "python-basics", "hello-world", true, t0() + secs(61)),
    )
    .await;
    assert!(passing.passed);
    assert_eq!(store.attempt(passing.id).await.unwrap(), Some(passing));
    assert_eq!(store.attempt(Uuid::now_v7()).await.unwrap(), None);
}

async fn attempt_constraints(store: Arc<dyn Store>) {
    let alice = user(&*store, "alice").await;
    let bob = user(&*store, "bob").await;
    let s = session(&*store, new_session(alice.id, t0())).await;
    let bobs = session(&*store, new_session(bob.id, t0())).await;
    let first = attempt(&*store, new_attempt(&s, "lab", "a", false, t0())).await;

    // A taken id, even for a passing attempt: nothing of it is written, progress included.
    assert_conflict(
        store
            .create_attempt(NewAttempt {
                id: first.id,
                ..new_attempt(&s, "lab", "b", true, t0())
            })
            .await,
        "attempts.id",
    );
    assert_eq!(store.progress_of(alice.id).await.unwrap(), []);
    assert_eq!(store.attempt(first.id).await.unwrap(), Some(first));

    // An unknown session, an unknown user, and a session of another user.
    assert_not_found(
        store
            .create_attempt(NewAttempt {
                session_id: Uuid::now_v7(),
                ..new_attempt(&s, "lab", "a", true, t0())
            })
            .await,
    );
    assert_not_found(
        store
            .create_attempt(NewAttempt {
                user_id: Uuid::now_v7(),
                ..new_attempt(&s, "lab", "a", true, t0())
            })
            .await,
    );
    assert_not_found(
        store
            .create_attempt(NewAttempt {
                user_id: alice.id,
                ..new_attempt(&bobs, "lab", "a", true, t0())
            })
            .await,
    );

    // The JSON fields have fixed shapes.
    for bad in [
        NewAttempt {
            failures: json!({ "not": "an array" }),
            ..new_attempt(&s, "lab", "a", true, t0())
        },
        NewAttempt {
            metrics: json!([1, 2]),
            ..new_attempt(&s, "lab", "a", true, t0())
        },
        NewAttempt {
            notes: json!("a string"),
            ..new_attempt(&s, "lab", "a", true, t0())
        },
    ] {
        let id = bad.id;
        match store.create_attempt(bad).await {
            Err(StoreError::Database(_)) => {}
            other => panic!("expected a check violation, got {other:?}"),
        }
        assert_eq!(store.attempt(id).await.unwrap(), None);
    }

    // Nothing but `first` was written, and no progress at all.
    let all = store
        .attempts_of(alice.id, filter(None, None, 100))
        .await
        .unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(store.progress_of(alice.id).await.unwrap(), []);
    assert_eq!(store.attempt_counts(bob.id).await.unwrap(), []);
}

async fn attempts_of_filters_newest_first(store: Arc<dyn Store>) {
    let alice = user(&*store, "alice").await;
    let bob = user(&*store, "bob").await;
    let py1 = session(&*store, new_session(alice.id, t0())).await;
    let py2 = session(&*store, new_session(alice.id, t0() + secs(100))).await;
    let rs = session(
        &*store,
        NewSession {
            lab: Some("rust-intro".to_owned()),
            ..new_session(alice.id, t0() + secs(200))
        },
    )
    .await;
    let bobs = session(&*store, new_session(bob.id, t0())).await;

    // Inserted out of time order, 1 µs apart and across sessions and labs, so the order comes
    // from submitted_at, not insertion. `a[i]` is submitted at t0 + offsets[i] µs.
    let plan: [(&Session, &str, i64); 7] = [
        (&py1, "python-basics", 3),
        (&rs, "rust-intro", 6),
        (&py1, "python-basics", 0),
        (&py2, "python-basics", 5),
        (&rs, "rust-intro", 1),
        (&py2, "python-basics", 4),
        // A playground-ish mix: a python-basics attempt in the rust session.
        (&rs, "python-basics", 2),
    ];
    let mut a = Vec::new();
    for (s, lab, offset_us) in plan {
        let at = t0() + TimeDelta::microseconds(offset_us);
        a.push(
            attempt(
                &*store,
                new_attempt(s, lab, "step-1", offset_us % 2 == 0, at),
            )
            .await,
        );
    }
    // Bob's attempts at the same lab, same times: never alice's.
    for offset_us in [0, 3, 7] {
        let at = t0() + TimeDelta::microseconds(offset_us);
        attempt(
            &*store,
            new_attempt(&bobs, "python-basics", "step-1", true, at),
        )
        .await;
    }

    const NO_IDS: [Uuid; 0] = [];
    let of = |lab: Option<&'static str>, session_id: Option<Uuid>, limit: u32| {
        let store = store.clone();
        async move {
            let found = store
                .attempts_of(alice.id, filter(lab, session_id, limit))
                .await
                .unwrap();
            assert!(found.iter().all(|x| x.user_id == alice.id), "only alice's");
            attempt_ids(&found)
        }
    };

    let all = store
        .attempts_of(alice.id, filter(None, None, 100))
        .await
        .unwrap();
    assert_eq!(
        attempt_ids(&all),
        [
            a[1].id, a[3].id, a[5].id, a[0].id, a[6].id, a[4].id, a[2].id
        ],
        "newest first"
    );
    assert_eq!(all[0], a[1], "whole rows");
    assert_eq!(
        of(Some("python-basics"), None, 100).await,
        [a[3].id, a[5].id, a[0].id, a[6].id, a[2].id]
    );
    assert_eq!(of(Some("rust-intro"), None, 100).await, [a[1].id, a[4].id]);
    assert_eq!(
        of(Some("python"), None, 100).await,
        NO_IDS,
        "exact lab only"
    );
    assert_eq!(of(None, Some(py1.id), 100).await, [a[0].id, a[2].id]);
    assert_eq!(of(None, Some(py2.id), 100).await, [a[3].id, a[5].id]);
    assert_eq!(
        of(None, Some(rs.id), 100).await,
        [a[1].id, a[6].id, a[4].id]
    );
    assert_eq!(
        of(Some("python-basics"), Some(rs.id), 100).await,
        [a[6].id],
        "both filters at once"
    );
    assert_eq!(of(Some("rust-intro"), Some(py1.id), 100).await, NO_IDS);
    // Bob's session is not alice's, whatever else matches.
    assert_eq!(of(None, Some(bobs.id), 100).await, NO_IDS);
    assert_eq!(of(Some("python-basics"), Some(bobs.id), 100).await, NO_IDS);

    // Limits keep the newest.
    assert_eq!(of(None, None, 2).await, [a[1].id, a[3].id]);
    assert_eq!(of(Some("python-basics"), None, 1).await, [a[3].id]);
    assert_eq!(of(None, Some(rs.id), 2).await, [a[1].id, a[6].id]);
    assert_eq!(of(Some("python-basics"), Some(py1.id), 1).await, [a[0].id]);
    assert_eq!(of(None, None, 0).await, NO_IDS);

    // Bob sees his own, and an unknown user nothing.
    let bobs_attempts = store
        .attempts_of(bob.id, filter(None, None, 100))
        .await
        .unwrap();
    assert_eq!(bobs_attempts.len(), 3);
    assert!(bobs_attempts.iter().all(|x| x.user_id == bob.id));
    assert_eq!(
        store
            .attempts_of(Uuid::now_v7(), filter(None, None, 100))
            .await
            .unwrap(),
        []
    );
}

async fn attempts_at_one_instant_order_by_id(store: Arc<dyn Store>) {
    let alice = user(&*store, "alice").await;
    let s = session(&*store, new_session(alice.id, t0())).await;
    // UUIDv7 ids made in order sort in order; insert them in reverse.
    let mut news: Vec<NewAttempt> = (0..4)
        .map(|_| new_attempt(&s, "lab", "a", false, t0()))
        .collect();
    news.sort_by_key(|n| n.id);
    let ascending: Vec<Uuid> = news.iter().map(|n| n.id).collect();
    for new in news.into_iter().rev() {
        attempt(&*store, new).await;
    }
    let found = store
        .attempts_of(alice.id, filter(None, None, 100))
        .await
        .unwrap();
    let mut descending = ascending;
    descending.reverse();
    assert_eq!(attempt_ids(&found), descending);
}

async fn attempts_of_caps_the_limit(store: Arc<dyn Store>) {
    let alice = user(&*store, "alice").await;
    let s = session(&*store, new_session(alice.id, t0())).await;
    let n = ATTEMPTS_LIMIT_MAX + 1;
    for i in 0..n {
        let at = t0() + TimeDelta::microseconds(i64::from(i));
        attempt(&*store, new_attempt(&s, "lab", "a", false, at)).await;
    }
    for limit in [ATTEMPTS_LIMIT_MAX, ATTEMPTS_LIMIT_MAX + 1, u32::MAX] {
        let found = store
            .attempts_of(alice.id, filter(None, None, limit))
            .await
            .unwrap();
        assert_eq!(found.len(), 500, "limit {limit}");
        // The newest 500: the oldest one is the one left out.
        assert_eq!(
            found.last().unwrap().submitted_at,
            (t0() + TimeDelta::microseconds(1)).trunc_subsecs(6)
        );
    }
    let counts = store.attempt_counts(alice.id).await.unwrap();
    assert_eq!(
        counts[0].attempts,
        u64::from(n),
        "the cap is on the page only"
    );
}

async fn passing_records_progress_once(store: Arc<dyn Store>) {
    let alice = user(&*store, "alice").await;
    let bob = user(&*store, "bob").await;
    let s1 = session(&*store, new_session(alice.id, t0())).await;
    let s2 = session(&*store, new_session(alice.id, t0() + secs(3600))).await;
    let bobs = session(&*store, new_session(bob.id, t0())).await;
    let first_pass = t0() + secs(10) + TimeDelta::nanoseconds(999);

    attempt(
        &*store,
        new_attempt(&s1, "python-basics", "hello", false, t0()),
    )
    .await;
    assert_eq!(
        store.progress_of(alice.id).await.unwrap(),
        [],
        "a failing attempt records no progress"
    );
    attempt(
        &*store,
        new_attempt(&s1, "python-basics", "hello", true, first_pass),
    )
    .await;
    let expected = [progress("python-basics", "hello", first_pass)];
    assert_eq!(store.progress_of(alice.id).await.unwrap(), expected);

    // Failing and passing again later, in another session, changes nothing.
    attempt(
        &*store,
        new_attempt(&s2, "python-basics", "hello", false, t0() + secs(4000)),
    )
    .await;
    attempt(
        &*store,
        new_attempt(&s2, "python-basics", "hello", true, t0() + secs(5000)),
    )
    .await;
    assert_eq!(store.progress_of(alice.id).await.unwrap(), expected);

    // Bob passing the same step is his progress, not alice's; and a failing attempt at a new
    // step records nothing for it.
    attempt(
        &*store,
        new_attempt(&bobs, "python-basics", "hello", true, t0() + secs(1)),
    )
    .await;
    attempt(
        &*store,
        new_attempt(&s2, "python-basics", "loops", false, t0() + secs(6000)),
    )
    .await;
    assert_eq!(store.progress_of(alice.id).await.unwrap(), expected);
    assert_eq!(
        store.progress_of(bob.id).await.unwrap(),
        [progress("python-basics", "hello", t0() + secs(1))]
    );
    assert_eq!(store.progress_of(Uuid::now_v7()).await.unwrap(), []);
}

async fn progress_orders_by_lab_then_passed_at(store: Arc<dyn Store>) {
    let alice = user(&*store, "alice").await;
    let s = session(&*store, new_session(alice.id, t0())).await;
    // Passed out of lab order and, within a lab, out of step-name order. The labs differ by
    // a hyphen, which byte order puts first ('-' < 'b') and some locales ignore.
    let passes = [
        ("rust-intro", "b-ownership", 5),
        ("python-basics", "z-last-name", 1),
        ("pythonbasics", "a", 0),
        ("rust-intro", "a-hello", 6),
        ("python-basics", "a-first-name", 3),
        ("python-basics", "m-middle", 2),
    ];
    for (lab, step, at) in passes {
        attempt(&*store, new_attempt(&s, lab, step, true, t0() + secs(at))).await;
    }
    assert_eq!(
        store.progress_of(alice.id).await.unwrap(),
        [
            progress("python-basics", "z-last-name", t0() + secs(1)),
            progress("python-basics", "m-middle", t0() + secs(2)),
            progress("python-basics", "a-first-name", t0() + secs(3)),
            progress("pythonbasics", "a", t0()),
            progress("rust-intro", "b-ownership", t0() + secs(5)),
            progress("rust-intro", "a-hello", t0() + secs(6)),
        ]
    );
}

async fn attempt_counts_per_lab(store: Arc<dyn Store>) {
    let alice = user(&*store, "alice").await;
    let bob = user(&*store, "bob").await;
    let s = session(&*store, new_session(alice.id, t0())).await;
    let bobs = session(&*store, new_session(bob.id, t0())).await;
    assert_eq!(store.attempt_counts(alice.id).await.unwrap(), []);

    // The latest python-basics attempt is not the last inserted, and it fails.
    let plan = [
        ("python-basics", true, 10),
        ("rust-intro", false, 5),
        ("python-basics", false, 30),
        ("python-basics", true, 20),
        ("rust-intro", false, 7),
    ];
    for (lab, passed, at) in plan {
        let at = t0() + secs(at);
        attempt(&*store, new_attempt(&s, lab, "step", passed, at)).await;
    }
    // Bob's attempts count for bob only.
    attempt(
        &*store,
        new_attempt(&bobs, "python-basics", "step", true, t0() + secs(99)),
    )
    .await;
    attempt(
        &*store,
        new_attempt(&bobs, "go-tour", "step", true, t0() + secs(99)),
    )
    .await;

    assert_eq!(
        store.attempt_counts(alice.id).await.unwrap(),
        [
            LabAttempts {
                lab: "python-basics".to_owned(),
                attempts: 3,
                passed: 2,
                last_submitted_at: (t0() + secs(30)).trunc_subsecs(6),
            },
            LabAttempts {
                lab: "rust-intro".to_owned(),
                attempts: 2,
                passed: 0,
                last_submitted_at: (t0() + secs(7)).trunc_subsecs(6),
            },
        ]
    );
    assert_eq!(
        store.attempt_counts(bob.id).await.unwrap(),
        [
            LabAttempts {
                lab: "go-tour".to_owned(),
                attempts: 1,
                passed: 1,
                last_submitted_at: (t0() + secs(99)).trunc_subsecs(6),
            },
            LabAttempts {
                lab: "python-basics".to_owned(),
                attempts: 1,
                passed: 1,
                last_submitted_at: (t0() + secs(99)).trunc_subsecs(6),
            },
        ]
    );
}

engine_tests!(
    migrate_is_idempotent,
    ping_answers,
    create_and_get_user,
    duplicate_username_conflicts_in_any_case,
    set_user_role_changes_role,
    count_users_counts,
    link_and_look_up_identity,
    duplicate_identity_conflicts,
    identity_of_unknown_user_is_not_found,
    identity_profile_round_trips,
    authenticate_finds_credential_and_user,
    credential_constraints,
    expired_credential_is_not_authenticated,
    revoked_credential_is_not_authenticated,
    revoke_by_another_user_does_nothing,
    list_api_tokens_newest_first,
    touch_records_use_at_most_once_a_minute,
    purge_removes_only_old_rows,
    timestamps_round_trip_to_the_microsecond,
    create_and_get_session,
    sessions_of_newest_first,
    live_session_cap_per_user,
    concurrent_creation_respects_the_cap,
    extend_only_live_sessions,
    end_session_ends_once,
    expired_sessions_boundary_and_order,
    live_sessions_excludes_ended,
    create_and_get_attempt,
    attempt_constraints,
    attempts_of_filters_newest_first,
    attempts_at_one_instant_order_by_id,
    attempts_of_caps_the_limit,
    passing_records_progress_once,
    progress_orders_by_lab_then_passed_at,
    attempt_counts_per_lab,
);

// --- outside the shared suite: opening stores by URL ---

#[tokio::test]
async fn in_memory_sqlite_keeps_its_data_across_calls() {
    let store = common::open("sqlite::memory:", "sqlite").await;
    let alice = user(&*store, "alice").await;
    // Concurrent calls: if the pool opened a second connection, it would see another,
    // empty (and unmigrated) database.
    let mut lookups = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let store = store.clone();
        let id = alice.id;
        lookups.spawn(async move { store.user_by_id(id).await });
    }
    while let Some(found) = lookups.join_next().await {
        assert_eq!(found.unwrap().unwrap().as_ref(), Some(&alice));
    }
}

#[tokio::test]
async fn unsupported_url_is_refused() {
    for url in ["mysql://localhost/db", "", "file:///tmp/x.db"] {
        match sandpit_store::connect(url, 1).await {
            Err(StoreError::UnsupportedUrl) => {}
            Err(other) => panic!("{url:?}: expected UnsupportedUrl, got {other:?}"),
            Ok(_) => panic!("{url:?}: expected UnsupportedUrl, got a store"),
        }
    }
}
