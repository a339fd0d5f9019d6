//! The v2 API (`/api/v2`): JSON requests and answers wrapped in `{record, details}`.
//!
//! Answers are read leniently: v2 has sent the same field as a number, a float or a string over
//! its history, and names fields `identifier`/`secret_identifier` where v1 says
//! `metadata_key`/`secret_key`.
//!
//! Error mapping, first match wins:
//!
//! | answer | error |
//! |---|---|
//! | 5xx (503 = undecryptable), 408 | `Unavailable` |
//! | 429 `LimitExceeded` | `RateLimited` (Retry-After header, else the body's `retry_after`) |
//! | 401, 403 | `Unauthorized` |
//! | 404 with a JSON body (`RecordNotFound`, unknown route) | `NotFound` |
//! | 400/422 `Incorrect passphrase` on reveal | `NotFound`, as in v1: a wrong passphrase reveals nothing |
//! | 400/422 mentioning a rate limit | `RateLimited` |
//! | 400/413/422 otherwise | `Validation` with the server's `error` text |
//! | a 2xx with `"success": false` | `Validation` with its text |
//! | anything else (404 without JSON, 3xx, other 4xx, garbage) | `Protocol` |

use std::time::Duration;

use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::Value;

use super::error::OtsError;
use super::http::{Http, Op, Reply};
use super::json::{self, Object, missing};
use super::types::{
    GenerateRequest, Receipt, ResolvedApi, SecretState, ServerStatus, ShareRequest,
};
use super::v1::web_url;

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
    let op = Op::Status;
    let reply = http
        .send(op, API, None, http.request(Method::GET, API, &["status"]))
        .await?;
    let value = check(op, &reply)?;
    status_from(op, &value)
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
        },
    };
    let request = http
        .request(Method::POST, API, &["secret", "conceal"])
        .json(&body);
    let reply = http.send(op, API, None, request).await?;
    let value = check(op, &reply)?;
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
        },
    };
    let request = http
        .request(Method::POST, API, &["secret", "generate"])
        .json(&body);
    let reply = http.send(op, API, None, request).await?;
    let mut value = check(op, &reply)?;
    let receipt = created_receipt(op, &value)?;
    if let Some(secret) = take_secret_value(&mut value) {
        return Ok((receipt, secret));
    }
    // The real server only shows a generated value on the first receipt view within 60 s.
    let request = http.request(Method::GET, API, &["receipt", &receipt.metadata_key]);
    let reply = http
        .send(op, API, Some(&receipt.metadata_key), request)
        .await?;
    let mut value = check(op, &reply)?;
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
    let reply = http.send(op, API, Some(secret_key), request).await?;
    let mut value = check(op, &reply)?;
    if let Some(secret) = take_secret_value(&mut value) {
        return Ok(secret);
    }
    // A 200 without a value: the reveal was lost to a concurrent one or the gate stayed shut.
    match value.get("record") {
        Some(Value::Object(_)) => Err(OtsError::NotFound),
        _ => Err(missing(op, "record")),
    }
}

/// `GET /receipt/KEY`.
pub async fn receipt(http: &Http, metadata_key: &str) -> Result<Receipt, OtsError> {
    let op = Op::Receipt;
    let request = http.request(Method::GET, API, &["receipt", metadata_key]);
    let reply = http.send(op, API, Some(metadata_key), request).await?;
    let value = check(op, &reply)?;
    record_receipt(op, &value)
}

/// `POST /receipt/KEY/burn` with `continue: true`.
pub async fn burn(
    http: &Http,
    metadata_key: &str,
    passphrase: Option<&SecretString>,
) -> Result<Receipt, OtsError> {
    let op = Op::Burn;
    let request = http
        .request(Method::POST, API, &["receipt", metadata_key, "burn"])
        .json(&ConfirmBody::new(passphrase));
    let reply = http.send(op, API, Some(metadata_key), request).await?;
    let value = check(op, &reply)?;
    record_receipt(op, &value)
}

