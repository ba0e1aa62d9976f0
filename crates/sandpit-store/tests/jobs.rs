//! The job queue's storage ([`JobStore`]), on both engines: enqueue, lease (exclusive, in
//! priority order, only what is due), lease renewal and loss, progress, logs, the end of an
//! attempt, cancellation, reclaiming jobs whose worker died, listing, and the event log.

#![expect(
    clippy::unwrap_used,
    reason = "in a test, a failed unwrap is a failed test"
)]

#[macro_use]
mod common;

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use sandpit_store::{
    CancelOutcome, Job, JobError, JobEventKind, JobFilter, JobOutcome, JobState, Lease, NewJob,
    NewUser, Role, Store, StoreError,
};
use serde_json::json;
use uuid::Uuid;

fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

fn secs(n: i64) -> TimeDelta {
    TimeDelta::seconds(n)
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

fn new_job(user_id: Uuid, kind: &str) -> NewJob {
    NewJob {
        id: Uuid::now_v7(),
        kind: kind.to_owned(),
        user_id,
        project_id: None,
        input: json!({"n": 1}),
        priority: 0,
        max_attempts: 3,
        timeout_ms: 60_000,
        run_at: now(),
        created_at: now(),
    }
}

fn kinds(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

async fn lease(store: &dyn Store, owner: &str, kind: &[&str], limit: u32) -> Vec<Job> {
    let kinds = kinds(kind);
    store
        .lease_jobs(Lease {
            owner,
            kinds: &kinds,
            now: now(),
            until: now() + secs(30),
            limit,
        })
        .await
        .unwrap()
}

async fn event_kinds(store: &dyn Store, id: Uuid) -> Vec<(u64, JobEventKind, String)> {
    store
        .job_events(id, 0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| {
            let state = e.data["state"].as_str().unwrap_or_default().to_owned();
            (e.seq, e.kind, state)
        })
        .collect()
}

async fn enqueue_and_read_back(store: Arc<dyn Store>) {
    let alice = user(store.as_ref(), "alice").await;
    let mut new = new_job(alice, "run");
    new.project_id = Some(Uuid::now_v7());
    new.priority = 7;
    new.input = json!({"files": [{"name": "a.py"}], "unicode": "héllo"});
    let job = store.enqueue_job(new.clone()).await.unwrap();
    assert_eq!(job.state, JobState::Queued);
    assert_eq!((job.attempts, job.max_attempts), (0, 3));
    assert_eq!((job.progress, job.last_event), (0, 1));
    assert_eq!(job.input, new.input);
    assert_eq!(job.project_id, new.project_id);
    assert_eq!(job.priority, 7);
    assert!(job.lease_owner.is_none() && job.finished_at.is_none());
    assert_eq!(store.job(job.id).await.unwrap().as_ref(), Some(&job));
    assert_eq!(
        event_kinds(store.as_ref(), job.id).await,
        [(1, JobEventKind::State, "queued".to_owned())]
    );

    // A taken id and an unknown user are refused.
    match store.enqueue_job(new.clone()).await {
        Err(StoreError::Conflict { constraint }) => assert_eq!(constraint, "jobs.id"),
        other => panic!("{other:?}"),
    }
    let mut orphan = new_job(Uuid::now_v7(), "run");
    orphan.id = Uuid::now_v7();
    assert!(matches!(
        store.enqueue_job(orphan).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.job(Uuid::now_v7()).await.unwrap(), None);
}

async fn lease_takes_due_jobs_of_its_kinds_by_priority(store: Arc<dyn Store>) {
    let alice = user(store.as_ref(), "alice").await;
    let low = store.enqueue_job(new_job(alice, "run")).await.unwrap();
    let mut high = new_job(alice, "run");
    high.priority = 5;
    let high = store.enqueue_job(high).await.unwrap();
    let mut later = new_job(alice, "run");
    later.run_at = now() + secs(3600);
    let later = store.enqueue_job(later).await.unwrap();
    let other = store.enqueue_job(new_job(alice, "deploy")).await.unwrap();

    let got = lease(store.as_ref(), "w1", &["run"], 10).await;
    let ids: Vec<Uuid> = got.iter().map(|j| j.id).collect();
    assert_eq!(
        ids,
        [high.id, low.id],
        "priority first; not the future or other kinds"
    );
    for job in &got {
        assert_eq!(job.state, JobState::Running);
        assert_eq!(job.attempts, 1);
        assert_eq!(job.lease_owner.as_deref(), Some("w1"));
        assert!(job.started_at.is_some() && job.lease_expires_at.is_some());
        assert_eq!(
            event_kinds(store.as_ref(), job.id).await,
            [
                (1, JobEventKind::State, "queued".to_owned()),
                (2, JobEventKind::State, "running".to_owned())
            ]
        );
    }
    assert!(lease(store.as_ref(), "w2", &["run"], 10).await.is_empty());
    assert_eq!(
        store.job(later.id).await.unwrap().unwrap().state,
        JobState::Queued
    );
    let deploy = lease(store.as_ref(), "w2", &["deploy", "other"], 10).await;
    assert_eq!(deploy.len(), 1);
    assert_eq!(deploy[0].id, other.id);
    // Nothing asked, nothing taken.
    assert!(lease(store.as_ref(), "w3", &[], 10).await.is_empty());
}

async fn concurrent_leases_never_share_a_job(store: Arc<dyn Store>) {
    let alice = user(store.as_ref(), "alice").await;
    let mut all = HashSet::new();
    for _ in 0..120 {
        all.insert(store.enqueue_job(new_job(alice, "run")).await.unwrap().id);
    }
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..6 {
        let store = store.clone();
        workers.spawn(async move {
            let owner = format!("worker-{w}");
            let mut mine = Vec::new();
            loop {
                let got = lease(store.as_ref(), &owner, &["run"], 4).await;
                if got.is_empty() {
                    return mine;
                }
                for job in got {
                    assert_eq!(job.lease_owner.as_deref(), Some(owner.as_str()));
                    assert!(
                        store
                            .finish_job(job.id, &owner, JobOutcome::Completed(json!(w)), now())
                            .await
                            .unwrap()
                    );
                    mine.push(job.id);
                }
            }
        });
    }
    let mut seen = Vec::new();
    while let Some(mine) = workers.join_next().await {
        seen.extend(mine.unwrap());
    }
    assert_eq!(seen.len(), all.len(), "every job once");
    assert_eq!(seen.iter().copied().collect::<HashSet<_>>(), all);
    for id in all {
        let job = store.job(id).await.unwrap().unwrap();
        assert_eq!((job.state, job.attempts), (JobState::Completed, 1));
    }
}

async fn a_lease_is_renewed_only_by_its_owner(store: Arc<dyn Store>) {
    let alice = user(store.as_ref(), "alice").await;
    let job = store.enqueue_job(new_job(alice, "run")).await.unwrap();
    assert_eq!(
        store
            .renew_lease(job.id, "w1", now(), now() + secs(60))
            .await
            .unwrap(),
        None,
        "a queued job has no lease"
    );
    lease(store.as_ref(), "w1", &["run"], 1).await;
    let until = now() + secs(90);
    assert_eq!(
        store.renew_lease(job.id, "w1", now(), until).await.unwrap(),
        Some(false)
    );
    let held = store.job(job.id).await.unwrap().unwrap();
    assert_eq!(held.lease_expires_at, Some(until));
    assert_eq!(
        store.renew_lease(job.id, "w2", now(), until).await.unwrap(),
        None
    );
    // Another worker's writes change nothing.
    assert!(
        !store
            .report_progress(job.id, "w2", 50, None, now())
            .await
            .unwrap()
    );
    assert!(!store.log_job(job.id, "w2", "hi", now()).await.unwrap());
    assert!(
        !store
            .finish_job(job.id, "w2", JobOutcome::Completed(json!(1)), now())
            .await
            .unwrap()
    );
    assert_eq!(store.job(job.id).await.unwrap().unwrap().last_event, 2);
}

async fn progress_and_logs_are_events_in_order(store: Arc<dyn Store>) {
    let alice = user(store.as_ref(), "alice").await;
    let job = store.enqueue_job(new_job(alice, "run")).await.unwrap();
    lease(store.as_ref(), "w", &["run"], 1).await;
    assert!(
        store
            .report_progress(job.id, "w", 30, Some("reading"), now())
            .await
            .unwrap()
    );
    assert!(store.log_job(job.id, "w", "line one", now()).await.unwrap());
    assert!(
        store
            .report_progress(job.id, "w", 250, None, now())
            .await
            .unwrap()
    );
    let held = store.job(job.id).await.unwrap().unwrap();
    assert_eq!(
        (held.progress, held.progress_message),
        (100, None),
        "clamped"
    );
    let events = store.job_events(job.id, 2, 100).await.unwrap();
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [3, 4, 5]);
    assert_eq!(events[0].kind, JobEventKind::Progress);
    assert_eq!(events[0].data, json!({"percent": 30, "message": "reading"}));
    assert_eq!(events[1].data, json!({"line": "line one"}));
    assert_eq!(events[2].data["percent"], 100);
    // Paging: after a seq, at most a limit.
    let page = store.job_events(job.id, 1, 2).await.unwrap();
    assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), [2, 3]);
    assert!(store.job_events(job.id, 5, 10).await.unwrap().is_empty());
}

