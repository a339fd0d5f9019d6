//! `/api/v1`: form-style requests, flat JSON, and every error as HTTP 404.

use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use serde_json::{Map, Value, json};

use crate::api::{Ctx, Operation, Route};
use crate::auth::Caller;
use crate::create::{self, CreateInput};
use crate::keys;
use crate::store::{Burn, BurnError, GateInput, ReceiptView, RevealError, State};

/// Keys shorter than this get `Not Found` before any lookup.
const MIN_IDENTIFIER_LEN: usize = 20;

/// Resolves a path below `/api/v1`; unknown paths and wrong methods are `NotFound`.
pub(crate) fn route(method: &Method, rest: &str) -> Route {
    let segs: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
    let get = method == Method::GET;
    let post = method == Method::POST;
    match segs.as_slice() {
        ["status"] if get => Route::new(Operation::Status),
        ["authcheck"] if get => Route::new(Operation::Authcheck),
        ["share" | "create"] if post => Route::new(Operation::Share),
        ["generate"] if post => Route::new(Operation::Generate),
        ["secret", key] if post && !key.is_empty() => Route::keyed(Operation::Reveal, key),
        ["receipt" | "private" | "metadata", "recent"] if get => Route::new(Operation::Recent),
        ["receipt" | "private" | "metadata", key, "burn"] if post && !key.is_empty() => {
            Route::keyed(Operation::Burn, key)
        }
        ["receipt" | "private" | "metadata", key] if (get || post) && !key.is_empty() => {
            Route::keyed(Operation::Receipt, key)
        }
        _ => Route::new(Operation::NotFound),
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

fn with_intended(mut resp: Response, intended: Option<StatusCode>) -> Response {
    if let Some(code) = intended
        && let Ok(v) = HeaderValue::from_str(code.as_str())
    {
        resp.headers_mut().insert("X-OTS-Intended-Status", v);
    }
    resp
}

/// A v1 error: HTTP 404, `{"message": ...}`, and the status it should have had.
pub(crate) fn error(message: &str, intended: Option<StatusCode>) -> Response {
    with_intended(
        json_response(StatusCode::NOT_FOUND, &json!({ "message": message })),
        intended,
    )
}

/// v1's rate-limit answer.
pub(crate) fn rate_limited() -> Response {
    error(
        "Rate limit exceeded. Please try again later.",
        Some(StatusCode::BAD_REQUEST),
    )
}

fn not_authorized() -> Response {
    error("Not authorized", Some(StatusCode::UNAUTHORIZED))
}

fn not_found() -> Response {
    json_response(StatusCode::NOT_FOUND, &json!({ "error": "Not Found" }))
}

fn unknown_secret(key: &str) -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        &json!({ "message": "Unknown secret", "secret_key": key }),
    )
}

fn short_key() -> Response {
    error("Not Found", None)
}

fn unexpected() -> Response {
    error(
        "An unexpected error occurred :[",
        Some(StatusCode::BAD_REQUEST),
    )
}

fn ok(body: &Value) -> Response {
    json_response(StatusCode::OK, body)
}

/// Serves one v1 request.
pub(crate) fn serve(ctx: Ctx<'_>) -> Response {
    let op = ctx.route.op;
    if op == Operation::NotFound {
        return not_found();
    }
    let anonymous_allowed = !matches!(op, Operation::Authcheck | Operation::Recent);
    match &ctx.caller {
        Caller::BadCredentials => return not_authorized(),
        Caller::Anonymous if !anonymous_allowed => return not_authorized(),
        _ => {}
    }
    let needs_key = matches!(op, Operation::Reveal | Operation::Receipt | Operation::Burn);
    if needs_key && ctx.key().len() < MIN_IDENTIFIER_LEN {
        return short_key();
    }
    match op {
        Operation::Status | Operation::Authcheck => {
            ok(&json!({ "status": "nominal", "locale": "en" }))
        }
        Operation::Share | Operation::Generate => share(&ctx, op),
        Operation::Reveal => reveal(&ctx),
        Operation::Receipt => receipt(&ctx),
        Operation::Burn => burn(&ctx),
        Operation::Recent => recent(&ctx),
        _ => not_found(),
    }
}

