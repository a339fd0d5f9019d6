//! `/api/v2`: JSON requests, `{success, record, details}` answers, real status codes and
//! `{error, error_type}` error bodies.

use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use serde_json::{Map, Value, json};

use crate::api::{Ctx, Operation, Route};
use crate::auth::Caller;
use crate::config::Plan;
use crate::create::{self, CreateInput, Invalid, Refusal};
use crate::keys;
use crate::params::Params;
use crate::store::{
    Burn, BurnError, GLOBAL_MAX_ATTEMPTS, GateInput, IP_MAX_ATTEMPTS, ReceiptView, RevealError,
    Revealed, SecretView, State,
};
use crate::v1::{host_of, scheme_of};

/// A receipt's class-level `default_expiration` (14 days, `lib/onetime/models/receipt.rb:29`),
/// which a receipt loaded from the store reports as its own.
const RECEIPT_DEFAULT_EXPIRATION: u64 = 14 * 86_400;

/// Version reported by `GET /api/v2/version`: strings, split from package.json's `version`
/// (`lib/onetime/version.rb:13-16,39-46`, de53ff8f7).
const VERSION: [&str; 3] = ["0", "26", "6"];

/// Resolves a path below `/api/v2`; unknown paths and wrong methods are `NotFound`.
pub(crate) fn route(method: &Method, rest: &str) -> Route {
    let segs: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
    let (guest, segs) = match segs.split_first() {
        Some((&"guest", tail)) => (true, tail.to_vec()),
        _ => (false, segs),
    };
    let get = method == Method::GET;
    let post = method == Method::POST;
    let patch = method == Method::PATCH;
    let mut route = match segs.as_slice() {
        ["status"] if get && !guest => Route::new(Operation::Status),
        ["version"] if get && !guest => Route::new(Operation::Version),
        ["supported-locales"] if get && !guest => Route::new(Operation::SupportedLocales),
        ["receipt" | "private", "recent"] if get && !guest => Route::new(Operation::Recent),
        ["receipt", key, "burn"] if post && !key.is_empty() => Route::keyed(Operation::Burn, key),
        ["private", key, "burn"] if post && !guest && !key.is_empty() => {
            Route::keyed(Operation::Burn, key)
        }
        ["receipt", key] if get && !key.is_empty() => Route::keyed(Operation::Receipt, key),
        ["private", key] if get && !guest && !key.is_empty() => {
            Route::keyed(Operation::Receipt, key)
        }
        ["receipt" | "private", key] if patch && !guest && !key.is_empty() => {
            Route::keyed(Operation::ReceiptUpdate, key)
        }
        ["secret", "conceal"] if post => Route::new(Operation::Share),
        ["secret", "generate"] if post => Route::new(Operation::Generate),
        ["secret", "status"] if post && !guest => Route::new(Operation::SecretStatusList),
        ["secret", key, "reveal"] if post && !key.is_empty() => {
            Route::keyed(Operation::Reveal, key)
        }
        ["secret", key, "status"] if get && !guest && !key.is_empty() => {
            Route::keyed(Operation::SecretStatus, key)
        }
        ["secret", key] if get && !key.is_empty() => Route::keyed(Operation::Secret, key),
        _ => Route::new(Operation::NotFound),
    };
    route.guest = guest && route.op != Operation::NotFound;
    route
}

pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

fn ok(body: Value) -> Response {
    json_response(StatusCode::OK, &body)
}

/// A v2 error: real status, `{"error", "error_type"}`.
pub(crate) fn error(status: StatusCode, message: &str, error_type: &str) -> Response {
    json_response(
        status,
        &json!({ "error": message, "error_type": error_type }),
    )
}

/// An error the app's handler rendered (a logic error, not Otto's auth layer or router): the
/// request's id is echoed into the body (`ErrorCorrelation.apply`,
/// lib/onetime/application/error_correlation.rb:83-94, de53ff8f7; the id is Rack::RequestId's,
/// 13 base-36 characters on the genuine server).
fn logic_error(status: StatusCode, mut body: Value) -> Response {
    body["request_id"] = json!(keys::request_id());
    json_response(status, &body)
}

