//! A deploy, as a durable job of kind [`KIND`]: `validating` (each file's syntax with the
//! real interpreter, the import allowlist, the app object) → `installing` (declared
//! dependencies against the allowlist and what is installed here; nothing is downloaded) →
//! `starting` (the app's server in its own sandbox, until it answers HTTP) → `healthy` (the
//! version goes live and takes the traffic). A failure names its stage and, where it can,
//! the file and line, with the app's last log lines; the version is then `failed`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use sandpit_jobs::{Failure, Handler, JobContext};
use sandpit_sandbox::spec::default_env;
use sandpit_sandbox::{ProcessLimits, ProcessSpec, Sandbox};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::Apps;
use super::instance::{Instance, PORT};
use super::model::Runtime;
use super::packages::{self, Refusal};
use crate::projects::archive::{self, Others};

pub const KIND: &str = "app_deploy";

const VALIDATE_PY: &str = include_str!("scripts/validate.py");
const VALIDATE_JS: &str = include_str!("scripts/validate.js");
/// Files checked with `node --check` at most (one process each).
const MAX_CHECKED_SCRIPTS: usize = 200;

pub struct DeployJob(pub Arc<Apps>);

#[derive(Deserialize)]
struct Input {
    app_id: Uuid,
    version: i64,
}

/// Why a stage failed.
#[derive(Debug, Clone)]
struct StageError {
    stage: &'static str,
    code: String,
    message: String,
    file: Option<String>,
    line: Option<u32>,
}

impl StageError {
    fn new(stage: &'static str, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            stage,
            code: code.into(),
            message: message.into(),
            file: None,
            line: None,
        }
    }

    fn refused(stage: &'static str, r: Refusal) -> Self {
        Self {
            stage,
            code: r.code.into(),
            message: r.message,
            file: Some(r.file),
            line: r.line,
        }
    }
}

/// Destroys the deploy's sandbox unless it was handed to a running instance.
struct SandboxGuard(Option<Arc<dyn Sandbox>>);

impl Drop for SandboxGuard {
    fn drop(&mut self) {
        if let Some(sandbox) = self.0.take() {
            tokio::spawn(async move {
                let _ = sandbox.destroy().await;
            });
        }
    }
}

/// Ends the version when the job is stopped from outside (cancelled, or out of time on its
/// last attempt), so it does not stay `pending`.
struct PendingVersion {
    apps: Arc<Apps>,
    ctx: JobContext,
    app_id: Uuid,
    version: i64,
    armed: bool,
}

impl Drop for PendingVersion {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let job = self.ctx.job();
        let (state, error) = if self.ctx.is_cancelled() {
            ("cancelled", None)
        } else if job.attempts >= job.max_attempts {
            (
                "failed",
                Some(json!({
                    "stage": "deploy",
                    "code": "deploy_timeout",
                    "message": "the deploy took longer than its time limit",
                })),
            )
        } else {
            return;
        };
        let store = self.apps.store().clone();
        let (app_id, version) = (self.app_id, self.version);
        tokio::spawn(async move {
            let _ = store
                .end_app_version(app_id, version, state, error, Utc::now())
                .await;
        });
    }
}

#[async_trait]
impl Handler for DeployJob {
    fn concurrency(&self) -> usize {
        2
    }

