//! A Piston v2-compatible API under `/piston`: `GET /piston/api/v2/runtimes` and
//! `POST /piston/api/v2/execute`, answered by the runs engine. Piston has no authentication of
//! its own and its clients send no headers beyond the URL, so besides `Authorization: Bearer`
//! a sandpit token is taken as the password of HTTP Basic authentication — which a client puts
//! in its server URL (`http://sandpit:TOKEN@host/piston`) — never in a path that logs record.
//! Errors are Piston's: `400 {"message": "..."}`. See docs/compat.md.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{Next, from_fn};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::judge0::catalog::version_number;
use crate::auth::CurrentUser;
use crate::error::ApiError;
use crate::runs::model::{
    Encoding, Plan, RequestedLimits, RunFile, RunRequest, Stage, StageStatus,
};
use crate::runs::runtimes::{Registry, Runtime};
use crate::state::AppState;

/// Piston's names for sandpit's runtimes: `(sandpit runtime, Piston language, its aliases,
/// Piston's runtime name when it differs)`.
const NAMES: &[(&str, &str, &[&str], Option<&str>)] = &[
    ("bash", "bash", &["sh"], None),
    ("python3", "python", &["py", "py3", "python3"], None),
    (
        "node",
        "javascript",
        &["node-javascript", "node-js", "js"],
        Some("node"),
    ),
    ("c", "c", &["gcc"], Some("gcc")),
    ("cpp", "c++", &["cpp", "g++"], Some("gcc")),
    ("java", "java", &[], None),
    ("rust", "rust", &["rs"], None),
    ("go", "go", &["golang"], None),
];

pub fn router(state: &AppState) -> Router<AppState> {
    let routes = Router::new()
        .route("/piston/api/v2/runtimes", get(runtimes))
        .route("/piston/api/v2/execute", post(execute));
    super::with_api_layers(routes, state).layer(from_fn(basic_auth))
}

/// HTTP Basic credentials are read as `Bearer <password>`: the token is the password.
async fn basic_auth(mut req: Request, next: Next) -> Response {
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .and_then(|(_, b64)| STANDARD.decode(b64.trim()).ok())
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|pair| pair.split_once(':').map(|(_, pw)| pw.to_owned()))
        .and_then(|token| HeaderValue::from_str(&format!("Bearer {token}")).ok());
    if let Some(value) = bearer {
        req.headers_mut().insert(header::AUTHORIZATION, value);
    }
    next.run(req).await
}

/// Piston's error: a status and `{"message"}`.
struct PistonError(StatusCode, String);

impl From<ApiError> for PistonError {
    /// sandpit's status (401, 429, 503 …) with Piston's body; internal details are logged,
    /// never sent.
    fn from(e: ApiError) -> Self {
        let status = e.status();
        let message = match &e {
            ApiError::Internal(_) => "internal error".to_owned(),
            other => other.to_string(),
        };
        // Logs an internal error once, as the API's own responses do.
        let _ = e.into_envelope();
        PistonError(status, message)
    }
}

impl IntoResponse for PistonError {
    fn into_response(self) -> Response {
        (self.0, axum::Json(json!({"message": self.1}))).into_response()
    }
}

fn bad(message: impl Into<String>) -> PistonError {
    PistonError(StatusCode::BAD_REQUEST, message.into())
}

/// The runtime `language` names (a Piston name or alias) with Piston's names for it.
fn find<'a>(
    registry: &'a Registry,
    language: &str,
) -> Option<(&'a Runtime, &'static str, Option<&'static str>)> {
    NAMES
        .iter()
        .find_map(|(runtime, name, aliases, piston_runtime)| {
            let asked = language.eq_ignore_ascii_case(name)
                || aliases.iter().any(|a| language.eq_ignore_ascii_case(a));
            if !asked {
                return None;
            }
            registry.get(runtime).map(|r| (r, *name, *piston_runtime))
        })
}