/// v2's rate-limit answer (429; the caller adds `Retry-After`).
pub(crate) fn rate_limited(retry_after_secs: u64) -> Response {
    logic_error(
        StatusCode::TOO_MANY_REQUESTS,
        json!({
            "error": "Rate limit exceeded",
            "error_type": "LimitExceeded",
            "retry_after": retry_after_secs,
        }),
    )
}

fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "Not Found", "NotFound")
}

/// Otto's 401 when every auth strategy of the route failed: `json_auth_error` in
/// delano/otto `lib/otto/security/authentication/route_auth_wrapper/response_builder.rb`
/// (otto 2.9.0 per de53ff8f7 `Gemfile.lock:278`), with the strategy's `failure_reason`.
fn authentication_required(reason: &str, now: u64) -> Response {
    json_response(
        StatusCode::UNAUTHORIZED,
        &json!({
            "error": "Authentication Required",
            "message": reason,
            "timestamp": now,
        }),
    )
}

fn unauthorized(message: &str) -> Response {
    logic_error(
        StatusCode::UNAUTHORIZED,
        json!({ "error": message, "error_type": "Unauthorized" }),
    )
}

/// A missing secret or receipt on reveal, show and burn: `raise OT::MissingSecret` with no
/// message (reveal_secret.rb:65, show_secret.rb:51, burn_secret.rb:50, de53ff8f7), so
/// `RecordNotFound#to_h` drops the nil `error` (lib/onetime/errors.rb:185-191).
fn record_not_found() -> Response {
    logic_error(
        StatusCode::NOT_FOUND,
        json!({ "error_type": "RecordNotFound" }),
    )
}

/// A missing receipt on show/update: `raise OT::MissingSecret, "identifier: #{identifier}"`
/// (show_receipt.rb:71, update_receipt.rb:29, de53ff8f7).
fn receipt_not_found(key: &str) -> Response {
    logic_error(
        StatusCode::NOT_FOUND,
        json!({ "error": format!("identifier: {key}"), "error_type": "RecordNotFound" }),
    )
}