    async fn run(&self, ctx: JobContext) -> Result<Value, Failure> {
        let input: Input = serde_json::from_value(ctx.job().input.clone())
            .map_err(|e| Failure::fatal("invalid_request", e.to_string()))?;
        let apps = &self.0;
        let store = apps.store();
        let internal =
            |e: sandpit_store::StoreError| Failure::retryable("internal_error", e.to_string());
        let gone = || Failure::fatal("app_deleted", "the app was deleted");
        let app = store
            .app(input.app_id)
            .await
            .map_err(internal)?
            .ok_or_else(gone)?;
        let owner = store
            .user_by_id(app.user_id)
            .await
            .map_err(internal)?
            .ok_or_else(gone)?;
        let version = store
            .app_version(app.id, input.version)
            .await
            .map_err(internal)?
            .ok_or_else(gone)?;
        if version.state != "pending" {
            // An attempt whose server died after it finished.
            return Ok(json!({ "version": version.version, "state": version.state }));
        }
        let mut pending = PendingVersion {
            apps: apps.clone(),
            ctx: ctx.clone(),
            app_id: app.id,
            version: version.version,
            armed: true,
        };
        let bundle = store
            .app_bundle(app.id, version.version)
            .await
            .map_err(internal)?
            .ok_or_else(gone)?;
        let runtime = Runtime::parse(&app.runtime).unwrap_or(Runtime::Static);
        let slot = apps.slot(app.id);
        slot.logs.push(
            "platform",
            &format!("deploying version {}", version.version),
        );

        match self
            .stages(&ctx, &app, &owner.username, runtime, bundle)
            .await
        {
            Ok((instance, launch)) => {
                let live = store
                    .make_app_version_live(app.id, version.version, launch.clone(), Utc::now())
                    .await;
                pending.armed = false;
                match live {
                    Ok(true) => {}
                    Ok(false) => {
                        instance.stop().await;
                        return Err(gone());
                    }
                    Err(e) => {
                        instance.stop().await;
                        return Err(internal(e));
                    }
                }
                apps.swap_in(instance);
                slot.logs
                    .push("platform", &format!("version {} is live", version.version));
                ctx.progress(100, Some("healthy")).await;
                Ok(json!({
                    "stage": "healthy",
                    "version": version.version,
                    "launch": launch,
                    "url": apps.url(&owner.username, &app.name),
                }))
            }
            Err(Outcome::Retry(failure)) => Err(failure),
            Err(Outcome::Failed(e)) => {
                pending.armed = false;
                let logs = slot.logs.last_text(30);
                let error = json!({
                    "stage": e.stage,
                    "code": e.code,
                    "message": e.message,
                    "file": e.file,
                    "line": e.line,
                    "logs": logs,
                });
                ctx.log(&format!("{} failed: {}", e.stage, e.message)).await;
                if let Err(err) = store
                    .end_app_version(app.id, version.version, "failed", Some(error), Utc::now())
                    .await
                {
                    tracing::warn!(app.id = %app.id, error = %err, "recording a failed deploy");
                }
                Err(Failure::fatal(
                    e.code,
                    format!("{}: {}", e.stage, e.message),
                ))
            }
        }
    }
}

enum Outcome {
    /// The platform could not do it now (no sandbox); another attempt may.
    Retry(Failure),
    Failed(StageError),
}

impl From<StageError> for Outcome {
    fn from(e: StageError) -> Self {
        Outcome::Failed(e)
    }
}

impl DeployJob {
    async fn stages(
        &self,
        ctx: &JobContext,
        app: &sandpit_store::App,
        owner: &str,
        runtime: Runtime,
        bundle: Vec<u8>,
    ) -> Result<(Arc<Instance>, Value), Outcome> {
        let apps = &self.0;
        let config = apps.config();
        ctx.progress(5, Some("validating")).await;
        let limits = archive::Limits {
            max_entries: config.max_files,
            max_file_bytes: config.max_bytes,
            max_total_bytes: config.max_bytes,
        };
        let files = archive::unpack(&bundle, limits, Others::Skip)
            .map_err(|e| StageError::new("validating", "invalid_files", e.to_string()))?
            .files;
        let (sandbox, database) = apps
            .sandbox_with(app.user_id, bundle)
            .await
            .map_err(|e| Outcome::Retry(Failure::retryable(e.code(), e.to_string())))?;
        let mut guard = SandboxGuard(Some(sandbox.clone()));
        let interface = match runtime {
            Runtime::Python => Some(validate_python(&*sandbox, app, config).await?),
            Runtime::Node => {
                validate_node(&*sandbox, app, &files, config).await?;
                None
            }
            Runtime::Static => {
                if !files.contains_key("index.html") {
                    return Err(StageError::new(
                        "validating",
                        "entry_not_found",
                        "a static site needs an index.html at its root",
                    )
                    .into());
                }
                None
            }
        };
        ctx.log(&format!("validated {} files", files.len())).await;
        ctx.progress(35, Some("installing")).await;
        for note in install(&*sandbox, runtime, &files, config).await? {
            ctx.log(&note).await;
        }
        ctx.progress(60, Some("starting")).await;
        let plan = apps.plan(app, owner, interface.clone(), database);
        let slot = apps.slot(app.id);
        let instance = Instance::launch(
            app.id,
            ctx.job().input["version"].as_i64().unwrap_or_default(),
            sandbox,
            plan,
            slot.logs.clone(),
            Duration::from_secs(config.start_timeout_seconds),
            Duration::from_secs(config.response_timeout_seconds),
        )
        .await
        .map_err(|f| StageError::new("starting", f.code, f.message))?;
        // The instance owns the sandbox now.
        guard.0 = None;
        Ok((instance, json!({ "interface": interface, "port": PORT })))
    }
}

