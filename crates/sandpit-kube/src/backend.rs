//! The Kubernetes backend: each sandbox is a pod running the agent, reached over the agent's
//! authenticated TCP transport at the pod's IP. The server never execs into a pod; the pod's
//! key (a Secret mounted into it) is the only way in.
//!
//! A sandbox starts as: a Pod, then its Secret (owned by the pod, so the cluster's garbage
//! collector takes it with the pod), then — once the pod is Running and Ready — one TCP
//! connection that sends the [`AgentSetup`]. A warm pod has done all but the last step, so
//! taking one costs one round trip. Pod limits cannot change after creation, so only sandboxes
//! of the warm pods' shape ([`KubeOptions::warm_spec`]) can use them.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use sandpit_sandbox::client::AgentConnection;
use sandpit_sandbox::protocol::AgentSetup;
use sandpit_sandbox::{
    AgentEndpoint, AgentKey, Backend, BackendReport, RootSpec, Sandbox, SandboxError,
    SandboxLimits, SandboxSpec, Usage, WorkspaceSpec,
};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::cluster::{ApiError, Cluster};
use crate::config::KubeConfig;
use crate::objects::{self, OwnerId, Pool, SANDBOX_SELECTOR, WorkspaceVolume};
use crate::reconcile;
use crate::state::{PodState, pod_state};

/// Where to reach a pod's agent, from the pod's name, its IP and the agent port. The default
/// is `ip:port`; tests whose fake pods all share one address map each pod to its own port.
pub type AgentAddr = Arc<dyn Fn(&str, &str, u16) -> Option<SocketAddr> + Send + Sync>;

/// Longest pause between failed attempts to top up the warm pool.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How often the warm pool is looked at without being asked (to notice a failed refill).
const REFILL_TICK: Duration = Duration::from_secs(15);

/// What a [`KubeBackend`] is started with besides its config.
pub struct KubeOptions {
    /// The sandbox warm pods are made for. Only a request of the same shape (limits, host
    /// name, an ephemeral workspace, nothing else) takes one.
    pub warm_spec: SandboxSpec,
    /// Server instances known to be live, for the start-up [`KubeBackend::reconcile`]. `None`:
    /// at start-up only this instance's own left-overs (pods with its owner id) are deleted,
    /// which is safe when the caller does not know its peers.
    pub live_owners: Option<HashSet<String>>,
    /// The persistent workspaces of the sessions known to be live, for the same reconcile:
    /// a pod on one of them stays for whoever takes its session over (see
    /// [`crate::reconcile`]). Empty: only the owner decides.
    pub live_workspaces: Vec<PathBuf>,
    /// See [`AgentAddr`]; `None`: the pod's IP.
    pub agent_addr: Option<AgentAddr>,
}

impl Default for KubeOptions {
    fn default() -> Self {
        Self {
            warm_spec: SandboxSpec::new(SandboxLimits::default()),
            live_owners: None,
            live_workspaces: Vec::new(),
            agent_addr: None,
        }
    }
}

/// The part of a spec a pod is fixed to. `None`: the spec can never use a warm pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Shape {
    limits: SandboxLimits,
    hostname: String,
}

pub(crate) fn shape(spec: &SandboxSpec) -> Option<Shape> {
    let plain = matches!(spec.root, RootSpec::Host)
        && matches!(spec.workspace, WorkspaceSpec::Ephemeral)
        && spec.volumes.is_empty()
        && spec.containers.is_none();
    plain.then(|| Shape {
        limits: spec.limits,
        hostname: spec.hostname.clone(),
    })
}

/// A ready pod whose agent awaits its set-up.
struct StartedPod {
    name: String,
    addr: SocketAddr,
    key: AgentKey,
    /// On a persistent workspace: another server can adopt it ([`KubeBackend::adopt_kube`]).
    on_workspace: bool,
}