/// Passphrase lockout: 429 with the lock's remaining time.
fn locked(retry_after: u64, max_attempts: u32) -> Response {
    let mut resp = logic_error(
        StatusCode::TOO_MANY_REQUESTS,
        json!({
            "error": "Too many incorrect passphrase attempts. Please try again later.",
            "error_type": "LimitExceeded",
            "retry_after": retry_after,
            "max_attempts": max_attempts,
        }),
    );
    if let Ok(v) = retry_after.to_string().parse() {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

/// A validation failure: 422 `{error, error_type, field}`; `error_type` and `field` only when
/// the logic names them (`FormError#to_h` compacts nils, lib/onetime/errors.rb:213-220).
fn form_error(message: &str, field: Option<&str>, error_type: Option<&str>) -> Response {
    let mut body = json!({ "error": message });
    if let Some(t) = error_type {
        body["error_type"] = json!(t);
    }
    if let Some(f) = field {
        body["field"] = json!(f);
    }
    logic_error(StatusCode::UNPROCESSABLE_ENTITY, body)
}

/// 403 for a ttl the plan does not cover: `EntitlementRequired#to_h`
/// (lib/onetime/errors.rb:292-301, de53ff8f7), with the upgrade path the billing catalog
/// names (`apps/web/billing/plan_helpers.rb:29-46`: the cheapest plan carrying
/// `extended_default_expiration`, `identity_plus_v1`).
fn entitlement_required(message: &str, plan: Plan) -> Response {
    logic_error(
        StatusCode::FORBIDDEN,
        json!({
            "error": message,
            "error_type": "EntitlementRequired",
            "entitlement": "extended_default_expiration",
            "current_plan": plan.plan_id(),
            "upgrade_to": "identity_plus_v1",
            "error_key": "api.entitlements.errors.extended_default_expiration_required",
        }),
    )
}

/// 403 when anonymous v2 use is switched off: `GuestRoutesDisabled#to_h`
/// (lib/onetime/errors.rb:322-335) raised by `require_guest_route_enabled!`
/// (lib/onetime/logic/guest_route_gating.rb:52-58, de53ff8f7).
fn guest_routes_disabled() -> Response {
    logic_error(
        StatusCode::FORBIDDEN,
        json!({
            "error": "Guest API access is disabled",
            "error_type": "GuestRoutesDisabled",
            "code": "GUEST_ROUTES_DISABLED",
        }),
    )
}

fn invalid(e: &Invalid, plan: Plan) -> Response {
    match e.refusal {
        Refusal::Unauthorized => unauthorized(&e.message),
        Refusal::Entitlement => entitlement_required(&e.message, plan),
        Refusal::Form => form_error(&e.message, e.field, e.error_type),
        Refusal::Forbidden => {
            let mut body = json!({ "error": e.message, "error_type": "Forbidden" });
            if let Some(key) = e.error_type {
                body["error_key"] = json!(key);
            }
            logic_error(StatusCode::FORBIDDEN, body)
        }
    }
}

/// Serves one v2 request.
pub(crate) fn serve(ctx: Ctx<'_>) -> Response {
    let op = ctx.route.op;
    if op == Operation::NotFound {
        return not_found();
    }
    // Status and locales take no credentials at all; guest routes ignore them.
    let caller = ctx.caller_unless_public(
        ctx.route.guest || matches!(op, Operation::Status | Operation::SupportedLocales),
    );
    // Credentials are refused by Otto's auth layer before any logic runs: sent and bad ones
    // on every authenticated route (a terminal failure), none on basicauth-only routes.
    let needs_account = matches!(op, Operation::Recent | Operation::Version);
    if caller == Caller::BadCredentials || (needs_account && caller == Caller::Anonymous) {
        return authentication_required(ctx.auth_failure, ctx.app.store.clock.now());
    }
    // Guest gating applies to anonymous callers only, in the logic classes that include it:
    // conceal_secret.rb:27, generate_secret.rb:23, show_secret.rb:49, reveal_secret.rb:63,
    // show_receipt.rb:69, burn_secret.rb:48 (apps/api/v2/logic/secrets, de53ff8f7). Conceal
    // and generate check the payload shape first (base_secret_action.rb process_params).
    let gated = matches!(
        op,
        Operation::Secret | Operation::Reveal | Operation::Receipt | Operation::Burn
    );
    if gated && caller == Caller::Anonymous && !ctx.app.config.guest_routes {
        return guest_routes_disabled();
    }
    match op {
        Operation::Status => ok(json!({"success": true, "status": "nominal", "locale": "en"})),
        Operation::Version => ok(json!({"success": true, "version": VERSION, "locale": "en"})),
        Operation::SupportedLocales => ok(json!({
            "success": true, "locales": ["en"], "default_locale": "en", "locale": "en",
        })),
        Operation::Share | Operation::Generate => share(&ctx, &caller, op),
        Operation::Receipt => receipt(&ctx),
        Operation::ReceiptUpdate => receipt_update(&ctx, &caller),
        Operation::Burn => burn(&ctx),
        Operation::Recent => recent(&ctx, &caller),
        Operation::Secret | Operation::Reveal => reveal(&ctx, &caller, op),
        Operation::SecretStatus => secret_status(&ctx),
        Operation::SecretStatusList => ok(secret_status_list(&ctx, secret_dump)),
        _ => not_found(),
    }
}

fn share(ctx: &Ctx<'_>, caller: &Caller, op: Operation) -> Response {
    let p = &ctx.params;
    if p.nested_is_scalar("secret") {
        return form_error("Incorrect payload format", None, None);
    }
    if *caller == Caller::Anonymous && !ctx.app.config.guest_routes {
        return guest_routes_disabled();
    }
    let input = nested_input(p, op);
    let kind = input.kind;
    let raw_recipients = input.recipients.clone();
    let host = host_of(&ctx.app.public_url);
    let new = match create::build(input, caller, &ctx.app.config, host, false) {
        Ok(n) => n,
        Err(e) => return invalid(&e, ctx.app.config.plan),
    };
    let share_domain = (!new.share_domain.is_empty()).then(|| new.share_domain.clone());
    let view = ctx.app.store.create(new);
    let Some(secret) = ctx.app.store.secret(&view.secret_key) else {
        return record_not_found();
    };
    let receipt = receipt_dump(&view);
    let recipients: Vec<String> = raw_recipients
        .iter()
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty())
        .collect();
    let safe: Vec<String> = recipients.iter().map(|r| create::mask_email(r)).collect();
    ok(json!({
        "success": true,
        "record": {
            "receipt": receipt,
            "metadata": receipt,
            "secret": secret_dump(&secret, State::New),
            "share_domain": share_domain,
        },
        "details": {
            "kind": kind.name(),
            "recipient": recipients,
            "recipient_safe": safe,
        },
    }))
}

/// The create input of a conceal or generate: the fields nested under `secret` (both v2
/// layouts read the same ones).
pub(crate) fn nested_input(p: &Params, op: Operation) -> CreateInput {
    CreateInput {
        kind: create::kind_of(op),
        secret: p.nested("secret", "secret"),
        passphrase: p.nested("secret", "passphrase"),
        ttl: p.nested("secret", "ttl"),
        length: p.nested("secret", "length"),
        recipients: p.nested_all("secret", "recipient"),
        share_domain: p.nested("secret", "share_domain"),
    }
}

pub(crate) fn base_url(ctx: &Ctx<'_>, share_domain: &str) -> String {
    if share_domain.is_empty() {
        ctx.app.public_url.clone()
    } else {
        format!("{}{}", scheme_of(&ctx.app.public_url), share_domain)
    }
}

fn receipt(ctx: &Ctx<'_>) -> Response {
    let Some(view) = ctx.app.store.receipt(ctx.key()) else {
        return receipt_not_found(ctx.key());
    };
    let show_secret = view.secret_live && !view.has_passphrase && view.state == State::New;
    let mut rec = receipt_dump(&view);
    if show_secret {
        rec.insert("secret_identifier".into(), json!(view.secret_key));
    } else {
        rec.remove("secret_identifier");
    }
    // The share link is built from the receipt's secret identifier whether or not the secret
    // is shown; with the secret gone it ends in `secret/` (show_receipt.rb:322-331,356-358).
    rec.extend(links(ctx, &view, view.ttl, Layout::Current));
    rec.insert(
        "secret_state".into(),
        json!(view.secret_live.then_some("new")),
    );
    let value = view.value.as_ref().map(|v| v.expose_secret().to_owned());
    let display_lines = display_lines(value.as_deref().unwrap_or_default());
    ok(json!({
        "record": rec,
        "details": {
            "type": "record",
            "display_lines": display_lines,
            "no_cache": true,
            "secret_realttl": view.secret_ttl,
            // Access telemetry (show_receipt.rb:96-102, 346-348, de53ff8f7).
            "view_count": view.access_count,
            "first_access": view.first_access.map(epoch_f),
            "last_access": view.last_access.map(epoch_f),
            "has_passphrase": view.secret_live && view.has_passphrase,
            // `secret.can_decrypt?`: a ciphertext and no passphrase (models/secret.rb:115-117).
            "can_decrypt": view.secret_live && !view.has_passphrase,
            "secret_value": value,
            "show_secret": show_secret,
            "show_secret_link": show_secret && view.recipients.is_empty(),
            "show_receipt_link": view.state == State::New,
            "show_receipt": true,
            "show_recipients": !view.recipients.is_empty(),
        },
    }))
}

fn receipt_update(ctx: &Ctx<'_>, caller: &Caller) -> Response {
    let Some(view) = ctx.app.store.receipt(ctx.key()) else {
        return receipt_not_found(ctx.key());
    };
    if caller.email().is_none() || view.owner.as_deref() != caller.email() {
        return unauthorized("Not authorized to update this receipt");
    }
    ok(json!({ "record": receipt_dump(&view) }))
}

fn burn(ctx: &Ctx<'_>) -> Response {
    let p = &ctx.params;
    let gate = GateInput {
        passphrase: p.get("passphrase"),
        client_ip: Some(&ctx.client_ip),
        count_missing: true,
    };
    let confirm = p.get("continue") == Some("true");
    match ctx.app.store.burn(ctx.key(), gate, confirm) {
        // `success` is `greenlighted`; the record is the receipt as loaded before the burn
        // (burn_secret.rb:100,149-200, de53ff8f7): state "new", not "burned" (§13.10).
        Ok((view, outcome)) => ok(burn_answer(ctx, &view, outcome == Burn::Burned)),
        // The receipt exists but its secret is gone: `process` returns nil before building
        // any data (burn_secret.rb:54-56), which renders as `{"success": true}` (§13.1).
        Err(BurnError::SecretGone) => ok(json!({ "success": true })),
        Err(BurnError::NoReceipt) => record_not_found(),
        // `I18n.t('web.COMMON.error_passphrase', default: 'Incorrect passphrase')`
        // (burn_secret.rb:141): the compiled English locale has the key
        // (generated/locales/en.json:50), so the default never shows. Reveal asks for
        // `web.COMMON.incorrect_passphrase`, which it lacks (reveal_secret.rb:228).
        Err(BurnError::IncorrectPassphrase) => {
            form_error("Double check that passphrase", None, None)
        }
        Err(BurnError::Locked(left)) => locked(left, GLOBAL_MAX_ATTEMPTS.min(IP_MAX_ATTEMPTS)),
    }
}

fn burn_answer(ctx: &Ctx<'_>, view: &ReceiptView, burned: bool) -> Value {
    let mut rec = receipt_dump(view);
    // The expiry fields come from `receipt.default_expiration`, which a loaded receipt does not
    // hold: the class default, 14 days (burn_secret.rb:166-168, models/receipt.rb:29).
    rec.extend(links(
        ctx,
        view,
        RECEIPT_DEFAULT_EXPIRATION,
        Layout::Current,
    ));
    json!({
        "success": burned,
        "record": rec,
        "details": {
            "type": "record",
            "title": "Secret burned",
            "display_lines": 0,
            "display_feedback": false,
            "no_cache": true,
            "view_count": 0,
            "has_passphrase": false,
            "can_decrypt": false,
            "show_secret": false,
            "show_secret_link": false,
            "show_receipt_link": false,
            "show_receipt": true,
            "show_recipients": !view.recipients.is_empty(),
            "is_orphaned": false,
        },
    })
}

fn recent(ctx: &Ctx<'_>, caller: &Caller) -> Response {
    let Some(email) = caller.email() else {
        return unauthorized("Authentication required");
    };
    let mut views = ctx.app.store.recent(email);
    views.sort_by_key(|v| std::cmp::Reverse(v.updated));
    let records = dump_all(&views, receipt_dump);
    let (done, pending) = split_on(&records, "is_destroyed");
    let now = ctx.app.store.clock.now();
    ok(json!({
        "success": true,
        // The account's objid (list_receipts.rb), not its email.
        "custid": keys::objid(email),
        "count": records.len(),
        "records": records,
        "details": {
            "type": "list",
            "scope": null,
            "scope_label": null,
            "since": now.saturating_sub(30 * 86_400),
            "now": epoch_f(now),
            "has_items": !records.is_empty(),
            "revealed_receipts": done,
            "pending_receipts": pending,
        },
    }))
}

/// `GET /secret/:id` and `POST /secret/:id/reveal`: both reveal only with `continue=true`.
fn reveal(ctx: &Ctx<'_>, caller: &Caller, op: Operation) -> Response {
    let p = &ctx.params;
    let passphrase = p.get("passphrase");
    let confirm = p.get("continue") == Some("true");
    let gate = GateInput {
        passphrase,
        client_ip: Some(&ctx.client_ip),
        // RevealSecret counts a missing passphrase as a failure; ShowSecret does not.
        count_missing: op == Operation::Reveal,
    };
    let result = ctx.app.store.reveal(ctx.key(), gate, confirm);
    // `record_access_telemetry('secret_get') unless show_secret` (show_secret.rb:119).
    let shown = matches!(&result, Ok(r) if r.value.is_some());
    if op == Operation::Secret
        && !shown
        && matches!(result, Ok(_) | Err(RevealError::WrongPassphrase))
    {
        ctx.app.store.record_access(ctx.key());
    }
    match result {
        Ok(r) => ok(revealed(
            &r,
            confirm,
            passphrase,
            caller,
            secret_dump,
            op == Operation::Secret,
        )),
        Err(RevealError::Unknown) => record_not_found(),
        Err(RevealError::WrongPassphrase) => {
            if op == Operation::Reveal {
                form_error("Incorrect passphrase", None, None)
            } else {
                // ShowSecret answers a wrong passphrase with the record, not an error.
                match ctx.app.store.secret(ctx.key()) {
                    Some(view) => ok(json!({
                        "record": secret_dump(&view, State::New),
                        "details": {
                            "continue": confirm,
                            "is_owner": false,
                            "show_secret": false,
                            "correct_passphrase": false,
                            "display_lines": 4,
                            "one_liner": null,
                        },
                    })),
                    None => record_not_found(),
                }
            }
        }
        Err(RevealError::Locked(left)) => locked(left, GLOBAL_MAX_ATTEMPTS.min(IP_MAX_ATTEMPTS)),
    }
}

fn secret_status(ctx: &Ctx<'_>) -> Response {
    let view = ctx.app.store.secret(ctx.key());
    if view.is_some() {
        // `record_access_telemetry('status_get')` (show_secret_status.rb:39).
        ctx.app.store.record_access(ctx.key());
    }
    ok(secret_status_body(view.as_ref(), secret_dump))
}

/// A layout's `safe_dump` of a secret in a given state.
pub(crate) type SecretDump = fn(&SecretView, State) -> Map<String, Value>;
/// A layout's `safe_dump` of a receipt.
pub(crate) type ReceiptDump = fn(&ReceiptView) -> Map<String, Value>;

/// The body of `GET /secret/:id/status` (without the layout's envelope).
pub(crate) fn secret_status_body(view: Option<&SecretView>, dump: SecretDump) -> Value {
    match view {
        Some(view) => json!({
            "record": dump(view, State::New),
            "details": { "current_expiration": view.secret_ttl },
        }),
        None => json!({ "record": { "state": "unknown" } }),
    }
}

/// The body of `POST /secret/status`: the live secrets among the comma-separated
/// `identifiers` (without the layout's envelope).
pub(crate) fn secret_status_list(ctx: &Ctx<'_>, dump: SecretDump) -> Value {
    let ids = if ctx.app.faults().batch_status_omits {
        String::new()
    } else {
        ctx.params.get("identifiers").unwrap_or_default().to_owned()
    };
    let records: Vec<Value> = ids
        .split(',')
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .filter_map(|id| ctx.app.store.secret(id))
        .map(|v| Value::Object(dump(&v, State::New)))
        .collect();
    json!({ "count": records.len(), "records": records })
}

/// The body of a reveal or show that found the secret (without the layout's envelope): the
/// record, with `secret_value` once revealed, and the `details` both layouts send.
pub(crate) fn revealed(
    r: &Revealed,
    confirm: bool,
    passphrase: Option<&str>,
    caller: &Caller,
    dump: SecretDump,
    show: bool,
) -> Value {
    let state = if r.view.revealed {
        State::Received
    } else {
        State::New
    };
    let mut record = dump(&r.view, state);
    let value = r.value.as_ref().map(|v| v.expose_secret().to_owned());
    if let Some(v) = &value {
        record.insert("secret_value".into(), json!(v));
    }
    json!({
        "record": record,
        "details": {
            "continue": confirm,
            "is_owner": caller.email().is_some() && r.view.owner.as_deref() == caller.email(),
            "show_secret": value.is_some(),
            "correct_passphrase": correct_passphrase(r, passphrase, show),
            "display_lines": display_lines(value.as_deref().unwrap_or_default()),
            "one_liner": value.as_deref().filter(|v| !v.is_empty()).map(|v| !v.contains('\n')),
        },
    })
}

/// `details.correct_passphrase` of a reveal or show that found the secret (a wrong passphrase
/// never gets here). The reveal says `secret.passphrase?(passphrase)`, false for a secret without
/// one (reveal_secret.rb:80); the show (`GET /secret/:id`, the recipient's page before the click)
/// says `!secret.has_passphrase? || secret.passphrase?(passphrase)`, true for one without
/// (show_secret.rb:66).
fn correct_passphrase(r: &Revealed, passphrase: Option<&str>, show: bool) -> bool {
    let given = passphrase.is_some_and(|p| !p.is_empty());
    if show {
        !r.view.has_passphrase || given
    } else {
        r.view.has_passphrase && given
    }
}

/// Every receipt dumped, in the order given.
pub(crate) fn dump_all(views: &[ReceiptView], dump: ReceiptDump) -> Vec<Value> {
    views.iter().map(|v| Value::Object(dump(v))).collect()
}

/// The records whose `flag` is true, then the others.
pub(crate) fn split_on<'a>(records: &'a [Value], flag: &str) -> (Vec<&'a Value>, Vec<&'a Value>) {
    records.iter().partition(|r| r[flag] == Value::Bool(true))
}

