//! Two operator pods on a real node, as the chart runs them with `replicaCount=2`: leader election
//! between pods decides which one shares, and losing the leader in the middle of a burst loses
//! nothing and doubles nothing.
//!
//! Needs a real node (see tests/node_pod.rs), so it is ignored by default:
//!   cargo test --test node_replicas -- --ignored

mod support;

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams};
use ots_testserver::{Config, TestServer};
use serde_json::Value;
use support::node;
use support::operator::{create_secret, create_share, wait_each_shared_exactly_once};

const IMAGE: &str = "ots-operator:dev";
const NAMESPACE: &str = "ots-operator";
const SHARES: usize = 100;

fn lease_holder(lease: &Lease) -> Option<String> {
    lease.spec.as_ref()?.holder_identity.clone()
}

#[tokio::test]
#[ignore = "needs a real node (root, containerd, dockerd): cargo test --test node_replicas -- --ignored"]
async fn deleting_the_leader_pod_during_a_burst_of_100_shares_shares_each_exactly_once() {
    let node = node::node();
    node.image(IMAGE);
    let server = TestServer::start_in_thread_on((node.gateway, 0).into(), Config::default())
        .expect("start ots-testserver on the bridge address");
    node.shell(&format!(
        "helm install ots-operator deploy/helm/ots-operator -n {NAMESPACE} --create-namespace \
         --set image.repository=ots-operator --set image.tag=dev --set ots.url={} \
         --set replicaCount=2 --set podDisruptionBudget.enabled=true --set ots.rate=50 --set ots.burst=50",
        server.url()
    ));
    node.kubectl(&[
        "-n",
        NAMESPACE,
        "rollout",
        "status",
        "deployment/ots-operator",
        "--timeout=180s",
    ]);
    let client = node.client().await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), NAMESPACE);
    let leader = loop {
        if let Some(holder) = leases
            .get_opt("ots-operator-leader")
            .await
            .expect("get the Lease")
            .as_ref()
            .and_then(lease_holder)
        {
            break holder;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // The identity is the pod's name plus a random suffix (a restarted process is a new candidate).
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let leader_pod = pods
        .list(&ListParams::default())
        .await
        .expect("list the operator pods")
        .items
        .into_iter()
        .filter_map(|pod| pod.metadata.name)
        .find(|name| leader.starts_with(&format!("{name}-")))
        .unwrap_or_else(|| panic!("no pod holds the Lease ({leader})"));
    eprintln!("leader: {leader} (pod {leader_pod})");

    let ns = "burst";
    node.kubectl(&["create", "namespace", ns]);
    // The burst: 100 Secrets and shares, the leader pod deleted after the first third.
    let mut deleted_at = None;
    for i in 0..SHARES {
        let name = format!("s{i:03}");
        create_secret(
            &client,
            ns,
            &name,
            &[("password", format!("value-{i}").as_bytes())],
        )
        .await;
        create_share(
            &client,
            ns,
            &name,
            serde_json::json!({"secretRef": {"name": name, "key": "password"}}),
        )
        .await;
        if i == SHARES / 3 {
            pods.delete(&leader_pod, &DeleteParams::default())
                .await
                .expect("delete the leader pod");
            deleted_at = Some(Instant::now());
        }
    }
    let deleted_at = deleted_at.expect("the leader was deleted");
    // Takeover: the Lease names the other pod.
    let takeover = loop {
        let holder = leases
            .get_opt("ots-operator-leader")
            .await
            .expect("get the Lease")
            .as_ref()
            .and_then(lease_holder);
        if holder.as_deref().is_some_and(|h| h != leader) {
            break deleted_at.elapsed();
        }
        assert!(
            deleted_at.elapsed() < Duration::from_secs(60),
            "no new leader after 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!("takeover after the leader pod's deletion: {takeover:.1?} (goal ≤ 15 s)");

    // Every share Shared, with a link of its own; the server made exactly 100 secrets.
    let done = wait_each_shared_exactly_once(&client, ns, &server, SHARES).await;
    eprintln!(
        "all {SHARES} shares Shared {:.1?} after the leader's deletion",
        done - deleted_at
    );
    // The deleted pod was replaced, and both pods are Ready again.
    node.kubectl(&[
        "-n",
        NAMESPACE,
        "rollout",
        "status",
        "deployment/ots-operator",
        "--timeout=120s",
    ]);
    let pods: Value =
        serde_json::from_str(&node.kubectl(&["-n", NAMESPACE, "get", "pods", "-o", "json"]))
            .expect("pods JSON");
    eprintln!(
        "pods after: {:?}",
        pods["items"].as_array().map(|p| p
            .iter()
            .map(|p| p["metadata"]["name"].clone())
            .collect::<Vec<_>>())
    );
}