/// Runs a checking program in the deploy's sandbox; its last stdout line is its JSON answer.
async fn check(
    sandbox: &dyn Sandbox,
    argv: Vec<String>,
    env: &[(&str, &str)],
    stage: &'static str,
) -> Result<(Value, sandpit_sandbox::Output), StageError> {
    let mut spec = ProcessSpec::new(argv);
    let mut vars = default_env();
    for (k, v) in env {
        vars.insert((*k).into(), (*v).into());
    }
    spec.env = vars;
    spec.limits = ProcessLimits {
        wall_ms: Some(30_000),
        cpu_ms: Some(20_000),
        output_bytes: Some(1 << 20),
        ..ProcessLimits::default()
    };
    let internal = |e: sandpit_sandbox::SandboxError| {
        StageError::new(
            stage,
            "validation_failed",
            format!("the check could not run: {e}"),
        )
    };
    let output = sandbox
        .spawn(spec)
        .await
        .map_err(internal)?
        .output(b"")
        .await
        .map_err(internal)?;
    if output.exit.limit == Some(sandpit_sandbox::LimitKind::WallTime) {
        return Err(StageError::new(
            stage,
            "validation_timeout",
            "loading the app took more than 30 s: does it start a server or loop when \
             imported? Start servers only under `if __name__ == \"__main__\":`",
        ));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let answer = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<Value>(l).ok());
    match answer {
        Some(v) => Ok((v, output)),
        None => {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
            Err(StageError::new(
                stage,
                "validation_failed",
                format!(
                    "the check ended without an answer ({:?}): {}",
                    output.exit.code,
                    tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
                ),
            ))
        }
    }
}

fn answered_error(stage: &'static str, answer: &Value) -> Option<StageError> {
    if answer["ok"].as_bool() == Some(true) {
        return None;
    }
    let e = &answer["error"];
    Some(StageError {
        stage,
        code: e["code"].as_str().unwrap_or("validation_failed").to_owned(),
        message: e["message"]
            .as_str()
            .unwrap_or("the app is not valid")
            .to_owned(),
        file: e["file"].as_str().map(str::to_owned),
        line: e["line"].as_u64().and_then(|l| u32::try_from(l).ok()),
    })
}

/// Python: syntax, imports and the app object by `validate.py`; answers the interface.
async fn validate_python(
    sandbox: &dyn Sandbox,
    app: &sandpit_store::App,
    config: &super::config::AppsConfig,
) -> Result<String, StageError> {
    let input = json!({
        "entry": app.entry,
        "packages": config.python.packages,
        "forbidden": config.python.forbidden,
    });
    let (answer, _) = check(
        sandbox,
        vec![
            "/usr/bin/python3".into(),
            "-I".into(),
            "-c".into(),
            VALIDATE_PY.into(),
            input.to_string(),
        ],
        &[("PYTHONDONTWRITEBYTECODE", "1")],
        "validating",
    )
    .await?;
    if let Some(e) = answered_error("validating", &answer) {
        return Err(e);
    }
    Ok(answer["interface"].as_str().unwrap_or("asgi3").to_owned())
}

