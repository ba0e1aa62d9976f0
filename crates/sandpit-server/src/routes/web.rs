//! The web UI, embedded from `web/dist` at compile time (read from disk in debug builds), with
//! an SPA fallback: any GET outside `/api` that names no file gets `index.html`.

use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "../../web/dist"]
#[allow_missing = true]
struct Assets;

const NOT_BUILT: &str = "<!doctype html><meta charset=utf-8><title>sandpit</title>\
<p>The web UI has not been built. Run <code>npm --prefix web ci && npm --prefix web run build</code> \
(the README's first command does it), then rebuild the server.</p>";

fn asset(path: &str) -> Option<Response> {
    let file = Assets::get(path)?;
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    let cache = if path.starts_with("assets/") {
        // Vite names these by content hash.
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let mut response = (StatusCode::OK, file.data.into_owned()).into_response();
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(mime.as_ref()) {
        headers.insert(header::CONTENT_TYPE, v);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Some(response)
}

fn html_page(name: &str) -> Response {
    asset(name).unwrap_or_else(|| {
        (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            NOT_BUILT,
        )
            .into_response()
    })
}

/// `GET /api/docs`: the interactive OpenAPI page (bundled by the web build, no CDN).
pub async fn api_docs() -> Response {
    html_page("api-docs.html")
}

/// Fallback for everything outside `/api`: a file from the build, or the SPA's `index.html`.
pub async fn spa(method: Method, uri: Uri) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return crate::error::ApiError::MethodNotAllowed(format!("{method} is not allowed here"))
            .into_response();
    }
    let path = uri.path().trim_start_matches('/');
    if !path.is_empty()
        && let Some(response) = asset(path)
    {
        return response;
    }
    if path.starts_with("assets/") {
        return crate::error::ApiError::not_found("asset").into_response();
    }
    html_page("index.html")
}
