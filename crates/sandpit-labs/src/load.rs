//! Reading and validating a lab folder. Every problem is collected (not just the first) with
//! its file and, where it has one, its line, so `sandpit lab validate` can report them all.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::Path;
use std::time::Duration;

use regex::{Regex, RegexBuilder};
use sandpit_sandbox::WorkspacePath;

use crate::lab::{Check, CheckKind, Files, Lab, Step};
use crate::manifest::{CheckKindManifest, CheckManifest, Manifest};

/// Every file of a lab folder, by path relative to it (`/`-separated).
pub type FolderFiles = BTreeMap<String, Vec<u8>>;

/// Bounds on what a lab folder may hold: labs are loaded into memory.
const MAX_FOLDER_BYTES: u64 = 32 << 20;
const MAX_FOLDER_FILES: usize = 2_000;
/// Compiled size bound of an author's regex (the default is 10 MiB; labs need far less).
const REGEX_SIZE_LIMIT: usize = 1 << 20;
const MAX_TIMEOUT_MS: u64 = 600_000;

/// One thing wrong with a lab folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Path relative to the lab folder (`lab.toml`, `steps/01.md`), or the folder itself (`.`).
    pub file: String,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.file, line, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// Reads a lab folder from disk. Links are not followed (a lab is data, and following one
/// could read anything on the host); they are reported.
pub fn read_dir(dir: &Path) -> Result<FolderFiles, Vec<Problem>> {
    let mut files = FolderFiles::new();
    let mut problems = Vec::new();
    let mut total = 0u64;
    let mut pending = vec![(dir.to_path_buf(), String::new())];
    while let Some((path, rel)) = pending.pop() {
        let entries = match std::fs::read_dir(&path) {
            Ok(e) => e,
            Err(e) => {
                problems.push(problem(or_dot(&rel), None, format!("cannot read: {e}")));
                continue;
            }
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let child = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_symlink() {
                problems.push(problem(
                    &child,
                    None,
                    "is a symbolic link; labs hold only regular files and folders".into(),
                ));
            } else if kind.is_dir() {
                pending.push((entry.path(), child));
            } else if kind.is_file() {
                if files.len() >= MAX_FOLDER_FILES {
                    problems.push(problem(
                        ".",
                        None,
                        format!("more than {MAX_FOLDER_FILES} files"),
                    ));
                    return Err(problems);
                }
                match std::fs::read(entry.path()) {
                    Ok(data) => {
                        total += data.len() as u64;
                        files.insert(child, data);
                    }
                    Err(e) => problems.push(problem(&child, None, format!("cannot read: {e}"))),
                }
                if total > MAX_FOLDER_BYTES {
                    problems.push(problem(
                        ".",
                        None,
                        format!("larger than {} MiB", MAX_FOLDER_BYTES >> 20),
                    ));
                    return Err(problems);
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(files)
    } else {
        Err(problems)
    }
}

fn or_dot(rel: &str) -> &str {
    if rel.is_empty() { "." } else { rel }
}

fn problem(file: &str, line: Option<usize>, message: String) -> Problem {
    Problem {
        file: file.to_owned(),
        line,
        message,
    }
}

/// What the loader needs to know about the server it loads for.
pub struct LoadOptions<'a> {
    /// Environments a lab may name.
    pub environments: &'a [&'a str],
    /// Where the files came from (`built-in`, a folder path).
    pub source: String,
}

/// Validates a lab folder into a [`Lab`], or every problem found.
pub fn load(files: &FolderFiles, options: &LoadOptions<'_>) -> Result<Lab, Vec<Problem>> {
    let mut v = Validator {
        files,
        problems: Vec::new(),
        text: "",
    };
    let lab = v.lab(options);
    match lab {
        Some(lab) if v.problems.is_empty() => Ok(lab),
        _ => Err(v.problems),
    }
}

struct Validator<'a> {
    files: &'a FolderFiles,
    problems: Vec<Problem>,
    /// The text of lab.toml (for line numbers).
    text: &'a str,
}

const MANIFEST: &str = "lab.toml";

impl<'a> Validator<'a> {
    fn at(&mut self, offset: Option<usize>, message: impl Into<String>) {
        let line = offset.map(|o| line_of(self.text, o));
        self.problems.push(problem(MANIFEST, line, message.into()));
    }

