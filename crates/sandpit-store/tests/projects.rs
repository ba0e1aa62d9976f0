//! Projects and their virtual file system ([`ProjectStore`]) on both engines: the per-user cap
//! and unique names, files with preconditions and limits, files and directories never at one
//! path, deleting and moving directories, batch writes that are all or nothing.

#![expect(
    clippy::unwrap_used,
    reason = "in a test, a failed unwrap is a failed test"
)]

#[macro_use]
mod common;

use std::sync::Arc;

use chrono::{DateTime, SubsecRound, Utc};
use sandpit_store::{
    Expect, FileBatch, FileWrite, MoveOutcome, NewProject, NewUser, PROJECTS_PER_USER,
    ProjectLimits, Role, Store, StoreError, WriteOutcome,
};
use uuid::Uuid;

fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

const ROOMY: ProjectLimits = ProjectLimits {
    max_files: 100,
    max_bytes: 1 << 20,
};

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

fn new_project(user_id: Uuid, name: &str) -> NewProject {
    NewProject {
        id: Uuid::now_v7(),
        user_id,
        name: name.to_owned(),
        description: "a test".into(),
        template: "empty".into(),
        created_at: now(),
    }
}

/// A file write whose "hash" is recognisable (the store keeps what it is given).
fn file(path: &str, content: &str) -> FileWrite {
    FileWrite {
        path: path.to_owned(),
        content: content.as_bytes().to_vec(),
        sha256: format!("{:0>64}", content.len()),
    }
}

async fn put(store: &dyn Store, id: Uuid, path: &str, content: &str) -> WriteOutcome {
    store
        .put_project_file(id, file(path, content), Expect::Anything, ROOMY, now())
        .await
        .unwrap()
}

async fn paths(store: &dyn Store, id: Uuid) -> Vec<String> {
    store
        .project_files(id)
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.path)
        .collect()
}

async fn projects_are_capped_named_and_owned(store: Arc<dyn Store>) {
    let alice = user(store.as_ref(), "alice").await;
    let bob = user(store.as_ref(), "bob").await;
    let first = store
        .create_project(new_project(alice, "Game"), 2)
        .await
        .unwrap();
    assert_eq!((first.files, first.bytes), (0, 0));
    assert_eq!(
        store.project(first.id).await.unwrap().as_ref(),
        Some(&first)
    );
    match store.create_project(new_project(alice, "gAME"), 2).await {
        Err(StoreError::Conflict { constraint }) => assert_eq!(constraint, "projects.name"),
        other => panic!("{other:?}"),
    }
    // Another user may use the name.
    store
        .create_project(new_project(bob, "game"), 2)
        .await
        .unwrap();
    store
        .create_project(new_project(alice, "Two"), 2)
        .await
        .unwrap();
    match store.create_project(new_project(alice, "Three"), 2).await {
        Err(StoreError::Conflict { constraint }) => assert_eq!(constraint, PROJECTS_PER_USER),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        store
            .create_project(new_project(Uuid::now_v7(), "x"), 2)
            .await,
        Err(StoreError::NotFound)
    ));
    let names: Vec<String> = store
        .projects_of(alice)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, ["Two", "Game"], "newest first, only hers");

    let renamed = store
        .update_project(first.id, Some("Game 2"), None, now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (renamed.name.as_str(), renamed.description.as_str()),
        ("Game 2", "a test")
    );
    match store
        .update_project(first.id, Some("two"), None, now())
        .await
    {
        Err(StoreError::Conflict { constraint }) => assert_eq!(constraint, "projects.name"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        store
            .update_project(Uuid::now_v7(), None, None, now())
            .await
            .unwrap(),
        None
    );
    put(store.as_ref(), first.id, "a.txt", "hello").await;
    assert!(store.delete_project(first.id).await.unwrap());
    assert!(!store.delete_project(first.id).await.unwrap());
    assert_eq!(store.project(first.id).await.unwrap(), None);
    assert_eq!(paths(store.as_ref(), first.id).await, Vec::<String>::new());
}

