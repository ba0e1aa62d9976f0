//! The OpenAPI document: its frame (info, security schemes, tags), the responses that the
//! layers and extractors every route shares can answer, and the routes that serve it.
//!
//! The document is the API's contract (fuzzed by `scripts/api-fuzz`, and the authorization
//! matrix in `tests/api/authz.rs` is generated from it), so each operation must list every
//! status it can answer. A handler's annotation lists what the handler decides; what the shared
//! machinery decides — authentication, the Origin check, rate limits, body limits, path, query
//! and JSON rejections — is added here, from the same facts the machinery acts on, so no route
//! can forget one.

use std::sync::Arc;

use axum::response::Response;
use serde_json::{Value, json};
use utoipa::openapi::OpenApi as OpenApiDoc;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{KnownFormat, ObjectBuilder, RefOr, Schema, SchemaFormat, Type};
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};

use crate::error::{ErrorEnvelope, Json};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "sandpit API",
        description = "Learn and run code in the browser. Every error answers \
            `{\"error\": {\"code\", \"message\"}}`; authenticate with the session cookie or \
            `Authorization: Bearer <token>`. With the cookie, a request that changes something \
            or opens a WebSocket must come from this server's own pages (`Origin`), else 403 \
            `origin_not_allowed`.",
    ),
    modifiers(&Security),
    components(schemas(ErrorEnvelope)),
    tags(
        (name = "auth", description = "Accounts and sign-in"),
        (name = "tokens", description = "Personal API tokens"),
        (name = "users", description = "Account administration"),
        (name = "runs", description = "Stateless code execution"),
        (name = "sessions", description = "Sandboxes with a persistent workspace, terminal and files"),
        (name = "labs", description = "Labs, the judge, attempts, progress and hints"),
        (name = "projects", description = "Projects: files kept in the store, opened as sessions, worked on by agent jobs"),
        (name = "jobs", description = "Durable background work (asynchronous runs …): state, events, cancelling"),
        (name = "apps", description = "Deployed web apps: deploys with stages, status, logs, versions and rollbacks"),
        (name = "database", description = "The caller's own database (SQLite or PostgreSQL) and its viewer"),
        (name = "operations", description = "Health, readiness, metrics and this document"),
    )
)]
pub(crate) struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut OpenApiDoc) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "session_cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new("sandpit_session"))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// A body of raw bytes (`type: string, format: binary`), for file contents and archives.
pub struct Binary;

impl PartialSchema for Binary {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .into()
    }
}

impl ToSchema for Binary {}

/// The document as served: axum's path syntax made OpenAPI's, and the shared responses added.
pub(super) fn finish(doc: OpenApiDoc) -> Value {
    let mut doc = serde_json::to_value(doc).unwrap_or_default();
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        // axum names a catch-all parameter `{*path}`; OpenAPI knows only `{path}`.
        *paths = std::mem::take(paths)
            .into_iter()
            .map(|(path, item)| (path.replace("{*", "{"), item))
            .collect();
        for (path, item) in paths.iter_mut() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            for (method, operation) in item.iter_mut() {
                add_shared_responses(path, method, operation);
                describe_event_streams(operation);
            }
        }
    }
    doc
}

/// A `text/event-stream` response is annotated with the schema of its events' JSON `data`;
/// OpenAPI 3.1 (and schemathesis) read an event stream's schema as one *event*
/// (`{id, event, data}`, each a string), so the annotation is turned into that, with the
/// JSON's schema as `data`'s `contentSchema`.
fn describe_event_streams(operation: &mut Value) {
    let Some(responses) = operation
        .get_mut("responses")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    for response in responses.values_mut() {
        let Some(stream) = response.pointer_mut("/content/text~1event-stream") else {
            continue;
        };
        let declared = stream.get("schema").cloned();
        let mut data = json!({"type": "string", "contentMediaType": "application/json"});
        if let Some(declared) = declared.filter(|d| d.get("$ref").is_some()) {
            data["contentSchema"] = declared;
        }
        stream["schema"] = json!({
            "type": "object",
            "description": "One server-sent event",
            "properties": {
                "id": {"type": "string"},
                "event": {"type": "string"},
                "data": data,
            },
            "required": ["data"],
        });
    }
}

/// A response with the error envelope.
fn envelope(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}}
    })
}

/// Adds `status` unless the handler's annotation lists it; when it does, the shared cause is
/// appended to its description, so a reader sees every reason for the status.
fn add(responses: &mut serde_json::Map<String, Value>, status: &str, cause: &str) {
    match responses.get_mut(status) {
        Some(existing) => {
            let text = existing["description"].as_str().unwrap_or_default();
            if !text.contains(cause) {
                let joined = if text.is_empty() {
                    cause.to_owned()
                } else {
                    format!("{text}; or {cause}")
                };
                existing["description"] = Value::String(joined);
            }
        }
        None => {
            responses.insert(status.to_owned(), envelope(cause));
        }
    }
}

