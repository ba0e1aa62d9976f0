//! The sandpit server as a library: [`App::build`] from a [`Config`], then
//! [`App::run_until_stopped`]. The `sandpit` binary is a thin CLI over this; tests build an
//! `App` on port 0 with their own config and data directory.

pub mod accounts;
pub mod agents;
pub mod apps;
pub mod auth;
pub mod cluster;
pub mod compat;
pub mod config;
pub mod databases;
pub mod docker;
pub mod domain;
pub mod error;
pub mod jobs;
pub mod labs;
pub mod limits;
pub mod llm;
pub mod metrics;
pub mod projects;
pub mod routes;
pub mod runs;
pub mod sandbox;
pub mod sessions;
mod startup;
pub mod state;
pub mod telemetry;
pub mod terminal;

pub use config::Config;
pub use startup::{App, open_store};
