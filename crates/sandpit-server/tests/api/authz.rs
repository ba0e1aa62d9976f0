//! The authorization matrix (issue 17): every operation of the OpenAPI document the server
//! serves, called by an anonymous caller, another learner, an admin and the learner who owns
//! real resources — and, for every state change, by the owner's cookie from a foreign page.
//! The operations come from the document, not from a list here, so a route added later is
//! covered by construction: a path or query parameter or a request body this file has no
//! fixture for fails the test and says which fixture to add.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::StreamExt;
use reqwest::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::helpers::{Answer, TestApp};

/// A page of another site (the attacker's).
const EVIL: &str = "http://evil.example";
/// The password `TestApp::signup` gives every account.
const PASSWORD: &str = "correct horse battery";
/// Guards a WebSocket read against a hang; not a timing assertion.
const PATIENCE: Duration = Duration::from_secs(30);

/// Answers other than 2xx/3xx that are right for a caller entitled to the operation, and why.
/// `(operation, who, status, code, why)`.
const NOT_SUCCESS: &[(&str, Whom, u16, &str, &str)] = &[
    (
        "POST /api/v1/sessions/{id}/files/ensure-default",
        Whom::Owner,
        409,
        "workspace_not_empty",
        "it only fills an empty workspace, and the owner's holds the fixture files",
    ),
    (
        "GET /api/v1/auth/github/callback",
        Whom::Everyone,
        400,
        "bad_request",
        "no sign-in with GitHub was started, so there is no OAuth state to match",
    ),
    (
        "POST /api/v1/jobs/{id}/cancel",
        Whom::Owner,
        409,
        "job_finished",
        "the owner's job (its asynchronous run) has finished before the matrix starts",
    ),
    (
        "POST /api/v1/jobs/{id}/accept",
        Whom::Owner,
        409,
        "not_a_change_set",
        "the owner's job is an asynchronous run, not a code job with changes to accept",
    ),
    (
        "GET /api/v1/labs/{slug}/active",
        Whom::Others,
        404,
        "not_found",
        "the others have no live session of the lab (the slug is nobody's thing)",
    ),
    (
        "GET /api/v1/database",
        Whom::Others,
        404,
        "not_found",
        "the others have no database of their own yet (the owner's is never theirs to see)",
    ),
    (
        "POST /api/v1/database",
        Whom::Owner,
        409,
        "database_exists",
        "the owner made theirs in the fixtures: one per user",
    ),
    (
        "POST /api/v1/database/query",
        Whom::Others,
        422,
        "validation_failed",
        "their own (new) databases have no table of the owner's: the statement names one",
    ),
    (
        "POST /api/v1/database/rotate",
        Whom::Everyone,
        409,
        "no_credentials",
        "the databases here are SQLite files, which have no credentials to rotate",
    ),
    (
        "POST /api/v1/apps/{id}/rollback",
        Whom::Owner,
        409,
        "version_pending",
        "the owner's deploy (called just before it) may still be deploying: one at a time",
    ),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Whom {
    Owner,
    Others,
    Everyone,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Anonymous,
    Another,
    Admin,
    Owner,
}

impl Who {
    fn name(self) -> &'static str {
        match self {
            Who::Anonymous => "anonymous",
            Who::Another => "another user",
            Who::Admin => "admin",
            Who::Owner => "owner",
        }
    }

    fn is(self, whom: Whom) -> bool {
        match whom {
            Whom::Owner => self == Who::Owner,
            Whom::Others => self != Who::Owner,
            Whom::Everyone => true,
        }
    }
}

/// The matrix's callers, the owner last: their call may change or delete the thing the others
/// were refused.
const CALLERS: [Who; 4] = [Who::Anonymous, Who::Another, Who::Admin, Who::Owner];

struct Account {
    username: String,
    id: String,
    /// The sign-in session token the matrix calls with (never logged out).
    token: String,
}

impl Account {
    async fn signup(app: &TestApp, username: &str) -> Self {
        Self::from(username, app.signup(username).await)
    }

    async fn admin(app: &TestApp, username: &str) -> Self {
        Self::from(username, app.admin(username).await)
    }

    fn from(username: &str, (user, token): (Value, String)) -> Self {
        Self {
            username: username.to_owned(),
            id: user["id"].as_str().unwrap().to_owned(),
            token,
        }
    }
}

struct Param {
    name: String,
    location: String,
    required: bool,
}

/// One operation of the document.
struct Operation {
    /// `METHOD /path/{template}`, as the table prints it.
    key: String,
    method: Method,
    template: String,
    doc: Value,
    params: Vec<Param>,
    /// It has a non-empty `security`: signed-in callers only.
    secured: bool,
    /// `x-sandpit-role: admin`.
    admin_only: bool,
    /// The statuses its `responses` list.
    statuses: BTreeSet<u16>,
}

impl Operation {
    fn websocket(&self) -> bool {
        self.statuses.contains(&101)
    }

    fn changes_state(&self) -> bool {
        !matches!(self.method, Method::GET | Method::HEAD | Method::OPTIONS)
    }

    fn tagged(&self, tag: &str) -> bool {
        self.doc["tags"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t == tag))
    }

    fn has_query(&self, name: &str) -> bool {
        self.params
            .iter()
            .any(|p| p.location == "query" && p.name == name)
    }
}

