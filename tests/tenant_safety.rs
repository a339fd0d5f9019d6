//! Tenant safety on a real control plane: the operator acts on its own record of each share, never
//! on status alone; burns survive the order of deletion; status never describes Secrets to a
//! share creator that admission did not check; live links per Secret can be bounded.

mod support;

use kube::api::{Patch, PatchParams};
use ots_testserver::{Account, Config};
use serde_json::json;
use std::collections::BTreeSet;
use std::time::Duration;
use support::operator::*;
use support::world::World;

fn metadata_key(obj: &ots_operator::resource::OneTimeShare) -> String {
    obj.status
        .as_ref()
        .and_then(|s| s.metadata_key.clone())
        .expect("a metadata key in status")
}

/// Writes `status` fields as someone allowed to patch `onetimeshares/status` would.
async fn patch_status(client: &kube::Client, ns: &str, name: &str, status: serde_json::Value) {
    shares(client, ns)
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": status })),
        )
        .await
        .expect("patch the status");
}

async fn share_of(client: &kube::Client, ns: &str, name: &str, secret: &str) {
    create_share(
        client,
        ns,
        name,
        json!({"secretRef": {"name": secret, "key": "password"}, "ttl": "1h"}),
    )
    .await;
}

#[tokio::test]
async fn a_forged_metadata_key_never_burns_another_namespaces_secret() {
    let (client, t1) = setup("forge-t1").await;
    let (_, t2) = setup("forge-t2").await;
    let server = ots_server(Config::default());
    let mut args = fast_args(&t1, &server.url());
    args.extend(["--namespace".to_owned(), t2.clone()]);
    let mut operator = Operator::start_with(&args, &[("RUST_LOG", "info")]);
    create_secret(&client, &t1, "db", &[("password", b"tenant-one")]).await;
    create_secret(&client, &t2, "db", &[("password", b"tenant-two")]).await;
    share_of(&client, &t1, "mine", "db").await;
    share_of(&client, &t2, "theirs", "db").await;
    let own_key = metadata_key(&wait_shared(&client, &t1, "mine").await);
    let foreign_key = metadata_key(&wait_shared(&client, &t2, "theirs").await);

    // While the operator runs: the forged status is restored from the operator's record.
    patch_status(&client, &t1, "mine", json!({"metadataKey": foreign_key})).await;
    let restored = wait_for(&client, &t1, "mine", "status restored", |o| {
        o.status.as_ref().and_then(|s| s.metadata_key.as_deref()) == Some(own_key.as_str())
    })
    .await;
    assert_eq!(phase(&restored), "Shared");
    wait_event(&client, &t1, "mine", "Warning", "StatusTampered").await;

    // While the operator is down: forged, then deleted; the operator burns its own link only.
    operator.kill();
    patch_status(&client, &t1, "mine", json!({"metadataKey": foreign_key})).await;
    delete_share(&client, &t1, "mine").await;
    let _operator = Operator::start_with(&args, &[("RUST_LOG", "info")]);
    wait_gone(&client, &t1, "mine").await;
    let live = live_keys(&server);
    assert!(live.contains(&foreign_key), "t2's secret must stay live");
    assert!(!live.contains(&own_key), "t1's own link must be burned");
    assert_eq!(phase(&wait_shared(&client, &t2, "theirs").await), "Shared");
}

#[tokio::test]
async fn wiping_the_status_never_makes_a_second_live_link() {
    let w = World::start("wipe").await;
    w.secret("db", &[("password", b"only-once")]).await;
    share_of(&w.client, &w.ns, "once", "db").await;
    let first = w.shared("once").await;
    let key = metadata_key(&first);
    let link = first.status.as_ref().unwrap().link.clone();

    for _ in 0..3 {
        patch_status(
            &w.client,
            &w.ns,
            "once",
            json!({"metadataKey": null, "link": null, "serverUrl": null, "phase": "Pending"}),
        )
        .await;
        let back = w
            .wait_for("once", "status restored", |o| {
                o.status.as_ref().and_then(|s| s.metadata_key.as_deref()) == Some(key.as_str())
            })
            .await;
        assert_eq!(back.status.as_ref().unwrap().link, link);
    }
    assert_eq!(w.calls("share"), 1, "one share call, whatever status says");
    assert_eq!(live_keys(&w.server), BTreeSet::from([key]));
    assert_eq!(w.reveal(&first).await, "only-once");
}

#[tokio::test]
async fn a_status_naming_an_unrecorded_link_is_refused_as_tampered() {
    let w = World::start("unrecorded").await;
    // A link the operator did not make (made directly on the w.server).
    let foreign = ots_client(&w.server)
        .share(&ots_operator::ots::ShareRequest::new("someone-else"))
        .await
        .expect("share directly");
    // A share that cannot share yet: its Secret does not exist.
    share_of(&w.client, &w.ns, "claims", "absent").await;
    w.wait_for("claims", "SecretNotFound", |o| {
        ready_reason_is(o, "SecretNotFound")
    })
    .await;
    patch_status(
        &w.client,
        &w.ns,
        "claims",
        json!({"metadataKey": foreign.metadata_key, "phase": "Shared", "serverUrl": w.server.url()}),
    )
    .await;
    w.wait_for("claims", "StatusTampered", |o| {
        ready_reason_is(o, "StatusTampered")
    })
    .await;
    w.delete_share("claims").await;
    w.wait_gone("claims").await;
    assert!(
        live_keys(&w.server).contains(&foreign.metadata_key),
        "a link the operator never recorded is never burned"
    );
    assert_eq!(w.calls("burn"), 0);
    assert_eq!(w.calls("share"), 1, "only the test's own direct share");
}

