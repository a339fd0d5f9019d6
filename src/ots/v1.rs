//! The legacy v1 API (`/api/v1`): form-encoded requests, flat JSON answers, and errors that
//! all arrive as HTTP 404 with a `message`.
//!
//! Error mapping (fact sheet §8), first match wins. Server text is kept only when it is a known
//! real text (`json::known_message`); otherwise errors say the HTTP status.
//!
//! | answer | error |
//! |---|---|
//! | 5xx, 408 | `Unavailable` |
//! | 429 (an edge limiter in front of the server) | `RateLimited` (Retry-After) |
//! | 401/403, or 404 with `Not authorized` or `X-OTS-Intended-Status: 401/403` | `Unauthorized` |
//! | 404 with a message containing `rate limit` (any era's wording) or intended 429 | `RateLimited` |
//! | 404 with `Unknown secret` | `NotFound` |
//! | 404 `{"message":"Not Found"}` for a key shorter than 20 characters | `NotFound` (see below) |
//! | 404 `{"error":"Not Found"}` (unknown route or method), or `{"message":"Not Found"}` otherwise | `RouteNotFound` with the path |
//! | 404 with `An unexpected error occurred` or intended 5xx | `Unavailable`: the server failed (the same text is used for a passphrase lockout, which also passes with time) |
//! | 404 with a size refusal | `SecretTooLarge`; a passphrase rule: `PassphraseRefused` |
//! | 404 with any other message (intended 400 or none) | `Validation` |
//! | 404 without a JSON message, any other status | `Protocol` |
//!
//! `{"message":"Not Found"}` is ambiguous in name only: v1 sends it exactly when a route with a
//! key matched but the key is shorter than 20 characters (`V1_MIN_IDENTIFIER_LENGTH`,
//! `apps/api/v1/controllers/base.rb:199-220`), which no real record has. So it means "no such
//! record" only for a request whose key is that short; for any other request the answer did not
//! come from v1's key check (a v0.18–v0.20 v2 router or a proxy answers unknown routes that
//! way), and it is an unknown route, never a gone secret.

use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::error::OtsError;
use super::http::{Http, Op, Reply};
use super::json::{self, Object, missing};
use super::types::{
    BurnAnswer, GenerateRequest, Receipt, ResolvedApi, SecretState, ServerStatus, ShareRequest,
};

const API: ResolvedApi = ResolvedApi::V1;

/// `GET /status`.
pub async fn status(http: &Http) -> Result<ServerStatus, OtsError> {
    let request = http.request(Method::GET, API, &["status"]);
    let value = http.call(Op::Status, API, None, request, check).await?;
    json::server_status(Op::Status, &value, API)
}

/// `POST /share` with `secret`, `passphrase`, `ttl`, `recipient` as a form.
pub async fn share(http: &Http, req: &ShareRequest, ttl: Option<u64>) -> Result<Receipt, OtsError> {
    let op = Op::Share;
    let ttl = ttl.map(|secs| secs.to_string());
    let mut form: Vec<(&str, &str)> = vec![("secret", req.secret.expose_secret())];
    push_common(
        &mut form,
        req.passphrase.as_ref(),
        ttl.as_deref(),
        req.recipient.as_deref(),
    );
    let request = http.request(Method::POST, API, &["share"]).form(&form);
    let value = http.call(op, API, None, request, check).await?;
    receipt_from(op, json::object(op.as_str(), "the receipt", &value)?)
}

/// `POST /generate`; the answer is a receipt plus the generated `value`.
pub async fn generate(
    http: &Http,
    req: &GenerateRequest,
    ttl: Option<u64>,
) -> Result<(Receipt, SecretString), OtsError> {
    let ttl = ttl.map(|secs| secs.to_string());
    let length = req.length.map(|n| n.to_string());
    let op = Op::Generate;
    let mut form: Vec<(&str, &str)> = Vec::new();
    push_common(
        &mut form,
        req.passphrase.as_ref(),
        ttl.as_deref(),
        req.recipient.as_deref(),
    );
    if let Some(length) = &length {
        form.push(("length", length));
    }
    let request = http.request(Method::POST, API, &["generate"]).form(&form);
    let mut value = http.call(op, API, None, request, check).await?;
    let obj = json::object_mut(op.as_str(), "the receipt", &mut value)?;
    let secret = json::take_string(obj, "value")
        .filter(|v| !v.is_empty())
        .ok_or_else(|| missing(op, "value"))?;
    let secret = SecretString::from(secret);
    Ok((receipt_from(op, obj)?, secret))
}