/// `node --check` on each script, then `validate.js` for imports and the entry.
async fn validate_node(
    sandbox: &dyn Sandbox,
    app: &sandpit_store::App,
    files: &BTreeMap<String, Vec<u8>>,
    config: &super::config::AppsConfig,
) -> Result<(), StageError> {
    if !files.contains_key(&app.entry) {
        return Err(StageError {
            file: Some(app.entry.clone()),
            ..StageError::new(
                "validating",
                "entry_not_found",
                format!("the entry file {} does not exist", app.entry),
            )
        });
    }
    let scripts: Vec<&String> = files
        .keys()
        .filter(|p| {
            !p.starts_with("node_modules/")
                && (p.ends_with(".js") || p.ends_with(".cjs") || p.ends_with(".mjs"))
        })
        .take(MAX_CHECKED_SCRIPTS)
        .collect();
    for script in &scripts {
        let mut spec = ProcessSpec::new(["/usr/bin/node", "--check", script.as_str()]);
        spec.limits.wall_ms = Some(20_000);
        let output = sandbox
            .spawn(spec)
            .await
            .map_err(|e| StageError::new("validating", "validation_failed", e.to_string()))?
            .output(b"")
            .await
            .map_err(|e| StageError::new("validating", "validation_failed", e.to_string()))?;
        if output.exit.code != Some(0) {
            let (line, message) = node_syntax_error(&String::from_utf8_lossy(&output.stderr));
            let at = line.map_or_else(|| (*script).clone(), |l| format!("{script}:{l}"));
            return Err(StageError {
                file: Some((*script).clone()),
                line,
                ..StageError::new("validating", "syntax_error", format!("{at}: {message}"))
            });
        }
    }
    let input = json!({
        "entry": app.entry,
        "files": scripts,
        "packages": config.node.packages,
        "forbidden": config.node.forbidden,
    });
    let (answer, _) = check(
        sandbox,
        vec![
            "/usr/bin/node".into(),
            "-e".into(),
            VALIDATE_JS.into(),
            input.to_string(),
        ],
        &[],
        "validating",
    )
    .await?;
    match answered_error("validating", &answer) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The line and message of `node --check`'s report: `/workspace/a.js:3`, …, `SyntaxError: …`.
fn node_syntax_error(stderr: &str) -> (Option<u32>, String) {
    let line = stderr
        .lines()
        .next()
        .and_then(|first| first.rsplit_once(':'))
        .and_then(|(_, n)| n.trim().parse().ok());
    let message = stderr
        .lines()
        .find(|l| l.contains("Error:"))
        .unwrap_or("the file does not parse")
        .trim()
        .to_owned();
    (line, message)
}

// Raw strings: a `\` line continuation would eat the indentation Python needs.
const PY_VERSIONS: &str = r#"import importlib.metadata as m, json, sys
out = {}
for name in sys.argv[1:]:
    try:
        out[name] = m.version(name)
    except m.PackageNotFoundError:
        out[name] = None
print(json.dumps(out))
"#;

const NODE_VERSIONS: &str = r#"const fs = require('fs');
const out = {};
for (const name of JSON.parse(process.argv.at(-1))) {
  out[name] = null;
  for (const dir of (process.env.NODE_PATH || '').split(':')) {
    try { out[name] = JSON.parse(fs.readFileSync(dir + '/' + name + '/package.json', 'utf8')).version; break; } catch {}
  }
}
console.log(JSON.stringify(out));
"#;

/// Checks declared dependencies; returns what was found, as log lines.
async fn install(
    sandbox: &dyn Sandbox,
    runtime: Runtime,
    files: &BTreeMap<String, Vec<u8>>,
    config: &super::config::AppsConfig,
) -> Result<Vec<String>, StageError> {
    let refused = |r| StageError::refused("installing", r);
    let (wanted, node) = match runtime {
        Runtime::Python => match files.get("requirements.txt") {
            Some(text) => (
                packages::requirements(&String::from_utf8_lossy(text)).map_err(refused)?,
                false,
            ),
            None => return Ok(vec!["no requirements.txt: nothing to install".into()]),
        },
        Runtime::Node => match files.get("package.json") {
            Some(text) => (
                packages::node_dependencies(&String::from_utf8_lossy(text)).map_err(refused)?,
                true,
            ),
            None => return Ok(vec!["no package.json: nothing to install".into()]),
        },
        Runtime::Static => return Ok(Vec::new()),
    };
    let rules = if node { &config.node } else { &config.python };
    packages::check_allowed(&wanted, &rules.packages, runtime.as_str()).map_err(refused)?;
    if wanted.is_empty() {
        return Ok(vec!["no dependencies declared".into()]);
    }
    let names: Vec<String> = wanted.iter().map(|w| w.name.clone()).collect();
    let (answer, _) = if node {
        check(
            sandbox,
            vec![
                "/usr/bin/node".into(),
                "-e".into(),
                NODE_VERSIONS.into(),
                serde_json::to_string(&names).unwrap_or_default(),
            ],
            &[("NODE_PATH", "/usr/share/nodejs")],
            "installing",
        )
        .await?
    } else {
        let mut argv: Vec<String> = vec![
            "/usr/bin/python3".into(),
            "-I".into(),
            "-c".into(),
            PY_VERSIONS.into(),
        ];
        argv.extend(names.iter().cloned());
        check(sandbox, argv, &[], "installing").await?
    };
    let mut notes = Vec::new();
    for w in &wanted {
        let have = answer[&w.name].as_str();
        packages::check_installed(w, have, node).map_err(refused)?;
        notes.push(format!(
            "{} {} is installed (offline: nothing was downloaded)",
            w.name,
            have.unwrap_or_default()
        ));
    }
    Ok(notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_check_reports_are_read() {
        let stderr = "/workspace/server.js:3\nfunction (\n^^^^^^^^\n\nSyntaxError: Function statements require a function name\n    at wrapSafe (node:internal)\n";
        let (line, message) = node_syntax_error(stderr);
        assert_eq!(line, Some(3));
        assert_eq!(
            message,
            "SyntaxError: Function statements require a function name"
        );
        assert_eq!(node_syntax_error("").0, None);
    }
}
