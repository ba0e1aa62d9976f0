//! `/api/v1/projects`: a user's projects, their files (as the workspace files API does them:
//! binary-safe, ETags, `If-Match`), archives both ways, and opening one as a session or saving
//! a session into one.

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sandpit_store::Expect;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::model::{
    CreateProject, Moved, OpenProject, OpenedProject, ProjectFileOp, ProjectList, ProjectTree,
    ProjectUploaded, ProjectView, ProjectWritten, SaveProject, SavedProject, UpdateProject,
};
use crate::auth::CurrentUser;
use crate::error::{ApiError, ApiResult, Body, ErrorEnvelope, Json, OptionalJson, Path, Query};
use crate::routes::openapi::Binary;
use crate::sessions::files::{FilePath, WriteIf, etag, file_response, write_precondition};
use crate::state::AppState;

pub fn router(state: &AppState) -> OpenApiRouter<AppState> {
    let c = state.projects.config();
    // A little over the limits, so the limit itself answers with its own message.
    let file_body = usize::try_from(c.max_file_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(1);
    let archive_body = usize::try_from(c.max_archive_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(1);
    OpenApiRouter::new()
        .routes(routes!(create_project, list_projects))
        .routes(routes!(get_project, update_project, delete_project))
        .routes(routes!(list_files))
        .routes(routes!(read_file, write_file, delete_file, file_op))
        .routes(routes!(open_project))
        .routes(routes!(save_project))
        .layer(DefaultBodyLimit::max(file_body))
        .merge(
            OpenApiRouter::new()
                .routes(routes!(download_archive, upload_archive))
                .layer(DefaultBodyLimit::max(archive_body)),
        )
}

/// Create a project, from a template's files.
#[utoipa::path(post, path = "/api/v1/projects", tag = "projects",
    security(("session_cookie" = []), ("bearer" = [])),
    request_body = CreateProject,
    responses(
        (status = 201, body = ProjectView),
        (status = 409, description = "`conflict`: the name is taken; `project_limit`: too many projects", body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope),
    ))]
async fn create_project(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
    Json(req): Json<CreateProject>,
) -> ApiResult<(StatusCode, Json<ProjectView>)> {
    let project = state.projects.create(principal.user.id, req).await?;
    Ok((StatusCode::CREATED, Json(project)))
}

/// The caller's projects, newest first.
#[utoipa::path(get, path = "/api/v1/projects", tag = "projects",
    security(("session_cookie" = []), ("bearer" = [])),
    responses((status = 200, body = ProjectList)))]
async fn list_projects(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
) -> ApiResult<Json<ProjectList>> {
    Ok(Json(ProjectList {
        projects: state.projects.list(principal.user.id).await?,
    }))
}

