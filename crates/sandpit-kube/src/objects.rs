//! The objects the backend creates, built as plain values (no I/O) so every security property
//! and limit can be checked without a cluster: a sandbox's Pod, the Secret holding its agent's
//! key, and a session's workspace claim.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource, Pod, PodSecurityContext, PodSpec,
    Probe, ResourceRequirements, SeccompProfile, Secret, SecretVolumeSource, SecurityContext,
    TCPSocketAction, Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use sandpit_sandbox::{AgentKey, RootSpec, SandboxLimits, SandboxSpec, WorkspaceSpec};
use sha2::{Digest, Sha256};

use crate::config::KubeConfig;

pub const LABEL_NAME: &str = "app.kubernetes.io/name";
pub const LABEL_COMPONENT: &str = "app.kubernetes.io/component";
/// The server instance that made the object (see [`crate::reconcile`]).
pub const LABEL_OWNER: &str = "sandpit.dev/owner";
pub const LABEL_SANDBOX: &str = "sandpit.dev/sandbox";
/// How the pod was made: [`Pool::Warm`] ahead of time or [`Pool::Direct`] for a request. Set
/// at creation and never changed (the server may not patch pods), so a warm pod taken by a
/// request still says `warm`.
pub const LABEL_POOL: &str = "sandpit.dev/pool";
/// Which persistent workspace (a digest of its `dir`) a claim holds, or a sandbox pod runs
/// on. A pod with this label belongs to its session as much as to its owner: it is what a
/// server taking the session over adopts (see [`crate::reconcile`]).
pub const LABEL_WORKSPACE: &str = "sandpit.dev/workspace";

/// The uid and gid of everything in a sandbox pod (the image's `USER`).
pub const SANDBOX_UID: i64 = 10001;
/// The key's entry in the agent Secret: the 32 raw bytes of the [`AgentKey`].
pub const SECRET_KEY: &str = "key";
/// Where the agent Secret is mounted, and the variable naming its file.
pub const SECRET_DIR: &str = "/run/secrets/sandpit-agent";
/// The agent reads its key from the file this names (its pod mode).
pub const SECRET_FILE_ENV: &str = sandpit_sandbox::agent::SECRET_FILE_ENV;
pub const CONTAINER: &str = "sandbox";

/// Requests are this fraction of the limits: the scheduler packs sandboxes by what they
/// usually use, the limits stop what they may not exceed.
const REQUEST_DIVISOR: u64 = 4;
/// Ephemeral storage beyond the `emptyDir`s: the container's logs and the kubelet's own files.
const EPHEMERAL_OVERHEAD: u64 = 64 << 20;

/// The selector of every sandbox pod of sandpit in a namespace.
pub const SANDBOX_SELECTOR: &str =
    "app.kubernetes.io/name=sandpit,app.kubernetes.io/component=sandbox";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BuildError {
    #[error("{0:?} is not a valid host name for a pod (1 to 63 of a-z, 0-9 and '-')")]
    Hostname(String),
    #[error("{0:?} is not a valid server instance id (1 to 63 of A-Z, a-z, 0-9, '-', '_', '.')")]
    Owner(String),
    #[error("the Kubernetes backend cannot give a sandbox {0}")]
    Unsupported(&'static str),
}

/// A server instance's id, usable as a label value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OwnerId(String);

impl OwnerId {
    pub fn parse(raw: &str) -> Result<Self, BuildError> {
        let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
        let ok = !raw.is_empty()
            && raw.len() <= 63
            && raw
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && edge_ok(raw.chars().next())
            && edge_ok(raw.chars().last());
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(BuildError::Owner(raw.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OwnerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// See [`LABEL_POOL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pool {
    Warm,
    Direct,
}

impl Pool {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Warm => "warm",
            Self::Direct => "direct",
        }
    }
}

/// What backs a pod's `/workspace`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkspaceVolume {
    /// An `emptyDir` of `limits.workspace_bytes`, gone with the pod.
    EmptyDir,
    /// The named PersistentVolumeClaim.
    Claim(String),
}

/// One sandbox pod to build.
#[derive(Debug, Clone)]
pub struct PodPlan<'a> {
    /// The pod's name, also the sandbox's id.
    pub name: &'a str,
    pub owner: &'a OwnerId,
    pub pool: Pool,
    pub spec: &'a SandboxSpec,
    pub workspace: WorkspaceVolume,
}

