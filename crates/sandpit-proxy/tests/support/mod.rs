//! A real app server and a real proxy front, both hyper on loopback, shared by the forwarding
//! tests and the bench.

#![allow(
    dead_code,
    reason = "each user of this module takes a different part of it"
)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use sandpit_proxy::headers::Presentation;
use sandpit_proxy::upstream::{BoxError, Connect, Upstream};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

type Body = UnsyncBoxBody<Bytes, BoxError>;

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|e| match e {}).boxed_unsync()
}

/// Dials one address and counts how often it did.
pub struct TcpConnect {
    pub addr: SocketAddr,
    pub connects: Arc<AtomicUsize>,
}

impl TcpConnect {
    pub fn new(addr: SocketAddr) -> Arc<Self> {
        Arc::new(Self {
            addr,
            connects: Arc::default(),
        })
    }

    pub fn count(&self) -> usize {
        self.connects.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Connect for TcpConnect {
    async fn connect(&self) -> std::io::Result<TcpStream> {
        self.connects.fetch_add(1, Ordering::SeqCst);
        TcpStream::connect(self.addr).await
    }
}

/// The app: `/hello`, `/echo` (the request body back, streamed), `/headers` (the request's
/// headers, one `name: value` per line), `/cookies` (sets a cookie for `?path=`), `/ws` (a
/// WebSocket echo). With `keep_alive` false it closes every connection after one response.
pub async fn app(keep_alive: bool) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the app");
    let addr = listener.local_addr().expect("the app's address");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .keep_alive(keep_alive)
                    .serve_connection(TokioIo::new(stream), service_fn(app_handler))
                    .with_upgrades()
                    .await;
            });
        }
    });
    addr
}

async fn app_handler(mut req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_owned();
    let response = match path.as_str() {
        "/hello" => Response::new(full("hello")),
        "/echo" => {
            let query = req.uri().query().unwrap_or("").to_owned();
            let body = req.into_body().map_err(BoxError::from).boxed_unsync();
            Response::builder()
                .header("x-query", query)
                .body(body)
                .expect("a response")
        }
        "/headers" => {
            let text: String = req
                .headers()
                .iter()
                .map(|(k, v)| format!("{}: {}\n", k, v.to_str().unwrap_or("?")))
                .collect();
            Response::new(full(text))
        }
        "/cookies" => Response::builder()
            .header("set-cookie", "sandpit_session=stolen; Path=/")
            .header("set-cookie", "theme=dark; Path=/")
            .header("set-cookie", "mine=1; Path=/user/ada/app/hello/")
            .header("set-cookie", "plain=1")
            .header("set-cookie", "wide=1; Domain=example.com")
            .header("location", "/next")
            .status(StatusCode::FOUND)
            .body(full(""))
            .expect("a response"),
        "/ws" => {
            let key = req
                .headers()
                .get("sec-websocket-key")
                .map(|k| derive_accept_key(k.as_bytes()))
                .unwrap_or_default();
            let upgrade = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                let Ok(upgraded) = upgrade.await else { return };
                let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    None,
                )
                .await;
                while let Some(Ok(msg)) = ws.next().await {
                    if msg.is_text() || msg.is_binary() {
                        if ws.send(msg).await.is_err() {
                            return;
                        }
                    } else if msg.is_close() {
                        return;
                    }
                }
            });
            Response::builder()
                .status(StatusCode::SWITCHING_PROTOCOLS)
                .header("connection", "upgrade")
                .header("upgrade", "websocket")
                .header("sec-websocket-accept", key)
                .body(full(""))
                .expect("a response")
        }
        _ => Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(full("no such page"))
            .expect("a response"),
    };
    Ok(response)
}

/// A server in front that forwards every request through `upstream` as `presentation`;
/// a [`sandpit_proxy::upstream::ProxyError`] becomes a 502 whose body is its code.
pub async fn front(upstream: Arc<Upstream>, presentation: Presentation) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the front");
    let addr = listener.local_addr().expect("the front's address");
    let presentation = Arc::new(presentation);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let _ = stream.set_nodelay(true);
            let upstream = upstream.clone();
            let presentation = presentation.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let upstream = upstream.clone();
                    let presentation = presentation.clone();
                    async move {
                        let response = match upstream.forward(req, &presentation).await {
                            Ok(response) => {
                                response.map(|b| b.map_err(BoxError::from).boxed_unsync())
                            }
                            Err(e) => Response::builder()
                                .status(StatusCode::BAD_GATEWAY)
                                .body(full(e.code()))
                                .expect("a response"),
                        };
                        Ok::<_, Infallible>(response)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    addr
}
