//! Rate limits: token buckets (GCRA, from `governor`) keyed by client address for the auth
//! endpoints and by user (or address when anonymous) for the rest of the API.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use uuid::Uuid;

use crate::auth::Authenticated;
use crate::config::RateLimitConfig;
use crate::error::ApiError;
use crate::metrics::RateLimitLabels;
use crate::state::AppState;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    User(Uuid),
    Ip(IpAddr),
}

pub struct RateLimits {
    auth: DefaultKeyedRateLimiter<IpAddr>,
    api: DefaultKeyedRateLimiter<Subject>,
    clock: DefaultClock,
}

impl RateLimits {
    pub fn new(config: &RateLimitConfig) -> Self {
        let per_minute = |n: u32| Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN));
        Self {
            auth: RateLimiter::keyed(per_minute(config.auth_per_minute)),
            api: RateLimiter::keyed(per_minute(config.api_per_minute)),
            clock: DefaultClock::default(),
        }
    }

    fn check<K: std::hash::Hash + Eq + Clone>(
        &self,
        limiter: &DefaultKeyedRateLimiter<K>,
        key: &K,
    ) -> Result<(), ApiError> {
        limiter
            .check_key(key)
            .map_err(|not_until| ApiError::RateLimited {
                retry_after: not_until.wait_time_from(self.clock.now()),
            })
    }

    /// Forgets buckets that are full again, so the maps don't grow with every address ever seen.
    pub fn prune(&self) {
        self.auth.retain_recent();
        self.api.retain_recent();
        self.auth.shrink_to_fit();
        self.api.shrink_to_fit();
    }
}

/// The caller's address: the socket peer, or the last `X-Forwarded-For` hop when configured.
pub fn client_ip(req: &Request, trust_forwarded_for: bool) -> IpAddr {
    if trust_forwarded_for
        && let Some(ip) = req
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|v| v.trim().parse().ok())
    {
        return ip;
    }
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip())
}

/// Middleware for sign-up, login and GitHub sign-in: per client address.
pub async fn limit_auth(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let ip = client_ip(&req, state.config.server.trust_forwarded_for);
    if let Err(e) = state.limits.check(&state.limits.auth, &ip) {
        state
            .metrics
            .rate_limited
            .get_or_create(&RateLimitLabels { bucket: "auth" })
            .inc();
        return e.into_response();
    }
    next.run(req).await
}

/// Middleware for the whole API: per user, or per address when not signed in.
pub async fn limit_api(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let subject = match req
        .extensions()
        .get::<Authenticated>()
        .and_then(|a| a.0.as_ref())
    {
        Some(p) => Subject::User(p.user.id),
        None => Subject::Ip(client_ip(&req, state.config.server.trust_forwarded_for)),
    };
    if let Err(e) = state.limits.check(&state.limits.api, &subject) {
        state
            .metrics
            .rate_limited
            .get_or_create(&RateLimitLabels { bucket: "api" })
            .inc();
        return e.into_response();
    }
    next.run(req).await
}
