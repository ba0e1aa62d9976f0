//! Deployed apps and their versions ([`AppStore`]) on both engines: the per-user cap and
//! unique names, patches, versions numbered per app, going live and superseding, keeping a
//! bounded history, idle apps, and the coarse request stamp.

#![expect(
    clippy::unwrap_used,
    reason = "in a test, a failed unwrap is a failed test"
)]

#[macro_use]
mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use sandpit_store::{
    APPS_PER_USER, AppPatch, NewApp, NewAppVersion, NewUser, Role, Store, StoreError,
};
use serde_json::json;
use uuid::Uuid;

fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

async fn user(store: &dyn Store, name: &str) -> Uuid {
    let id = Uuid::now_v7();
    store
        .create_user(NewUser {
            id,
            username: name.to_owned(),
            email: None,
            password_hash: None,
            role: Role::Learner,
            created_at: now(),
        })
        .await
        .unwrap();
    id
}

fn new_app(user_id: Uuid, name: &str) -> NewApp {
    NewApp {
        id: Uuid::now_v7(),
        user_id,
        name: name.to_owned(),
        runtime: "python".into(),
        entry: "main:app".into(),
        public: true,
        env: BTreeMap::from([("GREETING".into(), "hi".into())]),
        secrets: BTreeMap::from([("TOKEN".into(), "s3cret".into())]),
        created_at: now(),
    }
}

fn version(app_id: Uuid, content: &str) -> NewAppVersion {
    NewAppVersion {
        app_id,
        bundle: content.as_bytes().to_vec(),
        files: 1,
        bytes: content.len() as u64,
        source: "request".into(),
        created_at: now(),
    }
}

async fn apps_are_capped_named_owned_and_patched(store: Arc<dyn Store>) {
    let alice = user(store.as_ref(), "alice").await;
    let bob = user(store.as_ref(), "bob").await;
    let first = store.create_app(new_app(alice, "hello"), 2).await.unwrap();
    assert_eq!(store.app(first.id).await.unwrap().as_ref(), Some(&first));
    assert_eq!(first.desired, "running");
    assert_eq!(first.secrets["TOKEN"], "s3cret");
    match store.create_app(new_app(alice, "hello"), 2).await {
        Err(StoreError::Conflict { constraint }) => assert_eq!(constraint, "apps.name"),
        other => panic!("{other:?}"),
    }
    store.create_app(new_app(bob, "hello"), 2).await.unwrap();
    let second = store.create_app(new_app(alice, "other"), 2).await.unwrap();
    match store.create_app(new_app(alice, "third"), 2).await {
        Err(StoreError::Conflict { constraint }) => assert_eq!(constraint, APPS_PER_USER),
        other => panic!("{other:?}"),
    }
    let mine: Vec<_> = store.apps_of(alice).await.unwrap();
    assert_eq!(
        mine.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(),
        ["other", "hello"]
    );
    assert_eq!(
        store
            .app_named(bob, "hello")
            .await
            .unwrap()
            .unwrap()
            .user_id,
        bob
    );
    assert!(store.app_named(bob, "other").await.unwrap().is_none());

    let patched = store
        .update_app(
            second.id,
            AppPatch {
                public: Some(false),
                pinned: Some(true),
                env: Some(BTreeMap::new()),
                desired: Some("stopped".into()),
                ..AppPatch::default()
            },
            now(),
        )
        .await
        .unwrap()
        .unwrap();
    assert!(!patched.public && patched.pinned);
    assert!(patched.env.is_empty());
    assert_eq!(patched.secrets, second.secrets, "untouched");
    assert_eq!(
        (patched.name.as_str(), patched.desired.as_str()),
        ("other", "stopped")
    );
    let renamed = AppPatch {
        name: Some("hello".into()),
        ..AppPatch::default()
    };
    match store.update_app(second.id, renamed, now()).await {
        Err(StoreError::Conflict { constraint }) => assert_eq!(constraint, "apps.name"),
        other => panic!("{other:?}"),
    }
    assert!(
        store
            .update_app(Uuid::now_v7(), AppPatch::default(), now())
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.delete_app(second.id).await.unwrap());
    assert!(!store.delete_app(second.id).await.unwrap());
    match store.create_app(new_app(Uuid::now_v7(), "x"), 2).await {
        Err(StoreError::NotFound) => {}
        other => panic!("{other:?}"),
    }
}

