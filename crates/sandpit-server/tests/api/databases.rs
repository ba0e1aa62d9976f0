//! Per-user databases as a learner uses them: made, used by their deployed app through
//! `DATABASE_URL`, looked at in the viewer (tables, rows, a console that is read-only unless
//! asked), credentials rotated (PostgreSQL) — and never reachable by another user, through
//! the viewer or from an app.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Answer, TestApp};

const PATIENCE: Duration = Duration::from_secs(120);

/// Notes kept in the owner's database: SQLite through `DATABASE_PATH`, PostgreSQL through
/// `DATABASE_URL` (psycopg2), by the same routes.
const NOTES_APP: &str = r#"import os
import sqlite3

from fastapi import FastAPI

app = FastAPI()
URL = os.environ.get("DATABASE_URL", "")


def connect():
    if URL.startswith("postgresql://"):
        import psycopg2
        return psycopg2.connect(URL)
    return sqlite3.connect(os.environ["DATABASE_PATH"])


@app.post("/notes")
def add(text: str):
    con = connect()
    cur = con.cursor()
    cur.execute("CREATE TABLE IF NOT EXISTS notes (id SERIAL PRIMARY KEY, text TEXT NOT NULL)"
                if URL.startswith("postgresql://") else
                "CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL)")
    cur.execute("INSERT INTO notes (text) VALUES (%s)" if URL.startswith("postgresql://")
                else "INSERT INTO notes (text) VALUES (?)", (text,))
    con.commit()
    return {"added": text}


@app.get("/notes")
def notes():
    cur = connect().cursor()
    cur.execute("SELECT text FROM notes ORDER BY id")
    return [r[0] for r in cur.fetchall()]


@app.get("/tables")
def tables():
    cur = connect().cursor()
    if URL.startswith("postgresql://"):
        cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    else:
        cur.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")
    return sorted(r[0] for r in cur.fetchall())


@app.get("/reach")
def reach(database: str):
    import psycopg2
    try:
        psycopg2.connect(dbname=database)
    except Exception as e:
        return {"reached": False, "error": str(e)}
    return {"reached": True}


@app.get("/env")
def env():
    return {"url": URL, "data": sorted(os.listdir("/data")) if os.path.isdir("/data") else None}
"#;

async fn delete(app: &TestApp, path: &str, token: &str) -> Answer {
    app.send(app.client.delete(app.url(path)).bearer_auth(token))
        .await
}

