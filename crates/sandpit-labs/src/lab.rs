//! A validated lab: what the judge runs and the server shows. Built only by [`crate::load`].

use std::collections::BTreeMap;
use std::time::Duration;

use regex::Regex;
use sandpit_sandbox::WorkspacePath;

pub use crate::manifest::{Difficulty, LabLimits};

/// Files by workspace-relative path (`starter/`, `solution/` contents).
pub type Files = BTreeMap<WorkspacePath, Vec<u8>>;

#[derive(Debug, Clone)]
pub struct Lab {
    pub slug: String,
    pub title: String,
    pub summary: String,
    pub difficulty: Difficulty,
    pub tags: Vec<String>,
    pub environment: String,
    pub ttl_minutes: Option<u64>,
    pub limits: LabLimits,
    pub steps: Vec<Step>,
    /// Copied into a new session's workspace.
    pub starter: Files,
    /// Written over the starter by `sandpit lab test`; never shown to learners.
    pub solution: Files,
    /// Run once (as `/bin/bash -c`) in a new workspace after the starter files.
    pub setup: Option<String>,
    /// Run by `sandpit lab test` after `solution` is written; never shown to learners.
    pub solution_script: Option<String>,
    /// Where it came from: `built-in` or the folder it was loaded from.
    pub source: String,
}

impl Lab {
    pub fn step(&self, id: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.id == id)
    }

    /// The starter with the solution written over it.
    pub fn solved_files(&self) -> Files {
        let mut files = self.starter.clone();
        files.extend(self.solution.iter().map(|(p, d)| (p.clone(), d.clone())));
        files
    }
}

#[derive(Debug, Clone)]
pub struct Step {
    pub id: String,
    pub title: String,
    pub markdown: String,
    /// Authored hints, gentlest first.
    pub hints: Vec<String>,
    pub checks: Vec<Check>,
}

#[derive(Debug, Clone)]
pub struct Check {
    /// Stable failure code (for a `dockerfile` check: the prefix of its rules' codes).
    pub code: String,
    /// `None` only where the judge supplies one (a script's output, a Dockerfile rule).
    pub message: Option<String>,
    /// `None` only for `dockerfile` checks (each rule has its own).
    pub hint: Option<String>,
    /// The whole check's deadline.
    pub timeout: Duration,
    pub kind: CheckKind,
}

#[derive(Debug, Clone)]
pub enum CheckKind {
    FileExists {
        path: WorkspacePath,
    },
    FileAbsent {
        path: WorkspacePath,
    },
    FileMatches {
        path: WorkspacePath,
        pattern: Regex,
    },
    Command {
        argv: Vec<String>,
        /// True when the argv runs an author's script (its output is feedback).
        script: bool,
        stdin: Option<String>,
        exit_code: i32,
        stdout_contains: Option<String>,
        stdout_matches: Option<Regex>,
    },
    Http {
        port: u16,
        path: String,
        start: Option<Vec<String>>,
        expect_status: u16,
        body_contains: Option<String>,
        json: Option<(String, serde_json::Value)>,
    },
    Dockerfile {
        path: WorkspacePath,
        rules: Vec<crate::dockerfile::Rule>,
        dockerignore_excludes: Vec<String>,
    },
    Image {
        dockerfile: WorkspacePath,
        port: Option<u16>,
        health_path: Option<String>,
        max_size_mb: Option<u64>,
        max_layers: Option<u32>,
        /// The image's `USER` must not be root.
        non_root: bool,
        /// The image must have a `HEALTHCHECK`.
        healthcheck: bool,
        /// With a port: `docker stop --time N` must end the container without SIGKILL.
        stop_timeout_s: Option<u32>,
    },
}

impl CheckKind {
    pub fn name(&self) -> &'static str {
        match self {
            CheckKind::FileExists { .. } => "file_exists",
            CheckKind::FileAbsent { .. } => "file_absent",
            CheckKind::FileMatches { .. } => "file_matches",
            CheckKind::Command { .. } => "command",
            CheckKind::Http { .. } => "http",
            CheckKind::Dockerfile { .. } => "dockerfile",
            CheckKind::Image { .. } => "image",
        }
    }

    /// The deadline when the author sets none.
    pub fn default_timeout(&self) -> Duration {
        Duration::from_millis(match self {
            CheckKind::FileExists { .. }
            | CheckKind::FileAbsent { .. }
            | CheckKind::FileMatches { .. }
            | CheckKind::Dockerfile { .. } => 5_000,
            CheckKind::Command { .. } | CheckKind::Http { .. } => 10_000,
            CheckKind::Image { .. } => 300_000,
        })
    }
}