/// The statuses `routes::documented`'s layers and the enveloping extractors in `error.rs` can
/// answer for this operation.
fn add_shared_responses(path: &str, method: &str, operation: &mut Value) {
    let api = path.starts_with("/api/v1/");
    let secured = operation
        .get("security")
        .and_then(Value::as_array)
        .is_some_and(|s| !s.is_empty());
    let params = |place: &str| {
        operation
            .get("parameters")
            .and_then(Value::as_array)
            .is_some_and(|ps| ps.iter().any(|p| p["in"] == place))
    };
    let (in_path, in_query) = (params("path"), params("query"));
    let body_types: Vec<String> = operation
        .pointer("/requestBody/content")
        .and_then(Value::as_object)
        .map(|c| c.keys().cloned().collect())
        .unwrap_or_default();
    let json_body = body_types.iter().any(|t| t == "application/json");
    let websocket = operation
        .get("responses")
        .and_then(|r| r.get("101"))
        .is_some();
    let changes_state = websocket || !matches!(method, "get" | "head" | "options");
    let Some(responses) = operation
        .get_mut("responses")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    if in_path {
        add(
            responses,
            "400",
            "`bad_request`: a malformed path parameter",
        );
    }
    if in_query {
        add(responses, "400", "`bad_request`: a malformed query");
    }
    if json_body {
        add(responses, "400", "`invalid_json`: the body is not JSON");
        add(
            responses,
            "415",
            "`unsupported_media_type`: a body without `Content-Type: application/json`",
        );
        add(
            responses,
            "422",
            "`validation_failed`: the JSON breaks a rule (the message names the field)",
        );
    }
    if !body_types.is_empty() {
        add(
            responses,
            "413",
            "`payload_too_large`: the body is over the limit",
        );
    }
    if secured {
        add(
            responses,
            "401",
            "`unauthorized`: not signed in (no valid cookie or bearer token)",
        );
    }
    if api && changes_state {
        add(
            responses,
            "403",
            "`origin_not_allowed`: the session cookie from another site's page",
        );
    }
    if api {
        add(
            responses,
            "429",
            "`rate_limited`: too many requests; `Retry-After` says when to retry",
        );
    }
    // `cluster::forward`: the replica holding the session (by path, or by the session a save or
    // deploy names) did not answer.
    let by_body = method == "post"
        && (path.ends_with("/save") && path.starts_with("/api/v1/projects/")
            || path.ends_with("/deploy") && path.starts_with("/api/v1/apps/"));
    if path.starts_with("/api/v1/sessions/{id}") || by_body {
        add(
            responses,
            "503",
            "`replica_unavailable`: the server replica running this session did not answer; \
             `Retry-After` says when it is taken over",
        );
    }
}

/// The OpenAPI document of this API.
#[utoipa::path(get, path = "/api/openapi.json", tag = "operations",
    responses((status = 200, description = "OpenAPI 3.1 document", content_type = "application/json")))]
pub(super) async fn openapi_json(axum::Extension(doc): axum::Extension<Arc<Value>>) -> Json<Value> {
    Json((*doc).clone())
}

/// Interactive API documentation (works offline).
#[utoipa::path(get, path = "/api/docs", tag = "operations",
    responses((status = 200, description = "HTML page", content_type = "text/html")))]
pub(super) async fn api_docs() -> Response {
    super::web::api_docs().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statuses(op: &Value) -> Vec<&str> {
        op["responses"]
            .as_object()
            .map(|r| r.keys().map(String::as_str).collect())
            .unwrap_or_default()
    }

    #[test]
    fn shared_responses_follow_what_the_operation_has() {
        let mut op = json!({
            "security": [{"bearer": []}],
            "parameters": [{"in": "path", "name": "id"}],
            "requestBody": {"content": {"application/json": {}}},
            "responses": {"200": {"description": "ok"}, "403": {"description": "`forbidden`: not an admin"}},
        });
        add_shared_responses("/api/v1/things/{id}", "put", &mut op);
        assert_eq!(
            statuses(&op),
            ["200", "400", "401", "403", "413", "415", "422", "429"]
        );
        let forbidden = op["responses"]["403"]["description"].as_str().unwrap_or("");
        assert!(forbidden.starts_with("`forbidden`") && forbidden.contains("origin_not_allowed"));
        assert_eq!(
            op["responses"]["429"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/ErrorEnvelope"
        );

        // A public read outside the API: nothing is added.
        let mut health = json!({"responses": {"200": {"description": "ok"}}});
        add_shared_responses("/healthz", "get", &mut health);
        assert_eq!(statuses(&health), ["200"]);

        // A WebSocket upgrade is a GET that changes state; a binary body has no JSON errors.
        let mut ws = json!({
            "security": [{"bearer": []}],
            "requestBody": {"content": {"application/octet-stream": {}}},
            "responses": {"101": {"description": "upgrade"}},
        });
        add_shared_responses("/api/v1/things/terminal", "get", &mut ws);
        assert_eq!(statuses(&ws), ["101", "401", "403", "413", "429"]);
    }

    #[test]
    fn an_event_stream_is_described_event_by_event() {
        let mut op = json!({"responses": {"200": {"content": {
            "text/event-stream": {"schema": {"$ref": "#/components/schemas/JobEventView"}},
            "application/json": {"schema": {"$ref": "#/components/schemas/Other"}},
        }}}});
        describe_event_streams(&mut op);
        let stream = &op["responses"]["200"]["content"]["text/event-stream"]["schema"];
        assert_eq!(stream["required"], json!(["data"]));
        assert_eq!(
            stream["properties"]["data"]["contentSchema"]["$ref"],
            "#/components/schemas/JobEventView"
        );
        assert_eq!(
            op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/Other",
            "other media types are left alone"
        );
    }
}
