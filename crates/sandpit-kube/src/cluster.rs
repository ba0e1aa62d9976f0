//! The narrow seam to the API server: the few calls the backend makes, each bounded by a
//! timeout, with errors sorted into "unreachable" (nothing answered in time) and "refused"
//! (the API server said no). Nothing here decides anything; the backend's logic lives in
//! pure functions ([`crate::state`], [`crate::reconcile`]).

use std::pin::Pin;
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret};
use kube::api::{Api, DeleteParams, ListParams, PostParams, WatchEvent, WatchParams};
use sandpit_sandbox::SandboxError;

use crate::config::KubeConfig;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("the Kubernetes API server is unreachable: {0}")]
    Unreachable(String),
    #[error("{what}: the Kubernetes API server answered {code} {reason}: {message}")]
    Refused {
        what: String,
        code: u16,
        reason: String,
        message: String,
    },
    #[error("{what}: {source}")]
    Other { what: String, source: kube::Error },
}

impl ApiError {
    fn code(&self) -> Option<u16> {
        match self {
            Self::Refused { code, .. } => Some(*code),
            _ => None,
        }
    }
}

impl From<ApiError> for SandboxError {
    fn from(e: ApiError) -> Self {
        match e {
            // Missing rights or an unreachable API server: no sandbox can be made until an
            // operator acts, which is what Unavailable tells the caller.
            ApiError::Unreachable(_)
            | ApiError::Refused {
                code: 401 | 403, ..
            } => SandboxError::Unavailable(e.to_string()),
            other => SandboxError::Setup(other.to_string()),
        }
    }
}

/// An event of a watched pod: its new state, or `None` once it is deleted.
pub type PodEvents = Pin<Box<dyn Stream<Item = Result<Option<Pod>, ApiError>> + Send>>;

/// The API calls of one namespace.
#[derive(Clone)]
pub struct Cluster {
    pods: Api<Pod>,
    secrets: Api<Secret>,
    claims: Api<PersistentVolumeClaim>,
    timeout: Duration,
}

impl Cluster {
    /// A client for `config.namespace`: `config.api_url` if set, else the inferred config.
    /// Makes no call yet.
    pub async fn connect(config: &KubeConfig) -> Result<Self, SandboxError> {
        let timeout = config.api_timeout();
        let mut client_config = match &config.api_url {
            Some(url) => kube::Config::new(url.parse().map_err(|e| {
                SandboxError::Unavailable(format!("kubernetes.api_url {url:?}: {e}"))
            })?),
            None => tokio::time::timeout(timeout, kube::Config::infer())
                .await
                .map_err(|_| {
                    SandboxError::Unavailable(
                        "inferring the Kubernetes client configuration took too long".into(),
                    )
                })?
                .map_err(|e| {
                    SandboxError::Unavailable(format!(
                        "no Kubernetes client configuration (kubeconfig or in-cluster): {e}"
                    ))
                })?,
        };
        client_config.connect_timeout = Some(timeout);
        client_config.write_timeout = Some(timeout);
        // No read timeout: a watch is quiet for as long as nothing changes. Every call is
        // bounded by `timeout` here instead, and each watch by its own deadline.
        client_config.read_timeout = None;
        let client = kube::Client::try_from(client_config).map_err(|e| {
            SandboxError::Unavailable(format!("building the Kubernetes client: {e}"))
        })?;
        let ns = config.namespace.as_str();
        Ok(Self {
            pods: Api::namespaced(client.clone(), ns),
            secrets: Api::namespaced(client.clone(), ns),
            claims: Api::namespaced(client, ns),
            timeout,
        })
    }

    async fn call<T>(
        &self,
        what: impl FnOnce() -> String,
        fut: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, ApiError> {
        match tokio::time::timeout(self.timeout, fut).await {
            Err(_) => Err(ApiError::Unreachable(format!(
                "{}: no answer within {} ms",
                what(),
                self.timeout.as_millis()
            ))),
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(classify(what(), e)),
        }
    }

    pub async fn create_pod(&self, pod: &Pod) -> Result<Pod, ApiError> {
        let name = pod.metadata.name.clone().unwrap_or_default();
        self.call(
            || format!("creating pod {name}"),
            self.pods.create(&PostParams::default(), pod),
        )
        .await
    }

    pub async fn get_pod(&self, name: &str) -> Result<Option<Pod>, ApiError> {
        not_found_is_none(
            self.call(|| format!("reading pod {name}"), self.pods.get(name))
                .await,
        )
    }

    /// Deletes a pod now (no grace: a sandbox's processes need none). Gone already is fine.
    pub async fn delete_pod(&self, name: &str) -> Result<(), ApiError> {
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            ..DeleteParams::background()
        };
        let deleted = self
            .call(
                || format!("deleting pod {name}"),
                self.pods.delete(name, &params),
            )
            .await;
        not_found_is_none(deleted).map(drop)
    }

