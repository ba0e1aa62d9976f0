//! Cross-site request forgery and WebSocket hijacking. A browser attaches the session cookie to
//! every request for this host, whichever page made it — a page on another port of the host or
//! on a sibling subdomain (exactly where deployed apps live) included, since `SameSite=Lax` only
//! keeps it off *cross-site* requests. So a request that is authenticated by the cookie and
//! changes something (any method but GET/HEAD/OPTIONS) or opens a WebSocket must come from a page
//! of this server: its `Origin` is one of [`TrustedOrigins`]. A request authenticated with
//! `Authorization: Bearer` may come from anywhere: no browser attaches a bearer token by itself.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use axum::http::{HeaderMap, Method, header};

/// The browser origins allowed to act with the session cookie: this server's own (from
/// `server.public_url`) and `server.cors_allowed_origins`.
#[derive(Debug, Clone)]
pub struct TrustedOrigins {
    /// ASCII serialisations (`scheme://host[:port]`, default ports left out, lower case).
    origins: Vec<String>,
}

impl TrustedOrigins {
    /// `public_url` is `server.public_url` as configured (empty when unset), `bound` the address
    /// the server listens on. Unset, this server's origin is `http://<bound>`, and the names
    /// such an address is reached by on this host: `localhost` for loopback, every address of
    /// the host's interfaces for an unspecified bind (`0.0.0.0`, `::`). A host name other than
    /// `localhost` needs `server.public_url`.
    pub fn new(public_url: &str, cors_allowed_origins: &[String], bound: SocketAddr) -> Self {
        let mut origins = Vec::new();
        if public_url.is_empty() {
            let port = bound.port();
            let ips: Vec<IpAddr> = if bound.ip().is_unspecified() {
                let mut ips = interface_addresses();
                ips.extend([
                    IpAddr::V4(Ipv4Addr::LOCALHOST),
                    IpAddr::V6(Ipv6Addr::LOCALHOST),
                ]);
                ips
            } else {
                vec![bound.ip()]
            };
            for ip in ips {
                origins.push(format!("http://{}", SocketAddr::new(ip, port)));
                if ip.is_loopback() {
                    origins.push(format!("http://localhost:{port}"));
                }
            }
        } else {
            origins.push(public_url.to_owned());
        }
        origins.extend(cors_allowed_origins.iter().cloned());
        // Configured URLs may carry a path (`https://example.com/sandpit`); the origin is theirs.
        let mut origins: Vec<String> = origins
            .iter()
            .filter_map(|o| url::Url::parse(o).ok())
            .map(|u| u.origin())
            .filter(|o| o.is_tuple())
            .map(|o| o.ascii_serialization())
            .collect();
        origins.sort();
        origins.dedup();
        Self { origins }
    }

    /// Whether `origin` (an `Origin` header's value) is one of these.
    pub fn allows(&self, origin: &str) -> bool {
        serialise(origin).is_some_and(|o| self.origins.binary_search(&o).is_ok())
    }

    /// For the start-up log.
    pub fn list(&self) -> &[String] {
        &self.origins
    }

    /// Whether a request presenting the session cookie may go on: it is a safe, non-WebSocket
    /// request, or its page's origin is trusted. A request without `Origin` (not a browser, or an
    /// old one) is judged by `Sec-Fetch-Site` when the browser sent that, else let through:
    /// browsers send `Origin` with every request this refuses.
    pub fn cookie_request_allowed(&self, method: &Method, headers: &HeaderMap) -> bool {
        if !changes_state(method, headers) {
            return true;
        }
        match headers.get(header::ORIGIN) {
            Some(origin) => origin.to_str().is_ok_and(|o| self.allows(o)),
            None => headers
                .get("sec-fetch-site")
                .and_then(|v| v.to_str().ok())
                .is_none_or(|site| matches!(site, "same-origin" | "none")),
        }
    }
}

/// A request that can change something, or a WebSocket upgrade (a GET whose connection then
/// does whatever the socket allows).
fn changes_state(method: &Method, headers: &HeaderMap) -> bool {
    let websocket = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|p| p.trim().eq_ignore_ascii_case("websocket"))
        });
    websocket || !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// An origin's canonical form, or `None` for what cannot be a trusted origin (`null`, opaque