async fn an_attempt_ends_completed_failed_or_retried(store: Arc<dyn Store>) {
    let alice = user(store.as_ref(), "alice").await;
    let done = store.enqueue_job(new_job(alice, "a")).await.unwrap();
    let failed = store.enqueue_job(new_job(alice, "b")).await.unwrap();
    let retried = store.enqueue_job(new_job(alice, "c")).await.unwrap();
    lease(store.as_ref(), "w", &["a", "b", "c"], 10).await;

    store
        .report_progress(done.id, "w", 40, Some("half"), now())
        .await
        .unwrap();
    assert!(
        store
            .finish_job(
                done.id,
                "w",
                JobOutcome::Completed(json!({"ok": true})),
                now()
            )
            .await
            .unwrap()
    );
    let job = store.job(done.id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Completed);
    assert_eq!(job.result, Some(json!({"ok": true})));
    assert_eq!(job.progress, 100);
    assert!(job.finished_at.is_some() && job.lease_owner.is_none());
    let tail: Vec<_> = event_kinds(store.as_ref(), done.id).await.split_off(3);
    assert_eq!(
        tail,
        [
            (4, JobEventKind::Result, String::new()),
            (5, JobEventKind::State, "completed".to_owned())
        ]
    );
    // Finished: the owner cannot write again.
    assert!(
        !store
            .finish_job(done.id, "w", JobOutcome::Cancelled, now())
            .await
            .unwrap()
    );

    let error = JobError::new("bad_input", "no such runtime");
    assert!(
        store
            .finish_job(failed.id, "w", JobOutcome::Failed(error.clone()), now())
            .await
            .unwrap()
    );
    let job = store.job(failed.id).await.unwrap().unwrap();
    assert_eq!(
        (job.state, job.error.as_ref()),
        (JobState::Failed, Some(&error))
    );
    assert!(job.result.is_none() && job.finished_at.is_some());

    let soon = now() + secs(2);
    let timeout = JobError::new("timeout", "took too long");
    assert!(
        store
            .finish_job(
                retried.id,
                "w",
                JobOutcome::Retry {
                    error: timeout.clone(),
                    run_at: soon
                },
                now()
            )
            .await
            .unwrap()
    );
    let job = store.job(retried.id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Queued);
    assert_eq!((job.run_at, job.error.as_ref()), (soon, Some(&timeout)));
    assert!(job.lease_owner.is_none() && job.finished_at.is_none());
    let last = store.job_events(retried.id, 2, 10).await.unwrap();
    assert_eq!(last[0].data["state"], "queued");
    assert_eq!(last[0].data["error"]["code"], "timeout");
    // Not before its time; then a second attempt.
    assert!(lease(store.as_ref(), "w", &["c"], 1).await.is_empty());
    let kinds = kinds(&["c"]);
    let again = store
        .lease_jobs(Lease {
            owner: "w2",
            kinds: &kinds,
            now: soon + secs(1),
            until: soon + secs(60),
            limit: 1,
        })
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].id, again[0].attempts), (retried.id, 2));
}

