//! The OTS client's error classes against `ots-testserver` (auth, validation, rate limits,
//! outages, timeouts) and against a server that answers garbage.

mod ots_client_common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ots_client_common::{EMAIL, VERSIONS, anon, authed, base, count, impatient, server};
use ots_operator::ots::{
    ApiVersion, BurnOutcome, ClientConfig, Credentials, GenerateRequest, InputError, OtsClient,
    OtsError, ResolvedApi, SecretState, SecretString, ShareRequest,
};
use ots_testserver::{Faults, RateLimitFault, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use url::Url;

/// A 62-character key that no server knows.
const UNKNOWN_KEY: &str = "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnop";

fn wrong_token(server: &TestServer, api: ApiVersion) -> OtsClient {
    OtsClient::new(
        ClientConfig::new(base(server))
            .with_api(api)
            .with_credentials(Credentials::new(EMAIL, "not-the-token")),
    )
    .unwrap()
}

/// Every operation's error on `client`, in a fixed order.
async fn every_operation(client: &OtsClient) -> Vec<(&'static str, OtsError)> {
    let mut out = Vec::new();
    let share = client.share(&ShareRequest::new("x")).await;
    out.push(("share", share.err()));
    let generate = client.generate(&GenerateRequest::default()).await;
    out.push(("generate", generate.err()));
    out.push(("reveal", client.reveal(UNKNOWN_KEY, None).await.err()));
    out.push(("receipt", client.receipt(UNKNOWN_KEY).await.err()));
    out.push(("burn", client.burn(UNKNOWN_KEY, None).await.err()));
    out.push(("recent", client.recent().await.err()));
    out.into_iter()
        .map(|(op, err)| (op, err.unwrap_or_else(|| panic!("{op} succeeded"))))
        .collect()
}

/// The error of sharing a one-letter secret over `client`; panics if the share succeeds.
async fn share_error(client: &OtsClient) -> OtsError {
    client.share(&ShareRequest::new("x")).await.unwrap_err()
}

#[tokio::test]
async fn a_wrong_token_is_unauthorized_on_every_operation() {
    let server = server().await;
    for api in VERSIONS {
        let client = wrong_token(&server, api);
        for (op, err) in every_operation(&client).await {
            assert_eq!(err, OtsError::Unauthorized, "{api} {op}");
            assert!(!err.is_transient());
        }
    }
    // v1 checks credentials on every route, status included.
    assert_eq!(
        wrong_token(&server, ApiVersion::V1)
            .status()
            .await
            .unwrap_err(),
        OtsError::Unauthorized
    );
}

#[tokio::test]
async fn recent_without_an_account_is_unauthorized() {
    let server = server().await;
    for api in VERSIONS {
        assert_eq!(
            anon(&server, api).recent().await.unwrap_err(),
            OtsError::Unauthorized,
            "{api}"
        );
    }
}

#[tokio::test]
async fn unknown_keys_are_not_found() {
    let server = server().await;
    for api in VERSIONS {
        let client = anon(&server, api);
        assert_eq!(
            client.reveal(UNKNOWN_KEY, None).await.unwrap_err(),
            OtsError::NotFound
        );
        assert_eq!(
            client.receipt(UNKNOWN_KEY).await.unwrap_err(),
            OtsError::NotFound
        );
        // Nothing to burn: the receipt is gone too, so the secret is long gone.
        assert_eq!(
            client.burn(UNKNOWN_KEY, None).await.unwrap(),
            BurnOutcome::AlreadyGone {
                state: SecretState::Expired,
                received: None
            }
        );
        // Short keys get v1's "Not Found" form; still not found.
        assert_eq!(
            client.receipt("abc").await.unwrap_err(),
            OtsError::NotFound,
            "{api}"
        );
    }
}

#[tokio::test]
async fn the_servers_validation_message_comes_back() {
    let server = server().await;
    for api in VERSIONS {
        let client = authed(&server, api);
        let err = client
            .share(&ShareRequest::new("x").with_recipient("not-an-email"))
            .await
            .unwrap_err();
        assert_eq!(
            err,
            OtsError::Validation {
                message: "Undeliverable email address: not-an-email".into()
            },
            "{api}"
        );
        let err = client
            .generate(&GenerateRequest {
                length: Some(129),
                ..GenerateRequest::default()
            })
            .await
            .unwrap_err();
        assert!(
            matches!(&err, OtsError::Validation { message } if message.contains("128")),
            "{api}: {err:?}"
        );
    }
}

#[tokio::test]
async fn emailing_a_link_needs_an_account() {
    let server = server().await;
    let request = ShareRequest::new("x").with_recipient("bob@example.com");
    assert_eq!(
        anon(&server, ApiVersion::V1)
            .share(&request)
            .await
            .unwrap_err(),
        OtsError::Validation {
            message: "An account is required to send emails.".into()
        }
    );
    assert_eq!(
        anon(&server, ApiVersion::V2)
            .share(&request)
            .await
            .unwrap_err(),
        OtsError::Unauthorized
    );
}

#[tokio::test]
async fn client_side_checks_refuse_bad_input_without_sending_anything() {
    let server = server().await;
    let client = anon(&server, ApiVersion::Auto);
    let cases: Vec<(ShareRequest, InputError)> = vec![
        (ShareRequest::new(""), InputError::Empty),
        (
            ShareRequest::new("x".repeat(10_001)),
            InputError::TooLarge {
                bytes: 10_001,
                max: 10_000,
            },
        ),
        (
            ShareRequest::new("x").with_passphrase("abc"),
            InputError::PassphraseLength { chars: 3 },
        ),
        (
            ShareRequest::new("x").with_passphrase("p".repeat(129)),
            InputError::PassphraseLength { chars: 129 },
        ),
        (
            ShareRequest::new("x").with_ttl(Duration::from_secs(59)),
            InputError::TtlTooShort { secs: 59 },
        ),
    ];
    for (request, expected) in cases {
        assert_eq!(
            client.share(&request).await.unwrap_err(),
            OtsError::InvalidInput(expected)
        );
    }
    let bad_generate = GenerateRequest {
        ttl: Some(Duration::from_secs(1)),
        ..GenerateRequest::default()
    };
    assert_eq!(
        client.generate(&bad_generate).await.unwrap_err(),
        OtsError::InvalidInput(InputError::TtlTooShort { secs: 1 })
    );
    for key in ["", "../status", "abc/def", "a b", "k%2e"] {
        let invalid = OtsError::InvalidInput(InputError::InvalidKey);
        assert_eq!(
            client.reveal(key, None).await.unwrap_err(),
            invalid,
            "{key:?}"
        );
        assert_eq!(client.receipt(key).await.unwrap_err(), invalid, "{key:?}");
        assert_eq!(
            client.burn(key, None).await.unwrap_err(),
            invalid,
            "{key:?}"
        );
    }
    assert_eq!(
        server.stats().requests_total,
        0,
        "not even the version probe"
    );
}

#[tokio::test]
async fn a_rate_limit_says_when_to_retry() {
    let server = server().await;
    server.set_faults(Faults {
        rate_limit: Some(RateLimitFault {
            retry_after_secs: 42,
            for_secs: 3600,
        }),
        ..Faults::default()
    });
    for api in VERSIONS {
        let err = share_error(&anon(&server, api)).await;
        assert_eq!(
            err,
            OtsError::RateLimited {
                retry_after: Some(Duration::from_secs(42))
            },
            "{api}"
        );
        assert!(err.is_transient());
        assert_eq!(err.retry_after(), Some(Duration::from_secs(42)));
    }
}

/// Shares a passphrase-protected secret over `api` and reveals it with a wrong passphrase until
/// the server answers anything but not-found (at most 25 tries); that answer, if any.
async fn reveal_with_wrong_passphrase_until_refused(api: ApiVersion) -> Option<OtsError> {
    let server = server().await;
    let client = anon(&server, api);
    let receipt = client
        .share(&ShareRequest::new("x").with_passphrase("right-one"))
        .await
        .unwrap();
    let key = receipt.secret_key.unwrap();
    let wrong = SecretString::from("wrong-one");
    for _ in 0..25 {
        match client.reveal(&key, Some(&wrong)).await {
            Err(OtsError::NotFound) => {}
            Err(other) => return Some(other),
            Ok(_) => panic!("a wrong passphrase revealed the secret"),
        }
    }
    None
}

#[tokio::test]
async fn repeated_wrong_passphrases_lock_the_secret_as_a_rate_limit_on_v2() {
    let last = reveal_with_wrong_passphrase_until_refused(ApiVersion::V2).await;
    let err = last.expect("the secret locks after repeated failures");
    assert!(
        matches!(
            err,
            OtsError::RateLimited {
                retry_after: Some(_)
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn repeated_wrong_passphrases_lock_the_secret_as_an_unexpected_error_on_v1() {
    let last = reveal_with_wrong_passphrase_until_refused(ApiVersion::V1).await;
    // v1 words a lockout as "An unexpected error occurred": a transient server-side refusal.
    let err = last.expect("the secret locks after repeated failures");
    assert!(matches!(err, OtsError::Unavailable { .. }), "{err:?}");
    assert!(err.is_transient());
}

#[tokio::test]
async fn an_outage_is_unavailable_and_transient_on_every_operation() {
    let server = server().await;
    server.set_faults(Faults {
        outage: true,
        ..Faults::default()
    });
    for api in VERSIONS {
        let client = authed(&server, api);
        for (op, err) in every_operation(&client).await {
            assert!(
                matches!(&err, OtsError::Unavailable { detail } if detail.contains("503")),
                "{api} {op}: {err:?}"
            );
            assert!(err.is_transient());
            assert_eq!(err.retry_after(), None);
        }
        assert!(matches!(
            client.status().await,
            Err(OtsError::Unavailable { .. })
        ));
    }
}

#[tokio::test]
async fn server_errors_are_unavailable() {
    let server = server().await;
    server.set_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });
    for api in VERSIONS {
        let err = share_error(&anon(&server, api)).await;
        assert!(
            matches!(&err, OtsError::Unavailable { detail } if detail.contains("HTTP 50")),
            "{api}: {err:?}"
        );
    }
}

#[tokio::test]
async fn a_hanging_server_times_out_as_unavailable() {
    let server = server().await;
    server.set_faults(Faults {
        timeout_rate: 1.0,
        ..Faults::default()
    });
    for api in VERSIONS {
        let client = impatient(&server, api, Duration::from_millis(300));
        let err = share_error(&client).await;
        assert!(
            matches!(&err, OtsError::Unavailable { detail } if detail.contains("timed out")),
            "{api}: {err:?}"
        );
        assert!(err.is_transient());
    }
}

#[tokio::test]
async fn a_refused_connection_is_unavailable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = Url::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
    drop(listener);
    for api in [ApiVersion::Auto, ApiVersion::V1, ApiVersion::V2] {
        let client = OtsClient::new(ClientConfig::new(url.clone()).with_api(api)).unwrap();
        let err = share_error(&client).await;
        assert!(
            matches!(&err, OtsError::Unavailable { detail } if detail.contains("cannot connect")),
            "{api}: {err:?}"
        );
    }
}

#[tokio::test]
async fn a_failed_version_probe_is_retried_not_remembered() {
    let server = server().await;
    server.set_faults(Faults {
        outage: true,
        ..Faults::default()
    });
    let client = anon(&server, ApiVersion::Auto);
    assert!(matches!(
        client.api_version().await,
        Err(OtsError::Unavailable { .. })
    ));
    server.set_faults(Faults::default());
    assert_eq!(client.api_version().await, Ok(ResolvedApi::V2));
    assert_eq!(client.api_version().await, Ok(ResolvedApi::V2));
    assert_eq!(
        count(&server, "status"),
        2,
        "one failed probe, one good one, then cached"
    );
}

/// A server that answers every request with `response` (raw HTTP) and counts requests.
struct Garbage {
    url: Url,
    hits: Arc<AtomicUsize>,
}

async fn garbage(response: String) -> Garbage {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = Url::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let response = response.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                // Read the head and whatever body came with it; the answer ignores both.
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    Garbage { url, hits }
}

fn http(status: &str, content_type: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

#[tokio::test]
async fn garbage_answers_are_protocol_errors_never_panics() {
    let answers = [
        http("200 OK", "text/html", "<html><body>Welcome</body></html>"),
        http("200 OK", "application/json", "not json at all"),
        http("200 OK", "application/json", r#"{"unexpected":"shape"}"#),
        http("200 OK", "application/json", r#"[1,2,3]"#),
        http("200 OK", "application/json", r#"{"record":{"receipt":"#),
        http("200 OK", "application/json", "null"),
        http("200 OK", "application/json", ""),
        http("404 Not Found", "text/html", "<h1>Not Found</h1>"),
        http("302 Found", "text/html", ""),
        http("418 I'm a teapot", "text/plain", "short and stout"),
        // Claims a body far larger than any OTS answer.
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 50000000\r\nConnection: close\r\n\r\n{".to_owned(),
    ];
    for answer in answers {
        let server = garbage(answer.clone()).await;
        for api in [ApiVersion::V1, ApiVersion::V2] {
            let client =
                OtsClient::new(ClientConfig::new(server.url.clone()).with_api(api)).unwrap();
            let results = [
                client.status().await.err(),
                client.share(&ShareRequest::new("x")).await.err(),
                client.generate(&GenerateRequest::default()).await.err(),
                client.reveal("abc123", None).await.err(),
                client.receipt("abc123").await.err(),
                client.burn("abc123", None).await.err(),
                client.recent().await.err(),
            ];
            for err in results {
                assert!(
                    matches!(err, Some(OtsError::Protocol { .. })),
                    "{api} {}: {err:?}",
                    answer.lines().next().unwrap_or_default()
                );
            }
        }
    }
}

#[tokio::test]
async fn auto_on_a_server_without_an_api_resolves_to_v1_and_then_reports_protocol_errors() {
    let server = garbage(http("200 OK", "text/html", "<html>a web page</html>")).await;
    let client = OtsClient::new(ClientConfig::new(server.url.clone())).unwrap();
    assert_eq!(client.api_version().await, Ok(ResolvedApi::V1));
    assert!(matches!(
        client.share(&ShareRequest::new("x")).await,
        Err(OtsError::Protocol { .. })
    ));
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let target = server().await;
    let redirect = garbage(format!(
        "HTTP/1.1 307 Temporary Redirect\r\nLocation: {}/api/v1/share\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        target.url()
    ))
    .await;
    let client = OtsClient::new(
        ClientConfig::new(redirect.url.clone())
            .with_api(ApiVersion::V1)
            .with_credentials(Credentials::new(EMAIL, "tok")),
    )
    .unwrap();
    let err = share_error(&client).await;
    assert!(matches!(err, OtsError::Protocol { .. }), "{err:?}");
    assert_eq!(redirect.hits.load(Ordering::SeqCst), 1);
    assert_eq!(
        target.stats().requests_total,
        0,
        "the redirect target saw nothing"
    );
}
