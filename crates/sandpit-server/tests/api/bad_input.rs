//! A table of hostile inputs thrown at every endpoint: each must be answered with a 4xx and
//! the error envelope — never a 5xx, a panic, or a non-JSON body.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::TestApp;

/// A raw request body and content type.
struct Input {
    name: &'static str,
    content_type: Option<&'static str>,
    body: Vec<u8>,
}

fn inputs() -> Vec<Input> {
    let json = |name, v: serde_json::Value| Input {
        name,
        content_type: Some("application/json"),
        body: serde_json::to_vec(&v).unwrap(),
    };
    let raw = |name, body: &[u8]| Input {
        name,
        content_type: Some("application/json"),
        body: body.to_vec(),
    };
    vec![
        raw("malformed", br#"{"username": "#),
        raw("empty", b""),
        raw(
            "non-utf8",
            b"{\"username\": \"\xff\xfe\", \"password\": \"\xc3\x28aaaaaa\"}",
        ),
        raw("trailing garbage", br#"{"name": "x"} {"#),
        raw("deeply nested", &[b'['; 20_000]),
        json("null", json!(null)),
        json("array", json!([1, 2, 3])),
        json("string", json!("hello")),
        json(
            "wrong types",
            json!({"username": 5, "password": true, "name": 7, "role": 1, "email": []}),
        ),
        json(
            "unknown field",
            json!({"username": "okname", "password": "long enough pw", "name": "n", "role": "author", "admin": true}),
        ),
        json("missing fields", json!({})),
        json(
            "overlong strings",
            json!({"username": "u".repeat(10_000), "password": "p".repeat(100_000), "name": "n".repeat(10_000), "email": "e".repeat(10_000)}),
        ),
        json(
            "NUL and control characters",
            json!({"username": "ab\u{0}c", "password": "pass\u{0}word!", "name": "a\u{7}b", "email": "a\u{0}@b.co"}),
        ),
        json(
            "unicode lookalikes",
            json!({"username": "аdmin", "password": "🦀🦀🦀🦀🦀🦀🦀🦀", "name": "\u{202e}evil", "email": "ä@b"}),
        ),
        json(
            "huge number",
            json!({"name": "n", "expires_in_days": 1e300, "role": 1e300}),
        ),
        json(
            "negative number",
            json!({"name": "n", "expires_in_days": -1}),
        ),
        Input {
            name: "oversized",
            content_type: Some("application/json"),
            body: format!(r#"{{"username": "{}"}}"#, "x".repeat(5 * 1024 * 1024)).into_bytes(),
        },
        Input {
            name: "no content type",
            content_type: None,
            body: br#"{"username":"okname","password":"long enough pw"}"#.to_vec(),
        },
        Input {
            name: "form encoded",
            content_type: Some("application/x-www-form-urlencoded"),
            body: b"username=okname&password=long+enough+pw".to_vec(),
        },
    ]
}

#[tokio::test]
async fn every_endpoint_answers_bad_input_with_the_envelope() {
    let app = TestApp::spawn().await;
    let (victim, _) = app.signup("victim").await;
    let (_, admin) = app.admin("root").await;
    let role_path = format!("/api/v1/users/{}/role", victim["id"].as_str().unwrap());

    // (method, path, authenticated) for every endpoint of this API that takes a body or params.
    let body_endpoints: Vec<(Method, String, bool)> = vec![
        (Method::POST, "/api/v1/auth/signup".into(), false),
        (Method::POST, "/api/v1/auth/login".into(), false),
        (Method::POST, "/api/v1/tokens".into(), true),
        (Method::PUT, role_path.clone(), true),
        (Method::POST, "/api/v1/runs".into(), true),
    ];
    let mut checked = 0;
    for (method, path, authed) in &body_endpoints {
        for input in inputs() {
            let mut req = app
                .client
                .request(method.clone(), app.url(path))
                .body(input.body.clone());
            if let Some(ct) = input.content_type {
                req = req.header("content-type", ct);
            }
            if *authed {
                req = req.bearer_auth(&admin);
            }
            let a = app.send(req).await;
            let ctx = format!(
                "{method} {path} with {}: {} {}",
                input.name, a.status, a.body
            );
            assert!(a.status.is_client_error(), "{ctx}");
            assert!(a.body["error"]["code"].is_string(), "{ctx}");
            assert!(a.body["error"]["message"].is_string(), "{ctx}");
            let expected: &[StatusCode] = match input.name {
                "oversized" => &[StatusCode::PAYLOAD_TOO_LARGE],
                "no content type" | "form encoded" => &[StatusCode::UNSUPPORTED_MEDIA_TYPE],
                "empty" => &[StatusCode::BAD_REQUEST],
                // serde parses as it goes: it may meet an unknown or mistyped field (422, or
                // login's uniform 401) before the broken bytes (400).
                "malformed" | "non-utf8" | "trailing garbage" | "deeply nested" | "null"
                | "array" | "string" | "wrong types" => &[
                    StatusCode::BAD_REQUEST,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    StatusCode::UNAUTHORIZED,
                ],
                // Login answers every unusable credential with the uniform 401.
                _ if path.ends_with("/login") => {
                    &[StatusCode::UNPROCESSABLE_ENTITY, StatusCode::UNAUTHORIZED]
                }
                _ => &[StatusCode::UNPROCESSABLE_ENTITY],
            };
            assert!(expected.contains(&a.status), "{ctx}");
            checked += 1;
        }
    }
    assert_eq!(checked, body_endpoints.len() * inputs().len());

    // Endpoints without bodies: malformed paths, queries and credentials.
    // (method, path, still bad with a valid admin token)
    let others: Vec<(Method, &str, bool)> = vec![
        (Method::DELETE, "/api/v1/tokens/not-a-uuid", true),
        (Method::DELETE, "/api/v1/tokens/%00", true),
        (
            Method::DELETE,
            "/api/v1/tokens/..%2F..%2Fetc%2Fpasswd",
            true,
        ),
        (Method::PUT, "/api/v1/users/12345/role", true),
        (
            Method::GET,
            "/api/v1/auth/github/callback?code=%ff%fe&state=%00",
            true,
        ),
        (
            Method::GET,
            "/api/v1/auth/github/callback?code=a&code=b",
            true,
        ),
        (Method::GET, "/api/v1/auth/github", true),
        (Method::POST, "/api/v1/auth/me", true),
        (Method::PATCH, "/api/v1/tokens", true),
        (Method::GET, "/api/v1/%ff%fe", true),
        (Method::GET, "/api/v1/auth/me", false),
        (Method::GET, "/api/v1/tokens", false),
    ];
    for (method, path, bad_when_authorized) in others {
        let mut tokens = vec![None, Some("sps_forged")];
        if bad_when_authorized {
            tokens.push(Some(admin.as_str()));
        }
        for token in tokens {
            let a = app.call(method.clone(), path, token, None).await;
            let ctx = format!("{method} {path} token={token:?}: {} {}", a.status, a.body);
            assert!(a.status.is_client_error(), "{ctx}");
            assert!(a.body["error"]["code"].is_string(), "{ctx}");
        }
    }

    // Oversized headers and an absurd bearer never reach a 500 either.
    let a = app.get("/api/v1/auth/me", Some(&"A".repeat(8_000))).await;
    a.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");

    // And the server is still healthy and the victim untouched.
    assert_eq!(app.get("/healthz", None).await.status, StatusCode::OK);
    let id = victim["id"].as_str().unwrap().parse().unwrap();
    let user = app.store().user_by_id(id).await.unwrap().unwrap();
    assert_eq!(user.role, sandpit_store::Role::Learner);
    assert_eq!(app.store().count_users().await.unwrap(), 2);
}
