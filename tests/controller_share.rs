//! The product story on a real control plane: a Secret is shared once, its link reveals exactly
//! the Secret's value, its state is tracked, and deletion burns it.

mod support;

use ots_operator::ots::OtsError;
use ots_testserver::{Account, Config};
use serde_json::json;
use support::operator::*;
use support::world::World;

#[tokio::test]
async fn a_single_key_is_shared_and_its_link_reveals_exactly_that_value() {
    let w = World::start("single-key").await;
    w.secret("db", &[("password", b"s3cr3t pa55\n"), ("user", b"alice")])
        .await;
    w.share(
        "for-alice",
        json!({"secretRef": {"name": "db", "key": "password"}, "ttl": "1h"}),
    )
    .await;

    let shared = w.shared("for-alice").await;
    let status = shared.status.clone().unwrap();
    assert_eq!(ready(&shared).unwrap().0, "True");
    assert_eq!(ready(&shared).unwrap().1, "Shared");
    let link = status.link.clone().unwrap();
    assert!(
        link.starts_with(&format!("{}/secret/", w.server.url())),
        "{link}"
    );
    assert!(
        status
            .metadata_key
            .as_deref()
            .is_some_and(|k| !k.is_empty())
    );
    assert_eq!(
        status.metadata_link.as_deref(),
        Some(
            format!(
                "{}/receipt/{}",
                w.server.url(),
                status.metadata_key.clone().unwrap()
            )
            .as_str()
        )
    );
    assert_eq!(status.secret_state.as_deref(), Some("new"));
    assert_eq!(status.ttl_seconds, Some(3600));
    assert_eq!(status.passphrase_protected, Some(false));
    assert!(status.source_resource_version.is_some());
    assert_eq!(status.observed_generation, Some(1));
    let expires =
        status.expires_at.unwrap().0.as_second() - status.shared_at.unwrap().0.as_second();
    assert_eq!(expires, 3600);
    assert_eq!(w.calls("share"), 1, "exactly one share call");

    assert_eq!(w.reveal_link(&link, None).await.unwrap(), "s3cr3t pa55\n");
    assert_eq!(
        w.reveal_link(&link, None).await,
        Err(OtsError::NotFound),
        "a link opens once"
    );

    let received = w.wait_phase("for-alice", "Received").await;
    let status = received.status.unwrap();
    assert_eq!(status.secret_state.as_deref(), Some("received"));
    assert!(status.received_at.is_some());
    w.wait_event("for-alice", "Normal", "Shared").await;
    w.wait_event("for-alice", "Normal", "Received").await;

    // A received link has nothing left to burn: deletion just lets go.
    w.delete_share("for-alice").await;
    w.wait_gone("for-alice").await;
    assert_eq!(w.calls("burn"), 0);
    assert_eq!(w.calls("share"), 1, "never shared twice");
}

#[tokio::test]
async fn without_a_key_every_key_is_shared_as_sorted_lines() {
    let w = World::start("all-keys").await;
    w.secret(
        "db",
        &[
            ("user", b"alice"),
            ("host", b"db.example:5432"),
            ("password", b"pw"),
        ],
    )
    .await;
    w.share("all", json!({"secretRef": {"name": "db"}})).await;
    let shared = w.shared("all").await;
    let link = shared.status.unwrap().link.unwrap();
    assert_eq!(
        w.reveal_link(&link, None).await.unwrap(),
        "host=db.example:5432\npassword=pw\nuser=alice"
    );
}

#[tokio::test]
async fn deleting_an_unread_share_burns_it() {
    let w = World::start("burn").await;
    w.secret("db", &[("password", b"burn-me")]).await;
    w.share_key("unread", "db", "password").await;
    let shared = w.shared("unread").await;
    assert!(
        shared
            .metadata
            .finalizers
            .unwrap_or_default()
            .contains(&"ots.dev/burn".to_owned())
    );
    let link = shared.status.unwrap().link.unwrap();
    assert_eq!(w.server.stats().live_secrets, 1);

    w.delete_share("unread").await;
    w.wait_gone("unread").await;
    assert_eq!(
        w.server.stats().live_secrets,
        0,
        "the unread secret was burned"
    );
    assert_eq!(w.calls("burn"), 1);
    assert_eq!(w.reveal_link(&link, None).await, Err(OtsError::NotFound));
}

#[tokio::test]
async fn with_deletion_policy_keep_the_link_outlives_the_resource() {
    let w = World::start("keep").await;
    w.secret("db", &[("password", b"keep-me")]).await;
    w.share(
        "kept",
        json!({"secretRef": {"name": "db", "key": "password"}, "deletionPolicy": "Keep"}),
    )
    .await;
    let shared = w.shared("kept").await;
    assert!(
        shared.metadata.finalizers.unwrap_or_default().is_empty(),
        "Keep adds no finalizer"
    );
    let link = shared.status.unwrap().link.unwrap();

    w.delete_share("kept").await;
    w.wait_gone("kept").await;
    assert_eq!(w.calls("burn"), 0);
    assert_eq!(w.reveal_link(&link, None).await.unwrap(), "keep-me");
}

