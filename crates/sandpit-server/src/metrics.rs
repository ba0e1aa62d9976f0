//! Prometheus metrics, one registry per app (no global recorder, so tests stay independent).

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::state::AppState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    /// The route template (`/api/v1/tokens/{id}`), never the raw path, so ids don't explode
    /// the label set. Unmatched requests are labelled `unmatched`.
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: String,
    pub route: String,
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub latency: Family<RouteLabels, Histogram>,
    pub in_flight: Gauge,
    pub rate_limited: Family<RateLimitLabels, Counter>,
    /// Set at each scrape from the sessions service.
    pub sessions_running: Gauge,
    pub sessions_reaped: Gauge,
    pub terminals_attached: Gauge,
    /// Memory of all running sessions' sandboxes, and of the largest: never per session, since
    /// `/metrics` is public and session ids must not leak (they name learners' workspaces).
    pub sessions_memory: Gauge,
    pub session_memory_max: Gauge,
    pub llm_completions: Family<LlmLabels, Counter>,
    /// Session requests sent on to the replica holding the session.
    pub forwarded_requests: Counter,
    /// Replicas with a fresh heartbeat (this one included), set at each scrape.
    pub live_replicas: Gauge,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LlmLabels {
    /// The provider's name in the config.
    pub provider: String,
    /// `ok`, `timeout`, `status`, `protocol` or `transport`.
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RateLimitLabels {
    pub bucket: &'static str,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("sandpit");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            // 0.5 ms … ~16 s, doubling.
            Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
                0.0005, 2.0, 16,
            ))
        });
        let in_flight = Gauge::default();
        let rate_limited = Family::<RateLimitLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer HTTP requests, by method and route",
            latency.clone(),
        );
        registry.register(
            "http_requests_in_flight",
            "HTTP requests being answered now",
            in_flight.clone(),
        );
        registry.register(
            "rate_limited",
            "Requests refused by a rate limit, by bucket",
            rate_limited.clone(),
        );
        let sessions_running = Gauge::default();
        registry.register(
            "sessions_running",
            "Sessions with a running sandbox",
            sessions_running.clone(),
        );
        let sessions_reaped = Gauge::default();
        registry.register(
            "sessions_reaped",
            "Sessions ended by the reaper since start",
            sessions_reaped.clone(),
        );
        let terminals_attached = Gauge::default();
        registry.register(
            "terminals_attached",
            "WebSocket clients attached to session terminals",
            terminals_attached.clone(),
        );
        let sessions_memory = Gauge::default();
        registry.register(
            "sessions_memory_bytes",
            "Memory used by the sandboxes of all running sessions",
            sessions_memory.clone(),
        );
        let session_memory_max = Gauge::default();
        registry.register(
            "session_memory_max_bytes",
            "Memory used by the largest running session's sandbox",
            session_memory_max.clone(),
        );
        let llm_completions = Family::<LlmLabels, Counter>::default();
        registry.register(
            "llm_completions",
            "Language model requests, by provider and outcome",
            llm_completions.clone(),
        );
        let forwarded_requests = Counter::default();
        registry.register(
            "forwarded_requests",
            "Session requests forwarded to the replica holding the session",
            forwarded_requests.clone(),
        );
        let live_replicas = Gauge::default();
        registry.register(
            "live_replicas",
            "Server replicas with a fresh heartbeat on this database",
            live_replicas.clone(),
        );
        let build = Family::<Vec<(String, String)>, Gauge>::default();
        build
            .get_or_create(&vec![("version".into(), env!("CARGO_PKG_VERSION").into())])
            .set(1);
        registry.register("build_info", "sandpit version", build);
        Self {
            registry,
            requests,
            latency,
            in_flight,
            rate_limited,
            sessions_running,
            sessions_reaped,
            terminals_attached,
            sessions_memory,
            session_memory_max,
            llm_completions,
            forwarded_requests,
            live_replicas,
        }
    }

    /// The text exposition format.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Counts a request as in flight until dropped — also when the client goes away and the
/// request's future is dropped half-way.
struct InFlight(Gauge);

impl InFlight {
    fn enter(gauge: &Gauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Middleware: counts and times every request by its route template.
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().as_str().to_owned();
    let started = Instant::now();
    let _in_flight = InFlight::enter(&state.metrics.in_flight);
    let response = next.run(req).await;
    state
        .metrics
        .latency
        .get_or_create(&RouteLabels {
            method: method.clone(),
            route: route.clone(),
        })
        .observe(started.elapsed().as_secs_f64());
    state
        .metrics
        .requests
        .get_or_create(&RequestLabels {
            method,
            route,
            status: response.status().as_u16(),
        })
        .inc();
    response
}
