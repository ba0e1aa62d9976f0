//! Labs: the lab folder format (`lab.toml`, step markdown, starter and solution files,
//! checks), its validation with every problem's file and line, the labs built into the
//! binary, and the judge that runs a step's checks inside a sandbox. No HTTP, no database:
//! the server and the `sandpit lab` CLI both use it.

pub mod catalog;
pub mod dockerfile;
pub mod judge;
pub mod killercoda;
pub mod lab;
pub mod load;
pub mod manifest;
pub mod selftest;

pub use catalog::{Catalog, Skipped};
pub use lab::{Check, CheckKind, Files, Lab, Step};
pub use load::{LoadOptions, Problem};
