//! The proxy core against a real hyper app on loopback, through a real front server.

mod support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http::Request;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::TokioIo;
use sandpit_proxy::{Mode, Presentation, SANDBOX_CSP, Upstream, UpstreamOptions};
use support::TcpConnect;
use tokio_tungstenite::tungstenite::Message;

fn path_mode() -> Presentation {
    Presentation {
        mode: Mode::PathPrefix {
            prefix: "/user/ada/app/hello".into(),
        },
        platform_cookies: Arc::from(vec!["sandpit_session".to_owned()]),
        client_ip: Some([198, 51, 100, 4].into()),
        scheme: "http",
        host: "sandpit.test".into(),
    }
}

fn domain_mode() -> Presentation {
    Presentation {
        mode: Mode::Domain,
        host: "hello-ada.apps.test".into(),
        ..path_mode()
    }
}

async fn proxied(
    keep_alive: bool,
    presentation: Presentation,
) -> (std::net::SocketAddr, Arc<TcpConnect>, Arc<Upstream>) {
    let app = support::app(keep_alive).await;
    let connect = TcpConnect::new(app);
    let upstream = Arc::new(Upstream::new(connect.clone(), UpstreamOptions::default()));
    let front = support::front(upstream.clone(), presentation).await;
    (front, connect, upstream)
}

#[tokio::test]
async fn bodies_stream_both_ways_with_the_query_kept() {
    let (front, _, _) = proxied(true, domain_mode()).await;
    let stream = tokio::net::TcpStream::connect(front)
        .await
        .expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let (mut tx, rx) = futures::channel::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(1);
    let request = Request::post("/echo?a=1&b=two")
        .header("host", "hello-ada.apps.test")
        .body(StreamBody::new(rx))
        .expect("a request");
    tx.send(Ok(Frame::data(Bytes::from_static(b"part one"))))
        .await
        .expect("send the first part");
    // The response head and the first part come back while the request is still open: had
    // the proxy buffered either body, this would never complete.
    let response = tokio::time::timeout(Duration::from_secs(60), sender.send_request(request))
        .await
        .expect("the head arrives while the body is open")
        .expect("a response");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-query"], "a=1&b=two");
    let mut body = response.into_body();
    let first = tokio::time::timeout(Duration::from_secs(60), body.frame())
        .await
        .expect("the first part arrives while the body is open")
        .expect("a frame")
        .expect("no error");
    assert_eq!(first.into_data().expect("data"), "part one");
    let big = vec![b'x'; 3 << 20];
    tx.send(Ok(Frame::data(Bytes::from(big.clone()))))
        .await
        .expect("send the rest");
    drop(tx);
    let rest = body.collect().await.expect("the rest").to_bytes();
    assert_eq!(rest.len(), big.len());
    assert!(rest.iter().all(|b| *b == b'x'));
}

#[tokio::test]
async fn connections_are_kept_alive_and_reused() {
    let (front, connect, upstream) = proxied(true, domain_mode()).await;
    let client = reqwest::Client::new();
    for _ in 0..20 {
        let text = client
            .get(format!("http://{front}/hello"))
            .send()
            .await
            .expect("a response")
            .text()
            .await
            .expect("a body");
        assert_eq!(text, "hello");
    }
    // A connection goes back to the pool once its response is read to the end, which races
    // the next request by a hair: reuse shows as far fewer connections than requests.
    assert!(
        connect.count() < 10,
        "twenty requests in a row took {} connections",
        connect.count()
    );
    for _ in 0..200 {
        if upstream.idle_connections() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(upstream.idle_connections() > 0, "the connection was kept");
}

#[tokio::test]
async fn an_app_that_closes_its_connections_still_gets_every_request() {
    let (front, connect, _) = proxied(false, domain_mode()).await;
    let client = reqwest::Client::new();
    for _ in 0..10 {
        let response = client
            .get(format!("http://{front}/hello"))
            .send()
            .await
            .expect("a response");
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.expect("a body"), "hello");
    }
    assert!(
        connect.count() >= 10,
        "each request needed a fresh connection"
    );
}

#[tokio::test]
async fn an_app_not_listening_is_a_clear_bad_gateway() {
    let unused = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = unused.local_addr().expect("address");
    drop(unused);
    let upstream = Arc::new(Upstream::new(
        TcpConnect::new(addr),
        UpstreamOptions::default(),
    ));
    let front = support::front(upstream, domain_mode()).await;
    let response = reqwest::get(format!("http://{front}/hello"))
        .await
        .expect("a response");
    assert_eq!(response.status(), 502);
    assert_eq!(response.text().await.expect("a body"), "app_not_listening");
}

