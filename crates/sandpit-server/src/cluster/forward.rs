//! Requests for a session whose sandbox another replica holds go to that replica: the whole
//! request (method, path, query, headers, streamed body; a WebSocket upgrade spliced through)
//! over a keep-alive pool per peer, with [`super::FORWARDED_HEADER`] added. The holder
//! authenticates and authorizes the request again and answers it as if it had come directly;
//! this replica has applied its rate limit already, so the holder does not count it twice.

use std::sync::Arc;

use async_trait::async_trait;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::HeaderValue;
use sandpit_store::{Placement, StoreError};
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::AppState;

/// Connects to a peer replica by host name and port.
pub(super) struct Dial {
    pub host: String,
    pub port: u16,
}

#[async_trait]
impl sandpit_proxy::Connect for Dial {
    async fn connect(&self) -> std::io::Result<tokio::net::TcpStream> {
        let stream = tokio::net::TcpStream::connect((self.host.as_str(), self.port)).await?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }
}

/// The session a path is about: `/api/v1/sessions/{id}` and everything under it.
pub fn session_in_path(path: &str) -> Option<Uuid> {
    let rest = path.strip_prefix("/api/v1/sessions/")?;
    let id = rest.split('/').next()?;
    Uuid::parse_str(id).ok()
}

/// Routes whose JSON body names a session whose workspace they read: saving a project from a
/// session, deploying an app from one.
fn names_session_in_body(method: &http::Method, path: &str) -> bool {
    if method != http::Method::POST {
        return false;
    }
    let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    matches!(
        parts.as_slice(),
        ["", "api", "v1", "projects", id, "save"] | ["", "api", "v1", "apps", id, "deploy"]
            if Uuid::parse_str(id).is_ok()
    )
}

/// Middleware on the API, inside authentication and the rate limit: a request for a session
/// held by another live replica is forwarded there. A session no live replica holds is
/// claimed here first (except by the plain session resource, which needs no sandbox), so of
/// two replicas racing for a suspended session one answers and the other forwards to it,
/// with no request refused.
pub async fn route_sessions(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let id = match session_in_path(req.uri().path()) {
        Some(id) => id,
        None if names_session_in_body(req.method(), req.uri().path())
            && !state.cluster.is_forwarded(req.headers()) =>
        {
            return route_by_body(state, req, next).await;
        }
        None => return next.run(req).await,
    };
    // Sent by a replica: answered here, never sent on (no loops). Running here: the fast path.
    if state.cluster.is_forwarded(req.headers()) || state.sessions.runs_here(id) {
        return next.run(req).await;
    }
    match state.cluster.holder_elsewhere(id).await {
        Ok(Some(url)) => return forward(&state, id, &url, req).await,
        Ok(None) => {}
        Err(e) => return ApiError::internal(e).into_response(),
    }
    let needs_sandbox =
        req.uri().path().trim_end_matches('/').len() > "/api/v1/sessions/".len() + 36;
    if !needs_sandbox {
        return next.run(req).await;
    }
    match state.cluster.claim(id).await {
        Ok(Placement::Elsewhere { advertise_url, .. }) if !advertise_url.is_empty() => {
            forward(&state, id, &advertise_url, req).await
        }
        // Mine; or the holder vanished between the claim's two statements (the handler's own
        // claim takes it); or not a live session (the handler says which: 404 or 409).
        Ok(_) | Err(StoreError::NotFound) => next.run(req).await,
        Err(e) => ApiError::internal(e).into_response(),
    }
}

/// A request whose body names the session: read (within the body limit), then forwarded to
/// the session's holder when that is another replica, else handled here with the same bytes.
async fn route_by_body(state: AppState, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let limit = state.config.server.body_limit_bytes;
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => bytes,
        Err(_) => return ApiError::PayloadTooLarge.into_response(),
    };
    let session = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| {
            v.get("session_id")?
                .as_str()
                .and_then(|s| Uuid::parse_str(s).ok())
        });
    let req = Request::from_parts(parts, axum::body::Body::from(bytes));
    let Some(id) = session else {
        return next.run(req).await;
    };
    if state.sessions.runs_here(id) {
        return next.run(req).await;
    }
    match state.cluster.holder_elsewhere(id).await {
        Ok(Some(url)) => forward(&state, id, &url, req).await,
        Ok(None) => next.run(req).await,
        Err(e) => ApiError::internal(e).into_response(),
    }
}

async fn forward(state: &AppState, session: Uuid, url: &str, mut req: Request) -> Response {
    let cluster = &state.cluster;
    let unavailable = || ApiError::Unavailable {
        code: "replica_unavailable",
        message: "the server replica running this session did not answer; it is taken over \
                  once that replica is known to be gone: try again shortly"
            .into(),
        retry_after: Some(cluster.config().dead_after()),
    };
    let Some(peer) = cluster.peer(url) else {
        tracing::warn!(peer = url, "a replica advertises an unusable URL");
        return unavailable().into_response();
    };
    let path = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    match path.parse() {
        Ok(uri) => *req.uri_mut() = uri,
        Err(_) => return ApiError::NotFound("no such API route".into()).into_response(),
    }
    let token = cluster.forward_token();
    match HeaderValue::from_str(&token) {
        Ok(value) => {
            req.headers_mut().insert(super::FORWARDED_HEADER, value);
        }
        Err(e) => return ApiError::internal(e).into_response(),
    }
    let presentation = sandpit_proxy::Presentation {
        mode: sandpit_proxy::Mode::Replica,
        platform_cookies: Arc::from(Vec::<String>::new()),
        client_ip: Some(crate::limits::client_ip(
            &req,
            state.config.server.trust_forwarded_for,
        )),
        scheme: "http",
        host: req
            .headers()
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
    };
    state.metrics.forwarded_requests.inc();
    match peer.forward(req, &presentation).await {
        Ok(response) => response.map(axum::body::Body::new),
        Err(e) => {
            tracing::warn!(peer = url, error = %e, "forwarding a session request to its replica");
            cluster.forget_holder(session);
            unavailable().into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_routes_name_their_session() {
        let id = Uuid::new_v4();
        for path in [
            format!("/api/v1/sessions/{id}"),
            format!("/api/v1/sessions/{id}/files/a/b.py"),
            format!("/api/v1/sessions/{id}/terminal"),
        ] {
            assert_eq!(session_in_path(&path), Some(id), "{path}");
        }
        for path in [
            "/api/v1/sessions".to_owned(),
            "/api/v1/sessions/".to_owned(),
            "/api/v1/sessions/not-a-uuid/files".to_owned(),
            format!("/api/v1/labs/{id}"),
            format!("/user/x/api/v1/sessions/{id}"),
        ] {
            assert_eq!(session_in_path(&path), None, "{path}");
        }
    }

    #[test]
    fn saving_and_deploying_from_a_session_name_it_in_the_body() {
        let id = Uuid::new_v4();
        let post = http::Method::POST;
        assert!(names_session_in_body(
            &post,
            &format!("/api/v1/projects/{id}/save")
        ));
        assert!(names_session_in_body(
            &post,
            &format!("/api/v1/apps/{id}/deploy/")
        ));
        assert!(!names_session_in_body(
            &http::Method::GET,
            &format!("/api/v1/apps/{id}/deploy")
        ));
        assert!(!names_session_in_body(&post, "/api/v1/apps/x/deploy"));
        assert!(!names_session_in_body(
            &post,
            &format!("/api/v1/apps/{id}/status")
        ));
        assert!(!names_session_in_body(
            &post,
            &format!("/api/v1/projects/{id}/save/more")
        ));
    }
}
