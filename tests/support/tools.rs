//! The command-line tools the chart and manifest tests drive: `helm` and `kubectl` from the
//! pinned build, against this test binary's control plane.
#![allow(dead_code)]

use super::cluster;
use serde_json::Value;
use std::process::Command;

/// `helm` from the pinned build, with config dirs of its own (one set per test binary).
pub fn helm(args: &[&str]) -> Command {
    let home = std::env::temp_dir().join(format!("ots-operator-test-helm-{}", std::process::id()));
    let mut command = cluster::tool_command("helm");
    command
        .current_dir(cluster::repo_root())
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .args(args);
    command
}

/// `kubectl` of the same Kubernetes release as the apiserver, as cluster admin.
pub fn kubectl(args: &[&str]) -> Command {
    let mut command = cluster::tool_command("kubectl");
    command.current_dir(cluster::repo_root()).args(args);
    command
}

/// Runs a command that must succeed and returns its stdout; on failure panics with its output.
pub fn run(mut command: Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("cannot run {command:?}: {error}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The YAML documents of a multi-document stream, as JSON values; empty documents are dropped.
pub fn yaml_documents(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|document| {
            serde::Deserialize::deserialize(document).expect("every document is valid YAML")
        })
        .filter(|document: &Value| !document.is_null())
        .collect()
}
