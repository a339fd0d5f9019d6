//! The Helm chart, the rendered manifests, the examples and the RBAC they grant, checked on a real
//! kube-apiserver: lint, render, install, apply, and what the operator's ServiceAccount may and may
//! not do (asserted with real requests made by impersonating it).

mod support;

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Namespace, Pod, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams,
    WatchParams,
};
use kube::runtime::wait::{await_condition, conditions};
use serde_json::{Value, json};
use support::cluster;
use support::tools::{helm, kubectl, run, yaml_documents};

/// Generous bound for waits on a loaded 2-core machine; never a timing assertion.
const WAIT: Duration = Duration::from_secs(120);

const CHART: &str = "deploy/helm/ots-operator";
const CRD_FILE: &str = "crds/onetimeshares.ots.dev.yaml";
const CRD_NAME: &str = "onetimeshares.ots.dev";
/// The Lease the operator elects its leader with (fixed by the design).
const LEADER_LEASE: &str = "ots-operator-leader";

/// The explicit choice of the public OTS service; the chart refuses to install without a server.
const PUBLIC: &str = "ots.acceptPublicService=true";

/// Release installed with the chart's default values by [`installed_release`].
const RELEASE: &str = "chart-it";
const RELEASE_NAMESPACE: &str = "ots-chart-it";
/// The ServiceAccount of [`RELEASE`]: `<release>-<chart>`.
const RELEASE_SERVICE_ACCOUNT: &str = "chart-it-ots-operator";

fn repo_path(path: &str) -> PathBuf {
    cluster::repo_root().join(path)
}

/// `helm template` of the chart as release `chart-test` in namespace `ots-system`, with extra args.
fn render(extra: &[&str]) -> Vec<Value> {
    let mut args = vec![
        "template",
        "chart-test",
        CHART,
        "--namespace",
        "ots-system",
        "--set",
        PUBLIC,
    ];
    args.extend_from_slice(extra);
    yaml_documents(&run(helm(&args)))
}

fn kind_of(object: &Value) -> &str {
    object["kind"].as_str().unwrap_or_default()
}

fn name_of(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or_default()
}

fn namespace_of(object: &Value) -> Option<&str> {
    object["metadata"]["namespace"].as_str()
}

fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects
        .iter()
        .filter(|object| kind_of(object) == kind)
        .collect()
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|object| kind_of(object) == kind && name_of(object) == name)
        .unwrap_or_else(|| panic!("the render has no {kind} {name}"))
}

fn strings(value: &Value) -> Vec<&str> {
    value
        .as_array()
        .map(|items| items.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// The operator container of a rendered Deployment.
fn operator_container(objects: &[Value]) -> &Value {
    let deployments = of_kind(objects, "Deployment");
    assert_eq!(deployments.len(), 1, "the chart renders one Deployment");
    &deployments[0]["spec"]["template"]["spec"]["containers"][0]
}

fn env_var<'a>(container: &'a Value, name: &str) -> Option<&'a Value> {
    container["env"]
        .as_array()?
        .iter()
        .find(|variable| variable["name"] == name)
}

// ---------------------------------------------------------------------------------------------
// Lint and render (no cluster state involved)

#[test]
fn chart_lints_clean_in_cluster_wide_and_namespace_scoped_mode() {
    for extra in [
        &[][..],
        &["--set", "watchNamespaces={team-a,team-b}"][..],
        &[
            "--set",
            "metrics.serviceMonitor.enabled=true",
            "--set",
            "ots.existingSecret=ots-credentials",
        ][..],
        &[
            "--set",
            "admissionPolicy.maxTtl=24h",
            "--set",
            "admissionPolicy.passphrase.required=true",
            "--set",
            "admissionPolicy.recipientDomains={example.com,*.example.org}",
            "--set",
            "admissionPolicy.maxLiveSharesPerSecret=3",
        ][..],
        &["--set", "admissionPolicy.enabled=false"][..],
    ] {
        let mut args = vec!["lint", "--strict", CHART, "--set", PUBLIC];
        args.extend_from_slice(extra);
        let output = run(helm(&args));
        assert!(
            !output.contains("[WARNING]") && !output.contains("[ERROR]"),
            "helm lint {extra:?} reported problems:\n{output}"
        );
    }
}

#[test]
fn values_schema_rejects_an_unknown_api_version_and_a_misspelt_value() {
    for bad in ["ots.api=v3", "installCRD=true", "logFormat=xml"] {
        let output = helm(&[
            "template",
            "chart-test",
            CHART,
            "--set",
            PUBLIC,
            "--set",
            bad,
        ])
        .output()
        .expect("run helm template");
        assert!(
            !output.status.success(),
            "helm template --set {bad} should be refused by values.schema.json"
        );
    }
}

#[test]
fn default_render_runs_a_hardened_leader_elected_operator_with_probes() {
    let objects = render(&[]);
    let deployment = find(&objects, "Deployment", "chart-test-ots-operator");
    assert_eq!(deployment["spec"]["replicas"], 1);
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "chart-test-ots-operator");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );

    let container = operator_container(&objects);
    assert_eq!(
        container["image"],
        "ghcr.io/ots-operator/ots-operator:0.1.0"
    );
    let args = strings(&container["args"]);
    for expected in [
        "run",
        "--ots-url=https://onetimesecret.com",
        "--ots-api=auto",
        "--metrics-addr=[::]:8080",
        "--leader-elect",
        "--leader-elect-lease=ots-operator-leader",
        "--log-format=json",
        // Records live in the operator's own namespace (POD_NAMESPACE, from the downward API).
        "--state-namespace=$(POD_NAMESPACE)",
        // The admission policy is on by default, so creators were checked.
        "--admission-guard",
    ] {
        assert!(args.contains(&expected), "args {args:?} lack {expected}");
    }
    assert!(
        !args.iter().any(|arg| arg.starts_with("--namespace")),
        "default mode watches every namespace, but args are {args:?}"
    );
    assert!(
        !args
            .iter()
            .any(|arg| arg.starts_with("--max-live-shares-per-secret")),
        "no live-share limit unless admissionPolicy.maxLiveSharesPerSecret is set: {args:?}"
    );
    assert!(
        !args.iter().any(|arg| {
            [
                "--ots-rate",
                "--ots-burst",
                "--ots-max-in-flight",
                "--concurrency",
            ]
            .iter()
            .any(|flag| arg.starts_with(flag))
        }),
        "the operator's own defaults for the OTS budget and reconcile slots: {args:?}"
    );

    let security = &container["securityContext"];
    assert_eq!(security["runAsNonRoot"], true);
    assert_eq!(security["runAsUser"], 65532);
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(strings(&security["capabilities"]["drop"]), ["ALL"]);
    assert_eq!(security["seccompProfile"]["type"], "RuntimeDefault");

    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["livenessProbe"]["httpGet"]["port"], "metrics");
    assert_eq!(container["ports"][0]["containerPort"], 8080);
    assert!(container["resources"]["limits"]["memory"].is_string());

    for downward in ["POD_NAMESPACE", "POD_NAME"] {
        assert!(
            env_var(container, downward)
                .is_some_and(|var| var["valueFrom"]["fieldRef"].is_object()),
            "{downward} must come from the downward API"
        );
    }
    assert!(
        env_var(container, "OTS_USERNAME").is_none(),
        "no credentials by default: shares are anonymous"
    );
}

