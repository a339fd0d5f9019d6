//! Burn without deleting, on a real control plane with the OTS test server: a new value of the
//! `ots.dev/burn` annotation burns a live link on the server (Burned, Stalled, an Event), stays
//! burned until a new `ots.dev/reshare` value reissues it, is acted on once (also across an
//! operator restart), calls no server for a link that is no longer live, and goes first when a
//! reissue is asked for at the same time. What Argo CD's `burn` action sets.

mod support;

use ots_operator::resource::OneTimeShare;
use serde_json::json;
use std::time::Duration;
use support::operator::*;
use support::world::World;

fn burn_token(obj: &OneTimeShare) -> Option<String> {
    obj.status.as_ref().and_then(|s| s.burn_token.clone())
}

fn link(obj: &OneTimeShare) -> String {
    obj.status
        .as_ref()
        .and_then(|s| s.link.clone())
        .expect("a link in status")
}

/// The status of condition `kind`, with its reason (`None` when absent).
fn condition(obj: &OneTimeShare, kind: &str) -> Option<(String, String)> {
    obj.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == kind)
        .map(|c| (c.status.clone(), c.reason.clone()))
}

/// Merge-patches the share's annotations, as `kubectl annotate` or Argo CD's action would.
async fn set_annotations(w: &World, name: &str, annotations: serde_json::Value) {
    w.shares()
        .patch(
            name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"metadata": {"annotations": annotations}})),
        )
        .await
        .expect("annotate the OneTimeShare");
}

#[tokio::test]
async fn a_burn_annotation_burns_the_live_link_and_the_share_stays_burned_until_reissued() {
    let mut w = World::start("burn-live").await;
    w.secret("db", &[("password", b"burn-me-not")]).await;
    w.share_key("handoff", "db", "password").await;
    let first = w.shared("handoff").await;
    let old_link = link(&first);
    let old_key = metadata_key(&first);

    set_annotations(
        &w,
        "handoff",
        json!({"ots.dev/burn": "2026-12-05T06:30:00Z"}),
    )
    .await;
    let burned = w
        .wait_for("handoff", "burned on request", |o| {
            phase(o) == "Burned" && burn_token(o).as_deref() == Some("2026-12-05T06:30:00Z")
        })
        .await;
    assert_eq!(w.calls("burn"), 1, "one burn call");
    assert!(
        !w.server
            .live_receipts()
            .iter()
            .any(|r| r.metadata_key == old_key),
        "the server no longer holds the secret"
    );
    assert!(
        w.reveal_link(&old_link, None).await.is_err(),
        "the old link reveals nothing"
    );
    assert_eq!(
        condition(&burned, "Ready"),
        Some(("False".into(), "Burned".into()))
    );
    assert_eq!(
        condition(&burned, "Stalled"),
        Some(("True".into(), "Burned".into()))
    );
    assert_eq!(condition(&burned, "Reconciling"), None);
    let note = w.wait_event("handoff", "Normal", "Burned").await;
    assert!(note.contains("burned on request"), "{note}");

    // The same value again (a reconcile for another reason) is no new request; nothing is
    // shared either: the share stays burned.
    set_annotations(&w, "handoff", json!({"team": "a"})).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after = w.shares().get("handoff").await.expect("get");
    assert_eq!(phase(&after), "Burned");
    assert_eq!(w.calls("burn"), 1, "the same value burns nothing again");
    assert_eq!(w.calls("share"), 1, "no new link without a reissue");

    // A restarted operator knows the value was acted on (the record says so).
    let mut logs = w.operator.logs();
    w.operator.kill();
    w.operator = support::operator::Operator::start(&w.ns, &w.server.url(), &[]);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(w.calls("burn"), 1, "no burn after a restart");
    let events = w.events("handoff").await;
    assert!(
        !events
            .iter()
            .any(|(_, _, note)| note.contains("nothing to burn")),
        "the value is not taken for a new one after a restart: {events:?}"
    );
    assert_eq!(
        burn_token(&w.shares().get("handoff").await.expect("get")).as_deref(),
        Some("2026-12-05T06:30:00Z")
    );

    // A reissue gives a new working link, and the burn value (still there) does not burn it,
    // neither now nor after another restart.
    annotate(&w.client, &w.ns, "handoff", "r1").await;
    let reissued = w
        .wait_for("handoff", "reissued", |o| {
            phase(o) == "Shared"
                && o.status.as_ref().and_then(|s| s.reshare_token.as_deref()) == Some("r1")
        })
        .await;
    assert_ne!(metadata_key(&reissued), old_key);
    logs.push_str(&w.operator.logs());
    w.operator.kill();
    w.operator = support::operator::Operator::start(&w.ns, &w.server.url(), &[]);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        phase(&w.shares().get("handoff").await.expect("get")),
        "Shared"
    );
    assert_eq!(w.calls("burn"), 1, "the reissued link is not burned");
    assert_eq!(w.reveal(&reissued).await, "burn-me-not");

    // No link or metadata key in Events or in the operator's logs.
    let new_link = link(&reissued);
    let new_key = metadata_key(&reissued);
    let events = format!("{:?}", w.events("handoff").await);
    logs.push_str(&w.operator.logs());
    assert!(
        logs.contains("burned the link on request"),
        "the burn is logged"
    );
    for secret in [&old_link, &old_key, &new_link, &new_key] {
        assert!(
            !events.contains(secret.as_str()),
            "an Event holds a capability"
        );
        assert!(
            !logs.contains(secret.as_str()),
            "the logs hold a capability"
        );
    }
}

