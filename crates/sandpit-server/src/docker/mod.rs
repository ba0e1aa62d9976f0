//! The `docker` environment: sessions whose sandbox runs a container engine of its own
//! (rootless Podman, as `docker`; see `sandpit_sandbox::spec::ContainersSpec`), with the base
//! images `sandpit images build` made. Whether this host can do it is found out once, at
//! start-up, by doing it — a box with an engine runs a container — and the answer (or the
//! reason it cannot) is what `/readyz` reports and what starting such a session is refused
//! with. Nothing is faked: without an engine there is no docker environment.

pub mod config;

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use sandpit_sandbox::spec::containers;
use sandpit_sandbox::{
    ContainersSpec, ProcessLimits, ProcessSpec, Sandbox, SandboxLimits, SandboxSpec,
};

use crate::error::ApiError;
use crate::sandbox::Sandboxes;

/// The environment's name in sessions and lab manifests.
pub const ENVIRONMENT: &str = "docker";

/// What a docker session's box gets beyond a plain session's.
#[derive(Debug, Clone)]
pub struct DockerSettings {
    pub enabled: bool,
    /// Where `sandpit images` keeps the base images (`current` is the store in use).
    pub images_dir: PathBuf,
    /// Where engines' disks live while their boxes do (`data_dir/engines`).
    pub disks_dir: PathBuf,
    pub disk_bytes: u64,
    pub max_files: u64,
    /// Floors on a docker session's box: builds need more than a plain shell.
    pub memory_bytes: u64,
    pub pids: u64,
}

/// Whether the docker environment works here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// The start-up check has not finished.
    Checking,
    Available {
        /// The base images' tags.
        images: Vec<String>,
    },
    Unavailable(String),
}

pub struct Docker {
    settings: DockerSettings,
    status: RwLock<Status>,
}

impl DockerSettings {
    pub fn from_config(config: &config::DockerConfig, data_dir: &Path) -> Self {
        Self {
            enabled: config.enabled,
            images_dir: config.images_dir(data_dir),
            disks_dir: data_dir.join("engines"),
            disk_bytes: config.disk_mb << 20,
            max_files: config.disk_max_files,
            memory_bytes: config.memory_mb << 20,
            pids: config.processes,
        }
    }
}

impl Docker {
    pub fn new(settings: DockerSettings) -> Arc<Self> {
        let status = if settings.enabled {
            Status::Checking
        } else {
            Status::Unavailable("turned off (docker.enabled = false)".into())
        };
        Arc::new(Self {
            settings,
            status: RwLock::new(status),
        })
    }