async fn cancel_stops_queued_and_asks_running_jobs(store: Arc<dyn Store>) {
    let alice = user(store.as_ref(), "alice").await;
    let queued = store.enqueue_job(new_job(alice, "q")).await.unwrap();
    let running = store.enqueue_job(new_job(alice, "r")).await.unwrap();
    lease(store.as_ref(), "w", &["r"], 1).await;

    let Some(CancelOutcome::Cancelled(job)) = store.cancel_job(queued.id, now()).await.unwrap()
    else {
        panic!("a queued job is cancelled at once")
    };
    assert_eq!(job.state, JobState::Cancelled);
    assert!(job.finished_at.is_some());
    assert!(lease(store.as_ref(), "w", &["q"], 1).await.is_empty());

    assert_eq!(
        store.cancel_job(running.id, now()).await.unwrap(),
        Some(CancelOutcome::Requested)
    );
    assert_eq!(
        store.cancel_job(running.id, now()).await.unwrap(),
        Some(CancelOutcome::Requested),
        "asking twice is asking"
    );
    assert_eq!(
        event_kinds(store.as_ref(), running.id).await.len(),
        3,
        "one event for the request"
    );
    assert_eq!(
        store
            .renew_lease(running.id, "w", now(), now() + secs(30))
            .await
            .unwrap(),
        Some(true),
        "the worker learns at its renewal"
    );
    assert!(
        store
            .finish_job(running.id, "w", JobOutcome::Cancelled, now())
            .await
            .unwrap()
    );
    assert_eq!(
        store.cancel_job(running.id, now()).await.unwrap(),
        Some(CancelOutcome::Finished(JobState::Cancelled))
    );
    assert_eq!(store.cancel_job(Uuid::now_v7(), now()).await.unwrap(), None);
}

