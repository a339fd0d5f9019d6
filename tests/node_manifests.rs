//! The plain manifests, as the README's "Without Helm" line applies them, on a real node: with only
//! `--ots-url` edited (as the README says) and the image the manifests name loaded into the node,
//! the operator pod turns Ready and shares.
//!
//! Needs a real node (see tests/node_pod.rs), so it is ignored by default:
//!   cargo test --test node_manifests -- --ignored

mod support;

use std::time::Instant;

use ots_testserver::{Config, TestServer};
use serde_json::Value;
use support::node;
use support::operator::{create_secret, create_share, open_link, wait_shared};

#[tokio::test]
#[ignore = "needs a real node (root, containerd, dockerd): cargo test --test node_manifests -- --ignored"]
async fn kubectl_apply_of_the_rendered_manifests_with_the_url_edited_gives_a_ready_pod_that_shares()
{
    let node = node::node();
    let manifests = std::fs::read_to_string(
        std::path::PathBuf::from(
            std::env::var_os("CARGO_MANIFEST_DIR")
                .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
        )
        .join("deploy/manifests/ots-operator.yaml"),
    )
    .expect("read the rendered manifests");
    // The image the manifests name, built from this tree's Dockerfile (what a release pushes).
    let image = manifests
        .lines()
        .find_map(|line| line.trim().strip_prefix("image: "))
        .expect("the manifests name an image")
        .to_owned();
    node.image(&image);
    let server = TestServer::start_in_thread_on((node.gateway, 0).into(), Config::default())
        .expect("start ots-testserver on the bridge address");
    let edited = manifests.replace(
        "--ots-url=https://onetimesecret.com",
        &format!("--ots-url={}", server.url()),
    );
    assert_ne!(
        edited, manifests,
        "the manifests carry --ots-url=https://onetimesecret.com"
    );
    let path = std::env::temp_dir().join(format!("ots-node-manifests-{}.yaml", std::process::id()));
    std::fs::write(&path, edited).expect("write the edited manifests");
    let started = Instant::now();
    node.kubectl(&[
        "apply",
        "--server-side",
        "-f",
        path.to_str().expect("utf-8 path"),
    ]);
    let _ = std::fs::remove_file(&path);
    node.kubectl(&[
        "-n",
        "ots-operator",
        "rollout",
        "status",
        "deployment/ots-operator",
        "--timeout=120s",
    ]);
    eprintln!(
        "manifests' operator pod Ready {:.1?} after kubectl apply",
        started.elapsed()
    );
    let pods: Value =
        serde_json::from_str(&node.kubectl(&["-n", "ots-operator", "get", "pods", "-o", "json"]))
            .expect("pods JSON");
    let pod = &pods["items"][0];
    assert_eq!(pod["spec"]["containers"][0]["image"], image.as_str());
    assert_ne!(pod["spec"]["hostNetwork"], true);

    let client = node.client().await;
    let ns = "manifests";
    node.kubectl(&["create", "namespace", ns]);
    create_secret(&client, ns, "db", &[("password", b"from-the-manifests")]).await;
    create_share(
        &client,
        ns,
        "handoff",
        serde_json::json!({"secretRef": {"name": "db", "key": "password"}}),
    )
    .await;
    let shared = wait_shared(&client, ns, "handoff").await;
    assert_eq!(open_link(&server, &shared).await, "from-the-manifests");
}
