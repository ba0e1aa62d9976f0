//! Learners' sessions: a sandbox with a persistent workspace, owned by a user, with a time to
//! live. The store holds the rows (so sessions survive restarts); this service holds the live
//! sandboxes, starts one on demand for a live session that has none (after a restart, or after
//! its sandbox died), ends sessions (by the user, the reaper, or a failure) and reconciles disk
//! and store at start-up.

pub mod files;
pub mod model;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use hmac::{Hmac, Mac};
use sandpit_sandbox::{
    Hold, ProcessLimits, ProcessSpec, Sandbox, SandboxError, SandboxLimits, SandboxSpec, StdioMode,
    WorkspacePath, WorkspaceSpec,
};
use sandpit_store::{EndReason, NewSession, Session, SessionStatus, Store, StoreError};
use uuid::Uuid;

use sandpit_labs::{Catalog, Lab, manifest::LabLimits};

use crate::config::SessionsConfig;
use crate::error::ApiError;
use crate::sandbox::Sandboxes;
use crate::terminal::TerminalHub;
use model::SessionView;

/// The host's system directories, read-only.
pub const DEFAULT_ENVIRONMENT: &str = "default";
/// The name a session's terminal shell is held under in its sandbox's agent.
const TERMINAL_HOLD: &str = "terminal";
/// Every environment a session or a lab may name.
pub const ENVIRONMENTS: &[&str] = &[DEFAULT_ENVIRONMENT, crate::docker::ENVIRONMENT];

/// Files a new workspace of an environment starts with (and `ensure-default` restores).
pub fn default_files(environment: &str) -> &'static [(&'static str, &'static str)] {
    match environment {
        DEFAULT_ENVIRONMENT => &[(
            "README.md",
            "# Your sandpit workspace\n\n\
             Files here are kept for the life of the session, across reconnects and server \
             restarts. The terminal starts in this directory; `python3`, `node`, `gcc` and \
             friends are installed when the server has them.\n",
        )],
        crate::docker::ENVIRONMENT => &[
            (
                "README.md",
                "# Your sandpit docker workspace\n\n\
                 This session has a container engine of its own: `docker build`, `docker run`, \
                 `docker images`, `docker ps`, `docker logs` and `docker exec` work in the \
                 terminal (it is Podman, rootless, inside this session's sandbox). Base images \
                 are the ones `docker images` lists; no registry is reachable. A container's \
                 ports are this session's own: `docker run -d -p 8080:8080 app`, then \
                 `curl localhost:8080`. Ending the session removes every container and image.\n",
            ),
            (
                "Dockerfile",
                "FROM python:3.11-slim\n\
                 WORKDIR /app\n\
                 COPY app.py .\n\
                 EXPOSE 8080\n\
                 CMD [\"python\", \"app.py\"]\n",
            ),
            (
                "app.py",
                "from http.server import BaseHTTPRequestHandler, HTTPServer\n\n\n\
                 class Hello(BaseHTTPRequestHandler):\n\
                 \x20   def do_GET(self):\n\
                 \x20       self.send_response(200)\n\
                 \x20       self.end_headers()\n\
                 \x20       self.wfile.write(b\"hello from a container\\n\")\n\n\n\
                 HTTPServer((\"0.0.0.0\", 8080), Hello).serve_forever()\n",
            ),
        ],
        _ => &[],
    }
}

pub struct Sessions {
    config: SessionsConfig,
    store: Arc<dyn Store>,
    sandboxes: Arc<Sandboxes>,
    /// `data_dir/workspaces`: one directory per live session.
    workspaces: PathBuf,
    live: Mutex<HashMap<Uuid, Arc<Live>>>,
    reaped: AtomicU64,
    /// Key of the read-only share tokens (derived from the server's signing secret).
    share_key: [u8; 32],
    /// The labs, for a lab session's limits and starter files.
    labs: Arc<Catalog>,
    /// The docker environment (whether it works here, and what its boxes get).
    docker: Arc<crate::docker::Docker>,
    /// Which replica holds each session's sandbox.
    cluster: Arc<crate::cluster::Cluster>,
}

