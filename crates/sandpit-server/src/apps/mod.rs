//! Deployed apps: a user's small web app (Python ASGI/WSGI, Node, or static files), deployed
//! from a request's files, a session's workspace or a project as an immutable version, by a
//! durable job (`deploy.rs`: validating → installing → starting → healthy), and served through
//! the platform's reverse proxy (`proxy.rs`, over the `sandpit-proxy` crate).
//!
//! Running instances live in this process (`instance.rs`); the store holds what brings them
//! back: the app, its versions and which is live. An instance that is missing (idle-stopped,
//! or after a restart) is started from the live version by the first request. A redeploy
//! starts the new version beside the old one and moves traffic only once it answers; the old
//! one finishes its requests, then stops.

pub mod config;
pub mod deploy;
pub mod instance;
pub mod logs;
pub mod model;
pub mod packages;
pub mod proxy;
pub mod routes;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use dashmap::DashMap;
use sandpit_sandbox::{Sandbox, SandboxSpec};
use sandpit_store::{
    APPS_PER_USER, App, AppPatch, NewApp, NewAppVersion, NewJob, Store, StoreError,
};
use serde_json::json;
use uuid::Uuid;

use self::config::AppsConfig;
use self::instance::{Instance, Plan, StartFailure};
use self::logs::Logs;
use self::model::{
    AppStatus, AppView, CreateApp, DeployRequest, Deployment, RollbackRequest, Runtime, UpdateApp,
    VersionView,
};
use crate::error::ApiError;
use crate::projects::Projects;
use crate::projects::archive::{self, Limits, Others};
use crate::sandbox::Sandboxes;
use crate::sessions::Sessions;
use crate::sessions::files::FilePath;

fn not_found() -> ApiError {
    ApiError::not_found("app")
}

/// What this process keeps of one app: its log and its running instance.
pub struct Slot {
    pub logs: Arc<Logs>,
    current: RwLock<Option<Arc<Instance>>>,
    /// One start at a time.
    starting: tokio::sync::Mutex<()>,
    /// When it last had a request (monotonic), for the idle stop.
    last_request: Mutex<Instant>,
    /// When a request was last written to the store (it is written at most once a minute).
    last_stamped: Mutex<Option<Instant>>,
    /// Stopped for want of requests (the next one starts it).
    idle: AtomicBool,
    /// Why the last start on request failed, for the proxy's page and the status.
    start_error: Mutex<Option<StartFailure>>,
}

impl Slot {
    fn new(log_lines: usize) -> Self {
        Self {
            logs: Arc::new(Logs::new(log_lines)),
            current: RwLock::new(None),
            starting: tokio::sync::Mutex::new(()),
            last_request: Mutex::new(Instant::now()),
            last_stamped: Mutex::new(None),
            idle: AtomicBool::new(false),
            start_error: Mutex::new(None),
        }
    }

    pub fn current(&self) -> Option<Arc<Instance>> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn replace(&self, next: Option<Arc<Instance>>) -> Option<Arc<Instance>> {
        std::mem::replace(
            &mut *self
                .current
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
            next,
        )
    }