fn operations(doc: &Value) -> Vec<Operation> {
    const METHODS: [&str; 8] = [
        "get", "put", "post", "delete", "patch", "head", "options", "trace",
    ];
    let default_security = doc.get("security");
    let mut ops = Vec::new();
    for (template, item) in doc["paths"].as_object().expect("the document has paths") {
        let shared = item["parameters"].as_array().cloned().unwrap_or_default();
        for (method, op) in item.as_object().unwrap() {
            if !METHODS.contains(&method.as_str()) {
                continue;
            }
            let mut params: Vec<Param> = Vec::new();
            // The operation's own parameters override the path item's.
            for p in op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .chain(&shared)
            {
                let (name, location) = (p["name"].as_str().unwrap(), p["in"].as_str().unwrap());
                if !params
                    .iter()
                    .any(|q| q.name == name && q.location == location)
                {
                    params.push(Param {
                        name: name.to_owned(),
                        location: location.to_owned(),
                        required: p["required"].as_bool().unwrap_or(false),
                    });
                }
            }
            // `{}` in `security` would mean "signed in or not"; that is a public operation.
            let secured = op
                .get("security")
                .or(default_security)
                .and_then(Value::as_array)
                .is_some_and(|s| {
                    !s.is_empty()
                        && s.iter()
                            .all(|r| r.as_object().is_some_and(|r| !r.is_empty()))
                });
            let statuses = op["responses"]
                .as_object()
                .unwrap_or_else(|| panic!("{method} {template} has no responses"))
                .keys()
                .map(|s| {
                    s.parse()
                        .unwrap_or_else(|_| panic!("{method} {template}: status {s:?}"))
                })
                .collect();
            ops.push(Operation {
                key: format!("{} {template}", method.to_uppercase()),
                method: method.to_uppercase().parse().unwrap(),
                template: template.clone(),
                admin_only: op["x-sandpit-role"] == "admin",
                doc: op.clone(),
                params,
                secured,
                statuses,
            });
        }
    }
    ops
}

/// The owner's things, and the rest the calls need.
struct Fixtures {
    owner: Account,
    another: Account,
    admin: Account,
    /// A learner whose role the admin-only operation changes (so no caller's role moves).
    bystander: Account,
    session: String,
    /// A live session the owner's DELETE ends, so `session` outlives the matrix.
    doomed_session: String,
    lab: String,
    lab_session: String,
    token: String,
    token_secret: String,
    doomed_token: String,
    run: String,
    attempt: String,
    share: String,
    /// The owner's project (with `FILE`, `DOOMED_FILE` and `MOVABLE`), one its DELETE ends,
    /// and one a session is saved into (which replaces its files).
    project: String,
    doomed_project: String,
    saved_project: String,
    /// The owner's app with two versions deployed (the second live), and one its DELETE ends.
    app_id: String,
    doomed_app: String,
    /// A row in the owner's database (in `DB_TABLE`).
    db_content: String,
    /// In `session` (and written over with the same bytes by the owner's PUT).
    file_content: String,
    archive: Vec<u8>,
    signups: Cell<u32>,
}

const FILE: &str = "notes.txt";
const DOOMED_FILE: &str = "doomed.txt";
/// Where the owner's `POST …/files/{path}?op=mkdir` makes a directory.
const NEW_DIR: &str = "made-by-the-matrix";
/// What the owner's `POST /projects/{id}/files/{path}?op=move` moves, and where.
const MOVABLE: &str = "movable.txt";
const MOVED: &str = "moved.txt";
/// The table in the owner's database.
const DB_TABLE: &str = "matrix_notes";
/// What the owner's static apps serve.
const STATIC_PAGE: &str = "<!doctype html><title>matrix</title><p>served by the matrix</p>\n";

/// A resolved call: the URL path with its query, and whether it names one of the owner's
/// things.
struct Target {
    path: String,
    owned: bool,
}

enum Payload {
    Json(Value),
    Raw(String, Vec<u8>),
}

fn missing(op: &Operation, what: String) -> String {
    format!(
        "{}: no fixture for {what}: add one to `Fixtures` in tests/api/authz.rs",
        op.key
    )
}

impl Fixtures {
    fn account(&self, who: Who) -> Option<&Account> {
        match who {
            Who::Anonymous => None,
            Who::Another => Some(&self.another),
            Who::Admin => Some(&self.admin),
            Who::Owner => Some(&self.owner),
        }
    }

    /// Strings no one but the owner may ever be shown.
    fn secrets(&self) -> Vec<(&'static str, &str)> {
        vec![
            ("the owner's session id", &self.session),
            ("the owner's doomed session id", &self.doomed_session),
            ("the owner's lab session id", &self.lab_session),
            ("the owner's token id", &self.token),
            ("the owner's token secret", &self.token_secret),
            ("the owner's doomed token id", &self.doomed_token),
            ("the owner's run id", &self.run),
            ("the owner's attempt id", &self.attempt),
            ("the owner's share token", &self.share),
            ("the owner's project id", &self.project),
            ("the owner's doomed project id", &self.doomed_project),
            ("the owner's saved project id", &self.saved_project),
            ("the owner's app id", &self.app_id),
            ("the owner's doomed app id", &self.doomed_app),
            ("the owner's database content", &self.db_content),
            ("the owner's sign-in token", &self.owner.token),
            ("the owner's user id", &self.owner.id),
            ("the owner's file content", &self.file_content),
        ]
    }

    /// A path parameter's value, by the collection it follows (`/sessions/{id}` is a session),
    /// and whether it is the owner's. `doomed`: the operation deletes what it names.
    fn path_value(
        &self,
        op: &Operation,
        collection: &str,
        name: &str,
        doomed: bool,
    ) -> Result<(String, bool), String> {
        let kind = |k: &str| {
            if doomed {
                Err(missing(
                    op,
                    format!("a doomed {k} (it deletes one, and the matrix's own must survive)"),
                ))
            } else {
                Ok(())
            }
        };
        Ok(match (collection, name) {
            ("sessions", "id") if doomed => (self.doomed_session.clone(), true),
            // Judging and hints need a lab's session; every sessions route works on it too.
            ("sessions", "id") if op.tagged("labs") => (self.lab_session.clone(), true),
            ("sessions", "id") => (self.session.clone(), true),
            ("projects", "id") if doomed => (self.doomed_project.clone(), true),
            ("projects", "id") if op.template.ends_with("/save") => {
                (self.saved_project.clone(), true)
            }
            ("projects", "id") => (self.project.clone(), true),
            // A project's only POST on a path moves it.
            ("files", "path")
                if op.method == Method::POST && op.template.starts_with("/api/v1/projects") =>
            {
                (MOVABLE.to_owned(), true)
            }
            // The owner's table; in anyone else's database there is none of that name.
            ("tables", "name") => (DB_TABLE.to_owned(), true),
            ("apps", "id") if doomed => (self.doomed_app.clone(), true),
            ("apps", "id") => (self.app_id.clone(), true),
            ("tokens", "id") if doomed => (self.doomed_token.clone(), true),
            ("tokens", "id") => (self.token.clone(), true),
            ("runs", "id") => {
                kind("run")?;
                (self.run.clone(), true)
            }
            // An asynchronous run is a job.
            ("jobs", "id") => {
                kind("job")?;
                (self.run.clone(), true)
            }
            ("attempts", "id") => {
                kind("attempt")?;
                (self.attempt.clone(), true)
            }
            // Not the owner: the admin's change must not move a caller of the matrix.
            ("users", "id") => {
                kind("user")?;
                (self.bystander.id.clone(), false)
            }
            // Labs are the catalog's, nobody's thing.
            ("labs", "slug") => {
                kind("lab")?;
                (self.lab.clone(), false)
            }
            ("files", "path") if doomed => (DOOMED_FILE.to_owned(), true),
            // A POST on a path makes something new there (`?op=mkdir`).
            ("files", "path") if op.method == Method::POST => (NEW_DIR.to_owned(), true),
            ("files", "path") => (FILE.to_owned(), true),
            _ => {
                return Err(missing(
                    op,
                    format!("path parameter `{name}` after `/{collection}/`"),
                ));
            }
        })
    }

