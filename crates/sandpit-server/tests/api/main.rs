//! Integration tests: each test runs the real server on port 0 with its own data directory
//! (and its own database), through real HTTP.

#![expect(
    clippy::unwrap_used,
    reason = "a failed unwrap is how a test step fails, loudly"
)]

mod agents;
mod apps;
mod auth;
mod authz;
mod bad_input;
mod databases;
mod docker;
mod files;
mod github;
mod helpers;
mod hostile_runs;
mod jobs;
mod journey;
mod judge0;
mod labs;
mod openapi;
mod ops;
mod origin;
mod projects;
mod rate_limits;
mod runs;
mod sessions;
mod tokens;
