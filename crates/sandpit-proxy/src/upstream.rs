//! Forwarding to one app: HTTP/1.1 over connections from a [`Connect`] (a TCP stream into the
//! app's sandbox), kept alive in a small pool, bodies streamed both ways, and a protocol
//! switch (WebSocket) spliced through.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use crate::headers::{Presentation, is_upgrade, request_headers, response_headers};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Body = UnsyncBoxBody<Bytes, BoxError>;

/// Opens a connection to the app.
#[async_trait]
pub trait Connect: Send + Sync + 'static {
    async fn connect(&self) -> std::io::Result<tokio::net::TcpStream>;
}

#[derive(Debug, Clone, Copy)]
pub struct UpstreamOptions {
    /// Idle connections kept for reuse.
    pub max_idle: usize,
    pub connect_timeout: Duration,
    /// How long the app may take to send its response head.
    pub response_timeout: Duration,
}

impl Default for UpstreamOptions {
    fn default() -> Self {
        Self {
            max_idle: 8,
            connect_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("the app did not accept a connection on its port: {source}")]
    Connect { source: std::io::Error },
    #[error("the app did not accept a connection within {0:?}")]
    ConnectTimeout(Duration),
    #[error("the app sent no response within {0:?}")]
    ResponseTimeout(Duration),
    #[error("the app closed the connection or sent an invalid response: {source}")]
    Upstream { source: hyper::Error },
}

impl ProxyError {
    /// A stable code for pages and logs.
    pub fn code(&self) -> &'static str {
        match self {
            ProxyError::Connect { .. } => "app_not_listening",
            ProxyError::ConnectTimeout(_) => "connect_timeout",
            ProxyError::ResponseTimeout(_) => "response_timeout",
            ProxyError::Upstream { .. } => "bad_response",
        }
    }
}

/// The way to one app (one per running instance).
pub struct Upstream {
    connector: Arc<dyn Connect>,
    idle: Arc<Mutex<Vec<SendRequest<Body>>>>,
    options: UpstreamOptions,
}

impl Upstream {
    pub fn new(connector: Arc<dyn Connect>, options: UpstreamOptions) -> Self {
        Self {
            connector,
            idle: Arc::default(),
            options,
        }
    }

    pub fn idle_connections(&self) -> usize {
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    fn take_idle(&self) -> Option<SendRequest<Body>> {
        let mut idle = self
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while let Some(sender) = idle.pop() {
            if !sender.is_closed() && sender.is_ready() {
                return Some(sender);
            }
        }
        None
    }

    async fn dial(&self) -> Result<SendRequest<Body>, ProxyError> {
        let stream = tokio::time::timeout(self.options.connect_timeout, self.connector.connect())
            .await
            .map_err(|_| ProxyError::ConnectTimeout(self.options.connect_timeout))?
            .map_err(|source| ProxyError::Connect { source })?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|source| ProxyError::Upstream { source })?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "an app connection ended");
            }
        });
        Ok(sender)
    }

    /// Forwards `req`, whose URI is already the app-side path and query (the caller stripped
    /// any prefix), with [`request_headers`] applied; the response comes back with
    /// [`response_headers`] applied. A request that asks to switch protocols has its
    /// `OnUpgrade` taken out of its extensions here: when the app answers 101, both sides are
    /// joined byte for byte until either closes.
    pub async fn forward<B>(
        &self,
        mut req: Request<B>,
        p: &Presentation,
    ) -> Result<Response<Incoming>, ProxyError>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let client_upgrade = if is_upgrade(req.headers()) {
            req.extensions_mut().remove::<OnUpgrade>()
        } else {
            None
        };
        request_headers(req.headers_mut(), p);
        let mut req: Request<Body> = req.map(|b| b.map_err(Into::into).boxed_unsync());
        let (mut sender, mut reused) = match self.take_idle() {
            Some(sender) => (sender, true),
            None => (self.dial().await?, false),
        };
        let timeout = self.options.response_timeout;
        let mut response = loop {
            match tokio::time::timeout(timeout, sender.try_send_request(req)).await {
                Err(_) => return Err(ProxyError::ResponseTimeout(timeout)),
                Ok(Ok(response)) => break response,
                Ok(Err(mut e)) => match e.take_message() {
                    // A pooled connection the app had closed: the request never left, so it
                    // goes again on a fresh one.
                    Some(unsent) if reused => {
                        req = unsent;
                        sender = self.dial().await?;
                        reused = false;
                    }
                    _ => {
                        return Err(ProxyError::Upstream {
                            source: e.into_error(),
                        });
                    }
                },
            }
        };
        let switching = response.status() == StatusCode::SWITCHING_PROTOCOLS;
        response_headers(response.headers_mut(), p, switching);
        if switching {
            if let Some(client) = client_upgrade {
                let app = hyper::upgrade::on(&mut response);
                tokio::spawn(splice(client, app));
            }
        } else {
            self.recycle(sender);
        }
        Ok(response)
    }

    /// Returns the connection to the pool once its response has been read to the end; a
    /// response abandoned midway closes it instead.
    fn recycle(&self, mut sender: SendRequest<Body>) {
        let idle = self.idle.clone();
        let max = self.options.max_idle;
        tokio::spawn(async move {
            if sender.ready().await.is_ok() {
                let mut idle = idle
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if idle.len() < max {
                    idle.push(sender);
                }
            }
        });
    }
}

async fn splice(client: OnUpgrade, app: OnUpgrade) {
    match tokio::try_join!(client, app) {
        Ok((client, app)) => {
            let mut client = TokioIo::new(client);
            let mut app = TokioIo::new(app);
            if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut app).await {
                tracing::debug!(error = %e, "an upgraded connection ended");
            }
        }
        Err(e) => tracing::debug!(error = %e, "a protocol switch did not complete"),
    }
}