    pub fn start_error(&self) -> Option<StartFailure> {
        self.start_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn set_start_error(&self, error: Option<StartFailure>) {
        *self
            .start_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = error;
    }
}

pub struct Apps {
    config: AppsConfig,
    store: Arc<dyn Store>,
    queue: sandpit_jobs::Queue,
    sandboxes: Arc<Sandboxes>,
    sessions: Arc<Sessions>,
    projects: Arc<Projects>,
    public_url: Arc<str>,
    /// The owners' databases, which their apps' sandboxes are given.
    databases: Arc<crate::databases::Databases>,
    slots: DashMap<Uuid, Arc<Slot>>,
    /// The proxy's lookups of apps by address, for [`ROUTE_TTL`] (cleared on every change
    /// made here; another server's change shows within the TTL).
    routes: DashMap<String, (Instant, Option<Routed>)>,
    /// Attempts per deploy job.
    max_attempts: u32,
}

const ROUTE_TTL: Duration = Duration::from_secs(2);

/// What the apps service works with, built once at start-up.
pub struct AppsDeps {
    pub store: Arc<dyn Store>,
    pub queue: sandpit_jobs::Queue,
    pub sandboxes: Arc<Sandboxes>,
    pub sessions: Arc<Sessions>,
    pub projects: Arc<Projects>,
    /// The platform's public URL, for the links apps' pages show.
    pub public_url: Arc<str>,
    pub databases: Arc<crate::databases::Databases>,
    /// Attempts per deploy job (`jobs.max_attempts`).
    pub max_attempts: u32,
}

/// A request's view of where an app is, resolved by the proxy.
#[derive(Debug, Clone)]
pub struct Routed {
    pub app: App,
    pub owner: String,
}

impl Apps {
    pub fn new(config: AppsConfig, deps: AppsDeps) -> Self {
        Self {
            config,
            store: deps.store,
            queue: deps.queue,
            sandboxes: deps.sandboxes,
            sessions: deps.sessions,
            projects: deps.projects,
            public_url: deps.public_url,
            databases: deps.databases,
            slots: DashMap::new(),
            routes: DashMap::new(),
            max_attempts: deps.max_attempts,
        }
    }

