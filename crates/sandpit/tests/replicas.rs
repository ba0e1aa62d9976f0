//! Two (and three) real `sandpit serve` processes on one PostgreSQL database, sharing the
//! signing secret and a workspaces directory, each with its own data directory and sandbox
//! uids: one session driven through both (the terminal on A, files and the judge through B,
//! which forwards to A), then A SIGKILLed mid-exec and the session carried on through B with
//! its workspace; and replicas racing to start one suspended session's sandbox (needs root,
//! as CI is: sandboxes use namespaces, cgroups and loop devices).

#![expect(
    clippy::unwrap_used,
    reason = "a failed unwrap is how a test step fails, loudly"
)]

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::Server;
use futures::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// Hang guard for any single wait; never a speed target.
const PATIENCE: Duration = Duration::from_secs(60);
/// The replicas' dead-after interval: short, so the test does not wait long for a takeover.
const DEAD_AFTER_MS: u64 = 1500;
const SECRET: &str = "replicas-test-signing-secret-0123456789abcdef";

/// Replica `name` (its own data directory and uid range `uid..uid+200`) on `pg`, with
/// workspaces in `root/workspaces`.
async fn replica(root: &Path, name: &str, pg: &str, uid: u32) -> Server {
    let env = [
        ("SANDPIT_DATA_DIR", root.join(name).display().to_string()),
        ("SANDPIT_DATABASE__URL", pg.to_owned()),
        ("SANDPIT_AUTH__SECRET", SECRET.to_owned()),
        (
            "SANDPIT_CLUSTER__WORKSPACES_DIR",
            root.join("workspaces").display().to_string(),
        ),
        ("SANDPIT_CLUSTER__HEARTBEAT_MS", "250".to_owned()),
        ("SANDPIT_CLUSTER__DEAD_AFTER_MS", DEAD_AFTER_MS.to_string()),
        ("SANDPIT_SANDBOX__UID", uid.to_string()),
        ("SANDPIT_SANDBOX__UIDS", "200".to_owned()),
        ("SANDPIT_RUNS__WARM_POOL", "0".to_owned()),
        ("SANDPIT_DOCKER__ENABLED", "false".to_owned()),
        ("SANDPIT_RATE_LIMIT__API_PER_MINUTE", "100000".to_owned()),
    ];
    Server::start(root, root.join(format!("{name}.log")), &env).await
}

struct Api {
    http: reqwest::Client,
    token: String,
}

impl Api {
    async fn call(
        &self,
        server: &Server,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self
            .http
            .request(method, server.url(path))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        let retry_after = res.headers().get("retry-after").is_some();
        let text = res.text().await.unwrap();
        let mut value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if retry_after && let Value::Object(map) = &mut value {
            map.insert("retry_after".into(), Value::Bool(true));
        }
        (status, value)
    }

    /// Starts the shell-basics lab on `server`; the session's id.
    async fn start_shell_basics(&self, server: &Server) -> String {
        let (status, started) = self
            .call(
                server,
                "POST",
                "/api/v1/labs/shell-basics/start",
                Some(json!({})),
            )
            .await;
        assert!(status.is_success(), "{started}");
        started["session"]["id"].as_str().unwrap().to_owned()
    }

    /// POSTs `body` to `path` in a task of its own, for a request that is to be cut off: its
    /// status and JSON body (null when there is none).
    fn post_in_background(
        &self,
        server: &Server,
        path: &str,
        body: Value,
    ) -> tokio::task::JoinHandle<(StatusCode, Value)> {
        let (http, token, url) = (self.http.clone(), self.token.clone(), server.url(path));
        tokio::spawn(async move {
            let res = http
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = res.status();
            (status, res.json::<Value>().await.unwrap_or(Value::Null))
        })
    }

    async fn read(&self, server: &Server, session: &str, path: &str) -> (StatusCode, String) {
        let res = self
            .http
            .get(server.url(&format!("/api/v1/sessions/{session}/files/{path}")))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        (res.status(), res.text().await.unwrap())
    }