#[test]
fn ots_values_become_flags_and_credentials_come_only_from_the_named_secret() {
    let objects = render(&[
        "--set",
        "ots.url=https://ots.example.com",
        "--set",
        "ots.api=v2",
        "--set",
        "ots.existingSecret=my-ots-credentials",
        "--set",
        "ots.allowedServerUrls={https://a.example.com,https://b.example.com}",
        "--set",
        "ots.rate=5",
        "--set",
        "ots.burst=10",
        "--set",
        "ots.maxInFlight=4",
        "--set",
        "concurrency=20",
        "--set",
        "concurrencyPerNamespace=5",
        "--set",
        "leaderElection.enabled=false",
        "--set",
        "logFormat=text",
        "--set",
        "extraArgs={--some-flag}",
        "--set",
        "admissionPolicy.maxLiveSharesPerSecret=3",
    ]);
    let container = operator_container(&objects);
    let args = strings(&container["args"]);
    for expected in [
        "--ots-url=https://ots.example.com",
        "--ots-api=v2",
        "--allow-server-url=https://a.example.com",
        "--allow-server-url=https://b.example.com",
        "--ots-rate=5",
        "--ots-burst=10",
        "--ots-max-in-flight=4",
        "--concurrency=20",
        "--concurrency-per-namespace=5",
        "--log-format=text",
        "--some-flag",
        "--max-live-shares-per-secret=3",
    ] {
        assert!(args.contains(&expected), "args {args:?} lack {expected}");
    }
    assert!(!args.contains(&"--leader-elect"));
    assert!(
        of_kind(&objects, "Role")
            .iter()
            .all(|role| !name_of(role).ends_with("-leader-election")),
        "without leader election there is no Lease Role"
    );

    for (variable, key) in [("OTS_USERNAME", "username"), ("OTS_API_TOKEN", "apiToken")] {
        let reference = &env_var(container, variable)
            .unwrap_or_else(|| panic!("{variable} is set from the Secret"))["valueFrom"]["secretKeyRef"];
        assert_eq!(reference["name"], "my-ots-credentials");
        assert_eq!(reference["key"], key);
    }
}

#[test]
fn lease_name_value_sets_the_flag_and_the_only_lease_the_role_reaches() {
    let objects = render(&["--set", "leaderElection.leaseName=team-a-leader"]);
    let args = strings(&operator_container(&objects)["args"]);
    assert!(
        args.contains(&"--leader-elect-lease=team-a-leader"),
        "args {args:?}"
    );
    let role = find(&objects, "Role", "chart-test-ots-operator-leader-election");
    for rule in role["rules"].as_array().expect("the Lease Role has rules") {
        let verbs = strings(&rule["verbs"]);
        if verbs == ["create"] {
            continue; // create cannot be limited by name
        }
        assert_eq!(strings(&rule["resourceNames"]), ["team-a-leader"], "{rule}");
    }
}

/// Every RBAC rule the chart renders, with the object that holds it.
fn rules(objects: &[Value]) -> Vec<(String, &Value)> {
    objects
        .iter()
        .filter(|object| matches!(kind_of(object), "Role" | "ClusterRole"))
        .flat_map(|role| {
            let owner = format!("{} {}", kind_of(role), name_of(role));
            role["rules"]
                .as_array()
                .into_iter()
                .flatten()
                .map(move |rule| (owner.clone(), rule))
        })
        .collect()
}

/// The Role holding the operator's own state (its per-share record Secrets).
const STATE_ROLE: &str = "chart-test-ots-operator-state";

#[test]
fn no_rendered_rule_grants_more_than_get_on_secrets_outside_the_state_role_or_any_wildcard() {
    for extra in [&[][..], &["--set", "watchNamespaces={team-a,team-b}"][..]] {
        let objects = render(extra);
        let rules = rules(&objects);
        assert!(!rules.is_empty());
        let state_role = find(&objects, "Role", STATE_ROLE);
        assert_eq!(
            namespace_of(state_role),
            Some("ots-system"),
            "the operator writes Secrets only in its own namespace"
        );
        let mut state_verbs = BTreeSet::new();
        for (owner, rule) in rules {
            if owner == format!("Role {STATE_ROLE}") {
                assert_eq!(strings(&rule["apiGroups"]), [""], "{owner}: {rule}");
                assert_eq!(strings(&rule["resources"]), ["secrets"], "{owner}: {rule}");
                state_verbs.extend(strings(&rule["verbs"]));
                continue;
            }
            let resources = strings(&rule["resources"]);
            let verbs = strings(&rule["verbs"]);
            assert!(
                !resources.contains(&"*")
                    && !verbs.contains(&"*")
                    && !strings(&rule["apiGroups"]).contains(&"*"),
                "{owner} has a wildcard rule: {rule}"
            );
            if resources.contains(&"secrets") {
                assert_eq!(
                    verbs,
                    ["get"],
                    "{owner} may do more than get Secrets: {rule}"
                );
            }
        }
        assert_eq!(
            state_verbs,
            BTreeSet::from(["create", "delete", "get", "list", "patch", "update"]),
            "the state Role grants exactly what the records need (no watch)"
        );
        let binding = find(&objects, "RoleBinding", STATE_ROLE);
        assert_eq!(namespace_of(binding), Some("ots-system"));
        assert_eq!(binding["roleRef"]["name"], STATE_ROLE);
        assert_eq!(binding["subjects"][0]["name"], "chart-test-ots-operator");
        assert_eq!(binding["subjects"][0]["namespace"], "ots-system");
    }
}

#[test]
fn secret_writes_adds_create_and_patch_on_secrets_and_nothing_more() {
    for extra in [
        &["--set", "secretWrites.enabled=true"][..],
        &[
            "--set",
            "secretWrites.enabled=true",
            "--set",
            "watchNamespaces={team-a,team-b}",
        ][..],
    ] {
        let objects = render(extra);
        let mut writers = 0;
        for (owner, rule) in rules(&objects) {
            if owner == format!("Role {STATE_ROLE}")
                || !strings(&rule["resources"]).contains(&"secrets")
            {
                continue;
            }
            let verbs = strings(&rule["verbs"]);
            assert!(
                verbs == ["get"] || verbs == ["create", "patch"],
                "{owner} grants more on Secrets than get, create and patch: {rule}"
            );
            if verbs == ["create", "patch"] {
                writers += 1;
            }
        }
        let expected = if extra.len() > 2 { 2 } else { 1 };
        assert_eq!(writers, expected, "one write rule per operator role");
    }
}

