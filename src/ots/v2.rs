//! The v2 API (`/api/v2`): JSON requests and answers wrapped in `{record, details}`.
//!
//! Answers are read leniently: v2 has sent the same field as a number, a float or a string over
//! its history, and names fields `identifier`/`secret_identifier` where v1 says
//! `metadata_key`/`secret_key`.
//!
//! Error mapping, first match wins (server text is kept only when it is a known real text, see
//! `json::known_message`; otherwise errors say the HTTP status and `error_type`):
//!
//! | answer | error |
//! |---|---|
//! | 500 `{success:false, message}` (v0.21–v0.23 `error_response`) | `Refused`, or `Unavailable` for their outage texts |
//! | other 5xx (503 = undecryptable), 408 | `Unavailable` |
//! | 429, or `LimitExceeded` | `RateLimited` (Retry-After header, else the body's `retry_after`) |
//! | 401; 403 `Unauthorized` or v0.20/v0.23's `Not authorized` | `Unauthorized` |
//! | 403 `EntitlementRequired` (e.g. a ttl above the plan) | `EntitlementRequired` |
//! | 403 `GuestRoutesDisabled` | `GuestRoutesDisabled` |
//! | other 403 (`Forbidden`: share domain, …) | `Forbidden` |
//! | 404 `RecordNotFound`, or v0.20/v0.23's `Unknown secret` | `NotFound` |
//! | 404 `NotFound`, or `{"error":"Not Found"}`/`{"message":"Not Found"}` (v0.23/v0.20 unknown route) | `RouteNotFound` with the path |
//! | 400/422 `Incorrect passphrase` on reveal | `NotFound`, as in v1: a wrong passphrase reveals nothing |
//! | 400/422 mentioning a rate limit | `RateLimited` |
//! | 400/413/422 size refusal | `SecretTooLarge` (with the server's limit) |
//! | 400/422 passphrase rule on create | `PassphraseRefused` |
//! | 400/413/422 otherwise | `Validation` |
//! | a 2xx with `"success": false` | `Refused` (a burn confirms through the receipt instead) |
//! | anything else (other 404s, 3xx, other 4xx, garbage) | `Protocol` |
//!
//! Receipts live under `/receipt/*` since v0.21 and under `/private/*` on every version
//! (v0.18–v0.20 have only `/private/*`). The first receipt call tries `/receipt/*` and, on an
//! unknown-route answer, `/private/*`; the layout that answered is remembered per server.

use std::time::Duration;

use reqwest::{Method, RequestBuilder, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::OnceCell;

use super::error::OtsError;
use super::http::{Http, Op, Reply};
use super::json::{self, Object, missing};
use super::types::{
    BurnAnswer, GenerateRequest, Receipt, ResolvedApi, SecretState, ServerStatus, ShareRequest,
    Unread,
};
use super::v1::receipt_url;

const API: ResolvedApi = ResolvedApi::V2;

/// Body of `conceal` and `generate`: everything under `secret`.
#[derive(Serialize)]
struct CreateBody<'a> {
    secret: CreateFields<'a>,
}

#[derive(Serialize)]
struct CreateFields<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ttl: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    passphrase: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    recipient: Vec<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    length: Option<u32>,
    /// The account's custom domain for the link; the server refuses one the account may not use.
    #[serde(skip_serializing_if = "Option::is_none")]
    share_domain: Option<&'a str>,
}

/// Body of `reveal` and `burn`: without `continue: true` v2 answers 200 and does nothing.
#[derive(Serialize)]
struct ConfirmBody<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    passphrase: Option<&'a str>,
    #[serde(rename = "continue")]
    confirm: bool,
}

impl<'a> ConfirmBody<'a> {
    fn new(passphrase: Option<&'a SecretString>) -> Self {
        Self {
            passphrase: passphrase.map(|p| p.expose_secret()),
            confirm: true,
        }
    }
}

/// `GET /status`.
pub async fn status(http: &Http) -> Result<ServerStatus, OtsError> {
    let request = http.request(Method::GET, API, &["status"]);
    let value = http.call(Op::Status, API, None, request, check).await?;
    status_from(Op::Status, &value)
}

/// Reads a status answer (`{"success":true,"status":"nominal","locale":"en"}`).
pub fn status_from(op: Op, value: &Value) -> Result<ServerStatus, OtsError> {
    json::server_status(op, value, API)
}

/// `POST /secret/conceal`.
pub async fn share(http: &Http, req: &ShareRequest, ttl: Option<u64>) -> Result<Receipt, OtsError> {
    let op = Op::Share;
    let body = CreateBody {
        secret: CreateFields {
            secret: Some(req.secret.expose_secret()),
            ttl,
            passphrase: req.passphrase.as_ref().map(|p| p.expose_secret()),
            recipient: req.recipient.as_deref().into_iter().collect(),
            length: None,
            share_domain: req.share_domain.as_deref(),
        },
    };
    let request = http
        .request(Method::POST, API, &["secret", "conceal"])
        .json(&body);
    let value = http.call(op, API, None, request, check).await?;
    created_receipt(op, &value)
}

