//! Secrets are sacred: no secret value, passphrase or API token appears in the operator's logs
//! (at trace level), in Events, in status or in metrics — whatever happens to the share.

mod support;

use base64::Engine;
use ots_testserver::{Account, Config, Faults};
use serde_json::json;
use std::time::Duration;
use support::operator::*;
use support::world::World;

const VALUE: &str = "VALUE-7f3a9c-do-not-leak";
const OTHER_VALUE: &str = "ROTATED-51bd02-do-not-leak";
const PASSPHRASE: &str = "PASSPHRASE-e21c77-do-not-leak";
const TOKEN: &str = "TOKEN-90ad4e-do-not-leak";

/// Every form in which a secret could leak: as is, base64 (Secret data), and URL-encoded.
fn forms(secret: &str) -> Vec<String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    vec![
        secret.to_owned(),
        b64.encode(secret),
        b64.encode(format!("password={secret}")),
        secret.replace('-', "%2D"),
    ]
}

fn assert_clean(place: &str, text: &str) {
    for secret in [VALUE, OTHER_VALUE, PASSPHRASE, TOKEN] {
        for form in forms(secret) {
            assert!(!text.contains(&form), "{place} contains a secret ({form})");
        }
    }
}

#[tokio::test]
async fn no_secret_reaches_logs_events_status_or_metrics() {
    let server = ots_server(Config {
        accounts: vec![Account::new("ops@example.com", TOKEN)],
        ..Config::default()
    });
    let mut w = World::with_operator("leaks", server, |ns, url| {
        Operator::start_with(
            &fast_args(ns, url),
            &[
                ("RUST_LOG", "trace"),
                ("OTS_USERNAME", "ops@example.com"),
                ("OTS_API_TOKEN", TOKEN),
            ],
        )
    })
    .await;
    w.secret("db", &[("password", VALUE.as_bytes())]).await;
    w.secret("phrases", &[("p", PASSPHRASE.as_bytes())]).await;
    w.secret("short", &[("p", b"abc")]).await;
    // Shared, tracked, received.
    w.share_key("read", "db", "password").await;
    // Passphrase-protected, rotated (reshare burns with the passphrase), then deleted (burned).
    w.share(
        "gated",
        json!({
            "secretRef": {"name": "db"},
            "passphraseSecretRef": {"name": "phrases", "key": "p"},
            "onSecretChange": "Reshare"
        }),
    )
    .await;
    // Failures whose messages name the inputs.
    w.share(
        "bad-phrase",
        json!({
            "secretRef": {"name": "db", "key": "password"},
            "passphraseSecretRef": {"name": "short", "key": "p"}
        }),
    )
    .await;
    let read = w.shared("read").await;
    assert_eq!(w.reveal(&read).await, VALUE);
    w.wait_phase("read", "Received").await;
    let gated = w.shared("gated").await;
    w.update_secret("db", &[("password", OTHER_VALUE.as_bytes())])
        .await;
    let old_link = gated.status.unwrap().link;
    w.wait_for("gated", "a new link", |o| {
        o.status.as_ref().and_then(|s| s.link.clone()) != old_link
    })
    .await;
    w.wait_for("bad-phrase", "InvalidPassphrase", |o| {
        ready_reason_is(o, "InvalidPassphrase")
    })
    .await;
    // Failures from the server, too.
    w.server.set_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    w.server.set_faults(Faults::default());
    w.delete_share("gated").await;
    w.wait_gone("gated").await;

    let metrics = w.metrics().await;
    assert!(metrics.contains("ots_operator_"), "metrics are served");
    w.operator.terminate();

    let logs = w.operator.logs();
    assert!(
        logs.lines().count() > 50,
        "trace logging was on ({} lines)",
        logs.lines().count()
    );
    assert!(logs.contains("TRACE"), "trace level reached the log");
    assert_clean("the operator's trace log", &logs);
    assert_clean("metrics", &metrics);
    for name in ["read", "gated", "bad-phrase"] {
        let events = w.events(name).await;
        assert!(!events.is_empty(), "{name} has events");
        assert_clean(&format!("events of {name}"), &format!("{events:?}"));
    }
    for obj in w.shares().list(&Default::default()).await.unwrap() {
        assert_clean("status", &serde_json::to_string(&obj).unwrap());
    }
}
