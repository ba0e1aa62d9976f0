//! Jobs in the server: the worker pool with every job kind's handler, and the jobs API
//! (`routes.rs`: a job, a user's jobs, cancelling, and a job's events as a stream). The queue
//! itself is the `sandpit-jobs` crate over the store.

pub mod model;
pub mod routes;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sandpit_jobs::{Handler, Workers};

use crate::config::JobsConfig;
use crate::state::AppState;

/// The worker pool's settings from `[jobs]`.
pub fn worker_config(config: &JobsConfig) -> sandpit_jobs::Config {
    sandpit_jobs::Config {
        lease: Duration::from_secs(config.lease_seconds),
        poll: Duration::from_millis(config.poll_ms),
        backoff_base: Duration::from_millis(config.backoff_base_ms),
        backoff_max: Duration::from_secs(config.backoff_max_seconds),
        ..sandpit_jobs::Config::default()
    }
}

/// Starts this server's workers for every kind it knows.
pub fn start_workers(state: &AppState) -> Workers {
    let mut handlers: HashMap<String, Arc<dyn Handler>> = HashMap::new();
    handlers.insert(
        crate::runs::job::KIND.into(),
        Arc::new(crate::runs::job::RunJob(state.runs.clone())),
    );
    for kind in crate::agents::Kind::ALL {
        handlers.insert(
            kind.as_str().into(),
            Arc::new(crate::agents::AgentJob {
                kind,
                llm: state.llm.clone(),
                projects: state.projects.clone(),
                runs: state.runs.clone(),
            }),
        );
    }
    handlers.insert(
        crate::apps::deploy::KIND.into(),
        Arc::new(crate::apps::deploy::DeployJob(state.apps.clone())),
    );
    handlers.insert(
        crate::compat::judge0::KIND.into(),
        crate::compat::judge0::handler(state),
    );
    Workers::start(&state.queue, handlers, worker_config(&state.config.jobs))
}
