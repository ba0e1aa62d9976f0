//! The one error type of the HTTP API and its JSON envelope:
//! `{"error": {"code": "stable_snake_case", "message": "human text"}}`.
//!
//! Internal details are logged once here (inside the request's span, so with its request id)
//! and never sent to the client.

use std::time::Duration;

use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// An API failure. Each variant has a stable `code` clients may match on.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    InvalidJson(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("request body is too large")]
    PayloadTooLarge,
    /// Something over a configured size or count (413); `code` names it, the message the
    /// limit.
    #[error("{message}")]
    TooLarge { code: &'static str, message: String },
    /// `If-Match` / `If-None-Match` did not hold (412).
    #[error("{0}")]
    PreconditionFailed(String),
    /// Input that parsed but breaks a rule; `field` names what to fix.
    #[error("{field}: {message}")]
    Validation {
        field: &'static str,
        message: String,
    },
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("{0}")]
    Forbidden(&'static str),
    /// A request with the session cookie that changes state or opens a WebSocket, from a page
    /// of another origin (403; see `auth::origin`).
    #[error(
        "this page's origin may not act with your sign-in here; requests that change things \
         must come from this server's own pages (server.public_url, \
         server.cors_allowed_origins) or authenticate with Authorization: Bearer"
    )]
    ForeignOrigin,
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    Conflict(String),
    /// A request the resource's state refuses (409) with its own stable code, e.g.
    /// `session_ended`, `session_limit`.
    #[error("{message}")]
    Refused { code: &'static str, message: String },
    #[error("too many requests; retry in {} s", retry_after_secs(*.retry_after))]
    RateLimited { retry_after: Duration },
    /// A feature that is not configured on this server (e.g. GitHub sign-in).
    #[error("{0}")]
    NotEnabled(&'static str),
    /// The server cannot take this request now (busy, or a component such as the sandbox is
    /// unavailable); `retry_after` when waiting helps.
    #[error("{message}")]
    Unavailable {
        code: &'static str,
        message: String,
        retry_after: Option<Duration>,
    },
    /// A service sandpit depends on (e.g. GitHub) failed; the detail is logged, not sent.
    #[error("{public}")]
    Upstream {
        public: &'static str,
        detail: String,
    },
    /// Anything unexpected; logged with its cause chain, answered with a generic message.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

fn retry_after_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// The JSON body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable, machine-readable code (`validation_failed`, `unauthorized`, `rate_limited` …).
    #[schema(example = "validation_failed")]
    pub code: &'static str,
    /// What went wrong, for people.
    #[schema(example = "username: must be 3 to 32 characters")]
    pub message: String,
}

impl ApiError {
    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        ApiError::Internal(err.into())
    }

    pub fn not_found(what: &str) -> Self {
        ApiError::NotFound(format!("{what} not found"))
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) | ApiError::InvalidJson(_) => StatusCode::BAD_REQUEST,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge | ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            ApiError::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) | ApiError::ForeignOrigin => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) | ApiError::Refused { .. } => StatusCode::CONFLICT,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::NotEnabled(_) => StatusCode::NOT_FOUND,
            ApiError::Upstream { .. } => StatusCode::BAD_GATEWAY,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::InvalidJson(_) => "invalid_json",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::TooLarge { code, .. } => code,
            ApiError::PreconditionFailed(_) => "precondition_failed",
            ApiError::Validation { .. } => "validation_failed",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::ForeignOrigin => "origin_not_allowed",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::Conflict(_) => "conflict",
            ApiError::Refused { code, .. } => code,
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::NotEnabled(_) => "not_enabled",
            ApiError::Upstream { .. } => "upstream_error",
            ApiError::Unavailable { code, .. } => code,
            ApiError::Internal(_) => "internal_error",
        }
    }
}

impl ApiError {
    /// Logs what must be logged (internal details, once) and says what may be sent.
    fn log_once(&self) {
        match self {
            ApiError::Internal(err) => {
                tracing::error!(error = format!("{err:#}"), "internal error")
            }
            ApiError::Upstream { detail, .. } => {
                tracing::warn!(error.detail = %detail, "upstream failure")
            }
            _ => {}
        }
    }

    /// The envelope of this error, for errors sent inside a stream (logged like a response).
    pub fn into_envelope(self) -> ErrorEnvelope {
        self.log_once();
        ErrorEnvelope {
            error: ErrorBody {
                code: self.code(),
                message: self.to_string(),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.log_once();
        let status = self.status();
        let retry_after = match &self {
            ApiError::RateLimited { retry_after } => Some(retry_after_secs(*retry_after)),
            ApiError::Unavailable {
                retry_after: Some(retry_after),
                ..
            } => Some(retry_after_secs(*retry_after)),
            _ => None,
        };
        let body = ErrorEnvelope {
            error: ErrorBody {
                code: self.code(),
                message: self.to_string(),
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"sandpit\""),
            );
        }
        response
    }
}

impl From<sandpit_store::StoreError> for ApiError {
    fn from(err: sandpit_store::StoreError) -> Self {
        match err {
            sandpit_store::StoreError::NotFound => ApiError::NotFound("not found".into()),
            other => ApiError::Internal(other.into()),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::JsonDataError(e) => ApiError::Validation {
                field: "body",
                message: serde_detail(&e.body_text()),
            },
            JsonRejection::JsonSyntaxError(e) => {
                ApiError::InvalidJson(format!("malformed JSON: {}", serde_detail(&e.body_text())))
            }
            JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType(
                "expected a JSON body with Content-Type: application/json".into(),
            ),
            JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::PayloadTooLarge
            }
            other => ApiError::BadRequest(other.body_text()),
        }
    }
}

/// serde's messages start with axum's own prefix ("Failed to deserialize the JSON body into the
/// target type: "); keep only serde's part, which names the field and the position.
fn serde_detail(text: &str) -> String {
    text.rsplit_once(": ")
        .map_or(text, |(_, tail)| tail)
        .to_owned()
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::BadRequest(format!("invalid path: {}", rejection.body_text()))
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::BadRequest(format!("invalid query: {}", rejection.body_text()))
    }
}

/// `axum::Json` whose rejections become [`ApiError`]s (so they use the envelope).
#[derive(Debug, Clone, Copy, Default, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge
        } else {
            ApiError::BadRequest(rejection.body_text())
        }
    }
}

/// A raw request body (`axum::body::Bytes`) with enveloped rejections.
#[derive(Debug, Clone)]
pub struct Body(pub axum::body::Bytes);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        axum::body::Bytes::from_request(req, state)
            .await
            .map(Body)
            .map_err(ApiError::from)
    }
}

/// A JSON body that may be left out entirely (an empty or blank body is `T::default()`), for
/// requests whose every field is optional. Like [`Json`], malformed JSON is 400 `invalid_json`
/// and JSON of the wrong shape (an unknown field, a wrong type) 422 `validation_failed`.
#[derive(Debug, Clone, Default)]
pub struct OptionalJson<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned + Default> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let Body(body) = Body::from_request(req, state).await?;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(T::default()));
        }
        serde_json::from_slice(&body).map(Self).map_err(|e| {
            if e.is_data() {
                ApiError::Validation {
                    field: "body",
                    message: e.to_string(),
                }
            } else {
                ApiError::InvalidJson(format!("malformed JSON: {e}"))
            }
        })
    }
}

/// `axum::extract::Path` with enveloped rejections.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

/// `axum::extract::Query` with enveloped rejections.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

/// Result alias for handlers.
pub type ApiResult<T> = Result<T, ApiError>;