/// A new sandbox's name: a valid pod name, unique without asking the cluster.
pub fn new_sandbox_name() -> String {
    format!("sandpit-sb-{}", uuid::Uuid::now_v7().simple())
}

pub fn secret_name(pod: &str) -> String {
    format!("{pod}-agent")
}

/// The claim of a persistent workspace: named from its `dir`, so the session's next pod finds
/// the same claim.
pub fn claim_name(dir: &Path) -> String {
    format!("sandpit-ws-{}", workspace_digest(dir))
}

/// The selector of the sandbox pods on the persistent workspace at `dir`.
pub fn workspace_selector(dir: &Path) -> String {
    format!(
        "{SANDBOX_SELECTOR},{LABEL_WORKSPACE}={}",
        workspace_digest(dir)
    )
}

/// The value of [`LABEL_WORKSPACE`] for the workspace at `dir`.
pub fn workspace_digest(dir: &Path) -> String {
    let digest = Sha256::digest(dir.as_os_str().as_encoded_bytes());
    hex::encode(&digest[..16])
}

/// Checks what a pod cannot carry, before anything is created.
pub fn check_spec(spec: &SandboxSpec) -> Result<(), BuildError> {
    if !matches!(spec.root, RootSpec::Host) {
        // A pod's root is its image; a directory on the server's host means nothing there.
        return Err(BuildError::Unsupported(
            "a root directory (the image is the root)",
        ));
    }
    if !spec.volumes.is_empty() {
        return Err(BuildError::Unsupported("host volumes"));
    }
    if spec.containers.is_some() {
        return Err(BuildError::Unsupported(
            "a container engine (a restricted pod has no user namespaces)",
        ));
    }
    if !valid_hostname(&spec.hostname) {
        return Err(BuildError::Hostname(spec.hostname.clone()));
    }
    Ok(())
}

fn valid_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