struct Inner {
    config: KubeConfig,
    owner: OwnerId,
    cluster: Cluster,
    warm_spec: SandboxSpec,
    warm_shape: Option<Shape>,
    agent_addr: AgentAddr,
    warm: Mutex<Vec<StartedPod>>,
    /// Warm pods being started.
    warming: AtomicUsize,
    /// Every pod this process made and has not deleted: what reconciling keeps of ours.
    held: Mutex<HashSet<String>>,
    /// The isolation features the last agent reported, for [`Backend::report`].
    features: Mutex<Vec<String>>,
    wake: Notify,
    closed: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Single inserts and removes: a panic elsewhere cannot leave these inconsistent.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub struct KubeBackend {
    inner: Arc<Inner>,
    refill: Option<JoinHandle<()>>,
}

/// What [`KubeBackend::reconcile`] deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconciled {
    pub deleted: Vec<String>,
}

impl KubeBackend {
    /// Connects to the API server (one cheap call proves it answers and allows listing
    /// pods), reconciles (see [`KubeOptions::live_owners`]), and starts topping up the warm
    /// pool in the background. `instance_id` is this server's owner label.
    pub async fn start(
        config: KubeConfig,
        instance_id: &str,
        options: KubeOptions,
    ) -> Result<Self, SandboxError> {
        let owner =
            OwnerId::parse(instance_id).map_err(|e| SandboxError::Unavailable(e.to_string()))?;
        let cluster = Cluster::connect(&config).await?;
        let warm_shape = shape(&options.warm_spec);
        if config.warm_pods > 0 {
            objects::check_spec(&options.warm_spec)
                .map_err(|e| SandboxError::Unavailable(format!("the warm pods' spec: {e}")))?;
        }
        let inner = Arc::new(Inner {
            agent_addr: options.agent_addr.unwrap_or_else(|| Arc::new(pod_ip_addr)),
            config,
            owner,
            cluster,
            warm_spec: options.warm_spec,
            warm_shape,
            warm: Mutex::new(Vec::new()),
            warming: AtomicUsize::new(0),
            held: Mutex::new(HashSet::new()),
            features: Mutex::new(Vec::new()),
            wake: Notify::new(),
            closed: AtomicBool::new(false),
        });
        let mut backend = Self {
            inner,
            refill: None,
        };
        backend.check().await?;
        let workspaces = &options.live_workspaces;
        match &options.live_owners {
            Some(live) => backend.reconcile_with(live, workspaces, true).await?,
            // Peers unknown: every other owner counts as live.
            None => {
                backend
                    .reconcile_with(&HashSet::new(), workspaces, false)
                    .await?
            }
        };
        if backend.inner.config.warm_pods > 0 && backend.inner.warm_shape.is_some() {
            let inner = backend.inner.clone();
            backend.refill = Some(tokio::spawn(refill(inner)));
        }
        Ok(backend)
    }

    /// A cheap call for `/readyz`: lists at most one sandbox pod.
    pub async fn check(&self) -> Result<(), SandboxError> {
        self.inner
            .cluster
            .list_pods(SANDBOX_SELECTOR, Some(1))
            .await?;
        Ok(())
    }

    /// Deletes the sandbox pods nobody can drive (the rule is in [`crate::reconcile`]), with
    /// their Secrets. `live_owners`: the instance ids of the servers that are up;
    /// `live_workspaces`: the persistent workspaces of the sessions that are live.
    pub async fn reconcile(
        &self,
        live_owners: &HashSet<String>,
        live_workspaces: &[PathBuf],
    ) -> Result<Reconciled, SandboxError> {
        self.reconcile_with(live_owners, live_workspaces, true)
            .await
    }

    /// With `peers_known` false, pods of other owners are all kept (only our own left-overs
    /// go), whatever `live_owners` says.
    async fn reconcile_with(
        &self,
        live_owners: &HashSet<String>,
        live_workspaces: &[PathBuf],
        peers_known: bool,
    ) -> Result<Reconciled, SandboxError> {
        let workspaces: HashSet<String> = live_workspaces
            .iter()
            .map(|dir| objects::workspace_digest(dir))
            .collect();
        let cluster = &self.inner.cluster;
        let pods = cluster.list_pods(SANDBOX_SELECTOR, None).await?;
        let held = lock(&self.inner.held).clone();
        let live: HashSet<String> = if peers_known {
            live_owners.clone()
        } else {
            pods.iter()
                .filter_map(|p| {
                    p.metadata
                        .labels
                        .as_ref()?
                        .get(objects::LABEL_OWNER)
                        .cloned()
                })
                .filter(|owner| owner != self.inner.owner.as_str())
                .collect()
        };
        let mut deleted = Vec::new();
        for name in reconcile::orphans(&pods, &self.inner.owner, &live, &held, &workspaces) {
            cluster.delete_pod(name).await?;
            cluster.delete_secret(&objects::secret_name(name)).await?;
            tracing::info!(pod = name, "deleted an orphaned sandbox pod");
            deleted.push(name.to_owned());
        }
        Ok(Reconciled { deleted })
    }

