//! `status.openedAt` on a real control plane: a v2 server's access telemetry (receipt
//! `view_count`/`first_access`) shows a link that was opened but not revealed, from the regular
//! link checks alone.

mod support;

use ots_testserver::Config;
use serde_json::json;
use support::operator::*;
use support::world::World;

#[tokio::test]
async fn a_link_opened_but_not_revealed_shows_opened_at_while_still_shared() {
    let w = World::start("opened-at").await;
    w.secret("db", &[("password", b"behind-a-passphrase")])
        .await;
    w.secret("phrases", &[("db", b"open sesame")]).await;
    w.share(
        "gated",
        json!({"secretRef": {"name": "db", "key": "password"},
               "passphraseSecretRef": {"name": "phrases", "key": "db"}}),
    )
    .await;
    let shared = w.shared("gated").await;
    assert_eq!(shared.status.as_ref().unwrap().opened_at, None);
    let link = shared.status.as_ref().unwrap().link.clone().unwrap();
    let receipt_checks = w.calls("receipt");

    // The recipient lands on the passphrase page (a v2 secret view without `continue`).
    let page = reqwest::get(format!(
        "{}/api/v2/secret/{}",
        w.server.url(),
        secret_key(&link)
    ))
    .await
    .expect("open the link");
    assert!(page.status().is_success(), "{}", page.status());

    let opened = w
        .wait_for("gated", "status.openedAt", |o| {
            o.status.as_ref().is_some_and(|s| s.opened_at.is_some())
        })
        .await;
    let status = opened.status.clone().unwrap();
    assert_eq!(status.phase.as_str(), "Shared", "opened is not received");
    assert_eq!(status.received_at, None);
    assert!(w.calls("receipt") > receipt_checks);
    assert_eq!(
        w.calls("secret"),
        1,
        "the operator never opens the link itself"
    );

    assert_eq!(
        w.reveal_link(&link, Some("open sesame"))
            .await
            .expect("reveal"),
        "behind-a-passphrase"
    );
    let received = w.wait_phase("gated", "Received").await;
    let received = received.status.unwrap();
    assert_eq!(
        received.opened_at, status.opened_at,
        "the first opening stays"
    );
    assert!(received.opened_at.unwrap().0 <= received.received_at.unwrap().0);
}

#[tokio::test]
async fn a_received_link_has_opened_at_even_without_access_telemetry() {
    let w = World::with("opened-at-v1", Config::default(), &["--ots-api", "v1"]).await;
    w.secret("db", &[("password", b"v1")]).await;
    w.share_key("plain", "db", "password").await;
    let shared = w.shared("plain").await;
    w.reveal(&shared).await;
    let received = w.wait_phase("plain", "Received").await;
    let status = received.status.unwrap();
    assert_eq!(status.opened_at, status.received_at);
}
