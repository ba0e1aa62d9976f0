//! A Judge0 submission: read from a request field by field (so every bad field is named, in
//! Judge0's `{"field": ["message"]}` shape), stored as a job's input with its effective limits,
//! and turned into a runs [`Plan`] when it runs.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::catalog::{self, MULTI_FILE};
use super::config::Judge0Config;
use super::files;
use crate::config::{RunLimits, RunsConfig};
use crate::runs::model::Plan;
use crate::runs::runtimes::{Registry, Runtime};
use sandpit_sandbox::WorkspacePath;

/// Field → what is wrong with it, as Judge0 answers a 422.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Errors(pub BTreeMap<String, Vec<String>>);

impl Errors {
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0
            .entry(field.to_owned())
            .or_default()
            .push(message.into());
    }

    pub fn one(field: &str, message: impl Into<String>) -> Self {
        let mut errors = Self::default();
        errors.add(field, message);
        errors
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A submission as stored: texts decoded, limits resolved. Bytes are kept base64 so any
/// program text survives the JSON column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Submission {
    pub language_id: i64,
    pub source_code: String,
    pub stdin: String,
    pub expected_output: Option<String>,
    pub additional_files: Option<String>,
    pub compiler_options: Option<String>,
    pub command_line_arguments: Option<String>,
    /// Seconds.
    pub cpu_time_limit: f64,
    pub cpu_extra_time: f64,
    pub wall_time_limit: f64,
    /// KiB.
    pub memory_limit: u64,
    pub stack_limit: u64,
    pub max_processes_and_or_threads: u64,
    /// KiB.
    pub max_file_size: u64,
    pub redirect_stderr_to_stdout: bool,
    pub number_of_runs: u32,
    pub callback_url: Option<String>,
    /// How the submitter reads answers (the callback is sent that way).
    pub base64_encoded: bool,
    pub created_at: DateTime<Utc>,
}

/// Stack a submission gets when it names none (KiB), and the most it may name. Reported and
/// bounded as Judge0 does; the sandbox's memory limit is what bounds a stack here.
pub const STACK_KB: u64 = 64_000;
pub const MAX_STACK_KB: u64 = 128_000;
pub const MAX_RUNS: u32 = 20;
/// Compiler options are taken for these languages only.
pub const COMPILE_OPTION_RUNTIMES: &[&str] = &["c", "cpp"];

/// What reading a submission needs.
pub struct Context<'a> {
    pub registry: &'a Registry,
    pub runs: &'a RunsConfig,
    pub judge0: &'a Judge0Config,
    pub base64_encoded: bool,
}

