//! `kubectl get ots` shows why a share is where it is: the REASON column is the Ready condition's
//! reason, read by the real apiserver from the generated CRD's printer columns.

mod support;

use std::process::Command;

use support::{cluster, tools};

/// Runs `kubectl ARGS` as cluster admin; it must succeed. Returns its stdout.
fn kubectl(args: &[&str]) -> String {
    tools::run(tools::kubectl(args))
}

fn wait_for(args: &[&str]) {
    let mut command: Command = cluster::tool_command("kubectl");
    command.args(args);
    let status = command.status().expect("run kubectl wait");
    assert!(status.success(), "{args:?}");
}

#[test]
fn kubectl_get_ots_shows_the_ready_conditions_reason() {
    kubectl(&[
        "apply",
        "--server-side",
        "-f",
        "crds/onetimeshares.ots.dev.yaml",
    ]);
    wait_for(&[
        "wait",
        "--for=condition=Established",
        "--timeout=120s",
        "crd/onetimeshares.ots.dev",
    ]);
    kubectl(&["create", "namespace", "printer-columns"]);
    kubectl(&[
        "-n",
        "printer-columns",
        "apply",
        "-f",
        "examples/single-key.yaml",
    ]);
    kubectl(&[
        "-n",
        "printer-columns",
        "patch",
        "ots",
        "db-password-for-alice",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"phase":"Pending","conditions":[
            {"type":"Other","status":"False","reason":"NotThisOne","message":"m","lastTransitionTime":"2026-01-01T00:00:00Z"},
            {"type":"Ready","status":"False","reason":"SecretNotFound","message":"Secret db-credentials not found","lastTransitionTime":"2026-01-01T00:00:00Z"}]}}"#,
    ]);
    let table = kubectl(&["-n", "printer-columns", "get", "ots"]);
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().expect("a header").split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "PHASE", "SECRET", "EXPIRES", "REASON", "AGE"],
        "{table}"
    );
    let row: Vec<&str> = lines.next().expect("a row").split_whitespace().collect();
    assert_eq!(row[0], "db-password-for-alice");
    assert_eq!(row[1], "Pending");
    assert_eq!(
        row[3], "SecretNotFound",
        "REASON is the Ready condition's (EXPIRES is empty): {table}"
    );
}