/// Where a layout serves receipts: the current one under `/receipt` (with `/private`
/// aliases and `receipt_*` fields beside `metadata_*`), the v0.18–v0.23 one under `/private`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    Current,
    Legacy,
}

/// A receipt's expiry (the secret's `lifespan` from creation) and its share, receipt and
/// burn paths and URLs, as the layout names them.
pub(crate) fn links(
    ctx: &Ctx<'_>,
    view: &ReceiptView,
    lifespan: u64,
    layout: Layout,
) -> Map<String, Value> {
    let base = base_url(ctx, &view.share_domain);
    // Current: `build_path` joins with `/` and no leading one, `build_url` puts one between
    // (apps/api/v2/logic/helpers/uris.rb), and the secret's identifier is nil once it is gone
    // (show_receipt.rb:356-363, de53ff8f7).
    let (root, lead, secret_key, natural) = match layout {
        Layout::Current => (
            "receipt",
            "",
            if view.secret_live {
                view.secret_key.as_str()
            } else {
                ""
            },
            natural_duration(lifespan),
        ),
        Layout::Legacy => (
            "private",
            "/",
            view.secret_key.as_str(),
            legacy_natural_duration(lifespan),
        ),
    };
    let share_path = format!("{lead}secret/{secret_key}");
    let receipt_path = format!("{lead}{root}/{}", view.metadata_key);
    let burn_path = format!("{receipt_path}/burn");
    let url = |path: &str| format!("{base}/{}", path.trim_start_matches('/'));
    let mut links = object(json!({
        "natural_expiration": natural,
        "expiration": view.created + lifespan,
        "expiration_in_seconds": lifespan,
        "share_url": url(&share_path),
        "share_path": share_path,
        "metadata_url": url(&receipt_path),
        "metadata_path": receipt_path,
        "burn_url": url(&burn_path),
        "burn_path": burn_path,
    }));
    if layout == Layout::Current {
        links.insert("receipt_url".into(), json!(url(&receipt_path)));
        links.insert("receipt_path".into(), json!(receipt_path));
    }
    links
}