/// The form of a reveal or burn: the passphrase, when there is one.
fn passphrase_form(passphrase: Option<&SecretString>) -> Vec<(&'static str, &str)> {
    passphrase
        .map(|passphrase| ("passphrase", passphrase.expose_secret()))
        .into_iter()
        .collect()
}

/// `POST /secret/KEY` (with `passphrase`); the answer holds the `value`.
pub async fn reveal(
    http: &Http,
    secret_key: &str,
    passphrase: Option<&SecretString>,
) -> Result<SecretString, OtsError> {
    let form = passphrase_form(passphrase);
    let op = Op::Reveal;
    let request = http
        .request(Method::POST, API, &["secret", secret_key])
        .form(&form);
    let mut value = http.call(op, API, Some(secret_key), request, check).await?;
    let obj = json::object_mut(op.as_str(), "the secret", &mut value)?;
    let secret = json::take_string(obj, "value").ok_or_else(|| missing(op, "value"))?;
    Ok(SecretString::from(secret))
}

/// `GET /private/KEY` (the alias every server version serves).
pub async fn receipt(http: &Http, metadata_key: &str) -> Result<Receipt, OtsError> {
    let op = Op::Receipt;
    let request = http.request(Method::GET, API, &["private", metadata_key]);
    let value = http
        .call(op, API, Some(metadata_key), request, check)
        .await?;
    receipt_from(op, json::object(op.as_str(), "the receipt", &value)?)
}

/// `POST /private/KEY/burn` (with `passphrase`); the receipt comes back under `state`, as loaded
/// before the burn (its state reads `new`), so it is reported as burned. A secret already gone is
/// `404 Unknown secret`: the caller reads the receipt for the truth.
pub async fn burn(
    http: &Http,
    metadata_key: &str,
    passphrase: Option<&SecretString>,
) -> Result<BurnAnswer, OtsError> {
    let op = Op::Burn;
    let form = passphrase_form(passphrase);
    let request = http
        .request(Method::POST, API, &["private", metadata_key, "burn"])
        .form(&form);
    let value = http
        .call(op, API, Some(metadata_key), request, check)
        .await?;
    let obj = json::object(op.as_str(), "the burn answer", &value)?;
    let state = obj.get("state").ok_or_else(|| missing(op, "state"))?;
    let mut receipt = receipt_from(op, json::object(op.as_str(), "the burned receipt", state)?)?;
    receipt.state = SecretState::Burned;
    Ok(BurnAnswer::Burned(Box::new(receipt)))
}

/// `GET /authcheck`: the status answer, for valid credentials only.
pub async fn verify(http: &Http) -> Result<(), OtsError> {
    let op = Op::Verify;
    let request = http.request(Method::GET, API, &["authcheck"]);
    http.call(op, API, None, request, check).await.map(|_| ())
}

/// `GET /private/recent` (authenticated only).
pub async fn recent(http: &Http) -> Result<Vec<Receipt>, OtsError> {
    let op = Op::Recent;
    let request = http.request(Method::GET, API, &["private", "recent"]);
    let value = http.call(op, API, None, request, check).await?;
    let items = value.as_array().ok_or_else(|| OtsError::Protocol {
        detail: format!("{op}: expected a JSON array of receipts"),
    })?;
    items
        .iter()
        .map(|item| receipt_from(op, json::object(op.as_str(), "a receipt", item)?))
        .collect()
}

fn push_common<'a>(
    form: &mut Vec<(&'static str, &'a str)>,
    passphrase: Option<&'a SecretString>,
    ttl: Option<&'a str>,
    recipient: Option<&'a str>,
) {
    if let Some(passphrase) = passphrase {
        form.push(("passphrase", passphrase.expose_secret()));
    }
    if let Some(ttl) = ttl {
        form.push(("ttl", ttl));
    }
    if let Some(recipient) = recipient {
        form.push(("recipient", recipient));
    }
}

/// A v1 receipt object (share, generate, metadata, burn's `state`, recent items).
pub fn receipt_from(op: Op, obj: &Object) -> Result<Receipt, OtsError> {
    let metadata_key = json::string(obj, &["metadata_key", "identifier", "key"])
        .ok_or_else(|| missing(op, "metadata_key"))?;
    Ok(Receipt {
        receipt_url: receipt_url(obj, &metadata_key),
        metadata_key,
        secret_key: json::string(obj, &["secret_key"]),
        state: SecretState::parse(
            &json::string(obj, &["state"]).ok_or_else(|| missing(op, "state"))?,
        ),
        ttl: json::u64_field(obj, &["ttl"]),
        secret_ttl: json::u64_field(obj, &["secret_ttl"]),
        metadata_ttl: json::u64_field(obj, &["metadata_ttl", "receipt_ttl"]),
        created: json::i64_field(obj, &["created"]),
        updated: json::i64_field(obj, &["updated"]),
        received: json::i64_field(obj, &["received"]),
        // v1 reports no access telemetry.
        first_access: None,
        passphrase_required: json::bool_field(obj, &["passphrase_required", "has_passphrase"]),
        recipients: json::strings(obj, &["recipients", "recipient"]),
        // v1 cannot ask for a share domain (its `share_domain` is a full origin, or "").
        share_domain: None,
    })
}

