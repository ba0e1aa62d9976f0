//! A new user's first session, end to end over HTTP and a real WebSocket terminal: sign up,
//! start a session, type in the terminal, edit through the files API, reconnect and find the
//! screen, fail to read a planted link, end the session and find nothing of it left.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use reqwest::header::{ETAG, IF_MATCH};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::helpers::TestApp;

const PATIENCE: Duration = Duration::from_secs(30);

type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// A terminal client that keeps a screen of what it was sent and acknowledges output.
pub(crate) struct Term {
    ws: Socket,
    screen: vt100::Parser,
    seen: String,
    hello: Value,
}

pub(crate) async fn open(
    app: &TestApp,
    token: &str,
    path: &str,
    origin: Option<&str>,
) -> Result<Term, StatusCode> {
    let url = format!("{}{path}", app.base.replacen("http", "ws", 1));
    let mut req = url.into_client_request().unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    if let Some(origin) = origin {
        req.headers_mut().insert("origin", origin.parse().unwrap());
    }
    let (ws, _) = match tokio_tungstenite::connect_async(req).await {
        Ok(ok) => ok,
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => return Err(res.status()),
        Err(e) => panic!("connecting: {e}"),
    };
    let mut term = Term {
        ws,
        screen: vt100::Parser::new(24, 80, 100),
        seen: String::new(),
        hello: Value::Null,
    };
    let hello = term.next().await.expect("a hello");
    let Message::Text(text) = hello else {
        panic!("first message: {hello:?}")
    };
    term.hello = serde_json::from_str(&text).unwrap();
    assert_eq!(term.hello["type"], "hello", "{}", term.hello);
    Ok(term)
}

impl Term {
    async fn next(&mut self) -> Option<Message> {
        let msg = tokio::time::timeout(PATIENCE, self.ws.next())
            .await
            .expect("the terminal went quiet")?
            .ok()?;
        if let Message::Binary(bytes) = &msg {
            self.screen.process(bytes);
            self.seen.push_str(&String::from_utf8_lossy(bytes));
            let ack = json!({"type": "ack", "bytes": bytes.len()}).to_string();
            let _ = self.ws.send(Message::text(ack)).await;
        }
        Some(msg)
    }

    pub(crate) async fn type_line(&mut self, line: &str) {
        self.ws
            .send(Message::binary(format!("{line}\r").into_bytes()))
            .await
            .unwrap();
    }

    /// Reads until the screen shows `needle` (within twice the patience in all: keep-alive
    /// pings alone never satisfy it).
    pub(crate) async fn until_screen(&mut self, needle: &str) {
        let deadline = tokio::time::Instant::now() + 2 * PATIENCE;
        while !self.screen.screen().contents().contains(needle) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{needle:?} did not show; the screen: {}",
                self.screen.screen().contents()
            );
            let msg = self.next().await;
            assert!(
                msg.is_some(),
                "closed before {needle:?} showed; saw {:?}",
                self.seen
            );
        }
    }
}

#[tokio::test]
async fn a_new_users_first_session() {
    let app = TestApp::spawn().await;
    let (_, token) = app.signup("newcomer").await;
    let created = app.post("/api/v1/sessions", Some(&token), json!({})).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let term_path = format!("/api/v1/sessions/{id}/terminal?rows=24&cols=80");

    // The terminal: a shell in the workspace.
    let mut term = open(&app, &token, &term_path, Some(&app.base))
        .await
        .unwrap();
    term.type_line("echo hi > a.txt && echo wrote-$((40+2))")
        .await;
    term.until_screen("wrote-42").await;

    // The file the terminal made, through the API; then an update through the API.
    let url = app.url(&format!("/api/v1/sessions/{id}/files/a.txt"));
    let got = app
        .client
        .get(&url)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), StatusCode::OK);
    let tag = got.headers()[ETAG].to_str().unwrap().to_owned();
    assert_eq!(got.text().await.unwrap(), "hi\n");
    let put = app
        .client
        .put(&url)
        .bearer_auth(&token)
        .header(IF_MATCH, tag)
        .body("updated through the API\n")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::OK);
    term.type_line("cat a.txt").await;
    term.until_screen("updated through the API").await;

    // Drop the connection; a reconnect draws the same screen.
    drop(term);
    let mut term = open(&app, &token, &term_path, Some(&app.base))
        .await
        .unwrap();
    let snapshot = term.next().await.unwrap();
    assert!(matches!(snapshot, Message::Binary(_)), "{snapshot:?}");
    let screen = term.screen.screen().contents();
    assert!(screen.contains("wrote-42"), "{screen}");
    assert!(screen.contains("updated through the API"), "{screen}");

    // A link to a host file, made in the terminal, leads the API nowhere.
    // (Markers are computed by the shell, so the echo of the typed line does not match.)
    term.type_line("ln -s /etc/passwd pw && id -u && echo linked-$((2*3))")
        .await;
    term.until_screen("linked-6").await;
    let pw = app
        .get(&format!("/api/v1/sessions/{id}/files/pw"), Some(&token))
        .await;
    pw.expect_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let uid: u32 = term
        .screen
        .screen()
        .contents()
        .lines()
        .rev()
        .find_map(|l| l.trim().parse().ok())
        .expect("the sandbox uid on screen");

    // End it: the terminal is told, and no process of the session is left.
    let end = app
        .call(
            Method::DELETE,
            &format!("/api/v1/sessions/{id}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(end.status, StatusCode::NO_CONTENT);
    loop {
        match term.next().await {
            None | Some(Message::Close(_)) => break,
            Some(_) => {}
        }
    }
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !processes_of_uid(uid).is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "processes of the ended session remain: {:?}",
            processes_of_uid(uid)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        open(&app, &token, &term_path, None).await.err(),
        Some(StatusCode::CONFLICT)
    );
}

