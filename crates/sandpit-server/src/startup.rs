//! Building and running the server.

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum_extra::extract::cookie::Key;
use rand::RngCore;
use sandpit_store::Store;
use secrecy::ExposeSecret;
use tokio::net::TcpListener;

use crate::auth::origin::TrustedOrigins;
use crate::config::Config;
use crate::limits::RateLimits;
use crate::metrics::Metrics;
use crate::state::AppState;

/// A built server, bound to its port but not yet serving.
pub struct App {
    listener: TcpListener,
    router: Router,
    state: AppState,
}

/// Opens (and, when configured, migrates) the store the config names.
pub async fn open_store(config: &Config, migrate: bool) -> anyhow::Result<Arc<dyn Store>> {
    ensure_data_dir(&config.data_dir)?;
    let store = sandpit_store::connect(
        config.database_url().expose_secret(),
        config.database.max_connections,
    )
    .await
    .context("cannot open the database")?;
    if migrate {
        store
            .migrate()
            .await
            .context("cannot migrate the database")?;
    }
    Ok(store)
}

fn ensure_data_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create data directory {}", dir.display()))
}

/// The signing secret: from the config, else `data_dir/secret.key`, created on first start.
fn signing_secret(config: &Config) -> anyhow::Result<Vec<u8>> {
    if let Some(secret) = &config.auth.secret {
        return Ok(secret.expose_secret().as_bytes().to_vec());
    }
    let path = config.data_dir.join("secret.key");
    let mut bytes = vec![0u8; 64];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
    {
        Ok(mut file) => {
            file.write_all(hex::encode(&bytes).as_bytes())
                .and_then(|()| file.sync_all())
                .with_context(|| format!("cannot write {}", path.display()))?;
            tracing::info!(path = %path.display(), "generated a new signing secret");
            Ok(bytes)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let bytes = hex::decode(text.trim())
                .with_context(|| format!("{} is not hex", path.display()))?;
            anyhow::ensure!(bytes.len() >= 32, "{} holds under 32 bytes", path.display());
            Ok(bytes)
        }
        Err(e) => Err(e).with_context(|| format!("cannot create {}", path.display())),
    }
}

/// A 64-byte cookie signing key derived from the secret (domain-separated, so the secret can
/// sign other things later without the uses colliding).
/// The workspaces of the sessions the store says are live, for the sandbox backend's start-up
/// reconciliation (empty, with a warning, when the store cannot say).
async fn live_workspaces(config: &Config, store: &dyn Store) -> Vec<std::path::PathBuf> {
    match store.live_sessions().await {
        Ok(sessions) => sessions
            .iter()
            .map(|s| crate::sessions::workspace_dir(&config.workspaces_dir(), s.id))
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "listing live sessions for the sandbox reconcile");
            Vec::new()
        }
    }
}

fn cookie_key(secret: &[u8]) -> Key {
    use sha2::{Digest, Sha512};
    let derived = Sha512::new()
        .chain_update(b"sandpit cookie key v1\0")
        .chain_update(secret)
        .finalize();
    Key::from(&derived)
}

/// The built-in labs and those of `labs.dirs`; a broken lab is skipped with its problems
/// logged, never fatal.
fn load_labs(config: &Config) -> sandpit_labs::Catalog {
    let (catalog, skipped) =
        sandpit_labs::Catalog::load(&config.labs.dirs, crate::sessions::ENVIRONMENTS);
    for lab in &skipped {
        let problems: Vec<String> = lab.problems.iter().map(ToString::to_string).collect();
        tracing::warn!(lab.source = %lab.source, problems = %problems.join("; "), "lab skipped");
    }
    tracing::info!(labs = catalog.len(), skipped = skipped.len(), "labs loaded");
    catalog
}

