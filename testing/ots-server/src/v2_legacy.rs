//! `/api/v2` as self-hosted v0.18–v0.23 served it (profiles `V0_20` and `V0_23`).
//!
//! Those releases answered from controllers rather than Otto logic routes: a successful
//! action is `{success:true, shrimp, custid, ...}`, a failed one HTTP **500**
//! `{message, shrimp, success:false}`, a validation error 422 `{shrimp, message,
//! success:false}`, a missing record 404 `{message:"Unknown secret", secret_key}` and bad
//! credentials 403 `{message:"Not authorized"}` (tag v0.23.6 `apps/api/v2/controllers/base.rb`
//! and `helpers.rb`; tag v0.20.5 `lib/onetime/app/api/v2/base.rb`, the same code).

use axum::http::{Method, StatusCode};
use axum::response::Response;
use secrecy::ExposeSecret;
use serde_json::{Map, Value, json};

use crate::api::{Ctx, Operation, Route};
use crate::auth::Caller;
use crate::config::Profile;
use crate::create::{self, Invalid};
use crate::keys;
use crate::store::{Burn, BurnError, GateInput, ReceiptView, RevealError, SecretView, State};
use crate::v1::host_of;
use crate::v2::{
    Layout, display_lines, dump_all, epoch_f, json_response, links, nested_input, object, revealed,
    secret_status_body, secret_status_list, split_on,
};

/// Resolves a path below `/api/v2` with the routes of the profile's release: v0.23.6
/// `apps/api/v2/routes` (receipt and private routes, guest routes, secret status) or
/// v0.20.5 `lib/onetime/app/api/v2/routes` (only `/private/*`, no guest or status routes).
pub(crate) fn route(method: &Method, rest: &str, profile: Profile) -> Route {
    let segs: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
    let v23 = profile == Profile::V0_23;
    let (guest, segs) = match segs.split_first() {
        Some((&"guest", tail)) if v23 => (true, tail.to_vec()),
        _ => (false, segs),
    };
    let get = method == Method::GET;
    let post = method == Method::POST;
    let private = |s: &str| s == "private" || (v23 && s == "receipt");
    let mut route = match segs.as_slice() {
        ["status"] if get && !guest => Route::new(Operation::Status),
        ["authcheck"] if get && !guest => Route::new(Operation::Authcheck),
        ["version"] if get && !guest => Route::new(Operation::Version),
        ["supported-locales"] if get && !guest => Route::new(Operation::SupportedLocales),
        [p, "recent"] if get && !guest && private(p) => Route::new(Operation::Recent),
        [p, key, "burn"]
            if post && private(p) && !key.is_empty() && (!guest || *p == "receipt") =>
        {
            Route::keyed(Operation::Burn, key)
        }
        [p, key] if get && private(p) && !key.is_empty() && (!guest || *p == "receipt") => {
            Route::keyed(Operation::Receipt, key)
        }
        ["secret", "conceal"] if post => Route::new(Operation::Share),
        ["secret", "generate"] if post => Route::new(Operation::Generate),
        ["secret", "status"] if post && v23 && !guest => Route::new(Operation::SecretStatusList),
        ["secret", key, "reveal"] if post && !key.is_empty() => {
            Route::keyed(Operation::Reveal, key)
        }
        ["secret", key, "status"] if get && v23 && !guest && !key.is_empty() => {
            Route::keyed(Operation::SecretStatus, key)
        }
        ["secret", key] if get && !key.is_empty() => Route::keyed(Operation::Secret, key),
        _ => Route::new(Operation::NotFound),
    };
    route.guest = guest && route.op != Operation::NotFound;
    route
}

fn ok(body: Value) -> Response {
    json_response(StatusCode::OK, &body)
}

/// A fresh CSRF token, as `sess.add_shrimp` adds to every action answer.
fn shrimp() -> String {
    keys::new_key(false)
}

