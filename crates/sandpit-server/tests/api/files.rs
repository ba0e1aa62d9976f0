//! Workspace files through the API: reads and writes with ETags, tree, mkdir/move/delete,
//! archives, limits, and every spelling of a path that tries to leave the workspace.

use std::io::Read;

use reqwest::header::{ETAG, IF_MATCH, IF_NONE_MATCH};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Answer, TestApp};

struct Session<'a> {
    app: &'a TestApp,
    token: String,
    id: String,
}

impl Session<'_> {
    async fn start<'a>(app: &'a TestApp, token: &str) -> Session<'a> {
        let a = app.post("/api/v1/sessions", Some(token), json!({})).await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
        Session {
            app,
            token: token.to_owned(),
            id: a.body["id"].as_str().unwrap().to_owned(),
        }
    }

    fn url(&self, rest: &str) -> String {
        self.app.url(&format!("/api/v1/sessions/{}{rest}", self.id))
    }

    fn req(&self, method: Method, rest: &str) -> reqwest::RequestBuilder {
        self.app
            .client
            .request(method, self.url(rest))
            .bearer_auth(&self.token)
    }

    async fn put(&self, path: &str, body: impl Into<reqwest::Body>) -> Answer {
        self.app
            .send(self.req(Method::PUT, &format!("/files/{path}")).body(body))
            .await
    }

    async fn get_raw(&self, path: &str) -> reqwest::Response {
        self.req(Method::GET, &format!("/files/{path}"))
            .send()
            .await
            .unwrap()
    }

    async fn call(&self, method: Method, rest: &str) -> Answer {
        self.app.send(self.req(method, rest)).await
    }

    async fn sh(&self, script: &str) -> Value {
        let a = self
            .app
            .post(
                &format!("/api/v1/sessions/{}/exec", self.id),
                Some(&self.token),
                json!({"argv": ["/bin/sh", "-c", script]}),
            )
            .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        a.body
    }

    async fn tree(&self) -> Vec<(String, String)> {
        let a = self.call(Method::GET, "/files").await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        a.body["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["path"].as_str().unwrap().to_owned(),
                    e["kind"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }
}

#[tokio::test]
async fn files_round_trip_with_etags() {
    let app = TestApp::spawn().await;
    let (_, alice) = app.signup("alice").await;
    let s = Session::start(&app, &alice).await;
    // A new workspace holds the environment's default files.
    assert_eq!(s.tree().await, vec![("README.md".into(), "file".into())]);

    let created = s.put("src/main.py", "print('hi')\n").await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let tag = created.headers[ETAG].to_str().unwrap().to_owned();
    assert_eq!(created.body["etag"], tag.as_str());
    assert_eq!(created.body["size"], 12);

    let got = s.get_raw("src/main.py").await;
    assert_eq!(got.status(), StatusCode::OK);
    assert_eq!(got.headers()[ETAG].to_str().unwrap(), tag);
    assert_eq!(
        got.headers()["content-type"].to_str().unwrap(),
        "application/octet-stream"
    );
    assert!(
        got.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("sandbox")
    );
    assert_eq!(got.bytes().await.unwrap(), "print('hi')\n");
    let same = s
        .req(Method::GET, "/files/src/main.py")
        .header(IF_NONE_MATCH, &tag)
        .send()
        .await
        .unwrap();
    assert_eq!(same.status(), StatusCode::NOT_MODIFIED);

    // Optimistic concurrency: the current ETag writes, a stale one is refused.
    let updated = s
        .app
        .send(
            s.req(Method::PUT, "/files/src/main.py")
                .header(IF_MATCH, &tag)
                .body("print('v2')\n"),
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.body);
    let stale = s
        .app
        .send(
            s.req(Method::PUT, "/files/src/main.py")
                .header(IF_MATCH, &tag)
                .body("lost update"),
        )
        .await;
    stale.expect_error(StatusCode::PRECONDITION_FAILED, "precondition_failed");
    let exists = s
        .app
        .send(
            s.req(Method::PUT, "/files/src/main.py")
                .header(IF_NONE_MATCH, "*")
                .body("clobber"),
        )
        .await;
    exists.expect_error(StatusCode::PRECONDITION_FAILED, "precondition_failed");
    assert_eq!(s.sh("cat src/main.py").await["stdout"], "print('v2')\n");

    // Binary-safe, and what the API wrote is what programs see (and the other way round).
    let all: Vec<u8> = (0..=255u8).collect();
    assert_eq!(
        s.put("bin/all.dat", all.clone()).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        s.get_raw("bin/all.dat")
            .await
            .bytes()
            .await
            .unwrap()
            .to_vec(),
        all
    );
    assert_eq!(s.sh("wc -c < bin/all.dat").await["stdout"], "256\n");
    s.sh("printf 'from the terminal' > t.txt").await;
    assert_eq!(
        s.get_raw("t.txt").await.text().await.unwrap(),
        "from the terminal"
    );

    // mkdir, move, delete; a directory answers its tree.
    let made = s.call(Method::POST, "/files/docs/notes?op=mkdir").await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    assert_eq!(made.body["kind"], "dir");
    let moved = s
        .call(Method::POST, "/files/t.txt?op=move&to=docs/notes/t.txt")
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.body);
    let clash = s
        .call(Method::POST, "/files/bin/all.dat?op=move&to=src/main.py")
        .await;
    clash.expect_error(StatusCode::CONFLICT, "already_exists");
    let docs = s.call(Method::GET, "/files/docs").await;
    assert_eq!(
        docs.body["entries"][1]["path"], "docs/notes/t.txt",
        "{}",
        docs.body
    );
    s.call(Method::POST, "/files/x?op=explode")
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(
        s.call(Method::DELETE, "/files/docs").await.status,
        StatusCode::NO_CONTENT
    );
    s.call(Method::GET, "/files/docs/notes/t.txt")
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    s.call(Method::DELETE, "/files/docs")
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");

    // Default files come back only into an empty workspace.
    s.call(Method::POST, "/files/ensure-default")
        .await
        .expect_error(StatusCode::CONFLICT, "workspace_not_empty");
    s.sh("rm -rf /workspace/* /workspace/.[!.]*; true").await;
    let restored = s.call(Method::POST, "/files/ensure-default").await;
    assert_eq!(restored.body["restored"], 1, "{}", restored.body);
    assert_eq!(s.tree().await, vec![("README.md".into(), "file".into())]);
}