/// `POST /secret/generate`; the value comes from the answer or, as on the real server, from the
/// receipt's one-time display of a generated value.
pub async fn generate(
    http: &Http,
    req: &GenerateRequest,
    ttl: Option<u64>,
) -> Result<(Receipt, SecretString), OtsError> {
    let op = Op::Generate;
    let body = CreateBody {
        secret: CreateFields {
            secret: None,
            ttl,
            passphrase: req.passphrase.as_ref().map(|p| p.expose_secret()),
            recipient: req.recipient.as_deref().into_iter().collect(),
            length: req.length,
            share_domain: req.share_domain.as_deref(),
        },
    };
    let request = http
        .request(Method::POST, API, &["secret", "generate"])
        .json(&body);
    let mut value = http.call(op, API, None, request, check).await?;
    let receipt = created_receipt(op, &value)?;
    if let Some(secret) = take_secret_value(&mut value) {
        return Ok((receipt, secret));
    }
    // The real server only shows a generated value on the first receipt view within 60 s.
    let request = http.request(Method::GET, API, &["receipt", &receipt.metadata_key]);
    let mut value = http
        .call(op, API, Some(&receipt.metadata_key), request, check)
        .await?;
    let secret = take_secret_value(&mut value).ok_or_else(|| missing(op, "secret_value"))?;
    Ok((receipt, secret))
}

/// `POST /secret/KEY/reveal` with `continue: true`.
pub async fn reveal(
    http: &Http,
    secret_key: &str,
    passphrase: Option<&SecretString>,
) -> Result<SecretString, OtsError> {
    let op = Op::Reveal;
    let request = http
        .request(Method::POST, API, &["secret", secret_key, "reveal"])
        .json(&ConfirmBody::new(passphrase));
    let mut value = http.call(op, API, Some(secret_key), request, check).await?;
    if let Some(secret) = take_secret_value(&mut value) {
        return Ok(secret);
    }
    // A 200 without a value: the reveal was lost to a concurrent one or the gate stayed shut.
    match value.get("record") {
        Some(Value::Object(_)) => Err(OtsError::NotFound),
        _ => Err(missing(op, "record")),
    }
}

/// Where a v2 server keeps its receipt routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiptLayout {
    /// `/receipt/*` (v0.21 and later; `/private/*` remain aliases).
    Receipt,
    /// Only `/private/*` (v0.18–v0.20).
    Private,
}

impl ReceiptLayout {
    fn segment(self) -> &'static str {
        match self {
            Self::Receipt => "receipt",
            Self::Private => "private",
        }
    }
}

/// Whether an answer says the route does not exist (as opposed to a missing record).
fn is_unknown_route(reply: &Reply) -> bool {
    reply.status == StatusCode::NOT_FOUND
        && matches!(error(Op::Receipt, reply), OtsError::RouteNotFound { .. })
}

/// Whether an answer says something definite about the route (so the layout can be kept).
fn is_definite(reply: &Reply) -> bool {
    let status = reply.status;
    status.is_success()
        || (status.is_client_error()
            && !matches!(
                status,
                StatusCode::TOO_MANY_REQUESTS | StatusCode::REQUEST_TIMEOUT
            ))
}

/// Sends a receipt-route request, finding (once per server) which receipt layout it has.
async fn send_receipt_route(
    http: &Http,
    layout: &OnceCell<ReceiptLayout>,
    op: Op,
    key: &str,
    build: impl Fn(&'static str) -> RequestBuilder,
) -> Result<Reply, OtsError> {
    if let Some(known) = layout.get() {
        return http.send(op, API, Some(key), build(known.segment())).await;
    }
    let reply = http
        .send(op, API, Some(key), build(ReceiptLayout::Receipt.segment()))
        .await?;
    if !is_unknown_route(&reply) {
        if is_definite(&reply) {
            let _ = layout.set(ReceiptLayout::Receipt);
        }
        return Ok(reply);
    }
    // No `/receipt/*` here: a v0.18–v0.20 server keeps receipts under `/private/*`.
    let fallback = http
        .send(op, API, Some(key), build(ReceiptLayout::Private.segment()))
        .await?;
    if is_definite(&fallback) && !is_unknown_route(&fallback) {
        tracing::debug!("OTS v2 receipts live under /private on this server");
        let _ = layout.set(ReceiptLayout::Private);
    }
    Ok(fallback)
}

/// `GET /receipt/KEY` (or `/private/KEY` on v0.18–v0.20).
pub async fn receipt(
    http: &Http,
    layout: &OnceCell<ReceiptLayout>,
    metadata_key: &str,
) -> Result<Receipt, OtsError> {
    let op = Op::Receipt;
    let reply = send_receipt_route(http, layout, op, metadata_key, |segment| {
        http.request(Method::GET, API, &[segment, metadata_key])
    })
    .await?;
    let value = check(op, &reply)?;
    record_receipt(op, &value)
}

/// `POST /receipt/KEY/burn` (or `/private/KEY/burn`) with `continue: true`.
///
/// `200` with a record and `success:true` is a burn (the record is serialized as loaded, so its
/// state reads `new`: it is reported as burned). `200 {"success":true}` without a record
/// (`burn_secret.rb:54-56`: the secret was already consumed) and `success:false` (a concurrent
/// reveal won) are [`BurnAnswer::NotBurned`]: the caller reads the receipt for the truth.
pub async fn burn(
    http: &Http,
    layout: &OnceCell<ReceiptLayout>,
    metadata_key: &str,
    passphrase: Option<&SecretString>,
) -> Result<BurnAnswer, OtsError> {
    let op = Op::Burn;
    let body = ConfirmBody::new(passphrase);
    let reply = send_receipt_route(http, layout, op, metadata_key, |segment| {
        http.request(Method::POST, API, &[segment, metadata_key, "burn"])
            .json(&body)
    })
    .await?;
    if !reply.status.is_success() {
        return Err(error(op, &reply));
    }
    let value = json::parse(op.as_str(), &reply.body)?;
    let success = value.get("success").and_then(Value::as_bool);
    match (success, value.get("record")) {
        (Some(false), _) => Ok(BurnAnswer::NotBurned),
        (Some(true), None | Some(Value::Null)) => Ok(BurnAnswer::NotBurned),
        (_, Some(Value::Object(_))) => {
            let mut receipt = record_receipt(op, &value)?;
            receipt.state = SecretState::Burned;
            Ok(BurnAnswer::Burned(Box::new(receipt)))
        }
        _ => Err(missing(op, "record")),
    }
}

/// Which v2 route verifies credentials on a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyRoute {
    /// `GET /authcheck` (v0.18–v0.23: `authorized`; their `/version` is public).
    Authcheck,
    /// `GET /version` (current servers, which have no v2 `/authcheck`; it needs credentials).
    Version,
}

