//! Throughput and latency of an authenticated `GET /api/v1/auth/me` on loopback.
//!
//! `cargo bench -p sandpit-server --bench auth_me` (release profile). The server runs in this
//! process on its own runtime, with JSON request logs written to a sink so their cost counts;
//! the load generator keeps `BENCH_CONNECTIONS` keep-alive HTTP/1.1 connections busy for
//! `BENCH_SECONDS` and prints a table. `BENCH_STORE=postgres` runs it on PostgreSQL
//! (needs `SANDPIT_TEST_PG_URL` or a local PostgreSQL, see `sandpit-testkit`).

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use sandpit_server::{App, Config};
use secrecy::SecretString;
use tracing_subscriber::layer::SubscriberExt;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let seconds: u64 = env_or("BENCH_SECONDS", 10);
    let connections: usize = env_or("BENCH_CONNECTIONS", 32);
    let store = std::env::var("BENCH_STORE").unwrap_or_else(|_| "sqlite".into());
    let server_threads: usize = env_or("BENCH_SERVER_THREADS", 2);

    // Request logs at the default level, formatted as JSON into a sink.
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::EnvFilter::new("info"))
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_span_list(true)
                .with_writer(std::io::sink),
        );
    tracing::subscriber::set_global_default(subscriber).expect("subscriber");

    let dir = tempfile::TempDir::new().expect("tempdir");
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(server_threads)
        .enable_all()
        .build()
        .expect("server runtime");
    let (addr, token) = server_rt.block_on(async {
        let mut config = Config {
            data_dir: dir.path().join("data"),
            ..Config::default()
        };
        config.server.bind = "127.0.0.1:0".parse().expect("addr");
        config.rate_limit.api_per_minute = u32::MAX;
        if store == "postgres" {
            let url = sandpit_testkit::postgres_url().await;
            config.database.url = Some(SecretString::from(url));
        }
        let app = App::build(config).await.expect("server");
        let addr = app.addr();
        tokio::spawn(app.run_until(std::future::pending()));
        let res: serde_json::Value = reqwest::Client::new()
            .post(format!("http://{addr}/api/v1/auth/signup"))
            .json(&serde_json::json!({"username": "bench", "password": "bench password"}))
            .send()
            .await
            .expect("signup")
            .json()
            .await
            .expect("json");
        (addr, res["token"].as_str().expect("token").to_owned())
    });

    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("client runtime");
    let (count, errors, hist, elapsed) = client_rt.block_on(async move {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..connections {
            let token = token.clone();
            tasks.push(tokio::spawn(async move {
                let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
                stream.set_nodelay(true).expect("nodelay");
                let (mut sender, conn) =
                    hyper::client::conn::http1::handshake(TokioIo::new(stream))
                        .await
                        .expect("handshake");
                tokio::spawn(conn);
                let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("hist");
                let (mut count, mut errors) = (0u64, 0u64);
                while Instant::now() < deadline {
                    let req = hyper::Request::get("/api/v1/auth/me")
                        .header("host", addr.to_string())
                        .header("authorization", format!("Bearer {token}"))
                        .body(Empty::<Bytes>::new())
                        .expect("request");
                    let t = Instant::now();
                    let res = sender.send_request(req).await.expect("send");
                    let ok = res.status().is_success();
                    let _ = res.into_body().collect().await.expect("body");
                    hist.record(t.elapsed().as_micros().max(1) as u64)
                        .expect("record");
                    count += 1;
                    errors += u64::from(!ok);
                }
                (count, errors, hist)
            }));
        }
        let mut total = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("hist");
        let (mut count, mut errors) = (0, 0);
        for task in tasks {
            let (c, e, h) = task.await.expect("task");
            count += c;
            errors += e;
            total.add(h).expect("add");
        }
        (count, errors, total, started.elapsed())
    });

    let rps = count as f64 / elapsed.as_secs_f64();
    println!();
    println!("GET /api/v1/auth/me, authenticated (bearer), {store}, loopback, release build");
    println!("| connections | duration | requests | errors | req/s | p50 | p90 | p99 | max |");
    println!("|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {connections} | {:.1} s | {count} | {errors} | {rps:.0} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms |",
        elapsed.as_secs_f64(),
        hist.value_at_quantile(0.50) as f64 / 1000.0,
        hist.value_at_quantile(0.90) as f64 / 1000.0,
        hist.value_at_quantile(0.99) as f64 / 1000.0,
        hist.max() as f64 / 1000.0,
    );
    assert_eq!(errors, 0, "every request must succeed");
    drop(server_rt);
}