#[tokio::test]
async fn a_passphrase_gates_the_link_and_is_used_to_burn_it() {
    let w = World::start("passphrase").await;
    w.secret("db", &[("password", b"gated")]).await;
    w.secret("phrases", &[("alice", b"correct horse")]).await;
    let spec = json!({
        "secretRef": {"name": "db", "key": "password"},
        "passphraseSecretRef": {"name": "phrases", "key": "alice"}
    });
    w.share("gated", spec.clone()).await;
    let shared = w.shared("gated").await;
    let status = shared.status.unwrap();
    assert_eq!(status.passphrase_protected, Some(true));
    let link = status.link.unwrap();
    assert_eq!(
        w.reveal_link(&link, None).await,
        Err(OtsError::NotFound),
        "no passphrase, no secret"
    );
    assert_eq!(
        w.reveal_link(&link, Some("wrong one")).await,
        Err(OtsError::NotFound)
    );
    assert_eq!(
        w.reveal_link(&link, Some("correct horse")).await.unwrap(),
        "gated"
    );

    // A second, unread share is burned on deletion, which needs the passphrase.
    w.share("gated-2", spec).await;
    w.shared("gated-2").await;
    assert_eq!(w.server.stats().live_secrets, 1);
    w.delete_share("gated-2").await;
    w.wait_gone("gated-2").await;
    assert_eq!(
        w.server.stats().live_secrets,
        0,
        "burned with the passphrase"
    );
}

#[tokio::test]
async fn on_secret_change_reshare_burns_the_old_link_and_shares_the_new_value() {
    let w = World::start("reshare").await;
    w.secret("db", &[("password", b"old-value")]).await;
    w.secret("other", &[("password", b"other-old")]).await;
    w.share(
        "rotating",
        json!({"secretRef": {"name": "db", "key": "password"}, "onSecretChange": "Reshare"}),
    )
    .await;
    w.share_key("steady", "other", "password").await;
    let first = w.shared("rotating").await.status.unwrap();
    let steady = w.shared("steady").await.status.unwrap();

    w.update_secret("db", &[("password", b"new-value")]).await;
    w.update_secret("other", &[("password", b"other-new")])
        .await;
    let second = w
        .wait_for("rotating", "a new link", |o| {
            o.status.as_ref().and_then(|s| s.link.clone()) != first.link && phase(o) == "Shared"
        })
        .await
        .status
        .unwrap();
    assert_ne!(second.metadata_key, first.metadata_key);
    assert_ne!(
        second.source_resource_version,
        first.source_resource_version
    );
    assert_eq!(
        w.reveal_link(first.link.as_ref().unwrap(), None).await,
        Err(OtsError::NotFound),
        "the old link was burned"
    );
    assert_eq!(
        w.reveal_link(second.link.as_ref().unwrap(), None)
            .await
            .unwrap(),
        "new-value"
    );
    w.wait_event("rotating", "Normal", "Reshared").await;

    // onSecretChange: Ignore (the default) keeps the first link and value.
    let now = w.shares().get("steady").await.unwrap().status.unwrap();
    assert_eq!(now.link, steady.link);
    assert_eq!(
        w.reveal_link(steady.link.as_ref().unwrap(), None)
            .await
            .unwrap(),
        "other-old"
    );
}

#[tokio::test]
async fn a_clamped_lifetime_is_reported_in_the_condition_and_an_event() {
    // Anonymous users get at most 7 days; ask for 30.
    let w = World::start("clamp").await;
    w.secret("db", &[("password", b"x-value")]).await;
    w.share(
        "long",
        json!({"secretRef": {"name": "db", "key": "password"}, "ttl": "30d"}),
    )
    .await;
    let shared = w.shared("long").await;
    assert_eq!(shared.status.as_ref().unwrap().ttl_seconds, Some(7 * 86400));
    let (_, _, message) = ready(&shared).unwrap();
    assert!(message.contains("7d instead of the 30d"), "{message}");
    let note = w.wait_event("long", "Warning", "TtlClamped").await;
    assert!(note.contains("7d instead of the 30d"), "{note}");
}

#[tokio::test]
async fn per_resource_credentials_authenticate_and_a_recipient_is_sent() {
    let w = World::with(
        "credentials",
        Config {
            accounts: vec![Account::new("ops@example.com", "tok-123456")],
            ..Config::default()
        },
        &[],
    )
    .await;
    w.secret("db", &[("password", b"for-bob")]).await;
    w.secret(
        "ots-credentials",
        &[
            ("username", b"ops@example.com"),
            ("apiToken", b"tok-123456"),
        ],
    )
    .await;
    w.share(
        "emailed",
        json!({
            "secretRef": {"name": "db", "key": "password"},
            "recipient": "bob@example.com",
            "server": {"url": w.server.url(), "credentialsSecretRef": {"name": "ots-credentials"}}
        }),
    )
    .await;
    let shared = w.shared("emailed").await;
    assert_eq!(w.reveal(&shared).await, "for-bob");
}

#[tokio::test]
async fn an_unread_link_that_expires_turns_expired_and_polling_stops() {
    let w = World::start("expiry").await;
    w.secret("db", &[("password", b"short-lived")]).await;
    w.share(
        "brief",
        json!({"secretRef": {"name": "db", "key": "password"}, "ttl": "60s"}),
    )
    .await;
    let shared = w.shared("brief").await;
    assert_eq!(shared.status.as_ref().unwrap().ttl_seconds, Some(60));

    w.server.advance_clock(std::time::Duration::from_secs(61));
    let expired = w.wait_phase("brief", "Expired").await;
    assert_eq!(
        expired.status.as_ref().unwrap().secret_state.as_deref(),
        Some("expired")
    );
    let (status, reason, _) = ready(&expired).unwrap();
    assert_eq!((status.as_str(), reason.as_str()), ("False", "Expired"));
    w.wait_event("brief", "Warning", "Expired").await;

    // A final state is never polled again.
    let polled = w.calls("receipt");
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    assert_eq!(w.calls("receipt"), polled, "no polling after a final state");
    // Deleting it has nothing to burn.
    w.delete_share("brief").await;
    w.wait_gone("brief").await;
    assert_eq!(w.calls("burn"), 0);
}
