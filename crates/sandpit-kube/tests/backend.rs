//! The Kubernetes backend against the fake API server (tests/fake), whose fake kubelet runs
//! the real agent: every sandbox here is reached over the agent's authenticated TCP transport
//! and runs real processes (as root, like the native backend's suites).

mod common;
mod fake;

use std::collections::HashSet;
use std::time::Duration;

use common::{NS, OWNER, backend, config, eventually, options, patiently, run, spec, text};
use fake::{Behaviour, Fake};
use sandpit_kube::objects::{LABEL_OWNER, LABEL_POOL};
use sandpit_kube::{KubeBackend, KubeOptions};
use sandpit_sandbox::{
    Backend, ProcessSpec, SandboxError, SandboxSpec, WorkspacePath, WorkspaceSpec,
};
use serde_json::json;

fn label(fake: &Fake, pod: &str, key: &str) -> Option<String> {
    let pod = fake.object("pods", NS, pod)?;
    pod["metadata"]["labels"][key].as_str().map(str::to_owned)
}

#[tokio::test]
async fn a_sandbox_is_a_pod_whose_agent_runs_processes_and_keeps_files() {
    let fake = Fake::start().await;
    let backend = backend(&fake, 0).await;
    let sandbox = patiently("create", backend.create(&spec())).await.unwrap();
    let id = sandbox.id().to_owned();
    assert_eq!(fake.names("pods", NS), std::slice::from_ref(&id));
    assert_eq!(fake.names("secrets", NS), [format!("{id}-agent")]);
    assert_eq!(label(&fake, &id, LABEL_OWNER).as_deref(), Some(OWNER));
    assert_eq!(label(&fake, &id, LABEL_POOL).as_deref(), Some("direct"));

    let out = run(sandbox.as_ref(), &["/bin/echo", "hello from a pod"]).await;
    assert_eq!(out.exit.code, Some(0));
    assert_eq!(text(&out.stdout), "hello from a pod\n");

    let path = WorkspacePath::parse("notes/a.txt").unwrap();
    sandbox
        .write_file(&path, b"kept".to_vec(), 0o644)
        .await
        .unwrap();
    assert_eq!(sandbox.read_file(&path, 1024).await.unwrap(), b"kept");
    let out = run(sandbox.as_ref(), &["/bin/cat", "/workspace/notes/a.txt"]).await;
    assert_eq!(text(&out.stdout), "kept");

    let report = backend.report();
    assert_eq!(report.backend, "kubernetes");
    assert!(report.details.contains(&("namespace".into(), NS.into())));
    assert!(
        ["pod", "seccomp", "unprivileged_uid"]
            .iter()
            .all(|want| report.features.iter().any(|f| f == want)),
        "the agent's features (pod mode) are reported: {:?}",
        report.features
    );
    sandbox.destroy().await.unwrap();
}

