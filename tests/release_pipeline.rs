//! The release pipeline as code (`.github/workflows/`) and the names users see agree: the image the
//! release workflow pushes is the chart's `image.repository`, the repository Cargo.toml, Chart.yaml,
//! NOTES.txt and the Dockerfile's labels name is one, and the release builds both architectures,
//! signs, attaches an SBOM, pushes the chart as an OCI artifact and attaches manifests and CRD.
//! (`.ci/run` lints the workflows with actionlint.) No cluster needed.

use serde_json::Value;

fn read(path: &str) -> String {
    std::fs::read_to_string(
        std::path::PathBuf::from(
            std::env::var_os("CARGO_MANIFEST_DIR")
                .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
        )
        .join(path),
    )
    .unwrap_or_else(|error| panic!("read {path}: {error}"))
}

fn yaml(path: &str) -> Value {
    serde_yaml::from_str(&read(path)).unwrap_or_else(|error| panic!("{path} is YAML: {error}"))
}

const REPOSITORY: &str = "https://github.com/ots-operator/ots-operator";
const IMAGE: &str = "ghcr.io/ots-operator/ots-operator";

#[test]
fn chart_cargo_dockerfile_notes_and_release_name_one_repository_and_image() {
    let cargo = read("Cargo.toml");
    assert!(
        cargo.contains(&format!("repository = \"{REPOSITORY}\"")),
        "Cargo.toml names {REPOSITORY}"
    );
    let chart = yaml("deploy/helm/ots-operator/Chart.yaml");
    assert_eq!(chart["home"], REPOSITORY);
    assert_eq!(chart["sources"][0], REPOSITORY);
    let values = yaml("deploy/helm/ots-operator/values.yaml");
    assert_eq!(values["image"]["repository"], IMAGE);
    let dockerfile = read("Dockerfile");
    assert!(dockerfile.contains(&format!("org.opencontainers.image.source=\"{REPOSITORY}\"")));
    let release = yaml(".github/workflows/release.yml");
    assert_eq!(release["env"]["IMAGE"], IMAGE);
    // Every GitHub URL the user reads points at the one repository.
    for path in [
        "README.md",
        "deploy/helm/ots-operator/README.md",
        "deploy/helm/ots-operator/templates/NOTES.txt",
        "Dockerfile",
    ] {
        let text = read(path);
        for (index, _) in text.match_indices("github.com/") {
            let rest = &text[index..];
            if rest.starts_with("github.com/ots-operator/") {
                assert!(
                    rest.starts_with("github.com/ots-operator/ots-operator"),
                    "{path}: {}",
                    &rest[..rest.len().min(60)]
                );
            }
        }
        for (index, _) in text.match_indices("ghcr.io/") {
            let rest = &text[index..];
            assert!(
                rest.starts_with(IMAGE) || rest.starts_with("ghcr.io/ots-operator/charts"),
                "{path} names another registry path: {}",
                &rest[..rest.len().min(60)]
            );
        }
    }
}

#[test]
fn release_workflow_builds_two_architectures_signs_attaches_sbom_and_publishes_chart_and_manifests()
{
    let text = read(".github/workflows/release.yml");
    let release = yaml(".github/workflows/release.yml");
    assert_eq!(release["on"]["push"]["tags"][0], "v*.*.*");
    let steps = |job: &str| -> Vec<Value> {
        release["jobs"][job]["steps"]
            .as_array()
            .unwrap_or_else(|| panic!("job {job} has steps"))
            .clone()
    };
    let build = steps("image")
        .into_iter()
        .find(|step| {
            step["uses"]
                .as_str()
                .is_some_and(|uses| uses.starts_with("docker/build-push-action"))
        })
        .expect("the image job builds with buildx");
    assert_eq!(build["with"]["platforms"], "linux/amd64,linux/arm64");
    assert_eq!(build["with"]["push"], true);
    assert_eq!(build["with"]["sbom"], true);
    assert_eq!(
        release["jobs"]["image"]["permissions"]["id-token"], "write",
        "keyless signing needs the OIDC token"
    );
    assert!(text.contains("cosign sign --yes \"${IMAGE}@${DIGEST}\""));
    assert!(text.contains("cosign attest --yes --type spdxjson"));
    assert!(text.contains("helm push dist/ots-operator-*.tgz \"${CHART_REPO}\""));
    assert_eq!(
        release["env"]["CHART_REPO"],
        "oci://ghcr.io/ots-operator/charts"
    );
    for asset in [
        "deploy/manifests/ots-operator.yaml",
        "crds/onetimeshares.ots.dev.yaml",
        "dist/ots-operator-*.tgz",
    ] {
        assert!(text.contains(asset), "the GitHub release lacks {asset}");
    }
    let ci = yaml(".github/workflows/ci.yml");
    let runs_ci = ci["jobs"]["ci"]["steps"]
        .as_array()
        .expect("ci steps")
        .iter()
        .any(|step| step["run"] == ".ci/run");
    assert!(runs_ci, "ci.yml runs .ci/run");
    assert!(
        read(".ci/run").contains("actionlint .github/workflows/*.yml")
            || read(".ci/run").contains("actionlint\" .github/workflows/*.yml")
    );
}