    /// A query parameter's value; optional ones without a fixture are left out.
    fn query_value(&self, op: &Operation, name: &str) -> Option<String> {
        let project = op.template.starts_with("/api/v1/projects");
        Some(match name {
            // A project's files have one: move (`MOVABLE`, a file of its own).
            "op" if project => "move".to_owned(),
            "to" if project => MOVED.to_owned(),
            // In a workspace, make a directory (a move would take the fixture file away).
            "op" => "mkdir".to_owned(),
            // Ended sessions too, so a list shows everything it could leak.
            "all" => "true".to_owned(),
            // Filters naming the owner's things must not let anyone else see them.
            "session" => self.lab_session.clone(),
            "lab" => self.lab.clone(),
            _ => return None,
        })
    }

    fn target(&self, op: &Operation) -> Result<Target, String> {
        let segments: Vec<&str> = op.template.split('/').collect();
        let last_param = segments.iter().rposition(|s| s.starts_with('{'));
        let mut owned = false;
        let mut path = Vec::new();
        for (i, segment) in segments.iter().enumerate() {
            let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) else {
                if segment.contains('{') {
                    return Err(missing(op, format!("the path segment `{segment}`")));
                }
                path.push((*segment).to_owned());
                continue;
            };
            let collection = if i > 0 { segments[i - 1] } else { "" };
            let doomed = op.method == Method::DELETE && Some(i) == last_param;
            let (value, is_owned) = self.path_value(op, collection, name, doomed)?;
            owned |= is_owned;
            path.push(value);
        }
        let mut path = path.join("/");
        let mut query = Vec::new();
        for p in op.params.iter().filter(|p| p.location == "query") {
            match self.query_value(op, &p.name) {
                Some(v) => query.push(format!("{}={v}", p.name)),
                None if p.required => {
                    return Err(missing(op, format!("query parameter `{}`", p.name)));
                }
                None => {}
            }
        }
        if !query.is_empty() {
            path = format!("{path}?{}", query.join("&"));
        }
        for p in &op.params {
            if p.location == "header" && p.required {
                return Err(missing(op, format!("header `{}`", p.name)));
            }
        }
        Ok(Target { path, owned })
    }

    /// The request body, by schema (JSON) or by operation (other media types).
    fn body(&self, op: &Operation) -> Result<Option<Payload>, String> {
        let Some(content) = op.doc["requestBody"]["content"].as_object() else {
            return Ok(None);
        };
        if let Some(media) = content.get("application/json") {
            let schema = media["schema"]["$ref"]
                .as_str()
                .and_then(|r| r.rsplit('/').next());
            let Some(schema) = schema else {
                return Err(missing(op, "its inline JSON body".into()));
            };
            let body = match schema {
                "SignupRequest" => {
                    let n = self.signups.get() + 1;
                    self.signups.set(n);
                    json!({"username": format!("matrix-signup-{n}"), "password": PASSWORD})
                }
                "LoginRequest" => {
                    json!({"username": self.bystander.username, "password": PASSWORD})
                }
                "CreateToken" => json!({"name": "matrix"}),
                "SetRole" => json!({"role": "author"}),
                "RunRequest" => json!({
                    "runtime": "bash",
                    "files": [{"name": "main.sh", "content": "echo matrix"}],
                }),
                "CreateSession" | "ExtendSession" | "JudgeRequest" | "HintRequest" => json!({}),
                // A file appears if it runs, so a forged exec would show in the workspace.
                "ExecRequest" => json!({"argv": ["touch", "exec-ran"]}),
                "ExplainRequest" => json!({"topic": "pipes"}),
                "CreateProject" => {
                    let n = self.signups.get() + 1;
                    self.signups.set(n);
                    json!({"name": format!("matrix project {n}")})
                }
                "UpdateProject" => json!({"description": "changed by the matrix"}),
                "OpenProject" => json!({}),
                "SaveProject" => json!({"session_id": self.session}),
                // No model is configured: it fails at once, changing nothing of the owner's.
                "CreateAgentJob" => json!({"kind": "research", "input": {"prompt": "matrix"}}),
                "CreateApp" => {
                    let n = self.signups.get() + 1;
                    self.signups.set(n);
                    json!({"name": format!("matrix-{n}"), "runtime": "static"})
                }
                "UpdateApp" => json!({"pinned": true}),
                "DeployRequest" => json!({"files": {"index.html": STATIC_PAGE}}),
                "RollbackRequest" => json!({}),
                "QueryRequest" => json!({"sql": format!("SELECT * FROM {DB_TABLE}")}),
                other => return Err(missing(op, format!("a JSON body of schema `{other}`"))),
            };
            return Ok(Some(Payload::Json(body)));
        }
        let media = content.keys().next().cloned().unwrap_or_default();
        let bytes = match op.key.as_str() {
            "PUT /api/v1/sessions/{id}/files/{path}" => self.file_content.clone().into_bytes(),
            "POST /api/v1/sessions/{id}/archive" | "POST /api/v1/projects/{id}/archive" => {
                self.archive.clone()
            }
            "PUT /api/v1/projects/{id}/files/{path}" => self.file_content.clone().into_bytes(),
            _ => return Err(missing(op, format!("a `{media}` body"))),
        };
        Ok(Some(Payload::Raw(media, bytes)))
    }
}

