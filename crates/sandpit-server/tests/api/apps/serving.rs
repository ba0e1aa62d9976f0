//! Serving through the platform's proxy: what an app sees of a request and what a visitor sees
//! of its response, in the path mode and on the apps domain (by `Host`), private apps, and
//! WebSockets.

use futures::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::{FASTAPI, launched, proxy_page, visit};
use crate::helpers::{Answer, TestApp};

/// A request to `path` on the host `host`, sent to the test server's address.
async fn on_host(app: &TestApp, host: &str, path: &str, cookie: Option<&str>) -> Answer {
    let mut req = app.client.get(app.url(path)).header("host", host);
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    app.send(req).await
}

fn location(a: &Answer) -> String {
    a.headers["location"].to_str().unwrap().to_owned()
}

/// Splits an absolute URL into its host (with port) and its path and query.
fn host_and_path(url: &str) -> (String, String) {
    let url = url::Url::parse(url).unwrap();
    let host = match url.port() {
        Some(p) => format!("{}:{p}", url.host_str().unwrap()),
        None => url.host_str().unwrap().to_owned(),
    };
    let path = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    };
    (host, path)
}

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

#[tokio::test]
async fn on_the_apps_domain_an_app_is_served_by_its_host_and_the_platform_is_not() {
    let app = TestApp::spawn_with(|c| c.apps.domain = "apps.test".into()).await;
    let (_, ada) = app.signup("ada").await;
    let (_, bob) = app.signup("bob").await;
    let port = app.base.rsplit(':').next().unwrap().to_owned();
    let id = launched(
        &app,
        &ada,
        json!({"name": "my-blog", "runtime": "python"}),
        &[("main.py", FASTAPI)],
    )
    .await;
    let view = app.get(&format!("/api/v1/apps/{id}"), Some(&ada)).await;
    assert_eq!(
        view.body["url"],
        format!("http://my-blog-ada.apps.test:{port}/"),
        "{}",
        view.body
    );

    let host = format!("my-blog-ada.apps.test:{port}");
    let root = on_host(&app, &host, "/", None).await;
    assert_eq!(root.status, StatusCode::OK, "{}", root.body);
    assert_eq!(root.body, json!({"message": "hello"}));
    // Its own origin: no sandboxing CSP needed; the app is at the root, with no prefix.
    assert!(!root.headers.contains_key("content-security-policy"));
    let seen = on_host(
        &app,
        &host,
        "/headers",
        Some(&format!("sandpit_session={ada}; mine=1")),
    )
    .await;
    assert!(
        seen.body.get("x-forwarded-prefix").is_none(),
        "{}",
        seen.body
    );
    assert_eq!(
        seen.body["x-forwarded-host"],
        host.as_str(),
        "{}",
        seen.body
    );
    assert_eq!(seen.body["cookie"], "mine=1", "{}", seen.body);
    // Upper case and no port are the same host.
    let upper = on_host(&app, "My-Blog-Ada.Apps.Test", "/", None).await;
    assert_eq!(upper.body, json!({"message": "hello"}), "{}", upper.body);

    // The platform's routes are not there: the app answers them (FastAPI's 404).
    let api = app
        .send(
            app.client
                .get(app.url("/api/v1/auth/me"))
                .header("host", &host)
                .bearer_auth(&ada),
        )
        .await;
    assert_eq!(api.status, StatusCode::NOT_FOUND, "{}", api.body);
    assert_eq!(api.body, json!({"detail": "Not Found"}));
    assert!(!api.headers.contains_key("x-sandpit-proxy"));
    // Nor on a host of the apps domain that is no app's, nor on the domain itself.
    for other in [
        format!("nothing-here.apps.test:{port}"),
        format!("apps.test:{port}"),
        format!("deep.my-blog-ada.apps.test:{port}"),
    ] {
        let a = on_host(
            &app,
            &other,
            "/api/v1/auth/me",
            Some(&format!("sandpit_session={ada}")),
        )
        .await;
        proxy_page(&a, StatusCode::NOT_FOUND, "app_not_found");
    }
    // The platform itself still answers on its own host.
    assert_eq!(
        app.get("/api/v1/auth/me", Some(&ada)).await.status,
        StatusCode::OK
    );

    // The path mode sends visitors to the app's host.
    let moved = visit(&app, "/user/ada/app/my-blog/headers?x=1").await;
    assert_eq!(moved.status, StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(
        location(&moved),
        format!("http://my-blog-ada.apps.test:{port}/headers?x=1")
    );

    // A private app: the host sends a visitor to the platform to be recognised.
    let patch = app
        .call(
            reqwest::Method::PATCH,
            &format!("/api/v1/apps/{id}"),
            Some(&ada),
            Some(json!({"public": false})),
        )
        .await;
    assert_eq!(patch.status, StatusCode::OK, "{}", patch.body);
    let locked = on_host(&app, &host, "/headers?x=1", None).await;
    assert_eq!(
        locked.status,
        StatusCode::TEMPORARY_REDIRECT,
        "{}",
        locked.body
    );
    let unlock = location(&locked);
    let (unlock_host, unlock_path) = host_and_path(&unlock);
    assert_eq!(format!("http://{unlock_host}"), app.base, "{unlock}");
    assert!(unlock_path.starts_with("/apps/unlock?"), "{unlock}");
    // Anonymous, another user, a forged ticket: the same refusal page.
    for cookie in [None, Some(format!("sandpit_session={bob}"))] {
        let refused = app
            .send({
                let req = app.client.get(app.url(&unlock_path));
                match &cookie {
                    Some(c) => req.header("cookie", c),
                    None => req,
                }
            })
            .await;
        let text = proxy_page(&refused, StatusCode::NOT_FOUND, "app_not_found");
        assert!(text.contains("sign in to sandpit as its owner"), "{text}");
    }
    let forged = on_host(&app, &host, "/.sandpit/unlock?ticket=x.1.00&path=/", None).await;
    proxy_page(&forged, StatusCode::NOT_FOUND, "app_not_found");
    let forged_cookie = on_host(&app, &host, "/", Some("sandpit_app_unlock=abc.123.00")).await;
    assert_eq!(forged_cookie.status, StatusCode::TEMPORARY_REDIRECT);
    // Other methods are refused outright rather than redirected.
    let post = app
        .send(
            app.client
                .post(app.url("/"))
                .header("host", &host)
                .body("x"),
        )
        .await;
    proxy_page(&post, StatusCode::NOT_FOUND, "app_not_found");

    // The owner, signed in on the platform, gets a ticket for the app's host…
    let ticket = app
        .send(
            app.client
                .get(app.url(&unlock_path))
                .header("cookie", format!("sandpit_session={ada}")),
        )
        .await;
    assert_eq!(
        ticket.status,
        StatusCode::TEMPORARY_REDIRECT,
        "{}",
        ticket.body
    );
    let (redeem_host, redeem_path) = host_and_path(&location(&ticket));
    assert_eq!(redeem_host, host);
    assert!(
        redeem_path.starts_with("/.sandpit/unlock?ticket="),
        "{redeem_path}"
    );
    // …which the app's host turns into its own cookie, and back to where they were going.
    let redeemed = on_host(&app, &host, &redeem_path, None).await;
    assert_eq!(redeemed.status, StatusCode::SEE_OTHER, "{}", redeemed.body);
    assert_eq!(location(&redeemed), "/headers?x=1");
    let set_cookie = redeemed.headers["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        set_cookie.starts_with("sandpit_app_unlock="),
        "{set_cookie}"
    );
    assert!(set_cookie.contains("HttpOnly"), "{set_cookie}");
    assert!(
        !set_cookie.to_ascii_lowercase().contains("domain"),
        "{set_cookie}"
    );
    let unlock_cookie = set_cookie.split(';').next().unwrap().to_owned();
    let inside = on_host(
        &app,
        &host,
        "/headers?x=1",
        Some(&format!("{unlock_cookie}; mine=2")),
    )
    .await;
    assert_eq!(inside.status, StatusCode::OK, "{}", inside.body);
    // The unlock cookie is the platform's: the app does not see it.
    assert_eq!(inside.body["cookie"], "mine=2", "{}", inside.body);

    // The cookie opens this app only.
    launched(
        &app,
        &ada,
        json!({"name": "other", "runtime": "static", "public": false}),
        &[("index.html", "other\n")],
    )
    .await;
    let elsewhere = on_host(
        &app,
        &format!("other-ada.apps.test:{port}"),
        "/",
        Some(&unlock_cookie),
    )
    .await;
    assert_eq!(
        elsewhere.status,
        StatusCode::TEMPORARY_REDIRECT,
        "{}",
        elsewhere.body
    );
}
