//! Standing hand-offs (`onExpiry: Reshare` with `maxShares`) on a real control plane: a link that
//! expires unread is replaced by a new one up to maxShares links in a row, then the share stays
//! Expired; a received link is never reshared. And the reissue token is decided on the
//! operator's record: a tenant writing `status.reshareToken` can neither trigger nor suppress a
//! reissue.

mod support;

use kube::api::{Patch, PatchParams};
use ots_operator::resource::{OneTimeShare, RESHARE_ANNOTATION};
use ots_testserver::Config;
use serde_json::json;
use std::time::Duration;
use support::operator::*;
use support::world::World;

fn renewed_events(all: &[(String, String, String)]) -> usize {
    all.iter()
        .filter(|(_, reason, _)| reason == "Renewed")
        .count()
}

#[tokio::test]
async fn an_expired_unread_link_is_reshared_up_to_max_shares_then_stays_expired() {
    let w = World::start("on-expiry").await;
    let (client, ns, server) = (&w.client, &w.ns, &w.server);
    let first = w
        .shared_db(
            "handoff",
            b"standing",
            json!({"ttl": "60s", "onExpiry": "Reshare", "maxShares": 3}),
        )
        .await;
    let mut seen = vec![metadata_key(&first)];
    for made in 2..=3 {
        server.advance_clock(Duration::from_secs(120));
        let renewed = wait_for(client, ns, "handoff", "a new live link", |o| {
            phase(o) == "Shared"
                && o.status
                    .as_ref()
                    .and_then(|s| s.metadata_key.as_ref())
                    .is_some_and(|k| !seen.contains(k))
        })
        .await;
        seen.push(metadata_key(&renewed));
        assert_eq!(calls(server, "share"), made);
        let note = wait_event(client, ns, "handoff", "Normal", "Renewed").await;
        assert!(note.contains("expired unread"), "{note}");
    }
    // The third link may be opened: it holds the value.
    let third = shares(client, ns).get("handoff").await.expect("get");
    assert_eq!(metadata_key(&third), seen[2]);

    server.advance_clock(Duration::from_secs(120));
    let expired = wait_for(client, ns, "handoff", "Expired at the bound", |o| {
        phase(o) == "Expired" && ready(o).is_some_and(|(_, _, m)| m.contains("maxShares (3)"))
    })
    .await;
    let (ready_status, reason, _) = ready(&expired).expect("Ready");
    assert_eq!(
        (ready_status.as_str(), reason.as_str()),
        ("False", "Expired")
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = shares(client, ns).get("handoff").await.expect("get");
    assert_eq!(phase(&after), "Expired");
    assert_eq!(metadata_key(&after), seen[2]);
    assert_eq!(calls(server, "share"), 3, "no fourth link");
    assert_eq!(renewed_events(&events(client, ns, "handoff").await), 2);
    assert_eq!(calls(server, "burn"), 0, "nothing expired needs a burn");
}

#[tokio::test]
async fn a_renewed_link_reveals_the_value_and_a_received_link_is_never_reshared() {
    let w = World::start("on-expiry-received").await;
    let (client, ns, server) = (&w.client, &w.ns, &w.server);
    let first = w
        .shared_db(
            "handoff",
            b"opened",
            json!({"ttl": "60s", "onExpiry": "Reshare"}),
        )
        .await;
    server.advance_clock(Duration::from_secs(120));
    let renewed = wait_for(client, ns, "handoff", "a renewed link", |o| {
        phase(o) == "Shared" && metadata_key(o) != metadata_key(&first)
    })
    .await;
    assert_eq!(open_link(server, &renewed).await, "opened");
    wait_for(client, ns, "handoff", "phase Received", |o| {
        phase(o) == "Received"
    })
    .await;

    // Past the received link's lifetime: it stays received, nothing is shared again.
    server.advance_clock(Duration::from_secs(120));
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = shares(client, ns).get("handoff").await.expect("get");
    assert_eq!(phase(&after), "Received");
    assert_eq!(metadata_key(&after), metadata_key(&renewed));
    assert_eq!(calls(server, "share"), 2);
}

#[tokio::test]
async fn max_shares_applies_only_with_on_expiry_reshare_and_is_bounded() {
    let (client, ns) = setup("on-expiry-cel").await;
    install_crd();
    let api = shares(&client, &ns);
    for (spec, expected) in [
        (
            json!({"secretRef": {"name": "db"}, "maxShares": 3}),
            "maxShares only applies with onExpiry: Reshare",
        ),
        (
            json!({"secretRef": {"name": "db"}, "onExpiry": "Reshare", "maxShares": 101}),
            "maxShares",
        ),
        (
            json!({"secretRef": {"name": "db"}, "onExpiry": "Reshare", "maxShares": 0}),
            "maxShares",
        ),
    ] {
        let share: OneTimeShare = serde_json::from_value(json!({
            "apiVersion": "ots.dev/v1alpha1", "kind": "OneTimeShare",
            "metadata": {"name": "refused"}, "spec": spec,
        }))
        .unwrap_or_else(|_| panic!("{spec}"));
        let error = api
            .create(&Default::default(), &share)
            .await
            .expect_err("refused");
        assert!(error.to_string().contains(expected), "{spec}: {error}");
    }
}

/// Writes `status.reshareToken` as a tenant allowed to patch `onetimeshares/status` could.
async fn forge_token(client: &kube::Client, ns: &str, name: &str, token: &str) {
    shares(client, ns)
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"reshareToken": token}})),
        )
        .await
        .expect("patch the status");
}

