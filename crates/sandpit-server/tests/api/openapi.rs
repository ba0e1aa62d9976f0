use reqwest::StatusCode;

use crate::helpers::TestApp;

/// Every route of the API, as `METHOD path`. Adding a route means adding it here and to the
/// snapshot, so API changes are visible in review.
const ROUTES: &[&str] = &[
    "POST /api/v1/auth/signup",
    "POST /api/v1/auth/login",
    "POST /api/v1/auth/logout",
    "GET /api/v1/auth/me",
    "GET /api/v1/auth/providers",
    "GET /api/v1/auth/github",
    "GET /api/v1/auth/github/callback",
    "POST /api/v1/tokens",
    "GET /api/v1/tokens",
    "DELETE /api/v1/tokens/{id}",
    "PUT /api/v1/users/{id}/role",
    "POST /api/v1/runs",
    "GET /api/v1/runs/{id}",
    "GET /api/v1/runtimes",
    "POST /api/v1/sessions",
    "GET /api/v1/sessions",
    "GET /api/v1/sessions/{id}",
    "DELETE /api/v1/sessions/{id}",
    "POST /api/v1/sessions/{id}/extend",
    "POST /api/v1/sessions/{id}/exec",
    "GET /api/v1/sessions/{id}/files",
    "GET /api/v1/sessions/{id}/files/{path}",
    "PUT /api/v1/sessions/{id}/files/{path}",
    "DELETE /api/v1/sessions/{id}/files/{path}",
    "POST /api/v1/sessions/{id}/files/{path}",
    "POST /api/v1/sessions/{id}/files/ensure-default",
    "GET /api/v1/sessions/{id}/archive",
    "GET /api/v1/sessions/{id}/terminal",
    "POST /api/v1/sessions/{id}/share",
    "POST /api/v1/sessions/{id}/archive",
    "GET /api/v1/labs",
    "GET /api/v1/labs/{slug}",
    "POST /api/v1/labs/{slug}/start",
    "GET /api/v1/labs/{slug}/active",
    "POST /api/v1/sessions/{id}/judge",
    "GET /api/v1/attempts",
    "GET /api/v1/attempts/{id}",
    "GET /api/v1/progress",
    "POST /api/v1/sessions/{id}/hint",
    "POST /api/v1/sessions/{id}/explain",
    "GET /api/v1/jobs",
    "GET /api/v1/jobs/{id}",
    "POST /api/v1/jobs/{id}/cancel",
    "GET /api/v1/jobs/{id}/events",
    "POST /api/v1/projects",
    "GET /api/v1/projects",
    "GET /api/v1/projects/{id}",
    "PATCH /api/v1/projects/{id}",
    "DELETE /api/v1/projects/{id}",
    "GET /api/v1/projects/{id}/files",
    "GET /api/v1/projects/{id}/files/{path}",
    "PUT /api/v1/projects/{id}/files/{path}",
    "DELETE /api/v1/projects/{id}/files/{path}",
    "POST /api/v1/projects/{id}/files/{path}",
    "GET /api/v1/projects/{id}/archive",
    "POST /api/v1/projects/{id}/archive",
    "POST /api/v1/projects/{id}/open",
    "POST /api/v1/projects/{id}/save",
    "POST /api/v1/projects/{id}/jobs",
    "GET /api/v1/projects/{id}/jobs",
    "POST /api/v1/jobs/{id}/accept",
    "POST /api/v1/apps",
    "GET /api/v1/apps",
    "GET /api/v1/apps/{id}",
    "PATCH /api/v1/apps/{id}",
    "DELETE /api/v1/apps/{id}",
    "POST /api/v1/apps/{id}/deploy",
    "GET /api/v1/apps/{id}/status",
    "GET /api/v1/apps/{id}/logs",
    "POST /api/v1/apps/{id}/stop",
    "POST /api/v1/apps/{id}/start",
    "GET /api/v1/apps/{id}/versions",
    "POST /api/v1/apps/{id}/rollback",
    "POST /api/v1/database",
    "GET /api/v1/database",
    "DELETE /api/v1/database",
    "POST /api/v1/database/rotate",
    "GET /api/v1/database/tables",
    "GET /api/v1/database/tables/{name}/rows",
    "POST /api/v1/database/query",
    "GET /healthz",
    "GET /readyz",
    "GET /metrics",
    "GET /api/openapi.json",
    "GET /api/docs",
];

#[tokio::test]
async fn the_document_lists_every_route_and_matches_the_snapshot() {
    let app = TestApp::spawn().await;
    let doc = app.get("/api/openapi.json", None).await;
    assert_eq!(doc.status, StatusCode::OK);
    assert!(doc.body["openapi"].as_str().unwrap().starts_with("3."));

    let mut documented: Vec<String> = doc.body["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| format!("{} {path}", m.to_uppercase()))
        })
        .collect();
    documented.sort();
    let mut expected: Vec<String> = ROUTES.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(documented, expected);

    // Every documented route is really served (not 404/405 from the router).
    for route in ROUTES {
        let (method, path) = route.split_once(' ').unwrap();
        let path = path.replace("{id}", &uuid::Uuid::now_v7().to_string());
        let a = app.call(method.parse().unwrap(), &path, None, None).await;
        assert!(
            a.status != StatusCode::METHOD_NOT_ALLOWED
                && a.body["error"]["message"] != "no such API route",
            "{route} is documented but not routed: {} {}",
            a.status,
            a.body
        );
    }

    insta::assert_json_snapshot!("openapi", doc.body);
}
