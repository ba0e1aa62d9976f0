//! Projects over real HTTP: create from a template, the virtual file system (ETags and
//! preconditions, directories, moves, limits), archives both ways (hostile ones refused
//! whole), and the round trip through a real session: open, edit in the workspace, save back.

use std::io::Read;

use reqwest::StatusCode;
use reqwest::header::{ETAG, IF_MATCH, IF_NONE_MATCH};
use serde_json::{Value, json};

use crate::helpers::{Answer, TestApp};

async fn create(app: &TestApp, token: &str, body: Value) -> String {
    let a = app.post("/api/v1/projects", Some(token), body).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    a.body["id"].as_str().unwrap().to_owned()
}

fn paths(tree: &Answer) -> Vec<(String, String)> {
    tree.body["entries"]
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

async fn put(app: &TestApp, token: &str, project: &str, path: &str, body: &str) -> Answer {
    app.send(
        app.client
            .put(app.url(&format!("/api/v1/projects/{project}/files/{path}")))
            .bearer_auth(token)
            .body(body.to_owned()),
    )
    .await
}

async fn read(app: &TestApp, token: &str, project: &str, path: &str) -> Answer {
    app.get(
        &format!("/api/v1/projects/{project}/files/{path}"),
        Some(token),
    )
    .await
}

fn tar_gz(entries: &[(&str, &[u8], bool)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    for (path, data, link) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        if *link {
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_size(0);
            builder
                .append_link(&mut header, path, "/etc/passwd")
                .unwrap();
        } else {
            header.set_size(data.len() as u64);
            builder.append_data(&mut header, path, *data).unwrap();
        }
    }
    builder.into_inner().unwrap().finish().unwrap()
}

#[tokio::test]
async fn a_project_from_a_template_with_versioned_files() {
    let app = TestApp::spawn().await;
    let (_, alice) = app.signup("alice").await;
    let (_, bob) = app.signup("bob").await;
    let id = create(
        &app,
        &alice,
        json!({"name": "Greeter", "description": "says hi", "template": "python"}),
    )
    .await;
    let project = app
        .get(&format!("/api/v1/projects/{id}"), Some(&alice))
        .await;
    assert_eq!(project.body["files"], 2, "{}", project.body);
    assert_eq!(project.body["template"], "python");
    let tree = app
        .get(&format!("/api/v1/projects/{id}/files"), Some(&alice))
        .await;
    assert_eq!(
        paths(&tree),
        [
            ("main.py".to_owned(), "file".to_owned()),
            ("test_main.py".to_owned(), "file".to_owned())
        ]
    );

    // Versions: If-Match writes only over the version read; If-None-Match: * only anew.
    let main = read(&app, &alice, &id, "main.py").await;
    assert_eq!(main.status, StatusCode::OK);
    assert!(main.body.as_str().unwrap().contains("def greet"));
    assert_eq!(main.headers["content-type"], "application/octet-stream");
    let tag = main.headers[ETAG].to_str().unwrap().to_owned();
    let path = app.url(&format!("/api/v1/projects/{id}/files/main.py"));
    let write = |body: &str| {
        app.client
            .put(&path)
            .bearer_auth(&alice)
            .body(body.to_owned())
    };
    let a = app.send(write("v2").header(IF_MATCH, &tag)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    app.send(write("v3").header(IF_MATCH, &tag))
        .await
        .expect_error(StatusCode::PRECONDITION_FAILED, "precondition_failed");
    app.send(write("v3").header(IF_NONE_MATCH, "*"))
        .await
        .expect_error(StatusCode::PRECONDITION_FAILED, "precondition_failed");
    let unchanged = app
        .send(
            app.client
                .get(&path)
                .bearer_auth(&alice)
                .header(IF_NONE_MATCH, a.headers[ETAG].to_str().unwrap()),
        )
        .await;
    assert_eq!(unchanged.status, StatusCode::NOT_MODIFIED);

    // Directories are implied; a path is a file or a directory.
    let made = put(&app, &alice, &id, "app/models/user.py", "class User: pass").await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    put(&app, &alice, &id, "app", "x")
        .await
        .expect_error(StatusCode::CONFLICT, "is_a_directory");
    put(&app, &alice, &id, "main.py/inner", "x")
        .await
        .expect_error(StatusCode::CONFLICT, "not_a_directory");
    let dir = read(&app, &alice, &id, "app").await;
    assert_eq!(
        paths(&dir),
        [
            ("app/models".to_owned(), "dir".to_owned()),
            ("app/models/user.py".to_owned(), "file".to_owned())
        ]
    );
    let moved = app
        .post(
            &format!("/api/v1/projects/{id}/files/app?op=move&to=src/app"),
            Some(&alice),
            json!({}),
        )
        .await;
    assert_eq!(moved.body, json!({"path": "src/app", "files": 1}));
    app.post(
        &format!("/api/v1/projects/{id}/files/src?op=move&to=src/inner"),
        Some(&alice),
        json!({}),
    )
    .await
    .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(
        read(&app, &alice, &id, "src/app/models/user.py").await.body,
        "class User: pass"
    );
    let gone = app
        .call(
            reqwest::Method::DELETE,
            &format!("/api/v1/projects/{id}/files/src"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);
    read(&app, &alice, &id, "src/app/models/user.py")
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    read(&app, &alice, &id, "%2E%2E%2Fetc%2Fpasswd")
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");

    // Names: unique per user ignoring case, free across users; projects are their owner's.
    app.post("/api/v1/projects", Some(&alice), json!({"name": "greeter"}))
        .await
        .expect_error(StatusCode::CONFLICT, "conflict");
    app.post(
        "/api/v1/projects",
        Some(&alice),
        json!({"name": "x", "template": "cobol"}),
    )
    .await
    .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    create(&app, &bob, json!({"name": "Greeter"})).await;
    for path in [
        format!("/api/v1/projects/{id}"),
        format!("/api/v1/projects/{id}/files"),
        format!("/api/v1/projects/{id}/files/main.py"),
        format!("/api/v1/projects/{id}/archive"),
    ] {
        app.get(&path, Some(&bob))
            .await
            .expect_error(StatusCode::NOT_FOUND, "not_found");
    }
    put(&app, &bob, &id, "evil.py", "x")
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    let listed = app.get("/api/v1/projects", Some(&bob)).await;
    assert_eq!(listed.body["projects"].as_array().unwrap().len(), 1);

    let renamed = app
        .call(
            reqwest::Method::PATCH,
            &format!("/api/v1/projects/{id}"),
            Some(&alice),
            Some(json!({"name": "Greeter 2"})),
        )
        .await;
    assert_eq!(renamed.body["name"], "Greeter 2", "{}", renamed.body);
    let deleted = app
        .call(
            reqwest::Method::DELETE,
            &format!("/api/v1/projects/{id}"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    app.get(&format!("/api/v1/projects/{id}"), Some(&alice))
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn archives_go_both_ways_and_hostile_ones_are_refused_whole() {
    let app = TestApp::spawn_with(|c| {
        c.projects.max_files = 3;
        c.projects.max_file_bytes = 1000;
        c.projects.max_bytes = 2000;
    })
    .await;
    let (_, alice) = app.signup("alice").await;
    let id = create(&app, &alice, json!({"name": "web", "template": "web"})).await;
    let upload = |bytes: Vec<u8>| {
        app.client
            .post(app.url(&format!("/api/v1/projects/{id}/archive")))
            .bearer_auth(&alice)
            .header("content-type", "application/gzip")
            .body(bytes)
    };
    let ok = app
        .send(upload(tar_gz(&[("js/app.js", b"console.log(1)", false)])))
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    assert_eq!(ok.body, json!({"files": 1, "bytes": 14}));

    for (archive, status, code) in [
        (
            tar_gz(&[("a.txt", b"a", false), ("link", b"", true)]),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            b"not an archive".to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            tar_gz(&[("big.bin", &[b'x'; 1001], false)]),
            StatusCode::PAYLOAD_TOO_LARGE,
            "archive_too_large",
        ),
        (
            tar_gz(&[("b.txt", b"b", false), ("c.txt", b"c", false)]),
            StatusCode::PAYLOAD_TOO_LARGE,
            "project_full",
        ),
    ] {
        app.send(upload(archive)).await.expect_error(status, code);
    }
    put(&app, &alice, &id, "d.txt", "too many")
        .await
        .expect_error(StatusCode::PAYLOAD_TOO_LARGE, "project_full");
    put(&app, &alice, &id, "index.html", &"x".repeat(1001))
        .await
        .expect_error(StatusCode::PAYLOAD_TOO_LARGE, "file_too_large");

    // Nothing of the refused uploads landed; the download holds exactly the files.
    let res = app
        .client
        .get(app.url(&format!("/api/v1/projects/{id}/archive")))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["content-type"], "application/gzip");
    let bytes = res.bytes().await.unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes.as_ref()));
    let mut names: Vec<(String, String)> = archive
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let name = e.path().unwrap().display().to_string();
            let mut content = String::new();
            e.read_to_string(&mut content).unwrap();
            (name, content)
        })
        .collect();
    names.sort();
    let names: Vec<&str> = names.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["index.html", "js/app.js", "style.css"]);
}