fn labels(owner: &OwnerId, sandbox: &str) -> BTreeMap<String, String> {
    [
        (LABEL_NAME, "sandpit"),
        (LABEL_COMPONENT, "sandbox"),
        (LABEL_OWNER, owner.as_str()),
        (LABEL_SANDBOX, sandbox),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

fn bytes(n: u64) -> Quantity {
    Quantity(n.to_string())
}

fn millicores(m: u64) -> Quantity {
    Quantity(format!("{m}m"))
}

/// The pod's requests and limits from the sandbox's: memory (tmpfs included, as `/dev/shm` is
/// memory-backed), CPU, and ephemeral storage for the disk-backed `emptyDir`s.
pub fn resources(limits: &SandboxLimits, workspace: &WorkspaceVolume) -> ResourceRequirements {
    let ephemeral = limits.tmp_bytes
        + match workspace {
            WorkspaceVolume::EmptyDir => limits.workspace_bytes,
            WorkspaceVolume::Claim(_) => 0,
        }
        + EPHEMERAL_OVERHEAD;
    let mut limit = BTreeMap::from([
        ("memory".to_owned(), bytes(limits.memory_bytes)),
        ("ephemeral-storage".to_owned(), bytes(ephemeral)),
    ]);
    let mut request = BTreeMap::from([
        (
            "memory".to_owned(),
            bytes((limits.memory_bytes / REQUEST_DIVISOR).max(1 << 20)),
        ),
        (
            "ephemeral-storage".to_owned(),
            bytes(ephemeral / REQUEST_DIVISOR),
        ),
    ]);
    if let Some(cpu) = limits.cpu_millicores {
        let cpu = u64::from(cpu);
        limit.insert("cpu".into(), millicores(cpu));
        request.insert("cpu".into(), millicores((cpu / REQUEST_DIVISOR).max(1)));
    }
    ResourceRequirements {
        limits: Some(limit),
        requests: Some(request),
        ..ResourceRequirements::default()
    }
}

fn empty_dir(size: u64, memory: bool) -> EmptyDirVolumeSource {
    EmptyDirVolumeSource {
        medium: memory.then(|| "Memory".to_owned()),
        size_limit: Some(bytes(size)),
    }
}

/// The sandbox pod. Everything about it assumes hostile code: non-root, no privileges, no
/// service-account token, no service links, a read-only root, writable only where the
/// sandbox's limits say (`/workspace`, `/tmp`, `/dev/shm`), and the pod is never restarted
/// (a sandbox that died is gone; its state would be stale).
pub fn sandbox_pod(config: &KubeConfig, plan: &PodPlan<'_>) -> Pod {
    let limits = &plan.spec.limits;
    let mut pod_labels = labels(plan.owner, plan.name);
    pod_labels.insert(LABEL_POOL.into(), plan.pool.as_str().into());
    if let WorkspaceSpec::Persistent { dir, .. } = &plan.spec.workspace {
        pod_labels.insert(LABEL_WORKSPACE.into(), workspace_digest(dir));
    }
    let workspace_source = match &plan.workspace {
        WorkspaceVolume::EmptyDir => Volume {
            name: "workspace".into(),
            empty_dir: Some(empty_dir(limits.workspace_bytes, false)),
            ..Volume::default()
        },
        WorkspaceVolume::Claim(claim) => Volume {
            name: "workspace".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim.clone(),
                read_only: Some(false),
            }),
            ..Volume::default()
        },
    };
    let volumes = vec![
        workspace_source,
        Volume {
            name: "tmp".into(),
            empty_dir: Some(empty_dir(limits.tmp_bytes, false)),
            ..Volume::default()
        },
        Volume {
            name: "shm".into(),
            empty_dir: Some(empty_dir(limits.shm_bytes, true)),
            ..Volume::default()
        },
        Volume {
            name: "agent-secret".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret_name(plan.name)),
                // Readable by the agent's group only (fsGroup), never by others.
                default_mode: Some(0o440),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        },
    ];
    let mount = |name: &str, path: &str, read_only: bool| VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: Some(read_only),
        ..VolumeMount::default()
    };
    let container = Container {
        name: CONTAINER.into(),
        image: Some(config.image.clone()),
        image_pull_policy: config.image_pull_policy.clone(),
        // The image's entrypoint is `tini -- sandpit`.
        args: Some(vec![
            "agent".into(),
            "--listen".into(),
            format!("0.0.0.0:{}", config.agent_port),
        ]),
        env: Some(vec![EnvVar {
            name: SECRET_FILE_ENV.into(),
            value: Some(format!("{SECRET_DIR}/{SECRET_KEY}")),
            ..EnvVar::default()
        }]),
        ports: Some(vec![ContainerPort {
            name: Some("agent".into()),
            container_port: i32::from(config.agent_port),
            protocol: Some("TCP".into()),
            ..ContainerPort::default()
        }]),
        // Ready once the agent listens; the server's own handshake proves the rest.
        readiness_probe: Some(Probe {
            tcp_socket: Some(TCPSocketAction {
                port: IntOrString::Int(i32::from(config.agent_port)),
                ..TCPSocketAction::default()
            }),
            period_seconds: Some(1),
            failure_threshold: Some(3),
            ..Probe::default()
        }),
        resources: Some(resources(limits, &plan.workspace)),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            privileged: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                add: None,
            }),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(vec![
            mount("workspace", sandpit_sandbox::spec::WORKSPACE_DIR, false),
            mount("tmp", "/tmp", false),
            mount("shm", "/dev/shm", false),
            mount("agent-secret", SECRET_DIR, true),
        ]),
        ..Container::default()
    };
    Pod {
        metadata: ObjectMeta {
            name: Some(plan.name.to_owned()),
            namespace: Some(config.namespace.clone()),
            labels: Some(pod_labels),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            containers: vec![container],
            restart_policy: Some("Never".into()),
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            service_account_name: config.service_account.clone(),
            runtime_class_name: config.runtime_class_name.clone(),
            hostname: Some(plan.spec.hostname.clone()),
            // Nothing in a sandbox needs a graceful stop; its node gets the room back sooner.
            termination_grace_period_seconds: Some(1),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(SANDBOX_UID),
                run_as_group: Some(SANDBOX_UID),
                fs_group: Some(SANDBOX_UID),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".into(),
                    localhost_profile: None,
                }),
                ..PodSecurityContext::default()
            }),
            volumes: Some(volumes),
            ..PodSpec::default()
        }),
        status: None,
    }
}

/// The Secret holding a pod's agent key. Owned by the pod (`pod_uid`), so the cluster's
/// garbage collector removes it with the pod even if this server dies before it can.
pub fn agent_secret(
    config: &KubeConfig,
    owner: &OwnerId,
    pod_name: &str,
    pod_uid: &str,
    key: &AgentKey,
) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(secret_name(pod_name)),
            namespace: Some(config.namespace.clone()),
            labels: Some(labels(owner, pod_name)),
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".into(),
                kind: "Pod".into(),
                name: pod_name.to_owned(),
                uid: pod_uid.to_owned(),
                // blockOwnerDeletion would need rights on pods/finalizers; not needed here.
                block_owner_deletion: None,
                controller: None,
            }]),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".into()),
        immutable: Some(true),
        data: Some(BTreeMap::from([(
            SECRET_KEY.to_owned(),
            ByteString(key.as_bytes().to_vec()),
        )])),
        ..Secret::default()
    }
}

