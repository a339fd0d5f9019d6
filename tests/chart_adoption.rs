//! A namespace that had the plain manifests (`deploy/manifests/ots-operator.yaml`) can move to the
//! Helm chart: after the manifests were deleted a plain `helm install` succeeds, and over manifests
//! still applied `helm install --take-ownership` adopts every object. A test binary of its own: it
//! installs the cluster-wide CRD and admission policy the way a user would.

mod support;

use std::path::PathBuf;
use std::process::{Command, Output};

use kube::api::{Api, DynamicObject, GroupVersionKind};
use kube::discovery;
use serde_json::Value;
use support::cluster;
use support::tools::{helm, kubectl, run, yaml_documents};

const CHART: &str = "deploy/helm/ots-operator";
const MANIFESTS: &str = "deploy/manifests/ots-operator.yaml";
/// The release and namespace the manifests are rendered for (scripts/render-manifests).
const RELEASE: &str = "ots-operator";
const NAMESPACE: &str = "ots-operator";

fn output(mut command: Command) -> Output {
    command
        .output()
        .unwrap_or_else(|error| panic!("cannot run {command:?}: {error}"))
}

/// The manifests without their Namespace (deleting a Namespace needs kube-controller-manager; the
/// namespace "once had" the objects, and stays).
fn manifests_without_namespace() -> PathBuf {
    let text =
        std::fs::read_to_string(cluster::repo_root().join(MANIFESTS)).expect("read the manifests");
    let objects: Vec<Value> = yaml_documents(&text)
        .into_iter()
        .filter(|object| object["kind"] != "Namespace")
        .collect();
    let stream: String = objects
        .iter()
        .map(|object| format!("---\n{}", serde_yaml::to_string(object).expect("YAML")))
        .collect();
    let path = std::env::temp_dir().join(format!(
        "ots-operator-adoption-objects-{}.yaml",
        std::process::id()
    ));
    std::fs::write(&path, stream).expect("write the objects");
    path
}

fn install(extra: &[&str]) -> Output {
    let mut args = vec![
        "install",
        RELEASE,
        CHART,
        "--namespace",
        NAMESPACE,
        "--set",
        "ots.url=https://ots.example.com",
    ];
    args.extend_from_slice(extra);
    output(helm(&args))
}

/// Every object of the release exists and carries the release's ownership annotations.
async fn assert_release_owns_its_objects() {
    let manifest = yaml_documents(&run(helm(&[
        "get",
        "manifest",
        RELEASE,
        "--namespace",
        NAMESPACE,
    ])));
    let client = cluster::client().await;
    for object in &manifest {
        let api_version = object["apiVersion"].as_str().expect("apiVersion");
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let kind = object["kind"].as_str().expect("kind");
        let name = object["metadata"]["name"].as_str().expect("name");
        let (resource, capabilities) =
            discovery::pinned_kind(&client, &GroupVersionKind::gvk(group, version, kind))
                .await
                .expect("the apiserver serves the kind");
        let api: Api<DynamicObject> = match capabilities.scope {
            discovery::Scope::Namespaced => {
                Api::namespaced_with(client.clone(), NAMESPACE, &resource)
            }
            discovery::Scope::Cluster => Api::all_with(client.clone(), &resource),
        };
        let found = api
            .get(name)
            .await
            .unwrap_or_else(|error| panic!("{kind} {name} missing: {error}"));
        let annotations = found.metadata.annotations.unwrap_or_default();
        assert_eq!(
            annotations
                .get("meta.helm.sh/release-name")
                .map(String::as_str),
            Some(RELEASE),
            "{kind} {name} is not owned by the release"
        );
        assert_eq!(
            annotations
                .get("meta.helm.sh/release-namespace")
                .map(String::as_str),
            Some(NAMESPACE)
        );
    }
    let deployment = run(kubectl(&[
        "-n",
        NAMESPACE,
        "get",
        "deployment",
        RELEASE,
        "-o",
        "jsonpath={.spec.template.spec.containers[0].args}",
    ]));
    assert!(
        deployment.contains("--ots-url=https://ots.example.com"),
        "the chart's values win: {deployment}"
    );
}

#[tokio::test]
async fn helm_installs_over_a_namespace_that_had_the_plain_manifests_deleted_or_still_applied() {
    let manifests = cluster::repo_root().join(MANIFESTS);
    let manifests = manifests.to_str().expect("UTF-8 path");

    // The plain manifests carry no Helm label that would claim a release.
    let text = std::fs::read_to_string(manifests).expect("read the manifests");
    for label in ["helm.sh/chart", "app.kubernetes.io/managed-by"] {
        assert!(!text.contains(label), "the manifests carry {label}");
    }

    // 1. Applied, then deleted (the namespace stays): a plain helm install succeeds.
    run(kubectl(&["apply", "--server-side", "-f", manifests]));
    let objects = manifests_without_namespace();
    let objects = objects.to_str().expect("UTF-8 path");
    run(kubectl(&["delete", "--wait=true", "-f", objects]));
    let installed = install(&[]);
    assert!(
        installed.status.success(),
        "helm install after the manifests were deleted: {}",
        String::from_utf8_lossy(&installed.stderr)
    );
    assert_release_owns_its_objects().await;
    run(helm(&[
        "uninstall",
        RELEASE,
        "--namespace",
        NAMESPACE,
        "--wait",
    ]));

    // 2. Applied and still there: a plain install refuses to take objects it does not own, and
    // --take-ownership (the documented migration) adopts them.
    run(kubectl(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        manifests,
    ]));
    let refused = install(&[]);
    assert!(
        !refused.status.success(),
        "helm install must not silently take objects applied by kubectl"
    );
    let adopted = install(&["--take-ownership", "--force-conflicts"]);
    assert!(
        adopted.status.success(),
        "helm install --take-ownership over the plain manifests: {}",
        String::from_utf8_lossy(&adopted.stderr)
    );
    assert_release_owns_its_objects().await;
}