    /// Pods matching `selector`, at most `limit` (all with `None`).
    pub async fn list_pods(
        &self,
        selector: &str,
        limit: Option<u32>,
    ) -> Result<Vec<Pod>, ApiError> {
        let mut params = ListParams::default().labels(selector);
        params.limit = limit;
        let list = self
            .call(
                || format!("listing pods {selector}"),
                self.pods.list(&params),
            )
            .await?;
        Ok(list.items)
    }

    /// Changes to pod `name` after `resource_version`, for at most `timeout`.
    pub async fn watch_pod(
        &self,
        name: &str,
        resource_version: &str,
        timeout: Duration,
    ) -> Result<PodEvents, ApiError> {
        let params = WatchParams::default()
            .fields(&format!("metadata.name={name}"))
            .timeout(u32::try_from(timeout.as_secs().max(1)).unwrap_or(u32::MAX));
        let stream = self
            .call(
                || format!("watching pod {name}"),
                self.pods.watch(&params, resource_version),
            )
            .await?;
        let name = name.to_owned();
        Ok(stream
            .filter_map(move |event| {
                let name = name.clone();
                async move {
                    match event {
                        Ok(WatchEvent::Added(pod) | WatchEvent::Modified(pod)) => {
                            Some(Ok(Some(pod)))
                        }
                        Ok(WatchEvent::Deleted(_)) => Some(Ok(None)),
                        Ok(WatchEvent::Bookmark(_)) => None,
                        Ok(WatchEvent::Error(status)) => Some(Err(ApiError::Refused {
                            what: format!("watching pod {name}"),
                            code: status.code,
                            reason: status.reason,
                            message: status.message,
                        })),
                        Err(e) => Some(Err(classify(format!("watching pod {name}"), e))),
                    }
                }
            })
            .boxed())
    }

    pub async fn create_secret(&self, secret: &Secret) -> Result<(), ApiError> {
        let name = secret.metadata.name.clone().unwrap_or_default();
        self.call(
            || format!("creating secret {name}"),
            self.secrets.create(&PostParams::default(), secret),
        )
        .await
        .map(drop)
    }

    pub async fn get_secret(&self, name: &str) -> Result<Option<Secret>, ApiError> {
        not_found_is_none(
            self.call(|| format!("reading secret {name}"), self.secrets.get(name))
                .await,
        )
    }

    pub async fn delete_secret(&self, name: &str) -> Result<(), ApiError> {
        let deleted = self
            .call(
                || format!("deleting secret {name}"),
                self.secrets.delete(name, &DeleteParams::default()),
            )
            .await;
        not_found_is_none(deleted).map(drop)
    }

    /// Creates the claim unless it exists (a session's claim outlives its pods).
    pub async fn ensure_claim(&self, claim: &PersistentVolumeClaim) -> Result<(), ApiError> {
        let name = claim.metadata.name.clone().unwrap_or_default();
        match self
            .call(
                || format!("creating claim {name}"),
                self.claims.create(&PostParams::default(), claim),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some(409) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Whether claim `name` exists.
    pub async fn has_claim(&self, name: &str) -> Result<bool, ApiError> {
        let claim = not_found_is_none(
            self.call(|| format!("reading claim {name}"), self.claims.get(name))
                .await,
        )?;
        Ok(claim.is_some())
    }

    pub async fn delete_claim(&self, name: &str) -> Result<(), ApiError> {
        let deleted = self
            .call(
                || format!("deleting claim {name}"),
                self.claims.delete(name, &DeleteParams::default()),
            )
            .await;
        not_found_is_none(deleted).map(drop)
    }
}

fn not_found_is_none<T>(result: Result<T, ApiError>) -> Result<Option<T>, ApiError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(e) if e.code() == Some(404) => Ok(None),
        Err(e) => Err(e),
    }
}

fn classify(what: String, e: kube::Error) -> ApiError {
    match e {
        kube::Error::Api(status) => ApiError::Refused {
            what,
            code: status.code,
            reason: status.reason,
            message: status.message,
        },
        // The API server answered, with something that is not what it should be.
        e @ (kube::Error::SerdeError(_) | kube::Error::BuildRequest(_)) => {
            ApiError::Other { what, source: e }
        }
        // Connecting, TLS, the connection dropping, a proxy: nothing usable answered.
        other => ApiError::Unreachable(format!("{what}: {other}")),
    }
}
