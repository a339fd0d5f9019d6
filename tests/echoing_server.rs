//! Server text is untrusted input: a server (or a proxy in front of it) that echoes the request in
//! its error answers gets neither the secret value, the passphrase nor the API token into status,
//! Events or the operator's info log, on either API version.

mod support;

use axum::body::Bytes;
use axum::http::{StatusCode, Uri};
use axum::response::IntoResponse;
use serde_json::json;
use support::operator::*;

const VALUE: &str = "ECHOED-VALUE-3b9f-do-not-leak";
const PASSPHRASE: &str = "ECHOED-PASSPHRASE-77d1";
const TOKEN: &str = "ECHOED-TOKEN-c0ffee";

/// Answers every share with an error whose every text field is the request, headers included.
async fn echo(uri: Uri, headers: axum::http::HeaderMap, body: Bytes) -> axum::response::Response {
    let text = format!("{} {:?} {}", uri, headers, String::from_utf8_lossy(&body));
    if uri.path().ends_with("/status") {
        // A healthy v2 status, so `auto` picks v2 where asked.
        return (
            StatusCode::OK,
            axum::Json(json!({"success": true, "status": "nominal", "locale": "en"})),
        )
            .into_response();
    }
    if uri.path().ends_with("/authcheck") || uri.path().ends_with("/version") {
        return (
            StatusCode::OK,
            axum::Json(json!({"success": true, "status": "nominal", "version": [0, 26, 6]})),
        )
            .into_response();
    }
    let status = if uri.path().starts_with("/api/v1") {
        StatusCode::NOT_FOUND
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    (
        status,
        axum::Json(json!({
            "message": text, "error": text, "error_type": "FormError",
            "field": text, "success": false
        })),
    )
        .into_response()
}

async fn echo_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(listener, axum::Router::new().fallback(echo))
            .await
            .unwrap();
    });
    url
}

fn assert_clean(place: &str, text: &str) {
    for secret in [VALUE, PASSPHRASE, TOKEN] {
        assert!(!text.contains(secret), "{place} contains {secret}:\n{text}");
    }
}

async fn nothing_echoed_reaches_users(api: &str) {
    let (client, ns) = setup(&format!("echo-{api}")).await;
    let url = echo_server().await;
    let mut args = fast_args(&ns, &url);
    args.extend(["--ots-api".to_owned(), api.to_owned()]);
    let operator = Operator::start_with(
        &args,
        &[
            ("RUST_LOG", "info"),
            ("OTS_USERNAME", "ops@example.com"),
            ("OTS_API_TOKEN", TOKEN),
        ],
    );
    create_secret(&client, &ns, "db", &[("password", VALUE.as_bytes())]).await;
    create_secret(&client, &ns, "phrases", &[("p", PASSPHRASE.as_bytes())]).await;
    create_share(
        &client,
        &ns,
        "echoed",
        json!({"secretRef": {"name": "db", "key": "password"},
               "passphraseSecretRef": {"name": "phrases", "key": "p"}}),
    )
    .await;
    let failed = wait_for(&client, &ns, "echoed", "a refusal in status", |o| {
        ready(o).is_some_and(|(status, reason, _)| status == "False" && reason == "ServerRejected")
    })
    .await;
    let (_, reason, message) = ready(&failed).unwrap();
    assert_clean("the condition", &message);
    assert!(
        !message.is_empty(),
        "the condition says something ({reason})"
    );
    let note = wait_event(&client, &ns, "echoed", "Warning", &reason).await;
    assert_clean("the Event", &note);
    assert_clean("status", &serde_json::to_string(&failed).unwrap());
    assert_clean("the operator's info log", &operator.logs());
}

#[tokio::test]
async fn an_echoing_v2_server_leaks_nothing_into_status_events_or_logs() {
    nothing_echoed_reaches_users("v2").await;
}

#[tokio::test]
async fn an_echoing_v1_server_leaks_nothing_into_status_events_or_logs() {
    nothing_echoed_reaches_users("v1").await;
}