async fn versions_go_live_supersede_and_are_bounded(store: Arc<dyn Store>) {
    let alice = user(store.as_ref(), "alice").await;
    let app = store.create_app(new_app(alice, "hello"), 5).await.unwrap();
    assert!(
        store.running_apps().await.unwrap().is_empty(),
        "nothing live yet"
    );
    let v1 = store
        .add_app_version(version(app.id, "one"), 3)
        .await
        .unwrap();
    assert_eq!((v1.version, v1.state.as_str()), (1, "pending"));
    let job = Uuid::now_v7();
    store.set_app_version_job(app.id, 1, job).await.unwrap();
    assert!(
        store
            .make_app_version_live(app.id, 1, json!({"interface": "asgi3"}), now())
            .await
            .unwrap()
    );
    assert_eq!(
        store.app(app.id).await.unwrap().unwrap().live_version,
        Some(1)
    );
    let live = store.app_version(app.id, 1).await.unwrap().unwrap();
    assert_eq!(live.launch, Some(json!({"interface": "asgi3"})));
    assert_eq!(store.running_apps().await.unwrap().len(), 1);

    let v2 = store
        .add_app_version(version(app.id, "two"), 3)
        .await
        .unwrap();
    assert_eq!(v2.version, 2);
    let error = serde_json::json!({"stage": "validating", "message": "SyntaxError"});
    store
        .end_app_version(app.id, 2, "failed", Some(error.clone()), now())
        .await
        .unwrap();
    let failed = store.app_version(app.id, 2).await.unwrap().unwrap();
    assert_eq!(
        (failed.state.as_str(), failed.error),
        ("failed", Some(error))
    );
    // Ending is for pending versions only: the live one stays live.
    store
        .end_app_version(app.id, 1, "cancelled", None, now())
        .await
        .unwrap();
    let live = store.app_version(app.id, 1).await.unwrap().unwrap();
    assert_eq!((live.state.as_str(), live.job_id), ("live", Some(job)));

    store
        .add_app_version(version(app.id, "three"), 3)
        .await
        .unwrap();
    assert!(
        store
            .make_app_version_live(app.id, 3, json!({}), now())
            .await
            .unwrap()
    );
    let states: Vec<_> = store
        .app_versions(app.id)
        .await
        .unwrap()
        .into_iter()
        .map(|v| (v.version, v.state))
        .collect();
    assert_eq!(
        states,
        [
            (3, "live".into()),
            (2, "failed".into()),
            (1, "superseded".into())
        ]
    );
    assert_eq!(
        store.app_bundle(app.id, 1).await.unwrap().as_deref(),
        Some(&b"one"[..])
    );
    // Keeping 3: version 4 pushes out the oldest ended one (1), never the live one (3).
    store
        .add_app_version(version(app.id, "four"), 3)
        .await
        .unwrap();
    let kept: Vec<_> = store
        .app_versions(app.id)
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.version)
        .collect();
    assert_eq!(kept, [4, 3, 2]);
    assert!(store.app_bundle(app.id, 1).await.unwrap().is_none());
    assert!(
        !store
            .make_app_version_live(app.id, 1, json!({"interface": "asgi3"}), now())
            .await
            .unwrap()
    );
    match store.add_app_version(version(Uuid::now_v7(), "x"), 3).await {
        Err(StoreError::NotFound) => {}
        other => panic!("{other:?}"),
    }
    // Deleting the app takes its versions.
    store.delete_app(app.id).await.unwrap();
    assert!(store.app_versions(app.id).await.unwrap().is_empty());
}

async fn requests_are_stamped_coarsely_and_idle_apps_found(store: Arc<dyn Store>) {
    let alice = user(store.as_ref(), "alice").await;
    let quiet = store.create_app(new_app(alice, "quiet"), 5).await.unwrap();
    let busy = store.create_app(new_app(alice, "busy"), 5).await.unwrap();
    let pinned = store.create_app(new_app(alice, "pinned"), 5).await.unwrap();
    store
        .update_app(
            pinned.id,
            AppPatch {
                pinned: Some(true),
                ..AppPatch::default()
            },
            now(),
        )
        .await
        .unwrap();
    let later = now() + TimeDelta::hours(2);
    store
        .touch_app(busy.id, later, TimeDelta::minutes(1))
        .await
        .unwrap();
    // Within a minute of the last stamp: not written again.
    store
        .touch_app(
            busy.id,
            later + TimeDelta::seconds(30),
            TimeDelta::minutes(1),
        )
        .await
        .unwrap();
    assert_eq!(
        store.app(busy.id).await.unwrap().unwrap().last_request_at,
        Some(later)
    );
    store
        .touch_app(
            busy.id,
            later + TimeDelta::minutes(2),
            TimeDelta::minutes(1),
        )
        .await
        .unwrap();
    assert_eq!(
        store.app(busy.id).await.unwrap().unwrap().last_request_at,
        Some(later + TimeDelta::minutes(2))
    );
    let idle: Vec<_> = store
        .idle_apps(now() + TimeDelta::hours(1))
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(
        idle,
        [quiet.id],
        "busy was requested since, pinned never idles"
    );
}

engine_tests!(
    apps_are_capped_named_owned_and_patched,
    versions_go_live_supersede_and_are_bounded,
    requests_are_stamped_coarsely_and_idle_apps_found,
);
