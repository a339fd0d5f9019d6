//! The fuller control plane: with kube-controller-manager, what a real cluster does by itself happens
//! for real in the tests that ask for it (`cluster::with_controller_manager`): namespace deletion
//! finishes, owned objects are garbage-collected, ServiceAccount token Secrets get a token and
//! aggregated ClusterRoles collect their rules.

mod support;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::api::rbac::v1::{AggregationRule, ClusterRole, PolicyRule};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use support::cluster::{self, with_controller_manager};
use support::operator::WAIT;

/// A namespace for one test, and an admin client, on a control plane with
/// kube-controller-manager.
async fn setup(prefix: &str) -> (Client, String) {
    with_controller_manager();
    support::operator::setup(prefix).await
}

/// Polls `check` until it yields a value; fails the test after [`WAIT`].
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn named(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        ..ObjectMeta::default()
    }
}

#[tokio::test]
async fn deleting_a_namespace_removes_it_and_everything_in_it() {
    let (client, ns) = setup("ns-deletion").await;
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    config_maps
        .create(
            &PostParams::default(),
            &ConfigMap {
                metadata: named("content"),
                ..ConfigMap::default()
            },
        )
        .await
        .expect("create a config map");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .delete(&ns, &DeleteParams::default())
        .await
        .expect("delete the namespace");
    eventually("the namespace to be gone", || async {
        namespaces
            .get_opt(&ns)
            .await
            .expect("get the namespace")
            .is_none()
            .then_some(())
    })
    .await;
    let left = config_maps.get_opt("content").await.expect("get");
    assert!(left.is_none(), "the namespace's content survived it");
}

#[tokio::test]
async fn a_service_account_token_secret_gets_its_token() {
    let (client, ns) = setup("sa-token").await;
    cluster::create_service_account(&client, &ns, "robot").await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    secrets
        .create(
            &PostParams::default(),
            &Secret {
                metadata: ObjectMeta {
                    name: Some("robot-token".to_owned()),
                    annotations: Some(BTreeMap::from([(
                        "kubernetes.io/service-account.name".to_owned(),
                        "robot".to_owned(),
                    )])),
                    ..ObjectMeta::default()
                },
                type_: Some("kubernetes.io/service-account-token".to_owned()),
                ..Secret::default()
            },
        )
        .await
        .expect("create the token secret");
    let data = eventually("the token to be filled in", || async {
        let secret = secrets.get("robot-token").await.expect("get the secret");
        let data = secret.data.unwrap_or_default();
        data.get("token")
            .is_some_and(|t| !t.0.is_empty())
            .then_some(data)
    })
    .await;
    assert!(data.contains_key("ca.crt"), "the CA is filled in too");
    assert_eq!(
        data.get("namespace"),
        Some(&ByteString(ns.as_bytes().to_vec()))
    );
}

#[tokio::test]
async fn deleting_an_owner_garbage_collects_what_it_owns() {
    let (client, ns) = setup("gc").await;
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let owner = config_maps
        .create(
            &PostParams::default(),
            &ConfigMap {
                metadata: named("owner"),
                ..ConfigMap::default()
            },
        )
        .await
        .expect("create the owner");
    config_maps
        .create(
            &PostParams::default(),
            &ConfigMap {
                metadata: ObjectMeta {
                    name: Some("owned".to_owned()),
                    owner_references: Some(vec![OwnerReference {
                        api_version: "v1".to_owned(),
                        kind: "ConfigMap".to_owned(),
                        name: "owner".to_owned(),
                        uid: owner.metadata.uid.clone().expect("uid"),
                        ..OwnerReference::default()
                    }]),
                    ..ObjectMeta::default()
                },
                ..ConfigMap::default()
            },
        )
        .await
        .expect("create the owned object");
    config_maps
        .delete("owner", &DeleteParams::default())
        .await
        .expect("delete the owner");
    eventually("the owned object to be collected", || async {
        config_maps
            .get_opt("owned")
            .await
            .expect("get")
            .is_none()
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn an_aggregated_cluster_role_collects_the_rules_of_labelled_roles() {
    let (client, ns) = setup("aggregation").await;
    let roles: Api<ClusterRole> = Api::all(client.clone());
    let label = format!("ots-operator.test/aggregate-{ns}");
    let selector = LabelSelector {
        match_labels: Some(BTreeMap::from([(label.clone(), "true".to_owned())])),
        ..LabelSelector::default()
    };
    roles
        .create(
            &PostParams::default(),
            &ClusterRole {
                metadata: named(&format!("{ns}-aggregate")),
                aggregation_rule: Some(AggregationRule {
                    cluster_role_selectors: Some(vec![selector]),
                }),
                ..ClusterRole::default()
            },
        )
        .await
        .expect("create the aggregated role");
    roles
        .create(
            &PostParams::default(),
            &ClusterRole {
                metadata: ObjectMeta {
                    name: Some(format!("{ns}-part")),
                    labels: Some(BTreeMap::from([(label, "true".to_owned())])),
                    ..ObjectMeta::default()
                },
                rules: Some(vec![PolicyRule {
                    api_groups: Some(vec!["ots.dev".to_owned()]),
                    resources: Some(vec!["onetimeshares".to_owned()]),
                    verbs: vec!["get".to_owned(), "list".to_owned()],
                    ..PolicyRule::default()
                }]),
                ..ClusterRole::default()
            },
        )
        .await
        .expect("create the labelled role");
    let rules = eventually("the rules to be aggregated", || async {
        let role = roles
            .get(&format!("{ns}-aggregate"))
            .await
            .expect("get the aggregated role");
        role.rules.filter(|r| !r.is_empty())
    })
    .await;
    assert_eq!(
        rules[0].resources.as_deref(),
        Some(&["onetimeshares".to_owned()][..])
    );
}