/// origins, anything with a path, credentials or query, or not http(s)).
fn serialise(origin: &str) -> Option<String> {
    let url = url::Url::parse(origin.trim_end_matches('/')).ok()?;
    let plain = url.path() == "/"
        && url.query().is_none()
        && url.fragment().is_none()
        && url.username().is_empty()
        && url.password().is_none();
    let origin = url.origin();
    (plain && origin.is_tuple() && matches!(url.scheme(), "http" | "https"))
        .then(|| origin.ascii_serialization())
}

/// The addresses of this host's network interfaces, read once at start-up.
fn interface_addresses() -> Vec<IpAddr> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    addrs
        .filter_map(|a| a.address)
        .filter_map(|a| {
            if let Some(v4) = a.as_sockaddr_in() {
                Some(IpAddr::V4(v4.ip()))
            } else {
                // Link-local IPv6 addresses need a zone in a URL; browsers do not send those.
                a.as_sockaddr_in6()
                    .map(|v6| v6.ip())
                    .filter(|ip| !ip.is_unicast_link_local())
                    .map(IpAddr::V6)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.insert(*name, HeaderValue::from_static(value));
        }
        h
    }

    #[test]
    fn configured_public_url_and_cors_origins_are_the_only_trusted_ones() {
        let t = TrustedOrigins::new(
            "https://Sandpit.Example/sandpit/",
            &["https://ok.example:8443".into()],
            "127.0.0.1:8000".parse().unwrap(),
        );
        assert!(t.allows("https://sandpit.example"));
        assert!(t.allows("https://sandpit.example:443"));
        assert!(t.allows("https://ok.example:8443"));
        for foreign in [
            "http://sandpit.example",
            "https://sandpit.example:8443",
            "https://apps.sandpit.example",
            "https://sandpit.example.evil.example",
            "https://ok.example",
            "http://127.0.0.1:8000",
            "null",
            "",
            "https://user@sandpit.example",
            "https://sandpit.example/path",
            "file:///etc",
        ] {
            assert!(!t.allows(foreign), "{foreign}");
        }
    }

    #[test]
    fn unset_public_url_trusts_the_bound_address_and_its_local_names() {
        let t = TrustedOrigins::new("", &[], "127.0.0.1:8000".parse().unwrap());
        assert!(t.allows("http://127.0.0.1:8000"));
        assert!(t.allows("http://localhost:8000"));
        assert!(
            !t.allows("http://localhost:9000"),
            "another port of the host"
        );
        assert!(!t.allows("https://127.0.0.1:8000"));
        let any = TrustedOrigins::new("", &[], "0.0.0.0:8000".parse().unwrap());
        assert!(any.allows("http://127.0.0.1:8000"));
        assert!(any.allows("http://[::1]:8000"));
        assert!(!any.allows("http://0.0.0.0:9000"));
        assert!(!any.allows("http://evil.example:8000"));
    }

    #[test]
    fn only_state_changes_and_websockets_need_a_trusted_origin() {
        let t = TrustedOrigins::new("", &[], "127.0.0.1:8000".parse().unwrap());
        let evil = [("origin", "http://evil.example")];
        assert!(t.cookie_request_allowed(&Method::GET, &headers(&evil)));
        assert!(!t.cookie_request_allowed(&Method::POST, &headers(&evil)));
        assert!(!t.cookie_request_allowed(&Method::DELETE, &headers(&evil)));
        let ws = [("origin", "http://evil.example"), ("upgrade", "WebSocket")];
        assert!(!t.cookie_request_allowed(&Method::GET, &headers(&ws)));
        let own_ws = [
            ("origin", "http://localhost:8000"),
            ("upgrade", "websocket"),
        ];
        assert!(t.cookie_request_allowed(&Method::GET, &headers(&own_ws)));
        // Without an Origin: a non-browser client, unless the browser says the page is foreign.
        assert!(t.cookie_request_allowed(&Method::PUT, &HeaderMap::new()));
        let sibling = [("sec-fetch-site", "same-site")];
        assert!(!t.cookie_request_allowed(&Method::PUT, &headers(&sibling)));
        let own = [("sec-fetch-site", "same-origin")];
        assert!(t.cookie_request_allowed(&Method::PUT, &headers(&own)));
    }
}