/// The creator's link the server reported, when it names this receipt: the genuine server's
/// v1 receipt view sends `https://HOST/receipt/` without the key (`show_receipt.rb:38,270-277`
/// at de53ff8f7), which must never stand for the link.
pub fn receipt_url(obj: &Object, metadata_key: &str) -> Option<url::Url> {
    web_url(obj, &["receipt_url", "metadata_url"])
        .filter(|url| url.path().ends_with(&format!("/{metadata_key}")))
}

/// An http(s) URL field; anything else is ignored.
pub fn web_url(obj: &Object, names: &[&str]) -> Option<url::Url> {
    json::string(obj, names)
        .and_then(|s| url::Url::parse(&s).ok())
        .filter(|url| matches!(url.scheme(), "http" | "https"))
}

/// The JSON of a successful answer, or the error the answer stands for.
pub fn check(op: Op, reply: &Reply) -> Result<Value, OtsError> {
    if reply.status.is_success() {
        json::parse(op.as_str(), &reply.body)
    } else {
        Err(error(op, reply))
    }
}

/// Maps a failed v1 answer to an error (see the module docs for the table).
pub fn error(op: Op, reply: &Reply) -> OtsError {
    let status = reply.status;
    if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
        return OtsError::Unavailable {
            detail: format!("{op}: HTTP {}", status.as_u16()),
        };
    }
    match status {
        StatusCode::TOO_MANY_REQUESTS => {
            return OtsError::RateLimited {
                retry_after: reply.retry_after,
            };
        }
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => return OtsError::Unauthorized,
        StatusCode::NOT_FOUND => {}
        other => {
            return OtsError::Protocol {
                detail: format!("{op}: unexpected HTTP {}", other.as_u16()),
            };
        }
    }
    let body = serde_json::from_slice::<Value>(&reply.body).ok();
    let obj = body.as_ref().and_then(Value::as_object);
    let message = obj.and_then(|o| json::string(o, &["message"]));
    let intended = reply.intended_status;
    let described = |text: &str| {
        json::known_message(text)
            .unwrap_or_else(|| json::status_words(intended.unwrap_or(404), None))
    };
    let Some(message) = message else {
        // `{"error":"Not Found"}` is the answer for unknown routes and wrong methods.
        return match obj.and_then(|o| json::string(o, &["error"])) {
            Some(error) if error == "Not Found" => OtsError::RouteNotFound {
                path: reply.path.clone(),
            },
            Some(error) => OtsError::Validation {
                message: described(&error),
            },
            None => OtsError::Protocol {
                detail: format!(
                    "{op}: HTTP 404 without a JSON error message at {} (is the URL an Onetime Secret server?)",
                    reply.path
                ),
            },
        };
    };
    let short_key = reply.key_chars.is_some_and(|n| n < V1_MIN_IDENTIFIER_CHARS);
    if matches!(intended, Some(401 | 403)) || message == "Not authorized" {
        OtsError::Unauthorized
    } else if intended == Some(429) || message.to_ascii_lowercase().contains("rate limit") {
        OtsError::RateLimited {
            retry_after: reply.retry_after,
        }
    } else if message.starts_with("Unknown secret") || (message == "Not Found" && short_key) {
        OtsError::NotFound
    } else if message == "Not Found" {
        OtsError::RouteNotFound {
            path: reply.path.clone(),
        }
    } else if message.starts_with("An unexpected error occurred")
        || intended.is_some_and(|code| code >= 500)
    {
        OtsError::Unavailable {
            detail: format!("{op}: the server reported an unexpected error"),
        }
    } else if let Some(max) = super::v2::size_refusal(&message) {
        OtsError::SecretTooLarge { max }
    } else if let Some(message) =
        super::v2::passphrase_refusal(&message).filter(|_| matches!(op, Op::Share | Op::Generate))
    {
        OtsError::PassphraseRefused { message }
    } else {
        OtsError::Validation {
            message: described(&message),
        }
    }
}

