//! The admin API under `/_admin` (never under `/api`, never affected by faults).
//!
//! - `GET  /_admin/stats`               → [`Stats`](crate::Stats)
//! - `GET  /_admin/requests`            → `[RequestRecord]`
//! - `GET  /_admin/faults`              → [`Faults`](crate::Faults)
//! - `PUT  /_admin/faults`              ← `Faults` JSON (missing fields = off) → the new `Faults`
//! - `POST /_admin/clock/advance?secs=N` → `{"advanced_secs": N}`
//! - `GET  /_admin/live`                → `[LiveReceipt]`
//! - `POST /_admin/reset`               → clears counters and the request log

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::faults::Faults;
use crate::server::App;

/// Largest admin request body read.
const ADMIN_BODY_LIMIT: usize = 64 * 1024;

fn reply(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn bad_request(message: &str) -> Response {
    reply(StatusCode::BAD_REQUEST, &json!({ "error": message }))
}

fn to_json<T: serde::Serialize>(value: &T) -> Response {
    match serde_json::to_value(value) {
        Ok(v) => reply(StatusCode::OK, &v),
        Err(_) => reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            &json!({ "error": "could not serialize" }),
        ),
    }
}

/// Serves one admin request.
pub(crate) async fn handle(app: &App, req: Request<Body>) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().trim_end_matches('/').to_owned();
    let query = req.uri().query().unwrap_or_default().to_owned();
    match (method, path.as_str()) {
        (Method::GET, "/_admin/stats") => to_json(&app.stats()),
        (Method::GET, "/_admin/requests") => to_json(&app.requests()),
        (Method::GET, "/_admin/faults") => to_json(&app.faults()),
        (Method::PUT, "/_admin/faults") => {
            let Ok(bytes) = axum::body::to_bytes(req.into_body(), ADMIN_BODY_LIMIT).await else {
                return bad_request("body too large");
            };
            match serde_json::from_slice::<Faults>(&bytes) {
                Ok(f) if valid_rates(&f) => {
                    app.set_faults(f);
                    to_json(&app.faults())
                }
                Ok(_) => bad_request(
                    "error_rate, timeout_rate and after_store.rate must be between 0 and 1",
                ),
                Err(e) => bad_request(&format!("invalid faults: {e}")),
            }
        }
        (Method::POST, "/_admin/clock/advance") => {
            let secs = url::form_urlencoded::parse(query.as_bytes())
                .find(|(k, _)| k == "secs")
                .and_then(|(_, v)| v.parse::<u64>().ok());
            match secs {
                Some(s) => {
                    app.store.clock.advance(Duration::from_secs(s));
                    reply(StatusCode::OK, &json!({ "advanced_secs": s }))
                }
                None => bad_request("secs must be a non-negative integer"),
            }
        }
        (Method::GET, "/_admin/live") => to_json(&app.store.live()),
        (Method::POST, "/_admin/reset") => {
            app.reset_stats();
            reply(StatusCode::OK, &json!({ "reset": true }))
        }
        _ => reply(StatusCode::NOT_FOUND, &json!({ "error": "Not Found" })),
    }
}

fn valid_rates(f: &Faults) -> bool {
    let after_store_rate = f
        .after_store
        .and_then(|a| a.rate)
        .is_none_or(|r| (0.0..=1.0).contains(&r));
    (0.0..=1.0).contains(&f.error_rate) && (0.0..=1.0).contains(&f.timeout_rate) && after_store_rate
}