#[utoipa::path(get, path = "/api/v1/projects/{id}", tag = "projects",
    security(("session_cookie" = []), ("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = ProjectView), (status = 404, body = ErrorEnvelope)))]
async fn get_project(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<ProjectView>> {
    Ok(Json(
        state.projects.owned(principal.user.id, id).await?.into(),
    ))
}

/// Rename or redescribe a project.
#[utoipa::path(patch, path = "/api/v1/projects/{id}", tag = "projects",
    security(("session_cookie" = []), ("bearer" = [])),
    params(("id" = Uuid, Path)),
    request_body = UpdateProject,
    responses(
        (status = 200, body = ProjectView),
        (status = 404, body = ErrorEnvelope),
        (status = 409, description = "`conflict`: the name is taken", body = ErrorEnvelope),
    ))]
async fn update_project(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
    Path(id): Path<Uuid>,
    Json(req): Json<UpdateProject>,
) -> ApiResult<Json<ProjectView>> {
    Ok(Json(
        state.projects.update(principal.user.id, id, req).await?,
    ))
}

/// Delete a project and its files.
#[utoipa::path(delete, path = "/api/v1/projects/{id}", tag = "projects",
    security(("session_cookie" = []), ("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 204, description = "Deleted"), (status = 404, body = ErrorEnvelope)))]
async fn delete_project(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    state.projects.delete(principal.user.id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The project's files and the directories they imply, in path order.
#[utoipa::path(get, path = "/api/v1/projects/{id}/files", tag = "projects",
    security(("session_cookie" = []), ("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = ProjectTree), (status = 404, body = ErrorEnvelope)))]
async fn list_files(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<ProjectTree>> {
    Ok(Json(
        state.projects.tree(principal.user.id, id, None).await?,
    ))
}

/// A file's bytes (with its `ETag`), or a directory's tree as JSON.
#[utoipa::path(get, path = "/api/v1/projects/{id}/files/{*path}", tag = "projects",
    security(("session_cookie" = []), ("bearer" = [])),
    params(("id" = Uuid, Path), ("path" = String, Path, description = "Path in the project")),
    responses(
        (status = 200, description = "The file's bytes, or a directory's tree as JSON", content(
            (Binary = "application/octet-stream"),
            (ProjectTree = "application/json"),
        )),
        (status = 304, description = "Unchanged (`If-None-Match`)"),
        (status = 404, body = ErrorEnvelope),
        (status = 422, description = "Invalid path", body = ErrorEnvelope),
    ))]
async fn read_file(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
    Path((id, raw)): Path<(Uuid, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let path = FilePath::parse(&raw)?;
    let user = principal.user.id;
    match state.projects.read(user, id, &path).await? {
        Some(file) => Ok(file_response(file.content, &file.meta.sha256, &headers)),
        None => Ok(Json(state.projects.tree(user, id, Some(&path)).await?).into_response()),
    }
}

/// Create or replace a file (its directories are implied). `If-Match: "<etag>"` writes only
/// over that version; `If-None-Match: *` only where nothing is — else 412.
#[utoipa::path(put, path = "/api/v1/projects/{id}/files/{*path}", tag = "projects",
    security(("session_cookie" = []), ("bearer" = [])),
    params(("id" = Uuid, Path), ("path" = String, Path, description = "Path in the project")),
    request_body(content = Binary, content_type = "application/octet-stream"),
    responses(
        (status = 200, description = "Replaced", body = ProjectWritten),
        (status = 201, description = "Created", body = ProjectWritten),
        (status = 404, body = ErrorEnvelope),
        (status = 409, description = "`is_a_directory`, `not_a_directory`", body = ErrorEnvelope),
        (status = 412, description = "The precondition did not hold", body = ErrorEnvelope),
        (status = 413, description = "`file_too_large`, `project_full`", body = ErrorEnvelope),
        (status = 422, description = "Invalid path", body = ErrorEnvelope),
    ))]
async fn write_file(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
    Path((id, raw)): Path<(Uuid, String)>,
    headers: HeaderMap,
    Body(body): Body,
) -> ApiResult<Response> {
    let path = FilePath::parse(&raw)?;
    let expect = match write_precondition(&headers)? {
        WriteIf::Anything => Expect::Anything,
        WriteIf::Absent => Expect::Absent,
        WriteIf::Sha256(sha) => Expect::Sha256(sha),
    };
    let size = body.len() as u64;
    let (created, sha) = state
        .projects
        .write(principal.user.id, id, &path, body.to_vec(), expect)
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let tag = etag(&sha);
    let mut response = (
        status,
        Json(ProjectWritten {
            path: path.workspace().as_str().to_owned(),
            size,
            etag: tag.clone(),
        }),
    )
        .into_response();
    if let Ok(v) = tag.parse() {
        response.headers_mut().insert(header::ETAG, v);
    }
    Ok(response)
}

/// Delete a file, or a directory with every file under it.
#[utoipa::path(delete, path = "/api/v1/projects/{id}/files/{*path}", tag = "projects",
    security(("session_cookie" = []), ("bearer" = [])),
    params(("id" = Uuid, Path), ("path" = String, Path, description = "Path in the project")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, body = ErrorEnvelope),
        (status = 422, description = "Invalid path", body = ErrorEnvelope),
    ))]
async fn delete_file(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
    Path((id, raw)): Path<(Uuid, String)>,
) -> ApiResult<StatusCode> {
    let path = FilePath::parse(&raw)?;
    state
        .projects
        .delete_path(principal.user.id, id, &path)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `?op=move&to=…[&overwrite=true]` moves or renames a file or a directory.
#[utoipa::path(post, path = "/api/v1/projects/{id}/files/{*path}", tag = "projects",
    security(("session_cookie" = []), ("bearer" = [])),
    params(("id" = Uuid, Path), ("path" = String, Path, description = "Path in the project"), ProjectFileOp),
    responses(
        (status = 200, body = Moved),
        (status = 404, body = ErrorEnvelope),
        (status = 409, description = "`already_exists`, `not_a_directory`", body = ErrorEnvelope),
        (status = 422, description = "Invalid path or op, or a move into itself", body = ErrorEnvelope),
    ))]
async fn file_op(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
    Path((id, raw)): Path<(Uuid, String)>,
    Query(op): Query<ProjectFileOp>,
) -> ApiResult<Json<Moved>> {
    let path = FilePath::parse(&raw)?;
    if op.op != "move" {
        return Err(ApiError::Validation {
            field: "op",
            message: "must be move (directories exist by the files in them)".into(),
        });
    }
    let to = op.to.as_deref().ok_or_else(|| ApiError::Validation {
        field: "to",
        message: "move needs a destination `to`".into(),
    })?;
    let to = FilePath::parse(to).map_err(|_| ApiError::Validation {
        field: "to",
        message: "not a valid path".into(),
    })?;
    let files = state
        .projects
        .move_path(principal.user.id, id, &path, &to, op.overwrite)
        .await?;
    Ok(Json(Moved {
        path: to.workspace().as_str().to_owned(),
        files,
    }))
}

/// The project's files as a `.tar.gz`.
#[utoipa::path(get, path = "/api/v1/projects/{id}/archive", tag = "projects",
    security(("session_cookie" = []), ("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, description = "The archive", body = Binary, content_type = "application/gzip"),
        (status = 404, body = ErrorEnvelope),
    ))]
