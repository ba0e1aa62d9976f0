//! What passes between a visitor and an app, header by header: pure functions, so each rule
//! is tested without a socket.

use std::net::IpAddr;
use std::sync::Arc;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Where the app appears to the visitor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Under `prefix` (e.g. `/user/ada/app/hello`, no trailing slash) on the platform's own
    /// origin: the app shares the origin with the platform, so its requests and responses
    /// are filtered.
    PathPrefix { prefix: String },
    /// On a host of its own (`hello-ada.apps.example.com`).
    Domain,
    /// Not an app: another replica of the platform, answering a request for a session whose
    /// sandbox it holds. Everything the visitor sent passes (cookies and `Authorization`
    /// included: that replica authenticates the request again) and so does everything it
    /// answers; only hop-by-hop headers go and the forwarding headers are ours.
    Replica,
}

/// How this visitor sees the app.
#[derive(Debug, Clone)]
pub struct Presentation {
    pub mode: Mode,
    /// Names of the platform's own cookies (session, OAuth state …).
    pub platform_cookies: Arc<[String]>,
    pub client_ip: Option<IpAddr>,
    /// `http` or `https`, as the visitor used.
    pub scheme: &'static str,
    /// The `Host` the visitor sent.
    pub host: String,
}

/// A page of an app on the platform's origin runs with an opaque origin: it can run scripts
/// and forms, but cannot read the platform's storage or call its API as the visitor.
pub const SANDBOX_CSP: &str =
    "sandbox allow-scripts allow-forms allow-popups allow-modals allow-downloads";

/// Headers that belong to one connection, never forwarded (RFC 9110 §7.6.1).
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn tokens(headers: &HeaderMap, name: HeaderName) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

/// Whether the message asks to switch protocols (a WebSocket handshake).
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && tokens(headers, header::CONNECTION)
            .iter()
            .any(|t| t == "upgrade")
}

/// Removes hop-by-hop headers (and those `Connection` names); keeps the upgrade pair when
/// `upgrade` is set.
fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    let kept = upgrade
        .then(|| headers.get(header::UPGRADE).cloned())
        .flatten();
    for name in tokens(headers, header::CONNECTION) {
        if let Ok(name) = HeaderName::from_bytes(name.as_bytes()) {
            headers.remove(name);
        }
    }
    for name in HOP_BY_HOP {
        headers.remove(*name);
    }
    if let Some(value) = kept {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, value);
    }
}