    /// Warm pods ready to be taken.
    pub fn warm_ready(&self) -> usize {
        lock(&self.inner.warm).len()
    }

    /// The instance id this backend labels its pods with.
    pub fn owner(&self) -> &OwnerId {
        &self.inner.owner
    }

    /// [`Backend::adopt`], returning the Kubernetes type.
    pub async fn adopt_kube(
        &self,
        spec: &SandboxSpec,
    ) -> Result<Option<KubeSandbox>, SandboxError> {
        let WorkspaceSpec::Persistent { dir, .. } = &spec.workspace else {
            return Ok(None);
        };
        let inner = &self.inner;
        let pods = inner
            .cluster
            .list_pods(&objects::workspace_selector(dir), None)
            .await?;
        let mut adopted = None;
        for pod in pods {
            let Some(name) = pod.metadata.name.clone() else {
                continue;
            };
            if lock(&inner.held).contains(&name) {
                // Ours already (a sandbox of this process): not left by anyone.
                continue;
            }
            if adopted.is_none() {
                match inner.take_over(&pod, &name).await {
                    Ok(sandbox) => {
                        tracing::info!(pod = %name, "adopted the sandbox pod of a server that is gone");
                        adopted = Some(sandbox);
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!(pod = %name, error = %e, "a left sandbox pod could not be adopted; deleting it");
                    }
                }
            }
            // One sandbox per workspace: whatever else runs on it goes, so the claim is free.
            inner.delete_checked(&name).await?;
        }
        Ok(adopted)
    }

    /// [`Backend::create`], returning the Kubernetes type.
    pub async fn create_kube(&self, spec: &SandboxSpec) -> Result<KubeSandbox, SandboxError> {
        let inner = &self.inner;
        objects::check_spec(spec).map_err(|e| SandboxError::Setup(e.to_string()))?;
        let setup = agent_setup(spec);
        if inner.warm_shape.is_some() && shape(spec) == inner.warm_shape {
            loop {
                let Some(pod) = lock(&inner.warm).pop() else {
                    break;
                };
                inner.wake.notify_one();
                match inner.take_warm(&pod, &setup).await {
                    Ok(sandbox) => return Ok(sandbox),
                    Err(e) => {
                        tracing::warn!(pod = %pod.name, error = %e, "a warm pod was unusable; deleting it");
                        inner.delete(&pod.name).await;
                    }
                }
            }
        }
        let pod = inner.start_pod(spec, Pool::Direct).await?;
        match inner.connect(&pod, &setup).await {
            Ok(sandbox) => Ok(sandbox),
            Err(e) => {
                inner.delete(&pod.name).await;
                Err(e)
            }
        }
    }
}

fn pod_ip_addr(_name: &str, ip: &str, port: u16) -> Option<SocketAddr> {
    ip.parse::<IpAddr>()
        .ok()
        .map(|ip| SocketAddr::new(ip, port))
}

/// The set-up of an agent in a pod: the pod is the box (the kubelet enforces its limits,
/// there is no cgroup of the server's to join), its root is the image's.
fn agent_setup(spec: &SandboxSpec) -> AgentSetup {
    AgentSetup {
        root: RootSpec::Host,
        limits: spec.limits,
        hostname: spec.hostname.clone(),
        cgroup_procs: Vec::new(),
        oom_events: None,
        uid: objects::SANDBOX_UID as u32,
        gid: objects::SANDBOX_UID as u32,
        seccomp: true,
        workspace_device: None,
        volumes: Vec::new(),
        containers: None,
    }
}

