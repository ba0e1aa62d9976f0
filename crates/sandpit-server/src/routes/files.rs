//! `/api/v1/sessions/{id}/files` and `/archive`: a session's workspace through the API. Every
//! operation runs inside the session's sandbox (the agent), as the sandbox's user, never
//! following a link out of the workspace.

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use sandpit_sandbox::protocol::{EntryKind, Precondition, TreeEntry, UnpackLimits};

use super::openapi::Binary;
use crate::auth::CurrentUser;
use crate::error::{ApiError, ApiResult, Body, ErrorEnvelope, Json, Path, Query};
use crate::sessions::files::{
    FilePath, WriteIf, etag, file_error, file_response, write_precondition,
};
use crate::state::AppState;

pub fn router(state: &AppState) -> OpenApiRouter<AppState> {
    let c = &state.config.sessions;
    // Bodies a little over the limits, so the limit itself answers with its own message.
    let file_body = usize::try_from(c.max_file_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(1);
    let archive_body = usize::try_from(c.max_archive_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(1);
    OpenApiRouter::new()
        .routes(routes!(list_files))
        .routes(routes!(ensure_default))
        .routes(routes!(read_file, write_file, delete_file, file_op))
        .layer(DefaultBodyLimit::max(file_body))
        .merge(
            OpenApiRouter::new()
                .routes(routes!(download_archive, upload_archive))
                .layer(DefaultBodyLimit::max(archive_body)),
        )
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FileEntry {
    /// Relative to the workspace, `/`-separated.
    pub path: String,
    /// `file`, `dir`, `symlink` or `other` (FIFOs, sockets, devices).
    #[schema(example = "file")]
    pub kind: &'static str,
    pub size: u64,
    pub modified: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FileTree {
    pub entries: Vec<FileEntry>,
    /// More entries exist than were listed (`sessions.max_files`).
    pub truncated: bool,
}

fn entry(e: TreeEntry) -> FileEntry {
    FileEntry {
        kind: match e.kind {
            EntryKind::File => "file",
            EntryKind::Dir => "dir",
            EntryKind::Symlink => "symlink",
            EntryKind::Other => "other",
        },
        path: e.path,
        size: e.size,
        modified: DateTime::from_timestamp_millis(e.modified_ms),
    }
}

async fn tree(
    state: &AppState,
    user: Uuid,
    id: Uuid,
    dir: Option<&FilePath>,
) -> ApiResult<FileTree> {
    let config = state.sessions.config();
    let sandbox = state.sessions.sandbox(user, id).await?;
    let max = u32::try_from(config.max_files).unwrap_or(u32::MAX);
    let listing = sandbox
        .tree(dir.map(FilePath::workspace), max)
        .await
        .map_err(|e| file_error(e, config))?;
    Ok(FileTree {
        entries: listing.entries.into_iter().map(entry).collect(),
        truncated: listing.truncated,
    })
}

/// The workspace's tree: every entry, depth first, never following links.
#[utoipa::path(get, path = "/api/v1/sessions/{id}/files", tag = "sessions",
    security(("session_cookie" = []), ("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, body = FileTree),
        (status = 401, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 409, description = "`session_ended`", body = ErrorEnvelope),
        (status = 503, description = "`sandbox_unavailable`: this host cannot start the session's sandbox", body = ErrorEnvelope),
    ))]
async fn list_files(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<FileTree>> {
    Ok(Json(tree(&state, principal.user.id, id, None).await?))
}

/// A file's contents (binary-safe, with an `ETag`); a directory answers its tree as JSON.
#[utoipa::path(get, path = "/api/v1/sessions/{id}/files/{*path}", tag = "sessions",
    security(("session_cookie" = []), ("bearer" = [])),
    params(("id" = Uuid, Path), ("path" = String, Path, description = "Path in the workspace")),
    responses(
        (status = 200, description = "The file's bytes, or a directory's tree as JSON", content(
            (Binary = "application/octet-stream"),
            (FileTree = "application/json"),
        )),
        (status = 304, description = "Unchanged (`If-None-Match`)"),
        (status = 401, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope),
        (status = 413, description = "Larger than `sessions.max_file_bytes`", body = ErrorEnvelope),
        (status = 422, description = "Invalid path, or a link on the way", body = ErrorEnvelope),
        (status = 503, description = "`sandbox_unavailable`: this host cannot start the session's sandbox", body = ErrorEnvelope),
    ))]
async fn read_file(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
    Path((id, raw)): Path<(Uuid, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let path = FilePath::parse(&raw)?;
    let config = state.sessions.config();
    let user = principal.user.id;
    let sandbox = state.sessions.sandbox(user, id).await?;
    let stat = sandbox
        .stat(path.workspace())
        .await
        .map_err(|e| file_error(e, config))?;
    if stat.kind == EntryKind::Dir {
        return Ok(Json(tree(&state, user, id, Some(&path)).await?).into_response());
    }
    let (data, sha) = sandbox
        .read_file_with_hash(path.workspace(), config.max_file_bytes)
        .await
        .map_err(|e| file_error(e, config))?;
    Ok(file_response(data, &sha, &headers))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Written {
    pub path: String,
    pub size: u64,
    /// The new contents' entity tag (send it as `If-Match` with the next write).
    pub etag: String,
}

/// Create or replace a file (parents are created). `If-Match: "<etag>"` writes only over that
/// version; `If-None-Match: *` only where nothing exists — else 412.
#[utoipa::path(put, path = "/api/v1/sessions/{id}/files/{*path}", tag = "sessions",
    security(("session_cookie" = []), ("bearer" = [])),
    params(("id" = Uuid, Path), ("path" = String, Path, description = "Path in the workspace")),
    request_body(content = Binary, content_type = "application/octet-stream"),
    responses(
        (status = 200, description = "Replaced", body = Written),
        (status = 201, description = "Created", body = Written),
        (status = 401, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope),
        (status = 412, description = "The precondition did not hold", body = ErrorEnvelope),
        (status = 413, description = "Over `sessions.max_file_bytes`, or the workspace is full", body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope),
        (status = 503, description = "`sandbox_unavailable`: this host cannot start the session's sandbox", body = ErrorEnvelope),
    ))]
async fn write_file(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
    Path((id, raw)): Path<(Uuid, String)>,
    headers: HeaderMap,
    Body(body): Body,
) -> ApiResult<Response> {
    let path = FilePath::parse(&raw)?;
    let config = state.sessions.config();
    if body.len() as u64 > config.max_file_bytes {
        return Err(file_too_large(config.max_file_bytes));
    }
    let expect = match write_precondition(&headers)? {
        WriteIf::Anything => None,
        WriteIf::Absent => Some(Precondition::Absent),
        WriteIf::Sha256(sha) => Some(Precondition::Sha256(sha)),
    };
    let sandbox = state.sessions.sandbox(principal.user.id, id).await?;
    let existed = match sandbox.stat(path.workspace()).await {
        Ok(_) => true,
        Err(sandpit_sandbox::SandboxError::File(
            sandpit_sandbox::protocol::FileError::NotFound,
        )) => false,
        Err(e) => return Err(file_error(e, config)),
    };
    let size = body.len() as u64;
    let sha = sandbox
        .write_file_if(path.workspace(), body.to_vec(), 0o644, expect)
        .await
        .map_err(|e| file_error(e, config))?;
    let tag = etag(&sha);
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let mut response = (
        status,
        Json(Written {
            path: path.workspace().as_str().to_owned(),
            size,
            etag: tag.clone(),
        }),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&tag) {
        response.headers_mut().insert(header::ETAG, v);
    }
    Ok(response)
}

fn file_too_large(limit: u64) -> ApiError {
    ApiError::TooLarge {
        code: "file_too_large",
        message: format!("files are limited to {limit} bytes (sessions.max_file_bytes)"),
    }
}

/// Delete a file, a link, or a directory with everything in it.
#[utoipa::path(delete, path = "/api/v1/sessions/{id}/files/{*path}", tag = "sessions",
    security(("session_cookie" = []), ("bearer" = [])),
    params(("id" = Uuid, Path), ("path" = String, Path, description = "Path in the workspace")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope),
        (status = 503, description = "`sandbox_unavailable`: this host cannot start the session's sandbox", body = ErrorEnvelope),
    ))]