async fn download_archive(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
    Path(id): Path<Uuid>,
) -> ApiResult<Response> {
    let bytes = state.projects.archive(principal.user.id, id).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/gzip"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"project.tar.gz\"",
            ),
        ],
        bytes,
    )
        .into_response())
}

/// Unpack a `.tar.gz` into the project (merged with its files). Refused whole — nothing
/// written — when an entry escapes, is a link, device or FIFO (422), or it unpacks beyond the
/// project's limits (413).
#[utoipa::path(post, path = "/api/v1/projects/{id}/archive", tag = "projects",
    security(("session_cookie" = []), ("bearer" = [])),
    params(("id" = Uuid, Path)),
    request_body(content = Binary, content_type = "application/gzip"),
    responses(
        (status = 200, body = ProjectUploaded),
        (status = 404, body = ErrorEnvelope),
        (status = 409, description = "`is_a_directory`, `not_a_directory`: an entry collides with the project's files", body = ErrorEnvelope),
        (status = 413, description = "`archive_too_large`, `project_full`", body = ErrorEnvelope),
        (status = 422, description = "An entry is refused, or the archive is damaged", body = ErrorEnvelope),
    ))]
async fn upload_archive(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
    Path(id): Path<Uuid>,
    Body(body): Body,
) -> ApiResult<Json<ProjectUploaded>> {
    let (files, bytes) = state.projects.upload(principal.user.id, id, &body).await?;
    Ok(Json(ProjectUploaded { files, bytes }))
}

/// Open the project as a new session: its files are copied into the session's workspace.
#[utoipa::path(post, path = "/api/v1/projects/{id}/open", tag = "projects",
    security(("session_cookie" = []), ("bearer" = [])),
    params(("id" = Uuid, Path)),
    request_body(content = OpenProject, description = "May be empty"),
    responses(
        (status = 201, body = OpenedProject),
        (status = 404, body = ErrorEnvelope),
        (status = 409, description = "`session_limit`", body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope),
        (status = 503, description = "`sandbox_unavailable`", body = ErrorEnvelope),
    ))]
async fn open_project(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
    Path(id): Path<Uuid>,
    OptionalJson(req): OptionalJson<OpenProject>,
) -> ApiResult<(StatusCode, Json<OpenedProject>)> {
    let opened = state
        .projects
        .open(principal.user.id, id, req.ttl_seconds)
        .await?;
    Ok((StatusCode::CREATED, Json(opened)))
}

/// Save a live session's workspace as the project's files (replacing them; links and other
/// non-files are left out and listed).
#[utoipa::path(post, path = "/api/v1/projects/{id}/save", tag = "projects",
    security(("session_cookie" = []), ("bearer" = [])),
    params(("id" = Uuid, Path)),
    request_body = SaveProject,
    responses(
        (status = 200, body = SavedProject),
        (status = 404, description = "No such project, or no such session of the caller's", body = ErrorEnvelope),
        (status = 409, description = "`session_ended`", body = ErrorEnvelope),
        (status = 413, description = "`archive_too_large`, `project_full`", body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope),
        (status = 503, description = "`sandbox_unavailable`", body = ErrorEnvelope),
    ))]
async fn save_project(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
    Path(id): Path<Uuid>,
    Json(req): Json<SaveProject>,
) -> ApiResult<Json<SavedProject>> {
    Ok(Json(
        state
            .projects
            .save(principal.user.id, id, req.session_id)
            .await?,
    ))
}