    fn at_line(&mut self, line: Option<usize>, message: impl Into<String>) {
        self.problems.push(problem(MANIFEST, line, message.into()));
    }

    fn lab(&mut self, options: &LoadOptions<'_>) -> Option<Lab> {
        let Some(raw) = self.files.get(MANIFEST) else {
            self.problems.push(problem(
                ".",
                None,
                "no lab.toml: a lab folder starts with its manifest".into(),
            ));
            return None;
        };
        let Ok(text) = std::str::from_utf8(raw) else {
            self.problems
                .push(problem(MANIFEST, None, "is not UTF-8 text".into()));
            return None;
        };
        self.text = text;
        let manifest: Manifest = match toml::from_str(text) {
            Ok(m) => m,
            Err(e) => {
                let line = e.span().map(|s| line_of(text, s.start));
                self.at_line(line, e.message().trim().to_owned());
                return None;
            }
        };
        let slug = manifest.slug.get_ref().clone();
        if !is_slug(&slug) {
            self.at(
                Some(manifest.slug.span().start),
                format!(
                    "slug {slug:?}: use 1-63 of a-z, 0-9 and '-', starting with a letter or digit"
                ),
            );
        }
        for (field, value, max) in [
            ("title", &manifest.title, 120),
            ("summary", &manifest.summary, 600),
        ] {
            if value.trim().is_empty() || value.chars().count() > max {
                self.at_line(None, format!("{field}: must be 1-{max} characters"));
            }
        }
        let mut tags = Vec::new();
        for tag in &manifest.tags {
            if !is_slug(tag.get_ref()) || tag.get_ref().len() > 32 {
                self.at(
                    Some(tag.span().start),
                    format!("tag {:?}: use a-z, 0-9 and '-'", tag.get_ref()),
                );
            }
            tags.push(tag.get_ref().clone());
        }
        let environment = match &manifest.environment {
            None => "default".to_owned(),
            Some(env) => {
                if !options.environments.contains(&env.get_ref().as_str()) {
                    self.at(
                        Some(env.span().start),
                        format!(
                            "environment {:?} is not one of this server's: {}",
                            env.get_ref(),
                            options.environments.join(", ")
                        ),
                    );
                }
                env.get_ref().clone()
            }
        };
        if let Some(ttl) = &manifest.ttl_minutes
            && !(5..=1440).contains(ttl.get_ref())
        {
            self.at(
                Some(ttl.span().start),
                "ttl_minutes: must be between 5 and 1440",
            );
        }
        let l = manifest.limits;
        if l.memory_mb == Some(0)
            || l.processes == Some(0)
            || l.cpu_millicores == Some(0)
            || l.workspace_mb == Some(0)
        {
            self.at_line(None, "limits: every limit must be above zero");
        }
        if manifest.steps.is_empty() {
            self.at_line(None, "steps: a lab needs at least one step");
        }
        let check_lines = header_lines(text, "[[steps.checks]]");
        let mut check_index = 0;
        let mut step_ids = HashSet::new();
        let mut codes = HashSet::new();
        let mut steps = Vec::new();
        for (i, s) in manifest.steps.into_iter().enumerate() {
            let id = s.id.get_ref().clone();
            if !is_slug(&id) {
                self.at(
                    Some(s.id.span().start),
                    format!("steps[{i}].id {id:?}: use a-z, 0-9 and '-'"),
                );
            } else if !step_ids.insert(id.clone()) {
                self.at(
                    Some(s.id.span().start),
                    format!("steps[{i}].id {id:?} is used twice"),
                );
            }
            let text_line = Some(line_of(self.text, s.text.span().start));
            let markdown = self.text_file(s.text.get_ref(), text_line, &format!("steps[{i}].text"));
            if s.title.trim().is_empty() {
                self.at(
                    Some(s.id.span().start),
                    format!("steps[{i}].title: must not be empty"),
                );
            }
            if s.hints.iter().any(|h| h.trim().is_empty()) {
                self.at(
                    Some(s.id.span().start),
                    format!("steps[{i}].hints: a hint must not be empty"),
                );
            }
            if s.checks.is_empty() {
                self.at(
                    Some(s.id.span().start),
                    format!("steps[{i}] ({id}) has no checks: the judge could never pass it"),
                );
            }
            let mut checks = Vec::new();
            for (j, c) in s.checks.into_iter().enumerate() {
                let line = check_lines.get(check_index).copied();
                check_index += 1;
                let name = format!("steps[{i}].checks[{j}]");
                if let Some(check) = self.check(c, &name, line, &mut codes) {
                    checks.push(check);
                }
            }
            steps.push(Step {
                id,
                title: s.title,
                markdown: markdown.unwrap_or_default(),
                hints: s.hints,
                checks,
            });
        }
        let starter = self.tree("starter/");
        let solution = self.tree("solution/");
        let setup = self.script(manifest.setup.as_ref(), "setup");
        let solution_script = self.script(manifest.solution_script.as_ref(), "solution_script");
        if solution.is_empty() && manifest.solution_script.is_none() {
            self.problems.push(problem(
                "solution/",
                None,
                "is missing or empty (and there is no solution_script): `sandpit lab test` needs a reference solution".into(),
            ));
        }
        Some(Lab {
            slug,
            title: manifest.title,
            summary: manifest.summary,
            difficulty: manifest.difficulty,
            tags,
            environment,
            ttl_minutes: manifest.ttl_minutes.map(|t| *t.get_ref()),
            limits: manifest.limits,
            steps,
            starter,
            solution,
            setup,
            solution_script,
            source: options.source.clone(),
        })
    }

