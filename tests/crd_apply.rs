//! The CRD and every example apply without a warning, as users apply them (`kubectl apply -f`),
//! and `kubectl explain` reads the field docs. A test binary of its own: the CRD is created here,
//! not found already installed, so the apiserver judges it as on a user's first install.

mod support;

use std::process::Output;

use support::{cluster, tools};

fn kubectl(args: &[&str]) -> Output {
    tools::kubectl(args).output().expect("run kubectl")
}

/// Runs `kubectl ARGS`, which must succeed and print no warning; returns its stdout.
fn apply_quietly(args: &[&str]) -> String {
    let out = kubectl(args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "kubectl {args:?} failed:\n{stdout}{stderr}"
    );
    assert!(
        !stderr.contains("Warning"),
        "kubectl {args:?} warned:\n{stderr}"
    );
    stdout
}

#[test]
fn the_crd_and_every_example_apply_without_a_warning_and_explain_reads_well() {
    cluster::control_plane();
    let created = apply_quietly(&["apply", "-f", "crds/onetimeshares.ots.dev.yaml"]);
    assert!(created.contains("created"), "{created}");
    let established = kubectl(&[
        "wait",
        "--for=condition=Established",
        "--timeout=120s",
        "crd/onetimeshares.ots.dev",
    ]);
    assert!(established.status.success());
    // Applying it again (an upgrade) warns of nothing either.
    apply_quietly(&["apply", "-f", "crds/onetimeshares.ots.dev.yaml"]);
    // The server kinds, which examples/otsserver.yaml and examples/clusterotsserver.yaml use.
    for crd in ["otsservers.ots.dev", "clusterotsservers.ots.dev"] {
        let created = apply_quietly(&["apply", "-f", &format!("crds/{crd}.yaml")]);
        assert!(created.contains("created"), "{created}");
        let established = kubectl(&[
            "wait",
            "--for=condition=Established",
            "--timeout=120s",
            &format!("crd/{crd}"),
        ]);
        assert!(established.status.success(), "{crd} is established");
    }

    kubectl(&["create", "namespace", "examples"]);
    let mut examples: Vec<String> = std::fs::read_dir(cluster::repo_root().join("examples"))
        .expect("read examples/")
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".yaml"))
        .collect();
    examples.sort();
    // The Secrets first: the shares name them.
    examples.sort_by_key(|name| name != "secrets.yaml");
    assert!(examples.len() >= 10, "{examples:?}");
    for example in &examples {
        let path = format!("examples/{example}");
        let out = apply_quietly(&["apply", "-n", "examples", "-f", &path]);
        assert!(out.contains("created"), "{path}: {out}");
    }

    // kubectl explain shows the doc comments, with the types Kubernetes knows.
    let explain = |field: &str| -> String {
        let out = kubectl(&["explain", field]);
        assert!(out.status.success(), "kubectl explain {field}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let max_shares = explain("onetimeshare.spec.maxShares");
    assert!(max_shares.contains("<integer>"), "{max_shares}");
    assert!(max_shares.contains("maxShares"), "{max_shares}");
    let conditions = explain("onetimeshare.status.conditions");
    for word in ["Ready", "Reconciling", "Stalled", "kstatus"] {
        assert!(conditions.contains(word), "{word}: {conditions}");
    }
}