/// How a call authenticates.
#[derive(Clone, Copy)]
enum Cred<'a> {
    None,
    Bearer(&'a str),
    /// The session cookie, as a browser attaches it.
    Cookie(&'a str),
}

struct Caller<'a> {
    app: &'a TestApp,
    cookie_name: String,
}

impl Caller<'_> {
    fn cookie(&self, token: &str) -> String {
        format!("{}={token}", self.cookie_name)
    }

    async fn call(
        &self,
        op: &Operation,
        target: &Target,
        payload: Option<Payload>,
        cred: Cred<'_>,
        origin: Option<&str>,
    ) -> Answer {
        let mut req = self
            .app
            .client
            .request(op.method.clone(), self.app.url(&target.path));
        req = match cred {
            Cred::None => req,
            Cred::Bearer(token) => req.bearer_auth(token),
            Cred::Cookie(token) => req.header("cookie", self.cookie(token)),
        };
        if let Some(origin) = origin {
            req = req.header("origin", origin);
        }
        req = match payload {
            None => req,
            Some(Payload::Json(v)) => req.json(&v),
            Some(Payload::Raw(media, bytes)) => req.header(CONTENT_TYPE, media).body(bytes),
        };
        self.app.send(req).await
    }

    /// The token `account` calls with: its own, or a fresh sign-in for calls that may end the
    /// session they come with.
    async fn credential(&self, account: &Account, throwaway: bool) -> String {
        if !throwaway {
            return account.token.clone();
        }
        let a = self
            .app
            .post(
                "/api/v1/auth/login",
                None,
                json!({"username": account.username, "password": PASSWORD}),
            )
            .await;
        assert_eq!(
            a.status,
            StatusCode::OK,
            "login {}: {}",
            account.username,
            a.body
        );
        a.body["token"].as_str().unwrap().to_owned()
    }

    /// A WebSocket upgrade: the `hello` on success, else the refusal's status and body.
    async fn upgrade(
        &self,
        path: &str,
        cred: Cred<'_>,
        origin: Option<&str>,
    ) -> Result<Value, (u16, Value)> {
        let url = format!("{}{path}", self.app.base.replacen("http", "ws", 1));
        let mut req = url.into_client_request().unwrap();
        let headers = req.headers_mut();
        match cred {
            Cred::None => {}
            Cred::Bearer(token) => {
                headers.insert("authorization", format!("Bearer {token}").parse().unwrap());
            }
            Cred::Cookie(token) => {
                headers.insert("cookie", self.cookie(token).parse().unwrap());
            }
        }
        if let Some(origin) = origin {
            headers.insert("origin", origin.parse().unwrap());
        }
        match tokio_tungstenite::connect_async(req).await {
            Ok((mut ws, _)) => {
                let hello = loop {
                    let msg = tokio::time::timeout(PATIENCE, ws.next())
                        .await
                        .expect("the terminal sent nothing")
                        .expect("the terminal closed before its hello")
                        .expect("reading the terminal");
                    if let Message::Text(text) = msg {
                        break serde_json::from_str(&text).unwrap();
                    }
                };
                let _ = ws.close(None).await;
                Ok(hello)
            }
            Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
                let body = res
                    .body()
                    .as_deref()
                    .and_then(|b| serde_json::from_slice(b).ok())
                    .unwrap_or(Value::Null);
                Err((res.status().as_u16(), body))
            }
            Err(e) => panic!("upgrading {path}: {e}"),
        }
    }
}

/// What the matrix saw and what was wrong with it.
#[derive(Default)]
struct Matrix {
    failures: Vec<String>,
    /// (operation, status) the server answered but the document does not list.
    undocumented: BTreeSet<(String, u16)>,
    /// Operation → (column → cell).
    table: BTreeMap<String, BTreeMap<&'static str, String>>,
}

const COLUMNS: [&str; 5] = ["anonymous", "another user", "admin", "owner", "cookie×evil"];

impl Matrix {
    fn fail(&mut self, message: String) {
        self.failures.push(message);
    }

    fn cell(&mut self, op: &Operation, column: &'static str, text: String) {
        self.table
            .entry(op.key.clone())
            .or_default()
            .insert(column, text);
    }