#[tokio::test]
async fn a_share_is_burned_after_its_passphrase_and_credentials_secrets_are_deleted() {
    let (client, ns) = setup("material-first").await;
    let (_, state) = setup("material-state").await;
    let server = ots_server(Config {
        accounts: vec![Account::new("ops@example.com", "tok-material-9")],
        ..Config::default()
    });
    let mut args = fast_args(&ns, &server.url());
    let position = args.iter().position(|a| a == "--state-namespace").unwrap();
    args[position + 1] = state.clone();
    let _operator = Operator::start_with(&args, &[("RUST_LOG", "info")]);
    create_secret(&client, &ns, "db", &[("password", b"gated-value")]).await;
    create_secret(&client, &ns, "phrases", &[("alice", b"correct horse")]).await;
    create_secret(
        &client,
        &ns,
        "creds",
        &[
            ("username", b"ops@example.com"),
            ("apiToken", b"tok-material-9"),
        ],
    )
    .await;
    create_share(
        &client,
        &ns,
        "gated",
        json!({"secretRef": {"name": "db", "key": "password"},
               "passphraseSecretRef": {"name": "phrases", "key": "alice"}}),
    )
    .await;
    create_share(
        &client,
        &ns,
        "authed",
        json!({"secretRef": {"name": "db", "key": "password"},
               "server": {"url": server.url(), "credentialsSecretRef": {"name": "creds"}}}),
    )
    .await;
    let gated = metadata_key(&wait_shared(&client, &ns, "gated").await);
    let authed = metadata_key(&wait_shared(&client, &ns, "authed").await);

    // GitOps pruning or a namespace deletion: the Secrets go first, then the shares.
    for name in ["phrases", "creds", "db"] {
        delete_secret(&client, &ns, name).await;
    }
    delete_share(&client, &ns, "gated").await;
    delete_share(&client, &ns, "authed").await;
    wait_gone(&client, &ns, "gated").await;
    wait_gone(&client, &ns, "authed").await;
    let live = live_keys(&server);
    assert!(
        !live.contains(&gated),
        "the passphrase-gated link is burned"
    );
    assert!(
        !live.contains(&authed),
        "the per-share-credentials link is burned"
    );
    assert!(live.is_empty(), "nothing stays live: {live:?}");
    // The records go with their shares.
    let records: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(client.clone(), &state);
    let left = records
        .list(&kube::api::ListParams::default().labels("ots.dev/share-record=true"))
        .await
        .unwrap();
    assert!(
        left.items.is_empty(),
        "records are deleted with their shares"
    );
}

#[tokio::test]
async fn without_the_admission_guard_status_does_not_describe_the_secret() {
    let (client, ns) = setup("no-guard").await;
    let server = ots_server(Config::default());
    let args: Vec<String> = fast_args(&ns, &server.url())
        .into_iter()
        .filter(|a| a != "--admission-guard")
        .collect();
    let _operator = Operator::start_with(&args, &[("RUST_LOG", "info")]);
    create_secret(&client, &ns, "db", &[("password", &[b'x'; 10_001])]).await;
    create_share(
        &client,
        &ns,
        "probe-key",
        json!({"secretRef": {"name": "db", "key": "hidden-key-name"}}),
    )
    .await;
    share_of(&client, &ns, "probe-size", "db").await;
    for name in ["probe-key", "probe-size"] {
        let obj = wait_for(&client, &ns, name, "SecretNotUsable", |o| {
            ready_reason_is(o, "SecretNotUsable")
        })
        .await;
        let message = ready(&obj).unwrap().2;
        for detail in ["hidden-key-name", "10001", "bytes"] {
            assert!(!message.contains(detail), "{name}: {message}");
        }
        let note = wait_event(&client, &ns, name, "Warning", "SecretNotUsable").await;
        assert!(
            !note.contains("hidden-key-name") && !note.contains("10001"),
            "{note}"
        );
    }
    assert_eq!(calls(&server, "share"), 0);
}

#[tokio::test]
async fn live_links_per_secret_are_bounded() {
    let w = World::with(
        "bounded",
        Config::default(),
        &["--max-live-shares-per-secret", "2"],
    )
    .await;
    w.secret("db", &[("password", b"popular")]).await;
    for i in 0..5 {
        share_of(&w.client, &w.ns, &format!("copy-{i}"), "db").await;
    }
    let api = w.shares();
    let deadline = std::time::Instant::now() + WAIT;
    let (shared, waiting) = loop {
        let list = api.list(&Default::default()).await.unwrap().items;
        let shared: Vec<String> = list
            .iter()
            .filter(|o| phase(o) == "Shared")
            .map(|o| o.metadata.name.clone().unwrap())
            .collect();
        let waiting = list
            .iter()
            .filter(|o| ready_reason_is(o, "TooManyShares"))
            .count();
        if shared.len() + waiting == 5 {
            break (shared, waiting);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "shares did not settle"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(shared.len(), 2, "{shared:?}");
    assert_eq!(waiting, 3);
    assert_eq!(w.server.live_receipts().len(), 2);
    assert_eq!(w.calls("share"), 2);
}