async fn files_keep_their_versions_and_limits(store: Arc<dyn Store>) {
    let alice = user(store.as_ref(), "alice").await;
    let p = store
        .create_project(new_project(alice, "p"), 5)
        .await
        .unwrap();
    assert_eq!(
        put(store.as_ref(), p.id, "src/main.py", "print(1)").await,
        WriteOutcome::Written { created: true }
    );
    let got = store
        .project_file(p.id, "src/main.py")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.content, b"print(1)");
    assert_eq!((got.meta.size, got.meta.sha256.len()), (8, 64));
    assert_eq!(
        put(store.as_ref(), p.id, "src/main.py", "print(22)").await,
        WriteOutcome::Written { created: false }
    );
    let current = store
        .project_file(p.id, "src/main.py")
        .await
        .unwrap()
        .unwrap();

    // If-Match: only over the version named; If-None-Match: * only where nothing is.
    let stale = Expect::Sha256(got.meta.sha256.clone());
    assert_eq!(
        store
            .put_project_file(p.id, file("src/main.py", "x"), stale, ROOMY, now())
            .await
            .unwrap(),
        WriteOutcome::PreconditionFailed
    );
    let fresh = Expect::Sha256(current.meta.sha256.clone());
    assert_eq!(
        store
            .put_project_file(p.id, file("src/main.py", "print(333)"), fresh, ROOMY, now())
            .await
            .unwrap(),
        WriteOutcome::Written { created: false }
    );
    for (path, outcome) in [
        ("src/main.py", WriteOutcome::PreconditionFailed),
        ("src/new.py", WriteOutcome::Written { created: true }),
    ] {
        assert_eq!(
            store
                .put_project_file(p.id, file(path, "y"), Expect::Absent, ROOMY, now())
                .await
                .unwrap(),
            outcome,
            "{path}"
        );
    }

    // A path is a file or a directory, never both.
    assert_eq!(
        put(store.as_ref(), p.id, "src", "x").await,
        WriteOutcome::IsADirectory
    );
    assert_eq!(
        put(store.as_ref(), p.id, "src/main.py/inner", "x").await,
        WriteOutcome::NotADirectory
    );

    // Limits: files and bytes, checked with the write; nothing written when over.
    let tight = ProjectLimits {
        max_files: 3,
        max_bytes: 30,
    };
    let over_bytes = file("big.txt", &"x".repeat(40));
    assert_eq!(
        store
            .put_project_file(p.id, over_bytes, Expect::Anything, tight, now())
            .await
            .unwrap(),
        WriteOutcome::Full
    );
    store
        .put_project_file(p.id, file("third.txt", "3"), Expect::Anything, tight, now())
        .await
        .unwrap();
    assert_eq!(
        store
            .put_project_file(
                p.id,
                file("fourth.txt", "4"),
                Expect::Anything,
                tight,
                now()
            )
            .await
            .unwrap(),
        WriteOutcome::Full
    );
    assert_eq!(
        paths(store.as_ref(), p.id).await,
        ["src/main.py", "src/new.py", "third.txt"]
    );
    let counted = store.project(p.id).await.unwrap().unwrap();
    assert_eq!((counted.files, counted.bytes), (3, 10 + 1 + 1));
    assert_eq!(
        store
            .put_project_file(
                Uuid::now_v7(),
                file("a", "b"),
                Expect::Anything,
                ROOMY,
                now()
            )
            .await
            .unwrap(),
        WriteOutcome::NoProject
    );
}

async fn directories_delete_and_move_as_a_whole(store: Arc<dyn Store>) {
    let alice = user(store.as_ref(), "alice").await;
    let p = store
        .create_project(new_project(alice, "p"), 5)
        .await
        .unwrap();
    for path in [
        "app/a.py",
        "app/sub/b.py",
        "app_notes.txt",
        "app0",
        "top.txt",
    ] {
        put(store.as_ref(), p.id, path, path).await;
    }
    // Only what is under app/ moves: not app_notes.txt, not app0 (the range's edges).
    assert_eq!(
        store
            .move_project_path(p.id, "app", "src/app", false, now())
            .await
            .unwrap(),
        MoveOutcome::Moved(2)
    );
    assert_eq!(
        paths(store.as_ref(), p.id).await,
        [
            "app0",
            "app_notes.txt",
            "src/app/a.py",
            "src/app/sub/b.py",
            "top.txt"
        ]
    );
    let moved = store
        .project_file(p.id, "src/app/sub/b.py")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        moved.content, b"app/sub/b.py",
        "content travels with the path"
    );
    // A file, onto a taken path: only with overwrite.
    assert_eq!(
        store
            .move_project_path(p.id, "top.txt", "app0", false, now())
            .await
            .unwrap(),
        MoveOutcome::Exists
    );
    assert_eq!(
        store
            .move_project_path(p.id, "top.txt", "app0", true, now())
            .await
            .unwrap(),
        MoveOutcome::Moved(1)
    );
    assert_eq!(
        store
            .project_file(p.id, "app0")
            .await
            .unwrap()
            .unwrap()
            .content,
        b"top.txt"
    );
    assert_eq!(
        store
            .move_project_path(p.id, "nothing", "x", false, now())
            .await
            .unwrap(),
        MoveOutcome::NotFound
    );
    assert_eq!(
        store
            .move_project_path(p.id, "app0", "app_notes.txt/x", false, now())
            .await
            .unwrap(),
        MoveOutcome::NotADirectory
    );
    // Deleting a directory deletes what is under it, and nothing beside it.
    assert_eq!(
        store.delete_project_path(p.id, "src", now()).await.unwrap(),
        2
    );
    assert_eq!(paths(store.as_ref(), p.id).await, ["app0", "app_notes.txt"]);
    assert_eq!(
        store
            .delete_project_path(p.id, "app0", now())
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .delete_project_path(p.id, "gone", now())
            .await
            .unwrap(),
        0
    );
}