/// v1 answers `{"message":"Not Found"}` for keys shorter than this (`V1_MIN_IDENTIFIER_LENGTH`).
const V1_MIN_IDENTIFIER_CHARS: usize = 20;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    fn reply(status: u16, intended: Option<u16>, body: &str) -> Reply {
        Reply::for_test(status, intended, body, "/api/v1/private/abcdef…")
    }

    #[test]
    fn v1_error_table_maps_every_documented_answer() {
        let cases: Vec<(Reply, OtsError)> = vec![
            (
                reply(404, Some(401), r#"{"message":"Not authorized"}"#),
                OtsError::Unauthorized,
            ),
            (
                reply(404, None, r#"{"message":"Not authorized"}"#),
                OtsError::Unauthorized,
            ),
            (
                reply(
                    404,
                    None,
                    r#"{"message":"Unknown secret","secret_key":"abc"}"#,
                ),
                OtsError::NotFound,
            ),
            (
                reply(404, None, r#"{"message":"Not Found"}"#),
                OtsError::RouteNotFound {
                    path: "/api/v1/private/abcdef…".into(),
                },
            ),
            (
                Reply {
                    key_chars: Some(3),
                    ..reply(404, None, r#"{"message":"Not Found"}"#)
                },
                OtsError::NotFound,
            ),
            (
                reply(404, None, r#"{"error":"Not Found"}"#),
                OtsError::RouteNotFound {
                    path: "/api/v1/private/abcdef…".into(),
                },
            ),
            (
                reply(
                    404,
                    Some(400),
                    r#"{"message":"Secret value exceeds the maximum size of 10000 bytes"}"#,
                ),
                OtsError::SecretTooLarge { max: Some(10_000) },
            ),
            (
                reply(404, Some(400), r#"{"message":"You sent: hunter2"}"#),
                OtsError::Validation {
                    message: "HTTP 400".into(),
                },
            ),
            (
                reply(
                    404,
                    Some(400),
                    r#"{"message":"You did not provide anything to share"}"#,
                ),
                OtsError::Validation {
                    message: "You did not provide anything to share".into(),
                },
            ),
            (
                reply(404, Some(400), r#"{"message":"Incorrect passphrase"}"#),
                OtsError::Validation {
                    message: "Incorrect passphrase".into(),
                },
            ),
            (
                reply(
                    404,
                    Some(400),
                    r#"{"message":"An account is required to send emails."}"#,
                ),
                OtsError::Validation {
                    message: "An account is required to send emails.".into(),
                },
            ),
            (
                reply(
                    404,
                    Some(400),
                    r#"{"message":"Rate limit exceeded. Please try again later."}"#,
                ),
                OtsError::RateLimited { retry_after: None },
            ),
            (
                reply(
                    404,
                    None,
                    r#"{"message":"Cripes! You have been rate limited.","shrimp":"x"}"#,
                ),
                OtsError::RateLimited { retry_after: None },
            ),
            (
                reply(
                    404,
                    None,
                    r#"{"message":"Apologies dear citizen! You have been rate limited."}"#,
                ),
                OtsError::RateLimited { retry_after: None },
            ),
            (
                reply(
                    404,
                    Some(400),
                    r#"{"message":"An unexpected error occurred :["}"#,
                ),
                OtsError::Unavailable {
                    detail: "reveal: the server reported an unexpected error".into(),
                },
            ),
            (
                reply(500, None, "<html>oops</html>"),
                OtsError::Unavailable {
                    detail: "reveal: HTTP 500".into(),
                },
            ),
            (
                reply(503, None, ""),
                OtsError::Unavailable {
                    detail: "reveal: HTTP 503".into(),
                },
            ),
            (reply(401, None, ""), OtsError::Unauthorized),
            (
                reply(429, None, ""),
                OtsError::RateLimited { retry_after: None },
            ),
        ];
        for (reply, expected) in cases {
            assert_eq!(
                error(Op::Reveal, &reply),
                expected,
                "{}",
                String::from_utf8_lossy(&reply.body)
            );
        }
    }

    #[test]
    fn v1_rate_limit_carries_retry_after_header() {
        let mut r = reply(429, None, "");
        r.retry_after = Some(Duration::from_secs(30));
        assert_eq!(
            error(Op::Share, &r),
            OtsError::RateLimited {
                retry_after: Some(Duration::from_secs(30))
            }
        );
    }

    #[test]
    fn v1_garbage_errors_are_protocol_errors() {
        for r in [
            reply(404, None, "<html>Not here</html>"),
            reply(404, None, ""),
            reply(404, None, "[1,2]"),
            reply(302, None, ""),
            reply(418, None, "{}"),
        ] {
            assert!(
                matches!(error(Op::Share, &r), OtsError::Protocol { .. }),
                "{r:?}"
            );
        }
    }

    #[test]
    fn unknown_validation_messages_are_not_kept() {
        let long = format!(r#"{{"message":"{}"}}"#, "x".repeat(1000));
        match error(Op::Share, &reply(404, Some(400), &long)) {
            OtsError::Validation { message } => assert_eq!(message, "HTTP 400"),
            other => panic!("{other:?}"),
        }
    }

    fn obj(value: Value) -> Object {
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn v1_share_receipt_parses_every_field() {
        let o = obj(json!({
            "custid":"anon","metadata_key":"mk1","secret_key":"sk1",
            "ttl":3600,"metadata_ttl":7199,"secret_ttl":3599,
            "metadata_url":"https://host/receipt/mk1","state":"new",
            "updated":1767225600,"created":1767225600,"recipient":[],"share_domain":"",
            "passphrase_required":true,"identifier":"mk1","secret_identifier":"sk1",
            "has_passphrase":true,"recipients":["b*****@example.com"],"receipt_ttl":7199,
            "receipt_url":"https://host/receipt/mk1"
        }));
        let r = receipt_from(Op::Share, &o).unwrap();
        assert_eq!(
            crate::ots::types::receipt_line(&r),
            "mk1 secret=sk1 New ttl=3600/3599/7199 created=1767225600 updated=1767225600 \
             received=- opened=- passphrase=true url=https://host/receipt/mk1 to=b*****@example.com"
        );
    }

    #[test]
    fn v1_received_receipt_has_no_secret_key_and_a_received_time() {
        let o = obj(json!({
            "custid":"anon","metadata_key":"mk1","ttl":3600,"metadata_ttl":7000,
            "state":"received","updated":1767225700,"created":1767225600,"received":1767225700,
            "recipient":[],"share_domain":""
        }));
        let r = receipt_from(Op::Receipt, &o).unwrap();
        assert_eq!(r.state, SecretState::Received);
        assert_eq!(r.secret_key, None);
        assert_eq!(r.secret_ttl, None);
        assert_eq!(r.received, Some(1_767_225_700));
        assert_eq!(r.passphrase_required, None);
        assert_eq!(r.receipt_url, None);
    }

    #[test]
    fn a_receipt_link_without_the_key_is_not_taken() {
        // The genuine v1 receipt view (GET /private/KEY) at de53ff8f7.
        let o = obj(json!({
            "metadata_key":"mk1","state":"new","metadata_url":"https://h/receipt/",
            "receipt_url":"https://h/receipt/"
        }));
        assert_eq!(receipt_from(Op::Receipt, &o).unwrap().receipt_url, None);
        let o =
            obj(json!({"metadata_key":"mk1","state":"new","receipt_url":"https://h/receipt/mk1"}));
        assert_eq!(
            receipt_from(Op::Receipt, &o)
                .unwrap()
                .receipt_url
                .map(String::from)
                .as_deref(),
            Some("https://h/receipt/mk1")
        );
    }

    #[test]
    fn v1_gone_secret_with_empty_key_and_null_ttl_parses_as_none() {
        let o = obj(json!({
            "metadata_key":"mk1","secret_key":"","secret_ttl":null,"state":"burned","ttl":60
        }));
        let r = receipt_from(Op::Receipt, &o).unwrap();
        assert_eq!(r.secret_key, None);
        assert_eq!(r.secret_ttl, None);
        assert!(r.state.is_final());
    }

    #[test]
    fn v1_receipt_without_key_or_state_is_a_protocol_error() {
        for o in [
            obj(json!({"state":"new"})),
            obj(json!({"metadata_key":"mk"})),
        ] {
            assert!(matches!(
                receipt_from(Op::Receipt, &o),
                Err(OtsError::Protocol { .. })
            ));
        }
    }

    #[test]
    fn v1_receipt_url_must_be_http() {
        let o = obj(json!({"metadata_key":"mk","state":"new","receipt_url":"javascript:alert(1)"}));
        assert_eq!(receipt_from(Op::Share, &o).unwrap().receipt_url, None);
    }

    #[test]
    fn v1_success_with_garbage_body_is_a_protocol_error() {
        for body in ["<html></html>", "", "{\"a\":", "null"] {
            let r = reply(200, None, body);
            let result = check(Op::Share, &r)
                .and_then(|v| receipt_from(Op::Share, json::object("share", "the receipt", &v)?));
            assert!(matches!(result, Err(OtsError::Protocol { .. })), "{body}");
        }
    }
}