impl Inner {
    /// Connects to the agent of a pod another server set up, with the key from its Secret,
    /// and holds the pod from now on. The agent serves one connection at a time, so while
    /// its previous server still holds a connection (alive after all, or its host gone
    /// without closing it) this times out, and the caller deletes the pod: that is what
    /// keeps two servers from driving one box.
    async fn take_over(
        self: &Arc<Self>,
        pod: &k8s_openapi::api::core::v1::Pod,
        name: &str,
    ) -> Result<KubeSandbox, SandboxError> {
        let ip = match pod_state(pod) {
            PodState::Ready { ip } => ip,
            PodState::Failed { why } => {
                return Err(SandboxError::Setup(format!("the pod failed: {why}")));
            }
            PodState::Starting { .. } => {
                // Its server died before setting it up: nobody will.
                return Err(SandboxError::Setup("the pod never became ready".into()));
            }
        };
        let secret = self
            .cluster
            .get_secret(&objects::secret_name(name))
            .await?
            .ok_or_else(|| SandboxError::Setup("its agent secret is gone".into()))?;
        let key = secret
            .data
            .as_ref()
            .and_then(|data| data.get(objects::SECRET_KEY))
            .and_then(|bytes| {
                <[u8; sandpit_sandbox::transport::KEY_LEN]>::try_from(bytes.0.as_slice()).ok()
            })
            .map(AgentKey::from_bytes)
            .ok_or_else(|| SandboxError::Setup("its agent secret holds no key".into()))?;
        let addr = (self.agent_addr)(name, &ip, self.config.agent_port).ok_or_else(|| {
            SandboxError::Setup(format!("sandbox pod {name} has no usable address ({ip:?})"))
        })?;
        lock(&self.held).insert(name.to_owned());
        let pod = StartedPod {
            name: name.to_owned(),
            addr,
            key,
            on_workspace: true,
        };
        // A set-up agent takes none; one still awaiting it was never handed to a session.
        self.open(&pod, None, self.config.api_timeout()).await
    }

    /// Deletes the pods on the workspace at `dir` (whoever made them) and its claim.
    async fn remove_workspace(&self, dir: &Path) -> Result<(), ApiError> {
        let pods = self
            .cluster
            .list_pods(&objects::workspace_selector(dir), None)
            .await?;
        for name in pods.iter().filter_map(|p| p.metadata.name.as_deref()) {
            self.delete_checked(name).await?;
            tracing::info!(pod = name, "deleted the sandbox pod of an ended session");
        }
        self.cluster.delete_claim(&objects::claim_name(dir)).await
    }

    /// Makes a pod (and its Secret, and its claim) and waits until it is ready.
    async fn start_pod(&self, spec: &SandboxSpec, pool: Pool) -> Result<StartedPod, SandboxError> {
        let name = objects::new_sandbox_name();
        // Held before it exists, so a reconcile meanwhile never takes it for an orphan.
        lock(&self.held).insert(name.clone());
        match self.start_named(&name, spec, pool).await {
            Ok(pod) => Ok(pod),
            Err(e) => {
                self.delete(&name).await;
                Err(e)
            }
        }
    }

    async fn start_named(
        &self,
        name: &str,
        spec: &SandboxSpec,
        pool: Pool,
    ) -> Result<StartedPod, SandboxError> {
        let workspace = objects::workspace_volume(&self.config, spec);
        if let (WorkspaceVolume::Claim(_), WorkspaceSpec::Persistent { dir, .. }) =
            (&workspace, &spec.workspace)
        {
            let claim = objects::workspace_claim(&self.config, &self.owner, dir);
            self.cluster.ensure_claim(&claim).await?;
        }
        let pod = objects::sandbox_pod(
            &self.config,
            &objects::PodPlan {
                name,
                owner: &self.owner,
                pool,
                spec,
                workspace,
            },
        );
        let created = self.cluster.create_pod(&pod).await?;
        let uid = created.metadata.uid.clone().unwrap_or_default();
        let key = AgentKey::generate();
        let secret = objects::agent_secret(&self.config, &self.owner, name, &uid, &key);
        self.cluster.create_secret(&secret).await?;
        let version = created
            .metadata
            .resource_version
            .clone()
            .unwrap_or_default();
        let ip = self.wait_ready(name, version).await?;
        let addr = (self.agent_addr)(name, &ip, self.config.agent_port).ok_or_else(|| {
            SandboxError::Setup(format!("sandbox pod {name} has no usable address ({ip:?})"))
        })?;
        Ok(StartedPod {
            name: name.to_owned(),
            addr,
            key,
            on_workspace: matches!(spec.workspace, WorkspaceSpec::Persistent { .. }),
        })
    }