    /// Status-code conformance and the error envelope, for any answer.
    fn observe(&mut self, op: &Operation, who: &str, status: u16, body: &Value) {
        if !op.statuses.contains(&status) {
            self.undocumented.insert((op.key.clone(), status));
        }
        if status >= 400 {
            let envelope = body.as_object().is_some_and(|o| o.len() == 1)
                && body["error"].as_object().is_some_and(|e| e.len() == 2)
                && body["error"]["code"]
                    .as_str()
                    .is_some_and(|c| !c.is_empty())
                && body["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty());
            if !envelope {
                self.fail(format!(
                    "{} as {who}: {status} without the error envelope: {body}",
                    op.key
                ));
            }
        }
    }

    /// Nothing of the owner's shows in an answer to someone else.
    fn no_secrets(&mut self, fx: &Fixtures, op: &Operation, who: &str, text: &str) {
        for (what, secret) in fx.secrets() {
            if let Some(at) = text.find(secret) {
                // The text around it, not the whole answer (/metrics is long).
                let (start, end) = (
                    at.saturating_sub(80),
                    (at + secret.len() + 20).min(text.len()),
                );
                let context = text.get(start..end).unwrap_or(secret);
                self.fail(format!(
                    "{} as {who}: the answer shows {what}: …{context}…",
                    op.key
                ));
            }
        }
    }

    /// `a` has this status and error code.
    fn expect_error(&mut self, op: &Operation, who: &str, a: (u16, &Value), want: (u16, &str)) {
        let (status, body) = a;
        if status != want.0 || body["error"]["code"] != want.1 {
            self.fail(format!(
                "{} as {who}: want {} `{}`, got {status} {body}",
                op.key, want.0, want.1
            ));
        }
    }
}

fn success(status: u16) -> bool {
    (200..400).contains(&status)
}

fn excused(op: &Operation, who: Who, status: u16, body: &Value) -> bool {
    NOT_SUCCESS.iter().any(|(key, whom, s, code, _)| {
        *key == op.key && who.is(*whom) && *s == status && body["error"]["code"] == *code
    })
}

/// The rules for one HTTP answer to one caller (authenticated with a bearer token).
fn check(m: &mut Matrix, fx: &Fixtures, op: &Operation, target: &Target, who: Who, a: &Answer) {
    let (status, body) = (a.status.as_u16(), &a.body);
    let name = who.name();
    m.observe(op, name, status, body);
    if status == 401 && a.headers.get(WWW_AUTHENTICATE).is_none() {
        m.fail(format!(
            "{} as {name}: 401 without WWW-Authenticate",
            op.key
        ));
    }
    // An admin-only operation is the admins' view by design; everything else shows nobody
    // but the owner the owner's things.
    if who != Who::Owner && !(op.admin_only && who == Who::Admin) {
        m.no_secrets(fx, op, name, &body.to_string());
    }
    let plain = |m: &mut Matrix| {
        if !success(status) && !excused(op, who, status, body) {
            m.fail(format!(
                "{} as {name}: want a 2xx/3xx (or an excuse in NOT_SUCCESS), got {status} {body}",
                op.key
            ));
        }
    };
    if who == Who::Anonymous {
        if op.secured {
            m.expect_error(op, name, (status, body), (401, "unauthorized"));
        } else {
            plain(m);
        }
        return;
    }
    if status == 401 {
        m.fail(format!("{} as {name} (signed in): 401 {body}", op.key));
    }
    if op.admin_only {
        if who == Who::Admin {
            plain(m);
        } else {
            m.expect_error(op, name, (status, body), (403, "forbidden"));
        }
        return;
    }
    if status == 403 {
        m.fail(format!(
            "{} as {name}: 403 on an operation without x-sandpit-role: {body}",
            op.key
        ));
    }
    if target.owned && who != Who::Owner {
        // Admins too: no route gives them a view of learners' things.
        m.expect_error(op, name, (status, body), (404, "not_found"));
    } else {
        plain(m);
    }
}

/// What a forged request could have changed, as the owner (and the store) see it.
#[derive(Debug, PartialEq)]
struct Snapshot {
    /// `GET /api/v1/auth/me` with each probed cookie.
    signed_in: Vec<(String, u16, Value)>,
    sessions: Value,
    everyones_live_sessions: Vec<(String, String)>,
    users: u64,
    bystander_role: String,
    tokens: Vec<Value>,
    attempts: Vec<Value>,
    files: Value,
    lab_files: Value,
    content: Value,
    projects: Value,
    project_files: Value,
    /// What an owner set on their apps, and their versions (not the deploys' progress, which
    /// moves on its own while the matrix runs).
    apps: Vec<Value>,
    database: Value,
    database_rows: Value,
}

async fn snapshot(caller: &Caller<'_>, fx: &Fixtures, cookies: &[&str]) -> Snapshot {
    let app = caller.app;
    let owner = Some(fx.owner.token.as_str());
    let mut signed_in = Vec::new();
    for token in cookies {
        let a = app.me_with_cookie(&caller.cookie(token)).await;
        signed_in.push(((*token).to_owned(), a.status.as_u16(), a.body));
    }
    let ids = |a: Answer, list: &str| -> Vec<Value> {
        assert_eq!(a.status, StatusCode::OK, "{list}: {}", a.body);
        a.body[list]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].clone())
            .collect()
    };
    let mut everyones_live_sessions: Vec<(String, String)> = app
        .store()
        .live_sessions()
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.id.to_string(), s.expires_at.to_rfc3339()))
        .collect();
    everyones_live_sessions.sort();
    let bystander = app
        .store()
        .user_by_id(fx.bystander.id.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    let files = |id: &str| format!("/api/v1/sessions/{id}/files");
    Snapshot {
        signed_in,
        sessions: app.get("/api/v1/sessions?all=true", owner).await.body,
        everyones_live_sessions,
        users: app.store().count_users().await.unwrap(),
        bystander_role: format!("{:?}", bystander.role),
        tokens: ids(app.get("/api/v1/tokens", owner).await, "tokens"),
        attempts: ids(app.get("/api/v1/attempts", owner).await, "attempts"),
        files: app.get(&files(&fx.session), owner).await.body,
        lab_files: app.get(&files(&fx.lab_session), owner).await.body,
        content: app
            .get(
                &format!("/api/v1/sessions/{}/files/{FILE}", fx.session),
                owner,
            )
            .await
            .body,
        projects: app.get("/api/v1/projects", owner).await.body,
        project_files: app
            .get(&format!("/api/v1/projects/{}/files", fx.project), owner)
            .await
            .body,
        apps: apps_snapshot(app, owner).await,
        database: app.get("/api/v1/database", owner).await.body,
        database_rows: app
            .get(&format!("/api/v1/database/tables/{DB_TABLE}/rows"), owner)
            .await
            .body,
    }
}

