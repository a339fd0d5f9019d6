//! The pipeline every `/api/...` request goes through: route, faults, body, parameters,
//! credentials, the versioned handler, and the request log.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::auth::{self, Caller};
use crate::config::BODY_LIMIT_BYTES;
use crate::faults::{AfterStoreKind, HANG, Injected};
use crate::params::{Params, ParamsError};
use crate::server::App;
use crate::stats::{ApiVersion, RequestRecord};
use crate::{v1, v2, v2_legacy};

/// What a route resolved to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Operation {
    Status,
    Authcheck,
    Share,
    Generate,
    Reveal,
    Receipt,
    Burn,
    Recent,
    /// v2 `GET /secret/:id` (metadata of a secret, no value).
    Secret,
    /// v2 `GET /secret/:id/status`.
    SecretStatus,
    /// v2 `POST /secret/status`.
    SecretStatusList,
    /// v2 `PATCH /receipt/:id`.
    ReceiptUpdate,
    /// v2 `GET /version`.
    Version,
    /// v2 `GET /supported-locales`.
    SupportedLocales,
    /// No such route (or wrong method).
    NotFound,
}

impl Operation {
    /// Name used in stats and the request log, the same for v1 and v2.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Operation::Status => "status",
            Operation::Authcheck => "authcheck",
            Operation::Share => "share",
            Operation::Generate => "generate",
            Operation::Reveal => "reveal",
            Operation::Receipt => "receipt",
            Operation::Burn => "burn",
            Operation::Recent => "recent",
            Operation::Secret => "secret",
            Operation::SecretStatus => "secret_status",
            Operation::SecretStatusList => "secret_status_list",
            Operation::ReceiptUpdate => "receipt_update",
            Operation::Version => "version",
            Operation::SupportedLocales => "supported_locales",
            Operation::NotFound => "not_found",
        }
    }
}

/// A resolved route: the operation and the key in the path, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Route {
    pub(crate) op: Operation,
    pub(crate) key: Option<String>,
    /// v2 guest routes (`/guest/...`) accept no credentials.
    pub(crate) guest: bool,
}

impl Route {
    pub(crate) fn new(op: Operation) -> Self {
        Route {
            op,
            key: None,
            guest: false,
        }
    }

    pub(crate) fn keyed(op: Operation, key: &str) -> Self {
        Route {
            op,
            key: Some(key.to_owned()),
            guest: false,
        }
    }
}

/// Everything a versioned handler needs about one request.
pub(crate) struct Ctx<'a> {
    pub(crate) app: &'a App,
    pub(crate) caller: Caller,
    pub(crate) params: Params,
    pub(crate) client_ip: String,
    pub(crate) route: Route,
    /// Why the credentials sent (or their absence) would fail the Basic strategy.
    pub(crate) auth_failure: &'static str,
}

impl Ctx<'_> {
    /// The route's key (empty when the route has none).
    pub(crate) fn key(&self) -> &str {
        self.route.key.as_deref().unwrap_or_default()
    }

    /// The caller as the route sees it: anonymous on a route that looks at no credentials.
    pub(crate) fn caller_unless_public(&self, public: bool) -> Caller {
        if public {
            Caller::Anonymous
        } else {
            self.caller.clone()
        }
    }
}

/// Which API a path addresses, if any.
pub(crate) fn version_of(path: &str, enable_v2: bool) -> Option<ApiVersion> {
    let under = |prefix: &str| path == prefix || path.starts_with(&format!("{prefix}/"));
    if under("/api/v1") {
        Some(ApiVersion::V1)
    } else if enable_v2 && under("/api/v2") {
        Some(ApiVersion::V2)
    } else {
        None
    }
}

