//! Operations: liveness, readiness, metrics.

use std::collections::BTreeMap;
use std::time::Instant;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ApiResult, Json};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: &'static str,
    #[schema(example = "0.1.0")]
    pub version: &'static str,
}

/// Liveness: the process is up and answering.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
    })
}

/// The state of one dependency.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct Component {
    /// `ok` or `error`; the optional `docker` environment is `ok`, `checking` or
    /// `unavailable` (with why in `detail`) and never makes the server unready.
    #[schema(example = "ok")]
    pub status: &'static str,
    /// Which implementation (e.g. `sqlite`, `postgres`).
    pub backend: Option<&'static str>,
    pub latency_ms: Option<f64>,
    /// Why it is not ok (never a secret), or details such as the cgroup version.
    pub detail: Option<String>,
    /// Isolation features in force (the sandbox backend).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<String>,
    /// The language model: which provider (name, kind, model) answers each task.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub routes: BTreeMap<&'static str, crate::llm::LlmRoute>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` when every component but `docker` is ok, else `unready`.
    #[schema(example = "ready")]
    pub status: &'static str,
    /// One entry per dependency: `store`, `sandbox`, `llm` and `docker`.
    pub components: BTreeMap<&'static str, Component>,
    /// Learners' sessions in this process.
    pub sessions: crate::sessions::SessionCounts,
    /// This replica among those sharing the database.
    pub cluster: crate::cluster::ClusterReport,
}

/// Readiness: whether every dependency answers. 503 when one does not.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "A component failed", body = Readiness),
    ))]
async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let started = Instant::now();
    let store = match state.store.ping().await {
        Ok(()) => Component {
            status: "ok",
            backend: Some(state.store.backend()),
            latency_ms: Some(started.elapsed().as_secs_f64() * 1000.0),
            ..Component::default()
        },
        Err(e) => {
            tracing::warn!(error = %e, "store is not ready");
            Component {
                status: "error",
                backend: Some(state.store.backend()),
                detail: Some(e.to_string()),
                ..Component::default()
            }
        }
    };
    let checked = state.sandboxes.check().await;
    let sandbox = match state.sandboxes.report() {
        Ok(report) if checked.is_err() => Component {
            status: "error",
            backend: Some(report.backend),
            detail: checked.err(),
            ..Component::default()
        },
        Ok(report) => Component {
            status: "ok",
            backend: Some(report.backend),
            latency_ms: None,
            detail: Some(
                report
                    .details
                    .iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            features: report.features,
            ..Component::default()
        },
        Err(why) => Component {
            status: "error",
            backend: Some(match state.config.sandbox.backend {
                crate::config::SandboxBackend::Native => "native",
                crate::config::SandboxBackend::Kubernetes => "kubernetes",
            }),
            detail: Some(why.to_owned()),
            ..Component::default()
        },
    };
    // Only what is configured: probing a provider would spend quota on every probe, and a
    // failing one is no outage (hints fall back to the lab's authored ones), so never `error`.
    let routes = state.llm.readiness();
    let llm = Component {
        status: "ok",
        detail: routes
            .is_empty()
            .then(|| "not configured: hints come from the lab's authored hints".to_owned()),
        routes,
        ..Component::default()
    };
    // Optional too: without it only docker sessions are refused, with the reason given here.
    let docker = match state.docker.status() {
        crate::docker::Status::Available { images } => Component {
            status: "ok",
            backend: Some("podman"),
            detail: Some(format!("base images: {}", images.join(", "))),
            ..Component::default()
        },
        crate::docker::Status::Checking => Component {
            status: "checking",
            detail: Some("a box with an engine is being tried".into()),
            ..Component::default()
        },
        crate::docker::Status::Unavailable(why) => Component {
            status: "unavailable",
            detail: Some(why),
            ..Component::default()
        },
    };
    let components = BTreeMap::from([
        ("store", store),
        ("sandbox", sandbox),
        ("llm", llm),
        ("docker", docker),
    ]);
    let ready = components
        .iter()
        .all(|(name, c)| c.status == "ok" || *name == "docker");
    (
        if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        Json(Readiness {
            status: if ready { "ready" } else { "unready" },
            components,
            cluster: state.cluster.report(),
            sessions: state.sessions.counts(),
        }),
    )
}

/// Prometheus metrics in the OpenMetrics text format.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "OpenMetrics text", content_type = "application/openmetrics-text")))]
async fn metrics(State(state): State<AppState>) -> ApiResult<impl IntoResponse> {
    let counts = state.sessions.counts();
    let m = &state.metrics;
    m.sessions_running.set(counts.running as i64);
    m.sessions_reaped.set(counts.reaped as i64);
    m.terminals_attached.set(counts.terminals_attached as i64);
    m.live_replicas
        .set(i64::from(state.cluster.live_replicas()));
    let memory = state.sessions.memory().await;
    m.sessions_memory.set(memory.iter().sum::<u64>() as i64);
    m.session_memory_max
        .set(memory.iter().copied().max().unwrap_or(0) as i64);
    let body = state.metrics.encode().map_err(ApiError::internal)?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    ))
}