/// What the sessions service works with.
pub struct SessionsDeps {
    pub store: Arc<dyn Store>,
    pub sandboxes: Arc<Sandboxes>,
    /// Where workspaces live (`cluster.workspaces_dir`, else `data_dir/workspaces`).
    pub workspaces: PathBuf,
    pub labs: Arc<Catalog>,
    pub docker: Arc<crate::docker::Docker>,
    pub cluster: Arc<crate::cluster::Cluster>,
}

/// A session this server process has touched: its sandbox once started. The async mutex is
/// held while a sandbox starts, so concurrent requests wait for the same one.
#[derive(Default)]
struct Live {
    sandbox: tokio::sync::Mutex<Option<Arc<dyn Sandbox>>>,
    /// The session's terminal (one login shell shared by every attached client).
    terminal: tokio::sync::Mutex<Option<Arc<TerminalHub>>>,
    ended: AtomicBool,
}

/// Counters for `/readyz` and `/metrics`.
#[derive(Debug, Clone, Copy, serde::Serialize, utoipa::ToSchema)]
pub struct SessionCounts {
    /// Sessions with a running sandbox in this process.
    pub running: usize,
    /// Sessions ended by the reaper since start.
    pub reaped: u64,
    /// WebSocket clients attached to terminals.
    pub terminals_attached: usize,
}

fn ended() -> ApiError {
    ApiError::Refused {
        code: "session_ended",
        message: "this session has ended; start a new one".into(),
    }
}

fn not_found() -> ApiError {
    ApiError::NotFound("no such session".into())
}

pub(crate) fn sandbox_error(e: SandboxError) -> ApiError {
    match e {
        SandboxError::Unavailable(why) => ApiError::Unavailable {
            code: "sandbox_unavailable",
            message: format!("sandboxes cannot start on this server: {why}"),
            retry_after: None,
        },
        other => ApiError::internal(other),
    }
}

impl Sessions {
    pub fn new(config: SessionsConfig, deps: SessionsDeps, secret: &[u8]) -> Self {
        use sha2::{Digest, Sha256};
        let share_key = Sha256::new()
            .chain_update(b"sandpit terminal share v1\0")
            .chain_update(secret)
            .finalize()
            .into();
        Self {
            share_key,
            config,
            store: deps.store,
            sandboxes: deps.sandboxes,
            workspaces: deps.workspaces,
            live: Mutex::new(HashMap::new()),
            reaped: AtomicU64::new(0),
            labs: deps.labs,
            docker: deps.docker,
            cluster: deps.cluster,
        }
    }

    pub fn config(&self) -> &SessionsConfig {
        &self.config
    }

