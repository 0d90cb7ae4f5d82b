//! The self-contained playground: one HTML page, its script and stylesheet,
//! all served from here (no CDN), so its CSP can stay `'self'` only.

use axum::http::header;
use axum::response::IntoResponse;

/// Only as loose as the page needs: its own script, style and API calls.
pub const PLAYGROUND_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; form-action 'none'; base-uri 'none'; \
     frame-ancestors 'none'";

pub async fn page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, PLAYGROUND_CSP),
        ],
        include_str!("../../playground/index.html"),
    )
}

pub async fn script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, PLAYGROUND_CSP),
        ],
        include_str!("../../playground/app.js"),
    )
}

pub async fn style() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, PLAYGROUND_CSP),
        ],
        include_str!("../../playground/app.css"),
    )
}
