//! Burns survive the order of deletion: a namespace deleted for real (kube-controller-manager's
//! namespace controller deletes its Secrets and shares in no particular order), and one deleted
//! the way GitOps pruning does it (Secrets first), leave no live link behind.

mod support;

use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::DeleteParams;
use ots_testserver::{Account, Config};
use serde_json::json;
use std::time::{Duration, Instant};
use support::cluster::with_controller_manager;
use support::operator::*;
use support::world::World;

const USER: &str = "ops@example.com";
const TOKEN: &str = "tok-namespace-5";

/// A namespace with three shares: plain, passphrase-gated, and with per-share credentials.
async fn populate(w: &World) {
    w.secret("db", &[("password", b"doomed")]).await;
    w.secret("phrases", &[("alice", b"correct horse")]).await;
    w.secret(
        "creds",
        &[
            ("username", USER.as_bytes()),
            ("apiToken", TOKEN.as_bytes()),
        ],
    )
    .await;
    w.share_key("plain", "db", "password").await;
    w.share(
        "gated",
        json!({"secretRef": {"name": "db", "key": "password"},
               "passphraseSecretRef": {"name": "phrases", "key": "alice"}}),
    )
    .await;
    w.share(
        "authed",
        json!({"secretRef": {"name": "db", "key": "password"},
               "server": {"url": w.server.url(), "credentialsSecretRef": {"name": "creds"}}}),
    )
    .await;
    for name in ["plain", "gated", "authed"] {
        w.shared(name).await;
    }
    assert_eq!(w.server.live_receipts().len(), 3);
}

/// A World in a namespace named after `prefix` whose operator keeps its records in a namespace of
/// their own (named after `state`), so deleting the shares' namespace leaves the records alone.
async fn world_with_state_elsewhere(prefix: &str, state: &str) -> World {
    let (_, state) = setup(state).await;
    let server = ots_server(Config {
        accounts: vec![Account::new(USER, TOKEN)],
        ..Config::default()
    });
    World::with_operator(prefix, server, |ns, url| {
        let mut args = fast_args(ns, url);
        let position = args.iter().position(|a| a == "--state-namespace").unwrap();
        args[position + 1] = state;
        Operator::start_with(&args, &[("RUST_LOG", "info")])
    })
    .await
}

#[tokio::test]
async fn a_real_namespace_deletion_burns_every_link() {
    with_controller_manager();
    let w = world_with_state_elsewhere("ns-delete", "ns-delete-state").await;
    populate(&w).await;

    let namespaces: Api<Namespace> = Api::all(w.client.clone());
    namespaces
        .delete(&w.ns, &DeleteParams::default())
        .await
        .expect("delete the namespace");
    let deadline = Instant::now() + WAIT;
    while namespaces.get_opt(&w.ns).await.expect("get").is_some() {
        assert!(
            Instant::now() < deadline,
            "the namespace was not deleted in time; live secrets: {}",
            w.server.live_receipts().len()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        w.server.live_receipts().is_empty(),
        "every link is burned, whatever the namespace controller deleted first"
    );
    assert!(
        !w.operator.logs().contains("could not burn"),
        "no burn gave up:\n{}",
        w.operator.logs()
    );
}

#[tokio::test]
async fn a_namespace_pruned_secrets_first_burns_every_link() {
    with_controller_manager();
    let w = world_with_state_elsewhere("ns-prune", "ns-prune-state").await;
    populate(&w).await;

    for name in ["creds", "phrases", "db"] {
        w.delete_secret(name).await;
    }
    for name in ["plain", "gated", "authed"] {
        w.delete_share(name).await;
    }
    for name in ["plain", "gated", "authed"] {
        w.wait_gone(name).await;
    }
    assert!(w.server.live_receipts().is_empty());
}
