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
    /// Live replicas (see [`RateLimits::set_replicas`]).
    replicas: std::sync::atomic::AtomicU32,
}

impl RateLimits {
    pub fn new(config: &RateLimitConfig) -> Self {
        let per_minute = |n: u32| Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN));
        Self {
            auth: RateLimiter::keyed(per_minute(config.auth_per_minute)),
            api: RateLimiter::keyed(per_minute(config.api_per_minute)),
            clock: DefaultClock::default(),
            replicas: std::sync::atomic::AtomicU32::new(1),
        }
    }

    /// With `n` replicas behind one load balancer each keeps its own buckets, and a request
    /// costs `n` tokens: a caller's requests across all replicas stay within the configured
    /// rate (spread unevenly, they are refused somewhat early rather than let through).
    pub fn set_replicas(&self, n: u32) {
        self.replicas
            .store(n.max(1), std::sync::atomic::Ordering::Relaxed);
    }

    fn check<K: std::hash::Hash + Eq + Clone>(
        &self,
        limiter: &DefaultKeyedRateLimiter<K>,
        key: &K,
    ) -> Result<(), ApiError> {
        let cost = self.replicas.load(std::sync::atomic::Ordering::Relaxed);
        let cost = NonZeroU32::new(cost).unwrap_or(NonZeroU32::MIN);
        match limiter.check_key_n(key, cost) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(ApiError::RateLimited {
                retry_after: not_until.wait_time_from(self.clock.now()),
            }),
            // More replicas than the bucket holds: one token each, rather than refusing all.
            Err(_) => limiter
                .check_key(key)
                .map_err(|not_until| ApiError::RateLimited {
                    retry_after: not_until.wait_time_from(self.clock.now()),
                }),
        }
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
    // Counted by the replica that forwarded it.
    if state.cluster.is_forwarded(req.headers()) {
        return next.run(req).await;
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_minute: u32) -> RateLimits {
        RateLimits::new(&RateLimitConfig {
            api_per_minute: per_minute,
            ..RateLimitConfig::default()
        })
    }

    fn allowed(limits: &RateLimits, subject: &Subject) -> u32 {
        let mut n = 0;
        while limits.check(&limits.api, subject).is_ok() {
            n += 1;
            assert!(n <= 10_000, "never limited");
        }
        n
    }

    #[test]
    fn with_n_replicas_each_allows_its_share_of_the_rate() {
        let subject = Subject::User(Uuid::nil());
        assert_eq!(allowed(&limits(60), &subject), 60);
        let two = limits(60);
        two.set_replicas(2);
        assert_eq!(allowed(&two, &subject), 30);
        let three = limits(60);
        three.set_replicas(3);
        assert_eq!(allowed(&three, &subject), 20);
        // More replicas than the bucket holds: one token a request, not all refused.
        let many = limits(4);
        many.set_replicas(10);
        assert_eq!(allowed(&many, &subject), 4);
    }
}