/// Unknown route: v0.23.6 `apps/api/v2/application.rb:22` `{"error":"Not Found"}`;
/// v0.20.5 `config.ru:56` `{"message":"Not Found"}`.
pub(crate) fn not_found(profile: Profile) -> Response {
    let body = if profile == Profile::V0_20 {
        json!({ "message": "Not Found" })
    } else {
        json!({ "error": "Not Found" })
    };
    json_response(StatusCode::NOT_FOUND, &body)
}

/// `not_authorized_error`: 403 (v0.23.6 `apps/api/v2/controllers/base.rb:252-256`).
fn not_authorized() -> Response {
    json_response(
        StatusCode::FORBIDDEN,
        &json!({ "message": "Not authorized" }),
    )
}

/// `secret_not_found_response` (base.rb:238-240): the key as sent.
fn unknown_secret(key: &str) -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        &json!({ "message": "Unknown secret", "secret_key": key }),
    )
}

/// `handle_form_error`: 422 (base.rb:230-236).
fn form_error(message: &str) -> Response {
    json_response(
        StatusCode::UNPROCESSABLE_ENTITY,
        &json!({ "shrimp": shrimp(), "message": message, "success": false }),
    )
}

/// `error_response`: HTTP 500 for an action that was not greenlighted (base.rb:204-209,
/// 258-263).
fn action_failed(message: &str) -> Response {
    json_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        &json!({ "shrimp": shrimp(), "message": message, "success": false }),
    )
}

/// `throttle_response` for `OT::LimitExceeded` (helpers.rb:98-105, base.rb:265-270); also the
/// answer to the rate-limit fault on these profiles.
pub(crate) fn rate_limited() -> Response {
    json_response(
        StatusCode::TOO_MANY_REQUESTS,
        &json!({ "message": "Cripes! You have been rate limited.", "success": false }),
    )
}

/// `json_success`: `{success:true, shrimp, custid, ...}` (base.rb:204-205, 218-224).
fn action_ok(custid: &str, data: Map<String, Value>) -> Response {
    let mut body = Map::new();
    body.insert("success".into(), json!(true));
    body.insert("shrimp".into(), json!(shrimp()));
    body.insert("custid".into(), json!(custid));
    for (k, v) in data {
        if k != "success" {
            body.insert(k, v);
        }
    }
    ok(Value::Object(body))
}

/// `retrieve_records`: `{success:true, ...}` (base.rb:155).
fn records_ok(data: Value) -> Response {
    let mut body = Map::new();
    body.insert("success".into(), json!(true));
    if let Value::Object(m) = data {
        body.extend(m);
    }
    ok(Value::Object(body))
}

/// Serves one v2 request on an old profile.
pub(crate) fn serve(ctx: Ctx<'_>) -> Response {
    let profile = ctx.app.config.profile;
    let op = ctx.route.op;
    if op == Operation::NotFound {
        return not_found(profile);
    }
    // `publically` (status, version, locales, guest routes) looks at no credentials;
    // `authorized` refuses bad ones with 403 and, unless anonymous is allowed, no ones
    // (base.rb:28-111).
    let caller = ctx.caller_unless_public(
        ctx.route.guest
            || matches!(
                op,
                Operation::Status | Operation::Version | Operation::SupportedLocales
            ),
    );
    if caller == Caller::BadCredentials {
        return not_authorized();
    }
    let needs_account = matches!(op, Operation::Recent | Operation::Authcheck);
    if needs_account && caller == Caller::Anonymous {
        return not_authorized();
    }
    // `require_guest_routes!` raises a FormError (v0.23.6 helpers.rb:347-350).
    if ctx.route.guest && !ctx.app.config.guest_routes {
        return form_error("Guest API access is not available");
    }
    let version: [u64; 3] = if profile == Profile::V0_20 {
        [0, 20, 5]
    } else {
        [0, 23, 6]
    };
    match op {
        // v0.23.6 `apps/api/v2/controllers/meta.rb:13-33`; no `success` field.
        Operation::Status => ok(json!({ "status": "nominal", "locale": "en" })),
        Operation::Version => ok(json!({ "version": version, "locale": "en" })),
        Operation::Authcheck => ok(json!({
            "record": { "custid": caller.email().unwrap_or("anon") },
            "details": { "authenticated": true },
        })),
        Operation::SupportedLocales => ok(json!({
            "locales": ["en"], "default_locale": "en", "locale": "en",
        })),
        Operation::Share | Operation::Generate => share(&ctx, &caller, op),
        Operation::Receipt => receipt(&ctx),
        Operation::Burn => burn(&ctx, &caller),
        Operation::Recent => recent(&ctx, &caller),
        Operation::Secret | Operation::Reveal => reveal(&ctx, &caller),
        Operation::SecretStatus => records_ok(secret_status_body(
            ctx.app.store.secret(ctx.key()).as_ref(),
            secret_dump,
        )),
        Operation::SecretStatusList => records_ok(secret_status_list(&ctx, secret_dump)),
        _ => not_found(profile),
    }
}