async fn apps_snapshot(app: &TestApp, owner: Option<&str>) -> Vec<Value> {
    let list = app.get("/api/v1/apps", owner).await;
    assert_eq!(list.status, StatusCode::OK, "apps: {}", list.body);
    let mut apps = Vec::new();
    for a in list.body["apps"].as_array().unwrap() {
        let id = a["id"].as_str().unwrap();
        let versions = app.get(&format!("/api/v1/apps/{id}/versions"), owner).await;
        assert_eq!(
            versions.status,
            StatusCode::OK,
            "versions: {}",
            versions.body
        );
        let versions: Vec<Value> = versions.body["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| json!([v["version"], v["source"]]))
            .collect();
        apps.push(json!({
            "id": id,
            "settings": [a["name"], a["entry"], a["public"], a["pinned"], a["env"], a["secrets"], a["desired"]],
            "versions": versions,
        }));
    }
    apps
}

fn tar_gz(name: &str, data: &[u8]) -> Vec<u8> {
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    builder.append_data(&mut header, name, data).unwrap();
    builder.into_inner().unwrap().finish().unwrap()
}

/// The owner's real resources: sessions with files, a lab session with an attempt, tokens, an
/// asynchronous run, a share link.
async fn fixtures(app: &TestApp) -> Fixtures {
    let owner = Account::signup(app, "owner").await;
    let another = Account::signup(app, "another").await;
    let admin = Account::admin(app, "admin").await;
    let bystander = Account::signup(app, "bystander").await;
    let t = Some(owner.token.as_str());
    let id_of = |a: &Answer, want: StatusCode, what: &str, pointer: &str| -> String {
        assert_eq!(a.status, want, "fixture {what}: {}", a.body);
        a.body
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("fixture {what}: no {pointer} in {}", a.body))
            .to_owned()
    };

    let session = id_of(
        &app.post("/api/v1/sessions", t, json!({})).await,
        StatusCode::CREATED,
        "session",
        "/id",
    );
    let doomed_session = id_of(
        &app.post("/api/v1/sessions", t, json!({})).await,
        StatusCode::CREATED,
        "doomed session",
        "/id",
    );
    let file_content = format!("the owner's notes {}\n", uuid::Uuid::new_v4());
    for (path, data) in [(FILE, file_content.as_str()), (DOOMED_FILE, "doomed\n")] {
        let url = app.url(&format!("/api/v1/sessions/{session}/files/{path}"));
        let a = app
            .send(
                app.client
                    .put(url)
                    .bearer_auth(&owner.token)
                    .body(data.to_owned()),
            )
            .await;
        assert_eq!(
            a.status,
            StatusCode::CREATED,
            "fixture file {path}: {}",
            a.body
        );
    }

    let labs = app.get("/api/v1/labs", t).await;
    assert_eq!(labs.status, StatusCode::OK, "{}", labs.body);
    let slugs: Vec<&str> = labs.body["labs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["slug"].as_str())
        .collect();
    // The shell lab judges fastest; any lab does.
    let lab = slugs
        .iter()
        .find(|s| **s == "shell-basics")
        .or(slugs.first())
        .expect("a lab in the catalog")
        .to_string();
    let lab_session = id_of(
        &app.post(&format!("/api/v1/labs/{lab}/start"), t, json!({}))
            .await,
        StatusCode::CREATED,
        "lab session",
        "/session/id",
    );
    let attempt = id_of(
        &app.post(
            &format!("/api/v1/sessions/{lab_session}/judge"),
            t,
            json!({}),
        )
        .await,
        StatusCode::OK,
        "attempt",
        "/id",
    );

    let created = app
        .post("/api/v1/tokens", t, json!({"name": "owner's"}))
        .await;
    let token = id_of(&created, StatusCode::CREATED, "token", "/token/id");
    let token_secret = id_of(&created, StatusCode::CREATED, "token", "/secret");
    let doomed_token = id_of(
        &app.post("/api/v1/tokens", t, json!({"name": "doomed"}))
            .await,
        StatusCode::CREATED,
        "doomed token",
        "/token/id",
    );

    let runtimes = app.get("/api/v1/runtimes", t).await;
    assert!(
        runtimes.body["runtimes"]
            .as_array()
            .is_some_and(|r| r.iter().any(|r| r["name"] == "bash")),
        "bash is a runtime: {}",
        runtimes.body
    );
    let run = id_of(
        &app.post(
            "/api/v1/runs?wait=false",
            t,
            json!({"runtime": "bash", "files": [{"name": "a.sh", "content": "echo owner"}]}),
        )
        .await,
        StatusCode::ACCEPTED,
        "run",
        "/id",
    );
    // Finished before the matrix, so what each caller sees of it does not depend on timing.
    let deadline = std::time::Instant::now() + PATIENCE;
    while app.get(&format!("/api/v1/runs/{run}"), t).await.body["state"] != "done" {
        assert!(
            std::time::Instant::now() < deadline,
            "the owner's run never finished"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut projects = Vec::new();
    for name in ["owner's project", "doomed project", "saved project"] {
        let project = id_of(
            &app.post("/api/v1/projects", t, json!({"name": name})).await,
            StatusCode::CREATED,
            name,
            "/id",
        );
        for (path, data) in [
            (FILE, file_content.as_str()),
            (DOOMED_FILE, "doomed\n"),
            (MOVABLE, "moves\n"),
        ] {
            let url = app.url(&format!("/api/v1/projects/{project}/files/{path}"));
            let a = app
                .send(
                    app.client
                        .put(url)
                        .bearer_auth(&owner.token)
                        .body(data.to_owned()),
                )
                .await;
            assert_eq!(
                a.status,
                StatusCode::CREATED,
                "fixture {name} {path}: {}",
                a.body
            );
        }
        projects.push(project);
    }
    let [project, doomed_project, saved_project] = <[String; 3]>::try_from(projects).unwrap();
    let mut apps = Vec::new();
    for name in ["owners-app", "doomed-app"] {
        apps.push(id_of(
            &app.post(
                "/api/v1/apps",
                t,
                json!({"name": name, "runtime": "static"}),
            )
            .await,
            StatusCode::CREATED,
            name,
            "/id",
        ));
    }
    let [app_id, doomed_app] = <[String; 2]>::try_from(apps).unwrap();
    let made = app.post("/api/v1/database", t, json!({})).await;
    assert_eq!(
        made.status,
        StatusCode::CREATED,
        "fixture database: {}",
        made.body
    );
    let db_content = format!("the owner row {}", uuid::Uuid::new_v4());
    for sql in [
        format!("CREATE TABLE {DB_TABLE} (id INTEGER PRIMARY KEY, text TEXT)"),
        format!("INSERT INTO {DB_TABLE} (text) VALUES ('{db_content}')"),
    ] {
        let a = app
            .post(
                "/api/v1/database/query",
                t,
                json!({"sql": sql, "write": true}),
            )
            .await;
        assert_eq!(a.status, StatusCode::OK, "fixture {sql}: {}", a.body);
    }
    // Two versions, so a rollback has one to go back to; each finished before the next.
    for n in 1..=2 {
        let job = id_of(
            &app.post(
                &format!("/api/v1/apps/{app_id}/deploy"),
                t,
                json!({"files": {"index.html": format!("{STATIC_PAGE}<p>version {n}</p>")}}),
            )
            .await,
            StatusCode::ACCEPTED,
            "app deploy",
            "/job_id",
        );
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            let j = app.get(&format!("/api/v1/jobs/{job}"), t).await;
            if j.body["state"] == "completed" {
                break;
            }
            assert!(
                j.body["state"] != "failed" && std::time::Instant::now() < deadline,
                "the owner's app deploy: {}",
                j.body
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let share = id_of(
        &app.post(&format!("/api/v1/sessions/{session}/share"), t, json!({}))
            .await,
        StatusCode::OK,
        "share link",
        "/token",
    );

    Fixtures {
        owner,
        another,
        admin,
        bystander,
        session,
        doomed_session,
        lab,
        lab_session,
        token,
        token_secret,
        doomed_token,
        run,
        attempt,
        share,
        project,
        doomed_project,
        saved_project,
        app_id,
        doomed_app,
        db_content,
        file_content,
        archive: tar_gz("uploaded.txt", b"unpacked by the matrix\n"),
        signups: Cell::new(0),
    }
}

/// One HTTP operation: a state change forged from a foreign page first, then every caller.
async fn http_operation(m: &mut Matrix, caller: &Caller<'_>, fx: &Fixtures, op: &Operation) {
    let target = match fx.target(op) {
        Ok(t) => t,
        Err(e) => return m.fail(e),
    };
    if let Err(e) = fx.body(op) {
        return m.fail(e);
    }
    // A public state change may end the sign-in it comes with (logout does): each caller
    // uses a fresh one, so the matrix's own survive.
    let throwaway = !op.secured && op.changes_state();
    // First, while nothing of this operation has happened yet to show up as a change.
    if op.changes_state() {
        let (who, account) = if op.admin_only {
            // Only the admin's cookie could change anything here.
            ("the admin's cookie from a foreign page", &fx.admin)
        } else {
            ("the owner's cookie from a foreign page", &fx.owner)
        };
        csrf(
            m,
            caller,
            fx,
            op,
            &target,
            who,
            &caller.credential(account, throwaway).await,
        )
        .await;
    }
    for who in CALLERS {
        let token = match fx.account(who) {
            None => None,
            Some(account) => Some(caller.credential(account, throwaway).await),
        };
        let cred = token.as_deref().map_or(Cred::None, Cred::Bearer);
        let a = caller
            .call(op, &target, fx.body(op).unwrap(), cred, None)
            .await;
        check(m, fx, op, &target, who, &a);
        let column = COLUMNS[CALLERS.iter().position(|c| *c == who).unwrap()];
        m.cell(op, column, a.status.as_u16().to_string());
    }
}

/// The state change with a cookie from another site's page: refused, and nothing changed.
async fn csrf(
    m: &mut Matrix,
    caller: &Caller<'_>,
    fx: &Fixtures,
    op: &Operation,
    target: &Target,
    who: &str,
    token: &str,
) {
    let probed = [fx.owner.token.as_str(), token];
    let before = snapshot(caller, fx, &probed).await;
    let a = caller
        .call(
            op,
            target,
            fx.body(op).unwrap(),
            Cred::Cookie(token),
            Some(EVIL),
        )
        .await;
    let status = a.status.as_u16();
    m.observe(op, who, status, &a.body);
    m.expect_error(op, who, (status, &a.body), (403, "origin_not_allowed"));
    let after = snapshot(caller, fx, &probed).await;
    for (token, status, body) in &after.signed_in {
        if *status != 200 {
            let whose = if token == &fx.owner.token {
                "the owner's"
            } else {
                "the probe's"
            };
            m.fail(format!(
                "{} as {who}: afterwards {whose} cookie is signed out: {status} {body}",
                op.key
            ));
        }
    }
    if before != after {
        m.fail(format!(
            "{} as {who}: something changed:\nbefore: {before:?}\nafter:  {after:?}",
            op.key
        ));
    }
    m.cell(op, COLUMNS[4], status.to_string());
}

/// One WebSocket upgrade of the matrix.
struct Upgrade<'a> {
    column: &'static str,
    who: &'static str,
    path: String,
    cred: Cred<'a>,
    origin: Option<&'a str>,
    /// `Ok(read_only)`: the terminal opens (101) and says so in its hello; else the refusal.
    want: Result<bool, (u16, &'static str)>,
}

/// A WebSocket operation: refused upgrades answer their status; the owner opens it with the
/// cookie from this server's page or from no page, and with a bearer token from anywhere; a
/// share token lets another user watch, read-only.
async fn websocket_operation(m: &mut Matrix, caller: &Caller<'_>, fx: &Fixtures, op: &Operation) {
    let target = match fx.target(op) {
        Ok(t) => t,
        Err(e) => return m.fail(e),
    };
    let own = caller.app.base.as_str();
    let path = target.path.as_str();
    let others = if target.owned {
        Err((404, "not_found"))
    } else {
        Ok(false)
    };
    let case = |column, who, cred, origin, want| Upgrade {
        column,
        who,
        path: path.to_owned(),
        cred,
        origin,
        want,
    };
    let owner = Cred::Cookie(&fx.owner.token);
    let mut cases = vec![
        case(
            "anonymous",
            "anonymous",
            Cred::None,
            None,
            Err((401, "unauthorized")),
        ),
        case(
            "another user",
            "another user",
            Cred::Bearer(&fx.another.token),
            None,
            others,
        ),
        case(
            "admin",
            "admin",
            Cred::Bearer(&fx.admin.token),
            None,
            others,
        ),
        case(
            "owner",
            "the owner's cookie from this server's page",
            owner,
            Some(own),
            Ok(false),
        ),
        // Not a browser: nothing to forge.
        case(
            "owner",
            "the owner's cookie from no page",
            owner,
            None,
            Ok(false),
        ),
        // No page can make a browser send a bearer token.
        case(
            "owner",
            "the owner's API token from a foreign page",
            Cred::Bearer(&fx.token_secret),
            Some(EVIL),
            Ok(false),
        ),
        case(
            "cookie×evil",
            "the owner's cookie from a foreign page",
            owner,
            Some(EVIL),
            Err((403, "origin_not_allowed")),
        ),
    ];
    if op.has_query("share") {
        let sep = if path.contains('?') { '&' } else { '?' };
        // Watching needs a sign-in too.
        cases.push(Upgrade {
            path: format!("{path}{sep}share={}", fx.share),
            ..case(
                "anonymous",
                "anonymous with the owner's share token",
                Cred::None,
                None,
                Err((401, "unauthorized")),
            )
        });
        cases.push(Upgrade {
            path: format!("{path}{sep}share={}", fx.share),
            ..case(
                "another user",
                "another user with the owner's share token",
                Cred::Bearer(&fx.another.token),
                None,
                // A watcher: what they type goes nowhere.
                Ok(true),
            )
        });
    }
    let mut cells: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    for c in cases {
        let got = caller.upgrade(&c.path, c.cred, c.origin).await;
        let (status, body) = match &got {
            Ok(_) => (101, Value::Null),
            Err((status, body)) => (*status, body.clone()),
        };
        m.observe(op, c.who, status, &body);
        // The share link's viewer was given the session on purpose.
        let shared = c.path.contains("share=");
        if c.column != "owner" && !(shared && c.want.is_ok()) {
            let text = match &got {
                Ok(hello) => hello.to_string(),
                Err(_) => body.to_string(),
            };
            m.no_secrets(fx, op, c.who, &text);
        }
        match (c.want, &got) {
            (Ok(read_only), Ok(hello)) => {
                if hello["type"] != "hello" || hello["read_only"] != read_only {
                    m.fail(format!(
                        "{} as {}: want a hello with read_only {read_only}, got {hello}",
                        op.key, c.who
                    ));
                }
            }
            (Ok(_), Err(_)) => {
                m.fail(format!(
                    "{} as {}: want 101, got {status} {body}",
                    op.key, c.who
                ));
            }
            (Err(want), _) => m.expect_error(op, c.who, (status, &body), want),
        }
        let label = if shared {
            format!("share:{status}")
        } else {
            status.to_string()
        };
        cells.entry(c.column).or_default().push(label);
    }
    for (column, labels) in cells {
        m.cell(op, column, labels.join(","));
    }
}

fn render(ops: &[Operation], m: &Matrix) -> String {
    let cell = |op: &Operation, column: &str| -> String {
        m.table
            .get(&op.key)
            .and_then(|r| r.get(column))
            .cloned()
            .unwrap_or_else(|| "-".into())
    };
    let first = ops.iter().map(|o| o.key.len()).max().unwrap_or(0);
    let widths: Vec<usize> = COLUMNS
        .iter()
        .map(|c| {
            ops.iter()
                .map(|o| cell(o, c).chars().count())
                .chain([c.chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = format!(
        "authorization matrix: {} operations × {} callers, and the owner's cookie from {EVIL}\n",
        ops.len(),
        CALLERS.len()
    );
    let mut line = |first_cell: &str, cells: Vec<String>| {
        out.push_str(&format!("{first_cell:first$}"));
        for (c, w) in cells.iter().zip(&widths) {
            out.push_str(&format!("  {c:>w$}"));
        }
        out.push('\n');
    };
    line(
        "operation",
        COLUMNS.iter().map(|c| (*c).to_owned()).collect(),
    );
    for op in ops {
        line(&op.key, COLUMNS.iter().map(|c| cell(op, c)).collect());
    }
    out
}

#[tokio::test]
async fn every_operation_answers_each_caller_as_its_rights_say() {
    let app = TestApp::spawn_with(|c| {
        c.sessions.max_per_user = 10;
        c.labs.hints_per_minute = 1_000;
        // Configured, so its routes do their real work; nothing here reaches these addresses.
        c.auth.github.client_id = "matrix".into();
        c.auth.github.client_secret = Some("matrix-secret".to_owned().into());
        c.auth.github.authorize_url = "http://127.0.0.1:9/authorize".into();
        c.auth.github.token_url = "http://127.0.0.1:9/token".into();
        c.auth.github.api_url = "http://127.0.0.1:9/api".into();
    })
    .await;
    let doc = app.get("/api/openapi.json", None).await;
    assert_eq!(doc.status, StatusCode::OK, "{}", doc.body);
    let cookie_name = doc.body["components"]["securitySchemes"]
        .as_object()
        .and_then(|s| s.values().find(|s| s["in"] == "cookie"))
        .and_then(|s| s["name"].as_str())
        .expect("the document names the session cookie")
        .to_owned();
    let mut ops = operations(&doc.body);
    assert!(ops.len() > 10, "few operations: {}", ops.len());
    let caller = Caller {
        app: &app,
        cookie_name,
    };
    let fx = fixtures(&app).await;
    let mut m = Matrix::default();
    for (key, ..) in NOT_SUCCESS {
        if !ops.iter().any(|o| o.key == *key) {
            m.fail(format!(
                "NOT_SUCCESS excuses {key}, which the document no longer has"
            ));
        }
    }

    // Deletions last (they have doomed fixtures too), WebSockets after every snapshot of the
    // workspaces (a shell may write its history there).
    ops.sort_by_key(|o| (o.websocket(), o.method == Method::DELETE));
    for op in &ops {
        if op.websocket() {
            websocket_operation(&mut m, &caller, &fx, op).await;
        } else {
            http_operation(&mut m, &caller, &fx, op).await;
        }
        // Nothing may have signed the matrix's callers out: the rest would mean nothing.
        for account in [&fx.owner, &fx.another, &fx.admin] {
            let me = app.get("/api/v1/auth/me", Some(&account.token)).await;
            assert_eq!(
                me.status,
                StatusCode::OK,
                "after {}, {} is signed out: {}",
                op.key,
                account.username,
                me.body
            );
        }
    }
    ops.sort_by(|a, b| a.key.cmp(&b.key));
    println!("{}", render(&ops, &m));

    let undocumented: Vec<String> = m
        .undocumented
        .iter()
        .map(|(op, status)| format!("  {op} answers {status}"))
        .collect();
    assert!(
        m.failures.is_empty() && undocumented.is_empty(),
        "{} failures:\n{}\n\n{} statuses the document does not list for the operation:\n{}",
        m.failures.len(),
        m.failures.join("\n"),
        undocumented.len(),
        undocumented.join("\n")
    );
}