#[test]
fn cluster_wide_mode_binds_one_cluster_role_and_a_lease_role_in_the_release_namespace() {
    let objects = render(&[]);
    let role = find(&objects, "ClusterRole", "chart-test-ots-operator");
    let resources: BTreeSet<&str> = role["rules"]
        .as_array()
        .expect("the ClusterRole has rules")
        .iter()
        .flat_map(|rule| strings(&rule["resources"]))
        .collect();
    assert_eq!(
        resources,
        BTreeSet::from([
            "onetimeshares",
            "onetimeshares/status",
            "onetimeshares/finalizers",
            "otsservers",
            "otsservers/status",
            "otsnotifications",
            "otsnotifications/status",
            "secrets",
            "events"
        ])
    );
    cluster_servers_role_grants_only_cluster_servers(&objects);
    cluster_notifications_role_grants_only_cluster_notifications(&objects);
    let binding = find(&objects, "ClusterRoleBinding", "chart-test-ots-operator");
    assert_eq!(binding["subjects"][0]["name"], "chart-test-ots-operator");
    assert_eq!(binding["subjects"][0]["namespace"], "ots-system");

    let lease_role = find(&objects, "Role", "chart-test-ots-operator-leader-election");
    assert_eq!(namespace_of(lease_role), Some("ots-system"));
    assert!(
        of_kind(&objects, "Role").iter().all(|role| {
            (name_of(role).ends_with("-leader-election") || name_of(role) == STATE_ROLE)
                && namespace_of(role) == Some("ots-system")
        }),
        "cluster-wide mode needs no per-namespace Roles, only the Lease and state Roles of the release namespace"
    );
}

#[test]
fn namespace_scoped_mode_renders_roles_per_namespace_and_a_cluster_role_only_for_cluster_servers() {
    let objects = render(&["--set", "watchNamespaces={team-a,team-b}"]);
    let cluster_roles: BTreeSet<&str> = of_kind(&objects, "ClusterRole")
        .into_iter()
        .map(name_of)
        .collect();
    assert_eq!(
        cluster_roles,
        BTreeSet::from([
            "chart-test-ots-operator-cluster-notifications",
            "chart-test-ots-operator-cluster-servers",
            "chart-test-ots-operator-edit",
            "chart-test-ots-operator-view"
        ]),
        "only the aggregated user roles and the cluster-scoped kinds' roles stay cluster-wide"
    );
    let cluster_bindings: BTreeSet<&str> = of_kind(&objects, "ClusterRoleBinding")
        .into_iter()
        .map(name_of)
        .collect();
    assert_eq!(
        cluster_bindings,
        BTreeSet::from([
            "chart-test-ots-operator-cluster-notifications",
            "chart-test-ots-operator-cluster-servers"
        ]),
        "the operator's only cluster-wide rights are on ClusterOtsServers and ClusterOtsNotifications"
    );
    cluster_servers_role_grants_only_cluster_servers(&objects);
    cluster_notifications_role_grants_only_cluster_notifications(&objects);

    for namespace in ["team-a", "team-b"] {
        let role = objects
            .iter()
            .find(|object| {
                kind_of(object) == "Role"
                    && name_of(object) == "chart-test-ots-operator"
                    && namespace_of(object) == Some(namespace)
            })
            .unwrap_or_else(|| panic!("no operator Role in {namespace}"));
        assert!(
            role["rules"]
                .as_array()
                .is_some_and(|rules| !rules.is_empty())
        );
        let binding = objects
            .iter()
            .find(|object| {
                kind_of(object) == "RoleBinding" && namespace_of(object) == Some(namespace)
            })
            .unwrap_or_else(|| panic!("no RoleBinding in {namespace}"));
        assert_eq!(binding["roleRef"]["kind"], "Role");
        assert_eq!(binding["subjects"][0]["namespace"], "ots-system");
    }
    let args = strings(&operator_container(&objects)["args"]);
    assert!(args.contains(&"--namespace=team-a") && args.contains(&"--namespace=team-b"));
}

/// The operator's ClusterRole for ClusterOtsServers (in every mode) grants nothing but watching
/// them and writing their status, and is bound to the operator's ServiceAccount.
fn cluster_servers_role_grants_only_cluster_servers(objects: &[Value]) {
    let role = find(
        objects,
        "ClusterRole",
        "chart-test-ots-operator-cluster-servers",
    );
    let granted: BTreeSet<(&str, &str)> = role["rules"]
        .as_array()
        .expect("the cluster servers' ClusterRole has rules")
        .iter()
        .flat_map(|rule| {
            let verbs = strings(&rule["verbs"]);
            strings(&rule["resources"])
                .into_iter()
                .flat_map(move |resource| verbs.clone().into_iter().map(move |v| (resource, v)))
        })
        .collect();
    assert_eq!(
        granted,
        BTreeSet::from([
            ("clusterotsservers", "get"),
            ("clusterotsservers", "list"),
            ("clusterotsservers", "watch"),
            ("clusterotsservers/status", "patch"),
            ("clusterotsservers/status", "update"),
            ("namespaces", "get"),
        ])
    );
    for rule in role["rules"].as_array().into_iter().flatten() {
        let group = if strings(&rule["resources"]) == ["namespaces"] {
            ""
        } else {
            "ots.dev"
        };
        assert_eq!(strings(&rule["apiGroups"]), [group], "{rule}");
    }
    let binding = find(
        objects,
        "ClusterRoleBinding",
        "chart-test-ots-operator-cluster-servers",
    );
    assert_eq!(binding["roleRef"]["kind"], "ClusterRole");
    assert_eq!(binding["subjects"][0]["name"], "chart-test-ots-operator");
    assert_eq!(binding["subjects"][0]["namespace"], "ots-system");
}

/// The operator's ClusterRole for ClusterOtsNotifications (in every mode) grants nothing but
/// watching them and writing their status, and is bound to the operator's ServiceAccount.
fn cluster_notifications_role_grants_only_cluster_notifications(objects: &[Value]) {
    let name = "chart-test-ots-operator-cluster-notifications";
    let role = find(objects, "ClusterRole", name);
    let granted: BTreeSet<(&str, &str)> = role["rules"]
        .as_array()
        .expect("the cluster notifications' ClusterRole has rules")
        .iter()
        .flat_map(|rule| {
            let core = strings(&rule["resources"])
                .iter()
                .all(|r| !r.contains("ots"));
            let group = if core { "" } else { "ots.dev" };
            assert_eq!(strings(&rule["apiGroups"]), [group], "{rule}");
            if core {
                assert_eq!(strings(&rule["resourceNames"]), ["kubernetes"], "{rule}");
            }
            let verbs = strings(&rule["verbs"]);
            strings(&rule["resources"])
                .into_iter()
                .flat_map(move |resource| verbs.clone().into_iter().map(move |v| (resource, v)))
        })
        .collect();
    assert_eq!(
        granted,
        BTreeSet::from([
            ("clusterotsnotifications", "get"),
            ("clusterotsnotifications", "list"),
            ("clusterotsnotifications", "watch"),
            ("clusterotsnotifications/status", "patch"),
            ("clusterotsnotifications/status", "update"),
            ("endpoints", "get"),
            ("services", "get"),
        ])
    );
    let binding = find(objects, "ClusterRoleBinding", name);
    assert_eq!(binding["roleRef"]["kind"], "ClusterRole");
    assert_eq!(binding["roleRef"]["name"], name);
    assert_eq!(binding["subjects"][0]["name"], "chart-test-ots-operator");
    assert_eq!(binding["subjects"][0]["namespace"], "ots-system");
}