    /// A lab-level script named by `field` (`setup = "setup.sh"`).
    fn script(&mut self, rel: Option<&toml::Spanned<String>>, field: &str) -> Option<String> {
        let rel = rel?;
        let line = Some(line_of(self.text, rel.span().start));
        self.text_file(rel.get_ref(), line, field)
    }

    /// A UTF-8 file of the folder named at `offset` of lab.toml.
    fn text_file(&mut self, rel: &str, line: Option<usize>, field: &str) -> Option<String> {
        let Some(data) = self.folder_file(rel) else {
            self.at_line(
                line,
                format!("{field}: no such file {rel:?} in the lab folder"),
            );
            return None;
        };
        match String::from_utf8(data.clone()) {
            Ok(s) => Some(s),
            Err(_) => {
                self.problems
                    .push(problem(rel, None, "is not UTF-8 text".into()));
                None
            }
        }
    }

    fn folder_file(&self, rel: &str) -> Option<&'a Vec<u8>> {
        let rel = rel.trim_start_matches("./");
        if rel.split('/').any(|c| c == ".." || c.is_empty()) {
            return None;
        }
        self.files.get(rel)
    }

    fn tree(&mut self, prefix: &str) -> Files {
        let mut out = Files::new();
        for (path, data) in self.files.range(prefix.to_owned()..) {
            let Some(rel) = path.strip_prefix(prefix) else {
                break;
            };
            match WorkspacePath::parse(rel) {
                Ok(p) => {
                    out.insert(p, data.clone());
                }
                Err(e) => self.problems.push(problem(
                    path,
                    None,
                    format!("not a valid workspace path: {e}"),
                )),
            }
        }
        out
    }

    fn check(
        &mut self,
        c: CheckManifest,
        name: &str,
        line: Option<usize>,
        codes: &mut HashSet<String>,
    ) -> Option<Check> {
        let before = self.problems.len();
        let kind_name = kind_name(&c.kind);
        let name = format!("{name} ({kind_name})");
        let is_dockerfile = matches!(c.kind, CheckKindManifest::Dockerfile { .. });
        let is_script = matches!(
            &c.kind,
            CheckKindManifest::Command { script, script_file, .. } if script.is_some() || script_file.is_some()
        );
        let code = match c.code {
            Some(code) => code,
            None if is_dockerfile => "dockerfile".to_owned(),
            None => {
                self.at_line(
                    line,
                    format!("{name}: `code` is required (a stable failure code)"),
                );
                String::new()
            }
        };
        if !code.is_empty() {
            if !is_code(&code) {
                self.at_line(
                    line,
                    format!("{name}: code {code:?}: use a-z, 0-9, '_', '.' and '-'"),
                );
            } else if !codes.insert(code.clone()) {
                self.at_line(
                    line,
                    format!("{name}: code {code:?} is used by another check of this lab"),
                );
            }
        }
        if c.message.is_none() && !is_dockerfile && !is_script {
            self.at_line(
                line,
                format!("{name}: `message` is required (what is wrong, in a sentence)"),
            );
        }
        if c.hint.is_none() && !is_dockerfile {
            self.at_line(line, format!("{name}: `hint` is required (how to fix it)"));
        }
        if c.timeout_ms.is_some_and(|t| t == 0 || t > MAX_TIMEOUT_MS) {
            self.at_line(
                line,
                format!("{name}: timeout_ms must be between 1 and {MAX_TIMEOUT_MS}"),
            );
        }
        let kind = self.kind(c.kind, &name, line)?;
        if self.problems.len() > before {
            return None;
        }
        let timeout = c
            .timeout_ms
            .map(Duration::from_millis)
            .unwrap_or_else(|| kind.default_timeout());
        Some(Check {
            code,
            message: c.message,
            hint: c.hint,
            timeout,
            kind,
        })
    }

    fn path(&mut self, raw: &str, name: &str, line: Option<usize>) -> Option<WorkspacePath> {
        match WorkspacePath::parse(raw.trim_start_matches("./")) {
            Ok(p) => Some(p),
            Err(e) => {
                self.at_line(line, format!("{name}: path {raw:?}: {e}"));
                None
            }
        }
    }

    fn regex(&mut self, raw: &str, name: &str, line: Option<usize>) -> Option<Regex> {
        match RegexBuilder::new(raw).size_limit(REGEX_SIZE_LIMIT).build() {
            Ok(r) => Some(r),
            Err(e) => {
                let e = e.to_string().replace('\n', " ");
                self.at_line(line, format!("{name}: bad regular expression: {e}"));
                None
            }
        }
    }

    fn argv(
        &mut self,
        argv: Vec<String>,
        field: &str,
        name: &str,
        line: Option<usize>,
    ) -> Option<Vec<String>> {
        if argv.is_empty() || argv[0].is_empty() || argv.iter().any(|a| a.contains('\0')) {
            self.at_line(
                line,
                format!("{name}: {field} must name a program (and hold no NUL bytes)"),
            );
            return None;
        }
        Some(argv)
    }

    fn kind(
        &mut self,
        kind: CheckKindManifest,
        name: &str,
        line: Option<usize>,
    ) -> Option<CheckKind> {
        Some(match kind {
            CheckKindManifest::FileExists { path } => CheckKind::FileExists {
                path: self.path(&path, name, line)?,
            },
            CheckKindManifest::FileAbsent { path } => CheckKind::FileAbsent {
                path: self.path(&path, name, line)?,
            },
            CheckKindManifest::FileMatches { path, pattern } => {
                let path = self.path(&path, name, line);
                let pattern = self.regex(&pattern, name, line);
                CheckKind::FileMatches {
                    path: path?,
                    pattern: pattern?,
                }
            }
            CheckKindManifest::Command {
                argv,
                script,
                script_file,
                interpreter,
                exit_code,
                stdout_contains,
                stdout_matches,
                stdin,
            } => {
                let interpreter = interpreter.unwrap_or_else(|| "/bin/bash".into());
                if !interpreter.starts_with('/') {
                    self.at_line(
                        line,
                        format!("{name}: interpreter must be an absolute path"),
                    );
                }
                let (argv, script) = match (argv, script, script_file) {
                    (Some(argv), None, None) => (self.argv(argv, "argv", name, line), false),
                    (None, Some(script), None) => {
                        (Some(vec![interpreter, "-c".into(), script]), true)
                    }
                    (None, None, Some(file)) => {
                        let text = self.text_file(&file, line, &format!("{name}: script_file"));
                        (text.map(|s| vec![interpreter, "-c".into(), s]), true)
                    }
                    _ => {
                        self.at_line(
                            line,
                            format!("{name}: give exactly one of argv, script, script_file"),
                        );
                        (None, false)
                    }
                };
                let stdout_matches = match stdout_matches {
                    Some(p) => Some(self.regex(&p, name, line)?),
                    None => None,
                };
                CheckKind::Command {
                    argv: argv?,
                    script,
                    stdin,
                    exit_code,
                    stdout_contains,
                    stdout_matches,
                }
            }
            CheckKindManifest::Http {
                port,
                path,
                start,
                expect_status,
                body_contains,
                json_pointer,
                json_equals,
            } => {
                if port == 0 {
                    self.at_line(line, format!("{name}: port must be 1-65535"));
                }
                if !path.starts_with('/') || path.chars().any(|c| c.is_control() || c == ' ') {
                    self.at_line(
                        line,
                        format!("{name}: path must start with '/' and hold no spaces"),
                    );
                }
                if !(100..=599).contains(&expect_status) {
                    self.at_line(
                        line,
                        format!("{name}: expect_status must be an HTTP status"),
                    );
                }
                let start = match start {
                    Some(argv) => Some(self.argv(argv, "start", name, line)?),
                    None => None,
                };
                let json = match (json_pointer, json_equals) {
                    (None, None) => None,
                    (Some(p), Some(v)) if p.is_empty() || p.starts_with('/') => Some((
                        p,
                        serde_json::to_value(v).unwrap_or(serde_json::Value::Null),
                    )),
                    (Some(_), Some(_)) => {
                        self.at_line(
                            line,
                            format!("{name}: json_pointer must start with '/' (RFC 6901)"),
                        );
                        None
                    }
                    _ => {
                        self.at_line(
                            line,
                            format!("{name}: json_pointer and json_equals go together"),
                        );
                        None
                    }
                };
                CheckKind::Http {
                    port,
                    path,
                    start,
                    expect_status,
                    body_contains,
                    json,
                }
            }
            CheckKindManifest::Dockerfile {
                path,
                rules,
                dockerignore_excludes,
            } => {
                let path = self.path(&path, name, line);
                if rules.is_empty() {
                    self.at_line(line, format!("{name}: rules must name at least one rule"));
                }
                let mut parsed = Vec::new();
                for rule in rules {
                    match rule.parse::<crate::dockerfile::Rule>() {
                        Ok(r) => parsed.push(r),
                        Err(e) => self.at_line(line, format!("{name}: {e}")),
                    }
                }
                CheckKind::Dockerfile {
                    path: path?,
                    rules: parsed,
                    dockerignore_excludes,
                }
            }
            CheckKindManifest::Image {
                dockerfile,
                port,
                health_path,
                max_size_mb,
                max_layers,
                non_root,
                healthcheck,
                stop_timeout_s,
            } => {
                if health_path.is_some() && port.is_none() {
                    self.at_line(line, format!("{name}: health_path needs a port"));
                }
                if stop_timeout_s.is_some() && port.is_none() {
                    self.at_line(
                        line,
                        format!("{name}: stop_timeout_s needs a port (the container must run)"),
                    );
                }
                if stop_timeout_s.is_some_and(|s| !(1..=120).contains(&s)) {
                    self.at_line(line, format!("{name}: stop_timeout_s is 1 to 120 seconds"));
                }
                CheckKind::Image {
                    dockerfile: self.path(&dockerfile, name, line)?,
                    port,
                    health_path,
                    max_size_mb,
                    max_layers,
                    non_root,
                    healthcheck,
                    stop_timeout_s,
                }
            }
        })
    }
}

fn kind_name(kind: &CheckKindManifest) -> &'static str {
    match kind {
        CheckKindManifest::FileExists { .. } => "file_exists",
        CheckKindManifest::FileAbsent { .. } => "file_absent",
        CheckKindManifest::FileMatches { .. } => "file_matches",
        CheckKindManifest::Command { .. } => "command",
        CheckKindManifest::Http { .. } => "http",
        CheckKindManifest::Dockerfile { .. } => "dockerfile",
        CheckKindManifest::Image { .. } => "image",
    }
}

pub(crate) fn is_slug(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
}

fn is_code(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-')
        })
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// 1-based lines of every `header` table line (`[[steps.checks]]`), in order: TOML keeps
/// arrays of tables in document order, so the n-th header is the n-th check.
fn header_lines(text: &str, header: &str) -> Vec<usize> {
    let squeezed: String = header.chars().filter(|c| !c.is_whitespace()).collect();
    text.lines()
        .enumerate()
        .filter(|(_, l)| {
            let l = l.split('#').next().unwrap_or("");
            l.chars().filter(|c| !c.is_whitespace()).collect::<String>() == squeezed
        })
        .map(|(i, _)| i + 1)
        .collect()
}