async fn expired_leases_are_reclaimed(store: Arc<dyn Store>) {
    let alice = user(store.as_ref(), "alice").await;
    let retry = store.enqueue_job(new_job(alice, "a")).await.unwrap();
    let mut last = new_job(alice, "b");
    last.max_attempts = 1;
    let last = store.enqueue_job(last).await.unwrap();
    let asked = store.enqueue_job(new_job(alice, "c")).await.unwrap();
    let fresh = store.enqueue_job(new_job(alice, "d")).await.unwrap();
    let short = |owner: &'static str, kind: &'static str| {
        let store = store.clone();
        async move {
            let kinds = kinds(&[kind]);
            store
                .lease_jobs(Lease {
                    owner,
                    kinds: &kinds,
                    now: now(),
                    until: now() + TimeDelta::milliseconds(1),
                    limit: 1,
                })
                .await
                .unwrap()
        }
    };
    short("dead", "a").await;
    short("dead", "b").await;
    short("dead", "c").await;
    lease(store.as_ref(), "alive", &["d"], 1).await;
    store.cancel_job(asked.id, now()).await.unwrap();

    let later = now() + secs(1);
    assert_eq!(store.reclaim_expired_jobs(later).await.unwrap(), 3);
    let job = store.job(retry.id).await.unwrap().unwrap();
    assert_eq!((job.state, job.attempts), (JobState::Queued, 1));
    assert_eq!(job.error.unwrap().code, "lease_expired");
    let job = store.job(last.id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Failed, "out of attempts");
    assert_eq!(job.error.unwrap().code, "lease_expired");
    assert!(job.finished_at.is_some());
    let job = store.job(asked.id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Cancelled);
    assert_eq!(
        store.job(fresh.id).await.unwrap().unwrap().state,
        JobState::Running
    );
    // The dead worker, come back, changes nothing; the next worker takes the job.
    assert!(
        !store
            .finish_job(retry.id, "dead", JobOutcome::Completed(json!(1)), now())
            .await
            .unwrap()
    );
    let kinds = kinds(&["a"]);
    let taken = store
        .lease_jobs(Lease {
            owner: "next",
            kinds: &kinds,
            now: later,
            until: later + secs(30),
            limit: 1,
        })
        .await
        .unwrap();
    assert_eq!((taken[0].id, taken[0].attempts), (retry.id, 2));
    assert_eq!(store.reclaim_expired_jobs(later).await.unwrap(), 0);
}