/// Reads one submission from its JSON object.
pub fn read(body: &Value, cx: &Context<'_>) -> Result<Submission, Errors> {
    let Some(body) = body.as_object() else {
        return Err(Errors::one("submission", "must be a JSON object"));
    };
    let mut fields = Fields {
        body,
        errors: Errors::default(),
    };
    let language_id = fields.integer("language_id");
    let source_code = fields.text("source_code", cx.base64_encoded);
    let stdin = fields.text("stdin", cx.base64_encoded);
    let expected_output = fields.text("expected_output", cx.base64_encoded);
    let additional_files = fields.string("additional_files");
    let compiler_options = fields.string("compiler_options");
    let command_line_arguments = fields.string("command_line_arguments");
    let cpu_time_limit = fields.number("cpu_time_limit");
    let cpu_extra_time = fields.number("cpu_extra_time");
    let wall_time_limit = fields.number("wall_time_limit");
    let memory_limit = fields.number("memory_limit");
    let stack_limit = fields.integer("stack_limit");
    let processes = fields.integer("max_processes_and_or_threads");
    let max_file_size = fields.integer("max_file_size");
    let redirect = fields.boolean("redirect_stderr_to_stdout");
    let number_of_runs = fields.integer("number_of_runs");
    let callback_url = fields.string("callback_url");
    for refused in [
        "enable_network",
        "enable_per_process_and_thread_time_limit",
        "enable_per_process_and_thread_memory_limit",
    ] {
        if fields.boolean(refused) == Some(true) {
            fields
                .errors
                .add(refused, "is not allowed on this server (see /config_info)");
        }
    }
    let mut e = fields.errors;

    let runtime = match language_id {
        None if !body.contains_key("language_id") => {
            e.add("language_id", "can't be blank");
            None
        }
        None => None,
        Some(id) => match catalog::language(cx.registry, id) {
            Some((_, runtime)) => Some(runtime),
            None => {
                e.add(
                    "language_id",
                    format!("language with id {id} doesn't exist"),
                );
                None
            }
        },
    };
    let source_code = source_code.flatten();
    let additional = additional_files.and_then(|b64| match STANDARD.decode(b64.as_bytes()) {
        Ok(bytes) => Some((b64, bytes)),
        Err(_) => {
            e.add("additional_files", "is not valid base64");
            None
        }
    });
    if let Some((_, zip)) = &additional
        && let Err(why) = files::unpack(zip, cx.judge0.max_extract_kb << 10, cx.runs.max_files)
    {
        e.add("additional_files", why);
    }
    let multi_file = language_id == Some(MULTI_FILE);
    if source_code.as_deref().is_none_or(<[u8]>::is_empty) && !multi_file {
        e.add("source_code", "can't be blank");
    }
    if multi_file && additional.is_none() {
        e.add(
            "additional_files",
            "a multi-file program needs a zip with a `run` script",
        );
    }
    if let (Some(options), Some(runtime)) = (&compiler_options, runtime)
        && !options.trim().is_empty()
        && let Err(why) = compile_args(options, runtime)
    {
        e.add("compiler_options", why);
    }
    if let Some(args) = &command_line_arguments
        && let Err(why) = split_args(args)
    {
        e.add("command_line_arguments", why);
    }
    if let Some(url) = &callback_url
        && let Err(why) = check_callback(url, &cx.judge0.callback_hosts)
    {
        e.add("callback_url", why);
    }

    let (default, max) = (&cx.runs.default_limits, &cx.runs.max_limits);
    let seconds = |ms: u64| ms as f64 / 1000.0;
    let mut within = |field: &str, value: Option<f64>, min: f64, max: f64, default: f64| match value
    {
        None => default,
        Some(v) if v < min || v > max || !v.is_finite() => {
            e.add(field, format!("must be between {min} and {max}"));
            default
        }
        Some(v) => v,
    };
    let cpu_time_limit = within(
        "cpu_time_limit",
        cpu_time_limit,
        0.001,
        seconds(max.cpu_ms),
        seconds(default.cpu_ms),
    );
    let cpu_extra_time = within(
        "cpu_extra_time",
        cpu_extra_time,
        0.0,
        seconds(max.cpu_ms),
        0.0,
    );
    let wall_time_limit = within(
        "wall_time_limit",
        wall_time_limit,
        0.001,
        seconds(max.wall_ms),
        seconds(default.wall_ms),
    );
    // sandpit's smallest sandbox is 16 MiB; a smaller limit is refused rather than loosened.
    let memory_limit = within(
        "memory_limit",
        memory_limit,
        16_384.0,
        (max.memory_mb << 10) as f64,
        (default.memory_mb << 10) as f64,
    )
    .ceil() as u64;
    let mut count = |field: &str, value: Option<i64>, min: u64, max: u64, default: u64| match value
    {
        None => default,
        Some(v) => match u64::try_from(v) {
            Ok(v) if (min..=max).contains(&v) => v,
            _ => {
                e.add(field, format!("must be between {min} and {max}"));
                default
            }
        },
    };
    let stack_limit = count("stack_limit", stack_limit, 0, MAX_STACK_KB, STACK_KB);
    let max_processes = count(
        "max_processes_and_or_threads",
        processes,
        1,
        max.processes,
        default.processes,
    );
    let max_file_size = count(
        "max_file_size",
        max_file_size,
        1,
        max.file_size_bytes >> 10,
        default.file_size_bytes >> 10,
    );
    let number_of_runs = count("number_of_runs", number_of_runs, 1, u64::from(MAX_RUNS), 1) as u32;
    if !e.is_empty() {
        return Err(e);
    }
    Ok(Submission {
        language_id: language_id.unwrap_or_default(),
        source_code: STANDARD.encode(source_code.unwrap_or_default()),
        stdin: STANDARD.encode(stdin.flatten().unwrap_or_default()),
        expected_output: expected_output.flatten().map(|t| STANDARD.encode(t)),
        additional_files: additional.map(|(b64, _)| b64),
        compiler_options,
        command_line_arguments,
        cpu_time_limit,
        cpu_extra_time,
        wall_time_limit,
        memory_limit,
        stack_limit,
        max_processes_and_or_threads: max_processes,
        max_file_size,
        redirect_stderr_to_stdout: redirect.unwrap_or(false),
        number_of_runs,
        callback_url,
        base64_encoded: cx.base64_encoded,
        created_at: Utc::now(),
    })
}

