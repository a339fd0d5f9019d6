//! The test control plane is a real kube-apiserver: CRDs, status subresources, finalizers, watches
//! and RBAC behave as in a cluster.

mod support;

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, PostParams,
};
use kube::runtime::wait::{await_condition, conditions};
use kube::runtime::watcher;
use serde_json::json;
use support::cluster;

/// Generous bound for waits on a loaded 2-core machine; never a timing assertion.
const WAIT: Duration = Duration::from_secs(120);

const GROUP: &str = "smoke.ots-operator.test";
const FINALIZER: &str = "smoke.ots-operator.test/cleanup";

fn widget_crd() -> CustomResourceDefinition {
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": { "name": format!("widgets.{GROUP}") },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": { "plural": "widgets", "singular": "widget", "kind": "Widget" },
            "versions": [{
                "name": "v1",
                "served": true,
                "storage": true,
                "subresources": { "status": {} },
                "schema": { "openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "spec": { "type": "object", "properties": { "size": { "type": "integer" } } },
                        "status": { "type": "object", "properties": { "observed": { "type": "integer" } } }
                    }
                }}
            }]
        }
    }))
    .expect("the widget CRD is valid JSON for a CustomResourceDefinition")
}

fn widget_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, "v1", "Widget"), "widgets")
}

fn int_at(object: &DynamicObject, pointer: &str) -> Option<i64> {
    object
        .data
        .pointer(pointer)
        .and_then(|value| value.as_i64())
}

#[tokio::test]
async fn custom_resource_status_finalizer_and_watch_work_on_the_real_apiserver() {
    let client = cluster::client().await;
    let namespace = cluster::test_namespace(&client, "smoke-crd").await;

    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = widget_crd();
    let crd_name = crd.metadata.name.clone().expect("the CRD has a name");
    crds.patch(
        &crd_name,
        &PatchParams::apply("ots-operator-smoke-test").force(),
        &Patch::Apply(&crd),
    )
    .await
    .expect("apply the widget CRD");
    tokio::time::timeout(
        WAIT,
        await_condition(crds, &crd_name, conditions::is_crd_established()),
    )
    .await
    .expect("the CRD becomes established in time")
    .expect("watch the CRD");

    let widgets: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &namespace, &widget_resource());
    let mut widget = DynamicObject::new("first", &widget_resource());
    widget.data = json!({ "spec": { "size": 1 } });
    widgets
        .create(&PostParams::default(), &widget)
        .await
        .expect("create a widget");

    // Watch from a complete initial list, so the status update below must arrive as a watch event.
    let mut events = watcher(widgets.clone(), watcher::Config::default()).boxed();
    tokio::time::timeout(WAIT, async {
        while let Some(event) = events.try_next().await.expect("watch widgets") {
            if matches!(event, watcher::Event::InitDone) {
                return;
            }
        }
        panic!("the widget watch ended before its initial list");
    })
    .await
    .expect("the widget watch lists in time");

    // The status subresource takes status and ignores spec.
    let patched = widgets
        .patch_status(
            "first",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "size": 9 }, "status": { "observed": 2 } })),
        )
        .await
        .expect("patch the widget's status");
    assert_eq!(int_at(&patched, "/status/observed"), Some(2));
    assert_eq!(int_at(&patched, "/spec/size"), Some(1));

    let seen = tokio::time::timeout(WAIT, async {
        while let Some(event) = events.try_next().await.expect("watch widgets") {
            if let watcher::Event::Apply(object) = event
                && int_at(&object, "/status/observed") == Some(2)
            {
                return object;
            }
        }
        panic!("the widget watch ended before the status update arrived");
    })
    .await
    .expect("the status update arrives on the watch in time");
    assert_eq!(seen.metadata.name.as_deref(), Some("first"));

    // A finalizer holds a deleted object until it is removed.
    widgets
        .patch(
            "first",
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "finalizers": [FINALIZER] } })),
        )
        .await
        .expect("add a finalizer");
    widgets
        .delete("first", &DeleteParams::default())
        .await
        .expect("delete the widget");
    let held = widgets
        .get("first")
        .await
        .expect("the widget is still there while its finalizer is set");
    assert!(held.metadata.deletion_timestamp.is_some());
    assert_eq!(held.metadata.finalizers, Some(vec![FINALIZER.to_owned()]));

    widgets
        .patch(
            "first",
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "finalizers": null } })),
        )
        .await
        .expect("remove the finalizer");
    assert!(
        widgets
            .get_opt("first")
            .await
            .expect("look the widget up")
            .is_none(),
        "the widget is gone once its last finalizer is removed"
    );
}

fn is_forbidden(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.is_forbidden())
}

#[tokio::test]
async fn service_account_is_forbidden_until_a_role_binding_grants_it() {
    let admin = cluster::client().await;
    let namespace = cluster::test_namespace(&admin, "smoke-rbac").await;
    cluster::create_service_account(&admin, &namespace, "reader").await;

    let by_token: Api<ConfigMap> = Api::namespaced(
        cluster::service_account_token_client(&admin, &namespace, "reader").await,
        &namespace,
    );
    let by_impersonation: Api<ConfigMap> = Api::namespaced(
        cluster::impersonating_client(&namespace, "reader").await,
        &namespace,
    );
    let denied = by_token
        .list(&ListParams::default())
        .await
        .expect_err("a service account without rights cannot list config maps");
    assert!(is_forbidden(&denied), "expected 403, got {denied}");
    let denied = by_impersonation
        .list(&ListParams::default())
        .await
        .expect_err("an impersonated service account without rights cannot list config maps");
    assert!(is_forbidden(&denied), "expected 403, got {denied}");

    let role = Role {
        metadata: ObjectMeta {
            name: Some("configmap-reader".to_owned()),
            ..ObjectMeta::default()
        },
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec!["configmaps".to_owned()]),
            verbs: vec!["list".to_owned()],
            ..PolicyRule::default()
        }]),
    };
    Api::<Role>::namespaced(admin.clone(), &namespace)
        .create(&PostParams::default(), &role)
        .await
        .expect("create the role");
    let binding = RoleBinding {
        metadata: ObjectMeta {
            name: Some("reader-reads-configmaps".to_owned()),
            ..ObjectMeta::default()
        },
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".to_owned()),
            kind: "Role".to_owned(),
            name: "configmap-reader".to_owned(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".to_owned(),
            name: "reader".to_owned(),
            namespace: Some(namespace.clone()),
            ..Subject::default()
        }]),
    };
    Api::<RoleBinding>::namespaced(admin.clone(), &namespace)
        .create(&PostParams::default(), &binding)
        .await
        .expect("create the role binding");

    // The authorizer learns of the binding through its own watch; poll until it has.
    for api in [&by_token, &by_impersonation] {
        tokio::time::timeout(WAIT, async {
            loop {
                match api.list(&ListParams::default()).await {
                    Ok(_) => return,
                    Err(error) if is_forbidden(&error) => {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    Err(error) => panic!("listing config maps failed: {error}"),
                }
            }
        })
        .await
        .expect("the role binding takes effect in time");
    }
    // The grant is exactly the role: other verbs stay forbidden.
    let denied = by_token
        .create(
            &PostParams::default(),
            &ConfigMap {
                metadata: ObjectMeta {
                    name: Some("not-allowed".to_owned()),
                    ..ObjectMeta::default()
                },
                ..ConfigMap::default()
            },
        )
        .await
        .expect_err("the role grants list only");
    assert!(is_forbidden(&denied), "expected 403, got {denied}");
}