async fn jobs_of_lists_a_users_jobs_newest_first(store: Arc<dyn Store>) {
    let alice = user(store.as_ref(), "alice").await;
    let bob = user(store.as_ref(), "bob").await;
    let project = Uuid::now_v7();
    let mut made = Vec::new();
    for (i, kind) in ["run", "code", "run"].into_iter().enumerate() {
        let mut new = new_job(alice, kind);
        new.created_at = now() + secs(i as i64);
        if kind == "code" {
            new.project_id = Some(project);
        }
        made.push(store.enqueue_job(new).await.unwrap().id);
    }
    store.enqueue_job(new_job(bob, "run")).await.unwrap();
    store.cancel_job(made[0], now()).await.unwrap();

    let ids = |jobs: Vec<Job>| jobs.into_iter().map(|j| j.id).collect::<Vec<_>>();
    let all = store.jobs_of(alice, &JobFilter::default()).await.unwrap();
    assert_eq!(ids(all), [made[2], made[1], made[0]]);
    let by_project = JobFilter {
        project_id: Some(project),
        ..JobFilter::default()
    };
    assert_eq!(
        ids(store.jobs_of(alice, &by_project).await.unwrap()),
        [made[1]]
    );
    let queued_runs = JobFilter {
        state: Some(JobState::Queued),
        kind: Some("run".into()),
        ..JobFilter::default()
    };
    assert_eq!(
        ids(store.jobs_of(alice, &queued_runs).await.unwrap()),
        [made[2]]
    );
    let one = JobFilter {
        limit: 1,
        ..JobFilter::default()
    };
    assert_eq!(ids(store.jobs_of(alice, &one).await.unwrap()), [made[2]]);
    assert!(store.jobs_of(bob, &by_project).await.unwrap().is_empty());

    // Finished jobs go after their time, with their events; live ones stay.
    assert_eq!(store.purge_jobs(now() - secs(60)).await.unwrap(), 0);
    assert_eq!(store.purge_jobs(now() + secs(60)).await.unwrap(), 1);
    assert_eq!(store.job(made[0]).await.unwrap(), None);
    assert!(store.job_events(made[0], 0, 10).await.unwrap().is_empty());
    assert_eq!(
        store
            .jobs_of(alice, &JobFilter::default())
            .await
            .unwrap()
            .len(),
        2
    );
}

engine_tests!(
    enqueue_and_read_back,
    lease_takes_due_jobs_of_its_kinds_by_priority,
    concurrent_leases_never_share_a_job,
    a_lease_is_renewed_only_by_its_owner,
    progress_and_logs_are_events_in_order,
    an_attempt_ends_completed_failed_or_retried,
    cancel_stops_queued_and_asks_running_jobs,
    expired_leases_are_reclaimed,
    jobs_of_lists_a_users_jobs_newest_first,
);