/// A persistent workspace's claim: `workspace_size_mb`, one node at a time (a workspace has
/// one sandbox at a time). Not owned by any pod: it outlives them.
pub fn workspace_claim(config: &KubeConfig, owner: &OwnerId, dir: &Path) -> PersistentVolumeClaim {
    let labels = BTreeMap::from([
        (LABEL_NAME.to_owned(), "sandpit".to_owned()),
        (LABEL_COMPONENT.to_owned(), "workspace".to_owned()),
        (LABEL_OWNER.to_owned(), owner.as_str().to_owned()),
        (LABEL_WORKSPACE.to_owned(), workspace_digest(dir)),
    ]);
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(claim_name(dir)),
            namespace: Some(config.namespace.clone()),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: config.storage_class.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_owned(),
                    Quantity(format!("{}Mi", config.workspace_size_mb)),
                )])),
                limits: None,
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        status: None,
    }
}

/// What backs `/workspace` for `spec`: an `emptyDir`, unless it is persistent and the
/// workspaces live in claims.
pub fn workspace_volume(config: &KubeConfig, spec: &SandboxSpec) -> WorkspaceVolume {
    match (&spec.workspace, config.workspace) {
        (WorkspaceSpec::Persistent { dir, .. }, crate::config::WorkspaceStorage::Pvc) => {
            WorkspaceVolume::Claim(claim_name(dir))
        }
        _ => WorkspaceVolume::EmptyDir,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::WorkspaceStorage;

    const MIB: u64 = 1 << 20;

    fn limits() -> SandboxLimits {
        SandboxLimits {
            memory_bytes: 512 * MIB,
            pids: 64,
            cpu_millicores: Some(1500),
            workspace_bytes: 100 * MIB,
            tmp_bytes: 30 * MIB,
            shm_bytes: 10 * MIB,
        }
    }

    fn owner() -> OwnerId {
        OwnerId::parse("server-a").unwrap()
    }

    fn build(config: &KubeConfig, spec: &SandboxSpec) -> Pod {
        sandbox_pod(
            config,
            &PodPlan {
                name: "sandpit-sb-1",
                owner: &owner(),
                pool: Pool::Warm,
                spec,
                workspace: workspace_volume(config, spec),
            },
        )
    }

    fn pod() -> Pod {
        build(&KubeConfig::default(), &SandboxSpec::new(limits()))
    }

    fn container(pod: &Pod) -> &Container {
        &pod.spec.as_ref().unwrap().containers[0]
    }

    fn volume<'a>(pod: &'a Pod, name: &str) -> &'a Volume {
        let volumes = pod.spec.as_ref().unwrap().volumes.as_ref().unwrap();
        volumes.iter().find(|v| v.name == name).unwrap()
    }

    #[test]
    fn the_pod_carries_the_labels_the_chart_selects_on() {
        let pod = pod();
        let labels = pod.metadata.labels.as_ref().unwrap();
        assert_eq!(labels[LABEL_NAME], "sandpit");
        assert_eq!(labels[LABEL_COMPONENT], "sandbox");
        assert_eq!(labels[LABEL_OWNER], "server-a");
        assert_eq!(labels[LABEL_SANDBOX], "sandpit-sb-1");
        assert_eq!(labels[LABEL_POOL], "warm");
        assert_eq!(pod.metadata.namespace.as_deref(), Some("sandpit-sandboxes"));
    }

    #[test]
    fn the_pod_has_no_privileges_and_no_way_to_the_api() {
        let pod = pod();
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
        assert_eq!(spec.automount_service_account_token, Some(false));
        assert_eq!(spec.enable_service_links, Some(false));
        let psc = spec.security_context.as_ref().unwrap();
        assert_eq!(psc.run_as_non_root, Some(true));
        assert_eq!(psc.run_as_user, Some(10001));
        assert_eq!(psc.run_as_group, Some(10001));
        assert_eq!(psc.fs_group, Some(10001));
        assert_eq!(
            psc.seccomp_profile.as_ref().unwrap().type_,
            "RuntimeDefault"
        );
        let sc = container(&pod).security_context.as_ref().unwrap();
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(sc.privileged, Some(false));
        let caps = sc.capabilities.as_ref().unwrap();
        assert_eq!(caps.drop.as_deref(), Some(&["ALL".to_owned()][..]));
        assert!(caps.add.is_none());
    }

    #[test]
    fn limits_become_the_pods_resources() {
        let pod = pod();
        let res = container(&pod).resources.as_ref().unwrap();
        let limit = res.limits.as_ref().unwrap();
        let request = res.requests.as_ref().unwrap();
        assert_eq!(limit["memory"].0, (512 * MIB).to_string());
        assert_eq!(limit["cpu"].0, "1500m");
        // tmp + workspace (both emptyDirs on disk) + room for logs.
        assert_eq!(
            limit["ephemeral-storage"].0,
            (130 * MIB + EPHEMERAL_OVERHEAD).to_string()
        );
        assert_eq!(request["memory"].0, (128 * MIB).to_string());
        assert_eq!(request["cpu"].0, "375m");
        assert_eq!(
            volume(&pod, "tmp").empty_dir.as_ref().unwrap().size_limit,
            Some(bytes(30 * MIB))
        );
        let ws = volume(&pod, "workspace").empty_dir.as_ref().unwrap();
        assert_eq!(ws.size_limit, Some(bytes(100 * MIB)));
        assert_eq!(ws.medium, None);
        let shm = volume(&pod, "shm").empty_dir.as_ref().unwrap();
        assert_eq!(shm.medium.as_deref(), Some("Memory"));
        assert_eq!(shm.size_limit, Some(bytes(10 * MIB)));
    }

    #[test]
    fn no_cpu_limit_means_no_cpu_resources() {
        let spec = SandboxSpec::new(SandboxLimits {
            cpu_millicores: None,
            ..limits()
        });
        let pod = build(&KubeConfig::default(), &spec);
        let res = container(&pod).resources.as_ref().unwrap();
        assert!(!res.limits.as_ref().unwrap().contains_key("cpu"));
        assert!(!res.requests.as_ref().unwrap().contains_key("cpu"));
    }

    #[test]
    fn the_agent_listens_on_its_port_with_the_secret_mounted() {
        let config = KubeConfig {
            agent_port: 7171,
            image: "registry.example.com/sandpit:1".into(),
            image_pull_policy: Some("IfNotPresent".into()),
            ..KubeConfig::default()
        };
        let pod = build(&config, &SandboxSpec::new(limits()));
        let c = container(&pod);
        assert_eq!(c.image.as_deref(), Some("registry.example.com/sandpit:1"));
        assert_eq!(c.image_pull_policy.as_deref(), Some("IfNotPresent"));
        assert_eq!(
            c.args.as_deref().unwrap(),
            ["agent", "--listen", "0.0.0.0:7171"]
        );
        let probe = c
            .readiness_probe
            .as_ref()
            .unwrap()
            .tcp_socket
            .as_ref()
            .unwrap();
        assert_eq!(probe.port, IntOrString::Int(7171));
        let env = &c.env.as_ref().unwrap()[0];
        assert_eq!(env.name, SECRET_FILE_ENV);
        assert_eq!(env.value.as_deref(), Some("/run/secrets/sandpit-agent/key"));
        let secret = volume(&pod, "agent-secret").secret.as_ref().unwrap();
        assert_eq!(secret.secret_name.as_deref(), Some("sandpit-sb-1-agent"));
        let mounts = c.volume_mounts.as_ref().unwrap();
        let at = |path: &str| mounts.iter().find(|m| m.mount_path == path).unwrap();
        assert_eq!(at(SECRET_DIR).read_only, Some(true));
        assert_eq!(at("/workspace").read_only, Some(false));
        assert_eq!(at("/tmp").name, "tmp");
        assert_eq!(at("/dev/shm").name, "shm");
    }

    #[test]
    fn runtime_class_and_hostname_are_passed_on() {
        let config = KubeConfig {
            runtime_class_name: Some("gvisor".into()),
            service_account: Some("sandboxes".into()),
            ..KubeConfig::default()
        };
        let mut spec = SandboxSpec::new(limits());
        spec.hostname = "lab-1".into();
        let pod = build(&config, &spec);
        let pod_spec = pod.spec.as_ref().unwrap();
        assert_eq!(pod_spec.runtime_class_name.as_deref(), Some("gvisor"));
        assert_eq!(pod_spec.hostname.as_deref(), Some("lab-1"));
        assert_eq!(pod_spec.service_account_name.as_deref(), Some("sandboxes"));
        assert!(self::pod().spec.unwrap().runtime_class_name.is_none());
    }

    #[test]
    fn a_persistent_workspace_is_a_claim_named_from_its_dir() {
        let mut spec = SandboxSpec::new(limits());
        spec.workspace = WorkspaceSpec::Persistent {
            dir: "/var/lib/sandpit/ws/42".into(),
            max_files: 1000,
        };
        let pod = build(&KubeConfig::default(), &spec);
        let claim = volume(&pod, "workspace")
            .persistent_volume_claim
            .as_ref()
            .unwrap();
        assert_eq!(
            claim.claim_name,
            claim_name(Path::new("/var/lib/sandpit/ws/42"))
        );
        assert_ne!(
            claim.claim_name,
            claim_name(Path::new("/var/lib/sandpit/ws/43"))
        );
        // Not an emptyDir, so not ephemeral storage.
        let res = container(&pod).resources.as_ref().unwrap();
        assert_eq!(
            res.limits.as_ref().unwrap()["ephemeral-storage"].0,
            (30 * MIB + EPHEMERAL_OVERHEAD).to_string()
        );
        // With workspace = "pod" the files live in the pod: an emptyDir again.
        let in_pod = KubeConfig {
            workspace: WorkspaceStorage::Pod,
            ..KubeConfig::default()
        };
        assert_eq!(workspace_volume(&in_pod, &spec), WorkspaceVolume::EmptyDir);
    }

    #[test]
    fn the_claim_has_its_size_class_and_mode() {
        let config = KubeConfig {
            storage_class: Some("fast-ssd".into()),
            workspace_size_mb: 300,
            ..KubeConfig::default()
        };
        let claim = workspace_claim(&config, &owner(), Path::new("/w/1"));
        let spec = claim.spec.as_ref().unwrap();
        assert_eq!(spec.storage_class_name.as_deref(), Some("fast-ssd"));
        assert_eq!(spec.access_modes.as_deref().unwrap(), ["ReadWriteOnce"]);
        let requests = spec.resources.as_ref().unwrap().requests.as_ref().unwrap();
        assert_eq!(requests["storage"].0, "300Mi");
        assert_eq!(claim.metadata.name, Some(claim_name(Path::new("/w/1"))));
        assert_eq!(
            claim.metadata.labels.as_ref().unwrap()[LABEL_COMPONENT],
            "workspace"
        );
    }

    #[test]
    fn the_secret_holds_the_key_and_belongs_to_its_pod() {
        let key = AgentKey::from_bytes([7; 32]);
        let secret = agent_secret(
            &KubeConfig::default(),
            &owner(),
            "sandpit-sb-1",
            "uid-1",
            &key,
        );
        assert_eq!(secret.metadata.name.as_deref(), Some("sandpit-sb-1-agent"));
        assert_eq!(secret.data.as_ref().unwrap()[SECRET_KEY].0, vec![7; 32]);
        assert_eq!(secret.immutable, Some(true));
        let owner_ref = &secret.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner_ref.kind.as_str(), owner_ref.uid.as_str()),
            ("Pod", "uid-1")
        );
        assert_eq!(
            secret.metadata.labels.as_ref().unwrap()[LABEL_OWNER],
            "server-a"
        );
        // The key is in `data` only, base64 on the wire, never in a label or annotation.
        let json = serde_json::to_string(&secret).unwrap();
        assert!(json.contains("\"key\":\"BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\""));
    }

    #[test]
    fn what_a_pod_cannot_carry_is_refused() {
        let mut spec = SandboxSpec::new(limits());
        assert_eq!(check_spec(&spec), Ok(()));
        spec.hostname = "Not_A_Host".into();
        assert!(matches!(check_spec(&spec), Err(BuildError::Hostname(_))));
        let mut spec = SandboxSpec::new(limits());
        spec.root = RootSpec::Directory {
            path: "/srv/env".into(),
        };
        assert!(matches!(check_spec(&spec), Err(BuildError::Unsupported(_))));
    }

    #[test]
    fn owner_ids_must_be_label_values() {
        assert!(OwnerId::parse("sandpit-7d9f-abc.1").is_ok());
        for bad in ["", "-a", "a-", "a/b", &"a".repeat(64)] {
            assert!(OwnerId::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn sandbox_names_are_valid_pod_names() {
        let name = new_sandbox_name();
        assert!(name.len() <= 63 - "-agent".len());
        assert!(valid_hostname(&name));
        assert_ne!(name, new_sandbox_name());
    }
}
