//! `onSecretChange: Reshare` edge cases on a real control plane: a changed Secret whose new value
//! cannot be shared says so, and a reshare after the old link was opened claims no burn.

mod support;

use ots_testserver::Config;
use serde_json::json;
use support::operator::*;

#[tokio::test]
async fn a_reshare_blocked_by_an_invalid_new_value_says_so_and_keeps_the_old_link() {
    let (client, ns) = setup("reshare-blocked").await;
    let server = ots_server(Config::default());
    let _operator = Operator::start(&ns, &server.url(), &[]);
    create_secret(&client, &ns, "db", &[("password", b"first")]).await;
    create_share(
        &client,
        &ns,
        "follow",
        json!({"secretRef": {"name": "db", "key": "password"}, "onSecretChange": "Reshare"}),
    )
    .await;
    let shared = wait_shared(&client, &ns, "follow").await;
    let key = shared
        .status
        .as_ref()
        .unwrap()
        .metadata_key
        .clone()
        .unwrap();

    update_secret(&client, &ns, "db", &[("password", &[b'x'; 10_001])]).await;
    let blocked = wait_for(
        &client,
        &ns,
        "follow",
        "a condition about the blocked reshare",
        |o| ready_reason_is(o, "SecretTooLarge"),
    )
    .await;
    let (ready_status, _, message) = ready(&blocked).unwrap();
    assert_eq!(
        ready_status, "True",
        "the old link is still ready to hand out"
    );
    assert!(message.contains("previous link stays live"), "{message}");
    assert_eq!(phase(&blocked), "Shared");
    assert_eq!(
        blocked.status.as_ref().unwrap().metadata_key.as_deref(),
        Some(key.as_str())
    );
    assert!(
        server.live_receipts().iter().any(|r| r.metadata_key == key),
        "nothing was burned for a value that cannot be shared"
    );
    assert_eq!(calls(&server, "burn"), 0);
}

#[tokio::test]
async fn a_reshare_after_the_link_was_opened_claims_no_burn() {
    let (client, ns) = setup("reshare-received").await;
    let server = ots_server(Config::default());
    let _operator = Operator::start(&ns, &server.url(), &[]);
    create_secret(&client, &ns, "db", &[("password", b"first")]).await;
    create_share(
        &client,
        &ns,
        "follow",
        json!({"secretRef": {"name": "db", "key": "password"}, "onSecretChange": "Reshare"}),
    )
    .await;
    let shared = wait_shared(&client, &ns, "follow").await;
    assert_eq!(open_link(&server, &shared).await, "first");
    wait_for(&client, &ns, "follow", "phase Received", |o| {
        phase(o) == "Received"
    })
    .await;
    update_secret(&client, &ns, "db", &[("password", b"second")]).await;
    let note = wait_event(&client, &ns, "follow", "Normal", "Reshared").await;
    assert!(!note.contains("burned"), "{note}");
    assert!(note.contains("opened"), "{note}");
    assert_eq!(calls(&server, "burn"), 0);
    let reshared = wait_shared(&client, &ns, "follow").await;
    assert_eq!(open_link(&server, &reshared).await, "second");
}
