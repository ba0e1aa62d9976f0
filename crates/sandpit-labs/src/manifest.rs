//! `lab.toml`, as authors write it (docs/labs.md). These types are only the parse; `load`
//! validates them (files exist, ids unique, regexes compile …) into a [`crate::Lab`].
//!
//! Fields whose problems must point at a line are `Spanned`, so a report can say
//! `lab.toml:12: steps[1].text: no such file steps/02.md`. Checks are read through serde's
//! `flatten` and an internally tagged enum, which buffer their input and lose spans; a check's
//! problems point at the line of its `[[steps.checks]]` header instead (`load::header_lines`).

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub slug: Spanned<String>,
    pub title: String,
    pub summary: String,
    pub difficulty: Difficulty,
    #[serde(default)]
    pub tags: Vec<Spanned<String>>,
    /// The sandbox environment; `default` (the host's system directories) when absent.
    pub environment: Option<Spanned<String>>,
    /// Session time to live for this lab, in minutes.
    pub ttl_minutes: Option<Spanned<u64>>,
    #[serde(default)]
    pub limits: LabLimits,
    /// A bash script of the lab folder run once in a new session's workspace, as the learner,
    /// after the starter files are written (and by `sandpit lab test` before judging).
    pub setup: Option<Spanned<String>>,
    /// A bash script of the lab folder that `sandpit lab test` runs over the starter (after
    /// `solution/`, which it makes optional) to solve the lab.
    pub solution_script: Option<Spanned<String>>,
    pub steps: Vec<StepManifest>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Difficulty {
    Beginner,
    Intermediate,
    Advanced,
}

impl Difficulty {
    pub fn as_str(self) -> &'static str {
        match self {
            Difficulty::Beginner => "beginner",
            Difficulty::Intermediate => "intermediate",
            Difficulty::Advanced => "advanced",
        }
    }
}

/// Per-lab overrides of the server's session limits (never above the server's own).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct LabLimits {
    pub memory_mb: Option<u64>,
    pub processes: Option<u32>,
    pub cpu_millicores: Option<u32>,
    pub workspace_mb: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepManifest {
    pub id: Spanned<String>,
    pub title: String,
    /// The step's markdown file, relative to the lab folder.
    pub text: Spanned<String>,
    /// Authored hints, gentlest first.
    #[serde(default)]
    pub hints: Vec<String>,
    #[serde(default)]
    pub checks: Vec<CheckManifest>,
}

/// One check: what every check has, plus its kind's fields.
#[derive(Debug, Deserialize)]
pub struct CheckManifest {
    /// Stable machine-readable code of the failure (`[a-z0-9_.-]`, unique in the lab).
    /// A `dockerfile` check uses it as the prefix of its rules' codes.
    pub code: Option<String>,
    /// What is wrong, in a sentence. A script check's output replaces it when it prints one.
    pub message: Option<String>,
    /// How to fix it.
    pub hint: Option<String>,
    /// Deadline of the whole check in milliseconds.
    pub timeout_ms: Option<u64>,
    #[serde(flatten)]
    pub kind: CheckKindManifest,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum CheckKindManifest {
    FileExists {
        path: String,
    },
    FileAbsent {
        path: String,
    },
    FileMatches {
        path: String,
        /// A regular expression (Rust `regex` syntax) that must match somewhere in the file.
        pattern: String,
    },
    Command {
        /// A program and its arguments (never through a shell) …
        argv: Option<Vec<String>>,
        /// … or a script, inline …
        script: Option<String>,
        /// … or in a file of the lab folder.
        script_file: Option<String>,
        /// What runs a script (`/bin/bash` by default; e.g. `/usr/bin/python3`).
        interpreter: Option<String>,
        #[serde(default)]
        exit_code: i32,
        stdout_contains: Option<String>,
        stdout_matches: Option<String>,
        stdin: Option<String>,
    },
    Http {
        /// A port inside the session (its loopback network).
        port: u16,
        #[serde(default = "root_path")]
        path: String,
        /// A program to start first (argv), stopped when the check ends.
        start: Option<Vec<String>>,
        #[serde(default = "ok_status")]
        expect_status: u16,
        body_contains: Option<String>,
        /// A JSON field of the body (a JSON pointer, e.g. `/status`) …
        json_pointer: Option<String>,
        /// … and the value it must equal.
        json_equals: Option<toml::Value>,
    },
    Dockerfile {
        #[serde(default = "dockerfile_path")]
        path: String,
        rules: Vec<String>,
        /// Patterns `.dockerignore` must list (`dockerignore` rule).
        #[serde(default)]
        dockerignore_excludes: Vec<String>,
    },
    Image {
        #[serde(default = "dockerfile_path")]
        dockerfile: String,
        /// Port the container listens on; with `health_path`, probed after it starts.
        port: Option<u16>,
        health_path: Option<String>,
        /// Largest acceptable image, in MB.
        max_size_mb: Option<u64>,
        /// Most layers an image may have.
        max_layers: Option<u32>,
        /// The image's `USER` must not be root.
        #[serde(default)]
        non_root: bool,
        /// The image must have a `HEALTHCHECK`.
        #[serde(default)]
        healthcheck: bool,
        /// With a port: the container must stop on SIGTERM within this many seconds.
        stop_timeout_s: Option<u32>,
    },
}

fn root_path() -> String {
    "/".into()
}

fn ok_status() -> u16 {
    200
}

fn dockerfile_path() -> String {
    "Dockerfile".into()
}
