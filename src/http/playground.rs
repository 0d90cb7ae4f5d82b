//! The self-contained playground: one HTML page, its script and stylesheet,
//! all served from here (no CDN), so its CSP can stay `'self'` only.
//!
//! The files are built into the binary. A debug build started with
//! `PLAYGROUND_DIR` set serves them from that folder instead, read at each
//! request, so the playground can be edited without rebuilding.

use axum::http::header;
use axum::response::IntoResponse;

/// Only as loose as the page needs: its own script, style and API calls.
pub const PLAYGROUND_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; form-action 'none'; base-uri 'none'; \
     frame-ancestors 'none'";

fn file(name: &str, built_in: &'static str) -> String {
    #[cfg(debug_assertions)]
    if let Some(dir) = std::env::var_os("PLAYGROUND_DIR")
        && let Ok(text) = std::fs::read_to_string(std::path::Path::new(&dir).join(name))
    {
        return text;
    }
    let _ = name;
    built_in.to_string()
}

fn serve(content_type: &'static str, body: String) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, PLAYGROUND_CSP),
        ],
        body,
    )
}

pub async fn page() -> impl IntoResponse {
    serve(
        "text/html; charset=utf-8",
        file("index.html", include_str!("../../playground/index.html")),
    )
}

pub async fn script() -> impl IntoResponse {
    serve(
        "text/javascript; charset=utf-8",
        file("app.js", include_str!("../../playground/app.js")),
    )
}

pub async fn style() -> impl IntoResponse {
    serve(
        "text/css; charset=utf-8",
        file("app.css", include_str!("../../playground/app.css")),
    )
}

/// The saved operations (also the names `/metrics` always labels).
pub async fn operations() -> impl IntoResponse {
    serve(
        "application/graphql; charset=utf-8",
        file(
            "operations.graphql",
            include_str!("../../playground/operations.graphql"),
        ),
    )
}
