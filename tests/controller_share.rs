//! The product story on a real control plane: a Secret is shared once, its link reveals exactly
//! the Secret's value, its state is tracked, and deletion burns it.

mod support;

use ots_operator::ots::OtsError;
use ots_testserver::{Account, Config};
use serde_json::json;
use support::operator::*;

#[tokio::test]
async fn a_single_key_is_shared_and_its_link_reveals_exactly_that_value() {
    let (client, ns) = setup("single-key").await;
    let server = ots_server(Config::default());
    let _operator = Operator::start(&ns, &server.url(), &[]);
    create_secret(
        &client,
        &ns,
        "db",
        &[("password", b"s3cr3t pa55\n"), ("user", b"alice")],
    )
    .await;
    create_share(
        &client,
        &ns,
        "for-alice",
        json!({"secretRef": {"name": "db", "key": "password"}, "ttl": "1h"}),
    )
    .await;

    let shared = wait_shared(&client, &ns, "for-alice").await;
    let status = shared.status.clone().unwrap();
    assert_eq!(ready(&shared).unwrap().0, "True");
    assert_eq!(ready(&shared).unwrap().1, "Shared");
    let link = status.link.clone().unwrap();
    assert!(
        link.starts_with(&format!("{}/secret/", server.url())),
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
                server.url(),
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
    assert_eq!(calls(&server, "share"), 1, "exactly one share call");

    assert_eq!(reveal(&server, &link, None).await.unwrap(), "s3cr3t pa55\n");
    assert_eq!(
        reveal(&server, &link, None).await,
        Err(OtsError::NotFound),
        "a link opens once"
    );

    let received = wait_for(&client, &ns, "for-alice", "phase Received", |o| {
        phase(o) == "Received"
    })
    .await;
    let status = received.status.unwrap();
    assert_eq!(status.secret_state.as_deref(), Some("received"));
    assert!(status.received_at.is_some());
    wait_event(&client, &ns, "for-alice", "Normal", "Shared").await;
    wait_event(&client, &ns, "for-alice", "Normal", "Received").await;

    // A received link has nothing left to burn: deletion just lets go.
    delete_share(&client, &ns, "for-alice").await;
    wait_gone(&client, &ns, "for-alice").await;
    assert_eq!(calls(&server, "burn"), 0);
    assert_eq!(calls(&server, "share"), 1, "never shared twice");
}

#[tokio::test]
async fn without_a_key_every_key_is_shared_as_sorted_lines() {
    let (client, ns) = setup("all-keys").await;
    let server = ots_server(Config::default());
    let _operator = Operator::start(&ns, &server.url(), &[]);
    create_secret(
        &client,
        &ns,
        "db",
        &[
            ("user", b"alice"),
            ("host", b"db.example:5432"),
            ("password", b"pw"),
        ],
    )
    .await;
    create_share(&client, &ns, "all", json!({"secretRef": {"name": "db"}})).await;
    let shared = wait_shared(&client, &ns, "all").await;
    let link = shared.status.unwrap().link.unwrap();
    assert_eq!(
        reveal(&server, &link, None).await.unwrap(),
        "host=db.example:5432\npassword=pw\nuser=alice"
    );
}

#[tokio::test]
async fn deleting_an_unread_share_burns_it() {
    let (client, ns) = setup("burn").await;
    let server = ots_server(Config::default());
    let _operator = Operator::start(&ns, &server.url(), &[]);
    create_secret(&client, &ns, "db", &[("password", b"burn-me")]).await;
    create_share(
        &client,
        &ns,
        "unread",
        json!({"secretRef": {"name": "db", "key": "password"}}),
    )
    .await;
    let shared = wait_shared(&client, &ns, "unread").await;
    assert!(
        shared
            .metadata
            .finalizers
            .unwrap_or_default()
            .contains(&"ots.dev/burn".to_owned())
    );
    let link = shared.status.unwrap().link.unwrap();
    assert_eq!(server.stats().live_secrets, 1);

    delete_share(&client, &ns, "unread").await;
    wait_gone(&client, &ns, "unread").await;
    assert_eq!(
        server.stats().live_secrets,
        0,
        "the unread secret was burned"
    );
    assert_eq!(calls(&server, "burn"), 1);
    assert_eq!(reveal(&server, &link, None).await, Err(OtsError::NotFound));
}

#[tokio::test]
async fn with_deletion_policy_keep_the_link_outlives_the_resource() {
    let (client, ns) = setup("keep").await;
    let server = ots_server(Config::default());
    let _operator = Operator::start(&ns, &server.url(), &[]);
    create_secret(&client, &ns, "db", &[("password", b"keep-me")]).await;
    create_share(
        &client,
        &ns,
        "kept",
        json!({"secretRef": {"name": "db", "key": "password"}, "deletionPolicy": "Keep"}),
    )
    .await;
    let shared = wait_shared(&client, &ns, "kept").await;
    assert!(
        shared.metadata.finalizers.unwrap_or_default().is_empty(),
        "Keep adds no finalizer"
    );
    let link = shared.status.unwrap().link.unwrap();

    delete_share(&client, &ns, "kept").await;
    wait_gone(&client, &ns, "kept").await;
    assert_eq!(calls(&server, "burn"), 0);
    assert_eq!(reveal(&server, &link, None).await.unwrap(), "keep-me");
}

#[tokio::test]
async fn a_passphrase_gates_the_link_and_is_used_to_burn_it() {
    let (client, ns) = setup("passphrase").await;
    let server = ots_server(Config::default());
    let _operator = Operator::start(&ns, &server.url(), &[]);
    create_secret(&client, &ns, "db", &[("password", b"gated")]).await;
    create_secret(&client, &ns, "phrases", &[("alice", b"correct horse")]).await;
    let spec = json!({
        "secretRef": {"name": "db", "key": "password"},
        "passphraseSecretRef": {"name": "phrases", "key": "alice"}
    });
    create_share(&client, &ns, "gated", spec.clone()).await;
    let shared = wait_shared(&client, &ns, "gated").await;
    let status = shared.status.unwrap();
    assert_eq!(status.passphrase_protected, Some(true));
    let link = status.link.unwrap();
    assert_eq!(
        reveal(&server, &link, None).await,
        Err(OtsError::NotFound),
        "no passphrase, no secret"
    );
    assert_eq!(
        reveal(&server, &link, Some("wrong one")).await,
        Err(OtsError::NotFound)
    );
    assert_eq!(
        reveal(&server, &link, Some("correct horse")).await.unwrap(),
        "gated"
    );

    // A second, unread share is burned on deletion, which needs the passphrase.
    create_share(&client, &ns, "gated-2", spec).await;
    wait_shared(&client, &ns, "gated-2").await;
    assert_eq!(server.stats().live_secrets, 1);
    delete_share(&client, &ns, "gated-2").await;
    wait_gone(&client, &ns, "gated-2").await;
    assert_eq!(server.stats().live_secrets, 0, "burned with the passphrase");
}

#[tokio::test]
async fn on_secret_change_reshare_burns_the_old_link_and_shares_the_new_value() {
    let (client, ns) = setup("reshare").await;
    let server = ots_server(Config::default());
    let _operator = Operator::start(&ns, &server.url(), &[]);
    create_secret(&client, &ns, "db", &[("password", b"old-value")]).await;
    create_secret(&client, &ns, "other", &[("password", b"other-old")]).await;
    create_share(
        &client,
        &ns,
        "rotating",
        json!({"secretRef": {"name": "db", "key": "password"}, "onSecretChange": "Reshare"}),
    )
    .await;
    create_share(
        &client,
        &ns,
        "steady",
        json!({"secretRef": {"name": "other", "key": "password"}}),
    )
    .await;
    let first = wait_shared(&client, &ns, "rotating").await.status.unwrap();
    let steady = wait_shared(&client, &ns, "steady").await.status.unwrap();

    update_secret(&client, &ns, "db", &[("password", b"new-value")]).await;
    update_secret(&client, &ns, "other", &[("password", b"other-new")]).await;
    let second = wait_for(&client, &ns, "rotating", "a new link", |o| {
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
        reveal(&server, first.link.as_ref().unwrap(), None).await,
        Err(OtsError::NotFound),
        "the old link was burned"
    );
    assert_eq!(
        reveal(&server, second.link.as_ref().unwrap(), None)
            .await
            .unwrap(),
        "new-value"
    );
    wait_event(&client, &ns, "rotating", "Normal", "Reshared").await;

    // onSecretChange: Ignore (the default) keeps the first link and value.
    let now = shares(&client, &ns)
        .get("steady")
        .await
        .unwrap()
        .status
        .unwrap();
    assert_eq!(now.link, steady.link);
    assert_eq!(
        reveal(&server, steady.link.as_ref().unwrap(), None)
            .await
            .unwrap(),
        "other-old"
    );
}

#[tokio::test]
async fn a_clamped_lifetime_is_reported_in_the_condition_and_an_event() {
    let (client, ns) = setup("clamp").await;
    // Anonymous users get at most 7 days; ask for 30.
    let server = ots_server(Config::default());
    let _operator = Operator::start(&ns, &server.url(), &[]);
    create_secret(&client, &ns, "db", &[("password", b"x-value")]).await;
    create_share(
        &client,
        &ns,
        "long",
        json!({"secretRef": {"name": "db", "key": "password"}, "ttl": "30d"}),
    )
    .await;
    let shared = wait_shared(&client, &ns, "long").await;
    assert_eq!(shared.status.as_ref().unwrap().ttl_seconds, Some(7 * 86400));
    let (_, _, message) = ready(&shared).unwrap();
    assert!(message.contains("7d instead of the 30d"), "{message}");
    let note = wait_event(&client, &ns, "long", "Warning", "TtlClamped").await;
    assert!(note.contains("7d instead of the 30d"), "{note}");
}

#[tokio::test]
async fn per_resource_credentials_authenticate_and_a_recipient_is_sent() {
    let (client, ns) = setup("credentials").await;
    let server = ots_server(Config {
        accounts: vec![Account::new("ops@example.com", "tok-123456")],
        ..Config::default()
    });
    let _operator = Operator::start(&ns, &server.url(), &[]);
    create_secret(&client, &ns, "db", &[("password", b"for-bob")]).await;
    create_secret(
        &client,
        &ns,
        "ots-credentials",
        &[
            ("username", b"ops@example.com"),
            ("apiToken", b"tok-123456"),
        ],
    )
    .await;
    create_share(
        &client,
        &ns,
        "emailed",
        json!({
            "secretRef": {"name": "db", "key": "password"},
            "recipient": "bob@example.com",
            "server": {"url": server.url(), "credentialsSecretRef": {"name": "ots-credentials"}}
        }),
    )
    .await;
    let shared = wait_shared(&client, &ns, "emailed").await;
    assert_eq!(open_link(&server, &shared).await, "for-bob");
}

#[tokio::test]
async fn an_unread_link_that_expires_turns_expired_and_polling_stops() {
    let (client, ns) = setup("expiry").await;
    let server = ots_server(Config::default());
    let _operator = Operator::start(&ns, &server.url(), &[]);
    create_secret(&client, &ns, "db", &[("password", b"short-lived")]).await;
    create_share(
        &client,
        &ns,
        "brief",
        json!({"secretRef": {"name": "db", "key": "password"}, "ttl": "60s"}),
    )
    .await;
    let shared = wait_shared(&client, &ns, "brief").await;
    assert_eq!(shared.status.as_ref().unwrap().ttl_seconds, Some(60));

    server.advance_clock(std::time::Duration::from_secs(61));
    let expired = wait_for(&client, &ns, "brief", "phase Expired", |o| {
        phase(o) == "Expired"
    })
    .await;
    assert_eq!(
        expired.status.as_ref().unwrap().secret_state.as_deref(),
        Some("expired")
    );
    let (status, reason, _) = ready(&expired).unwrap();
    assert_eq!((status.as_str(), reason.as_str()), ("False", "Expired"));
    wait_event(&client, &ns, "brief", "Warning", "Expired").await;

    // A final state is never polled again.
    let polled = calls(&server, "receipt");
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    assert_eq!(
        calls(&server, "receipt"),
        polled,
        "no polling after a final state"
    );
    // Deleting it has nothing to burn.
    delete_share(&client, &ns, "brief").await;
    wait_gone(&client, &ns, "brief").await;
    assert_eq!(calls(&server, "burn"), 0);
}