#[tokio::test]
async fn destroy_deletes_the_pod_and_its_secret_and_can_be_repeated() {
    let fake = Fake::start().await;
    let backend = backend(&fake, 0).await;
    let sandbox = patiently("create", backend.create(&spec())).await.unwrap();
    let id = sandbox.id().to_owned();
    assert_eq!(fake.running_agents(), 1);
    patiently("destroy", sandbox.destroy()).await.unwrap();
    assert!(
        fake.names("pods", NS).is_empty(),
        "{:?}",
        fake.names("pods", NS)
    );
    assert!(
        fake.names("secrets", NS).is_empty(),
        "{:?}",
        fake.names("secrets", NS)
    );
    assert_eq!(fake.running_agents(), 0);
    let requests = fake.requests();
    assert!(
        requests.contains(&format!("DELETE pods/{id}")),
        "{requests:?}"
    );
    assert!(
        requests.contains(&format!("DELETE secrets/{id}-agent")),
        "{requests:?}"
    );
    // Idempotent, and without asking the API server again.
    let before = fake.requests().len();
    sandbox.destroy().await.unwrap();
    assert_eq!(fake.requests().len(), before);
    // The connection is closed: nothing runs in a destroyed sandbox.
    assert!(
        sandbox
            .spawn(ProcessSpec::new(["/bin/true"]))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn the_warm_pool_is_filled_ahead_and_refilled_after_a_take() {
    let fake = Fake::start().await;
    let backend = backend(&fake, 2).await;
    eventually("two warm pods", || backend.warm_ready() == 2).await;
    let warm: HashSet<String> = fake.names("pods", NS).into_iter().collect();
    assert_eq!(warm.len(), 2);
    for pod in &warm {
        assert_eq!(label(&fake, pod, LABEL_POOL).as_deref(), Some("warm"));
    }

    let sandbox = patiently("create", backend.create(&spec())).await.unwrap();
    assert!(
        warm.contains(sandbox.id()),
        "{} is not a warm pod",
        sandbox.id()
    );
    let out = run(sandbox.as_ref(), &["/bin/echo", "warm"]).await;
    assert_eq!(text(&out.stdout), "warm\n");
    eventually("the pool refilled", || backend.warm_ready() == 2).await;
    assert_eq!(fake.names("pods", NS).len(), 3);

    // Another shape cannot use a warm pod: pod limits are fixed at creation.
    let mut bigger = spec();
    bigger.limits.memory_bytes *= 2;
    let other = patiently("create", backend.create(&bigger)).await.unwrap();
    assert!(!warm.contains(other.id()));
    assert_eq!(
        label(&fake, other.id(), LABEL_POOL).as_deref(),
        Some("direct")
    );
    let pod = fake.object("pods", NS, other.id()).unwrap();
    assert_eq!(
        pod["spec"]["containers"][0]["resources"]["limits"]["memory"],
        json!((512u64 << 20).to_string())
    );
    assert_eq!(backend.warm_ready(), 2);

    sandbox.destroy().await.unwrap();
    other.destroy().await.unwrap();
    backend.shutdown().await.unwrap();
    assert!(
        fake.names("pods", NS).is_empty(),
        "{:?}",
        fake.names("pods", NS)
    );
    assert!(fake.names("secrets", NS).is_empty());
}

#[tokio::test]
async fn reconcile_deletes_the_pods_of_dead_owners_and_keeps_the_live_ones() {
    let fake = Fake::start().await;
    let sandbox_labels = |owner: &str| {
        json!({"app.kubernetes.io/name": "sandpit", "app.kubernetes.io/component": "sandbox",
               "sandpit.dev/owner": owner})
    };
    fake.insert_pod(NS, "of-dead", sandbox_labels("server-dead"));
    fake.insert_secret(NS, "of-dead-agent");
    fake.insert_pod(NS, "of-live", sandbox_labels("server-live"));
    fake.insert_secret(NS, "of-live-agent");
    // Left by an earlier process with this server's id: nobody holds its key.
    fake.insert_pod(NS, "of-my-past", sandbox_labels(OWNER));
    fake.insert_secret(NS, "of-my-past-agent");
    // Not a sandbox: never touched.
    fake.insert_pod(NS, "unrelated", json!({"app": "other"}));

    // Start-up without knowing the peers: only this id's left-overs go.
    let backend = backend(&fake, 0).await;
    let mut pods = fake.names("pods", NS);
    pods.sort();
    assert_eq!(pods, ["of-dead", "of-live", "unrelated"]);
    assert!(
        !fake
            .names("secrets", NS)
            .contains(&"of-my-past-agent".to_owned())
    );

    let mine = patiently("create", backend.create(&spec())).await.unwrap();
    let live = HashSet::from(["server-live".to_owned(), OWNER.to_owned()]);
    let done = backend.reconcile(&live, &[]).await.unwrap();
    assert_eq!(done.deleted, ["of-dead"]);
    let mut pods = fake.names("pods", NS);
    pods.sort();
    let mut want = vec![
        "of-live".to_owned(),
        "unrelated".to_owned(),
        mine.id().to_owned(),
    ];
    want.sort();
    assert_eq!(pods, want);
    let secrets = fake.names("secrets", NS);
    assert!(
        !secrets.contains(&"of-dead-agent".to_owned()),
        "{secrets:?}"
    );
    assert!(secrets.contains(&"of-live-agent".to_owned()), "{secrets:?}");
    // Ours is alive and still works after the reconcile.
    let out = run(mine.as_ref(), &["/bin/echo", "still here"]).await;
    assert_eq!(text(&out.stdout), "still here\n");
    mine.destroy().await.unwrap();
}

#[tokio::test]
async fn reconcile_at_start_up_uses_the_live_owners_when_given() {
    let fake = Fake::start().await;
    let labels = |owner: &str| {
        json!({"app.kubernetes.io/name": "sandpit", "app.kubernetes.io/component": "sandbox",
               "sandpit.dev/owner": owner})
    };
    fake.insert_pod(NS, "of-dead", labels("server-dead"));
    fake.insert_pod(NS, "of-live", labels("server-live"));
    let options = KubeOptions {
        live_owners: Some(HashSet::from(["server-live".to_owned()])),
        ..options(&fake)
    };
    let _backend = KubeBackend::start(config(&fake, 0), OWNER, options)
        .await
        .unwrap();
    assert_eq!(fake.names("pods", NS), ["of-live"]);
}

#[tokio::test]
async fn an_evicted_pod_closes_its_connection_and_the_next_sandbox_works() {
    let fake = Fake::start().await;
    let backend = backend(&fake, 0).await;
    let sandbox = patiently("create", backend.create(&spec())).await.unwrap();
    let mut sleeper = sandbox
        .spawn(ProcessSpec {
            limits: sandpit_sandbox::ProcessLimits {
                wall_ms: None,
                ..Default::default()
            },
            ..ProcessSpec::new(["/bin/sleep", "600"])
        })
        .await
        .unwrap();
    fake.evict(NS, sandbox.id());
    // The agent died with the pod: the running process's events end, and new requests fail.
    patiently("the process to end with the pod", async {
        while sleeper.next_event().await.is_some() {}
    })
    .await;
    let err = patiently(
        "a spawn after eviction",
        sandbox.spawn(ProcessSpec::new(["/bin/true"])),
    )
    .await
    .err()
    .unwrap();
    assert!(matches!(err, SandboxError::Lost), "{err:?}");

    let next = patiently("create", backend.create(&spec())).await.unwrap();
    assert_ne!(next.id(), sandbox.id());
    let out = run(next.as_ref(), &["/bin/echo", "after"]).await;
    assert_eq!(text(&out.stdout), "after\n");
    // The evicted sandbox can still be destroyed, which removes its pod.
    sandbox.destroy().await.unwrap();
    assert_eq!(fake.names("pods", NS), [next.id().to_owned()]);
    next.destroy().await.unwrap();
}

#[tokio::test]
async fn an_image_that_cannot_be_pulled_is_a_clear_error_after_the_ready_timeout() {
    let fake = Fake::start().await;
    fake.set_behaviour(Behaviour::ImagePullBackOff);
    let mut config = config(&fake, 0);
    config.ready_timeout_ms = 1_500;
    let backend = KubeBackend::start(config, OWNER, options(&fake))
        .await
        .unwrap();
    let err = patiently("create", backend.create(&spec()))
        .await
        .err()
        .unwrap();
    let SandboxError::Unavailable(message) = &err else {
        panic!("not Unavailable: {err:?}");
    };
    assert!(message.contains("not ready within 1500 ms"), "{message}");
    assert!(message.contains("ImagePullBackOff"), "{message}");
    assert!(message.contains("sandpit:test"), "{message}");
    // Nothing is left behind.
    assert!(fake.names("pods", NS).is_empty());
    assert!(fake.names("secrets", NS).is_empty());
}

#[tokio::test]
async fn a_stopped_api_server_makes_the_backend_unavailable_not_stuck() {
    let fake = Fake::start().await;
    let backend = backend(&fake, 0).await;
    backend.check().await.unwrap();
    fake.stop();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let err = patiently("check", backend.check()).await.unwrap_err();
    assert!(
        matches!(&err, SandboxError::Unavailable(m) if m.contains("the Kubernetes API server is unreachable")),
        "{err:?}"
    );
    let err = patiently("create", backend.create(&spec()))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, SandboxError::Unavailable(_)), "{err:?}");
}

