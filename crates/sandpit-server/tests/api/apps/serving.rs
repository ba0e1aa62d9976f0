//! Serving through the platform's proxy: what an app sees of a request and what a visitor sees
//! of its response, in the path mode and on the apps domain (by `Host`), private apps, and
//! WebSockets.

use futures::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::{FASTAPI, launched, proxy_page, visit};
use crate::helpers::TestApp;

#[tokio::test]
async fn the_app_sees_forwarding_headers_and_never_the_visitors_platform_credentials() {
    let app = TestApp::spawn().await;
    let (_, ada) = app.signup("ada").await;
    launched(
        &app,
        &ada,
        json!({"name": "hello", "runtime": "python"}),
        &[("main.py", FASTAPI)],
    )
    .await;
    let seen = app
        .send(
            app.client
                .get(app.url("/user/ada/app/hello/headers"))
                .bearer_auth(&ada)
                .header("cookie", format!("sandpit_session={ada}; basket=2"))
                .header("cookie", "sandpit_app_unlock=x; theme=dark")
                .header("x-forwarded-for", "10.9.8.7")
                .header("x-forwarded-prefix", "/admin")
                .header("x-trace", "kept"),
        )
        .await;
    assert_eq!(seen.status, StatusCode::OK, "{}", seen.body);
    let h = &seen.body;
    assert_eq!(h["x-forwarded-prefix"], "/user/ada/app/hello", "{h}");
    assert_eq!(h["x-forwarded-for"], "127.0.0.1", "{h}");
    assert_eq!(h["x-forwarded-proto"], "http", "{h}");
    let platform_host = app.base.trim_start_matches("http://");
    assert_eq!(h["x-forwarded-host"], platform_host, "{h}");
    assert_eq!(h["host"], platform_host, "{h}");
    assert_eq!(h["x-trace"], "kept", "{h}");
    assert!(h.get("authorization").is_none(), "{h}");
    assert_eq!(h["cookie"], "basket=2; theme=dark", "{h}");
    assert!(!h.to_string().contains(&ada), "the token leaked: {h}");

    // Its responses run sandboxed on the platform's origin.
    assert_eq!(
        seen.headers["content-security-policy"],
        sandpit_proxy::SANDBOX_CSP
    );
    assert_eq!(seen.headers["x-content-type-options"], "nosniff");
}

#[tokio::test]
async fn an_apps_cookies_are_kept_to_its_own_path_and_names() {
    let app = TestApp::spawn().await;
    let (_, ada) = app.signup("ada").await;
    launched(
        &app,
        &ada,
        json!({"name": "hello", "runtime": "python"}),
        &[("main.py", FASTAPI)],
    )
    .await;
    let answer = visit(&app, "/user/ada/app/hello/cookie").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let cookies: Vec<&str> = answer
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    let names: Vec<&str> = cookies
        .iter()
        .map(|c| c.split('=').next().unwrap())
        .collect();
    // The platform's session name and a Domain are refused; the rest is kept to the app's
    // prefix, `Path=/` (Starlette's default) meaning the app's root, not the platform's.
    assert_eq!(names, ["theme", "app_pref", "cart"], "{cookies:?}");
    for cookie in &cookies {
        assert!(cookie.contains("Path=/user/ada/app/hello/"), "{cookies:?}");
    }
}

#[tokio::test]
async fn a_websocket_through_the_proxy_reaches_the_app_and_echoes() {
    let app = TestApp::spawn().await;
    let (_, ada) = app.signup("ada").await;
    launched(
        &app,
        &ada,
        json!({"name": "hello", "runtime": "python"}),
        &[("main.py", FASTAPI)],
    )
    .await;
    let url = format!("{}/user/ada/app/hello/ws", app.base.replace("http", "ws"));
    let (mut socket, response) =
        tokio_tungstenite::connect_async(url.into_client_request().unwrap())
            .await
            .expect("the proxy switches protocols");
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    for text in ["hello", "again", &"x".repeat(100_000)] {
        socket.send(Message::text(text)).await.unwrap();
        let echoed = loop {
            match socket.next().await.expect("an answer").unwrap() {
                Message::Text(t) => break t.to_string(),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("unexpected {other:?}"),
            }
        };
        assert_eq!(echoed, format!("echo: {text}"));
    }
    socket.close(None).await.unwrap();

    // A WebSocket to a route that is not one is the app's own refusal, not the proxy's.
    let err = tokio_tungstenite::connect_async(
        format!("{}/user/ada/app/hello/nope", app.base.replace("http", "ws"))
            .into_client_request()
            .unwrap(),
    )
    .await
    .expect_err("no such WebSocket route");
    match err {
        tokio_tungstenite::tungstenite::Error::Http(r) => {
            assert!(r.headers().get("x-sandpit-proxy").is_none(), "{r:?}");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn a_private_app_in_the_path_mode_answers_its_owner_only() {
    let app = TestApp::spawn().await;
    let (_, ada) = app.signup("ada").await;
    let (_, bob) = app.signup("bob").await;
    launched(
        &app,
        &ada,
        json!({"name": "secret", "runtime": "python", "public": false}),
        &[("main.py", FASTAPI)],
    )
    .await;
    let path = "/user/ada/app/secret/";
    let anonymous = visit(&app, path).await;
    let text = proxy_page(&anonymous, StatusCode::NOT_FOUND, "app_not_found");
    assert!(text.contains("private"), "{text}");
    let as_bob = app
        .send(app.client.get(app.url(path)).bearer_auth(&bob))
        .await;
    proxy_page(&as_bob, StatusCode::NOT_FOUND, "app_not_found");
    let bob_cookie = app
        .send(
            app.client
                .get(app.url(path))
                .header("cookie", format!("sandpit_session={bob}")),
        )
        .await;
    proxy_page(&bob_cookie, StatusCode::NOT_FOUND, "app_not_found");
    // A made-up token is nobody.
    let forged = app
        .send(app.client.get(app.url(path)).bearer_auth("sp_forged"))
        .await;
    proxy_page(&forged, StatusCode::NOT_FOUND, "app_not_found");

    for owner in [
        app.client.get(app.url(path)).bearer_auth(&ada),
        app.client
            .get(app.url(path))
            .header("cookie", format!("sandpit_session={ada}")),
    ] {
        let answer = app.send(owner).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        assert_eq!(answer.body, json!({"message": "hello"}));
    }
}
