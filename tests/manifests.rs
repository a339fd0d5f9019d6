//! The plain manifests install on a fresh cluster exactly as the README tells users:
//! `kubectl apply --server-side -f deploy/manifests/ots-operator.yaml`. A test binary of its own, so
//! its control plane has never seen the Helm chart (`tests/chart.rs` installs that).

mod support;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DynamicObject, GroupVersionKind};
use kube::discovery;
use serde_json::Value;
use support::cluster;
use support::tools::{kubectl, run, yaml_documents};

const MANIFESTS: &str = "deploy/manifests/ots-operator.yaml";

fn kubectl_apply() -> String {
    run(kubectl(&["apply", "--server-side", "-f", MANIFESTS]))
}

fn manifest_objects() -> Vec<Value> {
    let text = std::fs::read_to_string(cluster::repo_root().join(MANIFESTS))
        .expect("read the rendered manifests");
    yaml_documents(&text)
}

#[tokio::test]
async fn rendered_manifests_apply_server_side_on_a_fresh_cluster_and_create_every_object() {
    kubectl_apply();
    let client = cluster::client().await;
    let objects = manifest_objects();
    assert!(objects.len() > 5, "the manifests hold the whole release");
    for object in &objects {
        let kind = object["kind"].as_str().expect("every object has a kind");
        let name = object["metadata"]["name"]
            .as_str()
            .expect("every object has a name");
        let api_version = object["apiVersion"]
            .as_str()
            .expect("every object has an apiVersion");
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let (resource, capabilities) = discovery::pinned_kind(&client, &gvk)
            .await
            .unwrap_or_else(|error| panic!("the apiserver does not serve {gvk:?}: {error}"));
        let api: Api<DynamicObject> = match capabilities.scope {
            discovery::Scope::Namespaced => {
                let namespace = object["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or_else(|| panic!("namespaced {kind} {name} names its namespace"));
                Api::namespaced_with(client.clone(), namespace, &resource)
            }
            discovery::Scope::Cluster => Api::all_with(client.clone(), &resource),
        };
        api.get(name)
            .await
            .unwrap_or_else(|error| panic!("{kind} {name} is missing after apply: {error}"));
    }

    let namespace = Api::<Namespace>::all(client.clone())
        .get("ots-operator")
        .await
        .expect("the manifests create the ots-operator namespace");
    assert_eq!(
        namespace
            .metadata
            .labels
            .unwrap_or_default()
            .get("pod-security.kubernetes.io/enforce"),
        Some(&"restricted".to_owned()),
        "the operator's namespace enforces the restricted Pod Security Standard"
    );

    // Applying again changes nothing and conflicts with nothing, as a GitOps tool does on every sync.
    let again = kubectl_apply();
    assert!(
        again
            .lines()
            .all(|line| line.ends_with("serverside-applied")),
        "second apply reported: {again}"
    );
}