async fn delete_file(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
    Path((id, raw)): Path<(Uuid, String)>,
) -> ApiResult<StatusCode> {
    let path = FilePath::parse(&raw)?;
    let config = state.sessions.config();
    let sandbox = state.sessions.sandbox(principal.user.id, id).await?;
    sandbox
        .remove(path.workspace())
        .await
        .map_err(|e| file_error(e, config))?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FileOp {
    /// `mkdir` (with parents) or `move`.
    pub op: String,
    /// `move`: the destination path.
    pub to: Option<String>,
    /// `move`: replace what is at `to`.
    #[serde(default)]
    pub overwrite: bool,
}

/// `?op=mkdir` makes a directory (and its parents); `?op=move&to=…[&overwrite=true]` moves or
/// renames.
#[utoipa::path(post, path = "/api/v1/sessions/{id}/files/{*path}", tag = "sessions",
    security(("session_cookie" = []), ("bearer" = [])),
    params(("id" = Uuid, Path), ("path" = String, Path, description = "Path in the workspace"), FileOp),
    responses(
        (status = 200, description = "Moved", body = FileEntry),
        (status = 201, description = "Directory made", body = FileEntry),
        (status = 401, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 409, description = "`already_exists`, `session_ended` …", body = ErrorEnvelope),
        (status = 413, description = "The workspace is full", body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope),
        (status = 503, description = "`sandbox_unavailable`: this host cannot start the session's sandbox", body = ErrorEnvelope),
    ))]
