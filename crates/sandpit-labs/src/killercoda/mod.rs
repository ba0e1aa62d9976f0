//! Killercoda scenarios as sandpit labs: `index.json`, the step markdown, `verify` and
//! `background` scripts, intro, finish and assets in; a lab folder's files out, with a
//! [`Report`] of everything that could not be mapped or was changed on the way.
//!
//! Pure: no file system, no HTTP. `sandpit lab import killercoda` writes the result to disk;
//! the catalog loads a scenario folder named in `labs.dirs` through it in memory.

mod convert;
mod markdown;
mod model;
#[cfg(test)]
mod tests;

use std::fmt;

use crate::load::FolderFiles;

pub use convert::import;

/// The file that makes a folder a Killercoda scenario.
pub const INDEX: &str = "index.json";

/// A scenario converted into a lab folder.
#[derive(Debug)]
pub struct Imported {
    pub slug: String,
    /// `lab.toml`, `steps/*.md`, `checks/*.sh`, `starter/…`, `setup.sh`, `solution.sh`.
    pub files: FolderFiles,
    pub report: Report,
}

/// What the import could not carry over, or carried over differently.
#[derive(Debug, Default)]
pub struct Report {
    pub notes: Vec<Note>,
}

impl Report {
    fn changed(&mut self, file: &str, message: impl Into<String>) {
        self.push(file, Mapping::Changed, message);
    }

    fn not_mapped(&mut self, file: &str, message: impl Into<String>) {
        self.push(file, Mapping::NotMapped, message);
    }

    fn push(&mut self, file: &str, mapping: Mapping, message: impl Into<String>) {
        self.notes.push(Note {
            file: file.to_owned(),
            mapping,
            message: message.into(),
        });
    }
}

/// One thing of the scenario, from `file`, that the lab does not have as it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The scenario file it came from (`index.json`, `step1/verify.sh`).
    pub file: String,
    pub mapping: Mapping,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mapping {
    /// Mapped, but not as it was (a path rewritten, a default chosen …).
    Changed,
    /// Left out: sandpit has nothing it could become.
    NotMapped,
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mapping = match self.mapping {
            Mapping::Changed => "changed   ",
            Mapping::NotMapped => "not mapped",
        };
        write!(f, "{mapping} {}: {}", self.file, self.message)
    }
}

/// Why a folder could not be imported at all (everything less is a [`Note`]).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{INDEX}: no such file: a Killercoda scenario starts with its index.json")]
    NoIndex,
    #[error("{INDEX}: is not UTF-8 text")]
    NotUtf8,
    /// Not JSON, or not the shape of an index.json (`message` says which field).
    #[error("{INDEX}:{line}:{column}: {message}")]
    BadIndex {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{INDEX}: details.steps is empty: a lab needs at least one step")]
    NoSteps,
}

/// Whether `files` hold a Killercoda scenario rather than a lab.
pub fn is_scenario(files: &FolderFiles) -> bool {
    files.contains_key(INDEX) && !files.contains_key("lab.toml")
}