    /// Writes a file; whether it was written (201 made, 200 or 204 replaced).
    async fn write(&self, server: &Server, session: &str, path: &str, body: &str) -> bool {
        let status = self
            .http
            .put(server.url(&format!("/api/v1/sessions/{session}/files/{path}")))
            .bearer_auth(&self.token)
            .body(body.to_owned())
            .send()
            .await
            .unwrap()
            .status();
        assert!(
            [StatusCode::OK, StatusCode::CREATED, StatusCode::NO_CONTENT].contains(&status),
            "writing {path}: {status}"
        );
        true
    }
}

async fn signup(server: &Server, name: &str) -> Api {
    let http = reqwest::Client::new();
    let res = http
        .post(server.url("/api/v1/auth/signup"))
        .json(&json!({"username": name, "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let body: Value = res.json().await.unwrap();
    Api {
        http,
        token: body["token"].as_str().unwrap().to_owned(),
    }
}

/// A terminal client: keeps a screen of what it was sent and acknowledges output.
struct Term {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    screen: vt100::Parser,
}

impl Term {
    async fn open(server: &Server, token: &str, session: &str) -> Self {
        let url = server
            .url(&format!(
                "/api/v1/sessions/{session}/terminal?rows=24&cols=100"
            ))
            .replacen("http", "ws", 1);
        let mut req = url.into_client_request().unwrap();
        req.headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        let (ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        let mut term = Self {
            ws,
            screen: vt100::Parser::new(24, 100, 0),
        };
        let hello = term.next().await.unwrap();
        assert!(
            matches!(&hello, Message::Text(t) if t.contains("\"hello\"")),
            "{hello:?}"
        );
        term
    }

    async fn next(&mut self) -> Option<Message> {
        let msg = tokio::time::timeout(PATIENCE, self.ws.next())
            .await
            .expect("the terminal went quiet")?
            .ok()?;
        if let Message::Binary(bytes) = &msg {
            self.screen.process(bytes);
            let ack = json!({"type": "ack", "bytes": bytes.len()}).to_string();
            let _ = self.ws.send(Message::text(ack)).await;
        }
        Some(msg)
    }

    async fn type_line(&mut self, line: &str) {
        self.ws
            .send(Message::binary(format!("{line}\r").into_bytes()))
            .await
            .unwrap();
    }

    async fn until_screen(&mut self, needle: &str) {
        let deadline = Instant::now() + PATIENCE;
        while !self.screen.screen().contents().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "{needle:?} did not show: {}",
                self.screen.screen().contents()
            );
            assert!(
                self.next().await.is_some(),
                "closed before {needle:?} showed"
            );
        }
    }
}

/// Loop devices whose backing file is `image` (a sandbox that has the workspace mounted).
fn devices_backing(image: &Path) -> usize {
    let Ok(image) = std::fs::canonicalize(image) else {
        return 0;
    };
    std::fs::read_dir("/sys/block")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("loop/backing_file")).ok())
        .filter(|b| Path::new(b.trim()) == image)
        .count()
}

fn image_of(root: &Path, session: &str) -> PathBuf {
    root.join("workspaces")
        .join(session.replace('-', ""))
        .join("workspace.img")
}