async fn file_op(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
    Path((id, raw)): Path<(Uuid, String)>,
    Query(op): Query<FileOp>,
) -> ApiResult<(StatusCode, Json<FileEntry>)> {
    let path = FilePath::parse(&raw)?;
    let config = state.sessions.config();
    let fail = |e| file_error(e, config);
    match op.op.as_str() {
        "mkdir" => {
            let sandbox = state.sessions.sandbox(principal.user.id, id).await?;
            sandbox.mkdir(path.workspace()).await.map_err(fail)?;
            let made = sandbox.stat(path.workspace()).await.map_err(fail)?;
            Ok((StatusCode::CREATED, Json(entry(made))))
        }
        "move" => {
            let to = op.to.as_deref().ok_or_else(|| ApiError::Validation {
                field: "to",
                message: "move needs a destination `to`".into(),
            })?;
            let to = FilePath::parse(to).map_err(|_| ApiError::Validation {
                field: "to",
                message: "not a valid workspace path".into(),
            })?;
            let sandbox = state.sessions.sandbox(principal.user.id, id).await?;
            sandbox
                .rename(path.workspace(), to.workspace(), op.overwrite)
                .await
                .map_err(fail)?;
            let moved = sandbox.stat(to.workspace()).await.map_err(fail)?;
            Ok((StatusCode::OK, Json(entry(moved))))
        }
        _ => Err(ApiError::Validation {
            field: "op",
            message: "must be mkdir or move".into(),
        }),
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Restored {
    /// Files written.
    pub restored: usize,
}

/// Put the environment's default files into an empty workspace (409 when it is not empty).
#[utoipa::path(post, path = "/api/v1/sessions/{id}/files/ensure-default", tag = "sessions",
    security(("session_cookie" = []), ("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, body = Restored),
        (status = 401, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 409, description = "`workspace_not_empty`, `session_ended`", body = ErrorEnvelope),
        (status = 503, description = "`sandbox_unavailable`: this host cannot start the session's sandbox", body = ErrorEnvelope),
    ))]
async fn ensure_default(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Restored>> {
    let restored = state
        .sessions
        .restore_default_files(principal.user.id, id)
        .await?;
    Ok(Json(Restored { restored }))
}

/// Download the workspace as a `.tar.gz` (links kept as links; FIFOs and devices left out).
#[utoipa::path(get, path = "/api/v1/sessions/{id}/archive", tag = "sessions",
    security(("session_cookie" = []), ("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, description = "The archive", body = Binary, content_type = "application/gzip"),
        (status = 401, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope),
        (status = 413, description = "Over `sessions.max_archive_bytes`", body = ErrorEnvelope),
        (status = 503, description = "`sandbox_unavailable`: this host cannot start the session's sandbox", body = ErrorEnvelope),
    ))]
async fn download_archive(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
    Path(id): Path<Uuid>,
) -> ApiResult<Response> {
    let config = state.sessions.config();
    let sandbox = state.sessions.sandbox(principal.user.id, id).await?;
    let archive =
        sandbox
            .pack(None, config.max_archive_bytes)
            .await
            .map_err(|e| match file_error(e, config) {
                ApiError::TooLarge { .. } => ApiError::TooLarge {
                    code: "archive_too_large",
                    message: format!(
                        "the workspace packs to more than {} bytes (sessions.max_archive_bytes)",
                        config.max_archive_bytes
                    ),
                },
                other => other,
            })?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/gzip"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"workspace.tar.gz\"",
            ),
        ],
        archive,
    )
        .into_response())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Uploaded {
    /// Entries unpacked and the bytes of their files.
    pub entries: u32,
    pub bytes: u64,
}

