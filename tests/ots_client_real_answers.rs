//! The OTS client against answers the real Onetime Secret server gives (onetimesecret/onetimesecret
//! at de53ff8f7, and tags v0.20.5 / v0.23.6 for self-hosted servers still in use), served here
//! verbatim by a tiny canned server. Each test is one bullet of issue 10's "Why": behaviour our
//! own test server hid because it was written from the same beliefs as the client.

mod ots_client_common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use ots_operator::ots::{ApiVersion, ClientConfig, Credentials, OtsClient, OtsError, ShareRequest};
use url::Url;

/// A 62-character metadata key, as v0.24+ issues them.
const MK: &str = "m0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmno";
/// A 62-character secret key.
const SK: &str = "s0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmno";

type Handler = dyn Fn(&Method, &str, &str) -> Option<(u16, String)> + Send + Sync;

/// A server that answers from a table; every request is logged as "METHOD PATH".
struct Canned {
    url: Url,
    log: Arc<Mutex<Vec<String>>>,
}

impl Canned {
    async fn start(
        answer: impl Fn(&Method, &str, &str) -> Option<(u16, String)> + Send + Sync + 'static,
    ) -> Canned {
        let answer: Arc<Handler> = Arc::new(answer);
        let log = Arc::new(Mutex::new(Vec::new()));
        let seen = log.clone();
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let answer = answer.clone();
                let seen = seen.clone();
                async move {
                    let path = uri.path().to_owned();
                    seen.lock().unwrap().push(format!("{method} {path}"));
                    // The body, plus the Basic credentials decoded, as an echoing server could.
                    let mut body = String::from_utf8_lossy(&body).into_owned();
                    if let Some(basic) = headers
                        .get(header::AUTHORIZATION)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.strip_prefix("Basic "))
                        .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok())
                    {
                        body.push(' ');
                        body.push_str(&String::from_utf8_lossy(&basic));
                    }
                    let (status, text) = answer(&method, &path, &body).unwrap_or_else(|| {
                        // Whatever the table does not know is an unknown route on today's v2.
                        (
                            404,
                            r#"{"error":"Not Found","error_type":"NotFound"}"#.to_owned(),
                        )
                    });
                    json(status, text)
                }
            },
        );
        let url = ots_client_common::serve(app).await;
        Canned { url, log }
    }

    fn client(&self, api: ApiVersion) -> OtsClient {
        OtsClient::new(ClientConfig::new(self.url.clone()).with_api(api)).unwrap()
    }

    fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

fn json(status: u16, body: String) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body,
    )
        .into_response()
}

fn status_answer() -> (u16, String) {
    (
        200,
        r#"{"success":true,"status":"nominal","locale":"en"}"#.into(),
    )
}

