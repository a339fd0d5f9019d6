//! Reissue without renaming on a real control plane: a new value of the `ots.dev/reshare`
//! annotation burns a live link and shares the same spec anew, also after the link was received
//! or expired, and records the value acted on in `status.reshareToken`.

mod support;

use kube::api::{Patch, PatchParams};
use ots_operator::resource::{OneTimeShare, RESHARE_ANNOTATION};
use ots_testserver::Config;
use serde_json::json;
use std::time::Duration;
use support::operator::*;

/// Sets the reshare annotation as a user (or `kubectl ots reissue`) would.
async fn annotate(client: &kube::Client, ns: &str, name: &str, token: &str) {
    shares(client, ns)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {RESHARE_ANNOTATION: token}}})),
        )
        .await
        .expect("annotate the OneTimeShare");
}

fn metadata_key(obj: &OneTimeShare) -> String {
    obj.status
        .as_ref()
        .and_then(|s| s.metadata_key.clone())
        .expect("a metadata key")
}

fn reshare_token(obj: &OneTimeShare) -> Option<String> {
    obj.status.as_ref().and_then(|s| s.reshare_token.clone())
}

/// Waits for the link made for `token`, and returns the resource.
async fn wait_reissued(client: &kube::Client, ns: &str, name: &str, token: &str) -> OneTimeShare {
    wait_for(client, ns, name, "a link for the new reshare token", |o| {
        phase(o) == "Shared" && reshare_token(o).as_deref() == Some(token)
    })
    .await
}

#[tokio::test]
async fn a_reissue_after_the_link_was_opened_gives_a_new_working_link_and_burns_nothing() {
    let (client, ns) = setup("reissue-received").await;
    let server = ots_server(Config::default());
    let _operator = Operator::start(&ns, &server.url(), &[]);
    create_secret(&client, &ns, "db", &[("password", b"hunter2")]).await;
    create_share(
        &client,
        &ns,
        "handoff",
        json!({"secretRef": {"name": "db", "key": "password"}}),
    )
    .await;
    let first = wait_shared(&client, &ns, "handoff").await;
    assert_eq!(reshare_token(&first), None);
    assert_eq!(open_link(&server, &first).await, "hunter2");
    wait_for(&client, &ns, "handoff", "phase Received", |o| {
        phase(o) == "Received"
    })
    .await;

    annotate(&client, &ns, "handoff", "2026-11-30T00:00:00Z").await;
    let reissued = wait_reissued(&client, &ns, "handoff", "2026-11-30T00:00:00Z").await;
    assert_ne!(metadata_key(&reissued), metadata_key(&first));
    let note = wait_event(&client, &ns, "handoff", "Normal", "Reshared").await;
    assert!(note.starts_with("reissued on request"), "{note}");
    assert!(!note.contains("was burned"), "{note}");
    assert_eq!(calls(&server, "burn"), 0, "nothing consumed is burned");
    assert_eq!(open_link(&server, &reissued).await, "hunter2");

    // The same value again is no new request: the link stays, no second reissue.
    wait_for(&client, &ns, "handoff", "phase Received", |o| {
        phase(o) == "Received"
    })
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after = shares(&client, &ns).get("handoff").await.expect("get");
    assert_eq!(metadata_key(&after), metadata_key(&reissued));
    assert_eq!(phase(&after), "Received");
    let reshared = events(&client, &ns, "handoff")
        .await
        .into_iter()
        .filter(|(_, reason, _)| reason == "Reshared")
        .count();
    assert_eq!(reshared, 1);
}

#[tokio::test]
async fn a_reissue_of_a_live_link_burns_it_and_shares_anew() {
    let (client, ns) = setup("reissue-live").await;
    let server = ots_server(Config::default());
    let _operator = Operator::start(&ns, &server.url(), &[]);
    create_secret(&client, &ns, "db", &[("password", b"s3cret")]).await;
    create_share(
        &client,
        &ns,
        "handoff",
        json!({"secretRef": {"name": "db", "key": "password"}}),
    )
    .await;
    let first = wait_shared(&client, &ns, "handoff").await;
    let old_link = first.status.as_ref().unwrap().link.clone().unwrap();

    annotate(&client, &ns, "handoff", "1").await;
    let reissued = wait_reissued(&client, &ns, "handoff", "1").await;
    assert_ne!(metadata_key(&reissued), metadata_key(&first));
    let note = wait_event(&client, &ns, "handoff", "Normal", "Reshared").await;
    assert!(note.contains("old link was burned"), "{note}");
    assert_eq!(calls(&server, "burn"), 1);
    assert!(
        reveal(&server, &old_link, None).await.is_err(),
        "the old link no longer reveals anything"
    );
    assert!(
        !server
            .live_receipts()
            .iter()
            .any(|r| r.metadata_key == metadata_key(&first))
    );
    assert_eq!(open_link(&server, &reissued).await, "s3cret");
}

#[tokio::test]
async fn a_reissue_after_the_link_expired_shares_anew() {
    let (client, ns) = setup("reissue-expired").await;
    let server = ots_server(Config::default());
    let _operator = Operator::start(&ns, &server.url(), &[]);
    create_secret(&client, &ns, "db", &[("password", b"later")]).await;
    create_share(
        &client,
        &ns,
        "handoff",
        json!({"secretRef": {"name": "db", "key": "password"}, "ttl": "60s"}),
    )
    .await;
    wait_shared(&client, &ns, "handoff").await;
    server.advance_clock(Duration::from_secs(120));
    wait_for(&client, &ns, "handoff", "phase Expired", |o| {
        phase(o) == "Expired"
    })
    .await;

    annotate(&client, &ns, "handoff", "again").await;
    let reissued = wait_reissued(&client, &ns, "handoff", "again").await;
    assert_eq!(calls(&server, "burn"), 0);
    assert_eq!(open_link(&server, &reissued).await, "later");
}