impl App {
    /// Opens the store, loads or creates the signing secret, and binds the listener.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let store = open_store(&config, config.database.migrate_on_start).await?;
        Self::build_with_store(config, store).await
    }

    /// Like [`App::build`] with a store opened by the caller.
    pub async fn build_with_store(config: Config, store: Arc<dyn Store>) -> anyhow::Result<Self> {
        ensure_data_dir(&config.data_dir)?;
        let secret = signing_secret(&config)?;
        let listener = TcpListener::bind(config.server.bind)
            .await
            .with_context(|| format!("cannot listen on {}", config.server.bind))?;
        let bound = listener.local_addr()?;
        let public_url = config.public_url(bound);
        let http = reqwest::Client::builder()
            .user_agent(concat!("sandpit/", env!("CARGO_PKG_VERSION")))
            .timeout(Duration::from_secs(config.auth.github.timeout_seconds))
            .build()
            .context("cannot build the HTTP client")?;
        let metrics = Arc::new(Metrics::new());
        let llm = crate::llm::Llm::new(&config.llm, http.clone())
            .context("invalid [llm] configuration")?
            .with_metrics(metrics.llm_completions.clone());
        let cluster = Arc::new(crate::cluster::Cluster::new(
            config.cluster.clone(),
            store.clone(),
            &secret,
            bound,
        ));
        cluster.join().await.context("joining the cluster")?;
        let sandboxes = Arc::new(
            crate::sandbox::Sandboxes::start(
                &config.sandbox,
                crate::sandbox::KubeSettings {
                    table: &config.kubernetes,
                    instance_id: cluster.id().to_string(),
                    live_owners: cluster.live_ids().await,
                    live_workspaces: live_workspaces(&config, store.as_ref()).await,
                    warm_spec: crate::runs::service::sandbox_spec(&config.runs.default_limits),
                },
            )
            .await,
        );
        let runs = Arc::new(crate::runs::service::Runs::new(
            config.runs.clone(),
            sandboxes.clone(),
        ));
        let catalog = Arc::new(load_labs(&config));
        let docker = crate::docker::Docker::new(crate::docker::DockerSettings::from_config(
            &config.docker,
            &config.data_dir,
        ));
        // Engine disks a killed server left go first; then whether a box here can run a
        // container is found out by trying, in the background: until it answers, docker
        // sessions are refused with Retry-After.
        docker.reconcile().await;
        {
            let (docker, sandboxes) = (docker.clone(), sandboxes.clone());
            tokio::spawn(async move { docker.check(&sandboxes).await });
        }
        let sessions = Arc::new(crate::sessions::Sessions::new(
            config.sessions.clone(),
            crate::sessions::SessionsDeps {
                store: store.clone(),
                sandboxes: sandboxes.clone(),
                workspaces: config.workspaces_dir(),
                labs: catalog.clone(),
                docker: docker.clone(),
                cluster: cluster.clone(),
            },
            &secret,
        ));
        if let Err(e) = sessions.reconcile().await {
            tracing::warn!(error = %e, "reconciling sessions at start-up");
        }
        let llm = Arc::new(llm);
        let labs = Arc::new(crate::labs::Labs::new(
            catalog,
            store.clone(),
            sessions.clone(),
            llm.clone(),
            config.labs.hints_per_minute,
            Duration::from_secs(config.sessions.max_ttl_seconds),
        ));
        let queue = sandpit_jobs::Queue::new(store.clone());
        let projects = Arc::new(crate::projects::Projects::new(
            store.clone(),
            config.projects.clone(),
            sessions.clone(),
        ));
        let databases = Arc::new(
            crate::databases::Databases::new(
                config.user_databases.clone(),
                &config.data_dir,
                store.clone(),
                sandboxes.clone(),
            )
            .context("user_databases")?,
        );
        let apps = Arc::new(crate::apps::Apps::new(
            config.apps.clone(),
            crate::apps::AppsDeps {
                store: store.clone(),
                queue: queue.clone(),
                sandboxes: sandboxes.clone(),
                sessions: sessions.clone(),
                projects: projects.clone(),
                public_url: public_url.clone().into(),
                databases: databases.clone(),
                max_attempts: config.jobs.max_attempts,
            },
        ));
        let state = AppState {
            queue,
            apps,
            databases,
            projects,
            llm,
            labs,
            sandboxes,
            docker,
            runs,
            sessions,
            cluster,
            secure_cookies: public_url.starts_with("https://"),
            origins: Arc::new(TrustedOrigins::new(
                &config.server.public_url,
                &config.server.cors_allowed_origins,
                bound,
            )),
            public_url: public_url.into(),
            cookie_key: cookie_key(&secret),
            limits: Arc::new(RateLimits::new(&config.rate_limit)),
            metrics,
            auth_cache: Arc::default(),
            config: Arc::new(config),
            store,
            http,
        };
        let router = crate::routes::router(state.clone());
        Ok(Self {
            listener,
            router,
            state,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| self.state.config.server.bind)
    }

    pub fn port(&self) -> u16 {
        self.addr().port()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until SIGINT or SIGTERM, then lets in-flight requests finish (up to the grace
    /// period).
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `stop` completes, then shuts down gracefully.
    pub async fn run_until(
        self,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let addr = self.addr();
        let grace = Duration::from_secs(self.state.config.server.shutdown_grace_seconds);
        tracing::info!(
            addr = %addr,
            url = %self.state.public_url,
            store = self.state.store.backend(),
            trusted_origins = ?self.state.origins.list(),
            "listening"
        );
        let housekeeping = tokio::spawn(housekeeping(self.state.clone()));
        let reaper = tokio::spawn(self.state.sessions.clone().reap_forever());
        let heartbeat = tokio::spawn(self.state.cluster.clone().run(self.state.clone()));
        let workers = crate::jobs::start_workers(&self.state);
        let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
        // Small writes go out at once: a terminal's keystroke echo is a few bytes, and Nagle's
        // algorithm with the peer's delayed ACK would hold each for ~40 ms.
        use axum::serve::ListenerExt;
        let listener = self.listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "TCP_NODELAY");
            }
        });
        let serve = axum::serve(
            listener,
            self.router
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            stop.await;
            tracing::info!("shutting down");
            let _ = stopping_tx.send(());
        });
        let result = tokio::select! {
            result = serve => result.context("server failed"),
            () = async {
                if stopping_rx.await.is_ok() {
                    tokio::time::sleep(grace).await;
                } else {
                    std::future::pending::<()>().await;
                }
            } => {
                tracing::warn!(grace_s = grace.as_secs(), "requests still running after the grace period; stopping anyway");
                Ok(())
            }
        };
        housekeeping.abort();
        reaper.abort();
        // Jobs still running after the grace period are stopped; their leases expire and they
        // run again (here after a restart, or on another server).
        workers.stop(grace).await;
        self.state.cluster.begin_leaving();
        self.state.apps.shutdown().await;
        self.state.sessions.shutdown().await;
        // Only now: until its sandboxes are gone, no other replica may start its sessions'.
        heartbeat.abort();
        self.state.cluster.leave().await;
        self.state.runs.shutdown().await;
        self.state.store.close().await;
        tracing::info!("stopped");
        result
    }
}

/// Periodic upkeep: forget idle rate-limit buckets, stop idle apps and delete long idle ones,
/// delete long-dead credentials and long finished jobs.
async fn housekeeping(state: AppState) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    let mut minutes = 0u64;
    loop {
        tick.tick().await;
        state.limits.prune();
        state.labs.prune();
        state
            .apps
            .sweep(std::time::Instant::now(), chrono::Utc::now())
            .await;
        if minutes.is_multiple_of(60) {
            let cutoff = chrono::Utc::now() - chrono::Duration::days(7);
            match state.store.purge_credentials(cutoff).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(count = n, "purged dead credentials"),
                Err(e) => tracing::warn!(error = %e, "could not purge credentials"),
            }
            let days = i64::try_from(state.config.jobs.keep_finished_days).unwrap_or(i64::MAX);
            let finished_before = chrono::Utc::now() - chrono::Duration::days(days);
            match state.store.purge_jobs(finished_before).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(count = n, "purged finished jobs"),
                Err(e) => tracing::warn!(error = %e, "could not purge finished jobs"),
            }
        }
        minutes += 1;
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