#[test]
fn share_rights_aggregate_into_admin_and_edit_but_not_view() {
    let objects = render(&[]);
    let role = find(&objects, "ClusterRole", "chart-test-ots-operator-edit");
    let labels = &role["metadata"]["labels"];
    assert_eq!(
        labels["rbac.authorization.k8s.io/aggregate-to-admin"],
        "true"
    );
    assert_eq!(
        labels["rbac.authorization.k8s.io/aggregate-to-edit"],
        "true"
    );
    assert!(
        labels
            .get("rbac.authorization.k8s.io/aggregate-to-view")
            .is_none()
    );
    let verbs = strings(&role["rules"][0]["verbs"]);
    assert!(verbs.contains(&"create") && verbs.contains(&"delete"));
    assert!(
        strings(&role["rules"][0]["resources"]) == ["onetimeshares"],
        "users never write a share's status"
    );
    // A namespace's own servers aggregate too; never their status, never ClusterOtsServers.
    let resources: BTreeSet<&str> = role["rules"]
        .as_array()
        .expect("the edit ClusterRole has rules")
        .iter()
        .flat_map(|rule| strings(&rule["resources"]))
        .collect();
    assert_eq!(
        resources,
        BTreeSet::from(["onetimeshares", "otsservers", "otsnotifications"])
    );
}

#[test]
fn view_may_read_ots_servers_and_no_aggregated_role_reaches_cluster_servers() {
    let objects = render(&[]);
    let role = find(&objects, "ClusterRole", "chart-test-ots-operator-view");
    let labels = &role["metadata"]["labels"];
    assert_eq!(
        labels["rbac.authorization.k8s.io/aggregate-to-view"],
        "true"
    );
    for role in ["admin", "edit"] {
        assert!(
            labels
                .get(format!("rbac.authorization.k8s.io/aggregate-to-{role}"))
                .is_none()
        );
    }
    let rules = role["rules"]
        .as_array()
        .expect("the view ClusterRole has rules");
    assert_eq!(rules.len(), 1);
    assert_eq!(strings(&rules[0]["apiGroups"]), ["ots.dev"]);
    assert_eq!(strings(&rules[0]["resources"]), ["otsservers"]);
    assert_eq!(strings(&rules[0]["verbs"]), ["get", "list", "watch"]);
    // ClusterOtsServers are the cluster administrators': no role aggregated into a namespace
    // role names them.
    for role in of_kind(&objects, "ClusterRole") {
        let aggregated = role["metadata"]["labels"]
            .as_object()
            .is_some_and(|labels| labels.keys().any(|k| k.contains("/aggregate-to-")));
        if !aggregated {
            continue;
        }
        for rule in role["rules"].as_array().into_iter().flatten() {
            assert!(
                !strings(&rule["resources"])
                    .iter()
                    .any(|r| r.starts_with("clusterotsservers")
                        || r.starts_with("clusterotsnotifications")),
                "{} aggregates {rule}",
                name_of(role)
            );
        }
    }
}

#[test]
fn chart_crd_template_matches_the_generated_crd_and_survives_uninstall() {
    run({
        let mut command = Command::new(repo_path("scripts/sync-chart-crd"));
        command.arg("--check");
        command
    });
    let generated = yaml_documents(
        &std::fs::read_to_string(repo_path(CRD_FILE)).expect("read the generated CRD"),
    );
    assert_eq!(generated.len(), 1);
    let generated = &generated[0];

    let objects = render(&[]);
    let crd = find(&objects, "CustomResourceDefinition", CRD_NAME);
    assert_eq!(
        crd["spec"], generated["spec"],
        "the chart's CRD spec differs from {CRD_FILE}"
    );
    assert_eq!(crd["apiVersion"], generated["apiVersion"]);
    assert_eq!(
        crd["metadata"]["annotations"]["helm.sh/resource-policy"],
        "keep"
    );
    assert!(
        crd["metadata"]["labels"]
            .get("app.kubernetes.io/instance")
            .is_none(),
        "the CRD is shared by all releases and must not name one"
    );

    assert!(
        of_kind(
            &render(&["--set", "installCRDs=false"]),
            "CustomResourceDefinition"
        )
        .is_empty()
    );
    let unkept = render(&["--set", "keepCRDs=false"]);
    assert!(
        find(&unkept, "CustomResourceDefinition", CRD_NAME)["metadata"]
            .get("annotations")
            .is_none()
    );

    // The servers' CRDs ship the same way.
    for name in [
        "otsservers.ots.dev",
        "clusterotsservers.ots.dev",
        "otsnotifications.ots.dev",
        "clusterotsnotifications.ots.dev",
    ] {
        let file = format!("crds/{name}.yaml");
        let generated = yaml_documents(
            &std::fs::read_to_string(repo_path(&file)).expect("read the generated CRD"),
        );
        assert_eq!(generated.len(), 1);
        let crd = find(&objects, "CustomResourceDefinition", name);
        assert_eq!(
            crd["spec"], generated[0]["spec"],
            "the chart's {name} differs from {file}"
        );
        assert_eq!(
            crd["metadata"]["annotations"]["helm.sh/resource-policy"],
            "keep"
        );
    }
    assert_eq!(
        of_kind(&objects, "CustomResourceDefinition").len(),
        5,
        "OneTimeShare, OtsServer, ClusterOtsServer, OtsNotification and ClusterOtsNotification"
    );
}

#[test]
fn rendered_manifests_have_not_drifted_from_the_chart() {
    let mut command = Command::new(repo_path("scripts/render-manifests"));
    command
        .arg("--check")
        .env("HELM", cluster::tool_path("helm"));
    run(command);
}

/// Every value path the schema names down to its leaves (`metrics.serviceMonitor.enabled`).
fn schema_leaves(schema: &Value, prefix: &str, leaves: &mut Vec<String>) {
    match schema.get("properties").and_then(Value::as_object) {
        Some(properties) => {
            for (key, child) in properties {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                schema_leaves(child, &path, leaves);
            }
        }
        None => leaves.push(prefix.to_owned()),
    }
}