/// A v2 receipt record (`safe_dump_fields.rb`) in `state`.
fn v2_receipt(state: &str) -> (u16, String) {
    let secret = if matches!(state, "new" | "shared" | "previewed") {
        format!(r#""secret_identifier":"{SK}","secret_shortid":"s0123456","#)
    } else {
        String::new()
    };
    (
        200,
        format!(
            r#"{{"success":true,"record":{{"identifier":"{MK}","key":"{MK}","custid":"anon","state":"{state}",{secret}"secret_ttl":3600,"metadata_ttl":3600,"receipt_ttl":3600,"lifespan":3600,"created":1767225600.5,"updated":1767225700.5,"revealed":null,"has_passphrase":false}},"details":{{"secret_realttl":null}}}}"#
        ),
    )
}

/// A v1 receipt object (fact sheet §6).
fn v1_receipt() -> (u16, String) {
    (
        200,
        format!(
            r#"{{"custid":"anon","metadata_key":"{MK}","secret_key":"{SK}","ttl":3600,"metadata_ttl":7200,"secret_ttl":3600,"state":"new","updated":1767225600,"created":1767225600,"recipient":[],"share_domain":"","passphrase_required":false}}"#
        ),
    )
}

/// Why, bullet 1: deleting a share after its link was opened. The real v2 burn of a revealed
/// secret answers `200 {"success":true}` without a record (`burn_secret.rb:54-56`: `process`
/// returns nil). The secret is already consumed: that is not a protocol error, and the receipt
/// tells the true final state.
#[tokio::test]
async fn burning_a_revealed_secret_on_v2_is_already_gone_not_a_protocol_error() {
    let server = Canned::start(|method, path, _| match (method.as_str(), path) {
        ("GET", "/api/v2/status") => Some(status_answer()),
        ("POST", p) if p == format!("/api/v2/receipt/{MK}/burn") => {
            Some((200, r#"{"success":true}"#.into()))
        }
        ("GET", p) if p == format!("/api/v2/receipt/{MK}") => Some(v2_receipt("revealed")),
        _ => None,
    })
    .await;
    let client = server.client(ApiVersion::V2);
    let outcome = client.burn(MK, None).await;
    assert!(outcome.is_ok(), "{outcome:?}");
    let text = format!("{outcome:?}");
    assert!(
        text.contains("AlreadyGone") && text.contains("Received"),
        "{text}"
    );
}

/// Why, bullet 2: a free hosted account asking for 30 days. v2 refuses with 403
/// `EntitlementRequired` (`base_secret_action.rb:124-125`); the credentials are fine.
#[tokio::test]
async fn a_ttl_above_the_plan_is_an_entitlement_refusal_not_bad_credentials() {
    let server = Canned::start(|method, path, _| match (method.as_str(), path) {
        ("GET", "/api/v2/status") => Some(status_answer()),
        ("POST", "/api/v2/secret/conceal") => Some((
            403,
            r#"{"error":"Feature requires extended default expiration entitlement","error_type":"EntitlementRequired","entitlement":"extended_default_expiration","current_plan":"free_v1","error_key":"api.entitlements.errors.extended_default_expiration_required"}"#.into(),
        )),
        _ => None,
    })
    .await;
    let client = OtsClient::new(
        ClientConfig::new(server.url.clone())
            .with_api(ApiVersion::V2)
            .with_credentials(Credentials::new("free@example.com", "tok-free-123")),
    )
    .unwrap();
    let err = client
        .share(&ShareRequest::new("x").with_ttl(std::time::Duration::from_secs(30 * 86400)))
        .await
        .unwrap_err();
    assert_ne!(err, OtsError::Unauthorized, "the credentials were fine");
    assert!(
        format!("{err:?}").contains("EntitlementRequired"),
        "{err:?}"
    );
}

/// v0.18–v0.20 serve receipts only under `/private/*` (tag v0.20.5
/// `lib/onetime/app/api/v2/routes`); `/receipt/*` is an unknown route there, answered
/// `404 {"message":"Not Found"}` (`config.ru:56`).
fn v020(method: &Method, path: &str, burned: &Arc<Mutex<bool>>) -> Option<(u16, String)> {
    let route_404 = || (404, r#"{"message":"Not Found"}"#.to_owned());
    match (method.as_str(), path) {
        ("GET", "/api/v2/status") => Some(status_answer()),
        ("POST", p) if p == format!("/api/v2/private/{MK}/burn") => {
            *burned.lock().unwrap() = true;
            // Serialized as loaded before the burn: state reads "new" (§13.10).
            let (_, body) = v2_receipt("new");
            Some((200, body))
        }
        ("GET", p) if p == format!("/api/v2/private/{MK}") => {
            Some(v2_receipt(if *burned.lock().unwrap() {
                "burned"
            } else {
                "new"
            }))
        }
        _ => Some(route_404()),
    }
}

/// Why, bullet 3: on a v0.20 server the first refresh must not mark a live link Expired.
#[tokio::test]
async fn a_v020_server_shows_a_live_receipt_under_private() {
    let burned = Arc::new(Mutex::new(false));
    let state = burned.clone();
    let server = Canned::start(move |m, p, _| v020(m, p, &state)).await;
    let client = server.client(ApiVersion::V2);
    let receipt = client.receipt(MK).await;
    assert!(receipt.is_ok(), "{receipt:?}");
    assert_eq!(receipt.unwrap().state.as_str(), "new");
}

/// Why, bullet 3: on a v0.20 server a burn must burn, not count as "already gone".
#[tokio::test]
async fn a_v020_server_burns_under_private() {
    let burned = Arc::new(Mutex::new(false));
    let state = burned.clone();
    let server = Canned::start(move |m, p, _| v020(m, p, &state)).await;
    let client = server.client(ApiVersion::V2);
    let outcome = client.burn(MK, None).await;
    assert!(
        *burned.lock().unwrap(),
        "no burn reached the server: {:?}",
        server.requests()
    );
    assert!(outcome.is_ok(), "{outcome:?}");
    assert!(format!("{outcome:?}").contains("Burned"), "{outcome:?}");
}

/// Why, bullet 4: v0.21–v0.23 answer a failed action with `500 {message, success:false}`
/// (tag v0.23.6 `apps/api/v2/controllers/base.rb:204-209, 258-263`). Burning a revealed secret
/// there is "Secret could not be burned.": a refusal, not an outage.
#[tokio::test]
async fn a_v023_refused_burn_of_a_revealed_secret_is_already_gone_not_an_outage() {
    let server = Canned::start(|method, path, _| match (method.as_str(), path) {
        ("GET", "/api/v2/status") => Some(status_answer()),
        ("POST", p) if p == format!("/api/v2/receipt/{MK}/burn") => Some((
            500,
            r#"{"message":"Secret could not be burned.","success":false,"shrimp":"abc"}"#.into(),
        )),
        ("GET", p) if p == format!("/api/v2/receipt/{MK}") => Some(v2_receipt("received")),
        _ => Some((404, r#"{"error":"Not Found"}"#.into())),
    })
    .await;
    let client = server.client(ApiVersion::V2);
    let outcome = client.burn(MK, None).await;
    assert!(outcome.is_ok(), "{outcome:?}");
    assert!(format!("{outcome:?}").contains("Received"), "{outcome:?}");
}

/// Why, bullet 5: anonymous v2 can be switched off (403 `GuestRoutesDisabled`,
/// `guest_route_gating.rb:41-70`); v1 is not gated, so `auto` shares through v1.
#[tokio::test]
async fn with_guest_routes_off_auto_shares_anonymously_through_v1() {
    let server = Canned::start(|method, path, _| match (method.as_str(), path) {
        ("GET", "/api/v2/status") => Some(status_answer()),
        ("POST", "/api/v2/secret/conceal") => Some((
            403,
            r#"{"error":"Guest API access is disabled","error_type":"GuestRoutesDisabled","code":"GUEST_ROUTES_DISABLED"}"#.into(),
        )),
        ("POST", "/api/v1/share") => Some(v1_receipt()),
        _ => None,
    })
    .await;
    let client = server.client(ApiVersion::Auto);
    let receipt = client.share(&ShareRequest::new("x")).await;
    assert!(receipt.is_ok(), "{receipt:?}");
    assert_eq!(receipt.unwrap().metadata_key, MK);
}

/// Why, bullet 6: an unknown route is not a missing secret. v2 says `error_type:"NotFound"`
/// (`apps/api/v2/application.rb:68`), v1 `{"error":"Not Found"}`.
#[tokio::test]
async fn an_unknown_route_is_not_a_missing_secret() {
    let server = Canned::start(|method, path, _| match (method.as_str(), path) {
        ("GET", "/api/v2/status") => Some(status_answer()),
        (_, p) if p.starts_with("/api/v1/") => Some((404, r#"{"error":"Not Found"}"#.into())),
        _ => None,
    })
    .await;
    for api in [ApiVersion::V1, ApiVersion::V2] {
        let err = server.client(api).receipt(MK).await.unwrap_err();
        assert_ne!(
            err,
            OtsError::NotFound,
            "{api}: a wrong path is not a gone secret"
        );
        assert!(
            err.to_string().contains(&format!("/api/{api}/")),
            "{api}: the error names the path that did not exist: {err}"
        );
        let burn = server.client(api).burn(MK, None).await;
        assert!(burn.is_err(), "{api}: {burn:?}");
        assert!(
            !format!("{burn:?}").contains("NotFound)"),
            "{api}: {burn:?}"
        );
    }
}

/// Issue 11 item 4: server text is untrusted. A server that echoes the request in its error
/// message must not get the secret, passphrase or token into the error.
#[tokio::test]
async fn a_server_that_echoes_the_request_gets_no_secret_into_the_error() {
    const SECRET: &str = "SECRET-echo-77-never-show";
    const PASSPHRASE: &str = "PASS-echo-88-never-show";
    const TOKEN: &str = "TOKEN-echo-99-never-show";
    let server = Canned::start(|_, path, body| {
        if path.ends_with("/status") {
            return Some(status_answer());
        }
        let echoed = serde_json::Value::String(format!("Unknown type of secret {body}"));
        let mut answers: HashMap<&str, (u16, String)> = HashMap::new();
        answers.insert(
            "v2",
            (
                422,
                format!(r#"{{"error":{echoed},"error_type":"FormError"}}"#),
            ),
        );
        answers.insert("v1", (404, format!(r#"{{"message":{echoed}}}"#)));
        let api = if path.starts_with("/api/v1/") {
            "v1"
        } else {
            "v2"
        };
        answers.remove(api)
    })
    .await;
    for api in [ApiVersion::V1, ApiVersion::V2] {
        let client = OtsClient::new(
            ClientConfig::new(server.url.clone())
                .with_api(api)
                .with_credentials(Credentials::new("echo@example.com", TOKEN)),
        )
        .unwrap();
        let err = client
            .share(&ShareRequest::new(SECRET).with_passphrase(PASSPHRASE))
            .await
            .unwrap_err();
        for text in [err.to_string(), format!("{err:?}"), format!("{err:#?}")] {
            for sensitive in [SECRET, PASSPHRASE, TOKEN] {
                assert!(!text.contains(sensitive), "{api}: {text}");
            }
        }
    }
}

/// A v2 conceal answer as the real server gives it for a link on `share_domain`: the receipt
/// keeps the domain, and `record.share_domain` repeats it (`base_secret_action.rb:55-63`).
fn v2_created_on(share_domain: &str) -> (u16, String) {
    (
        200,
        format!(
            r#"{{"success":true,"record":{{"receipt":{{"identifier":"{MK}","key":"{MK}","state":"new","secret_identifier":"{SK}","secret_ttl":3600,"metadata_ttl":3600,"lifespan":3600,"share_domain":"{share_domain}","created":1767225600.5,"updated":1767225600.5,"has_passphrase":false}},"secret":{{"identifier":"{SK}","key":"{SK}","state":"new","lifespan":3600,"secret_ttl":3600,"has_passphrase":false}},"share_domain":"{share_domain}"}},"details":{{"kind":"conceal","recipient":[],"recipient_safe":[]}}}}"#
        ),
    )
}

/// A share domain goes in the v2 create body, nested under `secret` like every other field, and
/// the link is on that domain under the server's scheme, as the server's own `share_url`
/// (`show_receipt.rb:231-241,365`, de53ff8f7).
#[tokio::test]
async fn a_share_domain_is_sent_with_the_create_and_the_link_is_on_it() {
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let seen = bodies.clone();
    let server = Canned::start(move |method, path, body| match (method.as_str(), path) {
        ("GET", "/api/v2/status") => Some(status_answer()),
        ("POST", "/api/v2/secret/conceal") => {
            seen.lock().unwrap().push(body.to_owned());
            Some(v2_created_on("secrets.example.com"))
        }
        _ => None,
    })
    .await;
    let client = server.client(ApiVersion::V2);
    let receipt = client
        .share(&ShareRequest::new("the-value").with_share_domain("secrets.example.com"))
        .await
        .unwrap();
    let sent: serde_json::Value = serde_json::from_str(&bodies.lock().unwrap()[0]).unwrap();
    assert_eq!(
        sent["secret"]["share_domain"], "secrets.example.com",
        "{sent}"
    );
    assert_eq!(receipt.share_domain.as_deref(), Some("secrets.example.com"));
    assert_eq!(
        receipt.secret_link(client.base_url()).unwrap().as_str(),
        format!("http://secrets.example.com/secret/{SK}")
    );
    // Without one, no share_domain is sent at all.
    client.share(&ShareRequest::new("the-value")).await.unwrap();
    let sent: serde_json::Value = serde_json::from_str(&bodies.lock().unwrap()[1]).unwrap();
    assert!(sent["secret"].get("share_domain").is_none(), "{sent}");
}

/// The real server's refusals of a share domain (`base_secret_action.rb:384,557,692`) keep
/// their words, and v1, which has no share domain, sends nothing at all.
#[tokio::test]
async fn a_refused_share_domain_keeps_the_servers_words_and_v1_sends_nothing() {
    let server = Canned::start(|method, path, body| match (method.as_str(), path) {
        ("GET", "/api/v2/status") => Some(status_answer()),
        ("POST", "/api/v2/secret/conceal") if body.contains("unknown.example.com") => Some((
            422,
            r#"{"error":"Unknown domain: unknown.example.com"}"#.into(),
        )),
        ("POST", "/api/v2/secret/conceal") => Some((
            403,
            r#"{"error":"You do not have permission to use domain: other.example.com","error_type":"Forbidden","error_key":"api.secrets.errors.domain_permission_authenticated_non_owner"}"#.into(),
        )),
        _ => None,
    })
    .await;
    let client = server.client(ApiVersion::V2);
    let unknown = client
        .share(&ShareRequest::new("the-value").with_share_domain("unknown.example.com"))
        .await
        .unwrap_err();
    assert_eq!(
        unknown,
        OtsError::Validation {
            message: "Unknown domain: unknown.example.com".into()
        }
    );
    let foreign = client
        .share(&ShareRequest::new("the-value").with_share_domain("other.example.com"))
        .await
        .unwrap_err();
    assert_eq!(
        foreign,
        OtsError::Forbidden {
            detail: "You do not have permission to use domain: other.example.com".into()
        }
    );
    let before = server.requests().len();
    let v1 = server
        .client(ApiVersion::V1)
        .share(&ShareRequest::new("the-value").with_share_domain("secrets.example.com"))
        .await
        .unwrap_err();
    assert_eq!(v1, OtsError::ShareDomainUnsupported);
    assert_eq!(server.requests().len(), before, "v1 sent nothing");
}