fn set(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

/// Rewrites a visitor's request headers for the app, in place.
///
/// `Host` stays as the visitor sent it, so an app that builds absolute URLs builds them for
/// the address the visitor used.
pub fn request_headers(headers: &mut HeaderMap, p: &Presentation) {
    let upgrade = is_upgrade(headers);
    strip_hop_by_hop(headers, upgrade);
    // Whatever the visitor claims about proxies before us is not believed.
    let forwarded: Vec<HeaderName> = headers
        .keys()
        .filter(|k| k.as_str().starts_with("x-forwarded-") || k.as_str() == "forwarded")
        .cloned()
        .collect();
    for name in forwarded {
        headers.remove(name);
    }
    if let Some(ip) = p.client_ip {
        set(headers, "x-forwarded-for", &ip.to_string());
    }
    set(headers, "x-forwarded-proto", p.scheme);
    set(headers, "x-forwarded-host", &p.host);
    if let Mode::PathPrefix { prefix } = &p.mode {
        set(headers, "x-forwarded-prefix", prefix);
        // A bearer token of the platform is the visitor's whole account.
        headers.remove(header::AUTHORIZATION);
    }
    if p.mode != Mode::Replica {
        filter_cookies(headers, &p.platform_cookies);
    }
}

/// Drops the platform's cookies from `Cookie`, keeping the app's own.
fn filter_cookies(headers: &mut HeaderMap, platform: &[String]) {
    if !headers.contains_key(header::COOKIE) {
        return;
    }
    let kept: Vec<String> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .filter(|pair| {
            let name = pair.split_once('=').map_or(*pair, |(n, _)| n).trim();
            !platform.iter().any(|p| p == name)
        })
        .map(str::to_owned)
        .collect();
    headers.remove(header::COOKIE);
    if !kept.is_empty() {
        set(headers, "cookie", &kept.join("; "));
    }
}

/// Rewrites an app's response headers for the visitor, in place. `switching` is a 101
/// answer (its upgrade pair is kept).
pub fn response_headers(headers: &mut HeaderMap, p: &Presentation, switching: bool) {
    strip_hop_by_hop(headers, switching && is_upgrade(headers));
    if p.mode == Mode::Replica {
        return;
    }
    let cookies: Vec<HeaderValue> = headers
        .get_all(header::SET_COOKIE)
        .iter()
        .cloned()
        .collect();
    headers.remove(header::SET_COOKIE);
    for cookie in cookies {
        let passed = cookie
            .to_str()
            .ok()
            .and_then(|c| cookie_for_visitor(c, p))
            .and_then(|c| HeaderValue::from_str(&c).ok());
        match passed {
            Some(value) => {
                headers.append(header::SET_COOKIE, value);
            }
            None => tracing::debug!("dropped an app's Set-Cookie"),
        }
    }
    if let Mode::PathPrefix { prefix } = &p.mode {
        headers.append(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(SANDBOX_CSP),
        );
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        let location = headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .filter(|l| l.starts_with('/') && !l.starts_with("//"))
            .map(|l| format!("{prefix}{l}"));
        if let Some(location) = location {
            set(headers, "location", &location);
        }
    }
}

/// An app's `Set-Cookie` as the visitor gets it, or `None` when it may not pass: never with
/// the name of a platform cookie or a `Domain` (which could cover the platform's host). In the
/// path mode a `Path` is the app's own view, where it is at the root: one outside the prefix
/// is moved under it (as `Location` is, and as nginx's `proxy_cookie_path` does), so
/// `Path=/` — the default of Flask's session and Starlette's `set_cookie` — means the app's
/// whole prefix, never the platform's paths.
fn cookie_for_visitor(value: &str, p: &Presentation) -> Option<String> {
    let mut parts = value.split(';');
    let (name, _) = parts.next()?.split_once('=')?;
    let name = name.trim();
    if name.is_empty() || p.platform_cookies.iter().any(|c| c == name) {
        return None;
    }
    let mut out = String::with_capacity(value.len());
    for (i, part) in value.split(';').enumerate() {
        if i > 0 {
            out.push(';');
        }
        let (key, val) = part.split_once('=').unwrap_or((part, ""));
        let key = key.trim().to_ascii_lowercase();
        if i > 0 && key == "domain" {
            return None;
        }
        if i > 0
            && key == "path"
            && let Mode::PathPrefix { prefix } = &p.mode
        {
            let path = val.trim();
            let inside = path == prefix
                || path
                    .strip_prefix(prefix.as_str())
                    .is_some_and(|rest| rest.starts_with('/'));
            if !inside && path.starts_with('/') {
                out.push_str(&format!(" Path={prefix}{path}"));
                continue;
            }
        }
        out.push_str(part);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn presentation(mode: Mode) -> Presentation {
        Presentation {
            mode,
            platform_cookies: Arc::from(vec!["sandpit_session".to_owned(), "oauth".to_owned()]),
            client_ip: Some("203.0.113.7".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))),
            scheme: "https",
            host: "sandpit.example.com".into(),
        }
    }

    fn path_mode() -> Presentation {
        presentation(Mode::PathPrefix {
            prefix: "/user/ada/app/hello".into(),
        })
    }

    fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    fn get<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
        h.get(name).and_then(|v| v.to_str().ok())
    }

    #[test]
    fn hop_by_hop_and_spoofed_forwarding_headers_are_removed() {
        let mut h = map(&[
            ("connection", "keep-alive, x-secret"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("proxy-authorization", "Basic abc"),
            ("x-forwarded-for", "10.0.0.1"),
            ("x-forwarded-prefix", "/admin"),
            ("forwarded", "for=10.0.0.1"),
            ("accept", "text/html"),
        ]);
        request_headers(&mut h, &path_mode());
        for gone in [
            "connection",
            "x-secret",
            "keep-alive",
            "te",
            "proxy-authorization",
            "forwarded",
        ] {
            assert!(!h.contains_key(gone), "{gone} passed");
        }
        assert_eq!(get(&h, "x-forwarded-for"), Some("203.0.113.7"));
        assert_eq!(get(&h, "x-forwarded-prefix"), Some("/user/ada/app/hello"));
        assert_eq!(get(&h, "x-forwarded-proto"), Some("https"));
        assert_eq!(get(&h, "x-forwarded-host"), Some("sandpit.example.com"));
        assert_eq!(get(&h, "accept"), Some("text/html"));
    }

    #[test]
    fn an_upgrade_keeps_its_pair() {
        let mut h = map(&[("connection", "Upgrade"), ("upgrade", "websocket")]);
        assert!(is_upgrade(&h));
        request_headers(&mut h, &path_mode());
        assert_eq!(get(&h, "connection"), Some("upgrade"));
        assert_eq!(get(&h, "upgrade"), Some("websocket"));
        let mut plain = map(&[("upgrade", "websocket")]);
        assert!(!is_upgrade(&plain), "Upgrade without Connection: upgrade");
        request_headers(&mut plain, &path_mode());
        assert!(!plain.contains_key("upgrade"));
    }

    #[test]
    fn platform_credentials_never_reach_an_app_on_the_platform_origin() {
        let mut h = map(&[
            ("authorization", "Bearer sp_secret"),
            ("cookie", "sandpit_session=abc; theme=dark"),
            ("cookie", "oauth=x; cart=3"),
        ]);
        request_headers(&mut h, &path_mode());
        assert!(!h.contains_key("authorization"));
        assert_eq!(get(&h, "cookie"), Some("theme=dark; cart=3"));
        let mut only = map(&[("cookie", "sandpit_session=abc")]);
        request_headers(&mut only, &path_mode());
        assert!(!only.contains_key("cookie"));
    }

    #[test]
    fn on_its_own_domain_an_app_keeps_authorization_but_not_platform_cookies() {
        let mut h = map(&[
            ("authorization", "Basic YTpi"),
            ("cookie", "sandpit_session=abc; mine=1"),
        ]);
        request_headers(&mut h, &presentation(Mode::Domain));
        assert_eq!(get(&h, "authorization"), Some("Basic YTpi"));
        assert_eq!(get(&h, "cookie"), Some("mine=1"));
        assert!(!h.contains_key("x-forwarded-prefix"));
    }

    #[test]
    fn a_replica_gets_the_visitors_credentials_and_answers_unfiltered() {
        let mut h = map(&[
            ("authorization", "Bearer sps_x"),
            ("cookie", "sandpit_session=abc; mine=1"),
            ("connection", "keep-alive"),
            ("x-forwarded-for", "10.9.9.9"),
        ]);
        request_headers(&mut h, &presentation(Mode::Replica));
        assert_eq!(get(&h, "authorization"), Some("Bearer sps_x"));
        assert_eq!(get(&h, "cookie"), Some("sandpit_session=abc; mine=1"));
        assert_eq!(get(&h, "x-forwarded-for"), Some("203.0.113.7"));
        assert!(!h.contains_key("connection"));
        let mut r = map(&[
            ("set-cookie", "sandpit_session=new; Path=/; HttpOnly"),
            ("location", "/api/v1/sessions"),
            ("keep-alive", "timeout=5"),
        ]);
        response_headers(&mut r, &presentation(Mode::Replica), false);
        assert_eq!(
            get(&r, "set-cookie"),
            Some("sandpit_session=new; Path=/; HttpOnly")
        );
        assert_eq!(get(&r, "location"), Some("/api/v1/sessions"));
        assert!(!r.contains_key("content-security-policy"));
        assert!(!r.contains_key("keep-alive"));
    }

    #[test]
    fn path_mode_responses_are_sandboxed_and_cookies_confined() {
        let mut h = map(&[
            ("set-cookie", "a=1; Path=/user/ada/app/hello"),
            ("set-cookie", "b=2; Path=/user/ada/app/hello/sub; HttpOnly"),
            ("set-cookie", "c=3"),
            ("set-cookie", "d=4; Path=/"),
            ("set-cookie", "e=5; path=/user/ada/app/hello2"),
            (
                "set-cookie",
                "f=6; Domain=example.com; Path=/user/ada/app/hello",
            ),
            (
                "set-cookie",
                "sandpit_session=evil; Path=/user/ada/app/hello",
            ),
            ("set-cookie", "garbage"),
            ("content-security-policy", "default-src 'self'"),
            ("connection", "close"),
            ("location", "/items?x=1"),
        ]);
        response_headers(&mut h, &path_mode(), false);
        let cookies: Vec<&str> = h
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        assert_eq!(
            cookies,
            [
                "a=1; Path=/user/ada/app/hello",
                "b=2; Path=/user/ada/app/hello/sub; HttpOnly",
                "c=3",
                // The app's `/` is its prefix; a sibling's path is moved under it too.
                "d=4; Path=/user/ada/app/hello/",
                "e=5; Path=/user/ada/app/hello/user/ada/app/hello2",
            ]
        );
        let csp: Vec<&str> = h
            .get_all("content-security-policy")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        assert_eq!(csp, ["default-src 'self'", SANDBOX_CSP]);
        assert_eq!(get(&h, "x-content-type-options"), Some("nosniff"));
        assert!(!h.contains_key("connection"));
        assert_eq!(get(&h, "location"), Some("/user/ada/app/hello/items?x=1"));
        let mut other = map(&[("location", "//evil.example/x")]);
        response_headers(&mut other, &path_mode(), false);
        assert_eq!(get(&other, "location"), Some("//evil.example/x"));
    }

    #[test]
    fn domain_mode_refuses_cookie_tossing() {
        let mut h = map(&[
            ("set-cookie", "a=1; Path=/"),
            ("set-cookie", "b=2; domain=apps.example.com"),
            ("set-cookie", "oauth=1"),
            ("location", "/next"),
        ]);
        response_headers(&mut h, &presentation(Mode::Domain), false);
        let cookies: Vec<&str> = h
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        assert_eq!(cookies, ["a=1; Path=/"]);
        assert!(!h.contains_key("content-security-policy"));
        assert_eq!(get(&h, "location"), Some("/next"));
    }

    #[test]
    fn a_switching_response_keeps_its_upgrade() {
        let mut h = map(&[("connection", "upgrade"), ("upgrade", "websocket")]);
        response_headers(&mut h, &path_mode(), true);
        assert_eq!(get(&h, "upgrade"), Some("websocket"));
        let mut h = map(&[("connection", "upgrade"), ("upgrade", "websocket")]);
        response_headers(&mut h, &path_mode(), false);
        assert!(!h.contains_key("upgrade"));
    }
}