#[tokio::test]
async fn paths_that_leave_the_workspace_are_refused_in_every_spelling() {
    let app = TestApp::spawn().await;
    let (_, alice) = app.signup("alice").await;
    let s = Session::start(&app, &alice).await;
    let before = s.tree().await;
    let long = "a/".repeat(600);
    for (spelling, status) in [
        ("..%2f..%2fetc%2fpasswd", StatusCode::UNPROCESSABLE_ENTITY),
        (
            "a/..%2f..%2f..%2fetc/passwd",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        ("%2e%2e/%2e%2e/etc/passwd", StatusCode::UNPROCESSABLE_ENTITY),
        ("%2Fetc%2Fpasswd", StatusCode::UNPROCESSABLE_ENTITY),
        ("/etc/passwd", StatusCode::UNPROCESSABLE_ENTITY),
        ("..%5c..%5cetc%5cpasswd", StatusCode::UNPROCESSABLE_ENTITY),
        ("a%00b", StatusCode::UNPROCESSABLE_ENTITY),
        ("a%0ab", StatusCode::UNPROCESSABLE_ENTITY),
        (long.as_str(), StatusCode::UNPROCESSABLE_ENTITY),
        ("%ff%fe", StatusCode::BAD_REQUEST),
    ] {
        for method in [Method::GET, Method::PUT, Method::DELETE, Method::POST] {
            let rest = if method == Method::POST {
                format!("/files/{spelling}?op=mkdir")
            } else {
                format!("/files/{spelling}")
            };
            let a = s.call(method.clone(), &rest).await;
            // An HTTP client resolves `%2e%2e` itself; the request then names no file route
            // at all, which is as good (404), as long as it is an enveloped refusal.
            let resolved_by_client = spelling.contains("%2e") && a.status == StatusCode::NOT_FOUND;
            assert!(
                a.status == status || resolved_by_client,
                "{method} {spelling}: {} {}",
                a.status,
                a.body
            );
            assert!(a.body["error"]["code"].is_string(), "{}", a.body);
        }
    }
    // A move's destination is checked the same way.
    s.put("f.txt", "x").await;
    s.call(Method::POST, "/files/f.txt?op=move&to=../../escaped")
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert!(std::fs::metadata("/escaped").is_err());
    let mut after = before.clone();
    after.push(("f.txt".into(), "file".into()));
    assert_eq!(s.tree().await, after);
}

#[tokio::test]
async fn links_fifos_and_devices_made_in_the_terminal_lead_nowhere() {
    let app = TestApp::spawn().await;
    let (_, alice) = app.signup("alice").await;
    let s = Session::start(&app, &alice).await;
    let other = Session::start(&app, &alice).await;
    other.put("secret.txt", "other workspace").await;
    let data_dir = app.data_dir();
    s.sh(&format!(
        "ln -s /etc etc; ln -s /proc/1/root root; ln -s .. up; ln -s {} data; \
         ln -s /etc/passwd passwd; mkfifo pipe; mkdir d; ln -s /tmp d/tmp; true",
        data_dir.display()
    ))
    .await;
    for path in [
        "etc/passwd",
        "root/etc/shadow",
        "up/x",
        "data/sandpit.db",
        "passwd",
        "pipe",
        "d/tmp/x",
    ] {
        s.call(Method::GET, &format!("/files/{path}"))
            .await
            .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        s.put(path, "overwritten")
            .await
            .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    }
    for path in ["etc/hosts", "root/etc", "d/tmp/y"] {
        s.call(Method::DELETE, &format!("/files/{path}"))
            .await
            .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        s.call(Method::POST, &format!("/files/{path}?op=mkdir"))
            .await
            .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        s.call(Method::POST, &format!("/files/{path}?op=move&to=stolen"))
            .await
            .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    }
    s.call(Method::POST, "/files/README.md?op=move&to=etc/README.md")
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    // The tree lists links as links and goes no further.
    let tree = s.tree().await;
    assert!(tree.contains(&("etc".into(), "symlink".into())), "{tree:?}");
    assert!(tree.contains(&("pipe".into(), "other".into())), "{tree:?}");
    assert!(
        !tree
            .iter()
            .any(|(p, _)| p.starts_with("etc/") || p.starts_with("root/"))
    );
    // Deleting a link deletes the link, not what it points at.
    assert_eq!(
        s.call(Method::DELETE, "/files/passwd").await.status,
        StatusCode::NO_CONTENT
    );
    assert!(
        std::fs::read_to_string("/etc/passwd")
            .unwrap()
            .contains("root:")
    );
    // The archive holds links as links, never their targets.
    let archive = s.req(Method::GET, "/archive").send().await.unwrap();
    assert_eq!(archive.status(), StatusCode::OK);
    let bytes = archive.bytes().await.unwrap();
    let mut names = Vec::new();
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
    for e in tar.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let mut content = String::new();
        if e.header().entry_type().is_file() {
            e.read_to_string(&mut content).unwrap();
        }
        assert!(
            !content.contains("root:x:0:0"),
            "{name} carries a host file"
        );
        names.push(name);
    }
    assert!(names.iter().any(|n| n == "etc"), "{names:?}");
    assert!(!names.iter().any(|n| n.starts_with("etc/")), "{names:?}");
    assert!(!names.iter().any(|n| n == "pipe"), "{names:?}");
    // Nothing outside changed; the other workspace is untouched and invisible.
    assert_eq!(
        other.get_raw("secret.txt").await.text().await.unwrap(),
        "other workspace"
    );
    let found = s.sh("find / -name secret.txt 2>/dev/null; true").await;
    assert_eq!(found["stdout"], "");
}