fn custid(caller: &Caller) -> &str {
    caller.email().unwrap_or("anon")
}

fn share(ctx: &Ctx<'_>, caller: &Caller, op: Operation) -> Response {
    let p = &ctx.params;
    if p.nested_is_scalar("secret") {
        return form_error("Incorrect payload format");
    }
    let input = nested_input(p, op);
    let kind = input.kind;
    let host = host_of(&ctx.app.public_url);
    let new = match create::build(input, caller, &ctx.app.config, host, false) {
        Ok(n) => n,
        Err(Invalid { message, .. }) => return form_error(&message),
    };
    let recipient = new.recipients.first().cloned().unwrap_or_default();
    let share_domain = (!new.share_domain.is_empty()).then(|| new.share_domain.clone());
    let view = ctx.app.store.create(new);
    let Some(secret) = ctx.app.store.secret(&view.secret_key) else {
        // `handle_success` without a stored pair (base_secret_action.rb:245-247).
        return form_error("Could not store your secret");
    };
    let kind_name = kind.name();
    // v0.23.6 `apps/api/v2/logic/secrets/base_secret_action.rb:44-59` (v0.20.5
    // `lib/onetime/logic/secrets/base_secret_action.rb:39-53` has no `memo` and sends the
    // recipient list).
    let details = if ctx.app.config.profile == Profile::V0_20 {
        json!({
            "kind": kind_name,
            "recipient": if recipient.is_empty() { json!([]) } else { json!([recipient]) },
            "recipient_safe": if recipient.is_empty() { json!([]) } else { json!([recipient]) },
        })
    } else {
        json!({
            "kind": kind_name,
            "recipient": recipient,
            "recipient_safe": if recipient.is_empty() { json!([]) } else { json!([recipient]) },
            "memo": "",
        })
    };
    let mut data = Map::new();
    data.insert(
        "record".into(),
        json!({
            "metadata": metadata_dump(&view),
            "secret": secret_dump(&secret, State::New),
            "share_domain": share_domain,
        }),
    );
    data.insert("details".into(), details);
    action_ok(custid(caller), data)
}

