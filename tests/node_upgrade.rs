//! Changing the running operator as users do, on a real node: `helm upgrade` to a new image tag in
//! the middle of a burst of shares, and a node drain that the chart's PodDisruptionBudget holds.
//!
//! Needs a real node (see tests/node_pod.rs), so it is ignored by default:
//!   cargo test --test node_upgrade -- --ignored

mod support;

use std::collections::BTreeSet;
use std::time::Instant;

use ots_testserver::{Config, TestServer};
use serde_json::Value;
use support::node::{self, Node};
use support::operator::{create_secret, create_share, wait_each_shared_exactly_once};

const NAMESPACE: &str = "ots-operator";
const SHARES: usize = 100;

fn operator_pods(node: &Node) -> Vec<Value> {
    let pods: Value = serde_json::from_str(&node.kubectl(&[
        "-n",
        NAMESPACE,
        "get",
        "pods",
        "-l",
        "app.kubernetes.io/name=ots-operator",
        "-o",
        "json",
    ]))
    .expect("pods JSON");
    pods["items"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
#[ignore = "needs a real node (root, containerd, dockerd): cargo test --test node_upgrade -- --ignored"]
async fn helm_upgrade_to_a_new_image_tag_during_a_burst_loses_and_duplicates_no_link_and_the_pdb_holds_a_drain()
 {
    let node = node::node();
    node.image("ots-operator:dev");
    node.image("ots-operator:next");
    let server = TestServer::start_in_thread_on((node.gateway, 0).into(), Config::default())
        .expect("start ots-testserver on the bridge address");
    node.shell(&format!(
        "helm install ots-operator deploy/helm/ots-operator -n {NAMESPACE} --create-namespace \
         --set image.repository=ots-operator --set image.tag=dev --set ots.url={} \
         --set replicaCount=2 --set podDisruptionBudget.enabled=true --set ots.rate=20 --set ots.burst=20",
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
    let ns = "upgrade-burst";
    node.kubectl(&["create", "namespace", ns]);

    // The burst, with the upgrade started after the first third.
    let mut upgraded_at = None;
    for i in 0..SHARES {
        let name = format!("u{i:03}");
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
            node.shell(
                "helm upgrade ots-operator deploy/helm/ots-operator -n ots-operator --reuse-values \
                 --set image.tag=next",
            );
            upgraded_at = Some(Instant::now());
        }
    }
    let upgraded_at = upgraded_at.expect("upgraded");
    node.kubectl(&[
        "-n",
        NAMESPACE,
        "rollout",
        "status",
        "deployment/ots-operator",
        "--timeout=180s",
    ]);
    eprintln!(
        "rollout to ots-operator:next done {:.1?} after helm upgrade",
        upgraded_at.elapsed()
    );
    let images: BTreeSet<String> = operator_pods(node)
        .iter()
        .filter(|pod| pod["metadata"]["deletionTimestamp"].is_null())
        .filter_map(|pod| {
            pod["spec"]["containers"][0]["image"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(images, BTreeSet::from(["ots-operator:next".to_owned()]));

    let done = wait_each_shared_exactly_once(&client, ns, &server, SHARES).await;
    eprintln!(
        "all {SHARES} shares Shared {:.1?} after helm upgrade",
        done - upgraded_at
    );

    // A drain of the node: the first operator pod may go, the PDB (maxUnavailable 1) holds the
    // second while the first's replacement cannot be scheduled on the cordoned node.
    let node_name = node.kubectl(&["get", "nodes", "-o", "jsonpath={.items[0].metadata.name}"]);
    let drain = node
        .tool("kubectl")
        .args([
            "drain",
            &node_name,
            "--ignore-daemonsets",
            "--delete-emptydir-data",
            "--pod-selector=app.kubernetes.io/name=ots-operator",
            "--timeout=20s",
        ])
        .output()
        .expect("run kubectl drain");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&drain.stdout),
        String::from_utf8_lossy(&drain.stderr)
    );
    eprintln!("kubectl drain: {said}");
    assert!(!drain.status.success(), "the drain did not finish: {said}");
    assert!(said.contains("disruption budget"), "{said}");
    let running = operator_pods(node)
        .into_iter()
        .filter(|pod| {
            pod["metadata"]["deletionTimestamp"].is_null() && pod["status"]["phase"] == "Running"
        })
        .count();
    assert_eq!(
        running, 1,
        "one operator pod kept running through the drain"
    );
    node.kubectl(&["uncordon", &node_name]);
    node.kubectl(&[
        "-n",
        NAMESPACE,
        "rollout",
        "status",
        "deployment/ots-operator",
        "--timeout=120s",
    ]);
}