    pub fn config(&self) -> &AppsConfig {
        &self.config
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn slot(&self, app_id: Uuid) -> Arc<Slot> {
        self.slots
            .entry(app_id)
            .or_insert_with(|| Arc::new(Slot::new(self.config.log_lines)))
            .clone()
    }

    /// Where the app is served.
    pub fn url(&self, owner: &str, app: &str) -> String {
        if self.config.domain.is_empty() {
            format!("{}/user/{owner}/app/{app}/", self.public_url)
        } else {
            let scheme = if self.public_url.starts_with("https://") {
                "https"
            } else {
                "http"
            };
            // The platform's port, if it has one, serves the apps domain too.
            let port = url::Url::parse(&self.public_url)
                .ok()
                .and_then(|u| u.port())
                .map(|p| format!(":{p}"))
                .unwrap_or_default();
            format!(
                "{scheme}://{app}-{}.{}{port}/",
                owner.to_ascii_lowercase(),
                self.config.domain
            )
        }
    }

    /// The path prefix an app's requests arrive under in the path mode.
    pub fn prefix(owner: &str, app: &str) -> String {
        format!("/user/{owner}/app/{app}")
    }

    fn view(&self, app: App, owner: &str) -> AppView {
        AppView {
            url: self.url(owner, &app.name),
            id: app.id,
            runtime: Runtime::parse(&app.runtime).unwrap_or(Runtime::Static),
            entry: app.entry,
            public: app.public,
            pinned: app.pinned,
            env: app.env,
            secrets: app.secrets.into_keys().collect(),
            desired: app.desired,
            live_version: app.live_version,
            last_request_at: app.last_request_at,
            created_at: app.created_at,
            updated_at: app.updated_at,
            name: app.name,
        }
    }

    /// The caller's app, or 404 (another user's too).
    pub async fn owned(&self, user: Uuid, id: Uuid) -> Result<App, ApiError> {
        self.store
            .app(id)
            .await?
            .filter(|a| a.user_id == user)
            .ok_or_else(not_found)
    }

    pub async fn create(
        &self,
        user: Uuid,
        owner: &str,
        req: CreateApp,
    ) -> Result<AppView, ApiError> {
        let name = model::app_name(&req.name)?;
        let entry = model::entry(req.runtime, req.entry.as_deref())?;
        let env = model::env_vars("env", &req.env)?;
        let secrets = model::env_vars("secrets", &req.secrets)?;
        let app = self
            .store
            .create_app(
                NewApp {
                    id: Uuid::now_v7(),
                    user_id: user,
                    name,
                    runtime: req.runtime.as_str().into(),
                    entry,
                    public: req.public,
                    env,
                    secrets,
                    created_at: Utc::now(),
                },
                self.config.max_per_user,
            )
            .await
            .map_err(|e| self.store_conflict(e))?;
        let app = if req.pinned {
            self.store
                .update_app(
                    app.id,
                    AppPatch {
                        pinned: Some(true),
                        ..AppPatch::default()
                    },
                    Utc::now(),
                )
                .await?
                .ok_or_else(not_found)?
        } else {
            app
        };
        Ok(self.view(app, owner))
    }

    fn store_conflict(&self, e: StoreError) -> ApiError {
        match e {
            StoreError::Conflict {
                constraint: "apps.name",
            } => ApiError::Conflict("you already have an app of that name".into()),
            StoreError::Conflict {
                constraint: APPS_PER_USER,
            } => ApiError::Refused {
                code: "app_limit",
                message: format!(
                    "you have {} apps, the most allowed (apps.max_per_user): delete one first",
                    self.config.max_per_user
                ),
            },
            other => other.into(),
        }
    }

    pub async fn list(&self, user: Uuid, owner: &str) -> Result<Vec<AppView>, ApiError> {
        Ok(self
            .store
            .apps_of(user)
            .await?
            .into_iter()
            .map(|a| self.view(a, owner))
            .collect())
    }

    pub async fn get(&self, user: Uuid, owner: &str, id: Uuid) -> Result<AppView, ApiError> {
        Ok(self.view(self.owned(user, id).await?, owner))
    }

    pub async fn update(
        &self,
        user: Uuid,
        owner: &str,
        id: Uuid,
        req: UpdateApp,
    ) -> Result<AppView, ApiError> {
        let app = self.owned(user, id).await?;
        let runtime = Runtime::parse(&app.runtime).unwrap_or(Runtime::Static);
        let patch = AppPatch {
            name: req.name.as_deref().map(model::app_name).transpose()?,
            entry: req
                .entry
                .as_deref()
                .map(|e| model::entry(runtime, Some(e)))
                .transpose()?,
            public: req.public,
            pinned: req.pinned,
            env: req
                .env
                .as_ref()
                .map(|e| model::env_vars("env", e))
                .transpose()?,
            secrets: req
                .secrets
                .as_ref()
                .map(|s| model::env_vars("secrets", s))
                .transpose()?,
            desired: None,
        };
        let app = self
            .store
            .update_app(id, patch, Utc::now())
            .await
            .map_err(|e| self.store_conflict(e))?
            .ok_or_else(not_found)?;
        self.invalidate_routes();
        Ok(self.view(app, owner))
    }

    pub async fn delete(&self, user: Uuid, id: Uuid) -> Result<(), ApiError> {
        self.owned(user, id).await?;
        self.remove(id).await
    }

    async fn remove(&self, id: Uuid) -> Result<(), ApiError> {
        self.store.delete_app(id).await?;
        self.invalidate_routes();
        if let Some((_, slot)) = self.slots.remove(&id)
            && let Some(instance) = slot.replace(None)
        {
            instance.stop().await;
        }
        Ok(())
    }

    fn file_limits(&self) -> Limits {
        Limits {
            max_entries: self.config.max_files,
            max_file_bytes: self.config.max_bytes,
            max_total_bytes: self.config.max_bytes,
        }
    }

    fn too_large(&self) -> ApiError {
        ApiError::TooLarge {
            code: "app_too_large",
            message: format!(
                "an app is limited to {} files and {} bytes (apps.max_files, apps.max_bytes)",
                self.config.max_files, self.config.max_bytes
            ),
        }
    }

    /// The files of a deploy request, checked, by path.
    async fn files_of(
        &self,
        user: Uuid,
        req: DeployRequest,
    ) -> Result<(BTreeMap<String, Vec<u8>>, String), ApiError> {
        let given = [
            req.files.is_some(),
            req.session_id.is_some(),
            req.project_id.is_some(),
        ];
        if given.iter().filter(|g| **g).count() != 1 {
            return Err(ApiError::Validation {
                field: "files",
                message: "give exactly one of files, session_id and project_id".into(),
            });
        }
        if let Some(files) = req.files {
            if files.len() as u64 > self.config.max_files
                || files.values().map(|c| c.len() as u64).sum::<u64>() > self.config.max_bytes
            {
                return Err(self.too_large());
            }
            let mut out = BTreeMap::new();
            for (path, content) in files {
                let parsed = FilePath::parse(&path).map_err(|_| ApiError::Validation {
                    field: "files",
                    message: format!("{path:?} is not a valid relative file path"),
                })?;
                out.insert(parsed.workspace().as_str().to_owned(), content.into_bytes());
            }
            if let Some((a, b)) = archive::collision(&out) {
                return Err(ApiError::Validation {
                    field: "files",
                    message: format!("{a} is a file, so {b} cannot be"),
                });
            }
            return Ok((out, "request".into()));
        }
        if let Some(session_id) = req.session_id {
            let sandbox = self.sessions.sandbox(user, session_id).await?;
            let packed = sandbox
                .pack(None, self.config.max_bytes.saturating_mul(2))
                .await
                .map_err(|e| match e {
                    sandpit_sandbox::SandboxError::File(
                        sandpit_sandbox::protocol::FileError::TooLarge(_),
                    ) => self.too_large(),
                    other => crate::sessions::sandbox_error(other),
                })?;
            let unpacked = archive::unpack(&packed, self.file_limits(), Others::Skip)
                .map_err(|e| self.unpack_error(e))?;
            return Ok((unpacked.files, format!("session:{session_id}")));
        }
        let project_id = req.project_id.unwrap_or_default();
        self.projects.owned(user, project_id).await?;
        let files = self.projects.contents(project_id).await?;
        if files.len() as u64 > self.config.max_files
            || files.iter().map(|f| f.content.len() as u64).sum::<u64>() > self.config.max_bytes
        {
            return Err(self.too_large());
        }
        Ok((
            files
                .into_iter()
                .map(|f| (f.meta.path, f.content))
                .collect(),
            format!("project:{project_id}"),
        ))
    }

    fn unpack_error(&self, e: archive::UnpackError) -> ApiError {
        match e {
            archive::UnpackError::TooLarge(_) => self.too_large(),
            other => ApiError::Validation {
                field: "files",
                message: other.to_string(),
            },
        }
    }

    /// Stores the files as a new version and queues its deploy.
    pub async fn deploy(
        &self,
        user: Uuid,
        id: Uuid,
        req: DeployRequest,
    ) -> Result<Deployment, ApiError> {
        self.owned(user, id).await?;
        let (files, source) = self.files_of(user, req).await?;
        if files.is_empty() {
            return Err(ApiError::Validation {
                field: "files",
                message: "there are no files to deploy".into(),
            });
        }
        let now = Utc::now();
        let bytes = files.values().map(|c| c.len() as u64).sum();
        let bundle = archive::pack(files.iter().map(|(p, c)| (p.as_str(), c.as_slice(), now)))
            .map_err(ApiError::internal)?;
        self.queue_version(user, id, bundle, files.len() as u64, bytes, source)
            .await
    }

    async fn queue_version(
        &self,
        user: Uuid,
        id: Uuid,
        bundle: Vec<u8>,
        files: u64,
        bytes: u64,
        source: String,
    ) -> Result<Deployment, ApiError> {
        let now = Utc::now();
        let version = self
            .store
            .add_app_version(
                NewAppVersion {
                    app_id: id,
                    bundle,
                    files,
                    bytes,
                    source,
                    created_at: now,
                },
                self.config.keep_versions,
            )
            .await
            .map_err(|e| match e {
                StoreError::NotFound => not_found(),
                other => other.into(),
            })?;
        // A deploy's own time limit: validation, the start, and some room.
        let timeout_ms = (self.config.start_timeout_seconds + 120) * 1000;
        let job = self
            .queue
            .enqueue(NewJob {
                id: Uuid::now_v7(),
                kind: deploy::KIND.into(),
                user_id: user,
                project_id: None,
                input: json!({ "app_id": id, "version": version.version }),
                priority: 10,
                max_attempts: self.max_attempts,
                timeout_ms,
                run_at: now,
                created_at: now,
            })
            .await?;
        self.store
            .set_app_version_job(id, version.version, job.id)
            .await?;
        let mut view = VersionView::from(version);
        view.job_id = Some(job.id);
        Ok(Deployment {
            version: view,
            job_id: job.id,
        })
    }

    /// Deploys an earlier version's files again (as a new version, through every stage).
    /// Deploys each running app of `user`'s again from its live version (its owner's
    /// database credentials changed: new sandboxes get the new ones, with no downtime).
    /// Returns the deploy jobs queued; an app that cannot be redeployed now (one is pending)
    /// keeps running and gets them on its next deploy.
    pub async fn redeploy_live(&self, user: Uuid) -> Vec<Uuid> {
        let apps = match self.store.apps_of(user).await {
            Ok(apps) => apps,
            Err(e) => {
                tracing::warn!(user.id = %user, error = %e, "listing apps to redeploy");
                return Vec::new();
            }
        };
        let mut jobs = Vec::new();
        for app in apps {
            let Some(live) = app.live_version.filter(|_| app.desired == "running") else {
                continue;
            };
            let req = RollbackRequest {
                version: Some(live),
            };
            match self.rollback(user, app.id, req).await {
                Ok(d) => jobs.push(d.job_id),
                Err(e) => {
                    tracing::info!(app.id = %app.id, error = %e, "not redeployed now");
                }
            }
        }
        jobs
    }

    pub async fn rollback(
        &self,
        user: Uuid,
        id: Uuid,
        req: RollbackRequest,
    ) -> Result<Deployment, ApiError> {
        let app = self.owned(user, id).await?;
        let versions = self.store.app_versions(id).await?;
        let target = match req.version {
            Some(v) => versions.iter().find(|x| x.version == v).ok_or_else(|| {
                ApiError::not_found("version (only the newest are kept: apps.keep_versions)")
            })?,
            None => versions
                .iter()
                .find(|v| v.state == "superseded" && Some(v.version) != app.live_version)
                .ok_or_else(|| ApiError::Refused {
                    code: "no_previous_version",
                    message: "there is no earlier live version to go back to".into(),
                })?,
        };
        if target.state == "pending" {
            return Err(ApiError::Refused {
                code: "version_pending",
                message: format!("version {} is still being deployed", target.version),
            });
        }
        let bundle = self
            .store
            .app_bundle(id, target.version)
            .await?
            .ok_or_else(not_found)?;
        self.queue_version(
            user,
            id,
            bundle,
            target.files,
            target.bytes,
            format!("version:{}", target.version),
        )
        .await
    }

    pub async fn versions(&self, user: Uuid, id: Uuid) -> Result<Vec<VersionView>, ApiError> {
        self.owned(user, id).await?;
        Ok(self
            .store
            .app_versions(id)
            .await?
            .into_iter()
            .map(VersionView::from)
            .collect())
    }

    pub async fn status(&self, user: Uuid, owner: &str, id: Uuid) -> Result<AppStatus, ApiError> {
        let app = self.owned(user, id).await?;
        let versions = self.store.app_versions(id).await?;
        let newest = versions.first().cloned();
        let slot = self.slots.get(&id).map(|s| s.clone());
        let instance = slot.as_ref().and_then(|s| s.current());
        let deploying = newest.as_ref().is_some_and(|v| v.state == "pending");
        let state = match (&instance, app.live_version) {
            _ if app.desired == "stopped" => "stopped",
            (Some(i), _) => match i.health() {
                instance::Health::Ready => "running",
                instance::Health::Starting => "starting",
                instance::Health::Crashed => "crashed",
                instance::Health::Stopped => "idle",
            },
            (None, None) if deploying => "deploying",
            (None, None) if newest.is_some() => "failed",
            (None, None) => "not_deployed",
            (None, Some(_)) => "idle",
        };
        Ok(AppStatus {
            state: state.into(),
            live_version: app.live_version,
            serving_version: instance.as_ref().map(|i| i.version),
            restarts: instance.as_ref().map_or(0, |i| i.restarts()),
            started_at: instance.as_ref().map(|i| i.started_at),
            deploy: newest
                .filter(|v| v.state == "pending" || v.state == "failed")
                .map(VersionView::from),
            url: self.url(owner, &app.name),
        })
    }

    /// Stops it (until started again) or starts it.
    pub async fn set_desired(&self, user: Uuid, id: Uuid, running: bool) -> Result<(), ApiError> {
        self.owned(user, id).await?;
        let desired = if running { "running" } else { "stopped" };
        self.store
            .update_app(
                id,
                AppPatch {
                    desired: Some(desired.into()),
                    ..AppPatch::default()
                },
                Utc::now(),
            )
            .await?
            .ok_or_else(not_found)?;
        self.invalidate_routes();
        let slot = self.slot(id);
        if running {
            slot.idle.store(false, Ordering::SeqCst);
        } else if let Some(instance) = slot.replace(None) {
            slot.logs.push("platform", "stopped by its owner");
            instance.stop().await;
        }
        Ok(())
    }

    fn invalidate_routes(&self) {
        self.routes.clear();
    }

    async fn cached(
        &self,
        key: String,
        lookup: impl std::future::Future<Output = Result<Option<Routed>, ApiError>>,
    ) -> Result<Option<Routed>, ApiError> {
        if let Some(hit) = self.routes.get(&key)
            && hit.0.elapsed() < ROUTE_TTL
        {
            return Ok(hit.1.clone());
        }
        let found = lookup.await?;
        if self.routes.len() > 10_000 {
            self.routes.clear();
        }
        self.routes.insert(key, (Instant::now(), found.clone()));
        Ok(found)
    }

    /// An app by its owner's name and its own, for the proxy.
    pub async fn route(&self, owner: &str, name: &str) -> Result<Option<Routed>, ApiError> {
        self.cached(format!("path:{owner}/{name}"), self.lookup(owner, name))
            .await
    }

    async fn lookup(&self, owner: &str, name: &str) -> Result<Option<Routed>, ApiError> {
        if model::app_name(name).is_err() {
            return Ok(None);
        }
        let Some(user) = self.store.user_by_username(owner).await? else {
            return Ok(None);
        };
        Ok(self
            .store
            .app_named(user.id, name)
            .await?
            .map(|app| Routed {
                app,
                owner: user.username,
            }))
    }

    /// An app by its host label `{app}-{user}` (domain mode). Both may hold hyphens, so each
    /// split is tried, the longest app name first.
    pub async fn route_label(&self, label: &str) -> Result<Option<Routed>, ApiError> {
        self.cached(format!("host:{label}"), async {
            for (i, _) in label
                .match_indices('-')
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
            {
                let (name, owner) = (&label[..i], &label[i + 1..]);
                if let Some(found) = self.lookup(owner, name).await? {
                    return Ok(Some(found));
                }
            }
            Ok(None)
        })
        .await
    }

    /// Records a request (in memory; in the store at most once a minute).
    pub async fn touch(&self, app_id: Uuid) {
        let slot = self.slot(app_id);
        let now = Instant::now();
        *slot
            .last_request
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = now;
        let due = {
            let mut stamped = slot
                .last_stamped
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let due = stamped.is_none_or(|at| now.duration_since(at) >= Duration::from_secs(60));
            if due {
                *stamped = Some(now);
            }
            due
        };
        if due
            && let Err(e) = self
                .store
                .touch_app(app_id, Utc::now(), chrono::TimeDelta::seconds(60))
                .await
        {
            tracing::warn!(app.id = %app_id, error = %e, "recording an app's request");
        }
    }

    /// A new sandbox for an app of `owner_id`'s, holding `bundle`'s files and the owner's
    /// database (if they have one); returns the variables that point the app at it.
    pub async fn sandbox_with(
        &self,
        owner_id: Uuid,
        bundle: Vec<u8>,
    ) -> Result<(Arc<dyn Sandbox>, BTreeMap<String, String>), ApiError> {
        let backend = self.sandboxes.backend().map_err(|why| {
            crate::sessions::sandbox_error(sandpit_sandbox::SandboxError::Unavailable(
                why.to_string(),
            ))
        })?;
        let mut spec = SandboxSpec::new(self.config.limits());
        spec.hostname = "app".into();
        let database_env = match self.databases.for_apps(owner_id).await {
            Ok(Some(db)) => {
                spec.volumes.push(db.volume);
                db.env
            }
            Ok(None) => BTreeMap::new(),
            // The app runs without it rather than not at all; its owner sees why in the
            // database's page, which reports the same failure.
            Err(why) => {
                tracing::warn!(user.id = %owner_id, error = %why, "an app's database");
                BTreeMap::new()
            }
        };
        let sandbox: Arc<dyn Sandbox> = backend
            .create(&spec)
            .await
            .map_err(crate::sessions::sandbox_error)?
            .into();
        let limits = sandpit_sandbox::protocol::UnpackLimits {
            max_entries: u32::try_from(self.config.max_files).unwrap_or(u32::MAX),
            max_total_bytes: self.config.max_bytes,
            max_file_bytes: self.config.max_bytes,
        };
        if let Err(e) = sandbox.unpack(None, bundle, limits).await {
            let _ = sandbox.destroy().await;
            return Err(crate::sessions::sandbox_error(e));
        }
        Ok((sandbox, database_env))
    }

    /// How a version of `app` runs.
    /// `database`: what [`Self::sandbox_with`] returned (the app's own variables win).
    pub fn plan(
        &self,
        app: &App,
        owner: &str,
        interface: Option<String>,
        database: BTreeMap<String, String>,
    ) -> Plan {
        let mut env = database;
        env.extend(app.env.clone());
        env.extend(app.secrets.clone());
        Plan {
            runtime: Runtime::parse(&app.runtime).unwrap_or(Runtime::Static),
            entry: app.entry.clone(),
            interface,
            root_path: self
                .config
                .domain
                .is_empty()
                .then(|| Self::prefix(owner, &app.name)),
            env,
        }
    }

    /// Puts a healthy instance in service; the one it replaces finishes its requests (up to
    /// 30 s), then stops.
    pub fn swap_in(&self, instance: Arc<Instance>) {
        self.invalidate_routes();
        let slot = self.slot(instance.app_id);
        slot.idle.store(false, Ordering::SeqCst);
        slot.set_start_error(None);
        if let Some(old) = slot.replace(Some(instance)) {
            tokio::spawn(drain(old));
        }
        self.enforce_max_running();
    }

    /// Beyond `max_running`, the least recently requested instances stop (idle).
    fn enforce_max_running(&self) {
        let mut running: Vec<(Instant, Arc<Slot>)> = self
            .slots
            .iter()
            .filter(|s| s.current().is_some())
            .map(|s| {
                let at = *s
                    .last_request
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                (at, s.clone())
            })
            .collect();
        if running.len() <= self.config.max_running {
            return;
        }
        running.sort_by_key(|(at, _)| *at);
        let excess = running.len() - self.config.max_running;
        for (_, slot) in running.into_iter().take(excess) {
            if let Some(instance) = slot.replace(None) {
                slot.idle.store(true, Ordering::SeqCst);
                slot.logs.push(
                    "platform",
                    "stopped to make room for other apps (apps.max_running); the next request starts it",
                );
                tokio::spawn(drain(instance));
            }
        }
    }

    /// The instance serving `routed` now, started from its live version if there is none.
    pub async fn instance_for(&self, routed: &Routed) -> Result<Arc<Instance>, StartFailure> {
        let app = &routed.app;
        let slot = self.slot(app.id);
        // A newer instance than the (possibly cached) row says is live is fine: it was
        // swapped in by a deploy meanwhile.
        let usable = |i: &Arc<Instance>| {
            Some(i.version) >= app.live_version && i.health() != instance::Health::Stopped
        };
        if let Some(i) = slot.current().filter(usable) {
            return Ok(i);
        }
        let _one = slot.starting.lock().await;
        if let Some(i) = slot.current().filter(usable) {
            return Ok(i);
        }
        let result = self.start_live(routed, &slot).await;
        match &result {
            Ok(instance) => self.swap_in(instance.clone()),
            Err(failure) => {
                slot.logs
                    .push("platform", &format!("could not start: {}", failure.message));
                slot.set_start_error(Some(failure.clone()));
            }
        }
        result
    }

    async fn start_live(
        &self,
        routed: &Routed,
        slot: &Slot,
    ) -> Result<Arc<Instance>, StartFailure> {
        let app = &routed.app;
        let internal = |e: ApiError| StartFailure {
            code: "start_failed",
            message: format!("the app could not be started: {e}"),
        };
        let version = app.live_version.ok_or(StartFailure {
            code: "not_deployed",
            message: "the app has no live version yet: deploy it".into(),
        })?;
        let row = self
            .store
            .app_version(app.id, version)
            .await
            .map_err(|e| internal(e.into()))?;
        let bundle = self
            .store
            .app_bundle(app.id, version)
            .await
            .map_err(|e| internal(e.into()))?
            .ok_or(StartFailure {
                code: "not_deployed",
                message: "the app's live version is gone".into(),
            })?;
        let interface = row.and_then(|r| r.launch).and_then(|l| {
            l.get("interface")
                .and_then(|i| i.as_str())
                .map(str::to_owned)
        });
        let (sandbox, database) = self
            .sandbox_with(app.user_id, bundle)
            .await
            .map_err(internal)?;
        slot.logs.push("platform", "woken by a request");
        let instance = Instance::launch(
            app.id,
            version,
            sandbox,
            self.plan(app, &routed.owner, interface, database),
            slot.logs.clone(),
            Duration::from_secs(self.config.start_timeout_seconds),
            Duration::from_secs(self.config.response_timeout_seconds),
        )
        .await?;
        // As a deploy says it, so a follower of the log knows it answers again.
        slot.logs
            .push("platform", &format!("version {version} is live again"));
        Ok(instance)
    }

    /// Stops instances idle for `apps.idle_stop_minutes`, and deletes apps (not pinned)
    /// without a request for `apps.idle_delete_hours`. `now` is a parameter so tests can
    /// move time.
    pub async fn sweep(&self, now: Instant, wall_now: DateTime<Utc>) {
        let idle_after = Duration::from_secs(self.config.idle_stop_minutes * 60);
        let slots: Vec<Arc<Slot>> = self.slots.iter().map(|s| s.clone()).collect();
        for slot in slots {
            let last = *slot
                .last_request
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if now.saturating_duration_since(last) >= idle_after
                && let Some(instance) = slot.replace(None)
            {
                slot.idle.store(true, Ordering::SeqCst);
                slot.logs.push(
                    "platform",
                    &format!(
                        "stopped after {} minutes without a request; the next request starts it",
                        self.config.idle_stop_minutes
                    ),
                );
                instance.stop().await;
            }
        }
        let hours = i64::try_from(self.config.idle_delete_hours).unwrap_or(i64::MAX / 3600);
        let before = wall_now - chrono::TimeDelta::hours(hours);
        match self.store.idle_apps(before).await {
            Ok(apps) => {
                for app in apps {
                    tracing::info!(app.id = %app.id, app.name = %app.name, "deleting an idle app");
                    if let Err(e) = self.remove(app.id).await {
                        tracing::warn!(app.id = %app.id, error = %e, "deleting an idle app");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "looking for idle apps"),
        }
    }

    /// Stops every instance (server shutdown).
    pub async fn shutdown(&self) {
        let slots: Vec<Arc<Slot>> = self.slots.iter().map(|s| s.clone()).collect();
        for slot in slots {
            if let Some(instance) = slot.replace(None) {
                instance.stop().await;
            }
        }
    }
}

/// Waits for the requests an instance taken out of service still serves, at most 30 s, then
/// stops it.
async fn drain(instance: Arc<Instance>) {
    // A request that took the instance just before the swap counts itself a moment later.
    tokio::time::sleep(Duration::from_millis(250)).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while instance.in_flight() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    instance.stop().await;
}