/// Verifies credentials: `GET /authcheck` where the server has it (v0.18–v0.23, whose
/// `/version` answers anyone: tag v0.23.6 `apps/api/v2/controllers/meta.rb:19-33`), else
/// `GET /version` (de53ff8f7 `apps/api/v2/routes.txt`: `auth=sessionauth,basicauth`). Which one
/// the server has is remembered once it answered definitely.
pub async fn verify(http: &Http, route: &OnceCell<VerifyRoute>) -> Result<(), OtsError> {
    let op = Op::Verify;
    let ask = |which: VerifyRoute| {
        let segment = match which {
            VerifyRoute::Authcheck => "authcheck",
            VerifyRoute::Version => "version",
        };
        http.send(op, API, None, http.request(Method::GET, API, &[segment]))
    };
    if let Some(known) = route.get() {
        let reply = ask(*known).await?;
        return check(op, &reply).map(|_| ());
    }
    let reply = ask(VerifyRoute::Authcheck).await?;
    if !is_unknown_route(&reply) {
        if is_definite(&reply) {
            let _ = route.set(VerifyRoute::Authcheck);
        }
        return check(op, &reply).map(|_| ());
    }
    let reply = ask(VerifyRoute::Version).await?;
    if is_definite(&reply) && !is_unknown_route(&reply) {
        let _ = route.set(VerifyRoute::Version);
    }
    check(op, &reply).map(|_| ())
}

/// `GET /receipt/recent` (authenticated only).
pub async fn recent(http: &Http) -> Result<Vec<Receipt>, OtsError> {
    let op = Op::Recent;
    let request = http.request(Method::GET, API, &["receipt", "recent"]);
    let value = http.call(op, API, None, request, check).await?;
    recent_from(op, &value)
}

/// `POST /secret/status` with `identifiers` (comma-separated secret keys): one [`Unread`] per key,
/// in the order given. Reads nothing (`list_secret_status.rb`: the live secrets among the
/// identifiers, each `safe_dump`ed; a repeat is listed twice, an unknown key not at all).
pub async fn unread_among(http: &Http, secret_keys: &[&str]) -> Result<Vec<Unread>, OtsError> {
    let op = Op::BatchStatus;
    let request = http
        .request(Method::POST, API, &["secret", "status"])
        .json(&serde_json::json!({ "identifiers": secret_keys.join(",") }));
    let value = http.call(op, API, None, request, check).await?;
    unread_from(op, &value, secret_keys)
}

/// Reads a batch status answer (`{"records":[{identifier, state, is_previewed, …}], "count"}`)
/// for `asked`. A record is believed only for a key that was asked and an unread state (`new`,
/// `previewed`); anything else in the list is ignored, so an answer that lists garbage or leaves a live
/// secret out never makes a link look live that is gone: the caller reads the receipt of every
/// key reported [`Unread::Left`].
pub fn unread_from(op: Op, value: &Value, asked: &[&str]) -> Result<Vec<Unread>, OtsError> {
    let items = value
        .get("records")
        .and_then(Value::as_array)
        .ok_or_else(|| missing(op, "records"))?;
    let mut listed: std::collections::HashMap<&str, bool> = std::collections::HashMap::new();
    for item in items {
        let Some(record) = item.as_object() else {
            continue;
        };
        let Some(key) = ["identifier", "key"]
            .iter()
            .find_map(|field| record.get(*field).and_then(Value::as_str))
        else {
            continue;
        };
        let state = record
            .get("state")
            .and_then(Value::as_str)
            .map(SecretState::parse);
        // Only an unread state is believed; a final, unknown or missing one is the receipt's
        // to explain.
        let previewed = match state {
            Some(SecretState::New) => record.get("is_previewed") == Some(&Value::Bool(true)),
            Some(SecretState::Viewed) => true,
            _ => continue,
        };
        let seen = listed.entry(key).or_default();
        *seen |= previewed;
    }
    Ok(asked
        .iter()
        .map(|key| match listed.get(key) {
            Some(previewed) => Unread::Yes {
                previewed: *previewed,
            },
            None => Unread::Left,
        })
        .collect())
}

