//! Per-user databases ([`DatabaseStore`]) on both engines: one per user, rotation recorded,
//! deletion, and gone with its user.

#![expect(
    clippy::unwrap_used,
    reason = "in a test, a failed unwrap is a failed test"
)]

#[macro_use]
mod common;

use std::sync::Arc;

use chrono::{DateTime, SubsecRound, Utc};
use sandpit_store::{NewUser, ONE_PER_USER, Role, Store, StoreError, UserDatabase};
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

fn postgres_db(user_id: Uuid) -> UserDatabase {
    UserDatabase {
        user_id,
        engine: "postgres".into(),
        name: format!("sp_{}", user_id.simple()),
        secret: Some("first password".into()),
        created_at: now(),
        rotated_at: None,
    }
}

async fn one_per_user_rotated_and_deleted(store: Arc<dyn Store>) {
    let ada = user(store.as_ref(), "ada").await;
    let bob = user(store.as_ref(), "bob").await;
    assert_eq!(store.user_database(ada).await.unwrap(), None);

    let made = store.create_user_database(postgres_db(ada)).await.unwrap();
    assert_eq!(store.user_database(ada).await.unwrap(), Some(made.clone()));
    let again = store.create_user_database(postgres_db(ada)).await;
    assert!(
        matches!(again, Err(StoreError::Conflict { constraint }) if constraint == ONE_PER_USER),
        "{again:?}"
    );
    // Nobody else's is touched or shown.
    assert_eq!(store.user_database(bob).await.unwrap(), None);
    assert!(!store.rotate_user_database(bob, "x", now()).await.unwrap());

    let at = now();
    assert!(
        store
            .rotate_user_database(ada, "second password", at)
            .await
            .unwrap()
    );
    let rotated = store.user_database(ada).await.unwrap().unwrap();
    assert_eq!(rotated.secret.as_deref(), Some("second password"));
    assert_eq!(rotated.rotated_at, Some(at));
    assert_eq!(rotated.created_at, made.created_at);

    let sqlite = store
        .create_user_database(UserDatabase {
            user_id: bob,
            engine: "sqlite".into(),
            name: "app.sqlite".into(),
            secret: None,
            created_at: now(),
            rotated_at: None,
        })
        .await
        .unwrap();
    assert_eq!(store.user_database(bob).await.unwrap(), Some(sqlite));

    assert!(store.delete_user_database(ada).await.unwrap());
    assert!(!store.delete_user_database(ada).await.unwrap());
    assert_eq!(store.user_database(ada).await.unwrap(), None);

    // Unknown users have none to make.
    let orphan = store
        .create_user_database(postgres_db(Uuid::now_v7()))
        .await;
    assert!(matches!(orphan, Err(StoreError::NotFound)), "{orphan:?}");
}

engine_tests!(one_per_user_rotated_and_deleted);
