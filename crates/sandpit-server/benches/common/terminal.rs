//! A terminal WebSocket client for the benches that type into a session's shell (included with
//! `#[path]` by those alone, so the others do not carry it).

use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::common::Samples;

pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens the terminal of `session` at `base` (`http://host:port`) as the bearer of `token`.
pub async fn open(base: &str, token: &str, session: &str) -> Socket {
    let url = format!("{base}/api/v1/sessions/{session}/terminal").replacen("http", "ws", 1);
    let mut req = url.into_client_request().expect("request");
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    // No Nagle on the client either, as a browser's WebSocket does.
    let (ws, _) = tokio_tungstenite::connect_async_with_config(req, None, true)
        .await
        .expect("terminal");
    ws
}

/// Reads binary output (acknowledging it) until `needle` has been seen; returns the bytes read.
pub async fn read_until(ws: &mut Socket, needle: &[u8]) -> usize {
    let mut tail: Vec<u8> = Vec::new();
    let mut total = 0usize;
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(300), ws.next())
            .await
            .expect("terminal output")
            .expect("open")
            .expect("message");
        if let Message::Binary(bytes) = msg {
            total += bytes.len();
            let ack = json!({"type": "ack", "bytes": bytes.len()}).to_string();
            ws.send(Message::text(ack)).await.expect("ack");
            tail.extend_from_slice(&bytes);
            if tail.windows(needle.len()).any(|w| w == needle) {
                return total;
            }
            let keep = tail.len().saturating_sub(needle.len() + 64);
            tail.drain(..keep);
        }
    }
}

/// `n` keystroke → echo round trips (bash's line editor echoes each key), the line cleared
/// every 40 keys so it never wraps; the shell is first waited for.
pub async fn keystroke_echo(ws: &mut Socket, n: usize) -> Samples {
    ws.send(Message::binary(b"echo re$((1+1))ady\r".to_vec()))
        .await
        .expect("send");
    read_until(ws, b"re2ady").await;
    let mut echo = Samples::new();
    for i in 0..n {
        let key = b'a' + (i % 26) as u8;
        let t = Instant::now();
        ws.send(Message::binary(vec![key])).await.expect("key");
        read_until(ws, &[key]).await;
        echo.push(t.elapsed());
        if i % 40 == 39 {
            // Ctrl-U clears the line so it never wraps.
            ws.send(Message::binary(vec![0x15])).await.expect("clear");
        }
    }
    ws.send(Message::binary(vec![0x15])).await.expect("clear");
    echo
}