#[tokio::test]
async fn no_api_server_at_start_up_is_unavailable() {
    let fake = Fake::start().await;
    let mut config = config(&fake, 2);
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    config.api_url = Some(format!("http://127.0.0.1:{port}"));
    let err = patiently("start", KubeBackend::start(config, OWNER, options(&fake)))
        .await
        .err()
        .unwrap();
    assert!(
        matches!(&err, SandboxError::Unavailable(m) if m.contains("the Kubernetes API server is unreachable")),
        "{err:?}"
    );
}

#[tokio::test]
async fn an_api_server_that_never_answers_times_out() {
    let fake = Fake::start().await;
    // Accepts connections and never says a word.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            open.push(stream);
        }
    });
    let mut config = config(&fake, 0);
    config.api_url = Some(format!("http://{addr}"));
    config.api_timeout_ms = 500;
    let err = patiently("start", KubeBackend::start(config, OWNER, options(&fake)))
        .await
        .err()
        .unwrap();
    assert!(
        matches!(&err, SandboxError::Unavailable(m) if m.contains("no answer within 500 ms")),
        "{err:?}"
    );
    held.abort();
}

#[tokio::test]
async fn a_persistent_workspace_gets_a_claim_that_outlives_its_pods() {
    let fake = Fake::start().await;
    let backend = backend(&fake, 0).await;
    let dir = std::path::PathBuf::from("/var/lib/sandpit/workspaces/s-1");
    let spec = SandboxSpec {
        workspace: WorkspaceSpec::Persistent {
            dir: dir.clone(),
            max_files: 1000,
        },
        ..spec()
    };
    let first = patiently("create", backend.create(&spec)).await.unwrap();
    let claims = fake.names("persistentvolumeclaims", NS);
    assert_eq!(claims.len(), 1);
    let pod = fake.object("pods", NS, first.id()).unwrap();
    let volumes = pod["spec"]["volumes"].as_array().unwrap();
    let workspace = volumes.iter().find(|v| v["name"] == "workspace").unwrap();
    assert_eq!(
        workspace["persistentVolumeClaim"]["claimName"],
        json!(claims[0])
    );
    let claim = fake
        .object("persistentvolumeclaims", NS, &claims[0])
        .unwrap();
    assert_eq!(
        claim["spec"]["resources"]["requests"]["storage"],
        json!("256Mi")
    );
    first.destroy().await.unwrap();
    assert_eq!(
        fake.names("persistentvolumeclaims", NS),
        claims,
        "the claim stays"
    );

    // The session's next pod finds the same claim (409 AlreadyExists is no error).
    let second = patiently("create", backend.create(&spec)).await.unwrap();
    assert_eq!(fake.names("persistentvolumeclaims", NS), claims);
    second.destroy().await.unwrap();
    backend.remove_workspace(&dir).await.unwrap();
    assert!(fake.names("persistentvolumeclaims", NS).is_empty());
    backend.remove_workspace(&dir).await.unwrap();
}

