//! What the OTS client learns about a server and how it decides when an answer is odd: the
//! receipt route layout, anonymous v2 being off, credential checks, the server's own limits, and
//! burns that are not confirmed. Canned answers copy the real server (onetimesecret/onetimesecret
//! at de53ff8f7, tags v0.20.5 and v0.23.6).

mod ots_client_common;

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use ots_operator::ots::{
    ApiVersion, BurnOutcome, ClientConfig, Credentials, InputError, OtsClient, OtsError,
    SecretState, ShareRequest,
};
use url::Url;

const MK: &str = "m0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmno";
const SK: &str = "s0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmno";

type Answer = dyn Fn(&str, &str) -> Option<(u16, String)> + Send + Sync;

struct Canned {
    url: Url,
    log: Arc<Mutex<Vec<String>>>,
}

impl Canned {
    async fn start(
        answer: impl Fn(&str, &str) -> Option<(u16, String)> + Send + Sync + 'static,
    ) -> Canned {
        let answer: Arc<Answer> = Arc::new(answer);
        let log = Arc::new(Mutex::new(Vec::new()));
        let seen = log.clone();
        let app = axum::Router::new().fallback(move |method: Method, uri: Uri, _body: Bytes| {
            let answer = answer.clone();
            let seen = seen.clone();
            async move {
                seen.lock()
                    .unwrap()
                    .push(format!("{method} {}", uri.path()));
                let (status, body) = answer(method.as_str(), uri.path()).unwrap_or_else(|| {
                    (
                        404,
                        r#"{"error":"Not Found","error_type":"NotFound"}"#.to_owned(),
                    )
                });
                let response: Response = (
                    StatusCode::from_u16(status).unwrap(),
                    [(header::CONTENT_TYPE, "application/json")],
                    body,
                )
                    .into_response();
                response
            }
        });
        let url = ots_client_common::serve(app).await;
        Canned { url, log }
    }

    fn client(&self, api: ApiVersion) -> OtsClient {
        OtsClient::new(ClientConfig::new(self.url.clone()).with_api(api)).unwrap()
    }

    fn authed(&self, api: ApiVersion) -> OtsClient {
        OtsClient::new(
            ClientConfig::new(self.url.clone())
                .with_api(api)
                .with_credentials(Credentials::new("ops@example.com", "tok-ops-123")),
        )
        .unwrap()
    }

    fn count(&self, needle: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.contains(needle))
            .count()
    }
}

fn status() -> Option<(u16, String)> {
    Some((
        200,
        r#"{"success":true,"status":"nominal","locale":"en"}"#.into(),
    ))
}

fn receipt(state: &str) -> Option<(u16, String)> {
    Some((
        200,
        format!(
            r#"{{"success":true,"record":{{"identifier":"{MK}","state":"{state}","secret_identifier":"{SK}","secret_ttl":3600,"created":1767225600}},"details":{{}}}}"#
        ),
    ))
}