/// Upload a `.tar.gz` and unpack it into the workspace (merging with what is there). Refused
/// whole — nothing written — when an entry escapes, is a link, device or FIFO, or the archive
/// unpacks beyond the limits.
#[utoipa::path(post, path = "/api/v1/sessions/{id}/archive", tag = "sessions",
    security(("session_cookie" = []), ("bearer" = [])),
    params(("id" = Uuid, Path)),
    request_body(content = Binary, content_type = "application/gzip"),
    responses(
        (status = 200, body = Uploaded),
        (status = 401, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope),
        (status = 413, description = "Over a size or count limit", body = ErrorEnvelope),
        (status = 422, description = "An entry is refused, or the archive is damaged", body = ErrorEnvelope),
        (status = 503, description = "`sandbox_unavailable`: this host cannot start the session's sandbox", body = ErrorEnvelope),
    ))]
async fn upload_archive(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
    Path(id): Path<Uuid>,
    Body(body): Body,
) -> ApiResult<Json<Uploaded>> {
    let config = state.sessions.config();
    if body.len() as u64 > config.max_archive_bytes {
        return Err(ApiError::TooLarge {
            code: "archive_too_large",
            message: format!(
                "archives are limited to {} bytes (sessions.max_archive_bytes)",
                config.max_archive_bytes
            ),
        });
    }
    let limits = UnpackLimits {
        max_entries: u32::try_from(config.max_files).unwrap_or(u32::MAX),
        max_total_bytes: config.workspace_mb << 20,
        max_file_bytes: config.max_file_bytes,
    };
    let sandbox = state.sessions.sandbox(principal.user.id, id).await?;
    let done = sandbox
        .unpack(None, body.to_vec(), limits)
        .await
        .map_err(|e| match file_error(e, config) {
            ApiError::Validation { message, .. } => ApiError::Validation {
                field: "archive",
                message,
            },
            ApiError::TooLarge { .. } => ApiError::TooLarge {
                code: "archive_too_large",
                message: format!(
                    "the archive unpacks beyond the limits: {} entries, {} bytes per file, {} MiB in all",
                    limits.max_entries, limits.max_file_bytes, config.workspace_mb
                ),
            },
            other => other,
        })?;
    Ok(Json(Uploaded {
        entries: done.entries,
        bytes: done.bytes,
    }))
}