/// `GET /receipt/recent` (authenticated only).
pub async fn recent(http: &Http) -> Result<Vec<Receipt>, OtsError> {
    let op = Op::Recent;
    let request = http.request(Method::GET, API, &["receipt", "recent"]);
    let reply = http.send(op, API, None, request).await?;
    let value = check(op, &reply)?;
    recent_from(op, &value)
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

/// Reads `{record:{receipt|metadata, secret}}` from conceal/generate.
pub fn created_receipt(op: Op, value: &Value) -> Result<Receipt, OtsError> {
    let root = json::object(op.as_str(), "the answer", value)?;
    let record = json::object(
        op.as_str(),
        "`record`",
        root.get("record").ok_or_else(|| missing(op, "record"))?,
    )?;
    let receipt = record
        .get("receipt")
        .or_else(|| record.get("metadata"))
        .ok_or_else(|| missing(op, "record.receipt"))?;
    let receipt = json::object(op.as_str(), "`record.receipt`", receipt)?;
    let secret = record.get("secret").and_then(Value::as_object);
    receipt_from(op, receipt, secret, None)
}

/// Reads `{record, details}` from receipt and burn.
pub fn record_receipt(op: Op, value: &Value) -> Result<Receipt, OtsError> {
    let root = json::object(op.as_str(), "the answer", value)?;
    let record = json::object(
        op.as_str(),
        "`record`",
        root.get("record").ok_or_else(|| missing(op, "record"))?,
    )?;
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
    Ok(Receipt {
        metadata_key: json::string(record, &["identifier", "key", "metadata_key"])
            .ok_or_else(|| missing(op, "identifier"))?,
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
        passphrase_required: json::bool_field(record, &["passphrase_required", "has_passphrase"])
            .or_else(|| secret.and_then(|s| json::bool_field(s, &["has_passphrase"]))),
        receipt_url: web_url(record, &["receipt_url", "metadata_url"]),
        recipients: json::strings(record, &["recipients", "recipient"]),
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
        return Err(match error_text(value.as_object()) {
            Some(message) => OtsError::Validation {
                message: json::clean_message(&message),
            },
            None => OtsError::Protocol {
                detail: format!("{op}: the server said `success: false` without a reason"),
            },
        });
    }
    Ok(value)
}

fn error_text(obj: Option<&Object>) -> Option<String> {
    obj.and_then(|o| json::string(o, &["error", "message"]))
}

/// Maps a failed v2 answer to an error (see the module docs for the table).
pub fn error(op: Op, reply: &Reply) -> OtsError {
    let status = reply.status;
    if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
        return OtsError::Unavailable {
            detail: format!("{op}: HTTP {}", status.as_u16()),
        };
    }
    let body = serde_json::from_slice::<Value>(&reply.body).ok();
    let obj = body.as_ref().and_then(Value::as_object);
    match status {
        StatusCode::TOO_MANY_REQUESTS => OtsError::RateLimited {
            retry_after: reply.retry_after.or_else(|| {
                obj.and_then(|o| json::u64_field(o, &["retry_after"]))
                    .map(Duration::from_secs)
            }),
        },
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => OtsError::Unauthorized,
        StatusCode::NOT_FOUND if obj.is_some() => OtsError::NotFound,
        StatusCode::BAD_REQUEST
        | StatusCode::UNPROCESSABLE_ENTITY
        | StatusCode::PAYLOAD_TOO_LARGE => {
            let message = error_text(obj).unwrap_or_else(|| format!("HTTP {}", status.as_u16()));
            let lower = message.to_ascii_lowercase();
            if op == Op::Reveal && lower.contains("passphrase") {
                OtsError::NotFound
            } else if lower.contains("rate limit") {
                OtsError::RateLimited {
                    retry_after: reply.retry_after,
                }
            } else {
                OtsError::Validation {
                    message: json::clean_message(&message),
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

    fn reply(status: u16, body: &str) -> Reply {
        Reply {
            status: StatusCode::from_u16(status).unwrap(),
            retry_after: None,
            intended_status: None,
            body: body.as_bytes().to_vec(),
        }
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
                OtsError::Unauthorized,
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
                OtsError::NotFound,
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
    fn v2_success_false_is_a_validation_error() {
        let r = reply(200, r#"{"success":false,"error":"Unknown type of secret"}"#);
        assert_eq!(
            check(Op::Share, &r).unwrap_err(),
            OtsError::Validation {
                message: "Unknown type of secret".into()
            }
        );
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
        assert_eq!(r.metadata_key, "mk2");
        assert_eq!(r.secret_key.as_deref(), Some("sk2"));
        assert_eq!(r.state, SecretState::New);
        assert_eq!(r.ttl, Some(3600));
        assert_eq!(r.secret_ttl, Some(3600));
        assert_eq!(r.metadata_ttl, Some(7200));
        assert_eq!(r.created, Some(1_767_225_600));
        assert_eq!(r.updated, Some(1_767_225_600));
        assert_eq!(r.passphrase_required, Some(true));
        assert!(r.recipients.is_empty());
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