/// Handles one API request and logs it.
pub(crate) async fn handle(
    app: Arc<App>,
    version: ApiVersion,
    peer: SocketAddr,
    req: Request<Body>,
) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let prefix_len = "/api/v1".len();
    let rest = path.get(prefix_len..).unwrap_or_default();
    let route = match version {
        ApiVersion::V1 => v1::route(&method, rest),
        ApiVersion::V2 if app.config.profile.is_legacy() => {
            v2_legacy::route(&method, rest, app.config.profile)
        }
        ApiVersion::V2 => v2::route(&method, rest),
    };
    // A server without the batch status route resolves it as any unknown path, the way the
    // v0.20 profile does: the same 404, counted as `not_found`.
    let route = if route.op == Operation::SecretStatusList && app.faults().batch_status_missing {
        Route::new(Operation::NotFound)
    } else {
        route
    };
    let op = route.op;

    let latency = app.faults().latency_ms;
    if latency > 0
        && !app
            .sleep_unless_shutdown(Duration::from_millis(latency))
            .await
    {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let injected = match (op, app.faults().batch_status_fails) {
        (Operation::SecretStatusList, Some(fault)) => fault.injected(),
        _ => app.decide_fault(),
    };
    let record = |status: u16, authenticated: bool| RequestRecord {
        method: method.to_string(),
        path: path.clone(),
        operation: op.name().to_owned(),
        status,
        api: version,
        at: app.started.elapsed(),
        fault: injected.label().map(str::to_owned),
        authenticated,
    };
    if injected == Injected::Hang {
        // Logged up front: the client gives up long before the hang ends, and then nothing
        // after this point runs. 504 is what a proxy in front would eventually say.
        app.record(record(StatusCode::GATEWAY_TIMEOUT.as_u16(), false));
        app.sleep_unless_shutdown(HANG).await;
        return plain(StatusCode::GATEWAY_TIMEOUT, "Gateway Timeout");
    }
    let (response, authenticated) = match injected {
        Injected::Nothing => serve(&app, version, route, peer, req).await,
        other => (fault_response(&app, version, other), false),
    };
    let created = matches!(op, Operation::Share | Operation::Generate)
        && injected == Injected::Nothing
        && response.status() == StatusCode::OK;
    if created && let Some(kind) = app.decide_after_store() {
        // The secret is stored; the client gets no usable answer (issue 12).
        let struck = |status: u16| RequestRecord {
            fault: Some(kind.label().to_owned()),
            ..record(status, authenticated)
        };
        tracing::debug!(api = ?version, operation = op.name(), fault = kind.label(), "request");
        return match kind {
            AfterStoreKind::Hang => {
                app.record(struck(StatusCode::GATEWAY_TIMEOUT.as_u16()));
                app.sleep_unless_shutdown(HANG).await;
                plain(StatusCode::GATEWAY_TIMEOUT, "Gateway Timeout")
            }
            AfterStoreKind::Status500 => {
                app.record(struck(500));
                plain(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
            }
            AfterStoreKind::Status502 => {
                app.record(struck(502));
                plain(StatusCode::BAD_GATEWAY, "Bad Gateway")
            }
            AfterStoreKind::Status503 => {
                app.record(struck(503));
                plain(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable")
            }
            AfterStoreKind::Garbage => {
                app.record(struck(200));
                garbage_page()
            }
            AfterStoreKind::Reset => {
                // Logged with status 0: no answer was sent.
                app.record(struck(0));
                connection_reset()
            }
        };
    }
    let status = response.status().as_u16();
    tracing::debug!(api = ?version, operation = op.name(), status, "request");
    app.record(record(status, authenticated));
    response
}

/// A response whose body fails before its first byte: hyper then drops the connection
/// without writing the (still buffered) status line, so the client sees the connection
/// close with no answer at all.
fn connection_reset() -> Response {
    let failing = futures::stream::once(async {
        Err::<bytes::Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "after-store fault: connection reset",
        ))
    });
    Response::new(Body::from_stream(failing))
}

async fn serve(
    app: &App,
    version: ApiVersion,
    route: Route,
    peer: SocketAddr,
    req: Request<Body>,
) -> (Response, bool) {
    let (parts, body) = req.into_parts();
    let caller = auth::identify(&parts.headers, &app.config.accounts);
    let auth_failure = auth::failure_reason(&parts.headers);
    let known = matches!(caller, Caller::Account(_));
    let bytes = match axum::body::to_bytes(body, BODY_LIMIT_BYTES).await {
        Ok(b) => b,
        Err(_) => return (too_large(version), known),
    };
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    // GET parameters come from the query string only.
    let body = if parts.method == Method::GET || parts.method == Method::HEAD {
        bytes::Bytes::new()
    } else {
        bytes
    };
    let params = match Params::parse(parts.uri.query(), content_type, body).await {
        Ok(p) => p,
        Err(e) => return (malformed(version, &e), known),
    };
    let ctx = Ctx {
        app,
        caller,
        params,
        client_ip: peer.ip().to_string(),
        route,
        auth_failure,
    };
    let resp = match version {
        ApiVersion::V1 => v1::serve(ctx),
        ApiVersion::V2 if app.config.profile.is_legacy() => v2_legacy::serve(ctx),
        ApiVersion::V2 => v2::serve(ctx),
    };
    (resp, known)
}

fn too_large(version: ApiVersion) -> Response {
    let msg = format!("Request body exceeds the maximum size of {BODY_LIMIT_BYTES} bytes");
    match version {
        ApiVersion::V1 => v1::error(&msg, Some(StatusCode::PAYLOAD_TOO_LARGE)),
        ApiVersion::V2 => v2::error(StatusCode::PAYLOAD_TOO_LARGE, &msg, "PayloadTooLarge"),
    }
}

fn malformed(version: ApiVersion, e: &ParamsError) -> Response {
    let msg = format!("Invalid request: {e}");
    match version {
        ApiVersion::V1 => v1::error(&msg, Some(StatusCode::BAD_REQUEST)),
        ApiVersion::V2 => v2::error(StatusCode::BAD_REQUEST, &msg, "BadRequest"),
    }
}

fn fault_response(app: &App, version: ApiVersion, injected: Injected) -> Response {
    match injected {
        Injected::Nothing | Injected::Hang => plain(StatusCode::GATEWAY_TIMEOUT, "Gateway Timeout"),
        Injected::Outage => plain(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable"),
        Injected::Garbage => garbage_page(),
        Injected::ServerError(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            plain(status, status.canonical_reason().unwrap_or("Server Error"))
        }
        Injected::RateLimited { retry_after_secs } => {
            let mut resp = match version {
                ApiVersion::V1 => v1::rate_limited(),
                ApiVersion::V2 if app.config.profile.is_legacy() => v2_legacy::rate_limited(),
                ApiVersion::V2 => v2::rate_limited(retry_after_secs),
            };
            if let Ok(v) = retry_after_secs.to_string().parse() {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
            resp
        }
    }
}

/// HTTP 200 with an HTML page where JSON belongs, as a captive portal or login page sends.
fn garbage_page() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        "<html><body><h1>Welcome</h1><p>Please log in to continue.</p></body></html>",
    )
        .into_response()
}

/// A bare text answer, as a proxy or load balancer in front of the server would send.
fn plain(status: StatusCode, text: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text.to_owned(),
    )
        .into_response()
}
