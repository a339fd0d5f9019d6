//! Non-API paths: the link pages a browser would open, and 404 for everything else.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::server::App;

/// Serves a non-API path: `/`, `/secret/KEY` and `/receipt/KEY` get a tiny page that
/// reveals nothing (like the real site, which needs a click); anything else is 404.
pub(crate) fn handle(_app: &App, req: Request<Body>) -> Response {
    let path = req.uri().path();
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let page = req.method() == Method::GET
        && matches!(
            segs.as_slice(),
            [""] | ["secret" | "receipt" | "private", _]
        );
    if page {
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            "<!doctype html><title>ots-testserver</title><p>Onetime Secret test server</p>",
        )
            .into_response()
    } else {
        (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "Not Found",
        )
            .into_response()
    }
}