#[tokio::test]
async fn the_receipt_layout_is_found_once_per_server_and_remembered() {
    let server = Canned::start(|method, path| match (method, path) {
        ("GET", "/api/v2/status") => status(),
        ("GET", p) if p == format!("/api/v2/private/{MK}") => receipt("new"),
        // v0.18–v0.20: `/receipt/*` is an unknown route (`config.ru:56` at v0.20.5).
        _ => Some((404, r#"{"message":"Not Found"}"#.into())),
    })
    .await;
    let client = server.client(ApiVersion::V2);
    for _ in 0..3 {
        assert_eq!(client.receipt(MK).await.unwrap().state, SecretState::New);
    }
    assert_eq!(server.count("/receipt/"), 1, "asked once, then remembered");
    assert_eq!(server.count("/private/"), 3);
    // Clones share what was learned.
    client.clone().receipt(MK).await.unwrap();
    assert_eq!(server.count("/receipt/"), 1);
}

#[tokio::test]
async fn a_failed_layout_answer_is_not_remembered() {
    let down = Arc::new(Mutex::new(true));
    let flag = down.clone();
    let server = Canned::start(move |method, path| match (method, path) {
        _ if *flag.lock().unwrap() => Some((503, "{}".into())),
        ("GET", p) if p == format!("/api/v2/receipt/{MK}") => receipt("new"),
        _ => None,
    })
    .await;
    let client = server.client(ApiVersion::V2);
    assert!(matches!(
        client.receipt(MK).await,
        Err(OtsError::Unavailable { .. })
    ));
    *down.lock().unwrap() = false;
    assert_eq!(client.receipt(MK).await.unwrap().state, SecretState::New);
    assert_eq!(server.count("/private/"), 0);
}

#[tokio::test]
async fn a_burn_the_server_did_not_do_while_the_receipt_shows_it_live_is_unconfirmed() {
    let server = Canned::start(|method, path| match (method, path) {
        ("POST", p) if p.ends_with("/burn") => Some((200, r#"{"success":true}"#.into())),
        ("GET", p) if p == format!("/api/v2/receipt/{MK}") => receipt("new"),
        _ => None,
    })
    .await;
    let err = server
        .client(ApiVersion::V2)
        .burn(MK, None)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        OtsError::BurnUnconfirmed {
            state: SecretState::New
        }
    );
    assert!(err.is_transient(), "retried, never taken for gone");
}

#[tokio::test]
async fn a_burn_lost_to_a_concurrent_reveal_reads_the_receipt() {
    // `success:false` with a record: the reveal won the atomic claim (`burn_secret.rb`).
    let server = Canned::start(|method, path| match (method, path) {
        ("POST", p) if p.ends_with("/burn") => Some((
            200,
            format!(r#"{{"success":false,"record":{{"identifier":"{MK}","state":"new"}}}}"#),
        )),
        ("GET", p) if p == format!("/api/v2/receipt/{MK}") => receipt("revealed"),
        _ => None,
    })
    .await;
    assert!(matches!(
        server.client(ApiVersion::V2).burn(MK, None).await.unwrap(),
        BurnOutcome::AlreadyGone {
            state: SecretState::Received,
            ..
        }
    ));
}

#[tokio::test]
async fn with_guest_routes_off_an_explicit_v2_is_refused_and_auto_remembers_v1() {
    let server = Canned::start(|method, path| match (method, path) {
        ("GET", "/api/v2/status") => status(),
        ("POST", "/api/v2/secret/conceal") => Some((
            403,
            r#"{"error":"Guest API access is disabled","error_type":"GuestRoutesDisabled"}"#.into(),
        )),
        ("POST", "/api/v1/share") => Some((
            200,
            format!(r#"{{"metadata_key":"{MK}","secret_key":"{SK}","state":"new","ttl":3600}}"#),
        )),
        _ => None,
    })
    .await;
    assert_eq!(
        server
            .client(ApiVersion::V2)
            .share(&ShareRequest::new("x"))
            .await
            .unwrap_err(),
        OtsError::GuestRoutesDisabled
    );
    let auto = server.client(ApiVersion::Auto);
    for _ in 0..3 {
        auto.share(&ShareRequest::new("x")).await.unwrap();
    }
    assert_eq!(
        server.count("/api/v2/secret/conceal"),
        2,
        "v2's refusal once for the explicit client, once for auto; then v1"
    );
    assert_eq!(server.count("/api/v1/share"), 3);
}

#[tokio::test]
async fn credentials_are_verified_without_sharing() {
    let server = Canned::start(|method, path| match (method, path) {
        ("GET", "/api/v2/status") => status(),
        ("GET", "/api/v2/version") => Some((
            401,
            r#"{"error":"Authentication Required","message":"[CREDENTIALS_INVALID] Invalid credentials"}"#.into(),
        )),
        ("GET", "/api/v1/authcheck") => Some((404, r#"{"message":"Not authorized"}"#.into())),
        _ => None,
    })
    .await;
    for api in [ApiVersion::V1, ApiVersion::V2] {
        assert_eq!(
            server.authed(api).verify_credentials().await,
            Err(OtsError::Unauthorized),
            "{api}"
        );
        assert_eq!(server.client(api).verify_credentials().await, Ok(()));
    }
    assert_eq!(server.count("/share") + server.count("/conceal"), 0);
}

#[tokio::test]
async fn a_server_without_a_verification_route_counts_as_verified() {
    let server = Canned::start(|method, path| match (method, path) {
        ("GET", "/api/v2/status") => status(),
        _ => None,
    })
    .await;
    assert_eq!(
        server.authed(ApiVersion::V2).verify_credentials().await,
        Ok(())
    );
}

#[tokio::test]
async fn the_servers_own_size_limit_wins_and_the_pre_check_can_be_raised() {
    let server = Canned::start(|method, path| match (method, path) {
        ("POST", "/api/v2/secret/conceal") => Some((
            422,
            r#"{"error":"Secret content must be no more than 5000 bytes long","error_type":"FormError","field":"secret"}"#.into(),
        )),
        _ => None,
    })
    .await;
    assert_eq!(
        server
            .client(ApiVersion::V2)
            .share(&ShareRequest::new("x".repeat(6_000)))
            .await
            .unwrap_err(),
        OtsError::SecretTooLarge { max: Some(5_000) }
    );
    // The default pre-check refuses 15,000 bytes without a request; a raised one sends them.
    let big = ShareRequest::new("y".repeat(15_000));
    assert_eq!(
        server.client(ApiVersion::V2).share(&big).await.unwrap_err(),
        OtsError::InvalidInput(InputError::TooLarge {
            bytes: 15_000,
            max: 10_000
        })
    );
    let raised = OtsClient::new(
        ClientConfig::new(server.url.clone())
            .with_api(ApiVersion::V2)
            .with_max_secret_bytes(20_000),
    )
    .unwrap();
    assert!(matches!(
        raised.share(&big).await,
        Err(OtsError::SecretTooLarge { .. })
    ));
    assert_eq!(server.count("/conceal"), 2);
}

#[tokio::test]
async fn a_v023_declined_share_is_a_refusal_and_its_outage_texts_are_outages() {
    let server = Canned::start(|method, path| match (method, path) {
        ("POST", "/api/v2/secret/conceal") => Some((
            500,
            r#"{"message":"Secret could not be concealed.","success":false,"shrimp":"s"}"#.into(),
        )),
        ("POST", "/api/v2/secret/generate") => Some((
            500,
            r#"{"message":"We'll be back shortly!","success":false}"#.into(),
        )),
        _ => None,
    })
    .await;
    let client = server.client(ApiVersion::V2);
    let declined = client.share(&ShareRequest::new("x")).await.unwrap_err();
    assert_eq!(
        declined,
        OtsError::Refused {
            message: "Secret could not be concealed.".into()
        }
    );
    assert!(!declined.is_transient());
    let down = client.generate(&Default::default()).await.unwrap_err();
    assert!(down.is_transient(), "{down:?}");
}