    /// Follows the pod (a get, then a watch from its version, again after the watch ends)
    /// until it is ready, fails, or `ready_timeout` passes.
    async fn wait_ready(&self, name: &str, mut version: String) -> Result<String, SandboxError> {
        let timeout = self.config.ready_timeout();
        let deadline = tokio::time::Instant::now() + timeout;
        let mut why: Option<String> = None;
        let judge = |pod: Option<&k8s_openapi::api::core::v1::Pod>,
                     why: &mut Option<String>|
         -> Option<Result<String, SandboxError>> {
            let Some(pod) = pod else {
                return Some(Err(SandboxError::Setup(format!(
                    "sandbox pod {name} was deleted while it started"
                ))));
            };
            match pod_state(pod) {
                PodState::Ready { ip } => Some(Ok(ip)),
                PodState::Failed { why } => Some(Err(SandboxError::Setup(format!(
                    "sandbox pod {name} failed: {why}"
                )))),
                PodState::Starting { why: now } => {
                    if now.is_some() {
                        *why = now;
                    }
                    None
                }
            }
        };
        let follow = async {
            loop {
                let pod = self.cluster.get_pod(name).await?;
                if let Some(done) = judge(pod.as_ref(), &mut why) {
                    return done;
                }
                if let Some(v) = pod.and_then(|p| p.metadata.resource_version) {
                    version = v;
                }
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                let mut events = self.cluster.watch_pod(name, &version, left).await?;
                while let Some(event) = events.next().await {
                    match event {
                        Ok(pod) => {
                            if let Some(done) = judge(pod.as_ref(), &mut why) {
                                return done;
                            }
                            if let Some(v) = pod.and_then(|p| p.metadata.resource_version) {
                                version = v;
                            }
                        }
                        Err(e @ ApiError::Unreachable(_)) => return Err(e.into()),
                        // An expired version (410) or a broken stream: start over with a get.
                        Err(e) => {
                            tracing::debug!(pod = name, error = %e, "watch ended; reading the pod again");
                            break;
                        }
                    }
                }
                // A watch that ends at once must not turn this into a busy loop.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        match tokio::time::timeout_at(deadline, follow).await {
            Ok(result) => result,
            Err(_) => Err(SandboxError::Unavailable(format!(
                "sandbox pod {name} was not ready within {} ms ({})",
                timeout.as_millis(),
                why.as_deref().unwrap_or("still starting")
            ))),
        }
    }

    /// A warm pod, if it is still ready, connected and set up.
    async fn take_warm(
        self: &Arc<Self>,
        pod: &StartedPod,
        setup: &AgentSetup,
    ) -> Result<KubeSandbox, SandboxError> {
        let current = self.cluster.get_pod(&pod.name).await?;
        match current.as_ref().map(pod_state) {
            Some(PodState::Ready { .. }) => {}
            Some(PodState::Failed { why }) => {
                return Err(SandboxError::Setup(format!("the warm pod failed: {why}")));
            }
            Some(PodState::Starting { .. }) => {
                return Err(SandboxError::Setup(
                    "the warm pod is no longer ready".into(),
                ));
            }
            None => return Err(SandboxError::Setup("the warm pod is gone".into())),
        }
        self.connect(pod, setup).await
    }

    async fn connect(
        self: &Arc<Self>,
        pod: &StartedPod,
        setup: &AgentSetup,
    ) -> Result<KubeSandbox, SandboxError> {
        self.open(pod, Some(setup), self.config.ready_timeout())
            .await
    }

    /// One connection to a pod's agent (sending `setup` to a new one), as a sandbox.
    async fn open(
        self: &Arc<Self>,
        pod: &StartedPod,
        setup: Option<&AgentSetup>,
        timeout: Duration,
    ) -> Result<KubeSandbox, SandboxError> {
        let endpoint = AgentEndpoint {
            addr: pod.addr,
            key: pod.key.clone(),
        };
        let (conn, features) = AgentConnection::connect_tcp(&endpoint, setup, timeout).await?;
        *lock(&self.features) = features.clone();
        Ok(KubeSandbox {
            id: pod.name.clone(),
            conn,
            endpoint,
            features,
            on_workspace: pod.on_workspace,
            inner: self.clone(),
            destroyed: AtomicBool::new(false),
        })
    }

    /// Deletes a pod and its Secret, best effort (logged), and forgets it.
    async fn delete(&self, name: &str) {
        if let Err(e) = self.delete_checked(name).await {
            tracing::warn!(pod = name, error = %e, "deleting a sandbox pod");
        }
    }

    async fn delete_checked(&self, name: &str) -> Result<(), ApiError> {
        self.cluster.delete_pod(name).await?;
        self.cluster
            .delete_secret(&objects::secret_name(name))
            .await?;
        lock(&self.held).remove(name);
        Ok(())
    }
}

/// Keeps `warm_pods` ready pods, one started at a time, backing off while starting fails.
async fn refill(inner: Arc<Inner>) {
    let mut backoff = Duration::from_millis(500);
    loop {
        if inner.closed.load(Ordering::SeqCst) {
            return;
        }
        let wake = inner.wake.notified();
        let have = lock(&inner.warm).len() + inner.warming.load(Ordering::SeqCst);
        if have < inner.config.warm_pods {
            inner.warming.fetch_add(1, Ordering::SeqCst);
            let started = inner.start_pod(&inner.warm_spec, Pool::Warm).await;
            inner.warming.fetch_sub(1, Ordering::SeqCst);
            match started {
                Ok(pod) if !inner.closed.load(Ordering::SeqCst) => {
                    lock(&inner.warm).push(pod);
                    backoff = Duration::from_millis(500);
                }
                Ok(pod) => inner.delete(&pod.name).await,
                Err(e) => {
                    tracing::warn!(error = %e, "warm pool: starting a pod failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
            continue;
        }
        tokio::select! {
            () = wake => {}
            () = tokio::time::sleep(REFILL_TICK) => {}
        }
    }
}

#[async_trait]
impl Backend for KubeBackend {
    fn report(&self) -> BackendReport {
        let config = &self.inner.config;
        BackendReport {
            backend: "kubernetes",
            features: lock(&self.inner.features).clone(),
            details: vec![
                ("namespace".into(), config.namespace.clone()),
                (
                    "runtime_class".into(),
                    config
                        .runtime_class_name
                        .clone()
                        .unwrap_or_else(|| "(cluster default)".into()),
                ),
                ("image".into(), config.image.clone()),
                ("warm_pods".into(), config.warm_pods.to_string()),
            ],
        }
    }

    async fn create(&self, spec: &SandboxSpec) -> Result<Box<dyn Sandbox>, SandboxError> {
        Ok(Box::new(self.create_kube(spec).await?))
    }

    /// The pod a server that is gone left on the workspace, if its agent answers with the
    /// key in its Secret; any other pod on the workspace is deleted.
    async fn adopt(&self, spec: &SandboxSpec) -> Result<Option<Box<dyn Sandbox>>, SandboxError> {
        Ok(self
            .adopt_kube(spec)
            .await?
            .map(|s| Box::new(s) as Box<dyn Sandbox>))
    }

    /// With claims, whether the claim exists; with `workspace = "pod"` the files live in
    /// the pod only, so whether a pod runs on it.
    async fn has_workspace(&self, dir: &Path) -> Result<bool, SandboxError> {
        let cluster = &self.inner.cluster;
        Ok(match self.inner.config.workspace {
            crate::config::WorkspaceStorage::Pvc => {
                cluster.has_claim(&objects::claim_name(dir)).await?
            }
            crate::config::WorkspaceStorage::Pod => !cluster
                .list_pods(&objects::workspace_selector(dir), Some(1))
                .await?
                .is_empty(),
        })
    }

    async fn remove_workspace(&self, dir: &Path) -> Result<(), SandboxError> {
        Ok(self.inner.remove_workspace(dir).await?)
    }

    /// Stops the warm pool and deletes every pod this process holds: once it ends, nobody
    /// could drive them.
    async fn shutdown(&self) -> Result<(), SandboxError> {
        self.inner.closed.store(true, Ordering::SeqCst);
        if let Some(refill) = &self.refill {
            refill.abort();
        }
        lock(&self.inner.warm).clear();
        let held: Vec<String> = lock(&self.inner.held).iter().cloned().collect();
        let mut first_error = None;
        for name in held {
            if let Err(e) = self.inner.delete_checked(&name).await {
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }
}

impl Drop for KubeBackend {
    fn drop(&mut self) {
        self.inner.closed.store(true, Ordering::SeqCst);
        if let Some(refill) = &self.refill {
            refill.abort();
        }
    }
}

/// One sandbox pod and the connection to its agent.
pub struct KubeSandbox {
    id: String,
    conn: AgentConnection,
    endpoint: AgentEndpoint,
    features: Vec<String>,
    /// See [`StartedPod::on_workspace`]: what [`Sandbox::leave`] leaves running.
    on_workspace: bool,
    inner: Arc<Inner>,
    destroyed: AtomicBool,
}

impl KubeSandbox {
    /// Where the agent listens and its key: a later [`AgentConnection::connect_tcp`] without
    /// a set-up reaches the box again once this connection has ended.
    pub fn agent_endpoint(&self) -> &AgentEndpoint {
        &self.endpoint
    }

    /// The isolation features the agent reported.
    pub fn features(&self) -> &[String] {
        &self.features
    }
}

#[async_trait]
impl Sandbox for KubeSandbox {
    fn id(&self) -> &str {
        &self.id
    }

    fn agent(&self) -> &AgentConnection {
        &self.conn
    }

    /// Not measured: reading a pod's usage needs the metrics API, which the server's Role
    /// does not grant.
    async fn usage(&self) -> Result<Usage, SandboxError> {
        Err(SandboxError::Unavailable(
            "the Kubernetes backend does not measure sandbox usage".into(),
        ))
    }

    /// Deletes the pod and its Secret (a persistent workspace's claim stays for the session's
    /// next pod). Idempotent; after a failure (API server unreachable) a retry tries again.
    async fn destroy(&self) -> Result<(), SandboxError> {
        if self.destroyed.load(Ordering::SeqCst) {
            return Ok(());
        }
        self.conn.close();
        self.inner.delete_checked(&self.id).await?;
        self.destroyed.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// A pod on a persistent workspace stays for the replica that takes its session over:
    /// the connection ends (the agent keeps what it holds) and this process forgets it.
    async fn leave(&self) -> Result<(), SandboxError> {
        if self.destroyed.load(Ordering::SeqCst) {
            return Ok(());
        }
        if !self.on_workspace {
            return self.destroy().await;
        }
        self.conn.close();
        lock(&self.inner.held).remove(&self.id);
        // Not destroyed, but never to be deleted by this process (its drop included).
        self.destroyed.store(true, Ordering::SeqCst);
        tracing::info!(pod = %self.id, "left a sandbox pod for the replica that takes its session over");
        Ok(())
    }
}

impl Drop for KubeSandbox {
    fn drop(&mut self) {
        if self.destroyed.load(Ordering::SeqCst) {
            return;
        }
        // Dropped without destroy (a cancelled request): the pod must not outlive it.
        let inner = self.inner.clone();
        let id = self.id.clone();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move { inner.delete(&id).await });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_ephemeral_specs_of_the_same_limits_share_a_shape() {
        let base = SandboxSpec::new(SandboxLimits::default());
        assert!(shape(&base).is_some());
        assert_eq!(shape(&base), shape(&base.clone()));
        let mut bigger = base.clone();
        bigger.limits.memory_bytes *= 2;
        assert_ne!(shape(&base), shape(&bigger));
        let mut persistent = base.clone();
        persistent.workspace = WorkspaceSpec::Persistent {
            dir: "/w".into(),
            max_files: 10,
        };
        assert_eq!(shape(&persistent), None);
        let mut renamed = base.clone();
        renamed.hostname = "other".into();
        assert_ne!(shape(&base), shape(&renamed));
    }

    #[test]
    fn the_default_agent_address_is_the_pod_ip() {
        assert_eq!(
            pod_ip_addr("p", "10.0.0.7", 7070),
            Some("10.0.0.7:7070".parse().unwrap_or_else(|_| unreachable!()))
        );
        assert_eq!(
            pod_ip_addr("p", "fd00::7", 7070),
            Some(SocketAddr::new(
                "fd00::7".parse().unwrap_or_else(|_| unreachable!()),
                7070
            ))
        );
        assert_eq!(pod_ip_addr("p", "", 7070), None);
    }
}