#[tokio::test]
async fn an_app_that_never_answers_times_out() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = silent.local_addr().expect("address");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            held.push(stream);
        }
    });
    let upstream = Arc::new(Upstream::new(
        TcpConnect::new(addr),
        UpstreamOptions {
            response_timeout: Duration::from_millis(300),
            ..UpstreamOptions::default()
        },
    ));
    let front = support::front(upstream, domain_mode()).await;
    let response = reqwest::get(format!("http://{front}/hello"))
        .await
        .expect("a response");
    assert_eq!(response.status(), 502);
    assert_eq!(response.text().await.expect("a body"), "response_timeout");
}

#[tokio::test]
async fn on_the_path_mode_the_platform_s_credentials_never_reach_the_app() {
    let (front, _, _) = proxied(true, path_mode()).await;
    let seen = reqwest::Client::new()
        .get(format!("http://{front}/headers"))
        .header("authorization", "Bearer sp_secret")
        .header("cookie", "sandpit_session=secret; theme=dark")
        .header("x-forwarded-for", "10.0.0.1")
        .header("x-forwarded-prefix", "/elsewhere")
        .send()
        .await
        .expect("a response")
        .text()
        .await
        .expect("a body");
    let lines: Vec<&str> = seen.lines().collect();
    assert!(!seen.contains("secret"), "credentials leaked: {seen}");
    assert!(!seen.contains("authorization"), "{seen}");
    assert!(lines.contains(&"cookie: theme=dark"), "{seen}");
    assert!(lines.contains(&"x-forwarded-for: 198.51.100.4"), "{seen}");
    assert!(
        lines.contains(&"x-forwarded-prefix: /user/ada/app/hello"),
        "{seen}"
    );
    assert!(
        !seen.contains("10.0.0.1") && !seen.contains("/elsewhere"),
        "{seen}"
    );
}

#[tokio::test]
async fn on_the_domain_mode_authorization_is_the_app_s_own() {
    let (front, _, _) = proxied(true, domain_mode()).await;
    let seen = reqwest::Client::new()
        .get(format!("http://{front}/headers"))
        .header("authorization", "Basic YXBwOnVzZXI=")
        .header("cookie", "sandpit_session=secret; theme=dark")
        .send()
        .await
        .expect("a response")
        .text()
        .await
        .expect("a body");
    assert!(seen.contains("authorization: Basic YXBwOnVzZXI="), "{seen}");
    assert!(seen.contains("cookie: theme=dark") && !seen.contains("secret"));
    assert!(!seen.contains("x-forwarded-prefix"), "{seen}");
}

#[tokio::test]
async fn responses_on_the_path_mode_are_sandboxed_and_keep_to_their_path() {
    let (front, _, _) = proxied(true, path_mode()).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client");
    let response = client
        .get(format!("http://{front}/cookies"))
        .send()
        .await
        .expect("a response");
    assert_eq!(response.status(), 302);
    assert_eq!(response.headers()["content-security-policy"], SANDBOX_CSP);
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    assert_eq!(response.headers()["location"], "/user/ada/app/hello/next");
    let cookies: Vec<&str> = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().expect("text"))
        .collect();
    // `Path=/` is the app's root: it moves under the prefix, never onto the platform's paths.
    assert_eq!(
        cookies,
        [
            "theme=dark; Path=/user/ada/app/hello/",
            "mine=1; Path=/user/ada/app/hello/",
            "plain=1"
        ]
    );
}

#[tokio::test]
async fn websockets_are_spliced_through() {
    let (front, connect, upstream) = proxied(true, path_mode()).await;
    let (mut ws, response) = tokio_tungstenite::connect_async(format!("ws://{front}/ws"))
        .await
        .expect("the handshake passes the proxy");
    assert_eq!(response.status(), 101);
    for text in ["one", "two", &"x".repeat(200_000)] {
        ws.send(Message::text(text)).await.expect("send");
        let echoed = ws.next().await.expect("an answer").expect("a message");
        assert_eq!(echoed.into_text().expect("text").as_str(), text);
    }
    ws.send(Message::binary(vec![0u8, 1, 2, 255]))
        .await
        .expect("send");
    let echoed = ws.next().await.expect("an answer").expect("a message");
    assert_eq!(echoed.into_data().as_ref(), [0u8, 1, 2, 255]);
    ws.close(None).await.expect("close");
    // The upgraded connection belongs to the socket: it never goes back to the pool.
    assert_eq!(connect.count(), 1);
    assert_eq!(upstream.idle_connections(), 0);
}
