//! The checked-in CRDs are exactly what the Rust types generate (`ots-operator crd [KIND]`).

use std::process::Command;

/// Each kind `ots-operator crd` prints, with its file under `crds/`.
const KINDS: [(&str, &str); 5] = [
    ("OneTimeShare", "onetimeshares.ots.dev.yaml"),
    ("OtsServer", "otsservers.ots.dev.yaml"),
    ("ClusterOtsServer", "clusterotsservers.ots.dev.yaml"),
    ("OtsNotification", "otsnotifications.ots.dev.yaml"),
    (
        "ClusterOtsNotification",
        "clusterotsnotifications.ots.dev.yaml",
    ),
];

fn generated(kind: &str) -> Vec<u8> {
    let out = Command::new(env!("CARGO_BIN_EXE_ots-operator"))
        .args(["crd", kind])
        .output()
        .expect("run ots-operator crd");
    assert!(out.status.success(), "ots-operator crd {kind}");
    out.stdout
}

#[test]
fn the_checked_in_crds_match_the_rust_types() {
    for (kind, file) in KINDS {
        let generated = String::from_utf8(generated(kind)).expect("utf-8");
        let path = std::path::PathBuf::from(
            std::env::var_os("CARGO_MANIFEST_DIR")
                .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
        )
        .join("crds")
        .join(file);
        let checked_in = std::fs::read_to_string(path).expect("read the CRD file");
        assert!(
            generated == checked_in,
            "crds/{file} is stale: run `cargo run -- crd {kind} > crds/{file}`"
        );
    }
    // Without a kind: OneTimeShare's, as before.
    let out = Command::new(env!("CARGO_BIN_EXE_ots-operator"))
        .arg("crd")
        .output()
        .expect("run ots-operator crd");
    assert_eq!(out.stdout, generated("OneTimeShare"));
}

#[test]
fn every_spec_and_status_field_is_documented_for_kubectl_explain() {
    for (kind, _) in KINDS {
        every_field_of_is_documented(kind);
    }
}

fn every_field_of_is_documented(kind: &str) {
    let crd: serde_json::Value = serde_yaml::from_slice(&generated(kind)).expect("yaml");
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
        "{kind}: fields without a description: {missing:?}"
    );
}

#[test]
fn every_schema_format_is_one_kubernetes_knows() {
    // The formats the apiserver validates; any other makes `kubectl apply` of the CRD print
    // `Warning: unrecognized format` (apiextensions-apiserver's supported formats).
    const KNOWN: &[&str] = &[
        "bsonobjectid",
        "uri",
        "email",
        "hostname",
        "ipv4",
        "ipv6",
        "cidr",
        "mac",
        "uuid",
        "uuid3",
        "uuid4",
        "uuid5",
        "isbn",
        "isbn10",
        "isbn13",
        "creditcard",
        "ssn",
        "hexcolor",
        "rgbcolor",
        "byte",
        "password",
        "date",
        "duration",
        "datetime",
        "date-time",
        "int32",
        "int64",
        "float",
        "double",
    ];
    fn walk(path: &str, node: &serde_json::Value, found: &mut Vec<(String, String)>) {
        match node {
            serde_json::Value::Object(map) => {
                if let Some(format) = map.get("format").and_then(|f| f.as_str()) {
                    found.push((path.to_owned(), format.to_owned()));
                }
                for (key, child) in map {
                    walk(&format!("{path}.{key}"), child, found);
                }
            }
            serde_json::Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    walk(&format!("{path}[{i}]"), child, found);
                }
            }
            _ => {}
        }
    }
    let mut found = Vec::new();
    for (kind, _) in KINDS {
        let crd: serde_json::Value = serde_yaml::from_slice(&generated(kind)).expect("yaml");
        walk(kind, &crd["spec"], &mut found);
    }
    let unknown: Vec<_> = found
        .iter()
        .filter(|(_, format)| !KNOWN.contains(&format.as_str()))
        .collect();
    assert!(
        unknown.is_empty(),
        "formats Kubernetes does not know: {unknown:?}"
    );
    // The unsigned fields are published as int32.
    for field in ["maxShares", "maxLiveSharesPerSecret", "requestsPerSecond"] {
        assert!(
            found
                .iter()
                .any(|(path, format)| path.ends_with(field) && format == "int32"),
            "{field}: {found:?}"
        );
    }
}
