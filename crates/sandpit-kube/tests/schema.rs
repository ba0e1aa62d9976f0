//! The objects the backend builds, validated against the Kubernetes OpenAPI schema with
//! `kubernetes-validate --strict` (unknown fields are errors), the tool and version
//! `scripts/check-deploy` installs. Skipped, saying so, where that tool is not installed.

use std::path::{Path, PathBuf};

use sandpit_kube::objects::{self, OwnerId, PodPlan, Pool, WorkspaceVolume};
use sandpit_kube::{KubeConfig, WorkspaceStorage};
use sandpit_sandbox::{AgentKey, SandboxLimits, SandboxSpec, WorkspaceSpec};

/// The schemas the chart is checked against too.
const VERSIONS: &[&str] = &["1.29.0", "1.33.0"];

fn validator() -> Option<PathBuf> {
    let home = std::env::var_os("HOME")?;
    let path = Path::new(&home).join(".cache/sandpit-deploy-tools/venv/bin/kubernetes-validate");
    path.exists().then_some(path)
}

#[test]
fn built_objects_pass_the_kubernetes_schema() {
    let Some(validator) = validator() else {
        println!("SKIPPED: kubernetes-validate not installed (run scripts/check-deploy once)");
        return;
    };
    let config = KubeConfig {
        runtime_class_name: Some("gvisor".into()),
        storage_class: Some("fast-ssd".into()),
        service_account: Some("sandboxes".into()),
        image_pull_policy: Some("IfNotPresent".into()),
        workspace: WorkspaceStorage::Pvc,
        ..KubeConfig::default()
    };
    let owner = OwnerId::parse("server-a").unwrap();
    let ephemeral = SandboxSpec::new(SandboxLimits::default());
    let persistent = SandboxSpec {
        workspace: WorkspaceSpec::Persistent {
            dir: "/w/1".into(),
            max_files: 100,
        },
        ..ephemeral.clone()
    };
    let name = objects::new_sandbox_name();
    let plan = |spec| PodPlan {
        name: &name,
        owner: &owner,
        pool: Pool::Warm,
        spec,
        workspace: objects::workspace_volume(&config, spec),
    };
    assert_eq!(plan(&ephemeral).workspace, WorkspaceVolume::EmptyDir);
    let documents = [
        (
            "pod-ephemeral",
            serde_json::to_value(objects::sandbox_pod(&config, &plan(&ephemeral))).unwrap(),
        ),
        (
            "pod-claim",
            serde_json::to_value(objects::sandbox_pod(&config, &plan(&persistent))).unwrap(),
        ),
        (
            "secret",
            serde_json::to_value(objects::agent_secret(
                &config,
                &owner,
                &name,
                "0f9e5b2c-1111-4222-8333-444455556666",
                &AgentKey::generate(),
            ))
            .unwrap(),
        ),
        (
            "claim",
            serde_json::to_value(objects::workspace_claim(&config, &owner, Path::new("/w/1")))
                .unwrap(),
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (what, mut doc) in documents {
        // k8s-openapi serializes apiVersion and kind itself; the schema requires them.
        assert!(
            doc["apiVersion"].is_string() && doc["kind"].is_string(),
            "{what}: {doc}"
        );
        doc.as_object_mut().unwrap().remove("status");
        let path = dir.path().join(format!("{what}.json"));
        std::fs::write(&path, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
        files.push(path);
    }
    for version in VERSIONS {
        let out = std::process::Command::new(&validator)
            .args(["--strict", "--kubernetes-version", version])
            .args(&files)
            .output()
            .unwrap();
        let report = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "kubernetes-validate {version}:\n{report}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        println!("kubernetes-validate --strict {version}:\n{report}");
    }
}