#[test]
fn chart_readme_documents_every_value_and_the_schema_covers_values_yaml() {
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_path(&format!("{CHART}/values.schema.json")))
            .expect("read the schema"),
    )
    .expect("the schema is JSON");
    let mut leaves = Vec::new();
    schema_leaves(&schema, "", &mut leaves);
    let readme =
        std::fs::read_to_string(repo_path(&format!("{CHART}/README.md"))).expect("read README");
    let undocumented: Vec<&String> = leaves
        .iter()
        .filter(|leaf| *leaf != "global" && !readme.contains(&format!("| `{leaf}` |")))
        .collect();
    assert!(
        undocumented.is_empty(),
        "README.md values table lacks {undocumented:?}"
    );

    // Every value of values.yaml is one the schema knows (the schema refuses unknown keys).
    let values: Value = serde_yaml::from_str(
        &std::fs::read_to_string(repo_path(&format!("{CHART}/values.yaml")))
            .expect("read values.yaml"),
    )
    .expect("values.yaml is YAML");
    let mut value_paths = Vec::new();
    value_leaves(&values, &schema, "", &mut value_paths);
    let unknown: Vec<&String> = value_paths
        .iter()
        .filter(|path| !leaves.contains(path))
        .collect();
    assert!(
        unknown.is_empty(),
        "values.yaml keys missing from values.schema.json: {unknown:?}"
    );
}

/// Paths of values.yaml, descending only where the schema describes properties.
fn value_leaves(values: &Value, schema: &Value, prefix: &str, paths: &mut Vec<String>) {
    match (values.as_object(), schema.get("properties")) {
        (Some(map), Some(properties)) => {
            for (key, child) in map {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                value_leaves(
                    child,
                    properties.get(key).unwrap_or(&Value::Null),
                    &path,
                    paths,
                );
            }
        }
        _ => paths.push(prefix.to_owned()),
    }
}

// ---------------------------------------------------------------------------------------------
// On the real apiserver

/// The release installed once per test binary with the chart's default values (CRD included).
struct Release {
    /// Objects of `helm get manifest`.
    objects: Vec<Value>,
    /// What `helm install` printed, NOTES.txt included.
    install_output: String,
}

/// Installs [`RELEASE`] once; every test that needs the CRD calls this first, so that the chart
/// (not `kubectl apply`) is the first to create the CRD, as on a fresh cluster.
fn installed_release() -> &'static Release {
    static INSTALLED: OnceLock<Release> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let install_output = run(helm(&[
            "install",
            RELEASE,
            CHART,
            "--namespace",
            RELEASE_NAMESPACE,
            "--create-namespace",
            "--set",
            PUBLIC,
        ]));
        let manifest = run(helm(&[
            "get",
            "manifest",
            RELEASE,
            "--namespace",
            RELEASE_NAMESPACE,
        ]));
        Release {
            objects: yaml_documents(&manifest),
            install_output,
        }
    })
}

async fn wait_for_crd(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    tokio::time::timeout(
        WAIT,
        await_condition(crds, CRD_NAME, conditions::is_crd_established()),
    )
    .await
    .expect("the OneTimeShare CRD becomes established in time")
    .expect("watch the CRD");
}

fn share_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("ots.dev", "v1alpha1", "OneTimeShare"),
        "onetimeshares",
    )
}

fn shares(client: &Client, namespace: Option<&str>) -> Api<DynamicObject> {
    match namespace {
        Some(namespace) => Api::namespaced_with(client.clone(), namespace, &share_resource()),
        None => Api::all_with(client.clone(), &share_resource()),
    }
}

fn share(name: &str, secret: &str) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "ots.dev/v1alpha1",
        "kind": "OneTimeShare",
        "metadata": { "name": name },
        "spec": { "secretRef": { "name": secret, "key": "password" }, "ttl": "1h" }
    }))
    .expect("a valid OneTimeShare")
}

fn secret(name: &str) -> Secret {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": { "name": name },
        "stringData": { "password": "fake-test-value" }
    }))
    .expect("a valid Secret")
}

/// A Secret as the operator writes its records: labelled as its own.
fn record_secret(name: &str) -> Secret {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "ots.dev/share-record",
        "metadata": { "name": name, "labels": { "ots.dev/managed-by": "ots-operator" } },
        "stringData": { "record": "{}" }
    }))
    .expect("a valid Secret")
}

fn assert_forbidden<T: Debug>(result: Result<T, kube::Error>, what: &str) {
    match result {
        Err(kube::Error::Api(status)) if status.code == 403 => {}
        other => panic!("{what}: expected 403 Forbidden, got {other:?}"),
    }
}

fn assert_allowed<T: Debug>(result: Result<T, kube::Error>, what: &str) -> T {
    result.unwrap_or_else(|error| panic!("{what}: expected to be allowed, got {error}"))
}

/// Waits until `client` may do `verb` on `resource` (RBAC changes reach the authorizer's cache a
/// moment after the bindings are written). Forbidden checks run only after this, so a 403 they see
/// comes from the rules, not from a cache that has not caught up yet.
async fn wait_until_allowed(
    client: &Client,
    verb: &str,
    group: &str,
    resource: &str,
    namespace: Option<&str>,
) {
    let reviews: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.to_owned()),
                group: Some(group.to_owned()),
                resource: Some(resource.to_owned()),
                namespace: namespace.map(str::to_owned),
                ..ResourceAttributes::default()
            }),
            ..SelfSubjectAccessReviewSpec::default()
        },
        ..SelfSubjectAccessReview::default()
    };
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let answer = reviews
            .create(&PostParams::default(), &review)
            .await
            .expect("create a SelfSubjectAccessReview");
        if answer.status.is_some_and(|status| status.allowed) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{verb} {resource} in {namespace:?} never became allowed"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn helm_install_creates_every_object_of_the_release() {
    let release = installed_release();
    let client = cluster::client().await;
    let kinds: BTreeSet<&str> = release.objects.iter().map(kind_of).collect();
    for kind in [
        "CustomResourceDefinition",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Deployment",
        "Service",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    ] {
        assert!(
            kinds.contains(kind),
            "the default release has no {kind}: {kinds:?}"
        );
    }
    for object in &release.objects {
        let api = cluster::api_for_object(&client, object, RELEASE_NAMESPACE).await;
        let found = api.get(name_of(object)).await.unwrap_or_else(|error| {
            panic!(
                "{} {} is missing after helm install: {error}",
                kind_of(object),
                name_of(object)
            )
        });
        assert_eq!(
            found
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("meta.helm.sh/release-name")),
            Some(&RELEASE.to_owned()),
            "{} {} is not owned by the release",
            kind_of(object),
            name_of(object)
        );
    }
    wait_for_crd(&client).await;
}