/// Typed reads of a request's fields; a wrong type is recorded against the field and read as
/// absent.
struct Fields<'a> {
    body: &'a Map<String, Value>,
    errors: Errors,
}

impl<'a> Fields<'a> {
    fn get(&self, name: &str) -> Option<&'a Value> {
        self.body.get(name).filter(|v| !v.is_null())
    }

    fn string(&mut self, name: &str) -> Option<String> {
        match self.get(name)? {
            Value::String(s) => Some(s.clone()),
            _ => {
                self.errors.add(name, "must be a string");
                None
            }
        }
    }

    /// A text field, base64-decoded when the request says so. `Some(None)`: present but bad.
    fn text(&mut self, name: &str, base64: bool) -> Option<Option<Vec<u8>>> {
        let s = self.string(name)?;
        if !base64 {
            return Some(Some(s.into_bytes()));
        }
        // Judge0's clients wrap long base64 at 60 or 76 columns.
        let compact: String = s.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        match STANDARD.decode(compact.as_bytes()) {
            Ok(bytes) => Some(Some(bytes)),
            Err(_) => {
                self.errors.add(name, "is not valid base64");
                Some(None)
            }
        }
    }

    fn number(&mut self, name: &str) -> Option<f64> {
        let v = self.get(name)?;
        match v
            .as_f64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        {
            Some(n) => Some(n),
            None => {
                self.errors.add(name, "must be a number");
                None
            }
        }
    }

    fn integer(&mut self, name: &str) -> Option<i64> {
        let v = self.get(name)?;
        match v
            .as_i64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        {
            Some(n) => Some(n),
            None => {
                self.errors.add(name, "must be an integer");
                None
            }
        }
    }

    fn boolean(&mut self, name: &str) -> Option<bool> {
        match self.get(name)?.clone() {
            Value::Bool(b) => Some(b),
            Value::String(s) if s == "true" || s == "false" => Some(s == "true"),
            _ => {
                self.errors.add(name, "must be true or false");
                None
            }
        }
    }
}

/// `command_line_arguments` as Judge0's shell would split them, without a shell.
pub fn split_args(args: &str) -> Result<Vec<String>, String> {
    if args.contains('\0') {
        return Err("must not contain NUL bytes".into());
    }
    shlex::split(args).ok_or_else(|| "has an unclosed quote".into())
}

/// `compiler_options`, split and checked against what a compiler may be asked for: no output
/// paths, response files, plugins, include or library paths, or options passed on to the
/// assembler or linker, which could read or write outside the program's own files.
pub fn compile_args(options: &str, runtime: &Runtime) -> Result<Vec<String>, String> {
    if !COMPILE_OPTION_RUNTIMES.contains(&runtime.name.as_str()) {
        return Err(format!(
            "compiler options are taken for C and C++ only, not {}",
            runtime.name
        ));
    }
    let args = split_args(options)?;
    for arg in &args {
        if !allowed_compile_option(arg) {
            return Err(format!(
                "{arg:?} is not an allowed option (allowed: -O0..-O3, -Os, -Ofast, -g, -std=…, \
                 -W<warning>, -w, -pedantic, -pthread, -lm, -lpthread, -lrt, -DNAME[=VALUE], \
                 -UNAME, -f(no-)<feature>, -march=native)"
            ));
        }
    }
    Ok(args)
}