async fn runtimes(
    State(state): State<AppState>,
    user: std::result::Result<CurrentUser, ApiError>,
) -> Result<axum::Json<Value>, PistonError> {
    user?;
    let registry = state.runs.registry().await?;
    let list: Vec<Value> = NAMES
        .iter()
        .filter_map(|(runtime, name, aliases, piston_runtime)| {
            let r = registry.get(runtime)?;
            let mut entry = json!({
                "language": name,
                "version": version_number(&r.version),
                "aliases": aliases,
            });
            if let Some(p) = piston_runtime {
                entry["runtime"] = json!(p);
            }
            Some(entry)
        })
        .collect();
    Ok(axum::Json(json!(list)))
}

#[derive(Debug, Deserialize)]
struct ExecuteRequest {
    language: Option<String>,
    version: Option<String>,
    #[serde(default)]
    files: Vec<PistonFile>,
    #[serde(default)]
    stdin: String,
    #[serde(default)]
    args: Vec<String>,
    compile_timeout: Option<i64>,
    run_timeout: Option<i64>,
    compile_cpu_time: Option<i64>,
    run_cpu_time: Option<i64>,
    compile_memory_limit: Option<i64>,
    run_memory_limit: Option<i64>,
}

#[derive(Debug, Deserialize)]
struct PistonFile {
    name: Option<String>,
    content: String,
    encoding: Option<String>,
}

async fn execute(
    State(state): State<AppState>,
    user: std::result::Result<CurrentUser, ApiError>,
    body: Bytes,
) -> Result<axum::Json<Value>, PistonError> {
    user?;
    let req: ExecuteRequest = serde_json::from_slice(&body)
        .map_err(|e| bad(format!("the body is not a valid request: {e}")))?;
    let registry = state.runs.registry().await?;
    let language = req
        .language
        .as_deref()
        .ok_or_else(|| bad("language is required as a string"))?;
    let version = req
        .version
        .as_deref()
        .ok_or_else(|| bad("version is required as a string"))?;
    let unknown = || bad(format!("{language}-{version} runtime is unknown"));
    let (runtime, name, _) = find(registry, language).ok_or_else(unknown)?;
    let installed = version_number(&runtime.version).to_owned();
    // "*", the installed version, or a prefix of it ("3", "3.11").
    let matches =
        version == "*" || installed == version || installed.starts_with(&format!("{version}."));
    if !matches {
        return Err(unknown());
    }
    let plan = plan(&state, registry, runtime, req)?;
    let compiled = runtime.compiled;
    let result = state.runs.execute(Uuid::now_v7(), plan).await?;
    let mut answer = json!({"language": name, "version": installed});
    if compiled {
        answer["compile"] = result.compile.as_ref().map_or(Value::Null, stage);
    }
    answer["run"] = match &result.run {
        Some(run) => stage(run),
        // The compile step failed: Piston answers a run that did not happen.
        None => json!({"stdout": "", "stderr": "", "output": "", "code": null, "signal": null,
                       "message": null, "status": null}),
    };
    Ok(axum::Json(answer))
}