/// The session's running sandboxes on a replica, from its `/readyz`.
async fn running(server: &Server) -> u64 {
    let body: Value = reqwest::get(server.url("/readyz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["sessions"]["running"].as_u64().unwrap()
}

/// Lets `request` (one forwarded to the session's holder) run for `after`, runs `kill` (the
/// holder's death), and checks that the request answers a clear 503 rather than hanging.
async fn cut_off(
    request: tokio::task::JoinHandle<(StatusCode, Value)>,
    after: Duration,
    kill: impl FnOnce(),
) {
    tokio::time::sleep(after).await;
    kill();
    let (status, body) = tokio::time::timeout(PATIENCE, request)
        .await
        .expect("the cut-off request hung")
        .unwrap();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "replica_unavailable", "{body}");
}

/// Polls the session's file listing on `server` until it answers: while the session's holder
/// is not yet known to be gone, every refusal is a 503 with Retry-After naming why.
async fn until_taken_over(api: &Api, server: &Server, session: &str) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (status, body) = api
            .call(
                server,
                "GET",
                &format!("/api/v1/sessions/{session}/files"),
                None,
            )
            .await;
        if status == StatusCode::OK {
            return;
        }
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert!(
            ["replica_unavailable", "session_moving"]
                .contains(&body["error"]["code"].as_str().unwrap_or("")),
            "{body}"
        );
        assert_eq!(body["retry_after"], true, "{body}");
        assert!(
            Instant::now() < deadline,
            "the session was never taken over:\n{}",
            server.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_session_through_two_replicas_and_the_loss_of_one() {
    let pg = sandpit_testkit::postgres_url().await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut a = replica(root, "a", &pg, 1_900_300_000).await;
    let b = replica(root, "b", &pg, 1_900_300_300).await;

    // Signed up on A, the token works on B: one store, one signing secret.
    let api = signup(&a, "ada").await;
    let session = api.start_shell_basics(&a).await;

    // A token revoked on A is refused by B well within B's credential cache lifetime (30 s):
    // the revocation reaches B as a cluster event, not by the cache expiring.
    let (status, made) = api
        .call(&a, "POST", "/api/v1/tokens", Some(json!({"name": "ci"})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let other = Api {
        http: api.http.clone(),
        token: made["secret"].as_str().unwrap().to_owned(),
    };
    assert_eq!(
        other.call(&b, "GET", "/api/v1/auth/me", None).await.0,
        StatusCode::OK
    );
    let token_id = made["token"]["id"].as_str().unwrap();
    let (status, _) = api
        .call(&a, "DELETE", &format!("/api/v1/tokens/{token_id}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let revoked = Instant::now();
    while other.call(&b, "GET", "/api/v1/auth/me", None).await.0 != StatusCode::UNAUTHORIZED {
        assert!(
            revoked.elapsed() < Duration::from_secs(20),
            "B still accepts a token revoked on A"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The terminal on A.
    let mut term_a = Term::open(&a, &api.token, &session).await;
    term_a
        .type_line("mkdir -p project/docs && echo 'hello sandpit' > project/hello.txt && echo marker-$((6*7))")
        .await;
    term_a.until_screen("marker-42").await;

    // Files and the judge through B: forwarded to A, which holds the sandbox.
    assert_eq!(
        api.read(&b, &session, "project/hello.txt").await,
        (StatusCode::OK, "hello sandpit\n".to_owned())
    );
    let (status, attempt) = api
        .call(
            &b,
            "POST",
            &format!("/api/v1/sessions/{session}/judge"),
            Some(json!({"step": "files"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{attempt}");
    assert_eq!(attempt["passed"], false, "{attempt}");
    let codes: Vec<&str> = attempt["failures"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["code"].as_str())
        .collect();
    assert!(
        codes.contains(&"notes-missing") && !codes.contains(&"hello-text"),
        "{attempt}"
    );
    // B lists it as running (on A), and runs no sandbox itself.
    let (_, list) = api.call(&b, "GET", "/api/v1/sessions", None).await;
    assert_eq!(list["sessions"][0]["id"], session.as_str(), "{list}");
    assert_eq!(list["sessions"][0]["status"], "running", "{list}");
    assert_eq!((running(&a).await, running(&b).await), (1, 0));

    // A second terminal client through B shares A's shell: it gets the screen back, and what
    // it types shows on A's client.
    let mut term_b = Term::open(&b, &api.token, &session).await;
    term_b.until_screen("marker-42").await;
    term_b.type_line("echo via-b-$((2*21))").await;
    term_a.until_screen("via-b-42").await;
    drop((term_a, term_b));

    // Saving the workspace into a project through B: the body names the session, B forwards
    // to A, whose sandbox packs it.
    let (status, project) = api
        .call(
            &b,
            "POST",
            "/api/v1/projects",
            Some(json!({"name": "from-a-session"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{project}");
    let project = project["id"].as_str().unwrap().to_owned();
    let (status, saved) = api
        .call(
            &b,
            "POST",
            &format!("/api/v1/projects/{project}/save"),
            Some(json!({"session_id": session})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    let (status, files) = api
        .call(
            &b,
            "GET",
            &format!("/api/v1/projects/{project}/files/project/hello.txt"),
            None,
        )
        .await;
    assert_eq!((status, files), (StatusCode::OK, json!("hello sandpit\n")));
    assert_eq!(running(&b).await, 0, "B started a sandbox of its own");

    // A write through B is A's.
    assert!(
        api.write(&b, &session, "from-b.txt", "written through b\n")
            .await
    );

    // A dies in the middle of a request forwarded to it: a clear error, never a hang.
    let exec = api.post_in_background(
        &b,
        &format!("/api/v1/sessions/{session}/exec"),
        json!({"argv": ["sleep", "20"], "timeout_ms": 30000}),
    );
    cut_off(exec, Duration::from_millis(500), || a.kill()).await;

    // Until A is known to be gone, B says so with Retry-After; then B takes the session over
    // and starts its sandbox on the same workspace.
    until_taken_over(&api, &b, &session).await;
    assert_eq!(
        api.read(&b, &session, "project/hello.txt").await,
        (StatusCode::OK, "hello sandpit\n".to_owned())
    );
    assert_eq!(
        api.read(&b, &session, "from-b.txt").await,
        (StatusCode::OK, "written through b\n".to_owned())
    );
    assert_eq!(running(&b).await, 1);
    // One sandbox has the workspace: B's (A's went with A).
    assert_eq!(devices_backing(&image_of(root, &session)), 1);

    // The lab goes on through B: finish the step and pass it.
    assert!(
        api.write(&b, &session, "project/docs/notes.md", "notes\n")
            .await
    );
    let (status, attempt) = api
        .call(
            &b,
            "POST",
            &format!("/api/v1/sessions/{session}/judge"),
            Some(json!({"step": "files"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{attempt}");
    assert_eq!(attempt["passed"], true, "{attempt}");
    // A new shell on B (the old one died with A's sandbox), in the same workspace.
    let mut term = Term::open(&b, &api.token, &session).await;
    term.type_line("cat from-b.txt").await;
    term.until_screen("written through b").await;
    drop(term);

    // B's count of live replicas is refreshed at its heartbeats: A drops out of it.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let ready: Value = reqwest::get(b.url("/readyz"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if ready["cluster"]["live_replicas"] == 1 {
            break;
        }
        assert_eq!(ready["cluster"]["live_replicas"], 2, "{ready}");
        assert!(Instant::now() < deadline, "B still counts A: {ready}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Ending it through B leaves no sandbox on the workspace, and no workspace.
    let (status, body) = api
        .call(&b, "DELETE", &format!("/api/v1/sessions/{session}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(devices_backing(&image_of(root, &session)), 0);
    assert!(!image_of(root, &session).exists());
    let mut b = b;
    assert!(b.exited().is_none(), "B stopped:\n{}", b.log_tail());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_racing_for_a_suspended_session_start_one_sandbox() {
    let pg = sandpit_testkit::postgres_url().await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let a = replica(root, "a", &pg, 1_900_301_000).await;
    let b = replica(root, "b", &pg, 1_900_301_300).await;
    let c = replica(root, "c", &pg, 1_900_301_600).await;
    let api = signup(&a, "grace").await;
    let (status, created) = api
        .call(&a, "POST", "/api/v1/sessions", Some(json!({})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let session = created["id"].as_str().unwrap().to_owned();
    assert!(api.write(&a, &session, "kept.txt", "kept\n").await);
    // A stops gracefully: its sandbox goes and the session is suspended at once.
    drop(a);
    let (_, list) = api.call(&b, "GET", "/api/v1/sessions", None).await;
    assert_eq!(list["sessions"][0]["status"], "suspended", "{list}");

    // Six requests at once, three to B and three to C: every one answers, one sandbox starts.
    let requests = (0..6).map(|i| {
        let server = if i % 2 == 0 { &b } else { &c };
        let url = server.url(&format!("/api/v1/sessions/{session}/exec"));
        let (http, token) = (api.http.clone(), api.token.clone());
        async move {
            let res = http
                .post(url)
                .bearer_auth(token)
                .json(&json!({"argv": ["cat", "kept.txt"]}))
                .send()
                .await
                .unwrap();
            (res.status(), res.json::<Value>().await.unwrap())
        }
    });
    for (status, body) in futures::future::join_all(requests).await {
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["stdout"], "kept\n", "{body}");
    }
    assert_eq!(running(&b).await + running(&c).await, 1);
    assert_eq!(devices_backing(&image_of(root, &session)), 1);
}

/// An upload cut off by its holder's death: the request's head and the first `sent` bytes of
/// `body` go to `server` over a raw connection (so the test decides when the body stops),
/// then `kill` runs, then the answer is read. Returns its status line and body.
async fn upload_cut_short(
    server: &Server,
    token: &str,
    session: &str,
    body: &[u8],
    sent: usize,
    kill: impl FnOnce(),
) -> (String, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = server.base.trim_start_matches("http://");
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /api/v1/sessions/{session}/archive HTTP/1.1\r\nhost: {addr}\r\n\
         authorization: Bearer {token}\r\ncontent-type: application/gzip\r\n\
         content-length: {}\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(&body[..sent]).await.unwrap();
    conn.flush().await.unwrap();
    // Time for the head and those bytes to be forwarded on to the holder.
    tokio::time::sleep(Duration::from_millis(500)).await;
    kill();
    let mut answer = Vec::new();
    tokio::time::timeout(PATIENCE, conn.read_to_end(&mut answer))
        .await
        .expect("no answer to the cut-off upload")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head.lines().next().unwrap_or_default().to_owned();
    // The body of a small JSON answer: one chunk, or the whole with content-length.
    let json = body
        .find('{')
        .and_then(|start| body.rfind('}').map(|end| &body[start..=end]))
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or(Value::Null);
    (status, json)
}

/// A `.tar.gz` of `count` files `upload/file-N.bin` of `size` bytes each that do not compress
/// (so the archive is large enough to be cut off in the middle).
fn incompressible_archive(root: &Path, count: usize, size: usize) -> Vec<u8> {
    let src = root.join("archive-src");
    std::fs::create_dir_all(src.join("upload")).unwrap();
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    for n in 0..count {
        let bytes: Vec<u8> = (0..size)
            .map(|_| {
                // xorshift: cheap noise that gzip cannot shrink.
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state.to_le_bytes()[0]
            })
            .collect();
        std::fs::write(src.join(format!("upload/file-{n}.bin")), bytes).unwrap();
    }
    let out = root.join("upload.tar.gz");
    let status = std::process::Command::new("tar")
        .arg("-czf")
        .arg(&out)
        .arg("-C")
        .arg(&src)
        .arg("upload")
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::read(out).unwrap()
}

/// The caller's attempts of `step` in `session`.
async fn attempts_of(api: &Api, server: &Server, session: &str, step: &str) -> Vec<Value> {
    let (status, list) = api
        .call(
            server,
            "GET",
            &format!("/api/v1/attempts?session={session}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    list["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["step"] == step)
        .cloned()
        .collect()
}

/// The judge and an archive upload each cut off by the death of the replica holding the
/// sandbox, through a replica that forwards to it: each answers a clear error at once, and
/// what was acknowledged before (files written, an attempt recorded) is all there when the
/// next replica takes the session over; what was not acknowledged left nothing half done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_judge_or_mid_upload_loses_no_acknowledged_write() {
    let pg = sandpit_testkit::postgres_url().await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut a = replica(root, "a", &pg, 1_900_302_000).await;
    let mut b = replica(root, "b", &pg, 1_900_302_300).await;
    let api = signup(&a, "hopper").await;
    let session = api.start_shell_basics(&a).await;

    // Acknowledged through B (forwarded to A, which holds the sandbox): a file, and an attempt.
    assert!(api.write(&b, &session, "kept.txt", "acknowledged\n").await);
    let (status, first) = api
        .call(
            &b,
            "POST",
            &format!("/api/v1/sessions/{session}/judge"),
            Some(json!({"step": "files"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    // A script the "script" step's checks run, slow enough to be judged when A dies.
    assert!(
        api.write(
            &b,
            &session,
            "greet.sh",
            "#!/bin/bash\nsleep 4\necho \"Hello, ${1:-sandpit}!\"\n",
        )
        .await
    );

    // Mid-judge: A is killed while its checks run.
    let judged = api.post_in_background(
        &b,
        &format!("/api/v1/sessions/{session}/judge"),
        json!({"step": "script"}),
    );
    // Its slow check has started by then.
    cut_off(judged, Duration::from_millis(1500), || a.kill()).await;

    // B takes over: the file and the recorded attempt are there; the cut-off judge recorded
    // nothing, and judging again records exactly one attempt.
    until_taken_over(&api, &b, &session).await;
    assert_eq!(
        api.read(&b, &session, "kept.txt").await,
        (StatusCode::OK, "acknowledged\n".to_owned())
    );
    let files = attempts_of(&api, &b, &session, "files").await;
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(files[0]["id"], first["id"]);
    assert!(attempts_of(&api, &b, &session, "script").await.is_empty());
    assert!(
        api.write(
            &b,
            &session,
            "greet.sh",
            "#!/bin/bash\necho \"Hello, ${1:-sandpit}!\"\n"
        )
        .await
    );
    let (status, out) = api
        .call(
            &b,
            "POST",
            &format!("/api/v1/sessions/{session}/exec"),
            Some(json!({"argv": ["chmod", "+x", "greet.sh"]})),
        )
        .await;
    assert_eq!((status, &out["exit_code"]), (StatusCode::OK, &json!(0)));
    let (status, judged) = api
        .call(
            &b,
            "POST",
            &format!("/api/v1/sessions/{session}/judge"),
            Some(json!({"step": "script"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{judged}");
    assert_eq!(judged["passed"], true, "{judged}");
    assert_eq!(attempts_of(&api, &b, &session, "script").await.len(), 1);

    // Mid-upload: C forwards an upload to B, which holds the sandbox now, and B is killed
    // with half the archive sent.
    let c = replica(root, "c", &pg, 1_900_302_600).await;
    let archive = incompressible_archive(root, 8, 256 << 10);
    let (status, body) = upload_cut_short(
        &c,
        &api.token,
        &session,
        &archive,
        archive.len() / 2,
        || b.kill(),
    )
    .await;
    assert!(status.contains(" 503 "), "{status}: {body}");
    assert_eq!(body["error"]["code"], "replica_unavailable", "{body}");

    // C takes over: everything acknowledged is there, nothing of the cut-off upload is, and
    // the upload sent again lands whole.
    until_taken_over(&api, &c, &session).await;
    assert_eq!(
        api.read(&c, &session, "kept.txt").await,
        (StatusCode::OK, "acknowledged\n".to_owned())
    );
    assert_eq!(
        api.read(&c, &session, "greet.sh").await,
        (
            StatusCode::OK,
            "#!/bin/bash\necho \"Hello, ${1:-sandpit}!\"\n".to_owned()
        )
    );
    assert_eq!(
        api.read(&c, &session, "upload/file-0.bin").await.0,
        StatusCode::NOT_FOUND
    );
    let res = api
        .http
        .post(c.url(&format!("/api/v1/sessions/{session}/archive")))
        .bearer_auth(&api.token)
        .header("content-type", "application/gzip")
        .body(archive)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let uploaded: Value = res.json().await.unwrap();
    assert_eq!(uploaded["bytes"], 8 * (256 << 10), "{uploaded}");
    let (status, out) = api
        .call(
            &c,
            "POST",
            &format!("/api/v1/sessions/{session}/exec"),
            Some(json!({"argv": ["sh", "-c", "cat upload/*.bin | wc -c"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(out["stdout"], format!("{}\n", 8 * (256 << 10)), "{out}");
    assert_eq!(running(&c).await, 1);
    assert_eq!(devices_backing(&image_of(root, &session)), 1);
}
