//! Reissue without renaming on a real control plane: a new value of the `ots.dev/reshare`
//! annotation burns a live link and shares the same spec anew, also after the link was received
//! or expired, and records the value acted on in `status.reshareToken`.

mod support;

use ots_operator::resource::OneTimeShare;
use serde_json::json;
use std::time::Duration;
use support::operator::*;
use support::world::World;

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
    let w = World::start("reissue-received").await;
    w.secret("db", &[("password", b"hunter2")]).await;
    w.share_key("handoff", "db", "password").await;
    let first = w.shared("handoff").await;
    assert_eq!(reshare_token(&first), None);
    assert_eq!(w.reveal(&first).await, "hunter2");
    w.wait_phase("handoff", "Received").await;

    annotate(&w.client, &w.ns, "handoff", "2026-11-30T00:00:00Z").await;
    let reissued = wait_reissued(&w.client, &w.ns, "handoff", "2026-11-30T00:00:00Z").await;
    assert_ne!(metadata_key(&reissued), metadata_key(&first));
    let note = w.wait_event("handoff", "Normal", "Reshared").await;
    assert!(note.starts_with("reissued on request"), "{note}");
    assert!(!note.contains("was burned"), "{note}");
    assert_eq!(w.calls("burn"), 0, "nothing consumed is burned");
    assert_eq!(w.reveal(&reissued).await, "hunter2");

    // The same value again is no new request: the link stays, no second reissue.
    w.wait_phase("handoff", "Received").await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after = w.shares().get("handoff").await.expect("get");
    assert_eq!(metadata_key(&after), metadata_key(&reissued));
    assert_eq!(phase(&after), "Received");
    let reshared = w
        .events("handoff")
        .await
        .into_iter()
        .filter(|(_, reason, _)| reason == "Reshared")
        .count();
    assert_eq!(reshared, 1);
}

#[tokio::test]
async fn a_reissue_of_a_live_link_burns_it_and_shares_anew() {
    let w = World::start("reissue-live").await;
    w.secret("db", &[("password", b"s3cret")]).await;
    w.share_key("handoff", "db", "password").await;
    let first = w.shared("handoff").await;
    let old_link = first.status.as_ref().unwrap().link.clone().unwrap();

    annotate(&w.client, &w.ns, "handoff", "1").await;
    let reissued = wait_reissued(&w.client, &w.ns, "handoff", "1").await;
    assert_ne!(metadata_key(&reissued), metadata_key(&first));
    let note = w.wait_event("handoff", "Normal", "Reshared").await;
    assert!(note.contains("old link was burned"), "{note}");
    assert_eq!(w.calls("burn"), 1);
    assert!(
        w.reveal_link(&old_link, None).await.is_err(),
        "the old link no longer reveals anything"
    );
    assert!(
        !w.server
            .live_receipts()
            .iter()
            .any(|r| r.metadata_key == metadata_key(&first))
    );
    assert_eq!(w.reveal(&reissued).await, "s3cret");
}

#[tokio::test]
async fn a_reissue_after_the_link_expired_shares_anew() {
    let w = World::start("reissue-expired").await;
    w.secret("db", &[("password", b"later")]).await;
    w.share(
        "handoff",
        json!({"secretRef": {"name": "db", "key": "password"}, "ttl": "60s"}),
    )
    .await;
    w.shared("handoff").await;
    w.server.advance_clock(Duration::from_secs(120));
    w.wait_phase("handoff", "Expired").await;

    annotate(&w.client, &w.ns, "handoff", "again").await;
    let reissued = wait_reissued(&w.client, &w.ns, "handoff", "again").await;
    assert_eq!(w.calls("burn"), 0);
    assert_eq!(w.reveal(&reissued).await, "later");
}
