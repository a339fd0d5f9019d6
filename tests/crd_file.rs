//! The checked-in CRD is exactly what the Rust types generate (`ots-operator crd`).

use std::process::Command;

#[test]
fn the_checked_in_crd_matches_the_rust_types() {
    let out = Command::new(env!("CARGO_BIN_EXE_ots-operator"))
        .arg("crd")
        .output()
        .expect("run ots-operator crd");
    assert!(out.status.success());
    let generated = String::from_utf8(out.stdout).expect("utf-8");
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/crds/onetimeshares.ots.dev.yaml"
    );
    let checked_in = std::fs::read_to_string(path).expect("read the CRD file");
    assert!(
        generated == checked_in,
        "crds/onetimeshares.ots.dev.yaml is stale: run `cargo run -- crd > crds/onetimeshares.ots.dev.yaml`"
    );
}

#[test]
fn every_spec_and_status_field_is_documented_for_kubectl_explain() {
    let out = Command::new(env!("CARGO_BIN_EXE_ots-operator"))
        .arg("crd")
        .output()
        .expect("run ots-operator crd");
    let crd: serde_json::Value = serde_yaml::from_slice(&out.stdout).expect("yaml");
    let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    fn walk(path: &str, node: &serde_json::Value, missing: &mut Vec<String>) {
        if let Some(props) = node.get("properties").and_then(|p| p.as_object()) {
            for (name, child) in props {
                let here = format!("{path}.{name}");
                let generic = ["metadata", "apiVersion", "kind"].contains(&name.as_str());
                if !generic && child.get("description").is_none() {
                    missing.push(here.clone());
                }
                walk(&here, child, missing);
            }
        }
        if let Some(items) = node.get("items") {
            walk(&format!("{path}[]"), items, missing);
        }
    }
    let mut missing = Vec::new();
    walk("", schema, &mut missing);
    assert!(
        missing.is_empty(),
        "fields without a description: {missing:?}"
    );
}
