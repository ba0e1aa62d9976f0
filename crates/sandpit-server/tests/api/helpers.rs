use std::future::IntoFuture;
use std::sync::Arc;

use reqwest::{Method, StatusCode};
use sandpit_server::state::AppState;
use sandpit_server::{App, Config};
use secrecy::SecretString;
use serde_json::{Value, json};
use tempfile::TempDir;

pub struct TestApp {
    pub base: String,
    pub state: AppState,
    /// A client without a cookie store: tests pass tokens explicitly.
    pub client: reqwest::Client,
    dir: TempDir,
    config: Config,
    stop: tokio::sync::oneshot::Sender<()>,
    served: tokio::task::JoinHandle<anyhow::Result<()>>,
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Answer {
    /// Asserts the error envelope with this status and code; returns the message.
    #[track_caller]
    pub fn expect_error(&self, status: StatusCode, code: &str) -> String {
        assert_eq!(self.status, status, "body: {}", self.body);
        assert_eq!(self.body["error"]["code"], code, "body: {}", self.body);
        let message = self.body["error"]["message"].as_str().unwrap_or_default();
        assert!(!message.is_empty(), "empty message: {}", self.body);
        message.to_owned()
    }
}

pub fn test_config(dir: &TempDir) -> Config {
    let mut config = Config {
        data_dir: dir.path().join("data"),
        ..Config::default()
    };
    config.server.bind = "127.0.0.1:0".parse().unwrap();
    config.rate_limit.auth_per_minute = 10_000;
    config.rate_limit.api_per_minute = 100_000;
    config.sandbox.agent = sandpit_testkit::agent_argv();
    config.runs.warm_pool = 1;
    config
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(adjust: impl FnOnce(&mut Config)) -> Self {
        let dir = TempDir::new().unwrap();
        let mut config = test_config(&dir);
        adjust(&mut config);
        Self::start(dir, config).await
    }

    /// The same server on a fresh PostgreSQL database.
    pub async fn spawn_postgres() -> Self {
        let url = sandpit_testkit::postgres_url().await;
        Self::spawn_with(|c| c.database.url = Some(SecretString::from(url))).await
    }

    async fn start(dir: TempDir, config: Config) -> Self {
        let app = App::build(config.clone()).await.expect("server builds");
        let base = format!("http://{}", app.addr());
        let state = app.state().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(app.run_until(async move {
            let _ = stopped.into_future().await;
        }));
        Self {
            base,
            state,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            dir,
            config,
            stop,
            served,
        }
    }

    /// Shuts the server down gracefully and starts a new one on the same data directory (and
    /// database), on a new port.
    pub async fn restart(self) -> Self {
        self.restart_with(|_| {}).await
    }

    /// [`restart`](Self::restart) with a changed configuration.
    pub async fn restart_with(self, adjust: impl FnOnce(&mut Config)) -> Self {
        let Self {
            dir,
            mut config,
            stop,
            served,
            ..
        } = self;
        let _ = stop.send(());
        served.await.unwrap().unwrap();
        config.server.bind = "127.0.0.1:0".parse().unwrap();
        adjust(&mut config);
        Self::start(dir, config).await
    }

    /// The server's data directory.
    pub fn data_dir(&self) -> std::path::PathBuf {
        self.config.data_dir.clone()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Answer {
        let res = req.send().await.expect("request reaches the server");
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.bytes().await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Answer {
            status,
            headers,
            body,
        }
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut req = self.client.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        self.send(req).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Answer {
        self.call(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Answer {
        self.call(Method::POST, path, token, Some(body)).await
    }

    /// `GET /api/v1/auth/me` authenticated by a `Cookie` header value alone.
    pub async fn me_with_cookie(&self, cookie: &str) -> Answer {
        self.send(
            self.client
                .get(self.url("/api/v1/auth/me"))
                .header("cookie", cookie),
        )
        .await
    }

    /// Signs up `username` with a fixed good password; returns (user JSON, session token).
    pub async fn signup(&self, username: &str) -> (Value, String) {
        let a = self
            .post(
                "/api/v1/auth/signup",
                None,
                json!({"username": username, "password": "correct horse battery"}),
            )
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
        let token = a.body["token"].as_str().unwrap().to_owned();
        (a.body["user"].clone(), token)
    }

    /// Signs up and makes the user an admin directly in the store.
    pub async fn admin(&self, username: &str) -> (Value, String) {
        let (user, token) = self.signup(username).await;
        let id = user["id"].as_str().unwrap().parse().unwrap();
        self.state
            .store
            .set_user_role(id, sandpit_store::Role::Admin)
            .await
            .unwrap();
        (user, token)
    }

    pub fn store(&self) -> Arc<dyn sandpit_store::Store> {
        self.state.store.clone()
    }
}
