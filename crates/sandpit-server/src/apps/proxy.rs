//! Serving apps: `/user/{user}/app/{app}/…` on the platform's origin (the path mode, prefix
//! stripped) or `{app}-{user}.{apps.domain}` (the domain mode, a middleware in front of
//! every route). The header rules are `sandpit-proxy`'s; here are the routing, the owner check
//! of private apps, waking an idle app, and the pages a visitor sees when the app cannot
//! answer — every one says why, none is a bare 5xx.
//!
//! In the domain mode the platform's session cookie never reaches the app's host, so a
//! private app is unlocked by a short hand-over: the app's host sends the visitor to the
//! platform (`/apps/unlock`), which, for the signed-in owner, sends them back with a signed,
//! short-lived ticket that becomes a cookie of the app's host alone.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{any, get};
use hmac::{Hmac, Mac};
use http_body_util::BodyExt;
use sandpit_proxy::{Mode, Presentation};
use serde::Deserialize;
use sha2::Sha256;
use uuid::Uuid;

use super::Routed;
use super::instance::Health;
use crate::state::AppState;

/// The cookie that unlocks a private app on its own host (domain mode).
pub const UNLOCK_COOKIE: &str = "sandpit_app_unlock";
const UNLOCK_PATH: &str = "/.sandpit/unlock";
/// How long an unlock ticket (in the redirect) and the cookie made from it are good for.
const TICKET_SECONDS: i64 = 60;
const UNLOCK_HOURS: i64 = 12;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/user/{owner}/app/{app}", any(path_mode_root))
        .route("/user/{owner}/app/{app}/", any(path_mode_root))
        .route("/user/{owner}/app/{app}/{*rest}", any(path_mode))
        .route("/apps/unlock", get(unlock))
}

/// A page for a visitor when the app does not answer, with the reason.
fn page(status: StatusCode, code: &'static str, title: &str, message: &str) -> Response {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let refresh = if code == "app_starting" {
        "<meta http-equiv=\"refresh\" content=\"2\">"
    } else {
        ""
    };
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">{refresh}\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><style>body{{font-family:system-ui,sans-serif;max-width:40rem;\
         margin:4rem auto;padding:0 1rem;color:#1f2933}}code{{background:#f0f4f8;padding:0 .2em}}\
         </style></head><body><h1>{title}</h1><p>{message}</p><p><small>sandpit · \
         <code>{code}</code></small></p></body></html>",
        title = esc(title),
        message = esc(message),
    );
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("x-sandpit-proxy", HeaderValue::from_static(code));
    if status == StatusCode::SERVICE_UNAVAILABLE {
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
    }
    response
}

fn no_such_app() -> Response {
    page(
        StatusCode::NOT_FOUND,
        "app_not_found",
        "No such app",
        "There is no app at this address, or it is private.",
    )
}

fn client_ip(req: &Request) -> Option<IpAddr> {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"))
}

async fn path_mode_root(
    State(state): State<AppState>,
    Path((owner, app)): Path<(String, String)>,
    req: Request,
) -> Response {
    if req.uri().path().ends_with('/') {
        return path_mode_inner(state, owner, app, String::new(), req).await;
    }
    // Relative links in the app's pages need the trailing slash.
    let query = req
        .uri()
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    Redirect::permanent(&format!("{}/{query}", req.uri().path())).into_response()
}

async fn path_mode(
    State(state): State<AppState>,
    Path((owner, app, rest)): Path<(String, String, String)>,
    req: Request,
) -> Response {
    path_mode_inner(state, owner, app, rest, req).await
}

fn app_side_uri(rest: &str, uri: &Uri) -> Option<Uri> {
    let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
    // The raw path, as the client sent it (percent-encoding kept).
    format!("/{rest}{query}").parse().ok()
}

