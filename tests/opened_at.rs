//! `status.openedAt` on a real control plane: a v2 server's access telemetry (receipt
//! `view_count`/`first_access`) shows a link that was opened but not revealed, from the regular
//! link checks alone.

mod support;

use ots_testserver::Config;
use serde_json::json;
use support::operator::*;

#[tokio::test]
async fn a_link_opened_but_not_revealed_shows_opened_at_while_still_shared() {
    let (client, ns) = setup("opened-at").await;
    let server = ots_server(Config::default());
    let _operator = Operator::start(&ns, &server.url(), &[]);
    create_secret(&client, &ns, "db", &[("password", b"behind-a-passphrase")]).await;
    create_secret(&client, &ns, "phrases", &[("db", b"open sesame")]).await;
    create_share(
        &client,
        &ns,
        "gated",
        json!({"secretRef": {"name": "db", "key": "password"},
               "passphraseSecretRef": {"name": "phrases", "key": "db"}}),
    )
    .await;
    let shared = wait_shared(&client, &ns, "gated").await;
    assert_eq!(shared.status.as_ref().unwrap().opened_at, None);
    let link = shared.status.as_ref().unwrap().link.clone().unwrap();
    let receipt_checks = calls(&server, "receipt");

    // The recipient lands on the passphrase page (a v2 secret view without `continue`).
    let page = reqwest::get(format!(
        "{}/api/v2/secret/{}",
        server.url(),
        secret_key(&link)
    ))
    .await
    .expect("open the link");
    assert!(page.status().is_success(), "{}", page.status());

    let opened = wait_for(&client, &ns, "gated", "status.openedAt", |o| {
        o.status.as_ref().is_some_and(|s| s.opened_at.is_some())
    })
    .await;
    let status = opened.status.clone().unwrap();
    assert_eq!(status.phase.as_str(), "Shared", "opened is not received");
    assert_eq!(status.received_at, None);
    assert!(calls(&server, "receipt") > receipt_checks);
    assert_eq!(
        calls(&server, "secret"),
        1,
        "the operator never opens the link itself"
    );

    assert_eq!(
        reveal(&server, &link, Some("open sesame"))
            .await
            .expect("reveal"),
        "behind-a-passphrase"
    );
    let received = wait_for(&client, &ns, "gated", "phase Received", |o| {
        phase(o) == "Received"
    })
    .await;
    let received = received.status.unwrap();
    assert_eq!(
        received.opened_at, status.opened_at,
        "the first opening stays"
    );
    assert!(received.opened_at.unwrap().0 <= received.received_at.unwrap().0);
}

#[tokio::test]
async fn a_received_link_has_opened_at_even_without_access_telemetry() {
    let (client, ns) = setup("opened-at-v1").await;
    let server = ots_server(Config::default());
    let _operator = Operator::start(&ns, &server.url(), &["--ots-api", "v1"]);
    create_secret(&client, &ns, "db", &[("password", b"v1")]).await;
    create_share(
        &client,
        &ns,
        "plain",
        json!({"secretRef": {"name": "db", "key": "password"}}),
    )
    .await;
    let shared = wait_shared(&client, &ns, "plain").await;
    open_link(&server, &shared).await;
    let received = wait_for(&client, &ns, "plain", "phase Received", |o| {
        phase(o) == "Received"
    })
    .await;
    let status = received.status.unwrap();
    assert_eq!(status.opened_at, status.received_at);
}
