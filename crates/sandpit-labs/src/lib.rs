//! Labs: the lab folder format (`lab.toml`, step markdown, starter and solution files,
//! checks), its validation with every problem's file and line, the labs built into the
//! binary, and the judge that runs a step's checks inside a sandbox. No HTTP, no database:
//! the server and the `sandpit lab` CLI both use it.

pub mod dockerfile;
pub mod manifest;