/// Reads a recent list: `{"records":[…]}` (or a bare array).
pub fn recent_from(op: Op, value: &Value) -> Result<Vec<Receipt>, OtsError> {
    let items = value
        .get("records")
        .unwrap_or(value)
        .as_array()
        .ok_or_else(|| missing(op, "records"))?;
    items
        .iter()
        .map(|item| {
            receipt_from(
                op,
                json::object(op.as_str(), "a receipt", item)?,
                None,
                None,
            )
        })
        .collect()
}

/// The `record` object of an answer's root.
fn record_of(op: Op, root: &Object) -> Result<&Object, OtsError> {
    json::object(
        op.as_str(),
        "`record`",
        root.get("record").ok_or_else(|| missing(op, "record"))?,
    )
}

/// Reads `{record:{receipt|metadata, secret}}` from conceal/generate.
pub fn created_receipt(op: Op, value: &Value) -> Result<Receipt, OtsError> {
    let root = json::object(op.as_str(), "the answer", value)?;
    let record = record_of(op, root)?;
    let receipt = record
        .get("receipt")
        .or_else(|| record.get("metadata"))
        .ok_or_else(|| missing(op, "record.receipt"))?;
    let receipt = json::object(op.as_str(), "`record.receipt`", receipt)?;
    let secret = record.get("secret").and_then(Value::as_object);
    let mut receipt = receipt_from(op, receipt, secret, None)?;
    // The domain the server used is also beside the records (`record.share_domain`).
    if receipt.share_domain.is_none() {
        receipt.share_domain = json::string(record, &["share_domain"]);
    }
    Ok(receipt)
}

/// Reads `{record, details}` from receipt and burn.
pub fn record_receipt(op: Op, value: &Value) -> Result<Receipt, OtsError> {
    let root = json::object(op.as_str(), "the answer", value)?;
    let record = record_of(op, root)?;
    let details = root.get("details").and_then(Value::as_object);
    receipt_from(op, record, None, details)
}

/// A v2 receipt record, completed from the secret record (creation) or `details` (receipt view).
pub fn receipt_from(
    op: Op,
    record: &Object,
    secret: Option<&Object>,
    details: Option<&Object>,
) -> Result<Receipt, OtsError> {
    let from_secret = |f: &dyn Fn(&Object) -> Option<u64>| secret.and_then(f);
    let metadata_key = json::string(record, &["identifier", "key", "metadata_key"])
        .ok_or_else(|| missing(op, "identifier"))?;
    Ok(Receipt {
        receipt_url: receipt_url(record, &metadata_key),
        metadata_key,
        secret_key: json::string(record, &["secret_identifier", "secret_key"])
            .or_else(|| secret.and_then(|s| json::string(s, &["identifier", "key"]))),
        state: SecretState::parse(
            &json::string(record, &["state"]).ok_or_else(|| missing(op, "state"))?,
        ),
        // v2 keeps the granted lifetime in the receipt's `secret_ttl`; a secret record calls it
        // `lifespan`.
        ttl: json::u64_field(record, &["ttl"])
            .or_else(|| from_secret(&|s| json::u64_field(s, &["lifespan", "secret_ttl"])))
            .or_else(|| json::u64_field(record, &["secret_ttl"])),
        secret_ttl: details
            .and_then(|d| json::u64_field(d, &["secret_realttl"]))
            .or_else(|| json::u64_field(record, &["expiration_in_seconds"]))
            .or_else(|| from_secret(&|s| json::u64_field(s, &["secret_ttl", "lifespan"]))),
        metadata_ttl: json::u64_field(record, &["metadata_ttl", "receipt_ttl", "lifespan"]),
        created: json::i64_field(record, &["created"]),
        updated: json::i64_field(record, &["updated"]),
        received: json::i64_field(record, &["received", "revealed"]),
        // Access telemetry of a receipt view (`show_receipt.rb:100-102`, de53ff8f7): a positive
        // `view_count` with `first_access` says the link was opened, revealed or not.
        first_access: details
            .filter(|d| json::u64_field(d, &["view_count"]).is_some_and(|n| n > 0))
            .and_then(|d| json::i64_field(d, &["first_access"])),
        passphrase_required: json::bool_field(record, &["passphrase_required", "has_passphrase"])
            .or_else(|| secret.and_then(|s| json::bool_field(s, &["has_passphrase"]))),
        recipients: json::strings(record, &["recipients", "recipient"]),
        share_domain: json::string(record, &["share_domain"]),
    })
}

