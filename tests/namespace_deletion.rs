//! Burns survive the order of deletion: a namespace deleted for real (kube-controller-manager's
//! namespace controller deletes its Secrets and shares in no particular order), and one deleted
//! the way GitOps pruning does it (Secrets first), leave no live link behind.

mod support;

use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::DeleteParams;
use ots_testserver::{Account, Config, TestServer};
use serde_json::json;
use std::time::{Duration, Instant};
use support::cluster::with_controller_manager;
use support::operator::*;

const USER: &str = "ops@example.com";
const TOKEN: &str = "tok-namespace-5";

/// A namespace with three shares: plain, passphrase-gated, and with per-share credentials.
async fn populate(client: &kube::Client, ns: &str, server: &TestServer) {
    create_secret(client, ns, "db", &[("password", b"doomed")]).await;
    create_secret(client, ns, "phrases", &[("alice", b"correct horse")]).await;
    create_secret(
        client,
        ns,
        "creds",
        &[
            ("username", USER.as_bytes()),
            ("apiToken", TOKEN.as_bytes()),
        ],
    )
    .await;
    create_share(
        client,
        ns,
        "plain",
        json!({"secretRef": {"name": "db", "key": "password"}}),
    )
    .await;
    create_share(
        client,
        ns,
        "gated",
        json!({"secretRef": {"name": "db", "key": "password"},
               "passphraseSecretRef": {"name": "phrases", "key": "alice"}}),
    )
    .await;
    create_share(
        client,
        ns,
        "authed",
        json!({"secretRef": {"name": "db", "key": "password"},
               "server": {"url": server.url(), "credentialsSecretRef": {"name": "creds"}}}),
    )
    .await;
    for name in ["plain", "gated", "authed"] {
        wait_shared(client, ns, name).await;
    }
    assert_eq!(server.live_receipts().len(), 3);
}

fn operator_for(ns: &str, state: &str, server: &TestServer) -> Operator {
    let mut args = fast_args(ns, &server.url());
    let position = args.iter().position(|a| a == "--state-namespace").unwrap();
    args[position + 1] = state.to_owned();
    Operator::start_with(&args, &[("RUST_LOG", "info")])
}

fn server() -> TestServer {
    ots_server(Config {
        accounts: vec![Account::new(USER, TOKEN)],
        ..Config::default()
    })
}

#[tokio::test]
async fn a_real_namespace_deletion_burns_every_link() {
    with_controller_manager();
    let (client, ns) = setup("ns-delete").await;
    let (_, state) = setup("ns-delete-state").await;
    let server = server();
    let operator = operator_for(&ns, &state, &server);
    populate(&client, &ns, &server).await;

    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .delete(&ns, &DeleteParams::default())
        .await
        .expect("delete the namespace");
    let deadline = Instant::now() + WAIT;
    while namespaces.get_opt(&ns).await.expect("get").is_some() {
        assert!(
            Instant::now() < deadline,
            "the namespace was not deleted in time; live secrets: {}",
            server.live_receipts().len()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        server.live_receipts().is_empty(),
        "every link is burned, whatever the namespace controller deleted first"
    );
    assert!(
        !operator.logs().contains("could not burn"),
        "no burn gave up:\n{}",
        operator.logs()
    );
}

#[tokio::test]
async fn a_namespace_pruned_secrets_first_burns_every_link() {
    with_controller_manager();
    let (client, ns) = setup("ns-prune").await;
    let (_, state) = setup("ns-prune-state").await;
    let server = server();
    let _operator = operator_for(&ns, &state, &server);
    populate(&client, &ns, &server).await;

    for name in ["creds", "phrases", "db"] {
        delete_secret(&client, &ns, name).await;
    }
    for name in ["plain", "gated", "authed"] {
        delete_share(&client, &ns, name).await;
    }
    for name in ["plain", "gated", "authed"] {
        wait_gone(&client, &ns, name).await;
    }
    assert!(server.live_receipts().is_empty());
}