/// The YAML of the first heredoc (`<<'YAML'` ... `YAML`) in the install notes, unindented.
fn notes_heredoc(notes: &str) -> String {
    let mut lines = notes.lines().skip_while(|line| !line.ends_with("<<'YAML'"));
    lines
        .next()
        .expect("the notes show a OneTimeShare to apply");
    lines
        .take_while(|line| line.trim() != "YAML")
        .map(|line| line.strip_prefix("  ").unwrap_or(line))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn install_notes_show_a_first_share_that_the_crd_accepts() {
    let release = installed_release();
    let notes = &release.install_output;
    for step in [
        "kubectl create secret generic db-credentials",
        "kubectl get ots -o wide",
    ] {
        assert!(notes.contains(step), "the notes lack `{step}`:\n{notes}");
    }
    let yaml = notes_heredoc(notes);
    let client = cluster::client().await;
    wait_for_crd(&client).await;
    let namespace = cluster::test_namespace(&client, "chart-notes").await;
    let file = std::env::temp_dir().join(format!("{namespace}-notes-share.yaml"));
    std::fs::write(&file, &yaml).expect("write the share of the notes");
    let applied = run(kubectl(&[
        "apply",
        "--server-side",
        "--namespace",
        &namespace,
        "-f",
        &file.to_string_lossy(),
    ]));
    assert!(
        applied.contains("onetimeshare.ots.dev/db-password-for-alice"),
        "{applied}"
    );
}

/// The example that emails its link: the chart's default policy allows no recipient domain
/// (`tests/admission.rs` shows it admitted once its domain is allowed).
const RECIPIENT_EXAMPLE: &str = "recipient-and-server.yaml";

/// An object the examples created, as JSON.
async fn find_example_object(
    client: &Client,
    kind: &str,
    plural: &str,
    namespace: Option<&str>,
    name: &str,
) -> Value {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("ots.dev", "v1alpha1", kind),
        plural,
    );
    let api: Api<DynamicObject> = match namespace {
        Some(namespace) => Api::namespaced_with(client.clone(), namespace, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    let object = api
        .get(name)
        .await
        .unwrap_or_else(|error| panic!("the examples created no {kind} {name}: {error}"));
    serde_json::to_value(object).expect("an object is JSON")
}

#[tokio::test]
async fn examples_are_accepted_by_the_crd_schema_and_the_default_policy_refuses_only_the_recipient()
{
    installed_release();
    let client = cluster::client().await;
    wait_for_crd(&client).await;
    // The server examples need the server kinds, which the release installs beside the share's.
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in ["otsservers.ots.dev", "clusterotsservers.ots.dev"] {
        tokio::time::timeout(
            WAIT,
            await_condition(crds.clone(), crd, conditions::is_crd_established()),
        )
        .await
        .unwrap_or_else(|_| panic!("{crd} becomes established in time"))
        .expect("watch the CRD");
    }
    let namespace = cluster::test_namespace(&client, "chart-examples").await;
    let example_files: Vec<String> = std::fs::read_dir(repo_path("examples"))
        .expect("read examples/")
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .map(|path| {
            format!(
                "examples/{}",
                path.file_name().unwrap_or_default().to_string_lossy()
            )
        })
        .collect();
    let mut args = vec!["apply", "--server-side", "--namespace", &namespace];
    for file in &example_files {
        if !file.ends_with(RECIPIENT_EXAMPLE) {
            args.extend(["-f", file]);
        }
    }
    run(kubectl(&args));
    let created = shares(&client, Some(&namespace))
        .list(&ListParams::default())
        .await
        .expect("list the example shares");
    // secrets.yaml holds Secrets and clusterotsserver.yaml a ClusterOtsServer; every other file
    // holds one OneTimeShare (otsserver.yaml besides its OtsServer and that server's Secret).
    assert_eq!(created.items.len(), example_files.len() - 3);
    let otsserver = find_example_object(
        &client,
        "OtsServer",
        "otsservers",
        Some(&namespace),
        "team-eu",
    )
    .await;
    assert_eq!(
        otsserver["spec"]["credentialsSecretRef"]["name"],
        "team-ots-account"
    );
    let cluster_server = find_example_object(
        &client,
        "ClusterOtsServer",
        "clusterotsservers",
        None,
        "platform-eu",
    )
    .await;
    assert_eq!(
        cluster_server["metadata"]["annotations"]["ots.dev/default-server"],
        "true"
    );
    assert_eq!(
        cluster_server["spec"]["conditions"]
            .as_array()
            .map(Vec::len),
        Some(3)
    );

    let apply_recipient = |dry_run: bool| {
        let file = format!("examples/{RECIPIENT_EXAMPLE}");
        let mut args = vec![
            "apply",
            "--server-side",
            "--namespace",
            &namespace,
            "-f",
            &file,
        ];
        if dry_run {
            args.push("--dry-run=server");
        }
        kubectl(&args).output().expect("run kubectl")
    };
    // The chart's policy reaches the apiserver's admission a moment after it is written: wait
    // until a server-side dry run is refused, then apply for real.
    let deadline = std::time::Instant::now() + WAIT;
    while apply_recipient(true).status.success() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
    }
    let refused = apply_recipient(false);
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success()
            && message.contains("ValidatingAdmissionPolicy 'ots-operator-secret-access'")
            && message.contains("spec.recipient: alice@example.com is not allowed"),
        "the default policy sends no links by email, yet {RECIPIENT_EXAMPLE} got: {message}"
    );
}

#[tokio::test]
async fn operator_pod_meets_the_restricted_pod_security_standard() {
    let client = cluster::client().await;
    let namespace = cluster::test_namespace(&client, "chart-restricted").await;
    Api::<Namespace>::all(client.clone())
        .patch(
            &namespace,
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "labels": {
                "pod-security.kubernetes.io/enforce": "restricted"
            }}})),
        )
        .await
        .expect("label the namespace restricted");
    let objects = render(&[]);
    let template = &find(&objects, "Deployment", "chart-test-ots-operator")["spec"]["template"];
    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let pod = |name: &str, spec: &Value| -> Pod {
        serde_json::from_value(json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": { "name": name, "labels": template["metadata"]["labels"] },
            "spec": spec,
        }))
        .expect("a valid Pod")
    };

    // Control: PodSecurity admission is on, so a pod without the chart's hardening is refused.
    let mut bare = template["spec"].clone();
    bare["securityContext"] = json!({});
    bare["containers"][0]["securityContext"] = json!({});
    assert_forbidden(
        pods.create(&PostParams::default(), &pod("bare", &bare))
            .await,
        "a pod without security contexts in a restricted namespace",
    );
    assert_allowed(
        pods.create(&PostParams::default(), &pod("operator", &template["spec"]))
            .await,
        "the chart's operator pod in a restricted namespace",
    );
}