#[tokio::test]
async fn a_tenant_writing_status_reshare_token_can_neither_trigger_nor_suppress_a_reissue() {
    let (client, ns) = setup("reshare-token").await;
    let server = ots_server(Config::default());
    let mut operator = Operator::start(&ns, &server.url(), &[]);
    create_secret(&client, &ns, "db", &[("password", b"tokens")]).await;
    let share: OneTimeShare = serde_json::from_value(json!({
        "apiVersion": "ots.dev/v1alpha1", "kind": "OneTimeShare",
        "metadata": {"name": "handoff", "annotations": {RESHARE_ANNOTATION: "a"}},
        "spec": {"secretRef": {"name": "db", "key": "password"}},
    }))
    .expect("a OneTimeShare");
    shares(&client, &ns)
        .create(&Default::default(), &share)
        .await
        .expect("create");
    let first = wait_for(&client, &ns, "handoff", "the link for token a", |o| {
        phase(o) == "Shared"
            && o.status.as_ref().and_then(|s| s.reshare_token.as_deref()) == Some("a")
    })
    .await;
    assert_eq!(calls(&server, "share"), 1);

    // Trigger: a forged token that differs from the annotation makes no new link.
    forge_token(&client, &ns, "handoff", "forged").await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = shares(&client, &ns).get("handoff").await.expect("get");
    assert_eq!(metadata_key(&after), metadata_key(&first));
    assert_eq!(calls(&server, "share"), 1, "no reissue");
    assert_eq!(calls(&server, "burn"), 0);
    // Status reports the token the link was made for again.
    wait_for(
        &client,
        &ns,
        "handoff",
        "the reported token restored",
        |o| o.status.as_ref().and_then(|s| s.reshare_token.as_deref()) == Some("a"),
    )
    .await;

    // Suppress: while the operator is down, status is made to claim the new value is done.
    operator.kill();
    annotate(&client, &ns, "handoff", "b").await;
    forge_token(&client, &ns, "handoff", "b").await;
    let _operator = Operator::start(&ns, &server.url(), &[]);
    let reissued = wait_for(&client, &ns, "handoff", "a new link for token b", |o| {
        phase(o) == "Shared" && metadata_key(o) != metadata_key(&first)
    })
    .await;
    assert_eq!(
        reissued
            .status
            .as_ref()
            .and_then(|s| s.reshare_token.as_deref()),
        Some("b")
    );
    assert_eq!(calls(&server, "burn"), 1, "the old link was burned");
    assert_eq!(open_link(&server, &reissued).await, "tokens");
}

#[tokio::test]
async fn a_live_link_marked_expired_in_status_by_someone_else_is_not_renewed_but_tracked_again() {
    let (client, ns) = setup("on-expiry-forged").await;
    let server = ots_server(Config::default());
    let _operator = Operator::start(&ns, &server.url(), &[]);
    create_secret(&client, &ns, "db", &[("password", b"live")]).await;
    create_share(
        &client,
        &ns,
        "handoff",
        json!({
            "secretRef": {"name": "db", "key": "password"},
            "onExpiry": "Reshare",
        }),
    )
    .await;
    let first = wait_shared(&client, &ns, "handoff").await;
    shares(&client, &ns)
        .patch_status(
            "handoff",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Expired", "secretState": "expired"}})),
        )
        .await
        .expect("patch the status");
    // Expired until the operator corrects it from the receipt: Shared again, the same link.
    let corrected = wait_shared(&client, &ns, "handoff").await;
    assert_eq!(metadata_key(&corrected), metadata_key(&first));
    assert_eq!(calls(&server, "share"), 1, "no renewal on status's word");
    assert_eq!(open_link(&server, &corrected).await, "live");
}