fn processes_of_uid(uid: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/status"))
                .map(|s| {
                    s.lines()
                        .find(|l| l.starts_with("Uid:"))
                        .is_some_and(|l| l.split_whitespace().nth(1) == Some(&uid.to_string()))
                })
                .unwrap_or(false)
        })
        .collect()
}

#[tokio::test]
async fn terminal_upgrades_check_owner_and_share_links() {
    let app = TestApp::spawn().await;
    let (_, alice) = app.signup("alice").await;
    let (_, teacher) = app.signup("teacher").await;
    let created = app.post("/api/v1/sessions", Some(&alice), json!({})).await;
    let id = created.body["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/sessions/{id}/terminal");

    // Bearer clients may connect from any page (no browser sends a token by itself); the
    // cookie × Origin cases are in the authorization matrix (authz.rs).
    assert!(
        open(&app, &alice, &path, Some("http://evil.example"))
            .await
            .is_ok()
    );
    // Not a WebSocket request: an enveloped 400.
    app.get(&path, Some(&alice))
        .await
        .expect_error(StatusCode::BAD_REQUEST, "bad_request");
    // Another user without a share link: the session does not exist for them.
    assert_eq!(
        open(&app, &teacher, &path, None).await.err(),
        Some(StatusCode::NOT_FOUND)
    );
    assert_eq!(
        open(&app, &teacher, &format!("{path}?share=00ff"), None)
            .await
            .err(),
        Some(StatusCode::FORBIDDEN)
    );

    // With the owner's share link the teacher watches, read-only.
    let link = app
        .post(
            &format!("/api/v1/sessions/{id}/share"),
            Some(&alice),
            json!({}),
        )
        .await;
    assert_eq!(link.status, StatusCode::OK, "{}", link.body);
    app.post(
        &format!("/api/v1/sessions/{id}/share"),
        Some(&teacher),
        json!({}),
    )
    .await
    .expect_error(StatusCode::NOT_FOUND, "not_found");
    let shared = link.body["terminal"].as_str().unwrap();
    let mut owner = open(&app, &alice, &path, None).await.unwrap();
    let mut viewer = open(&app, &teacher, shared, None).await.unwrap();
    assert_eq!(viewer.hello["read_only"], true);
    assert_eq!(owner.hello["read_only"], false);
    viewer.type_line("touch /workspace/viewer-was-here").await;
    owner.type_line("echo from-$((6*7))-owner").await;
    owner.until_screen("from-42-owner").await;
    viewer.until_screen("from-42-owner").await;
    let tree = app
        .get(&format!("/api/v1/sessions/{id}/files"), Some(&alice))
        .await;
    assert!(
        !tree.body.to_string().contains("viewer-was-here"),
        "a read-only viewer typed: {}",
        tree.body
    );
    // The owner and the viewer (the earlier probe's detach may take a moment to be noticed).
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let ready = app.get("/readyz", None).await;
        if ready.body["sessions"]["terminals_attached"] == 2 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{}", ready.body);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_reconnect_storm_leaves_the_shell_and_the_server_well() {
    let app = TestApp::spawn().await;
    let (_, token) = app.signup("stormy").await;
    let created = app.post("/api/v1/sessions", Some(&token), json!({})).await;
    let id = created.body["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/sessions/{id}/terminal");
    let mut first = open(&app, &token, &path, None).await.unwrap();
    first.type_line("export MARK=st$((2+2))rm").await;
    // Forty clients connect and vanish at once, some without reading a byte.
    let storm = (0..40).map(|i| {
        let (app, token, path) = (&app, token.clone(), path.clone());
        async move {
            let mut term = open(app, &token, &path, None).await.unwrap();
            if i % 2 == 0 {
                let _ = term.next().await;
            }
        }
    });
    futures::future::join_all(storm).await;
    // The same shell answers, with its state, and the storm's clients are all gone.
    first.type_line("echo $MARK").await;
    first.until_screen("st4rm").await;
    let metrics = |app: &TestApp| {
        let url = app.url("/metrics");
        let client = app.client.clone();
        async move { client.get(url).send().await.unwrap().text().await.unwrap() }
    };
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let text = metrics(&app).await;
        if text.contains("sandpit_terminals_attached 1") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        app.get(&format!("/api/v1/sessions/{id}"), Some(&token))
            .await
            .body["status"],
        "running"
    );
}
