//! The embedded engine: each user's database is `app.sqlite` in a directory of its own under
//! `data_dir/user-databases`, bound into their apps' sandboxes at `/data`. What is in that
//! directory is the apps' to write, so the server never opens it: the viewer (`viewer.py`)
//! runs in a sandbox of its own with the directory bound the same way. The file grows only
//! as far as a sandboxed process may write one (`ProcessLimits`' file size, 16 MiB).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sandpit_sandbox::{
    ProcessLimits, ProcessSpec, SandboxLimits, SandboxSpec, Volume, VolumeTarget, spec::default_env,
};
use serde_json::{Value, json};
use uuid::Uuid;

use super::config::UserDatabasesConfig;
use crate::error::ApiError;
use crate::sandbox::Sandboxes;

pub const FILE: &str = "app.sqlite";
/// Where apps (and the viewer) find the directory.
pub const MOUNT: &str = "/data";
const VIEWER: &str = include_str!("viewer.py");

pub fn app_url() -> String {
    format!("sqlite:///{MOUNT}/{FILE}")
}

pub fn dir(root: &Path, user_id: Uuid) -> PathBuf {
    root.join(user_id.simple().to_string())
}

pub fn volume(root: &Path, user_id: Uuid) -> Volume {
    Volume {
        source: dir(root, user_id),
        target: VolumeTarget::parse(MOUNT).expect("a valid volume target"),
        read_only: false,
    }
}

/// Makes the directory and an empty database file (SQLite takes an empty file as an empty
/// database). Each sandbox has a uid of its own, and only this user's sandboxes ever see the
/// directory: it and the file are open to all of them.
pub fn create(root: &Path, user_id: Uuid) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = dir(root, user_id);
    std::fs::create_dir_all(root)?;
    std::fs::create_dir(&dir)?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))?;
    let file = dir.join(FILE);
    std::fs::File::create_new(&file)?;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666))
}

/// The file's size, if it is still a plain file (never through a link an app put there).
pub fn size(root: &Path, user_id: Uuid) -> Option<u64> {
    std::fs::symlink_metadata(dir(root, user_id).join(FILE))
        .ok()
        .filter(std::fs::Metadata::is_file)
        .map(|m| m.len())
}

/// Removes the directory and all in it (`remove_dir_all` does not follow links).
pub fn delete(root: &Path, user_id: Uuid) -> std::io::Result<()> {
    match std::fs::remove_dir_all(dir(root, user_id)) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Runs one viewer request against the user's file in a fresh sandbox; the `ok` part of
/// its answer, or its error as the API's.
pub async fn view(
    sandboxes: &Arc<Sandboxes>,
    config: &UserDatabasesConfig,
    root: &Path,
    user_id: Uuid,
    mut request: Value,
) -> Result<Value, ApiError> {
    let backend = sandboxes.backend().map_err(|why| {
        crate::sessions::sandbox_error(sandpit_sandbox::SandboxError::Unavailable(why.to_string()))
    })?;
    request["max_rows"] = json!(config.max_rows);
    request["max_cell_chars"] = json!(config.max_cell_chars);
    request["timeout_ms"] = json!(config.statement_timeout_ms);
    let spec = SandboxSpec {
        hostname: "db-viewer".into(),
        volumes: vec![volume(root, user_id)],
        ..SandboxSpec::new(SandboxLimits {
            memory_bytes: 128 << 20,
            pids: 8,
            cpu_millicores: Some(1000),
            workspace_bytes: 1 << 20,
            tmp_bytes: 16 << 20,
            shm_bytes: 1 << 20,
        })
    };
    let sandbox = backend
        .create(&spec)
        .await
        .map_err(crate::sessions::sandbox_error)?;
    let mut process = ProcessSpec::new(["/usr/bin/python3", "-I", "-c", VIEWER]);
    process.env = default_env();
    process.limits = ProcessLimits {
        wall_ms: Some(config.statement_timeout_ms + 3000),
        cpu_ms: Some(config.statement_timeout_ms + 2000),
        // A write may grow the file as far as an app could (their processes have the default
        // file size limit too), no further.
        output_bytes: Some(16 << 20),
        ..ProcessLimits::default()
    };
    let output = match sandbox.spawn(process).await {
        Ok(p) => p.output(request.to_string().as_bytes()).await,
        Err(e) => Err(e),
    };
    let _ = sandbox.destroy().await;
    let output = output.map_err(crate::sessions::sandbox_error)?;
    let answer: Value = serde_json::from_slice(&output.stdout).map_err(|_| {
        ApiError::internal(anyhow::anyhow!(
            "the database viewer answered no JSON (exit {:?}): {}",
            output.exit,
            String::from_utf8_lossy(&output.stderr)
                .chars()
                .take(2000)
                .collect::<String>()
        ))
    })?;
    if let Some(ok) = answer.get("ok") {
        return Ok(ok.clone());
    }
    let code = answer["error"]["code"].as_str().unwrap_or("");
    let message = answer["error"]["message"]
        .as_str()
        .unwrap_or("the database refused the statement")
        .to_owned();
    Err(super::viewer_error(code, message))
}
