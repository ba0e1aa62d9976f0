//! Cross-site request forgery and WebSocket hijacking: with the session cookie, only this
//! server's own pages may change things or open a terminal. (Every route is covered by the
//! authorization matrix in `authz.rs`; this is the behaviour spelt out on one route.)

use reqwest::StatusCode;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::helpers::TestApp;

async fn live_sessions(app: &TestApp, token: &str) -> usize {
    let a = app.get("/api/v1/sessions", Some(token)).await;
    a.body["sessions"].as_array().unwrap().len()
}

#[tokio::test]
async fn a_foreign_page_cannot_act_with_the_cookie() {
    let app = TestApp::spawn_with(|c| {
        c.server.cors_allowed_origins = vec!["https://partner.example".into()];
    })
    .await;
    let (_, token) = app.signup("ada").await;
    let cookie = format!("sandpit_session={token}");
    let create = |origin: Option<&'static str>, bearer: bool| {
        let mut req = app.client.post(app.url("/api/v1/sessions"));
        req = if bearer {
            req.bearer_auth(&token)
        } else {
            req.header("cookie", &cookie)
        };
        if let Some(origin) = origin {
            req = req.header("origin", origin);
        }
        req
    };

    for origin in [
        "http://evil.example",
        "null",
        "http://127.0.0.1.evil.example",
        "https://127.0.0.1",
    ] {
        app.send(create(Some(origin), false))
            .await
            .expect_error(StatusCode::FORBIDDEN, "origin_not_allowed");
    }
    // A sibling page that a browser says is not this origin, without an Origin header.
    app.send(create(None, false).header("sec-fetch-site", "same-site"))
        .await
        .expect_error(StatusCode::FORBIDDEN, "origin_not_allowed");
    assert_eq!(live_sessions(&app, &token).await, 0, "nothing was created");

    // This server's own page, an allowed partner, a bearer client anywhere, a non-browser
    // client with the cookie: all may.
    let own = app.base.clone();
    let own: &'static str = own.leak();
    for req in [
        create(Some(own), false),
        create(Some("https://partner.example"), false),
        create(Some("http://evil.example"), true),
    ] {
        assert_eq!(app.send(req).await.status, StatusCode::CREATED);
    }
    assert_eq!(live_sessions(&app, &token).await, 3);

    // Reading is not a state change: a foreign Origin on a GET is CORS's business.
    let read = app
        .send(
            app.client
                .get(app.url("/api/v1/auth/me"))
                .header("cookie", &cookie)
                .header("origin", "http://evil.example"),
        )
        .await;
    assert_eq!(read.status, StatusCode::OK);

    // The terminal's WebSocket: the cookie from a foreign page is refused before the upgrade.
    let sessions = app.get("/api/v1/sessions", Some(&token)).await;
    let id = sessions.body["sessions"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let url = app
        .url(&format!("/api/v1/sessions/{id}/terminal"))
        .replacen("http", "ws", 1);
    let upgrade = |origin: &str| {
        let mut req = url.as_str().into_client_request().unwrap();
        req.headers_mut().insert("cookie", cookie.parse().unwrap());
        req.headers_mut().insert("origin", origin.parse().unwrap());
        tokio_tungstenite::connect_async(req)
    };
    match upgrade("http://evil.example").await {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
            assert_eq!(res.status(), StatusCode::FORBIDDEN);
        }
        other => panic!(
            "a foreign page opened the terminal: {:?}",
            other.map(|_| ())
        ),
    }
    let (mut ws, _) = upgrade(own).await.expect("this server's page opens it");
    ws.close(None).await.unwrap();
}