    fn live_map(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Arc<Live>>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn workspace_dir(&self, id: Uuid) -> PathBuf {
        workspace_dir(&self.workspaces, id)
    }

    fn spec(&self, session: &Session) -> SandboxSpec {
        let lab = session.lab.as_deref().and_then(|slug| self.labs.get(slug));
        let spec = SandboxSpec {
            workspace: WorkspaceSpec::Persistent {
                dir: self.workspace_dir(session.id),
                max_files: self.config.max_files,
            },
            ..SandboxSpec::new(sandbox_limits(&self.config, lab.map(|l| &l.limits)))
        };
        if session.environment == crate::docker::ENVIRONMENT {
            self.docker.spec(spec)
        } else {
            spec
        }
    }

    /// What a session's processes get from its environment (a docker session's engine: its
    /// variables, and files as large as its disk).
    pub fn apply_environment(&self, session: &Session, spec: &mut ProcessSpec) {
        if session.environment == crate::docker::ENVIRONMENT {
            self.docker.prepare_process(spec);
        }
    }

    /// A TTL from a request: the default when absent, else 60 s .. the maximum.
    pub fn ttl(&self, requested: Option<u64>) -> Result<chrono::Duration, ApiError> {
        let secs = requested.unwrap_or(self.config.default_ttl_seconds);
        if !(60..=self.config.max_ttl_seconds).contains(&secs) {
            return Err(ApiError::Validation {
                field: "ttl_seconds",
                message: format!(
                    "must be between 60 and {} seconds",
                    self.config.max_ttl_seconds
                ),
            });
        }
        Ok(chrono::Duration::seconds(secs as i64))
    }

    /// Creates a session and starts its sandbox.
    pub async fn create(
        &self,
        user_id: Uuid,
        environment: Option<String>,
        ttl_seconds: Option<u64>,
    ) -> Result<SessionView, ApiError> {
        let environment = environment.unwrap_or_else(|| DEFAULT_ENVIRONMENT.into());
        if !ENVIRONMENTS.contains(&environment.as_str()) {
            return Err(ApiError::Validation {
                field: "environment",
                message: format!(
                    "unknown environment; available: {}",
                    ENVIRONMENTS.join(", ")
                ),
            });
        }
        let ttl = self.ttl(ttl_seconds)?;
        self.create_with(user_id, environment, ttl, None, None)
            .await
    }

    /// Creates a session whose workspace starts with `files` instead of the environment's
    /// default files (a project opened as a session).
    pub async fn create_with_files(
        &self,
        user_id: Uuid,
        ttl_seconds: Option<u64>,
        files: Vec<(WorkspacePath, Vec<u8>)>,
    ) -> Result<SessionView, ApiError> {
        let ttl = self.ttl(ttl_seconds)?;
        self.create_with(user_id, DEFAULT_ENVIRONMENT.into(), ttl, None, Some(files))
            .await
    }

    /// Creates a session for a lab: its environment, limits, time to live (within the
    /// server's maximum) and starter files.
    pub async fn create_for_lab(&self, user_id: Uuid, lab: &Lab) -> Result<SessionView, ApiError> {
        let ttl = match lab.ttl_minutes {
            Some(minutes) => {
                chrono::Duration::seconds((minutes * 60).min(self.config.max_ttl_seconds) as i64)
            }
            None => self.ttl(None)?,
        };
        self.create_with(
            user_id,
            lab.environment.clone(),
            ttl,
            Some(lab.slug.clone()),
            None,
        )
        .await
    }

    async fn create_with(
        &self,
        user_id: Uuid,
        environment: String,
        ttl: chrono::Duration,
        lab: Option<String>,
        files: Option<Vec<(WorkspacePath, Vec<u8>)>>,
    ) -> Result<SessionView, ApiError> {
        // Refuse early, before a row exists, when sandboxes cannot start here at all.
        self.sandboxes
            .backend()
            .map_err(|why| sandbox_error(SandboxError::Unavailable(why.to_string())))?;
        if environment == crate::docker::ENVIRONMENT {
            self.docker.require()?;
        }
        let now = Utc::now();
        let new = NewSession {
            id: Uuid::new_v4(),
            user_id,
            environment,
            lab,
            created_at: now,
            expires_at: now + ttl,
        };
        let session = match self
            .store
            .create_session(new, self.config.max_per_user)
            .await
        {
            Ok(s) => s,
            Err(StoreError::Conflict { constraint })
                if constraint == sandpit_store::SESSIONS_LIVE_PER_USER =>
            {
                return Err(ApiError::Refused {
                    code: "session_limit",
                    message: format!(
                        "you already have {} live sessions (sessions.max_per_user); end one first",
                        self.config.max_per_user
                    ),
                });
            }
            Err(e) => return Err(ApiError::internal(e)),
        };
        let started = async {
            let sandbox = self.sandbox_of_session(&session).await?;
            match files {
                Some(files) => write_files(sandbox.as_ref(), files).await,
                None => self.write_initial_files(sandbox.as_ref(), &session).await,
            }
        };
        match started.await {
            Ok(_) => Ok(self.view(&session)),
            Err(e) => {
                // A session that never got a sandbox is of no use: end it, keep nothing.
                self.finish(session.id, EndReason::Failed).await;
                Err(e)
            }
        }
    }

    /// A caller's session, or 404 (another user's session looks missing).
    pub async fn get(&self, user_id: Uuid, id: Uuid) -> Result<Session, ApiError> {
        match self.store.session(id).await.map_err(ApiError::internal)? {
            Some(s) if s.user_id == user_id => Ok(s),
            _ => Err(not_found()),
        }
    }

    /// A caller's live session, or 404 / 409 `session_ended`.
    pub async fn get_live(&self, user_id: Uuid, id: Uuid) -> Result<Session, ApiError> {
        let session = self.get(user_id, id).await?;
        if !is_live(&session) {
            return Err(ended());
        }
        Ok(session)
    }

    pub async fn list(
        &self,
        user_id: Uuid,
        include_ended: bool,
    ) -> Result<Vec<SessionView>, ApiError> {
        let sessions = self
            .store
            .sessions_of(user_id, include_ended)
            .await
            .map_err(ApiError::internal)?;
        // Running on another replica counts as running.
        let live: Vec<Uuid> = sessions
            .iter()
            .filter(|s| s.status == SessionStatus::Live)
            .map(|s| s.id)
            .collect();
        let held = self.cluster.held(&live).await.map_err(ApiError::internal)?;
        Ok(sessions
            .iter()
            .map(|s| {
                let view = self.view(s);
                if view.status == "suspended" && held.contains(&s.id) {
                    SessionView::new(s, true)
                } else {
                    view
                }
            })
            .collect())
    }

    /// Whether this replica holds no session's sandbox.
    pub fn is_empty(&self) -> bool {
        self.live_map().is_empty()
    }

    /// Whether this replica runs (or is starting) the session's sandbox.
    pub fn runs_here(&self, id: Uuid) -> bool {
        let Some(live) = self.live_map().get(&id).cloned() else {
            return false;
        };
        if live.ended.load(Ordering::SeqCst) {
            return false;
        }
        // Locked: its sandbox is being started (or used to start a terminal) here.
        live.sandbox.try_lock().map_or(true, |slot| {
            slot.as_ref().is_some_and(|s| !s.agent().is_closed())
        })
    }

    pub fn view(&self, session: &Session) -> SessionView {
        let running = session.status == SessionStatus::Live
            && self
                .live_map()
                .get(&session.id)
                .is_some_and(|l| !l.ended.load(Ordering::SeqCst));
        SessionView::new(session, running)
    }

    /// The sandbox of a caller's live session, started if it has none.
    pub async fn sandbox(&self, user_id: Uuid, id: Uuid) -> Result<Arc<dyn Sandbox>, ApiError> {
        let session = self.get_live(user_id, id).await?;
        self.sandbox_of_session(&session).await
    }

    /// The sandbox of a session the caller has already checked (its owner's, live), started
    /// if it has none.
    pub async fn sandbox_of_session(
        &self,
        session: &Session,
    ) -> Result<Arc<dyn Sandbox>, ApiError> {
        let live = self.live_map().entry(session.id).or_default().clone();
        let mut slot = live.sandbox.lock().await;
        if live.ended.load(Ordering::SeqCst) {
            return Err(ended());
        }
        if let Some(sandbox) = slot.as_ref() {
            if !sandbox.agent().is_closed() {
                return Ok(sandbox.clone());
            }
            // Its sandbox died (killed, or the agent failed): a new one gets the same workspace.
            tracing::warn!(session.id = %session.id, "a session's sandbox was lost; starting another");
            let dead = slot.take();
            if let Some(dead) = dead {
                let _ = dead.destroy().await;
            }
        }
        let backend = self
            .sandboxes
            .backend()
            .map_err(|why| sandbox_error(SandboxError::Unavailable(why.to_string())))?;
        self.claim(session).await?;
        let spec = self.spec(session);
        // A sandbox the session's previous replica left running (Kubernetes: its pod lives
        // on) is taken over with its processes and held terminal; only then is one started.
        let sandbox: Arc<dyn Sandbox> = match backend.adopt(&spec).await.map_err(sandbox_error)? {
            Some(adopted) => {
                tracing::info!(session.id = %session.id, sandbox = adopted.id(), "took over the session's sandbox");
                adopted.into()
            }
            None => {
                let started: Arc<dyn Sandbox> =
                    backend.create(&spec).await.map_err(sandbox_error)?.into();
                tracing::info!(session.id = %session.id, sandbox = started.id(), "session sandbox started");
                started
            }
        };
        *slot = Some(sandbox.clone());
        Ok(sandbox)
    }

    /// Takes a session for this replica before its sandbox starts here: refused while another
    /// live replica holds it (requests reach that one through the forwarding), or while the
    /// sandbox of a replica that just went still has the workspace attached.
    async fn claim(&self, session: &Session) -> Result<(), ApiError> {
        match self
            .cluster
            .claim(session.id)
            .await
            .map_err(ApiError::internal)?
        {
            sandpit_store::Placement::Mine => {}
            sandpit_store::Placement::Elsewhere { .. } => {
                return Err(ApiError::Unavailable {
                    code: "session_elsewhere",
                    message: "this session's sandbox runs on another server replica; \
                              open it through the session's own routes"
                        .into(),
                    retry_after: Some(Duration::from_secs(1)),
                });
            }
        }
        let image = self
            .workspace_dir(session.id)
            .join(sandpit_sandbox::loopdev::IMAGE_NAME);
        if tokio::task::spawn_blocking(move || sandpit_sandbox::loopdev::in_use(&image))
            .await
            .unwrap_or(false)
        {
            self.cluster.release(session.id).await;
            return Err(ApiError::Unavailable {
                code: "session_moving",
                message: "this session's previous sandbox is still stopping; try again in a moment"
                    .into(),
                retry_after: Some(Duration::from_secs(1)),
            });
        }
        Ok(())
    }

    /// Writes the environment's default files into a caller's empty workspace.
    pub async fn restore_default_files(&self, user_id: Uuid, id: Uuid) -> Result<usize, ApiError> {
        let session = self.get_live(user_id, id).await?;
        let sandbox = self.sandbox_of_session(&session).await?;
        let listing = sandbox.tree(None, 1).await.map_err(sandbox_error)?;
        if !listing.entries.is_empty() {
            return Err(ApiError::Refused {
                code: "workspace_not_empty",
                message: "default files are only restored into an empty workspace".into(),
            });
        }
        self.write_initial_files(sandbox.as_ref(), &session).await
    }

    /// A new workspace's files: a lab's starter, else the environment's default files.
    async fn write_initial_files(
        &self,
        sandbox: &dyn Sandbox,
        session: &Session,
    ) -> Result<usize, ApiError> {
        match session.lab.as_deref().and_then(|slug| self.labs.get(slug)) {
            Some(lab) => {
                sandpit_labs::selftest::write_files(sandbox, &lab.starter)
                    .await
                    .map_err(sandbox_error)?;
                // A failing setup leaves the learner a workspace that the lab's own test
                // (`sandpit lab test`) would have flagged: logged, and the session goes on.
                if let Some(setup) = &lab.setup
                    && let Err(why) = sandpit_labs::selftest::run_script(sandbox, setup)
                        .await
                        .map_err(sandbox_error)?
                {
                    tracing::warn!(lab = %lab.slug, session.id = %session.id, why, "the lab's setup script failed");
                }
                Ok(lab.starter.len())
            }
            None => write_defaults(sandbox, &session.environment).await,
        }
    }

    /// The terminal of a live session (`session` already checked by the caller), started —
    /// a login shell in the workspace — when it has none or its shell ended.
    pub async fn terminal(
        &self,
        session: &Session,
        rows: u16,
        cols: u16,
    ) -> Result<Arc<TerminalHub>, ApiError> {
        let sandbox = self.sandbox_of_session(session).await?;
        let live = self.live_map().entry(session.id).or_default().clone();
        let mut slot = live.terminal.lock().await;
        if let Some(hub) = slot.as_ref()
            && !hub.is_closed()
        {
            return Ok(hub.clone());
        }
        let terminal = self.config.terminal.clone();
        // A shell the agent kept while no server was attached (this replica reconnected, or
        // took the sandbox over from one that died) is taken over with its screen.
        if let Some(held) = sandbox
            .agent()
            .attach(TERMINAL_HOLD)
            .await
            .map_err(sandbox_error)?
        {
            tracing::info!(session.id = %session.id, "took over the held terminal");
            let hub =
                TerminalHub::resume(held.process, held.rows, held.cols, &held.snapshot, terminal);
            *slot = Some(hub.clone());
            return Ok(hub);
        }
        let mut spec = ProcessSpec::new(["/bin/bash", "-l"]);
        spec.stdio = StdioMode::Pty { rows, cols };
        // Held by the agent: it outlives this server's connection for the grace period.
        spec.hold = Some(Hold {
            name: TERMINAL_HOLD.into(),
            grace_ms: terminal.grace_secs.saturating_mul(1000),
            scrollback: terminal.scrollback,
        });
        spec.env.insert("TERM".into(), "xterm-256color".into());
        spec.env
            .insert("HOME".into(), sandpit_sandbox::spec::WORKSPACE_DIR.into());
        spec.env
            .insert("PS1".into(), "\\[\\e[1;32m\\]\\w\\[\\e[0m\\] $ ".into());
        // A shell lives as long as the session; the session's limits bound it.
        spec.limits = self.process_limits(None);
        self.apply_environment(session, &mut spec);
        let process = sandbox.spawn(spec).await.map_err(sandbox_error)?;
        let hub = TerminalHub::start(process, rows, cols, terminal);
        *slot = Some(hub.clone());
        Ok(hub)
    }

    /// Limits of a process in a session: its wall time (`None` for a shell), files as large as
    /// the workspace or /tmp allow (the disk quota is the real bound), descriptors for
    /// development servers, output capped only for exec (a terminal paces its own).
    pub fn process_limits(&self, wall_ms: Option<u64>) -> ProcessLimits {
        let c = &self.config;
        ProcessLimits {
            wall_ms,
            cpu_ms: None,
            file_size_bytes: c.workspace_mb.max(c.tmp_mb) << 20,
            open_files: 4096,
            output_bytes: wall_ms.map(|_| c.exec_output_bytes),
        }
    }

    /// The read-only share token of a session: anyone signed in who has it may watch the
    /// terminal (an HMAC of the session id, so it lasts as long as the session).
    pub fn share_token(&self, id: Uuid) -> String {
        hex::encode(self.share_mac(id).finalize().into_bytes())
    }

    /// Whether `token` is the share token of session `id` (constant time).
    pub fn check_share_token(&self, id: Uuid, token: &str) -> bool {
        hex::decode(token).is_ok_and(|bytes| self.share_mac(id).verify_slice(&bytes).is_ok())
    }

    fn share_mac(&self, id: Uuid) -> Hmac<sha2::Sha256> {
        let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(&self.share_key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(id.as_bytes());
        mac
    }

    /// A live session by id, whoever owns it (for a share-token viewer).
    pub async fn get_live_any(&self, id: Uuid) -> Result<Session, ApiError> {
        match self.store.session(id).await.map_err(ApiError::internal)? {
            Some(s) if is_live(&s) => Ok(s),
            Some(_) => Err(ended()),
            None => Err(not_found()),
        }
    }

    /// Extends a caller's live session to now + ttl (never shortens it).
    pub async fn extend(
        &self,
        user_id: Uuid,
        id: Uuid,
        ttl_seconds: Option<u64>,
    ) -> Result<SessionView, ApiError> {
        let mut session = self.get_live(user_id, id).await?;
        let ttl = self.ttl(ttl_seconds)?;
        // Microseconds, as the store keeps them, so the answer equals what a GET shows.
        let expires_at = (Utc::now() + ttl).trunc_subsecs(6).max(session.expires_at);
        if !self
            .store
            .extend_session(id, expires_at)
            .await
            .map_err(ApiError::internal)?
        {
            return Err(ended());
        }
        session.expires_at = expires_at;
        Ok(self.view(&session))
    }

    /// Ends a caller's session (idempotent for an ended one: 409).
    pub async fn end(&self, user_id: Uuid, id: Uuid) -> Result<(), ApiError> {
        let session = self.get(user_id, id).await?;
        if session.status == SessionStatus::Ended {
            return Err(ended());
        }
        if !self.finish(id, EndReason::User).await {
            return Err(ended());
        }
        Ok(())
    }

    /// Marks a session ended in the store, destroys its sandbox and deletes its workspace.
    /// Returns whether this call ended it.
    async fn finish(&self, id: Uuid, reason: EndReason) -> bool {
        let ended_now = match self.store.end_session(id, Utc::now(), reason).await {
            Ok(done) => done,
            Err(e) => {
                tracing::warn!(session.id = %id, error = %e, "could not end a session");
                return false;
            }
        };
        let live = self.live_map().remove(&id);
        if let Some(live) = live {
            live.ended.store(true, Ordering::SeqCst);
            if let Some(hub) = live.terminal.lock().await.take() {
                hub.close().await;
            }
            // Waits for a sandbox that is still starting.
            let sandbox = live.sandbox.lock().await.take();
            if let Some(sandbox) = sandbox
                && let Err(e) = sandbox.destroy().await
            {
                tracing::warn!(session.id = %id, error = %e, "destroying a session's sandbox");
            }
        }
        self.cluster.release(id).await;
        let dir = self.workspace_dir(id);
        if let Ok(backend) = self.sandboxes.backend()
            && let Err(e) = backend.remove_workspace(&dir).await
        {
            tracing::warn!(session.id = %id, error = %e, "releasing a workspace's storage");
        }
        if let Err(e) = tokio::task::spawn_blocking(move || remove_dir(&dir)).await {
            tracing::warn!(session.id = %id, error = %e, "removing a workspace");
        }
        if ended_now {
            tracing::info!(session.id = %id, reason = reason.as_str(), "session ended");
        }
        ended_now
    }

    /// Ends every live session whose time is up.
    pub async fn reap(&self, now: DateTime<Utc>) {
        let expired = match self.store.expired_sessions(now).await {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "listing expired sessions");
                return;
            }
        };
        for session in expired {
            // The replica running it ends it (and its sandbox) itself.
            if matches!(
                self.cluster.holder_elsewhere(session.id).await,
                Ok(Some(_)) | Err(_)
            ) {
                continue;
            }
            if self.finish(session.id, EndReason::Expired).await {
                self.reaped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Runs the reaper until the task is dropped.
    pub async fn reap_forever(self: Arc<Self>) {
        let mut tick =
            tokio::time::interval(Duration::from_secs(self.config.reap_interval_seconds));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.reap(Utc::now()).await;
        }
    }

    /// At start-up: live sessions keep their workspaces (their sandboxes start on demand) unless
    /// the workspace is gone, in which case they end (unless another live replica runs them:
    /// with workspaces not shared, this replica cannot see theirs); workspace directories of no
    /// live session are deleted, each looked up on its own (the directory is made after the
    /// session's row, so another replica's new session is never taken for an orphan).
    /// (Sandboxes of a previous process died with it; their cgroups are reaped by the backend.)
    /// Loop devices still attached to workspace images were left by a process killed while
    /// starting a sandbox: no sandbox of this one uses them yet, so they are detached.
    pub async fn reconcile(&self) -> Result<(), StoreError> {
        sandpit_sandbox::loopdev::detach_stale(&self.workspaces).await;
        let live = self.store.live_sessions().await?;
        let backend = self.sandboxes.backend().ok();
        for session in live {
            let dir = self.workspace_dir(session.id);
            let kept = match backend {
                Some(backend) => backend.has_workspace(&dir).await.unwrap_or_else(|e| {
                    // Not known to be lost: kept, and its next start says what is wrong.
                    tracing::warn!(session.id = %session.id, error = %e, "checking a workspace");
                    true
                }),
                // No backend to ask (it failed to start): not known to be lost either.
                None => true,
            };
            if kept || self.cluster.holder_elsewhere(session.id).await?.is_some() {
                continue;
            }
            tracing::warn!(session.id = %session.id, "a live session lost its workspace; ending it");
            self.finish(session.id, EndReason::Failed).await;
        }
        let Ok(entries) = std::fs::read_dir(&self.workspaces) else {
            return Ok(());
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            // Dot names are the backend's own (spare images), not workspaces.
            if name.starts_with('.') {
                continue;
            }
            let live = match Uuid::try_parse(&name) {
                Ok(id) => self
                    .store
                    .session(id)
                    .await?
                    .is_some_and(|s| s.status == SessionStatus::Live),
                Err(_) => false,
            };
            if !live {
                tracing::info!(workspace = %name, "removing an orphaned workspace");
                remove_dir(&entry.path());
            }
        }
        Ok(())
    }

    pub fn counts(&self) -> SessionCounts {
        let running = self
            .live_map()
            .values()
            // A slot being filled right now counts: its sandbox is starting.
            .filter(|l| l.sandbox.try_lock().map_or(true, |s| s.is_some()))
            .count();
        let terminals_attached = self
            .live_map()
            .values()
            .filter_map(|l| l.terminal.try_lock().ok().and_then(|t| t.clone()))
            .map(|hub| hub.clients())
            .sum();
        SessionCounts {
            terminals_attached,
            running,
            reaped: self.reaped.load(Ordering::Relaxed),
        }
    }

    /// Memory of each running session's sandbox, for `/metrics` (which shows no session ids).
    pub async fn memory(&self) -> Vec<u64> {
        let live: Vec<_> = self.live_map().values().cloned().collect();
        let mut out = Vec::new();
        for live in live {
            // A session whose sandbox is starting is skipped rather than waited for.
            let sandbox = match live.sandbox.try_lock() {
                Ok(slot) => slot.clone(),
                Err(_) => None,
            };
            if let Some(sandbox) = sandbox
                && let Ok(usage) = sandbox.usage().await
            {
                out.push(usage.memory_bytes);
            }
        }
        out
    }

    /// Server shutdown: every sandbox goes; sessions stay live with their workspaces, and get
    /// a new sandbox on their next use after a restart.
    pub async fn shutdown(&self) {
        let all: Vec<_> = self.live_map().drain().collect();
        for (id, live) in all {
            // Left first: a sandbox another replica can take over keeps its shell (the hub's
            // close below can no longer reach it); any other is destroyed with the shell.
            let sandbox = live.sandbox.lock().await.take();
            if let Some(sandbox) = sandbox
                && let Err(e) = sandbox.leave().await
            {
                tracing::warn!(session.id = %id, error = %e, "leaving a session's sandbox at shutdown");
            }
            if let Some(hub) = live.terminal.lock().await.take() {
                hub.close().await;
            }
        }
    }
}

/// Live in the store and not yet past its expiry (the reaper may not have ended it yet).
/// Where session `id`'s workspace lives under `workspaces` (the same on every replica, so a
/// Kubernetes claim named from it is found by whichever replica takes the session).
pub fn workspace_dir(workspaces: &std::path::Path, id: Uuid) -> PathBuf {
    workspaces.join(id.simple().to_string())
}

fn is_live(session: &Session) -> bool {
    session.status == SessionStatus::Live && session.expires_at > Utc::now()
}

/// A session's sandbox limits: the server's, lowered (never raised) by a lab's.
pub fn sandbox_limits(c: &SessionsConfig, lab: Option<&LabLimits>) -> SandboxLimits {
    let lab = lab.copied().unwrap_or_default();
    let lower = |server: u64, lab: Option<u64>| lab.map_or(server, |l| l.min(server));
    SandboxLimits {
        memory_bytes: lower(c.memory_mb, lab.memory_mb) << 20,
        pids: lower(c.processes, lab.processes.map(u64::from)),
        cpu_millicores: Some(
            lower(c.cpu_millicores.into(), lab.cpu_millicores.map(u64::from)) as u32,
        ),
        workspace_bytes: lower(c.workspace_mb, lab.workspace_mb) << 20,
        tmp_bytes: c.tmp_mb << 20,
        shm_bytes: 16 << 20,
    }
}

async fn write_defaults(sandbox: &dyn Sandbox, environment: &str) -> Result<usize, ApiError> {
    let files = default_files(environment);
    for (name, content) in files {
        let path = sandpit_sandbox::WorkspacePath::parse(name).map_err(ApiError::internal)?;
        sandbox
            .write_file(&path, content.as_bytes().to_vec(), 0o644)
            .await
            .map_err(sandbox_error)?;
    }
    Ok(files.len())
}

async fn write_files(
    sandbox: &dyn Sandbox,
    files: Vec<(WorkspacePath, Vec<u8>)>,
) -> Result<usize, ApiError> {
    let count = files.len();
    for (path, content) in files {
        sandbox
            .write_file(&path, content, 0o644)
            .await
            .map_err(sandbox_error)?;
    }
    Ok(count)
}

fn remove_dir(dir: &std::path::Path) {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(dir = %dir.display(), error = %e, "removing a workspace"),
    }
}