fn allowed_compile_option(arg: &str) -> bool {
    let word = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '+')
    };
    let ident = |s: &str| {
        s.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    match arg {
        "-O" | "-O0" | "-O1" | "-O2" | "-O3" | "-Os" | "-Ofast" | "-Og" | "-g" | "-w"
        | "-pedantic" | "-pedantic-errors" | "-pthread" | "-lm" | "-lpthread" | "-lrt"
        | "-march=native" => true,
        _ => {
            if let Some(std) = arg.strip_prefix("-std=") {
                word(std)
            } else if let Some(warning) = arg.strip_prefix("-W") {
                // -Wl, -Wa, -Wp pass options on to the linker, assembler and preprocessor.
                word(warning) && !warning.contains(',')
            } else if let Some(feature) = arg.strip_prefix("-f") {
                // Features only: no -fplugin=…, -fprofile-…=path, -fdump-…
                word(feature)
                    && !["plugin", "profile", "dump", "debug-prefix", "stack-usage"]
                        .iter()
                        .any(|bad| feature.trim_start_matches("no-").starts_with(bad))
            } else if let Some(define) = arg.strip_prefix("-D") {
                let (name, value) = define.split_once('=').unwrap_or((define, ""));
                ident(name)
                    && value
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
            } else if let Some(name) = arg.strip_prefix("-U") {
                ident(name)
            } else {
                false
            }
        }
    }
}

/// A callback may go only to a host the operator listed, over HTTP(S), with no credentials in
/// the URL: the server must not be made to call its own network's addresses.
pub fn check_callback(url: &str, hosts: &[String]) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("must be an http or https URL".into());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("must not carry credentials".into());
    }
    let host = parsed.host_str().unwrap_or_default();
    if hosts.is_empty() {
        return Err(
            "callbacks are off on this server (judge0.callback_hosts lists the hosts allowed)"
                .into(),
        );
    }
    if !hosts.iter().any(|h| h.eq_ignore_ascii_case(host)) {
        return Err(format!(
            "host {host:?} is not one callbacks may go to (judge0.callback_hosts)"
        ));
    }
    Ok(())
}

fn decoded(b64: &str) -> Vec<u8> {
    STANDARD.decode(b64.as_bytes()).unwrap_or_default()
}

impl Submission {
    pub fn source(&self) -> Vec<u8> {
        decoded(&self.source_code)
    }

    pub fn stdin_bytes(&self) -> Vec<u8> {
        decoded(&self.stdin)
    }

    pub fn expected(&self) -> Option<String> {
        self.expected_output
            .as_deref()
            .map(|e| String::from_utf8_lossy(&decoded(e)).into_owned())
    }

    /// The CPU time past which the run is a time limit exceeded, in ms.
    pub fn cpu_limit_ms(&self) -> u64 {
        (self.cpu_time_limit * 1000.0).ceil() as u64
    }

