//! `/api/v2`: JSON requests, `{success, record, details}` answers, real status codes.

use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::api::{Ctx, Operation, Route};

/// Resolves a path below `/api/v2`.
pub(crate) fn route(_method: &Method, _rest: &str) -> Route {
    Route::new(Operation::NotFound)
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

/// A v2 error: real status, `{"error", "error_type"}`.
pub(crate) fn error(status: StatusCode, message: &str, error_type: &str) -> Response {
    json_response(
        status,
        &json!({ "error": message, "error_type": error_type }),
    )
}

/// v2's rate-limit answer (429).
pub(crate) fn rate_limited(retry_after_secs: u64) -> Response {
    json_response(
        StatusCode::TOO_MANY_REQUESTS,
        &json!({
            "error": "Rate limit exceeded",
            "error_type": "LimitExceeded",
            "retry_after": retry_after_secs,
        }),
    )
}

/// Serves one v2 request.
pub(crate) fn serve(_ctx: Ctx<'_>) -> Response {
    error(StatusCode::NOT_FOUND, "Not Found", "NotFound")
}