/// `ShowMetadata#success_data` (v0.23.6 `apps/api/v2/logic/secrets/show_metadata.rb:126-185`);
/// paths are under `/private` there.
fn receipt(ctx: &Ctx<'_>) -> Response {
    let Some(view) = ctx.app.store.receipt(ctx.key()) else {
        return unknown_secret(ctx.key());
    };
    let show_secret = view.secret_live && !view.has_passphrase && view.state == State::New;
    let mut rec = metadata_dump(&view);
    if show_secret {
        rec.insert("secret_key".into(), json!(view.secret_key));
    }
    rec.extend(links(ctx, &view, view.ttl, Layout::Legacy));
    rec.insert(
        "secret_state".into(),
        json!(view.secret_live.then_some("new")),
    );
    let value = view.value.as_ref().map(|v| v.expose_secret().to_owned());
    records_ok(json!({
        "record": rec,
        "details": {
            "type": "record",
            "display_lines": display_lines(value.as_deref().unwrap_or_default()),
            "no_cache": true,
            "secret_realttl": view.secret_ttl,
            "maxviews": 1,
            "has_maxviews": false,
            "view_count": null,
            "has_passphrase": view.secret_live && view.has_passphrase,
            "can_decrypt": view.secret_live,
            "secret_value": value,
            "is_truncated": false,
            "show_secret": show_secret,
            "show_secret_link": show_secret && view.recipients.is_empty(),
            "show_metadata_link": view.state == State::New,
            "show_metadata": true,
            "show_recipients": !view.recipients.is_empty(),
        },
    }))
}

/// `burn_secret` through `process_action` (v0.23.6 `apps/api/v2/controllers/secrets.rb:46-53`,
/// `logic/secrets/burn_secret.rb:22-49`).
fn burn(ctx: &Ctx<'_>, caller: &Caller) -> Response {
    let p = &ctx.params;
    let gate = GateInput {
        passphrase: p.get("passphrase"),
        client_ip: None,
        count_missing: true,
    };
    // `greenlighted = viewable && correct_passphrase && params[:continue]` (burn_secret.rb:32):
    // the raw value, so any non-empty value but a JSON false counts.
    let confirm = p
        .get("continue")
        .is_some_and(|c| !c.is_empty() && c != "false");
    let failed = || {
        if ctx.route.guest {
            // `process_guest_action` (v0.23.6 secrets.rb:135-139).
            action_failed("Action could not be completed")
        } else {
            action_failed("Secret could not be burned.")
        }
    };
    match ctx.app.store.burn(ctx.key(), gate, confirm) {
        Ok((view, Burn::Burned)) => {
            // The metadata as loaded before the burn (burn_secret.rb:51-67): state "new".
            let mut rec = metadata_dump(&view);
            let lifespan = view.ttl.saturating_mul(2);
            rec.extend(links(ctx, &view, lifespan, Layout::Legacy));
            let mut data = Map::new();
            data.insert("record".into(), Value::Object(rec));
            data.insert(
                "details".into(),
                json!({
                    "type": "record",
                    "title": "Secret burned",
                    "display_lines": 0,
                    "display_feedback": false,
                    "no_cache": true,
                    "maxviews": 0,
                    "has_maxviews": false,
                    "view_count": 0,
                    "has_passphrase": false,
                    "can_decrypt": false,
                    "is_truncated": false,
                    "show_secret": false,
                    "show_secret_link": false,
                    "show_metadata_link": false,
                    "show_metadata": true,
                    "show_recipients": !view.recipients.is_empty(),
                    "is_orphaned": false,
                }),
            );
            action_ok(custid(caller), data)
        }
        // Not greenlighted: no `continue`, the secret already gone, or a lost race.
        Ok((_, Burn::NotConfirmed | Burn::Lost)) | Err(BurnError::SecretGone) => failed(),
        Err(BurnError::NoReceipt) => unknown_secret(ctx.key()),
        Err(BurnError::IncorrectPassphrase) => form_error("Incorrect passphrase"),
        Err(BurnError::Locked(_)) => rate_limited(),
    }
}

/// `ListMetadata#success_data` (v0.23.6 `apps/api/v2/logic/secrets/list_metadata.rb:38-51`).
fn recent(ctx: &Ctx<'_>, caller: &Caller) -> Response {
    let Some(email) = caller.email() else {
        return not_authorized();
    };
    let records = dump_all(&ctx.app.store.recent(email), metadata_dump);
    let (received, notreceived) = split_on(&records, "is_received");
    let now = ctx.app.store.clock.now();
    records_ok(json!({
        "custid": email,
        "count": records.len(),
        "records": records,
        "details": {
            "type": "list",
            "since": now.saturating_sub(30 * 86_400),
            "now": now,
            "has_items": !records.is_empty(),
            "received": received,
            "notreceived": notreceived,
        },
    }))
}