#[tokio::test]
async fn a_project_opens_as_a_session_and_is_saved_back() {
    let app = TestApp::spawn().await;
    let (_, alice) = app.signup("alice").await;
    let (_, bob) = app.signup("bob").await;
    let id = create(&app, &alice, json!({"name": "p", "template": "python"})).await;
    let opened = app
        .post(
            &format!("/api/v1/projects/{id}/open"),
            Some(&alice),
            json!({}),
        )
        .await;
    assert_eq!(opened.status, StatusCode::CREATED, "{}", opened.body);
    assert_eq!(opened.body["files"], 2);
    let session = opened.body["session"]["id"].as_str().unwrap().to_owned();

    // The workspace holds the project's files (and not the environment's default README),
    // and its tests run there.
    let files = app
        .get(&format!("/api/v1/sessions/{session}/files"), Some(&alice))
        .await;
    let mut listed: Vec<&str> = files.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .filter(|p| !p.starts_with("lost+found"))
        .collect();
    listed.sort_unstable();
    assert_eq!(listed, ["main.py", "test_main.py"]);
    let exec = app
        .post(
            &format!("/api/v1/sessions/{session}/exec"),
            Some(&alice),
            json!({"argv": ["python3", "-m", "unittest", "-q"]}),
        )
        .await;
    assert_eq!(exec.body["exit_code"], 0, "{}", exec.body);

    // Edited in the workspace (a new file, a link the project cannot hold), then saved.
    let edited = app
        .send(
            app.client
                .put(app.url(&format!("/api/v1/sessions/{session}/files/notes/todo.md")))
                .bearer_auth(&alice)
                .body("- ship it"),
        )
        .await;
    assert_eq!(edited.status, StatusCode::CREATED);
    app.post(
        &format!("/api/v1/sessions/{session}/exec"),
        Some(&alice),
        json!({"argv": ["ln", "-s", "/etc/passwd", "passwd"]}),
    )
    .await;
    let save = format!("/api/v1/projects/{id}/save");
    app.post(&save, Some(&bob), json!({"session_id": session}))
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    let saved = app
        .post(&save, Some(&alice), json!({"session_id": session}))
        .await;
    assert_eq!(saved.status, StatusCode::OK, "{}", saved.body);
    assert_eq!(saved.body["skipped"], json!(["passwd"]));
    assert_eq!(
        read(&app, &alice, &id, "notes/todo.md").await.body,
        "- ship it"
    );
    let tree = app
        .get(&format!("/api/v1/projects/{id}/files"), Some(&alice))
        .await;
    assert!(!paths(&tree).iter().any(|(p, _)| p == "passwd"));

    // Another user's session cannot be saved into one's project either.
    let bobs = app.post("/api/v1/sessions", Some(&bob), json!({})).await;
    let bobs = bobs.body["id"].as_str().unwrap();
    app.post(&save, Some(&alice), json!({"session_id": bobs}))
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
}