    pub fn status(&self) -> Status {
        self.status
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set(&self, status: Status) {
        *self.status.write().unwrap_or_else(|p| p.into_inner()) = status;
    }

    /// The base-image store new boxes get, if `sandpit images build` made one.
    fn image_store(&self) -> Option<PathBuf> {
        sandpit_sandbox::images::current_store(&self.settings.images_dir)
    }

    /// Finds out whether a box here can run a container, and records the answer. Started in
    /// the background at start-up; a second call checks again.
    pub async fn check(&self, sandboxes: &Sandboxes) {
        if !self.settings.enabled {
            return;
        }
        let status = match self.probe(sandboxes).await {
            Ok(images) => {
                tracing::info!(images = images.len(), "the docker environment is available");
                Status::Available { images }
            }
            Err(why) => {
                tracing::warn!(reason = %why, "the docker environment is unavailable");
                Status::Unavailable(why)
            }
        };
        self.set(status);
    }

    async fn probe(&self, sandboxes: &Sandboxes) -> Result<Vec<String>, String> {
        let backend = sandboxes
            .backend()
            .map_err(|why| format!("no sandboxes: {why}"))?;
        for tool in ["/usr/bin/podman", "/usr/bin/crun", "/usr/bin/nsenter"] {
            if !std::path::Path::new(tool).exists() {
                return Err(format!(
                    "{tool} is not installed (Debian: podman, crun, util-linux)"
                ));
            }
        }
        let store = self.image_store().ok_or_else(|| {
            format!(
                "no base images in {}: run `sandpit images build`",
                self.settings.images_dir.display()
            )
        })?;
        let mut spec = SandboxSpec::new(SandboxLimits {
            memory_bytes: 256 << 20,
            pids: 128,
            cpu_millicores: None,
            workspace_bytes: 4 << 20,
            tmp_bytes: 4 << 20,
            shm_bytes: 4 << 20,
        });
        spec.containers = Some(ContainersSpec {
            dir: self.settings.disks_dir.clone(),
            disk_bytes: 64 << 20,
            max_files: 10_000,
            image_store: Some(store),
        });
        let sandbox = backend
            .create(&spec)
            .await
            .map_err(|e| format!("a box with an engine: {e}"))?;
        let result = async {
            let listed = run(
                sandbox.as_ref(),
                &["docker", "images", "--format", "{{.Repository}}:{{.Tag}}"],
            )
            .await?;
            let images: Vec<String> = listed
                .lines()
                .filter(|l| !l.is_empty() && !l.starts_with("time="))
                .map(|l| l.trim_start_matches("docker.io/library/").to_owned())
                .collect();
            let first = images
                .first()
                .ok_or("the base-image store holds no image: run `sandpit images build`")?;
            run(
                sandbox.as_ref(),
                &["docker", "run", "--rm", "--network", "none", first, "true"],
            )
            .await
            .map_err(|e| format!("a container would not run: {e}"))?;
            Ok(images)
        }
        .await;
        let _ = sandbox.destroy().await;
        result
    }

    /// Refuses with why, unless docker sessions can start.
    pub fn require(&self) -> Result<(), ApiError> {
        match self.status() {
            Status::Available { .. } => Ok(()),
            Status::Checking => Err(ApiError::Unavailable {
                code: "docker_unavailable",
                message: "the docker environment is still being checked; try again in a few \
                          seconds"
                    .into(),
                retry_after: Some(std::time::Duration::from_secs(5)),
            }),
            Status::Unavailable(why) => Err(ApiError::Unavailable {
                code: "docker_unavailable",
                message: format!("the docker environment is not available on this server: {why}"),
                retry_after: None,
            }),
        }
    }

    /// A docker session's box: the plain session's, with an engine and the floors.
    pub fn spec(&self, mut spec: SandboxSpec) -> SandboxSpec {
        let s = &self.settings;
        spec.limits.memory_bytes = spec.limits.memory_bytes.max(s.memory_bytes);
        spec.limits.pids = spec.limits.pids.max(s.pids);
        spec.containers = Some(ContainersSpec {
            dir: s.disks_dir.clone(),
            disk_bytes: s.disk_bytes,
            max_files: s.max_files,
            image_store: self.image_store(),
        });
        spec
    }

    /// A process of a docker session: the engine's variables, and files as large as the
    /// engine's disk (image layers are files; the disk is their real bound).
    pub fn prepare_process(&self, spec: &mut ProcessSpec) {
        containers::apply_env(spec);
        spec.limits.file_size_bytes = spec.limits.file_size_bytes.max(self.settings.disk_bytes);
        spec.limits.open_files = spec.limits.open_files.max(4096);
    }

    /// Engines' disks a killed server left behind (their boxes died with it).
    pub async fn reconcile(&self) {
        let dir = &self.settings.disks_dir;
        let detached = sandpit_sandbox::loopdev::detach_stale(dir).await;
        let removed = sandpit_sandbox::loopdev::remove_stale_scratch(dir);
        if detached + removed > 0 {
            tracing::info!(detached, removed, "engine disks of an earlier run removed");
        }
    }
}

/// Runs an engine command in the probe's box; its output, or why it failed.
async fn run(sandbox: &dyn Sandbox, argv: &[&str]) -> Result<String, String> {
    let mut spec = ProcessSpec::new(argv.iter().copied());
    containers::apply_env(&mut spec);
    spec.env.insert("HOME".into(), "/workspace".into());
    spec.limits = ProcessLimits {
        wall_ms: Some(60_000),
        cpu_ms: None,
        file_size_bytes: 64 << 20,
        open_files: 4096,
        output_bytes: Some(1 << 20),
    };
    let out = sandbox
        .spawn(spec)
        .await
        .map_err(|e| e.to_string())?
        .output(b"")
        .await
        .map_err(|e| e.to_string())?;
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    if out.exit.code == Some(0) {
        Ok(text(&out.stdout))
    } else {
        let err = text(&out.stderr);
        let last = err
            .lines()
            .rev()
            .find(|l| !l.contains("level=warning") && !l.trim().is_empty())
            .unwrap_or("no output");
        Err(format!("`{}` failed: {last}", argv.join(" ")))
    }
}