/// Takes a revealed or generated value out of an answer, wherever this server put it.
fn take_secret_value(value: &mut Value) -> Option<SecretString> {
    const PLACES: [&str; 6] = [
        "/record/secret_value",
        "/record/secret/secret_value",
        "/record/receipt/secret_value",
        "/details/secret_value",
        "/record/value",
        "/value",
    ];
    PLACES
        .iter()
        .find_map(|pointer| match value.pointer_mut(pointer) {
            Some(Value::String(s)) if !s.is_empty() => Some(SecretString::from(std::mem::take(s))),
            _ => None,
        })
}

/// The JSON of a successful answer, or the error the answer stands for.
pub fn check(op: Op, reply: &Reply) -> Result<Value, OtsError> {
    if !reply.status.is_success() {
        return Err(error(op, reply));
    }
    let value = json::parse(op.as_str(), &reply.body)?;
    if value.get("success") == Some(&Value::Bool(false)) {
        return Err(OtsError::Refused {
            message: described(reply.status, value.as_object()),
        });
    }
    Ok(value)
}

/// The raw text of an error answer (`error`, else `message`); untrusted, for matching only.
fn error_text(obj: Option<&Object>) -> Option<String> {
    obj.and_then(|o| json::string(o, &["error", "message"]))
}

/// The server's known text, else its HTTP status and `error_type`.
fn described(status: StatusCode, obj: Option<&Object>) -> String {
    error_text(obj)
        .as_deref()
        .and_then(json::known_message)
        .unwrap_or_else(|| json::status_words(status.as_u16(), json::error_type(obj).as_deref()))
}

/// v0.21–v0.23 texts that mean the server failed rather than declined
/// (tag v0.23.6 `apps/api/v2/controllers/helpers.rb:105-144`).
const OUTAGE_TEXTS: [&str; 4] = [
    "An unexpected error occurred :[",
    "An error occurred :[",
    "We'll be back shortly!",
    "We're sorry, but we can't process your request at this time.",
];

/// A size refusal's limit: `Secret content must be no more than N bytes long` (v2) or
/// `Secret value exceeds the maximum size of N bytes` (v1).
pub fn size_refusal(text: &str) -> Option<Option<usize>> {
    let known = json::known_message(text)?;
    let digits = |s: &str| s.chars().filter(char::is_ascii_digit).collect::<String>();
    (known.starts_with("Secret content must be no more than")
        || known.starts_with("Secret value exceeds the maximum size"))
    .then(|| digits(&known).parse().ok())
}

/// A passphrase-rule refusal of a create request.
pub fn passphrase_refusal(text: &str) -> Option<String> {
    json::known_message(text)
        .filter(|k| k.starts_with("Passphrase must") || k.starts_with("A passphrase is required"))
}

