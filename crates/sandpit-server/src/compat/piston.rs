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
use axum::middleware::{Next, from_fn, from_fn_with_state};
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
use crate::runs::model::{Plan, Stage, StageStatus};
use crate::runs::runtimes::{Registry, Runtime};
use crate::state::AppState;
use sandpit_sandbox::WorkspacePath;

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
    Router::new()
        .route("/piston/api/v2/runtimes", get(runtimes))
        .route("/piston/api/v2/execute", post(execute))
        .layer(axum::extract::DefaultBodyLimit::max(
            state.config.runs.max_request_bytes,
        ))
        .layer(from_fn_with_state(state.clone(), crate::limits::limit_api))
        .layer(from_fn_with_state(state.clone(), crate::auth::authenticate))
        .layer(from_fn(basic_auth))
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
    let plan = plan(&state, runtime, req)?;
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

fn plan(state: &AppState, runtime: &Runtime, req: ExecuteRequest) -> Result<Plan, PistonError> {
    let runs = &state.config.runs;
    let (default, max) = (&runs.default_limits, &runs.max_limits);
    if req.files.is_empty() {
        return Err(bad("files must be a non-empty array"));
    }
    if req.files.len() > runs.max_files {
        return Err(bad(format!("at most {} files", runs.max_files)));
    }
    let mut files: Vec<(WorkspacePath, Vec<u8>)> = Vec::new();
    for (i, file) in req.files.into_iter().enumerate() {
        let content = match file.encoding.as_deref().unwrap_or("utf8") {
            "utf8" => file.content.into_bytes(),
            "base64" => STANDARD
                .decode(file.content.as_bytes())
                .map_err(|_| bad(format!("files[{i}].content is not valid base64")))?,
            "hex" => hex(&file.content)
                .ok_or_else(|| bad(format!("files[{i}].content is not valid hex")))?,
            other => {
                return Err(bad(format!(
                    "files[{i}].encoding {other:?} is not utf8, base64 or hex"
                )));
            }
        };
        // The first file is the program: under the runtime's source name unless it has one.
        let name = match (i, file.name) {
            (_, Some(name)) => name,
            (0, None) => runtime.config.source_file.clone(),
            (i, None) => format!("file{i}.code"),
        };
        let path = WorkspacePath::parse(&name).map_err(|e| bad(format!("files[{i}].name: {e}")))?;
        if files.iter().any(|(p, _)| *p == path) {
            return Err(bad(format!("{path} is given twice")));
        }
        files.push((path, content));
    }
    let source = WorkspacePath::parse(&runtime.config.source_file)
        .map_err(|e| PistonError::from(ApiError::internal(anyhow::anyhow!("{e}"))))?;
    if !files.iter().any(|(p, _)| *p == source) {
        files[0].0 = source;
    }
    if req.args.iter().any(|a| a.contains('\0')) {
        return Err(bad("args must not contain NUL bytes"));
    }
    // Piston's -1 (or no value) is the configured default.
    let within =
        |name: &str, value: Option<i64>, default: u64, max: u64| -> Result<u64, PistonError> {
            match value {
                None | Some(-1) => Ok(default),
                Some(v) if v >= 1 && v as u64 <= max => Ok(v as u64),
                Some(_) => Err(bad(format!("{name} must be between 1 and {max} (or -1)"))),
            }
        };
    let c = &runs.compile_limits;
    // The compile step runs under [runs.compile_limits]; what a request asks is checked.
    within("compile_timeout", req.compile_timeout, c.wall_ms, c.wall_ms)?;
    within("compile_cpu_time", req.compile_cpu_time, c.cpu_ms, c.cpu_ms)?;
    within(
        "compile_memory_limit",
        req.compile_memory_limit,
        c.memory_mb << 20,
        c.memory_mb << 20,
    )?;
    let limits = crate::config::RunLimits {
        wall_ms: within("run_timeout", req.run_timeout, default.wall_ms, max.wall_ms)?,
        cpu_ms: within("run_cpu_time", req.run_cpu_time, default.cpu_ms, max.cpu_ms)?,
        memory_mb: within(
            "run_memory_limit",
            req.run_memory_limit,
            default.memory_mb << 20,
            max.memory_mb << 20,
        )?
        .div_ceil(1 << 20)
        .max(16),
        ..*default
    };
    Ok(Plan {
        runtime: runtime.clone(),
        files,
        args: req.args,
        cases: vec![(req.stdin.into_bytes(), None)],
        has_tests: false,
        limits,
        compile_args: Vec::new(),
        merge_stderr: false,
    })
}

fn hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
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

fn signal_name(signal: i32) -> String {
    match signal {
        1 => "SIGHUP".into(),
        2 => "SIGINT".into(),
        6 => "SIGABRT".into(),
        8 => "SIGFPE".into(),
        9 => "SIGKILL".into(),
        11 => "SIGSEGV".into(),
        13 => "SIGPIPE".into(),
        15 => "SIGTERM".into(),
        24 => "SIGXCPU".into(),
        25 => "SIGXFSZ".into(),
        n => format!("SIG{n}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_contents_decode_or_are_refused() {
        assert_eq!(hex("68690a"), Some(b"hi\n".to_vec()));
        assert_eq!(hex("6"), None);
        assert_eq!(hex("zz"), None);
        assert_eq!(signal_name(9), "SIGKILL");
        assert_eq!(signal_name(31), "SIG31");
    }
}