#[tokio::test]
async fn operator_service_account_gets_secrets_by_name_but_can_never_list_or_watch_them() {
    installed_release();
    let admin = cluster::client().await;
    let namespace = cluster::test_namespace(&admin, "chart-secrets").await;
    Api::<Secret>::namespaced(admin.clone(), &namespace)
        .create(&PostParams::default(), &secret("db-credentials"))
        .await
        .expect("create a Secret");
    let operator = cluster::impersonating_client(RELEASE_NAMESPACE, RELEASE_SERVICE_ACCOUNT).await;
    wait_until_allowed(&operator, "get", "", "secrets", Some(&namespace)).await;

    let secrets: Api<Secret> = Api::namespaced(operator.clone(), &namespace);
    let all_secrets: Api<Secret> = Api::all(operator.clone());
    assert_allowed(secrets.get("db-credentials").await, "get the named Secret");
    assert_forbidden(
        all_secrets.list(&ListParams::default()).await,
        "list Secrets cluster-wide",
    );
    assert_forbidden(
        secrets.list(&ListParams::default()).await,
        "list Secrets in a namespace",
    );
    assert_forbidden(
        all_secrets
            .watch(&WatchParams::default(), "0")
            .await
            .map(|_| ()),
        "watch Secrets cluster-wide",
    );
    assert_forbidden(
        secrets
            .watch(&WatchParams::default(), "0")
            .await
            .map(|_| ()),
        "watch Secrets in a namespace",
    );
    assert_forbidden(
        secrets
            .create(&PostParams::default(), &secret("planted"))
            .await,
        "create a Secret",
    );
    assert_forbidden(
        secrets
            .patch(
                "db-credentials",
                &PatchParams::default(),
                &Patch::Merge(json!({"stringData": {"password": "x"}})),
            )
            .await,
        "change a Secret",
    );
    assert_forbidden(
        secrets
            .delete("db-credentials", &Default::default())
            .await
            .map(|_| ()),
        "delete a Secret",
    );
}

#[tokio::test]
async fn operator_service_account_keeps_record_secrets_in_its_own_namespace_only() {
    installed_release();
    let admin = cluster::client().await;
    let elsewhere = cluster::test_namespace(&admin, "chart-records").await;
    let operator = cluster::impersonating_client(RELEASE_NAMESPACE, RELEASE_SERVICE_ACCOUNT).await;
    wait_until_allowed(&operator, "create", "", "secrets", Some(RELEASE_NAMESPACE)).await;

    let own: Api<Secret> = Api::namespaced(operator.clone(), RELEASE_NAMESPACE);
    assert_allowed(
        own.create(&PostParams::default(), &record_secret("share-record"))
            .await,
        "create a record Secret in the release namespace",
    );
    // The admission policy lets the operator write only Secrets labelled as its own, here too.
    assert_forbidden(
        own.create(&PostParams::default(), &secret("unlabelled"))
            .await,
        "create an unlabelled Secret in the release namespace",
    );
    assert_allowed(own.get("share-record").await, "read a record Secret");
    assert_allowed(
        own.list(&ListParams::default()).await,
        "list the record Secrets",
    );
    assert_allowed(
        own.patch(
            "share-record",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"password": "y"}})),
        )
        .await,
        "update a record Secret",
    );
    assert_allowed(
        own.delete("share-record", &Default::default())
            .await
            .map(|_| ()),
        "delete a record Secret",
    );
    assert_forbidden(
        own.watch(&WatchParams::default(), "0").await.map(|_| ()),
        "watch Secrets in the release namespace",
    );

    let other: Api<Secret> = Api::namespaced(operator.clone(), &elsewhere);
    assert_forbidden(
        other
            .create(&PostParams::default(), &secret("share-record"))
            .await,
        "create a Secret outside the release namespace",
    );
    assert_forbidden(
        other.list(&ListParams::default()).await,
        "list Secrets outside the release namespace",
    );
    assert_forbidden(
        Api::<Secret>::all(operator.clone())
            .list(&ListParams::default())
            .await,
        "list Secrets cluster-wide",
    );
}

#[tokio::test]
async fn operator_service_account_cannot_create_workloads_or_touch_other_resources() {
    installed_release();
    let operator = cluster::impersonating_client(RELEASE_NAMESPACE, RELEASE_SERVICE_ACCOUNT).await;
    let admin = cluster::client().await;
    let namespace = cluster::test_namespace(&admin, "chart-workloads").await;
    wait_until_allowed(&operator, "get", "", "secrets", Some(&namespace)).await;

    let deployment: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": "miner" },
        "spec": {
            "selector": { "matchLabels": { "app": "miner" } },
            "template": {
                "metadata": { "labels": { "app": "miner" } },
                "spec": { "containers": [{ "name": "miner", "image": "example.com/miner:1" }] }
            }
        }
    }))
    .expect("a valid Deployment");
    assert_forbidden(
        Api::<Deployment>::namespaced(operator.clone(), &namespace)
            .create(&PostParams::default(), &deployment)
            .await,
        "create a Deployment",
    );
    assert_forbidden(
        Api::<Pod>::namespaced(operator.clone(), &namespace)
            .list(&ListParams::default())
            .await,
        "list Pods",
    );
    assert_forbidden(
        Api::<Namespace>::all(operator.clone())
            .list(&ListParams::default())
            .await,
        "list Namespaces",
    );
    assert_forbidden(
        shares(&operator, Some(&namespace))
            .create(&PostParams::default(), &share("sneaky", "db-credentials"))
            .await,
        "create a OneTimeShare (users create shares, the operator only serves them)",
    );
}

#[tokio::test]
async fn operator_service_account_watches_and_patches_shares_and_records_events() {
    installed_release();
    let admin = cluster::client().await;
    wait_for_crd(&admin).await;
    let namespace = cluster::test_namespace(&admin, "chart-shares").await;
    let created = shares(&admin, Some(&namespace))
        .create(
            &PostParams::default(),
            &share("for-alice", "db-credentials"),
        )
        .await
        .expect("create a OneTimeShare as admin");
    let operator = cluster::impersonating_client(RELEASE_NAMESPACE, RELEASE_SERVICE_ACCOUNT).await;
    wait_until_allowed(&operator, "list", "ots.dev", "onetimeshares", None).await;

    let mine = shares(&operator, Some(&namespace));
    assert_allowed(
        shares(&operator, None).list(&ListParams::default()).await,
        "list shares cluster-wide",
    );
    assert_allowed(
        shares(&operator, None)
            .watch(&WatchParams::default().timeout(1), "0")
            .await
            .map(|_| ()),
        "watch shares cluster-wide",
    );
    assert_allowed(mine.get("for-alice").await, "get a share");
    assert_allowed(
        mine.patch(
            "for-alice",
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "finalizers": ["ots.dev/burn"] } })),
        )
        .await,
        "add the burn finalizer",
    );
    assert_allowed(
        mine.patch(
            "for-alice",
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "finalizers": null } })),
        )
        .await,
        "remove the burn finalizer",
    );
    assert_allowed(
        mine.patch_status(
            "for-alice",
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": {} })),
        )
        .await,
        "patch a share's status",
    );
    assert_forbidden(
        mine.delete("for-alice", &Default::default())
            .await
            .map(|_| ()),
        "delete a share",
    );

    let regarding = json!({
        "apiVersion": "ots.dev/v1alpha1",
        "kind": "OneTimeShare",
        "name": "for-alice",
        "namespace": namespace,
        "uid": created.metadata.uid,
    });
    let core_events: Api<Event> = Api::namespaced(operator.clone(), &namespace);
    let core_event: Event = serde_json::from_value(json!({
        "metadata": { "name": "for-alice.shared" },
        "involvedObject": regarding,
        "reason": "Shared",
        "message": "shared as a one-time link",
        "type": "Normal",
        "source": { "component": "ots-operator" },
    }))
    .expect("a valid core Event");
    assert_allowed(
        core_events
            .create(&PostParams::default(), &core_event)
            .await,
        "create a core Event",
    );
    assert_allowed(
        core_events
            .patch(
                "for-alice.shared",
                &PatchParams::default(),
                &Patch::Merge(json!({ "count": 2 })),
            )
            .await,
        "patch a core Event (repeated occurrences)",
    );
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(operator.clone(), &namespace);
    let event: k8s_openapi::api::events::v1::Event = serde_json::from_value(json!({
        "metadata": { "name": "for-alice.received" },
        "regarding": regarding,
        "reason": "Received",
        "action": "Refresh",
        "note": "the recipient opened the link",
        "type": "Normal",
        "eventTime": "2026-01-01T10:00:00.000000Z",
        "reportingController": "ots.dev/ots-operator",
        "reportingInstance": "ots-operator-0",
    }))
    .expect("a valid events.k8s.io Event");
    assert_allowed(
        events.create(&PostParams::default(), &event).await,
        "create an events.k8s.io Event",
    );
    assert_allowed(
        events
            .patch(
                "for-alice.received",
                &PatchParams::default(),
                &Patch::Merge(json!({ "series": {
                    "count": 2,
                    "lastObservedTime": "2026-01-01T10:05:00.000000Z"
                }})),
            )
            .await,
        "patch an events.k8s.io Event (repeated occurrences)",
    );
}