async fn path_mode_inner(
    state: AppState,
    owner: String,
    app: String,
    rest: String,
    req: Request,
) -> Response {
    let routed = match state.apps.route(&owner, &app).await {
        Ok(Some(r)) => r,
        Ok(None) => return no_such_app(),
        Err(e) => return e.into_response(),
    };
    if !state.apps.config().domain.is_empty() {
        // The safe mode is on: apps never run on the platform's origin.
        let target = format!(
            "{}{}",
            state
                .apps
                .url(&routed.owner, &routed.app.name)
                .trim_end_matches('/'),
            app_side_uri(&rest, req.uri()).map_or_else(|| "/".into(), |u| u.to_string())
        );
        return Redirect::temporary(&target).into_response();
    }
    if !routed.app.public {
        let owner_signed_in = crate::auth::principal_of(&state, req.headers())
            .await
            .ok()
            .flatten()
            .is_some_and(|p| p.user.id == routed.app.user_id);
        if !owner_signed_in {
            return no_such_app();
        }
    }
    // The rest of the path as sent (`Path` decoded it): `/user/{owner}/app/{app}/{rest}`.
    let prefix = super::Apps::prefix(&routed.owner, &routed.app.name);
    let rest = req
        .uri()
        .path()
        .splitn(6, '/')
        .nth(5)
        .map_or(rest, str::to_owned);
    let Some(uri) = app_side_uri(&rest, req.uri()) else {
        return page(
            StatusCode::BAD_REQUEST,
            "bad_path",
            "Bad request",
            "The path could not be read.",
        );
    };
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let presentation = Presentation {
        mode: Mode::PathPrefix { prefix },
        platform_cookies: platform_cookies(&state),
        client_ip: client_ip(&req),
        scheme: if state.secure_cookies {
            "https"
        } else {
            "http"
        },
        host,
    };
    serve(&state, routed, uri, presentation, req).await
}

fn platform_cookies(state: &AppState) -> Arc<[String]> {
    Arc::from(vec![
        state.config.auth.cookie_name.clone(),
        crate::routes::github::STATE_COOKIE.to_owned(),
        UNLOCK_COOKIE.to_owned(),
    ])
}

/// What a `Host` is in the domain mode.
#[derive(Debug, PartialEq, Eq)]
enum AppsHost {
    /// Not under the apps domain.
    Platform,
    /// `{label}.{domain}`: an app's host, if an app has that label.
    App(String),
    /// The apps domain itself, or a name deeper than an app's: never an app, and never the
    /// platform either (an app's page can set cookies for the names below its own).
    None,
}

