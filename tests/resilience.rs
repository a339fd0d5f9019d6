//! When the cluster around the operator changes under it: the CRD is deleted and applied again, or
//! a OneTimeShare the operator cannot decode appears. The operator says what is wrong (at warn, once),
//! `/readyz` tells the truth, and it recovers without a restart.
//!
//! These tests change the cluster-wide CRD, so they live in their own test binary (with its own
//! control plane) and take turns.

mod support;

use kube::api::{ApiResource, DeleteParams, DynamicObject, GroupVersionKind, PostParams};
use kube::{Api, Client};
use ots_testserver::Config;
use serde_json::json;
use std::time::{Duration, Instant};
use support::cluster::{repo_root, tool_command};
use support::operator::*;
use support::world::World;

/// The tests here change the CRD; one at a time.
static CRD_CHANGES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const CRD: &str = "onetimeshares.ots.dev";

fn kubectl(args: &[&str]) -> String {
    let out = tool_command("kubectl")
        .args(args)
        .output()
        .expect("run kubectl");
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn apply_crd() {
    let crd = repo_root().join("crds/onetimeshares.ots.dev.yaml");
    kubectl(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        crd.to_str().expect("utf-8 path"),
    ]);
    kubectl(&[
        "wait",
        "--for=condition=Established",
        &format!("crd/{CRD}"),
        "--timeout=60s",
    ]);
}

async fn readyz(operator: &Operator) -> (u16, String) {
    let url = format!("http://{}/readyz", operator.metrics_addr());
    match reqwest::get(url).await {
        Ok(response) => {
            let status = response.status().as_u16();
            (status, response.text().await.unwrap_or_default())
        }
        Err(e) => (0, e.to_string()),
    }
}

/// Polls `/readyz` until it answers `status`; returns how long that took and the body.
async fn wait_readyz(operator: &Operator, status: u16, within: Duration) -> (Duration, String) {
    let started = Instant::now();
    loop {
        let (now, body) = readyz(operator).await;
        if now == status {
            return (started.elapsed(), body);
        }
        assert!(
            started.elapsed() < within,
            "/readyz did not answer {status} within {within:?} (last: {now} {body}); log:\n{}",
            operator.logs()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn readyz_fails_while_the_crd_is_missing_and_recovers_when_it_is_applied_again() {
    let _turn = CRD_CHANGES.lock().await;
    let w = World::start("crd-lifecycle").await;
    w.secret("db", &[("password", b"crd-lifecycle")]).await;
    w.share_key("before", "db", "password").await;
    w.shared("before").await;
    wait_readyz(&w.operator, 200, WAIT).await;

    // Deleting the CRD deletes every OneTimeShare first; the running operator sees each one go
    // (its finalizer) and burns its link, and only then is the CRD gone.
    let deleted = Instant::now();
    kubectl(&["delete", "crd", CRD, "--wait=false"]);
    let (took, body) = wait_readyz(&w.operator, 503, Duration::from_secs(30)).await;
    assert!(body.contains("CRD"), "/readyz says why: {body}");
    assert_eq!(
        w.server.stats().live_secrets,
        0,
        "the link was burned first"
    );
    assert_eq!(w.calls("burn"), 1);
    eprintln!(
        "/readyz failed {took:?} after the CRD deletion was requested (the CRD was gone after its \
         OneTimeShare's finalizer let go)"
    );
    let crd_gone = tool_command("kubectl")
        .args(["get", "crd", CRD])
        .output()
        .expect("run kubectl");
    assert!(!crd_gone.status.success(), "the CRD is gone");
    // Stays unready while the CRD is missing, retrying quietly.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(readyz(&w.operator).await.0, 503);

    apply_crd();
    let (took, _) = wait_readyz(&w.operator, 200, WAIT).await;
    eprintln!(
        "/readyz recovered {took:?} after the CRD was established again ({:?} since the deletion)",
        deleted.elapsed()
    );
    // It reconciles again, without a restart.
    w.share_key("after", "db", "password").await;
    w.shared("after").await;

    let logs = w.operator.logs();
    let warnings: Vec<_> = logs
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("CRD is not installed"))
        .collect();
    assert_eq!(
        warnings.len(),
        1,
        "one warning for the transition, not one per retry:\n{logs}"
    );
    assert!(
        logs.contains("the OneTimeShare watch works again"),
        "{logs}"
    );
}

/// The CRD with a second served version that accepts anything, as a newer CRD version might.
fn add_loose_version() {
    let patch = json!([{
        "op": "add",
        "path": "/spec/versions/-",
        "value": {
            "name": "v1alpha2",
            "served": true,
            "storage": false,
            "schema": {"openAPIV3Schema": {
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": true
            }}
        }
    }]);
    kubectl(&["patch", "crd", CRD, "--type=json", "-p", &patch.to_string()]);
    kubectl(&[
        "wait",
        "--for=condition=Established",
        &format!("crd/{CRD}"),
        "--timeout=60s",
    ]);
}

fn remove_loose_version() {
    let versions = kubectl(&["get", "crd", CRD, "-o", "jsonpath={.spec.versions[*].name}"]);
    if let Some(at) = versions.split_whitespace().position(|v| v == "v1alpha2") {
        let patch = json!([{"op": "remove", "path": format!("/spec/versions/{at}")}]);
        kubectl(&["patch", "crd", CRD, "--type=json", "-p", &patch.to_string()]);
    }
}

async fn create_through_loose_version(
    client: &Client,
    ns: &str,
    name: &str,
    spec: serde_json::Value,
) {
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "ots.dev",
        "v1alpha2",
        "OneTimeShare",
    ));
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource);
    let obj: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "ots.dev/v1alpha2",
        "kind": "OneTimeShare",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .expect("a dynamic object");
    api.create(&PostParams::default(), &obj)
        .await
        .expect("create through v1alpha2");
}