/// Maps a failed v2 answer to an error (see the module docs for the table).
pub fn error(op: Op, reply: &Reply) -> OtsError {
    let status = reply.status;
    let body = serde_json::from_slice::<Value>(&reply.body).ok();
    let obj = body.as_ref().and_then(Value::as_object);
    let kind = json::error_type(obj);
    let text = error_text(obj).unwrap_or_default();
    let old_style_failure = obj.is_some_and(|o| o.get("success") == Some(&Value::Bool(false)));
    if status == StatusCode::INTERNAL_SERVER_ERROR && old_style_failure && !text.is_empty() {
        // v0.21–v0.23 `error_response`: the action was declined (or the server failed).
        return if OUTAGE_TEXTS.contains(&text.as_str()) {
            OtsError::Unavailable {
                detail: format!("{op}: HTTP 500 ({text})"),
            }
        } else {
            OtsError::Refused {
                message: described(status, obj),
            }
        };
    }
    if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
        return OtsError::Unavailable {
            detail: format!("{op}: HTTP {}", status.as_u16()),
        };
    }
    let rate_limited = || OtsError::RateLimited {
        retry_after: reply.retry_after.or_else(|| {
            obj.and_then(|o| json::u64_field(o, &["retry_after"]))
                .map(Duration::from_secs)
        }),
    };
    if status == StatusCode::TOO_MANY_REQUESTS || kind.as_deref() == Some("LimitExceeded") {
        return rate_limited();
    }
    match status {
        StatusCode::UNAUTHORIZED => OtsError::Unauthorized,
        StatusCode::FORBIDDEN => match kind.as_deref() {
            Some("EntitlementRequired") => OtsError::EntitlementRequired {
                entitlement: obj
                    .and_then(|o| json::string(o, &["entitlement"]))
                    .filter(|e| {
                        e.len() <= 64 && e.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    }),
            },
            Some("GuestRoutesDisabled") => OtsError::GuestRoutesDisabled,
            Some("Unauthorized") => OtsError::Unauthorized,
            None if text == "Not authorized" => OtsError::Unauthorized,
            _ => OtsError::Forbidden {
                detail: described(status, obj),
            },
        },
        StatusCode::NOT_FOUND => match kind.as_deref() {
            Some("RecordNotFound") => OtsError::NotFound,
            Some("NotFound") => OtsError::RouteNotFound {
                path: reply.path.clone(),
            },
            None if text.starts_with("Unknown secret") => OtsError::NotFound,
            None if text == "Not Found" => OtsError::RouteNotFound {
                path: reply.path.clone(),
            },
            _ if obj.is_some() => OtsError::Protocol {
                detail: format!(
                    "{op}: {} at {} is neither a missing record nor an unknown route",
                    json::status_words(404, kind.as_deref()),
                    reply.path
                ),
            },
            _ => OtsError::Protocol {
                detail: format!(
                    "{op}: HTTP 404 without a JSON error at {} (is the URL an Onetime Secret server?)",
                    reply.path
                ),
            },
        },
        StatusCode::BAD_REQUEST
        | StatusCode::UNPROCESSABLE_ENTITY
        | StatusCode::PAYLOAD_TOO_LARGE => {
            let lower = text.to_ascii_lowercase();
            let creates = matches!(op, Op::Share | Op::Generate);
            if op == Op::Reveal && lower.contains("passphrase") {
                OtsError::NotFound
            } else if lower.contains("rate limit") {
                rate_limited()
            } else if let Some(max) = size_refusal(&text) {
                OtsError::SecretTooLarge { max }
            } else if creates && status == StatusCode::PAYLOAD_TOO_LARGE {
                OtsError::SecretTooLarge { max: None }
            } else if let Some(message) = passphrase_refusal(&text).filter(|_| creates) {
                OtsError::PassphraseRefused { message }
            } else {
                OtsError::Validation {
                    message: described(status, obj),
                }
            }
        }
        other => OtsError::Protocol {
            detail: format!("{op}: unexpected HTTP {}", other.as_u16()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_batch_answer_is_believed_only_for_asked_keys_in_an_unread_state() {
        let asked = ["aaa", "bbb", "ccc", "ddd", "eee"];
        let answer = json!({"count": 7, "records": [
            {"identifier": "aaa", "state": "new", "is_previewed": false},
            // A lie or garbage: a final state, no state, not an object, a key nobody asked.
            {"identifier": "bbb", "state": "revealed"},
            {"identifier": "ccc"},
            "ddd",
            {"identifier": "zzz", "state": "new"},
            {"key": "eee", "state": "previewed"},
            {"identifier": "aaa", "state": "new", "is_previewed": true},
        ]});
        assert_eq!(
            unread_from(Op::BatchStatus, &answer, &asked).unwrap(),
            [
                Unread::Yes { previewed: true },
                Unread::Left,
                Unread::Left,
                Unread::Left,
                Unread::Yes { previewed: true },
            ]
        );
    }

    #[test]
    fn a_batch_answer_without_its_list_is_an_error_not_every_link_gone() {
        for answer in [json!({"count": 0}), json!({"records": "none"}), json!([])] {
            assert!(matches!(
                unread_from(Op::BatchStatus, &answer, &["aaa"]),
                Err(OtsError::Protocol { .. })
            ));
        }
    }

    fn reply(status: u16, body: &str) -> Reply {
        Reply::for_test(status, None, body, "/api/v2/receipt/abcdef…")
    }

    #[test]
    fn v2_error_table_maps_every_documented_answer() {
        let cases: Vec<(Op, Reply, OtsError)> = vec![
            (
                Op::Share,
                reply(
                    401,
                    r#"{"error":"Not authorized","error_type":"Unauthorized"}"#,
                ),
                OtsError::Unauthorized,
            ),
            (
                Op::Share,
                reply(403, r#"{"error":"Forbidden"}"#),
                OtsError::Forbidden {
                    detail: "HTTP 403".into(),
                },
            ),
            (
                Op::Share,
                reply(
                    403,
                    r#"{"error":"Custom domain not allowed","error_type":"Forbidden"}"#,
                ),
                OtsError::Forbidden {
                    detail: "HTTP 403 (Forbidden)".into(),
                },
            ),
            (
                Op::Share,
                reply(
                    403,
                    r#"{"error":"Feature requires extended default expiration entitlement","error_type":"EntitlementRequired","entitlement":"extended_default_expiration","current_plan":"free_v1"}"#,
                ),
                OtsError::EntitlementRequired {
                    entitlement: Some("extended_default_expiration".into()),
                },
            ),
            (
                Op::Share,
                reply(
                    403,
                    r#"{"error":"Guest API access is disabled","error_type":"GuestRoutesDisabled","code":"GUEST_ROUTES_DISABLED"}"#,
                ),
                OtsError::GuestRoutesDisabled,
            ),
            (
                Op::Share,
                reply(403, r#"{"message":"Not authorized"}"#),
                OtsError::Unauthorized,
            ),
            (
                Op::Burn,
                reply(
                    500,
                    r#"{"message":"Secret could not be burned.","success":false,"shrimp":"x"}"#,
                ),
                OtsError::Refused {
                    message: "Secret could not be burned.".into(),
                },
            ),
            (
                Op::Share,
                reply(
                    500,
                    r#"{"message":"We'll be back shortly!","success":false}"#,
                ),
                OtsError::Unavailable {
                    detail: "share: HTTP 500 (We'll be back shortly!)".into(),
                },
            ),
            (
                Op::Share,
                reply(500, r#"{"message":"echo secret=hunter2","success":false}"#),
                OtsError::Refused {
                    message: "HTTP 500".into(),
                },
            ),
            (
                Op::Share,
                reply(
                    422,
                    r#"{"error":"Secret content must be no more than 10000 bytes long","error_type":"FormError","field":"secret"}"#,
                ),
                OtsError::SecretTooLarge { max: Some(10_000) },
            ),
            (
                Op::Share,
                reply(
                    422,
                    r#"{"shrimp":"x","message":"Passphrase must be at least 8 characters long","success":false}"#,
                ),
                OtsError::PassphraseRefused {
                    message: "Passphrase must be at least 8 characters long".into(),
                },
            ),
            (
                Op::Receipt,
                reply(404, r#"{"message":"Unknown secret","secret_key":"abc"}"#),
                OtsError::NotFound,
            ),
            (
                Op::Receipt,
                reply(404, r#"{"message":"Not Found"}"#),
                OtsError::RouteNotFound {
                    path: "/api/v2/receipt/abcdef…".into(),
                },
            ),
            (
                Op::Receipt,
                reply(404, r#"{"error":"Not Found"}"#),
                OtsError::RouteNotFound {
                    path: "/api/v2/receipt/abcdef…".into(),
                },
            ),
            (
                Op::Receipt,
                reply(
                    404,
                    r#"{"error":"Record not found","error_type":"RecordNotFound"}"#,
                ),
                OtsError::NotFound,
            ),
            (
                Op::Receipt,
                reply(404, r#"{"error":"Not Found","error_type":"NotFound"}"#),
                OtsError::RouteNotFound {
                    path: "/api/v2/receipt/abcdef…".into(),
                },
            ),
            (
                Op::Share,
                reply(
                    422,
                    r#"{"error":"You did not provide anything to share","error_type":"missing","field":"secret","error_key":"x"}"#,
                ),
                OtsError::Validation {
                    message: "You did not provide anything to share".into(),
                },
            ),
            (
                Op::Share,
                reply(
                    422,
                    r#"{"error":"Unknown type of secret: hunter2","error_type":"FormError"}"#,
                ),
                OtsError::Validation {
                    message: "HTTP 422 (FormError)".into(),
                },
            ),
            (
                Op::Reveal,
                reply(
                    422,
                    r#"{"error":"Incorrect passphrase","error_type":"FormError"}"#,
                ),
                OtsError::NotFound,
            ),
            (
                Op::Burn,
                reply(422, r#"{"error":"Incorrect passphrase"}"#),
                OtsError::Validation {
                    message: "Incorrect passphrase".into(),
                },
            ),
            (
                Op::Share,
                reply(
                    429,
                    r#"{"error":"Too many","error_type":"LimitExceeded","retry_after":120,"max_attempts":5}"#,
                ),
                OtsError::RateLimited {
                    retry_after: Some(Duration::from_secs(120)),
                },
            ),
            (
                Op::Share,
                reply(429, ""),
                OtsError::RateLimited { retry_after: None },
            ),
            (
                Op::Reveal,
                reply(503, r#"{"error":"undecryptable"}"#),
                OtsError::Unavailable {
                    detail: "reveal: HTTP 503".into(),
                },
            ),
            (
                Op::Share,
                reply(502, "<html>bad gateway</html>"),
                OtsError::Unavailable {
                    detail: "share: HTTP 502".into(),
                },
            ),
        ];
        for (op, reply, expected) in cases {
            assert_eq!(
                error(op, &reply),
                expected,
                "{op} {}",
                String::from_utf8_lossy(&reply.body)
            );
        }
    }

    #[test]
    fn v2_retry_after_header_wins_over_body() {
        let mut r = reply(429, r#"{"retry_after":120}"#);
        r.retry_after = Some(Duration::from_secs(7));
        assert_eq!(
            error(Op::Share, &r).retry_after(),
            Some(Duration::from_secs(7))
        );
    }

    #[test]
    fn v2_garbage_errors_are_protocol_errors() {
        for r in [
            reply(404, "<html/>"),
            reply(301, ""),
            reply(405, "{}"),
            reply(418, "x"),
        ] {
            assert!(
                matches!(error(Op::Share, &r), OtsError::Protocol { .. }),
                "{r:?}"
            );
        }
    }

    #[test]
    fn v2_success_false_is_a_refusal() {
        let r = reply(200, r#"{"success":false,"error":"Unknown type of secret"}"#);
        assert_eq!(
            check(Op::Share, &r).unwrap_err(),
            OtsError::Refused {
                message: "Unknown type of secret".into()
            }
        );
    }

    #[test]
    fn v2_other_404s_are_protocol_errors_never_not_found() {
        for body in [
            r#"{"error":"Gone","error_type":"Weird"}"#,
            r#"{"message":"Missing"}"#,
            "{}",
        ] {
            assert!(
                matches!(
                    error(Op::Receipt, &reply(404, body)),
                    OtsError::Protocol { .. }
                ),
                "{body}"
            );
        }
    }

    fn conceal_answer() -> Value {
        json!({
          "success": true,
          "record": {
            "receipt": {
              "identifier": "mk2", "key": "mk2", "custid": "anon", "state": "new",
              "secret_shortid": "sk2", "secret_identifier": "sk2",
              "secret_ttl": 3600, "metadata_ttl": 7200, "receipt_ttl": 7200, "lifespan": 7200,
              "share_domain": "", "created": 1767225600.123, "updated": "1767225600.5",
              "recipients": "", "has_passphrase": true, "kind": "conceal"
            },
            "metadata": {"identifier": "mk2", "state": "new"},
            "secret": {
              "identifier": "sk2", "key": "sk2", "state": "new", "lifespan": 3600,
              "secret_ttl": 3600, "has_passphrase": true, "created": 1767225600.1
            },
            "share_domain": null
          },
          "details": {"kind": "conceal", "recipient": [], "recipient_safe": []}
        })
    }

    #[test]
    fn v2_conceal_answer_parses_to_a_receipt() {
        let r = created_receipt(Op::Share, &conceal_answer()).unwrap();
        assert_eq!(
            crate::ots::types::receipt_line(&r),
            "mk2 secret=sk2 New ttl=3600/3600/7200 created=1767225600 updated=1767225600 \
             received=- opened=- passphrase=true url=- to="
        );
    }

    #[test]
    fn v2_string_encoded_values_parse() {
        let value = json!({"record": {"receipt": {
            "identifier": "mk3", "state": "shared", "secret_ttl": "600",
            "created": "1767225600", "has_passphrase": "false", "recipients": "b***@e.com"
        }}});
        let r = created_receipt(Op::Share, &value).unwrap();
        assert_eq!(r.state, SecretState::New);
        assert_eq!(r.ttl, Some(600));
        assert_eq!(r.created, Some(1_767_225_600));
        assert_eq!(r.passphrase_required, Some(false));
        assert_eq!(r.recipients, vec!["b***@e.com".to_string()]);
        assert_eq!(r.secret_key, None);
    }

    #[test]
    fn v2_receipt_access_telemetry_gives_the_first_access() {
        let view = |details: serde_json::Value| {
            let value = json!({
                "record": {"identifier": "mk5", "state": "previewed", "secret_ttl": 3600},
                "details": details
            });
            record_receipt(Op::Receipt, &value).unwrap().first_access
        };
        assert_eq!(
            view(json!({"view_count": 1, "first_access": 1767229200.25})),
            Some(1_767_229_200)
        );
        assert_eq!(view(json!({"view_count": 0, "first_access": null})), None);
        assert_eq!(view(json!({"view_count": null})), None);
        assert_eq!(view(json!({})), None);
    }

    #[test]
    fn v2_revealed_receipt_maps_internal_words() {
        let value = json!({
            "record": {"identifier": "mk4", "state": "revealed", "secret_ttl": 3600,
                       "revealed": 1767229200, "receipt_url": "https://h/receipt/mk4"},
            "details": {"secret_realttl": null}
        });
        let r = record_receipt(Op::Receipt, &value).unwrap();
        assert_eq!(r.state, SecretState::Received);
        assert_eq!(r.received, Some(1_767_229_200));
        assert_eq!(r.secret_key, None);
        assert_eq!(r.ttl, Some(3600));
        assert_eq!(
            r.receipt_url.map(String::from).as_deref(),
            Some("https://h/receipt/mk4")
        );
    }

    #[test]
    fn v2_wrong_shapes_are_protocol_errors() {
        for value in [
            json!([]),
            json!({"record": "x"}),
            json!({"success": true}),
            json!({"record": {"receipt": {"state": "new"}}}),
            json!({"record": {"receipt": {"identifier": "mk"}}}),
        ] {
            assert!(
                matches!(
                    created_receipt(Op::Share, &value),
                    Err(OtsError::Protocol { .. })
                ),
                "{value}"
            );
        }
    }

    #[test]
    fn v2_recent_reads_records() {
        let value = json!({"success": true, "count": 2, "records": [
            {"identifier": "a1", "state": "new"}, {"identifier": "b2", "state": "burned"}
        ]});
        let list = recent_from(Op::Recent, &value).unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[1].state, SecretState::Burned);
        assert!(matches!(
            recent_from(Op::Recent, &json!({"records": 3})),
            Err(OtsError::Protocol { .. })
        ));
    }

    #[test]
    fn secret_values_are_taken_from_known_places() {
        let mut v = json!({"record": {"secret_value": "s3cr3t"}});
        assert_eq!(
            take_secret_value(&mut v)
                .map(|s| s.expose_secret().to_owned())
                .as_deref(),
            Some("s3cr3t")
        );
        // Taken, not copied: the answer no longer holds it.
        assert_eq!(v, json!({"record": {"secret_value": ""}}));
        let mut v = json!({"details": {"secret_value": "g3n"}});
        assert!(take_secret_value(&mut v).is_some());
        let mut v = json!({"record": {"secret_value": null}});
        assert!(take_secret_value(&mut v).is_none());
    }

    #[test]
    fn status_answer_parses() {
        let s = status_from(
            Op::Status,
            &json!({"success": true, "status": "nominal", "locale": "en"}),
        )
        .unwrap();
        assert!(s.is_nominal());
        assert_eq!(s.locale.as_deref(), Some("en"));
        assert_eq!(s.api, ResolvedApi::V2);
    }
}