#[tokio::test]
async fn a_burn_of_a_received_share_calls_no_server_and_says_so() {
    let w = World::start("burn-received").await;
    w.secret("db", &[("password", b"opened")]).await;
    w.share_key("handoff", "db", "password").await;
    let first = w.shared("handoff").await;
    assert_eq!(w.reveal(&first).await, "opened");
    w.wait_phase("handoff", "Received").await;
    let before = w.server.requests().len();

    set_annotations(&w, "handoff", json!({"ots.dev/burn": "b1"})).await;
    let after = w
        .wait_for("handoff", "the burn value recorded", |o| {
            burn_token(o).as_deref() == Some("b1")
        })
        .await;
    assert_eq!(phase(&after), "Received", "the phase stays the truth");
    assert_eq!(
        condition(&after, "Ready"),
        Some(("True".into(), "Received".into()))
    );
    let note = w.wait_event("handoff", "Normal", "Burned").await;
    assert!(note.contains("nothing to burn"), "{note}");
    assert_eq!(w.calls("burn"), 0);
    assert_eq!(
        w.server.requests().len(),
        before,
        "no server call for a link that is no longer live"
    );
}

#[tokio::test]
async fn a_burn_and_a_reissue_at_once_burn_first_then_reissue() {
    let w = World::start("burn-and-reissue").await;
    w.secret("db", &[("password", b"both")]).await;
    w.share_key("handoff", "db", "password").await;
    let first = w.shared("handoff").await;
    let old_link = link(&first);

    set_annotations(
        &w,
        "handoff",
        json!({"ots.dev/burn": "b1", "ots.dev/reshare": "r1"}),
    )
    .await;
    let reissued = w
        .wait_for("handoff", "burned and reissued", |o| {
            phase(o) == "Shared"
                && burn_token(o).as_deref() == Some("b1")
                && o.status.as_ref().and_then(|s| s.reshare_token.as_deref()) == Some("r1")
        })
        .await;
    assert_ne!(metadata_key(&reissued), metadata_key(&first));
    assert_eq!(w.calls("burn"), 1, "the old link was burned once");
    assert!(w.reveal_link(&old_link, None).await.is_err());
    let burned = w.wait_event("handoff", "Normal", "Burned").await;
    assert!(burned.contains("burned on request"), "{burned}");
    let reshared = w.wait_event("handoff", "Normal", "Reshared").await;
    assert!(reshared.starts_with("reissued on request"), "{reshared}");
    assert_eq!(w.reveal(&reissued).await, "both");
}

#[tokio::test]
async fn a_burned_standing_hand_off_is_not_renewed() {
    let w = World::start("burn-on-expiry").await;
    w.secret("db", &[("password", b"standing")]).await;
    w.share(
        "handoff",
        json!({"secretRef": {"name": "db", "key": "password"}, "ttl": "60s",
               "onExpiry": "Reshare", "maxShares": 1}),
    )
    .await;
    w.shared("handoff").await;
    w.server.advance_clock(Duration::from_secs(120));
    w.wait_for("handoff", "Expired at maxShares", |o| {
        phase(o) == "Expired" && condition(o, "Stalled").is_some()
    })
    .await;

    set_annotations(&w, "handoff", json!({"ots.dev/burn": "stop"})).await;
    w.wait_for("handoff", "burned on request", |o| {
        phase(o) == "Burned" && burn_token(o).as_deref() == Some("stop")
    })
    .await;
    assert_eq!(w.calls("burn"), 0, "an expired link needs no burn call");

    // Raising maxShares would renew an Expired share; a burned one stays without a link.
    w.shares()
        .patch(
            "handoff",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"spec": {"maxShares": 3}})),
        )
        .await
        .expect("raise maxShares");
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        phase(&w.shares().get("handoff").await.expect("get")),
        "Burned"
    );
    assert_eq!(w.calls("share"), 1, "no renewal after the burn");
}
