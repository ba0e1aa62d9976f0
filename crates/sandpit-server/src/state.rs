//! Shared state handed to every handler. Built once per [`crate::App`], never global, so each
//! test can run its own server with its own configuration.

use std::sync::Arc;

use axum::extract::FromRef;
use axum_extra::extract::cookie::Key;
use sandpit_store::Store;

use crate::auth::cache::AuthCache;
use crate::config::Config;
use crate::limits::RateLimits;
use crate::metrics::Metrics;
use crate::runs::service::Runs;
use crate::sandbox::Sandboxes;
use crate::sessions::Sessions;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    /// Signs short-lived cookies such as the OAuth state.
    pub cookie_key: Key,
    /// Base URL users reach us at, without a trailing slash.
    pub public_url: Arc<str>,
    pub secure_cookies: bool,
    /// Origins whose pages may act with the session cookie.
    pub origins: Arc<crate::auth::origin::TrustedOrigins>,
    pub limits: Arc<RateLimits>,
    pub metrics: Arc<Metrics>,
    /// Recently resolved credentials (see [`crate::auth::cache`]).
    pub auth_cache: Arc<AuthCache>,
    /// Client for outbound calls (GitHub), with timeouts.
    pub http: reqwest::Client,
    /// The sandbox backend (or why there is none).
    pub sandboxes: Arc<Sandboxes>,
    /// The docker environment (whether it works here).
    pub docker: Arc<crate::docker::Docker>,
    pub runs: Arc<Runs>,
    pub projects: Arc<crate::projects::Projects>,
    /// Deployed apps: their deploys, running instances and the proxy's routing.
    pub apps: Arc<crate::apps::Apps>,
    /// Users' own databases and their viewer.
    pub databases: Arc<crate::databases::Databases>,
    /// The durable job queue (its workers run from `App::run_until`).
    pub queue: sandpit_jobs::Queue,
    pub sessions: Arc<Sessions>,
    /// This replica among those sharing the database (heartbeats, placements, forwarding).
    pub cluster: Arc<crate::cluster::Cluster>,
    /// Language models routed per task (or none: authored hints only).
    pub llm: Arc<crate::llm::Llm>,
    /// Labs: the catalog, starting, judging, progress, hints.
    pub labs: Arc<crate::labs::Labs>,
}

impl FromRef<AppState> for Key {
    fn from_ref(state: &AppState) -> Self {
        state.cookie_key.clone()
    }
}