#[tokio::test]
async fn a_warm_pod_evicted_while_idle_is_skipped_and_deleted() {
    let fake = Fake::start().await;
    let backend = backend(&fake, 1).await;
    eventually("a warm pod", || backend.warm_ready() == 1).await;
    let idle = fake.names("pods", NS).pop().unwrap();
    fake.evict(NS, &idle);
    let sandbox = patiently("create", backend.create(&spec())).await.unwrap();
    assert_ne!(sandbox.id(), idle);
    let out = run(sandbox.as_ref(), &["/bin/echo", "fresh"]).await;
    assert_eq!(text(&out.stdout), "fresh\n");
    assert!(
        !fake.names("pods", NS).contains(&idle),
        "the evicted warm pod was not deleted"
    );
    assert!(!fake.names("secrets", NS).contains(&format!("{idle}-agent")));
    sandbox.destroy().await.unwrap();
    backend.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_pod_evicted_before_it_runs_fails_the_create_with_the_reason() {
    let fake = Fake::start().await;
    fake.set_behaviour(Behaviour::EvictAtStart);
    let backend = backend(&fake, 0).await;
    let err = patiently("create", backend.create(&spec()))
        .await
        .err()
        .unwrap();
    let SandboxError::Setup(message) = &err else {
        panic!("not a set-up error: {err:?}");
    };
    assert!(
        message.contains("failed: Evicted: The node was low on resource: memory"),
        "{message}"
    );
    assert!(fake.names("pods", NS).is_empty());
    assert!(fake.names("secrets", NS).is_empty());
    // The cluster recovers: the next pod runs.
    fake.set_behaviour(Behaviour::Run);
    let sandbox = patiently("create", backend.create(&spec())).await.unwrap();
    assert_eq!(
        text(&run(sandbox.as_ref(), &["/bin/echo", "ok"]).await.stdout),
        "ok\n"
    );
    sandbox.destroy().await.unwrap();
}

#[tokio::test]
async fn a_sandbox_dropped_without_destroy_still_loses_its_pod() {
    let fake = Fake::start().await;
    let backend = backend(&fake, 0).await;
    let sandbox = patiently("create", backend.create(&spec())).await.unwrap();
    drop(sandbox);
    eventually("the pod and secret to go", || {
        fake.names("pods", NS).is_empty() && fake.names("secrets", NS).is_empty()
    })
    .await;
    assert_eq!(fake.running_agents(), 0);
}

#[tokio::test]
async fn concurrent_creates_get_pods_of_their_own() {
    let fake = Fake::start().await;
    let backend = backend(&fake, 1).await;
    let spec = spec();
    let (a, b, c) = patiently("three creates", async {
        tokio::join!(
            backend.create(&spec),
            backend.create(&spec),
            backend.create(&spec)
        )
    })
    .await;
    let sandboxes = [a.unwrap(), b.unwrap(), c.unwrap()];
    let ids: HashSet<&str> = sandboxes.iter().map(|s| s.id()).collect();
    assert_eq!(ids.len(), 3);
    for (i, sandbox) in sandboxes.iter().enumerate() {
        let word = format!("box{i}");
        let out = run(sandbox.as_ref(), &["/bin/echo", &word]).await;
        assert_eq!(text(&out.stdout), format!("{word}\n"));
    }
    for sandbox in &sandboxes {
        sandbox.destroy().await.unwrap();
    }
    backend.shutdown().await.unwrap();
    assert!(
        fake.names("pods", NS).is_empty(),
        "{:?}",
        fake.names("pods", NS)
    );
}