    /// What the runs engine executes. Checked again here: the installed runtimes or the
    /// limits may have changed since the submission was accepted.
    pub fn plan(
        &self,
        registry: &Registry,
        runs: &RunsConfig,
        judge0: &Judge0Config,
    ) -> Result<Plan, Errors> {
        let Some((_, runtime)) = catalog::language(registry, self.language_id) else {
            return Err(Errors::one(
                "language_id",
                format!("language with id {} doesn't exist", self.language_id),
            ));
        };
        let mut runtime = runtime.clone();
        let mut files: Vec<(WorkspacePath, Vec<u8>)> = Vec::new();
        if let Some(zip) = &self.additional_files {
            files = files::unpack(&decoded(zip), judge0.max_extract_kb << 10, runs.max_files)
                .map_err(|why| Errors::one("additional_files", why))?;
        }
        if self.language_id == MULTI_FILE {
            multi_file(&mut runtime, &files)?;
        } else {
            let source = WorkspacePath::parse(&runtime.config.source_file)
                .map_err(|e| Errors::one("language_id", e.to_string()))?;
            files.retain(|(p, _)| *p != source);
            files.push((source, self.source()));
        }
        let compile_args = match &self.compiler_options {
            Some(options) if !options.trim().is_empty() => compile_args(options, &runtime)
                .map_err(|why| Errors::one("compiler_options", why))?,
            _ => Vec::new(),
        };
        let args = match &self.command_line_arguments {
            Some(args) => {
                split_args(args).map_err(|why| Errors::one("command_line_arguments", why))?
            }
            None => Vec::new(),
        };
        let max = &runs.max_limits;
        let cpu_ms = ((self.cpu_time_limit + self.cpu_extra_time) * 1000.0).ceil() as u64;
        let limits = RunLimits {
            wall_ms: ((self.wall_time_limit * 1000.0).ceil() as u64).min(max.wall_ms),
            cpu_ms: cpu_ms.min(max.cpu_ms),
            memory_mb: self.memory_limit.div_ceil(1024).clamp(16, max.memory_mb),
            processes: self.max_processes_and_or_threads.min(max.processes),
            output_bytes: runs.default_limits.output_bytes,
            file_size_bytes: (self.max_file_size << 10).min(max.file_size_bytes),
        };
        let case = (self.stdin_bytes(), self.expected());
        let runs_wanted = usize::try_from(self.number_of_runs.max(1)).unwrap_or(1);
        Ok(Plan {
            runtime,
            files,
            args,
            cases: vec![case; runs_wanted],
            has_tests: runs_wanted > 1,
            limits,
            compile_args,
            merge_stderr: self.redirect_stderr_to_stdout,
        })
    }
}

/// Judge0's multi-file program: `bash compile` (when the zip has one), then `bash run`.
fn multi_file(runtime: &mut Runtime, files: &[(WorkspacePath, Vec<u8>)]) -> Result<(), Errors> {
    let has = |name: &str| files.iter().any(|(p, _)| p.as_str() == name);
    if !has("run") {
        return Err(Errors::one(
            "additional_files",
            "a multi-file program needs a `run` script at the top of the zip",
        ));
    }
    let bash = runtime
        .config
        .run_argv
        .first()
        .cloned()
        .unwrap_or_else(|| "/bin/bash".into());
    runtime.config.compile_argv = has("compile").then(|| vec![bash.clone(), "compile".into()]);
    runtime.config.run_argv = vec![bash, "run".into()];
    runtime.compiled = runtime.config.compile_argv.is_some();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_harmless_compiler_options_are_allowed() {
        for ok in [
            "-O2",
            "-std=c++20",
            "-Wall",
            "-Wno-unused",
            "-lm",
            "-DN=10",
            "-UDEBUG",
            "-fno-exceptions",
            "-g",
        ] {
            assert!(allowed_compile_option(ok), "{ok}");
        }
        for bad in [
            "-o",
            "/tmp/x",
            "-Wl,--wrap=main",
            "-Wa,-x",
            "-B/tmp",
            "@/etc/passwd",
            "-I/etc",
            "-include",
            "-fplugin=/tmp/p.so",
            "-fprofile-generate=/tmp",
            "-specs=/tmp/s",
            "-DX=$(id)",
            "-D1X",
            "-wrapper",
            "--sysroot=/",
        ] {
            assert!(!allowed_compile_option(bad), "{bad}");
        }
    }

    #[test]
    fn arguments_split_as_a_shell_would() {
        assert_eq!(split_args("a 'b c' \"d e\"").unwrap(), ["a", "b c", "d e"]);
        assert!(split_args("'open").is_err());
        assert!(split_args("a\0b").is_err());
    }

    #[test]
    fn callbacks_go_only_to_listed_hosts_over_http() {
        let hosts = vec!["hooks.example.com".to_owned()];
        assert!(check_callback("https://hooks.example.com/judge0", &hosts).is_ok());
        assert!(check_callback("https://HOOKS.example.com/x", &hosts).is_ok());
        for bad in [
            "http://127.0.0.1/x",
            "http://hooks.example.com.evil.net/x",
            "ftp://hooks.example.com/x",
            "https://user:pw@hooks.example.com/x",
            "not a url",
        ] {
            assert!(check_callback(bad, &hosts).is_err(), "{bad}");
        }
        assert!(check_callback("https://hooks.example.com/x", &[]).is_err());
    }
}