/// The request as a runs request, validated as `POST /api/v1/runs` validates one (files as
/// workspace paths, the first the program, limits within the maximum). Piston's own ranges
/// are checked first so a refusal names Piston's field.
fn plan(
    state: &AppState,
    registry: &Registry,
    runtime: &Runtime,
    req: ExecuteRequest,
) -> Result<Plan, PistonError> {
    let runs = &state.config.runs;
    let max = &runs.max_limits;
    if req.files.is_empty() {
        return Err(bad("files must be a non-empty array"));
    }
    let mut files = Vec::with_capacity(req.files.len());
    for (i, file) in req.files.into_iter().enumerate() {
        let (content, encoding) = match file.encoding.as_deref().unwrap_or("utf8") {
            "utf8" => (file.content, Encoding::Utf8),
            "base64" => (file.content, Encoding::Base64),
            "hex" => {
                let bytes = hex::decode(&file.content)
                    .map_err(|_| bad(format!("files[{i}].content is not valid hex")))?;
                (STANDARD.encode(bytes), Encoding::Base64)
            }
            other => {
                return Err(bad(format!(
                    "files[{i}].encoding {other:?} is not utf8, base64 or hex"
                )));
            }
        };
        // Piston names unnamed files itself; the first is the program either way.
        let name = file.name.unwrap_or_else(|| match i {
            0 => runtime.config.source_file.clone(),
            i => format!("file{i}.code"),
        });
        files.push(RunFile {
            name,
            content,
            encoding,
        });
    }
    // Piston's -1 (or no value) is the configured default.
    let within = |name: &str, value: Option<i64>, max: u64| -> Result<Option<u64>, PistonError> {
        match value {
            None | Some(-1) => Ok(None),
            Some(v) if v >= 1 && v as u64 <= max => Ok(Some(v as u64)),
            Some(_) => Err(bad(format!("{name} must be between 1 and {max} (or -1)"))),
        }
    };
    let c = &runs.compile_limits;
    // The compile step runs under [runs.compile_limits]; what a request asks is checked.
    within("compile_timeout", req.compile_timeout, c.wall_ms)?;
    within("compile_cpu_time", req.compile_cpu_time, c.cpu_ms)?;
    within(
        "compile_memory_limit",
        req.compile_memory_limit,
        c.memory_mb << 20,
    )?;
    let limits = RequestedLimits {
        wall_ms: within("run_timeout", req.run_timeout, max.wall_ms)?,
        cpu_ms: within("run_cpu_time", req.run_cpu_time, max.cpu_ms)?,
        // Bytes to MiB, never below the smallest sandbox.
        memory_mb: within(
            "run_memory_limit",
            req.run_memory_limit,
            max.memory_mb << 20,
        )?
        .map(|bytes| bytes.div_ceil(1 << 20).max(16)),
        ..RequestedLimits::default()
    };
    let request = RunRequest {
        runtime: runtime.name.clone(),
        files,
        stdin: req.stdin,
        args: req.args,
        limits,
        tests: None,
    };
    request
        .validate(registry, runs)
        .map_err(|e| bad(e.to_string()))
}

/// A stage as Piston reports it.
fn stage(s: &Stage) -> Value {
    let (status, message) = match s.status {
        StageStatus::Ok => (None, None),
        StageStatus::TimeLimit => (Some("TO"), Some("Timeout")),
        StageStatus::OutputLimit => (Some("OL"), Some("Output limit exceeded")),
        StageStatus::MemoryLimit => (Some("SG"), Some("Memory limit exceeded")),
        StageStatus::InternalError => (Some("XX"), Some("Internal error")),
        StageStatus::RuntimeError | StageStatus::CompileError | StageStatus::Killed => {
            if s.signal.is_some() {
                (Some("SG"), None)
            } else {
                (Some("RE"), None)
            }
        }
    };
    json!({
        "stdout": s.stdout,
        "stderr": s.stderr,
        "output": format!("{}{}", s.stdout, s.stderr),
        "code": s.exit_code,
        "signal": s.signal.map(signal_name),
        "message": message,
        "status": status,
        "cpu_time": s.cpu_ms,
        "wall_time": s.wall_ms,
        "memory": s.memory_kb * 1024,
    })
}

/// `SIGKILL` …, as Piston names a signal (a number without a name: `SIG<n>`).
fn signal_name(signal: i32) -> String {
    nix::sys::signal::Signal::try_from(signal)
        .map_or_else(|_| format!("SIG{signal}"), |s| s.as_str().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_have_their_names() {
        assert_eq!(signal_name(9), "SIGKILL");
        assert_eq!(signal_name(31), "SIGSYS");
        assert_eq!(signal_name(40), "SIG40");
    }
}
