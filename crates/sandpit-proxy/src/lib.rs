//! The reverse-proxy core of sandpit's app hosting, with no routes of its own: the server
//! decides which app a request is for and calls [`Upstream::forward`].
//!
//! - [`headers`]: what may pass. Hop-by-hop headers never do; forwarding headers a visitor
//!   sends are replaced by ours (`X-Forwarded-For/Proto/Host`, and `X-Forwarded-Prefix` under
//!   a path prefix). An app served under a path of the platform's own origin
//!   ([`Mode::PathPrefix`]) shares that origin, so there the platform's cookies and
//!   `Authorization` are stripped from requests, responses get a sandboxing
//!   `Content-Security-Policy` (the page runs with an opaque origin and cannot call the
//!   platform's API as the visitor), and a `Set-Cookie` survives only for the app's own path
//!   (a path outside the prefix is moved under it, as `Location` is), without `Domain`, and
//!   not under a platform cookie's name. That is filtering, so weaker
//!   than [`Mode::Domain`], where the app has a host of its own and the browser keeps the two
//!   apart; there only cookie tossing (a `Domain` reaching a parent) is refused.
//! - [`upstream`]: forwarding over HTTP/1.1 connections from a [`Connect`] (the server's
//!   connects into an app's sandbox), a small keep-alive pool, bodies streamed, a 101
//!   answer spliced through (WebSockets).
//!
//! Written on hyper's client connections rather than a proxy crate: what exists either wants
//! its own server and routing or dials by address, while the upstream here is a socket made
//! inside another network namespace.

pub mod headers;
pub mod upstream;

pub use headers::{Mode, Presentation, SANDBOX_CSP, request_headers, response_headers};
pub use upstream::{Connect, ProxyError, Upstream, UpstreamOptions};
