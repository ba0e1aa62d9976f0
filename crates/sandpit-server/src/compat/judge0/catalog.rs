//! Judge0's numbers for things sandpit names: language ids for the installed runtimes, and
//! submission statuses with Judge0's descriptions.

use serde::Serialize;

use crate::runs::runtimes::{Registry, Runtime};

/// The Judge0 CE release whose ids and shapes this API follows. Its SDK resolves language
/// names (`judge0.PYTHON`) through a table per version, so this is what `/about` reports.
pub const VERSION: &str = "1.13.1";

/// Judge0 CE 1.13.1's ids of the languages sandpit's default runtimes provide: `(id, name as
/// Judge0 spells it, compiler's name in the label, sandpit runtime)`. Judge0 has several ids
/// for one language at different compiler versions; each one is served by the one compiler
/// installed here, so a client asking for any of them is answered.
const IDS: &[(i64, &str, &str, &str)] = &[
    (46, "Bash", "", "bash"),
    (48, "C", "GCC ", "c"),
    (49, "C", "GCC ", "c"),
    (50, "C", "GCC ", "c"),
    (52, "C++", "GCC ", "cpp"),
    (53, "C++", "GCC ", "cpp"),
    (54, "C++", "GCC ", "cpp"),
    (60, "Go", "", "go"),
    (62, "Java", "OpenJDK ", "java"),
    (63, "JavaScript", "Node.js ", "node"),
    (71, "Python", "", "python3"),
    (73, "Rust", "", "rust"),
];

/// Judge0's "Multi-file program": the `additional_files` zip holds a `run` script (and a
/// `compile` one, optionally), run with bash.
pub const MULTI_FILE: i64 = 89;

/// One language as `GET /languages/{id}` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Language {
    pub id: i64,
    pub name: String,
    pub is_archived: bool,
    pub source_file: String,
    pub compile_cmd: Option<String>,
    pub run_cmd: String,
}

/// The language with Judge0 id `id`, if its runtime is installed here, with the runtime.
pub fn language(registry: &Registry, id: i64) -> Option<(Language, &Runtime)> {
    if id == MULTI_FILE {
        let bash = registry.get("bash")?;
        let language = Language {
            id,
            name: "Multi-file program".into(),
            is_archived: false,
            source_file: String::new(),
            compile_cmd: Some("/bin/bash compile".into()),
            run_cmd: "/bin/bash run".into(),
        };
        return Some((language, bash));
    }
    let &(id, name, compiler, runtime) = IDS.iter().find(|(i, ..)| *i == id)?;
    let runtime = registry.get(runtime)?;
    let language = Language {
        id,
        name: format!("{name} ({compiler}{})", version_number(&runtime.version)),
        is_archived: false,
        source_file: runtime.config.source_file.clone(),
        compile_cmd: runtime.config.compile_argv.as_ref().map(|a| a.join(" ")),
        run_cmd: runtime.config.run_argv.join(" "),
    };
    Some((language, runtime))
}

/// Every Judge0 language this server can run, by id.
pub fn languages(registry: &Registry) -> Vec<Language> {
    IDS.iter()
        .map(|(id, ..)| *id)
        .chain([MULTI_FILE])
        .filter_map(|id| language(registry, id).map(|(l, _)| l))
        .collect()
}

/// The first thing in a version line that looks like a version number (`Python 3.11.2` →
/// `3.11.2`, `gcc (Debian 12.2.0-14) 12.2.0` → `12.2.0`), else the line.
pub(crate) fn version_number(line: &str) -> &str {
    line.split(|c: char| c.is_whitespace() || c == '(' || c == ')' || c == 'v')
        .find(|w| {
            w.contains('.')
                && w.chars().next().is_some_and(|c| c.is_ascii_digit())
                && w.chars().all(|c| c.is_ascii_digit() || c == '.')
        })
        .unwrap_or(line)
}

/// A submission's status, with Judge0's ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    InQueue = 1,
    Processing = 2,
    Accepted = 3,
    WrongAnswer = 4,
    TimeLimitExceeded = 5,
    CompilationError = 6,
    Sigsegv = 7,
    Sigxfsz = 8,
    Sigfpe = 9,
    Sigabrt = 10,
    Nzec = 11,
    RuntimeErrorOther = 12,
    InternalError = 13,
    ExecFormatError = 14,
}

pub const STATUSES: [Status; 14] = [
    Status::InQueue,
    Status::Processing,
    Status::Accepted,
    Status::WrongAnswer,
    Status::TimeLimitExceeded,
    Status::CompilationError,
    Status::Sigsegv,
    Status::Sigxfsz,
    Status::Sigfpe,
    Status::Sigabrt,
    Status::Nzec,
    Status::RuntimeErrorOther,
    Status::InternalError,
    Status::ExecFormatError,
];

/// `{id, description}`, as Judge0 answers a status.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct StatusView {
    pub id: u8,
    pub description: &'static str,
}

impl Status {
    pub fn id(self) -> u8 {
        self as u8
    }

    pub fn from_id(id: u8) -> Option<Self> {
        STATUSES.into_iter().find(|s| s.id() == id)
    }

    pub fn description(self) -> &'static str {
        match self {
            Status::InQueue => "In Queue",
            Status::Processing => "Processing",
            Status::Accepted => "Accepted",
            Status::WrongAnswer => "Wrong Answer",
            Status::TimeLimitExceeded => "Time Limit Exceeded",
            Status::CompilationError => "Compilation Error",
            Status::Sigsegv => "Runtime Error (SIGSEGV)",
            Status::Sigxfsz => "Runtime Error (SIGXFSZ)",
            Status::Sigfpe => "Runtime Error (SIGFPE)",
            Status::Sigabrt => "Runtime Error (SIGABRT)",
            Status::Nzec => "Runtime Error (NZEC)",
            Status::RuntimeErrorOther => "Runtime Error (Other)",
            Status::InternalError => "Internal Error",
            Status::ExecFormatError => "Exec Format Error",
        }
    }

    pub fn view(self) -> StatusView {
        StatusView {
            id: self.id(),
            description: self.description(),
        }
    }

    /// The runtime error a signal means to Judge0.
    pub fn of_signal(signal: i32) -> Self {
        match signal {
            11 => Status::Sigsegv,
            25 => Status::Sigxfsz,
            8 => Status::Sigfpe,
            6 => Status::Sigabrt,
            _ => Status::RuntimeErrorOther,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_numbers_are_found_in_version_lines() {
        assert_eq!(version_number("Python 3.11.2"), "3.11.2");
        assert_eq!(version_number("gcc (Debian 12.2.0-14) 12.2.0"), "12.2.0");
        assert_eq!(version_number("v18.19.0"), "18.19.0");
        assert_eq!(
            version_number("GNU bash, version 5.2.15(1)-release"),
            "5.2.15"
        );
        assert_eq!(version_number("openjdk 17.0.13 2024-10-15"), "17.0.13");
        assert_eq!(version_number("no digits"), "no digits");
    }

    #[test]
    fn statuses_have_judge0s_ids_in_order() {
        for (n, status) in STATUSES.iter().enumerate() {
            assert_eq!(usize::from(status.id()), n + 1);
            assert_eq!(Status::from_id(status.id()), Some(*status));
        }
        assert_eq!(Status::from_id(15), None);
        assert_eq!(Status::of_signal(11), Status::Sigsegv);
        assert_eq!(Status::of_signal(9), Status::RuntimeErrorOther);
    }
}