fn share(ctx: &Ctx<'_>, op: Operation) -> Response {
    let p = &ctx.params;
    let input = CreateInput {
        kind: create::kind_of(op),
        secret: p.get("secret").map(str::to_owned),
        passphrase: p.get("passphrase").map(str::to_owned),
        ttl: p.get("ttl").map(str::to_owned),
        length: p.get("length").map(str::to_owned),
        recipients: p.get_all("recipient"),
        share_domain: p.get("share_domain").map(str::to_owned),
    };
    let host = host_of(&ctx.app.public_url);
    let new = match create::build(input, &ctx.caller, &ctx.app.config, host, true) {
        Ok(n) => n,
        Err(e) => return error(&e.message, Some(StatusCode::BAD_REQUEST)),
    };
    let view = ctx.app.store.create(new);
    let mut body = receipt_hash(ctx, &view);
    body.insert("passphrase_required".into(), json!(view.has_passphrase));
    if let Some(v) = &view.value {
        body.insert("value".into(), json!(v.expose_secret()));
    }
    ok(&Value::Object(add_aliases(body)))
}

fn reveal(ctx: &Ctx<'_>) -> Response {
    let key = ctx.key();
    let gate = GateInput {
        passphrase: ctx.params.get("passphrase"),
        client_ip: None,
        count_missing: false,
    };
    match ctx.app.store.reveal(key, gate, true) {
        Ok(r) => {
            let share_domain = if r.view.share_domain.is_empty() {
                ctx.app.public_url.clone()
            } else {
                format!("{}{}", scheme_of(&ctx.app.public_url), r.view.share_domain)
            };
            let value = r.value.as_ref().map(|v| v.expose_secret().to_owned());
            ok(&json!({
                "value": value,
                "secret_key": key,
                "share_domain": share_domain,
            }))
        }
        Err(RevealError::Unknown | RevealError::WrongPassphrase) => unknown_secret(key),
        Err(RevealError::Locked(_)) => unexpected(),
    }
}

fn receipt(ctx: &Ctx<'_>) -> Response {
    let key = ctx.key();
    let Some(view) = ctx.app.store.receipt(key) else {
        return unknown_secret(key);
    };
    let mut body = receipt_hash(ctx, &view);
    // The receipt page's links are built from `receipt.key`, which a loaded receipt lacks, so
    // they end in `/receipt/` (apps/api/v1/logic/secrets/show_receipt.rb:38,270-277 with
    // helpers/uris.rb:39-45, de53ff8f7; seen on the genuine server by
    // testing/ots-server/tests/real_ots_differential.rs). Share and recent carry the key.
    let bare = format!("{}/receipt/", site_base(ctx, &view));
    body.insert("metadata_url".into(), json!(bare));
    if view.secret_live {
        body.insert("passphrase_required".into(), json!(view.has_passphrase));
    }
    if let Some(v) = &view.value {
        body.insert("value".into(), json!(v.expose_secret()));
    }
    ok(&Value::Object(add_aliases(body)))
}

fn burn(ctx: &Ctx<'_>) -> Response {
    let key = ctx.key();
    let gate = GateInput {
        passphrase: ctx.params.get("passphrase"),
        client_ip: None,
        count_missing: true,
    };
    // v1 forces `continue` to true (apps/api/v1/controllers/index.rb:176, de53ff8f7).
    match ctx.app.store.burn(key, gate, true) {
        Ok((view, Burn::Burned)) => {
            // The receipt as loaded before the burn: `state` reads "new", `secret_key` is
            // still there, and `secret_ttl` is null because no live ttl is passed
            // (apps/api/v1/controllers/index.rb:182-183 with class_methods.rb:185,224-227;
            // v0.23.6 index.rb:131 likewise).
            let mut state = receipt_hash(ctx, &view);
            state.insert("secret_ttl".into(), Value::Null);
            ok(&json!({
                "state": Value::Object(add_aliases(state)),
                "secret_shortkey": keys::shortkey(&view.secret_key),
            }))
        }
        // Not greenlighted (lost the race to a reveal): `secret_not_found_response`
        // (apps/api/v1/controllers/index.rb:184-186).
        Ok((_, Burn::Lost | Burn::NotConfirmed)) => unknown_secret(key),
        Err(BurnError::NoReceipt | BurnError::SecretGone) => unknown_secret(key),
        // `I18n.t('web.COMMON.error_passphrase', default: 'Incorrect passphrase')`
        // (apps/api/v1/logic/secrets/burn_secret.rb:71): the compiled English locale has the
        // key (generated/locales/en.json:50), so the default never shows.
        Err(BurnError::IncorrectPassphrase) => error(
            "Double check that passphrase",
            Some(StatusCode::BAD_REQUEST),
        ),
        Err(BurnError::Locked(_)) => unexpected(),
    }
}