async fn batch_writes_are_all_or_nothing(store: Arc<dyn Store>) {
    let alice = user(store.as_ref(), "alice").await;
    let p = store
        .create_project(new_project(alice, "p"), 5)
        .await
        .unwrap();
    put(store.as_ref(), p.id, "keep.txt", "kept").await;
    let batch = vec![file("a.txt", "a"), file("dir/b.txt", "b")];
    assert_eq!(
        store
            .write_project_files(p.id, FileBatch::writes(batch), ROOMY, now())
            .await
            .unwrap(),
        WriteOutcome::Written { created: false }
    );
    assert_eq!(
        paths(store.as_ref(), p.id).await,
        ["a.txt", "dir/b.txt", "keep.txt"]
    );
    // One refused file refuses the batch.
    let bad = vec![file("c.txt", "c"), file("keep.txt/x", "x")];
    assert_eq!(
        store
            .write_project_files(p.id, FileBatch::writes(bad), ROOMY, now())
            .await
            .unwrap(),
        WriteOutcome::NotADirectory
    );
    let tight = ProjectLimits {
        max_files: 4,
        max_bytes: 1000,
    };
    let many = vec![file("d1", "1"), file("d2", "2")];
    assert_eq!(
        store
            .write_project_files(p.id, FileBatch::writes(many), tight, now())
            .await
            .unwrap(),
        WriteOutcome::Full
    );
    assert_eq!(
        paths(store.as_ref(), p.id).await,
        ["a.txt", "dir/b.txt", "keep.txt"]
    );
    // Replacing: only the batch is left.
    let fresh = FileBatch {
        replace: true,
        ..FileBatch::writes(vec![file("only.txt", "o")])
    };
    store
        .write_project_files(p.id, fresh, ROOMY, now())
        .await
        .unwrap();
    assert_eq!(paths(store.as_ref(), p.id).await, ["only.txt"]);

    // Deletes and writes with expectations: a stale one refuses the whole batch.
    let gone = FileBatch::writes(vec![file("gone.txt", "g")]);
    store
        .write_project_files(p.id, gone, ROOMY, now())
        .await
        .unwrap();
    let current = store
        .project_file(p.id, "gone.txt")
        .await
        .unwrap()
        .unwrap()
        .meta
        .sha256;
    let stale = FileBatch {
        writes: vec![(file("new.txt", "n"), Expect::Absent)],
        deletes: vec![("gone.txt".into(), Expect::Sha256("f".repeat(64)))],
        replace: false,
    };
    assert_eq!(
        store
            .write_project_files(p.id, stale, ROOMY, now())
            .await
            .unwrap(),
        WriteOutcome::PreconditionFailed
    );
    assert_eq!(paths(store.as_ref(), p.id).await, ["gone.txt", "only.txt"]);
    let fresh = FileBatch {
        writes: vec![(file("new.txt", "n"), Expect::Absent)],
        deletes: vec![("gone.txt".into(), Expect::Sha256(current))],
        replace: false,
    };
    store
        .write_project_files(p.id, fresh, ROOMY, now())
        .await
        .unwrap();
    assert_eq!(paths(store.as_ref(), p.id).await, ["new.txt", "only.txt"]);
}

async fn concurrent_writes_respect_the_limit(store: Arc<dyn Store>) {
    let alice = user(store.as_ref(), "alice").await;
    let p = store
        .create_project(new_project(alice, "p"), 5)
        .await
        .unwrap();
    let limits = ProjectLimits {
        max_files: 10,
        max_bytes: 1 << 20,
    };
    let mut writers = tokio::task::JoinSet::new();
    for i in 0..30 {
        let store = store.clone();
        writers.spawn(async move {
            store
                .put_project_file(
                    p.id,
                    file(&format!("f{i}"), "x"),
                    Expect::Anything,
                    limits,
                    now(),
                )
                .await
                .unwrap()
        });
    }
    let mut written = 0;
    while let Some(outcome) = writers.join_next().await {
        match outcome.unwrap() {
            WriteOutcome::Written { .. } => written += 1,
            WriteOutcome::Full => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(written, 10);
    assert_eq!(paths(store.as_ref(), p.id).await.len(), 10);
}

engine_tests!(
    projects_are_capped_named_and_owned,
    files_keep_their_versions_and_limits,
    directories_delete_and_move_as_a_whole,
    batch_writes_are_all_or_nothing,
    concurrent_writes_respect_the_limit,
);