/// Creates `name` and deploys the notes app to it; waits until it is live.
async fn deploy_notes(app: &TestApp, token: &str, name: &str) -> String {
    let created = app
        .post(
            "/api/v1/apps",
            Some(token),
            json!({"name": name, "runtime": "python"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    redeploy(app, token, &id).await;
    id
}

async fn redeploy(app: &TestApp, token: &str, id: &str) {
    let d = app
        .post(
            &format!("/api/v1/apps/{id}/deploy"),
            Some(token),
            json!({"files": {"main.py": NOTES_APP}}),
        )
        .await;
    assert_eq!(d.status, StatusCode::ACCEPTED, "{}", d.body);
    finished(app, token, d.body["job_id"].as_str().unwrap()).await;
}

/// Waits for a deploy job to complete.
async fn finished(app: &TestApp, token: &str, job: &str) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let j = app.get(&format!("/api/v1/jobs/{job}"), Some(token)).await;
        if j.body["state"] == "completed" {
            return;
        }
        assert!(
            !["failed", "cancelled"]
                .iter()
                .any(|s| j.body["state"] == *s),
            "deploy: {}",
            j.body
        );
        assert!(Instant::now() < deadline, "deploy still {}", j.body);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn visit(app: &TestApp, method: reqwest::Method, path: &str) -> Answer {
    app.send(app.client.request(method, app.url(path))).await
}

async fn query(app: &TestApp, token: &str, sql: &str, write: bool) -> Answer {
    app.post(
        "/api/v1/database/query",
        Some(token),
        json!({"sql": sql, "write": write}),
    )
    .await
}

/// The same learner's flow on either engine, up to the point where they differ.
async fn notes_kept_viewed_and_private(app: &TestApp, engine: &str) -> (String, String) {
    let (_, ada) = app.signup("ada").await;
    app.get("/api/v1/database", Some(&ada))
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    let made = app.post("/api/v1/database", Some(&ada), json!({})).await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    assert_eq!(made.body["database"]["engine"], engine, "{}", made.body);
    app.post("/api/v1/database", Some(&ada), json!({}))
        .await
        .expect_error(StatusCode::CONFLICT, "database_exists");
    let shown = app.get("/api/v1/database", Some(&ada)).await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.body);
    assert_eq!(shown.body["engine"], engine);
    assert_eq!(
        shown.body["rotated_at"],
        Value::Null,
        "never rotated: {}",
        shown.body
    );

    // The app keeps its notes in it.
    let notes_app = deploy_notes(app, &ada, "notes").await;
    for text in ["first", "second"] {
        let added = visit(
            app,
            reqwest::Method::POST,
            &format!("/user/ada/app/notes/notes?text={text}"),
        )
        .await;
        if added.status != StatusCode::OK {
            let logs = app
                .get(&format!("/api/v1/apps/{notes_app}/logs"), Some(&ada))
                .await;
            panic!(
                "{} {}\nthe app's log: {}",
                added.status, added.body, logs.body
            );
        }
    }
    let listed = visit(app, reqwest::Method::GET, "/user/ada/app/notes/notes").await;
    assert_eq!(listed.body, json!(["first", "second"]));

    // The viewer sees what the app wrote.
    let tables = app.get("/api/v1/database/tables", Some(&ada)).await;
    assert_eq!(tables.status, StatusCode::OK, "{}", tables.body);
    let notes = tables.body["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "notes")
        .unwrap_or_else(|| panic!("no notes table: {}", tables.body))
        .clone();
    assert_eq!(notes["kind"], "table");
    assert_eq!(notes["rows"], 2);
    let columns: Vec<&str> = notes["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(columns, ["id", "text"]);
    assert_eq!(notes["columns"][0]["primary_key"], true, "{notes}");
    let page = app
        .get(
            "/api/v1/database/tables/notes/rows?offset=1&limit=1",
            Some(&ada),
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_eq!(page.body["total"], 2);
    assert_eq!(page.body["rows"], json!([[2, "second"]]), "{}", page.body);
    app.get("/api/v1/database/tables/nothing/rows", Some(&ada))
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    app.get("/api/v1/database/tables/notes/rows?limit=0", Some(&ada))
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");

    // The console: read-only unless asked, one statement, the database's own messages.
    let selected = query(app, &ada, "SELECT text FROM notes WHERE id = 1", false).await;
    assert_eq!(selected.status, StatusCode::OK, "{}", selected.body);
    assert_eq!(selected.body["rows"], json!([["first"]]));
    assert_eq!(selected.body["columns"][0]["name"], "text");
    let refused = query(app, &ada, "DELETE FROM notes", false).await;
    let message = refused.expect_error(StatusCode::CONFLICT, "read_only");
    assert!(message.contains("write mode"), "{message}");
    let sneaky = query(app, &ada, "COMMIT; DELETE FROM notes", false).await;
    assert_eq!(
        sneaky.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        sneaky.body
    );
    let wrong = query(app, &ada, "SELECT * FROM missing_table", false).await;
    let message = wrong.expect_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert!(message.contains("missing_table"), "{message}");
    let written = query(
        app,
        &ada,
        "INSERT INTO notes (text) VALUES ('from the console')",
        true,
    )
    .await;
    assert_eq!(written.status, StatusCode::OK, "{}", written.body);
    assert_eq!(written.body["rows_affected"], 1, "{}", written.body);
    let listed = visit(app, reqwest::Method::GET, "/user/ada/app/notes/notes").await;
    assert_eq!(listed.body, json!(["first", "second", "from the console"]));
    // Rows changed are counted whatever the statement begins with.
    let cte = query(
        app,
        &ada,
        "WITH doomed AS (SELECT 1) DELETE FROM notes WHERE text = 'nothing of that text'",
        true,
    )
    .await;
    assert_eq!(cte.body["rows_affected"], 0, "{}", cte.body);
    let cte = query(
        app,
        &ada,
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3) \
         UPDATE notes SET text = text WHERE id IN (SELECT i FROM n)",
        true,
    )
    .await;
    assert_eq!(cte.body["rows_affected"], 3, "{}", cte.body);
    // Binary as its size and hex, in both engines' spelling of a literal.
    let blob = if engine == "postgres" {
        "SELECT decode('00ff', 'hex') AS b"
    } else {
        "SELECT x'00ff' AS b"
    };
    let blob = query(app, &ada, blob, false).await;
    assert_eq!(
        blob.body["rows"],
        json!([[{"bytes": 2, "hex": "00ff"}]]),
        "{}",
        blob.body
    );

    // Another user reaches none of it: not through the viewer, not from their app.
    let (_, bob) = app.signup("bob").await;
    for path in [
        "/api/v1/database",
        "/api/v1/database/tables",
        "/api/v1/database/tables/notes/rows",
    ] {
        app.get(path, Some(&bob))
            .await
            .expect_error(StatusCode::NOT_FOUND, "not_found");
    }
    query(app, &bob, "SELECT * FROM notes", false)
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    let made = app.post("/api/v1/database", Some(&bob), json!({})).await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    deploy_notes(app, &bob, "peek").await;
    let bobs = visit(app, reqwest::Method::GET, "/user/bob/app/peek/tables").await;
    assert_eq!(bobs.body, json!([]), "bob's app sees ada's tables");
    let tables = app.get("/api/v1/database/tables", Some(&bob)).await;
    assert_eq!(tables.body["tables"], json!([]), "{}", tables.body);
    (ada, bob)
}

#[tokio::test]
async fn a_sqlite_database_is_used_by_the_app_viewed_and_kept_private() {
    let app = TestApp::spawn().await;
    let (ada, bob) = notes_kept_viewed_and_private(&app, "sqlite").await;
    let env = visit(&app, reqwest::Method::GET, "/user/bob/app/peek/env").await;
    assert_eq!(
        env.body["url"], "sqlite:////data/app.sqlite",
        "{}",
        env.body
    );
    assert_eq!(env.body["data"], json!(["app.sqlite"]), "{}", env.body);
    app.post("/api/v1/database/rotate", Some(&ada), json!({}))
        .await
        .expect_error(StatusCode::CONFLICT, "no_credentials");

    // Deleted: gone from the viewer, and a new one starts empty.
    assert_eq!(
        delete(&app, "/api/v1/database", &ada).await.status,
        StatusCode::NO_CONTENT
    );
    app.get("/api/v1/database/tables", Some(&ada))
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    delete(&app, "/api/v1/database", &ada)
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    let again = app.post("/api/v1/database", Some(&ada), json!({})).await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.body);
    let tables = app.get("/api/v1/database/tables", Some(&ada)).await;
    assert_eq!(tables.body["tables"], json!([]), "{}", tables.body);
    // Bob's is untouched by all of that.
    let bobs = app.get("/api/v1/database", Some(&bob)).await;
    assert_eq!(bobs.status, StatusCode::OK, "{}", bobs.body);
}

#[tokio::test]
async fn a_postgres_database_is_a_role_of_its_own_with_rotated_credentials() {
    let admin = sandpit_testkit::admin_url().await.to_owned();
    let app = TestApp::spawn_with(|c| {
        c.user_databases.postgres_url = Some(secrecy::SecretString::from(admin.clone()));
    })
    .await;
    let (ada, bob) = notes_kept_viewed_and_private(&app, "postgres").await;
    let ada_db: Value = app.get("/api/v1/database", Some(&ada)).await.body;
    let ada_name = ada_db["name"].as_str().unwrap().to_owned();
    assert!(
        !ada_db.to_string().contains("password"),
        "the password is shown once only: {ada_db}"
    );

    // Bob's app, with bob's credentials, cannot open ada's database.
    let reach = visit(
        &app,
        reqwest::Method::GET,
        &format!("/user/bob/app/peek/reach?database={ada_name}"),
    )
    .await;
    assert_eq!(reach.body["reached"], false, "{}", reach.body);
    assert!(
        reach.body["error"]
            .as_str()
            .unwrap_or("")
            .contains("permission denied"),
        "{}",
        reach.body
    );

    // Rotation: a new password, shown once; the old one no longer admits anyone.
    let before = app
        .store()
        .user_database(
            app.get("/api/v1/auth/me", Some(&ada)).await.body["id"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap(),
        )
        .await
        .unwrap()
        .unwrap();
    let rotated = app
        .post("/api/v1/database/rotate", Some(&ada), json!({}))
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.body);
    let password = rotated.body["credentials"]["password"].as_str().unwrap();
    assert_ne!(Some(password), before.secret.as_deref());
    assert!(rotated.body["database"]["rotated_at"].is_string());
    let server: sqlx::postgres::PgConnectOptions = admin.parse().unwrap();
    let with = |password: &str| {
        server
            .clone()
            .username(&ada_name)
            .password(password)
            .database(&ada_name)
    };
    use sqlx::Connection;
    assert!(
        sqlx::PgConnection::connect_with(&with(before.secret.as_deref().unwrap()))
            .await
            .is_err(),
        "the old password still works"
    );
    sqlx::PgConnection::connect_with(&with(password))
        .await
        .expect("the new password works");
    // The running app was deployed again with it, and works on.
    let jobs = rotated.body["redeploys"].as_array().unwrap();
    assert_eq!(jobs.len(), 1, "{}", rotated.body);
    finished(&app, &ada, jobs[0].as_str().unwrap()).await;
    let listed = visit(&app, reqwest::Method::GET, "/user/ada/app/notes/notes").await;
    assert_eq!(listed.body, json!(["first", "second", "from the console"]));

    // Deleted: the role and the database are gone from the server.
    assert_eq!(
        delete(&app, "/api/v1/database", &ada).await.status,
        StatusCode::NO_CONTENT
    );
    assert!(
        sqlx::PgConnection::connect_with(&with(password))
            .await
            .is_err()
    );
    let _ = bob;
}
