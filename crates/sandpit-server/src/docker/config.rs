//! `[docker]`: the docker environment — whether to offer it, where the base images are, and
//! what a docker session's box gets.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::ConfigError;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DockerConfig {
    /// Offer the docker environment when this host can run it (checked at start-up).
    pub enabled: bool,
    /// Where `sandpit images build` keeps the base images. Empty: `data_dir/images`.
    pub images_dir: PathBuf,
    /// The Debian mirror base images are built from.
    pub debian_mirror: String,
    /// A docker session's engine disk: images, build layers and containers together.
    pub disk_mb: u64,
    /// Entries the engine's disk can hold.
    pub disk_max_files: u64,
    /// Floors on a docker session's memory and processes (builds need more than a shell).
    pub memory_mb: u64,
    pub processes: u64,
}

impl Default for DockerConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            images_dir: PathBuf::new(),
            debian_mirror: "http://deb.debian.org/debian".into(),
            disk_mb: 4096,
            disk_max_files: 500_000,
            memory_mb: 1024,
            processes: 512,
        }
    }
}

impl DockerConfig {
    /// The images directory, `data_dir/images` when not set.
    pub fn images_dir(&self, data_dir: &Path) -> PathBuf {
        if self.images_dir.as_os_str().is_empty() {
            data_dir.join("images")
        } else {
            self.images_dir.clone()
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, problem: &str| ConfigError::Invalid {
            key,
            problem: problem.to_owned(),
        };
        if self.disk_mb < 64 {
            return Err(invalid("docker.disk_mb", "must be at least 64"));
        }
        if self.disk_max_files < 1000 {
            return Err(invalid("docker.disk_max_files", "must be at least 1000"));
        }
        if self.memory_mb < 128 {
            return Err(invalid("docker.memory_mb", "must be at least 128"));
        }
        if self.processes < 64 {
            return Err(invalid("docker.processes", "must be at least 64"));
        }
        if !(self.debian_mirror.starts_with("http://")
            || self.debian_mirror.starts_with("https://"))
        {
            return Err(invalid(
                "docker.debian_mirror",
                "must be an http:// or https:// URL",
            ));
        }
        Ok(())
    }
}