/// A `safe_dump` built with `json!`, as the map it is.
pub(crate) fn object(dump: Value) -> Map<String, Value> {
    match dump {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

pub(crate) fn display_lines(value: &str) -> usize {
    let lines = (80 + value.chars().count()) / 80 + value.matches('\n').count() + 3;
    lines.min(30)
}

/// `OT::Utils::TimeUtils.natural_duration` (lib/onetime/utils/time_utils.rb:35-45,
/// de53ff8f7): up to a minute in seconds, up to an hour in minutes ("60 minutes"), up to a day
/// in hours ("24 hours"), then days.
pub(crate) fn natural_duration(secs: u64) -> String {
    if secs <= 60 {
        format!("{secs} seconds")
    } else if secs <= 3600 {
        format!("{} minutes", secs / 60)
    } else if secs <= 86_400 {
        format!("{} hours", secs / 3600)
    } else {
        format!("{} days", secs / 86_400)
    }
}

/// The wording this server used before it was compared with the genuine one, kept for the
/// v0.20/v0.23 profiles (not compared).
fn legacy_natural_duration(secs: u64) -> String {
    let (n, unit) = if secs >= 86_400 {
        (secs / 86_400, "day")
    } else if secs >= 3600 {
        (secs / 3600, "hour")
    } else if secs >= 60 {
        (secs / 60, "minute")
    } else {
        (secs, "second")
    };
    let s = if n == 1 { "" } else { "s" };
    format!("{n} {unit}{s}")
}

/// Seconds as the float the real server emits for `created`/`updated`.
pub(crate) fn epoch_f(secs: u64) -> Value {
    json!(secs as f64)
}

/// The receipt's `safe_dump`, as v2 returns it.
fn receipt_dump(v: &ReceiptView) -> Map<String, Value> {
    let destroyed = v.state.is_final();
    let received = v.received.filter(|_| v.state == State::Received);
    let dump = json!({
        "identifier": v.metadata_key,
        "key": v.metadata_key,
        // Records name their owner by `owner_id` (an objid); `custid` is no longer set
        // (transcripts 32, 33 of shared/real-ots: null anonymous and with an account).
        "custid": null,
        "owner_id": v.owner.as_deref().map(keys::objid),
        "state": v.state.v2_name(),
        "secret_shortid": v.secret_key.chars().take(8).collect::<String>(),
        // Cleared to "" when the secret is revealed, burned, expired or orphaned
        // (receipt/features/deprecated_fields.rb:163,197,228,261, dumped by
        // safe_dump_fields.rb:79).
        "secret_identifier": if v.secret_live { v.secret_key.as_str() } else { "" },
        // metadata_ttl, receipt_ttl and lifespan are the secret's lifetime, not the
        // receipt's (lib/onetime/models/receipt/features/safe_dump_fields.rb:90-93).
        "secret_ttl": v.ttl,
        "metadata_ttl": v.ttl,
        "receipt_ttl": v.ttl,
        "lifespan": v.ttl,
        "share_domain": (!v.share_domain.is_empty()).then(|| v.share_domain.clone()),
        "created": epoch_f(v.created),
        "updated": epoch_f(v.updated),
        "shared": null,
        "recipients": v.recipients.join(","),
        "recipient_name": null,
        "memo": null,
        "shortid": v.metadata_key.chars().take(8).collect::<String>(),
        "show_recipients": !v.recipients.is_empty(),
        // Telemetry-derived (safe_dump_fields.rb:125, 139-148, de53ff8f7): the first
        // access, and "has the link been fetched at all".
        "previewed": v.first_access,
        "revealed": received,
        "is_previewed": v.access_count > 0,
        "viewed": v.first_access,
        "received": received,
        "burned": v.burned,
        "is_viewed": v.access_count > 0,
        "is_received": v.state == State::Received,
        "is_revealed": v.state == State::Received,
        "is_burned": v.state == State::Burned,
        "is_expired": v.state == State::Expired,
        "is_orphaned": v.state == State::Orphaned,
        "is_destroyed": destroyed,
        "has_passphrase": v.has_passphrase,
        "kind": v.kind.name(),
        // Every API-made receipt is `standard` (an incoming one would say so).
        "source": "standard",
    });
    object(dump)
}

/// The secret's `safe_dump`, as v2 returns it.
fn secret_dump(v: &SecretView, state: State) -> Map<String, Value> {
    let revealed = state == State::Received;
    let dump = json!({
        "identifier": v.secret_key,
        "key": v.secret_key,
        "shortid": v.secret_key.chars().take(8).collect::<String>(),
        "state": state.v2_name(),
        "lifespan": v.ttl,
        "secret_ttl": v.ttl,
        "has_passphrase": v.has_passphrase,
        "verification": false,
        "created": epoch_f(v.created),
        "updated": epoch_f(v.updated),
        "is_previewed": false,
        "is_revealed": revealed,
        "is_viewed": false,
        "is_received": revealed,
    });
    object(dump)
}