#[tokio::test]
async fn operator_service_account_holds_only_its_own_lease_in_its_own_namespace() {
    installed_release();
    let admin = cluster::client().await;
    let elsewhere = cluster::test_namespace(&admin, "chart-lease").await;
    let operator = cluster::impersonating_client(RELEASE_NAMESPACE, RELEASE_SERVICE_ACCOUNT).await;
    wait_until_allowed(
        &operator,
        "create",
        "coordination.k8s.io",
        "leases",
        Some(RELEASE_NAMESPACE),
    )
    .await;

    let lease = |name: &str| -> Lease {
        serde_json::from_value(json!({
            "metadata": { "name": name },
            "spec": { "holderIdentity": "chart-it-ots-operator-abc", "leaseDurationSeconds": 15 }
        }))
        .expect("a valid Lease")
    };
    let leases: Api<Lease> = Api::namespaced(operator.clone(), RELEASE_NAMESPACE);
    let created = assert_allowed(
        leases
            .create(&PostParams::default(), &lease(LEADER_LEASE))
            .await,
        "create the Lease",
    );
    assert_allowed(leases.get(LEADER_LEASE).await, "read the Lease");
    let renewed = assert_allowed(
        leases
            .replace(LEADER_LEASE, &PostParams::default(), &created)
            .await,
        "renew the Lease",
    );
    let mut taken = renewed.clone();
    taken.spec.get_or_insert_default().holder_identity = Some("chart-it-ots-operator-def".into());
    assert_allowed(
        leases
            .replace(LEADER_LEASE, &PostParams::default(), &taken)
            .await,
        "take over the Lease",
    );

    // Another component's Lease in the same namespace: readable by name? No.
    Api::<Lease>::namespaced(admin.clone(), RELEASE_NAMESPACE)
        .create(&PostParams::default(), &lease("someone-elses-lease"))
        .await
        .expect("create another component's Lease as admin");
    assert_forbidden(
        leases.get("someone-elses-lease").await,
        "read another Lease",
    );
    assert_forbidden(
        leases
            .patch(
                "someone-elses-lease",
                &PatchParams::default(),
                &Patch::Merge(json!({ "spec": {} })),
            )
            .await,
        "change another Lease",
    );
    assert_forbidden(leases.list(&ListParams::default()).await, "list Leases");
    assert_forbidden(
        Api::<Lease>::namespaced(operator.clone(), &elsewhere)
            .create(&PostParams::default(), &lease(LEADER_LEASE))
            .await,
        "create a Lease outside the release namespace",
    );
}

#[tokio::test]
async fn namespace_scoped_install_grants_rights_only_in_the_watched_namespaces() {
    installed_release();
    let admin = cluster::client().await;
    wait_for_crd(&admin).await;
    let watched = cluster::test_namespace(&admin, "chart-watched").await;
    let unwatched = cluster::test_namespace(&admin, "chart-unwatched").await;
    for namespace in [&watched, &unwatched] {
        Api::<Secret>::namespaced(admin.clone(), namespace)
            .create(&PostParams::default(), &secret("db-credentials"))
            .await
            .expect("create a Secret");
    }
    let watch_list = format!("watchNamespaces={{{watched}}}");
    run(helm(&[
        "install",
        "chart-ns",
        CHART,
        "--namespace",
        "ots-chart-ns",
        "--create-namespace",
        "--set",
        PUBLIC,
        "--set",
        "installCRDs=false",
        // The admission policy is cluster-wide and installed by the first release already.
        "--set",
        "admissionPolicy.enabled=false",
        "--set",
        &watch_list,
    ]));
    let operator = cluster::impersonating_client("ots-chart-ns", "chart-ns-ots-operator").await;
    wait_until_allowed(&operator, "get", "", "secrets", Some(&watched)).await;

    assert_allowed(
        shares(&operator, Some(&watched))
            .list(&ListParams::default())
            .await,
        "list shares in the watched namespace",
    );
    assert_allowed(
        Api::<Secret>::namespaced(operator.clone(), &watched)
            .get("db-credentials")
            .await,
        "get a Secret in the watched namespace",
    );
    assert_forbidden(
        shares(&operator, Some(&unwatched))
            .list(&ListParams::default())
            .await,
        "list shares in an unwatched namespace",
    );
    assert_forbidden(
        shares(&operator, None).list(&ListParams::default()).await,
        "list shares cluster-wide",
    );
    assert_forbidden(
        Api::<Secret>::namespaced(operator.clone(), &unwatched)
            .get("db-credentials")
            .await,
        "get a Secret in an unwatched namespace",
    );
    assert_forbidden(
        Api::<Secret>::namespaced(operator.clone(), &watched)
            .list(&ListParams::default())
            .await,
        "list Secrets in the watched namespace",
    );
}

#[test]
fn notification_values_become_the_operators_notification_flags() {
    let args = strings(&operator_container(&render(&[]))["args"])
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
    assert!(
        !args.iter().any(|a| a.contains("notification")),
        "nothing is allowed by default: {args:?}"
    );
    let objects = render(&[
        "--set",
        "notifications.allowedUrls={https://hooks.slack.com,https://*.webhook.office.com}",
        "--set",
        "notifications.allowedCidrs={10.20.0.0/16}",
        "--set",
        "notifications.concurrency=2",
    ]);
    let args = strings(&operator_container(&objects)["args"]);
    for flag in [
        "--allow-notification-url=https://hooks.slack.com",
        "--allow-notification-url=https://*.webhook.office.com",
        "--allow-notification-cidr=10.20.0.0/16",
        "--notification-concurrency=2",
    ] {
        assert!(args.contains(&flag), "{flag} not in {args:?}");
    }
}
