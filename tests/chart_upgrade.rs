//! `helm upgrade` from the previous chart version (the chart as of the newest commit whose
//! Chart.yaml carried another version, taken from git history) to this one succeeds and leaves the
//! release on the new chart, CRD included. A test binary of its own: both versions install the
//! cluster-wide CRD and admission policy.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use support::cluster;
use support::tools::{helm, run};

const CHART: &str = "deploy/helm/ots-operator";
const RELEASE: &str = "ots-upgrade";
const NAMESPACE: &str = "ots-upgrade";

fn git(args: &[&str]) -> String {
    let mut command = Command::new("git");
    command.current_dir(cluster::repo_root()).args(args);
    run(command)
}

fn chart_version(chart_yaml: &str) -> String {
    let chart: Value = serde_yaml::from_str(chart_yaml).expect("Chart.yaml is YAML");
    chart["version"]
        .as_str()
        .expect("Chart.yaml has a version")
        .to_owned()
}

/// The previous chart version, extracted from git into a temp dir: (version, chart dir).
fn previous_chart() -> (String, PathBuf) {
    let current = chart_version(
        &std::fs::read_to_string(cluster::repo_root().join(CHART).join("Chart.yaml"))
            .expect("read Chart.yaml"),
    );
    let chart_yaml = format!("{CHART}/Chart.yaml");
    let commits = git(&["log", "--format=%H", "--", &chart_yaml]);
    let (commit, version) = commits
        .lines()
        .find_map(|commit| {
            let version = chart_version(&git(&["show", &format!("{commit}:{chart_yaml}")]));
            (version != current).then(|| (commit.to_owned(), version))
        })
        .unwrap_or_else(|| {
            panic!(
                "git history holds no chart version before {current}; \
                 CI must check out the full history (fetch-depth: 0)"
            )
        });
    let dir = std::env::temp_dir().join(format!(
        "ots-operator-previous-chart-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("create the temp dir");
    let archive = Command::new("git")
        .current_dir(cluster::repo_root())
        .args(["archive", "--format=tar", &commit, CHART])
        .output()
        .expect("git archive");
    assert!(archive.status.success(), "git archive {commit} failed");
    let tar = dir.join("chart.tar");
    std::fs::write(&tar, &archive.stdout).expect("write the archive");
    let mut untar = Command::new("tar");
    untar.arg("-xf").arg(&tar).arg("-C").arg(&dir);
    run(untar);
    (version, dir.join(CHART))
}

fn deployment_args() -> String {
    let mut command = cluster::tool_command("kubectl");
    command.args([
        "-n",
        NAMESPACE,
        "get",
        "deployment",
        &format!("{RELEASE}-ots-operator"),
        "-o",
        "jsonpath={.spec.template.spec.containers[0].args}",
    ]);
    run(command)
}

fn path(dir: &Path) -> &str {
    dir.to_str().expect("UTF-8 path")
}

#[test]
fn helm_upgrade_from_the_previous_chart_version_succeeds() {
    let (previous_version, previous) = previous_chart();
    // The previous chart installed with its defaults, as a user did then.
    run(helm(&[
        "install",
        RELEASE,
        path(&previous),
        "--namespace",
        NAMESPACE,
        "--create-namespace",
    ]));
    let status = run(helm(&["list", "--namespace", NAMESPACE, "-o", "json"]));
    assert!(
        status.contains(&format!("ots-operator-{previous_version}")),
        "{status}"
    );

    // The documented upgrade: keep the release's values, take the new chart's defaults for new
    // keys, and make the server choice the new chart asks for.
    run(helm(&[
        "upgrade",
        RELEASE,
        CHART,
        "--namespace",
        NAMESPACE,
        "--reset-then-reuse-values",
        "--set",
        "ots.acceptPublicService=true",
    ]));
    let releases: Value = serde_json::from_str(&run(helm(&[
        "list",
        "--namespace",
        NAMESPACE,
        "-o",
        "json",
    ])))
    .expect("helm list JSON");
    let release = &releases[0];
    assert_eq!(release["status"], "deployed");
    assert_eq!(release["revision"], "2");
    assert_ne!(
        release["chart"],
        format!("ots-operator-{previous_version}"),
        "the release runs the new chart"
    );
    let args = deployment_args();
    assert!(args.contains("--metrics-addr=[::]:8080"), "{args}");
    assert!(
        args.contains("--ots-url=https://onetimesecret.com"),
        "{args}"
    );

    // The CRD stays with the release through the upgrade.
    let mut crd = cluster::tool_command("kubectl");
    crd.args([
        "get",
        "crd",
        "onetimeshares.ots.dev",
        "-o",
        "jsonpath={.metadata.annotations.meta\\.helm\\.sh/release-name}",
    ]);
    assert_eq!(run(crd), RELEASE);
}