fn on_apps_domain(host: &str, domain: &str) -> AppsHost {
    let name = match host.rsplit_once(':') {
        // Not an IPv6 literal's colon.
        Some((name, port)) if !port.contains(']') => name,
        _ => host,
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    if name == domain {
        return AppsHost::None;
    }
    match name
        .strip_suffix(domain)
        .and_then(|rest| rest.strip_suffix('.'))
    {
        None => AppsHost::Platform,
        Some(label) if !label.is_empty() && !label.contains('.') => AppsHost::App(label.into()),
        Some(_) => AppsHost::None,
    }
}

/// Middleware for the domain mode: a request for `{app}-{user}.{apps.domain}` goes to the
/// app, whatever its path; any other name under the apps domain gets the no-such-app page;
/// anything else goes to the platform's routes.
pub async fn host_mode(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let domain = &state.apps.config().domain;
    if domain.is_empty() {
        return next.run(req).await;
    }
    // As the visitor sent it (the port included), for X-Forwarded-Host; the name alone, in
    // lower case, to route by.
    let sent_host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let label = match on_apps_domain(&sent_host, domain) {
        AppsHost::Platform => return next.run(req).await,
        AppsHost::None => return no_such_app(),
        AppsHost::App(label) => label,
    };
    let routed = match state.apps.route_label(&label).await {
        Ok(Some(r)) => r,
        Ok(None) => return no_such_app(),
        Err(e) => return e.into_response(),
    };
    if req.uri().path() == UNLOCK_PATH {
        return redeem(&state, &routed, req.uri());
    }
    if !routed.app.public && !unlocked(&state, &routed, req.headers()) {
        if req.method() != axum::http::Method::GET {
            return no_such_app();
        }
        let back = req
            .uri()
            .path_and_query()
            .map_or("/".to_owned(), ToString::to_string);
        let target = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("app", &routed.app.id.to_string())
            .append_pair("path", &back)
            .finish();
        return Redirect::temporary(&format!("{}/apps/unlock?{target}", state.public_url))
            .into_response();
    }
    let uri = req
        .uri()
        .path_and_query()
        .and_then(|pq| pq.as_str().parse().ok())
        .unwrap_or_else(|| Uri::from_static("/"));
    let presentation = Presentation {
        mode: Mode::Domain,
        platform_cookies: platform_cookies(&state),
        client_ip: client_ip(&req),
        scheme: if state.secure_cookies {
            "https"
        } else {
            "http"
        },
        host: sent_host,
    };
    serve(&state, routed, uri, presentation, req).await
}

type HmacSha256 = Hmac<Sha256>;

/// The MAC of an unlock ticket or cookie, under the signing key, per purpose.
fn mac(state: &AppState, purpose: &str, payload: &str) -> Option<HmacSha256> {
    let mut m = HmacSha256::new_from_slice(state.cookie_key.signing()).ok()?;
    m.update(b"sandpit app unlock v1\0");
    m.update(purpose.as_bytes());
    m.update(b"\0");
    m.update(payload.as_bytes());
    Some(m)
}

/// `{app_id}.{expires_unix}.{hex mac}`.
fn sign(state: &AppState, purpose: &str, app_id: Uuid, expires: i64) -> String {
    let payload = format!("{app_id}.{expires}");
    let tag = mac(state, purpose, &payload)
        .map(|m| hex::encode(m.finalize().into_bytes()))
        .unwrap_or_default();
    format!("{payload}.{tag}")
}

fn verify(state: &AppState, purpose: &str, app_id: Uuid, value: &str) -> bool {
    let Some((payload, tag)) = value.rsplit_once('.') else {
        return false;
    };
    let Some((id, expires)) = payload.split_once('.') else {
        return false;
    };
    let fresh = expires
        .parse::<i64>()
        .is_ok_and(|e| e > chrono::Utc::now().timestamp());
    let (Ok(tag), Some(m)) = (hex::decode(tag), mac(state, purpose, payload)) else {
        return false;
    };
    // verify_slice compares in constant time.
    fresh && id == app_id.to_string() && m.verify_slice(&tag).is_ok()
}

fn unlocked(state: &AppState, routed: &Routed, headers: &HeaderMap) -> bool {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .any(|(name, value)| name == UNLOCK_COOKIE && verify(state, "cookie", routed.app.id, value))
}

#[derive(Deserialize)]
struct UnlockQuery {
    app: Uuid,
    path: Option<String>,
}

/// On the platform: the signed-in owner of a private app gets a ticket for its host.
async fn unlock(
    State(state): State<AppState>,
    Query(q): Query<UnlockQuery>,
    headers: HeaderMap,
) -> Response {
    let Ok(Some(app)) = state.store.app(q.app).await else {
        return no_such_app();
    };
    let principal = crate::auth::principal_of(&state, &headers)
        .await
        .ok()
        .flatten();
    let Some(principal) = principal.filter(|p| p.user.id == app.user_id) else {
        return page(
            StatusCode::NOT_FOUND,
            "app_not_found",
            "No such app",
            "There is no app at this address, or it is private: sign in to sandpit as its \
             owner, then open it again.",
        );
    };
    let path = q
        .path
        .filter(|p| p.starts_with('/') && !p.starts_with("//"))
        .unwrap_or_else(|| "/".into());
    let expires = chrono::Utc::now().timestamp() + TICKET_SECONDS;
    let ticket = sign(&state, "ticket", app.id, expires);
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("ticket", &ticket)
        .append_pair("path", &path)
        .finish();
    let base = state.apps.url(&principal.user.username, &app.name);
    Redirect::temporary(&format!(
        "{}{UNLOCK_PATH}?{query}",
        base.trim_end_matches('/')
    ))
    .into_response()
}

/// On the app's host: a valid ticket becomes the unlock cookie of this host alone.
fn redeem(state: &AppState, routed: &Routed, uri: &Uri) -> Response {
    let params: Vec<(String, String)> =
        url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let ticket = get("ticket").unwrap_or_default();
    if !verify(state, "ticket", routed.app.id, &ticket) {
        return no_such_app();
    }
    let path = get("path")
        .filter(|p| p.starts_with('/') && !p.starts_with("//"))
        .unwrap_or_else(|| "/".into());
    let expires = chrono::Utc::now().timestamp() + UNLOCK_HOURS * 3600;
    let cookie = format!(
        "{UNLOCK_COOKIE}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{}",
        sign(state, "cookie", routed.app.id, expires),
        UNLOCK_HOURS * 3600,
        if state.secure_cookies { "; Secure" } else { "" }
    );
    let mut response = Redirect::to(&path).into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// Forwards a request to the app's instance, waking it when it has none.
async fn serve(
    state: &AppState,
    routed: Routed,
    uri: Uri,
    presentation: Presentation,
    req: Request,
) -> Response {
    let app = &routed.app;
    if app.desired == "stopped" {
        return page(
            StatusCode::SERVICE_UNAVAILABLE,
            "app_stopped",
            "This app is stopped",
            "Its owner stopped it; it answers again once they start it.",
        );
    }
    if app.live_version.is_none() {
        return page(
            StatusCode::NOT_FOUND,
            "app_not_deployed",
            "Not deployed yet",
            "This app exists but has no deployed version yet.",
        );
    }
    state.apps.touch(app.id).await;
    let slot = state.apps.slot(app.id);
    let ready = slot
        .current()
        .filter(|i| Some(i.version) >= app.live_version && i.health() == Health::Ready);
    let instance = match ready {
        Some(i) => i,
        None if wants_html(req.headers()) && req.method() == axum::http::Method::GET => {
            if let Some(failure) = slot.start_error().filter(|_| slot.current().is_none()) {
                // Shown once; a reload tries again.
                slot.set_start_error(None);
                return page(
                    StatusCode::BAD_GATEWAY,
                    "app_start_failed",
                    "The app could not start",
                    &failure.message,
                );
            }
            if let Some(i) = slot.current().filter(|i| i.health() == Health::Crashed) {
                return page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "app_restarting",
                    "The app crashed",
                    &format!(
                        "It is being restarted (restart {}); this page reloads itself.",
                        i.restarts()
                    ),
                );
            }
            let apps = state.apps.clone();
            let routed = routed.clone();
            tokio::spawn(async move {
                let _ = apps.instance_for(&routed).await;
            });
            return page(
                StatusCode::SERVICE_UNAVAILABLE,
                "app_starting",
                "Starting the app…",
                "It was stopped while nobody used it; this page reloads itself in a moment.",
            );
        }
        None => {
            let wait = Duration::from_secs(state.apps.config().start_timeout_seconds + 5);
            match tokio::time::timeout(wait, state.apps.instance_for(&routed)).await {
                Ok(Ok(i)) => {
                    if i.health() != Health::Ready && !i.ready_within(wait).await {
                        return page(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "app_restarting",
                            "The app is restarting",
                            "It crashed and is being restarted; try again in a moment.",
                        );
                    }
                    i
                }
                Ok(Err(failure)) => {
                    return page(
                        StatusCode::BAD_GATEWAY,
                        "app_start_failed",
                        "The app could not start",
                        &failure.message,
                    );
                }
                Err(_) => {
                    return page(
                        StatusCode::GATEWAY_TIMEOUT,
                        "app_start_timeout",
                        "The app is slow to start",
                        "It did not come up in time; try again in a moment.",
                    );
                }
            }
        }
    };
    let guard = instance.begin();
    let limit = state.config.server.body_limit_bytes;
    let (mut parts, body) = req.into_parts();
    parts.uri = uri;
    let body = http_body_util::Limited::new(body, limit);
    let req = Request::from_parts(parts, body);
    match instance.upstream().forward(req, &presentation).await {
        Ok(response) => response.map(move |b| {
            Body::new(b.map_frame(move |frame| {
                // Held until the body is done: a draining instance waits for it.
                let _ = &guard;
                frame
            }))
        }),
        Err(e) => {
            let status = match e.code() {
                "response_timeout" => StatusCode::GATEWAY_TIMEOUT,
                _ => StatusCode::BAD_GATEWAY,
            };
            page(
                status,
                "app_error",
                "The app did not answer",
                &e.to_string(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_names_outside_the_apps_domain_reach_the_platform() {
        let app = |l: &str| AppsHost::App(l.into());
        for (host, kind) in [
            ("hello-ada.apps.test", app("hello-ada")),
            ("Hello-Ada.Apps.Test:8080", app("hello-ada")),
            ("hello-ada.apps.test.", app("hello-ada")),
            ("apps.test", AppsHost::None),
            ("apps.test:8080", AppsHost::None),
            ("deep.hello-ada.apps.test", AppsHost::None),
            (".apps.test", AppsHost::None),
            ("sandpit.test", AppsHost::Platform),
            ("evilapps.test", AppsHost::Platform),
            ("127.0.0.1:8080", AppsHost::Platform),
            ("[::1]:8080", AppsHost::Platform),
            ("[::1]", AppsHost::Platform),
            ("", AppsHost::Platform),
        ] {
            assert_eq!(on_apps_domain(host, "apps.test"), kind, "{host}");
        }
    }
}
