//! Proxy overhead: the same app, the same client, direct and through `Upstream` in a front
//! server, all on loopback. Prints latency (one connection, sequential requests) and
//! throughput (16 connections). `cargo bench -p sandpit-proxy --bench proxy`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use sandpit_proxy::{Mode, Presentation, Upstream, UpstreamOptions};

const LATENCY_REQUESTS: usize = 5_000;
const CONNECTIONS: usize = 16;
const THROUGHPUT_FOR: Duration = Duration::from_secs(5);

async fn client(addr: SocketAddr) -> SendRequest<Empty<Bytes>> {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let (sender, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    sender
}

async fn hello(sender: &mut SendRequest<Empty<Bytes>>) {
    sender.ready().await.expect("ready");
    let request = Request::get("/hello")
        .header("host", "hello-ada.apps.test")
        .body(Empty::new())
        .expect("a request");
    let response = sender.send_request(request).await.expect("a response");
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.expect("a body");
    assert_eq!(body.to_bytes(), "hello");
}

async fn latency(addr: SocketAddr) -> Histogram<u64> {
    let mut sender = client(addr).await;
    for _ in 0..500 {
        hello(&mut sender).await;
    }
    let mut histogram = Histogram::<u64>::new(3).expect("a histogram");
    for _ in 0..LATENCY_REQUESTS {
        let start = Instant::now();
        hello(&mut sender).await;
        histogram
            .record(start.elapsed().as_micros() as u64)
            .expect("record");
    }
    histogram
}

async fn throughput(addr: SocketAddr) -> f64 {
    let deadline = Instant::now() + THROUGHPUT_FOR;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONNECTIONS {
        tasks.push(tokio::spawn(async move {
            let mut sender = client(addr).await;
            let mut done = 0u64;
            while Instant::now() < deadline {
                hello(&mut sender).await;
                done += 1;
            }
            done
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await.expect("a client task");
    }
    total as f64 / start.elapsed().as_secs_f64()
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let app = support::app(true).await;
        let connect = support::TcpConnect::new(app);
        let upstream = Arc::new(Upstream::new(
            connect.clone(),
            UpstreamOptions {
                max_idle: CONNECTIONS * 2,
                ..UpstreamOptions::default()
            },
        ));
        let presentation = Presentation {
            mode: Mode::Domain,
            platform_cookies: Arc::from(vec!["sandpit_session".to_owned()]),
            client_ip: Some([127, 0, 0, 1].into()),
            scheme: "http",
            host: "hello-ada.apps.test".into(),
        };
        let front = support::front(upstream, presentation).await;

        let direct = latency(app).await;
        let proxied = latency(front).await;
        let direct_rps = throughput(app).await;
        let proxied_rps = throughput(front).await;

        println!(
            "proxy overhead, GET /hello on loopback ({LATENCY_REQUESTS} sequential requests on one connection; {CONNECTIONS} connections for {}s)",
            THROUGHPUT_FOR.as_secs()
        );
        println!("| path | p50 ms | p99 ms | req/s at {CONNECTIONS} conns |");
        println!("|---|---|---|---|");
        for (name, h, rps) in [
            ("direct", &direct, direct_rps),
            ("through the proxy", &proxied, proxied_rps),
        ] {
            println!(
                "| {name} | {:.3} | {:.3} | {:.0} |",
                ms(h.value_at_quantile(0.5)),
                ms(h.value_at_quantile(0.99)),
                rps
            );
        }
        println!(
            "the proxy opened {} connections to the app for {} requests",
            connect.count(),
            LATENCY_REQUESTS + 500 + (proxied_rps * THROUGHPUT_FOR.as_secs_f64()) as usize
        );
        println!(
            "added p50: {:.3} ms (target ≤ 0.3); proxied throughput: {:.0} % of direct (target ≥ 80)",
            ms(proxied.value_at_quantile(0.5)) - ms(direct.value_at_quantile(0.5)),
            100.0 * proxied_rps / direct_rps
        );
    });
}