fn tar_gz(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    for (name, data) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        // Raw name bytes, so hostile names get in as they are.
        let raw = &mut header.as_old_mut().name;
        raw[..name.len()].copy_from_slice(name.as_bytes());
        header.set_cksum();
        builder.append(&header, *data).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

#[tokio::test]
async fn archives_round_trip_and_hostile_ones_are_refused_whole() {
    let app = TestApp::spawn_with(|c| c.sessions.max_file_bytes = 1 << 20).await;
    let (_, alice) = app.signup("alice").await;
    let s = Session::start(&app, &alice).await;
    s.put("src/a.py", "print(1)\n").await;
    s.put("src/deep/b.txt", "b").await;
    let archive = s.req(Method::GET, "/archive").send().await.unwrap();
    assert_eq!(
        archive.headers()["content-disposition"].to_str().unwrap(),
        "attachment; filename=\"workspace.tar.gz\""
    );
    let bytes = archive.bytes().await.unwrap();

    let t = Session::start(&app, &alice).await;
    let up = t
        .app
        .send(t.req(Method::POST, "/archive").body(bytes.to_vec()))
        .await;
    assert_eq!(up.status, StatusCode::OK, "{}", up.body);
    assert_eq!(t.get_raw("src/deep/b.txt").await.text().await.unwrap(), "b");
    assert_eq!(s.tree().await, t.tree().await);

    let before = t.tree().await;
    for (name, archive, status, code) in [
        (
            "escape",
            tar_gz(&[("ok.txt", b"x"), ("../evil", b"x")]),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "absolute",
            tar_gz(&[("/etc/evil", b"x")]),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "big file",
            tar_gz(&[("big", &vec![0u8; (1 << 20) + 1])]),
            StatusCode::PAYLOAD_TOO_LARGE,
            "archive_too_large",
        ),
        (
            "garbage",
            b"definitely not gzip".to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
    ] {
        let a = t
            .app
            .send(t.req(Method::POST, "/archive").body(archive))
            .await;
        assert_eq!(a.status, status, "{name}: {}", a.body);
        assert_eq!(a.body["error"]["code"], code, "{name}: {}", a.body);
        assert_eq!(t.tree().await, before, "{name} left something behind");
    }
    assert!(std::fs::metadata("/etc/evil").is_err());
}

#[tokio::test]
async fn file_size_and_workspace_limits_answer_413_naming_the_limit() {
    let app = TestApp::spawn_with(|c| {
        c.sessions.max_file_bytes = 1024;
        c.sessions.workspace_mb = 8;
        c.sessions.max_files = 40;
    })
    .await;
    let (_, alice) = app.signup("alice").await;
    let s = Session::start(&app, &alice).await;
    let message = s
        .put("big.bin", vec![b'x'; 1025])
        .await
        .expect_error(StatusCode::PAYLOAD_TOO_LARGE, "file_too_large");
    assert!(message.contains("max_file_bytes"), "{message}");
    assert_eq!(
        s.put("ok.bin", vec![b'x'; 1024]).await.status,
        StatusCode::CREATED
    );
    // Reading a file bigger than the API's limit (made in the terminal) is refused too.
    s.sh("head -c 5000 /dev/zero > made.bin").await;
    s.call(Method::GET, "/files/made.bin")
        .await
        .expect_error(StatusCode::PAYLOAD_TOO_LARGE, "too_large");
    // Entries run out however they are made.
    let mut refused = None;
    for i in 0..60 {
        let a = s.call(Method::POST, &format!("/files/d{i}?op=mkdir")).await;
        if a.status != StatusCode::CREATED {
            refused = Some(a);
            break;
        }
    }
    let refused = refused.expect("the entry limit never answered");
    let message = refused.expect_error(StatusCode::PAYLOAD_TOO_LARGE, "workspace_full");
    assert!(message.contains("max_files"), "{message}");
    // The session still works.
    assert_eq!(s.sh("echo alive").await["stdout"], "alive\n");
}
