//! Workspace files through the API: the path type requests are parsed into, and how the
//! agent's file errors become API errors. Every operation itself happens inside the session's
//! sandbox (see `sandpit_sandbox::agent::files`), so nothing a learner plants in the workspace
//! can lead the server outside it.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sandpit_sandbox::protocol::FileError;
use sandpit_sandbox::{SandboxError, WorkspacePath};

use crate::config::SessionsConfig;
use crate::error::ApiError;

/// A path in a workspace as the files API accepts it: relative, `/`-separated, no `..`, no NUL,
/// no backslash or other control characters (so what a client shows is what exists), at most
/// [`WorkspacePath::MAX_LEN`] bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePath(WorkspacePath);

impl FilePath {
    pub fn parse(raw: &str) -> Result<Self, ApiError> {
        let invalid = |message: String| ApiError::Validation {
            field: "path",
            message,
        };
        if raw.contains('\\') {
            return Err(invalid("paths use `/`; a backslash is not allowed".into()));
        }
        if raw.chars().any(char::is_control) {
            return Err(invalid(
                "control characters are not allowed in paths".into(),
            ));
        }
        WorkspacePath::parse(raw)
            .map(Self)
            .map_err(|e| invalid(e.to_string()))
    }

    pub fn workspace(&self) -> &WorkspacePath {
        &self.0
    }
}

/// The API's answer to a failed file operation.
pub fn file_error(e: SandboxError, config: &SessionsConfig) -> ApiError {
    let SandboxError::File(e) = e else {
        return super::sandbox_error(e);
    };
    match e {
        FileError::NotFound => ApiError::NotFound("no such file or directory".into()),
        FileError::AlreadyExists => ApiError::Refused {
            code: "already_exists",
            message: "something already exists at that path".into(),
        },
        FileError::NotADirectory => ApiError::Refused {
            code: "not_a_directory",
            message: "a part of the path is a file, not a directory".into(),
        },
        FileError::IsADirectory => ApiError::Refused {
            code: "is_a_directory",
            message: "the path is a directory".into(),
        },
        FileError::TooLarge(limit) => ApiError::TooLarge {
            code: "too_large",
            message: format!("larger than the limit of {limit} bytes"),
        },
        FileError::NoSpace => ApiError::TooLarge {
            code: "workspace_full",
            message: format!(
                "the workspace is full: at most {} MiB (sessions.workspace_mb) and {} entries (sessions.max_files)",
                config.workspace_mb, config.max_files
            ),
        },
        FileError::Conflict { .. } => ApiError::PreconditionFailed(
            "the file changed since you read it (its ETag no longer matches)".into(),
        ),
        FileError::Refused(why) => ApiError::Validation {
            field: "path",
            message: why,
        },
        other => ApiError::internal(SandboxError::File(other)),
    }
}

/// What a write's `If-Match` / `If-None-Match` headers ask (the same for workspace and project
/// files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteIf {
    Anything,
    /// `If-None-Match: *`: only where nothing is.
    Absent,
    /// `If-Match: "<etag>"`: only over this version (a hex SHA-256).
    Sha256(String),
}

pub fn write_precondition(headers: &HeaderMap) -> Result<WriteIf, ApiError> {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    match (text(header::IF_MATCH), text(header::IF_NONE_MATCH)) {
        (Some(_), Some(_)) => Err(ApiError::BadRequest(
            "send If-Match or If-None-Match, not both".into(),
        )),
        (Some(tag), None) => parse_etag(tag).map(WriteIf::Sha256).ok_or_else(|| {
            ApiError::PreconditionFailed("If-Match does not name a version of this file".into())
        }),
        (None, Some(v)) if v.trim() == "*" => Ok(WriteIf::Absent),
        (None, Some(_)) => Err(ApiError::BadRequest(
            "only If-None-Match: * is supported on writes".into(),
        )),
        (None, None) => Ok(WriteIf::Anything),
    }
}

/// A file's bytes as a response: binary, never run as a page of this origin, with its ETag;
/// 304 when `If-None-Match` names this version.
pub fn file_response(data: Vec<u8>, sha256: &str, headers: &HeaderMap) -> Response {
    let unchanged = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| parse_etag(t).as_deref() == Some(sha256))
        });
    let mut response = if unchanged {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        data.into_response()
    };
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    // Learner content must never run as a page of this origin.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox; default-src 'none'"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(&etag(sha256)) {
        h.insert(header::ETAG, v);
    }
    response
}

/// An entity tag for file contents: the quoted hex SHA-256 the agent reports.
pub fn etag(sha256: &str) -> String {
    format!("\"{sha256}\"")
}

/// The SHA-256 inside an `If-Match` value (`"<hex>"`, optionally weak); `None` if it is not one
/// of ours (it then cannot match).
pub fn parse_etag(value: &str) -> Option<String> {
    let v = value.trim();
    let v = v.strip_prefix("W/").unwrap_or(v);
    let hex = v.strip_prefix('"')?.strip_suffix('"')?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| hex.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_paths_refuse_every_escape_spelling() {
        for bad in [
            "",
            ".",
            "..",
            "../etc/passwd",
            "a/../../b",
            "/etc/passwd",
            "a\\..\\b",
            "..\\x",
            "a\0b",
            "a\nb",
            "a\u{7f}",
        ] {
            assert!(FilePath::parse(bad).is_err(), "{bad:?} was accepted");
        }
        let long = "a/".repeat(3000);
        assert!(FilePath::parse(&long).is_err());
        assert_eq!(
            FilePath::parse("./src//main.py")
                .unwrap()
                .workspace()
                .as_str(),
            "src/main.py"
        );
        assert!(FilePath::parse("ünïcode/файл.txt").is_ok());
    }

    #[test]
    fn etags_round_trip_and_reject_strangers() {
        let sha = "ab".repeat(32);
        assert_eq!(parse_etag(&etag(&sha)), Some(sha.clone()));
        assert_eq!(parse_etag(&format!("W/{}", etag(&sha))), Some(sha));
        assert_eq!(parse_etag("*"), None);
        assert_eq!(parse_etag("\"abc\""), None);
        assert_eq!(parse_etag("nonsense"), None);
    }
}