#[tokio::test]
async fn an_undecodable_share_gets_one_warning_and_the_others_are_still_reconciled() {
    let _turn = CRD_CHANGES.lock().await;
    let (client, ns) = setup("undecodable").await;
    install_crd();
    apply_crd();
    add_loose_version();
    // secretRef must be an object; the string in its place stands for any value, even a secret.
    create_through_loose_version(
        &client,
        &ns,
        "unreadable",
        json!({"secretRef": "hunter2-not-a-reference"}),
    )
    .await;

    // Started afterwards, the operator's very first list holds the undecodable object.
    let server = ots_server(Config::default());
    let operator = Operator::start(&ns, &server.url(), &[]);
    create_secret(&client, &ns, "db", &[("password", b"still-working")]).await;
    // Keep: no finalizer, so nothing of this test can hold back a later CRD deletion.
    create_share(
        &client,
        &ns,
        "readable",
        json!({"secretRef": {"name": "db", "key": "password"}, "deletionPolicy": "Keep"}),
    )
    .await;
    wait_shared(&client, &ns, "readable").await;
    wait_readyz(&operator, 200, WAIT).await;

    let note = wait_event(&client, &ns, "unreadable", "Warning", "InvalidSpec").await;
    assert!(note.contains("cannot read this OneTimeShare"), "{note}");
    assert!(
        !note.contains("hunter2"),
        "the Event repeats the value: {note}"
    );
    let logs = operator.logs();
    assert!(!logs.contains("hunter2"), "the log repeats the value");
    // Another change elsewhere does not repeat the warning about an unchanged object.
    create_share(
        &client,
        &ns,
        "readable-too",
        json!({"secretRef": {"name": "db", "key": "password"}, "deletionPolicy": "Keep"}),
    )
    .await;
    wait_shared(&client, &ns, "readable-too").await;
    let logs = operator.logs();
    let warnings = logs
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("cannot decode a OneTimeShare"))
        .count();
    assert_eq!(warnings, 1, "one warning for the object:\n{logs}");
    let warning_events = events(&client, &ns, "unreadable")
        .await
        .into_iter()
        .filter(|(kind, _, _)| kind == "Warning")
        .count();
    assert_eq!(warning_events, 1);

    // Leave the CRD as the other tests expect it.
    Api::<DynamicObject>::namespaced_with(
        client.clone(),
        &ns,
        &ApiResource::from_gvk(&GroupVersionKind::gvk(
            "ots.dev",
            "v1alpha1",
            "OneTimeShare",
        )),
    )
    .delete("unreadable", &DeleteParams::default())
    .await
    .expect("delete the unreadable object");
    remove_loose_version();
}
