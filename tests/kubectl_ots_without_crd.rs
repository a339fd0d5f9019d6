//! `kubectl-ots` on a cluster without the OneTimeShare CRD: every command that needs it says the
//! operator is not installed (this test binary's control plane never gets the CRD).

mod support;

use support::cluster::{self, kubeconfig_path};

#[tokio::test]
async fn every_command_says_when_the_crd_is_not_installed() {
    let client = cluster::client().await;
    let ns = cluster::test_namespace(&client, "plugin-no-crd").await;
    for args in [
        vec!["share", "db"],
        vec!["get", "x"],
        vec!["list"],
        vec!["reissue", "x"],
        vec!["burn", "x"],
        vec!["generate", "app", "--wait"],
    ] {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubectl-ots"))
            .arg("--kubeconfig")
            .arg(kubeconfig_path())
            .args(["-n", &ns])
            .args(&args)
            .output()
            .await
            .expect("run kubectl-ots");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains("onetimeshares.ots.dev) is not installed in this cluster"),
            "{args:?}: {stderr}"
        );
    }
}

#[tokio::test]
async fn servers_says_when_the_server_crds_are_not_installed() {
    let client = cluster::client().await;
    let ns = cluster::test_namespace(&client, "plugin-no-server-crd").await;
    for scope in [vec!["-n", ns.as_str()], vec!["-A"]] {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubectl-ots"))
            .arg("--kubeconfig")
            .arg(kubeconfig_path())
            .arg("servers")
            .args(&scope)
            .output()
            .await
            .expect("run kubectl-ots");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{scope:?}: {stderr}");
        assert!(
            stderr.contains(
                "the server APIs (otsservers.ots.dev, clusterotsservers.ots.dev) are not installed in this cluster"
            ),
            "{scope:?}: {stderr}"
        );
        assert!(out.stdout.is_empty(), "{scope:?}: no table");
    }
}