fn recent(ctx: &Ctx<'_>) -> Response {
    let Some(email) = ctx.caller.email() else {
        return not_authorized();
    };
    let views = ctx.app.store.recent(email);
    let items: Vec<Value> = views
        .iter()
        .map(|v| {
            // No live ttl is passed to `receipt_hsh` here, so `secret_ttl` is null
            // (apps/api/v1/controllers/index.rb:143 with class_methods.rb:185,224-227).
            let mut state = receipt_hash(ctx, v);
            if state.contains_key("secret_ttl") {
                state.insert("secret_ttl".into(), Value::Null);
            }
            let mut h = add_aliases(state);
            h.remove("secret_key");
            Value::Object(h)
        })
        .collect();
    ok(&Value::Array(items))
}

pub(crate) fn host_of(url: &str) -> &str {
    url.split_once("://").map_or(url, |(_, h)| h)
}

pub(crate) fn scheme_of(url: &str) -> &str {
    url.split_once("://").map_or(
        "https://",
        |(s, _)| {
            if s == "http" { "http://" } else { "https://" }
        },
    )
}

/// Scheme and host of a receipt's links: its share domain, else the site.
fn site_base(ctx: &Ctx<'_>, v: &ReceiptView) -> String {
    if v.share_domain.is_empty() {
        ctx.app.public_url.clone()
    } else {
        format!("{}{}", scheme_of(&ctx.app.public_url), v.share_domain)
    }
}

/// The v1 receipt object without the v0.24 alias fields.
fn receipt_hash(ctx: &Ctx<'_>, v: &ReceiptView) -> Map<String, Value> {
    let metadata_url = format!("{}/receipt/{}", site_base(ctx, v), v.metadata_key);
    let mut m = Map::new();
    m.insert("custid".into(), json!(v.owner.as_deref().unwrap_or("anon")));
    m.insert("metadata_key".into(), json!(v.metadata_key));
    let secret_key = if v.secret_live {
        v.secret_key.as_str()
    } else {
        ""
    };
    m.insert("secret_key".into(), json!(secret_key));
    m.insert("ttl".into(), json!(v.ttl));
    m.insert("metadata_ttl".into(), json!(v.metadata_ttl));
    m.insert("secret_ttl".into(), json!(v.secret_ttl));
    m.insert("metadata_url".into(), json!(metadata_url));
    m.insert("state".into(), json!(v.state.v1_name()));
    m.insert("updated".into(), json!(v.updated));
    m.insert("created".into(), json!(v.created));
    if v.state == State::Received {
        m.insert("received".into(), json!(v.received.unwrap_or(0)));
        m.remove("secret_ttl");
        m.remove("secret_key");
    }
    m.insert("recipient".into(), json!(v.recipients));
    m.insert("share_domain".into(), json!(v.share_domain));
    m
}

/// Adds the v0.24 alias fields after the classic ones, as the real server does.
fn add_aliases(mut m: Map<String, Value>) -> Map<String, Value> {
    const ALIASES: [(&str, &str); 7] = [
        ("identifier", "metadata_key"),
        ("secret_identifier", "secret_key"),
        ("has_passphrase", "passphrase_required"),
        ("recipients", "recipient"),
        ("receipt_ttl", "metadata_ttl"),
        ("receipt_url", "metadata_url"),
        ("secret_value", "value"),
    ];
    for (alias, field) in ALIASES {
        if let Some(v) = m.get(field).cloned() {
            m.insert(alias.into(), v);
        }
    }
    m
}
