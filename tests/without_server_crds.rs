//! An operator on a cluster that has only the OneTimeShare CRD (its image upgraded alone, or the
//! README demo's install): shares work, and SIGTERM still ends the process promptly even
//! though the OtsServer and ClusterOtsServer watches keep failing. This binary's control plane
//! never gets the server CRDs.

mod support;

use std::time::Duration;

use ots_testserver::Config;
use serde_json::json;
use support::cluster::{repo_root, tool_command};
use support::operator::{
    Operator, create_secret, create_share, fast_args, ots_server, setup, wait_shared,
};

#[tokio::test]
async fn without_the_server_crds_shares_work_and_sigterm_ends_the_operator_promptly() {
    let (client, ns) = setup("no-server-crds").await;
    let applied = tool_command("kubectl")
        .args(["apply", "--server-side", "-f"])
        .arg(repo_root().join("crds/onetimeshares.ots.dev.yaml"))
        .output()
        .expect("run kubectl");
    assert!(applied.status.success(), "{applied:?}");
    let established = tool_command("kubectl")
        .args([
            "wait",
            "--for=condition=Established",
            "crd/onetimeshares.ots.dev",
            "--timeout=60s",
        ])
        .output()
        .expect("run kubectl");
    assert!(established.status.success(), "{established:?}");

    let server = ots_server(Config::default());
    let mut operator = Operator::spawn(&fast_args(&ns, &server.url()), &[]);
    create_secret(&client, &ns, "db", &[("password", b"no-server-kinds")]).await;
    create_share(
        &client,
        &ns,
        "handoff",
        json!({"secretRef": {"name": "db", "key": "password"}}),
    )
    .await;
    wait_shared(&client, &ns, "handoff").await;

    // The server status controllers get 5 s for checks in flight; a hang would last until the
    // pod's grace period (30 s) ends in SIGKILL.
    let took = operator.terminate_within(Duration::from_secs(15));
    assert!(
        took.is_some(),
        "the operator was still running 15 s after SIGTERM"
    );
}