/// `RevealSecret` / `ShowSecret` through `retrieve_records` (v0.23.6
/// `apps/api/v2/logic/secrets/reveal_secret.rb:12-110`): 404 `Unknown secret` when missing,
/// 422 `Incorrect passphrase`, otherwise 200 with the value only under `continue=true`.
fn reveal(ctx: &Ctx<'_>, caller: &Caller) -> Response {
    let p = &ctx.params;
    let passphrase = p.get("passphrase");
    let confirm = p.get("continue") == Some("true");
    let gate = GateInput {
        passphrase,
        client_ip: None,
        count_missing: true,
    };
    match ctx.app.store.reveal(ctx.key(), gate, confirm) {
        Ok(r) => records_ok(revealed(
            &r,
            confirm,
            passphrase,
            caller,
            secret_dump,
            false,
        )),
        Err(RevealError::Unknown) => unknown_secret(ctx.key()),
        Err(RevealError::WrongPassphrase) => form_error("Incorrect passphrase"),
        Err(RevealError::Locked(_)) => rate_limited(),
    }
}

/// The v1-era state names the metadata record used (`new`, `received`, `burned`, ...).
fn legacy_state(state: State) -> &'static str {
    state.v1_name()
}

/// `Metadata#safe_dump` (v0.23.6 `apps/api/v2/models/metadata.rb` `@safe_dump_fields`):
/// `metadata_ttl` and `lifespan` are the receipt's lifetime, 2×ttl (base_secret_action.rb:233-235).
fn metadata_dump(v: &ReceiptView) -> Map<String, Value> {
    let lifespan = v.ttl.saturating_mul(2);
    let received = v.received.filter(|_| v.state == State::Received);
    let dump = json!({
        "identifier": v.metadata_key,
        "key": v.metadata_key,
        "custid": v.owner.as_deref().unwrap_or("anon"),
        "state": legacy_state(v.state),
        "secret_shortkey": v.secret_key.chars().take(6).collect::<String>(),
        "secret_ttl": v.ttl,
        "metadata_ttl": lifespan,
        "lifespan": lifespan,
        "share_domain": v.share_domain,
        "created": epoch_f(v.created),
        "updated": epoch_f(v.updated),
        "shared": null,
        "received": received,
        "burned": v.burned,
        "viewed": null,
        "recipients": v.recipients.join(","),
        "memo": null,
        "shortkey": v.metadata_key.chars().take(8).collect::<String>(),
        "show_recipients": !v.recipients.is_empty(),
        "is_viewed": false,
        "is_received": v.state == State::Received,
        "is_burned": v.state == State::Burned,
        "is_expired": v.state == State::Expired,
        "is_orphaned": v.state == State::Orphaned,
        "is_destroyed": v.state.is_final(),
        "is_truncated": false,
        "has_passphrase": v.has_passphrase,
    });
    object(dump)
}

/// `Secret#safe_dump` (v0.23.6 `apps/api/v2/models/secret.rb:43-55`).
fn secret_dump(v: &SecretView, state: State) -> Map<String, Value> {
    let dump = json!({
        "identifier": v.secret_key,
        "key": v.secret_key,
        "state": legacy_state(state),
        "secret_ttl": v.ttl,
        "lifespan": v.ttl,
        "shortkey": v.secret_key.chars().take(8).collect::<String>(),
        "has_passphrase": v.has_passphrase,
        "verification": false,
        "is_truncated": false,
        "created": epoch_f(v.created),
        "updated": epoch_f(v.updated),
    });
    object(dump)
}
