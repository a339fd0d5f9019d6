//! The README's "Quick start on a cluster" works as written, up to the point that needs a container
//! engine: its `helm` and `kubectl` lines run unchanged against a real apiserver (the image build and
//! `kind load`/`minikube image load` lines are only checked to be there). The Deployment is created
//! with the locally built image; no pod runs, since the test control plane has no kubelet
//! (tests/node_pod.rs runs the same lines on a real node, where the pod runs and shares).

mod support;

use std::process::Command;

use serde_json::Value;
use support::cluster;
use support::readme::{readme, section, sh_blocks};

fn run_shell(command: &str) -> String {
    let bin = cluster::tool_path("helm");
    let bin_dir = bin.parent().expect("tool dir");
    let home = std::env::temp_dir().join(format!(
        "ots-operator-quickstart-helm-{}",
        std::process::id()
    ));
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output = Command::new("sh")
        .args(["-c", command])
        .current_dir(cluster::repo_root())
        .env("PATH", path)
        .env("KUBECONFIG", cluster::kubeconfig_path())
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .output()
        .expect("run sh");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "README quick start `{command}` failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Commands that need a container engine or a real node, which the test control plane lacks.
fn needs_container_engine(command: &str) -> bool {
    ["docker ", "podman ", "kind ", "minikube "]
        .iter()
        .any(|tool| command.starts_with(tool))
}

#[test]
fn readme_quick_start_installs_the_locally_built_image_and_shares_a_secret() {
    let readme = readme();
    let quick_start = section(&readme, "Quick start on a cluster");
    let blocks = sh_blocks(&quick_start);
    let steps = &blocks[0];
    assert!(
        steps
            .iter()
            .any(|c| c.starts_with("docker build -t ots-operator:dev .")),
        "the quick start builds the image: {steps:?}"
    );
    assert!(
        steps
            .iter()
            .any(|c| c.starts_with("kind load docker-image ots-operator:dev")),
        "the quick start loads the image into kind: {steps:?}"
    );
    assert!(
        quick_start.contains("minikube image load ots-operator:dev"),
        "the quick start names minikube too"
    );
    let mut ran = Vec::new();
    for command in steps {
        if needs_container_engine(command) {
            continue;
        }
        assert!(
            command.starts_with("helm ") || command.starts_with("kubectl "),
            "unexpected quick start command `{command}`"
        );
        run_shell(command);
        ran.push(command.clone());
    }
    assert!(ran.iter().any(|c| c.starts_with("helm install")));
    assert!(
        ran.iter()
            .any(|c| c.starts_with("kubectl apply -f examples/"))
    );

    // The Deployment runs the image that step 1 built, against the server step 2 named.
    let deployment: Value = serde_json::from_str(&run_shell(
        "kubectl -n ots-operator get deployment ots-operator -o json",
    ))
    .expect("Deployment JSON");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "ots-operator:dev");
    assert!(
        container["args"]
            .as_array()
            .expect("args")
            .contains(&Value::from("--ots-url=https://ots.example.com")),
        "{container}"
    );
    // The share of step 3 exists.
    run_shell("kubectl get ots db-password-for-alice");

    // The OCI install line names the chart version of this tree.
    let chart: Value = serde_yaml::from_str(
        &std::fs::read_to_string(cluster::repo_root().join("deploy/helm/ots-operator/Chart.yaml"))
            .expect("read Chart.yaml"),
    )
    .expect("Chart.yaml is YAML");
    let oci = format!(
        "helm install ots-operator oci://ghcr.io/ots-operator/charts/ots-operator --version {}",
        chart["version"].as_str().expect("chart version")
    );
    assert!(
        blocks.iter().flatten().any(|c| c.starts_with(&oci)),
        "the README's OCI install line is `{oci} …`: {blocks:?}"
    );
}
