//! The chart's platform values (PodDisruptionBudget, topology spread, NetworkPolicy, extra env,
//! volumes and objects, CA bundle, OpenShift security context, IPv6 listen address, alert rules and
//! Grafana dashboard) render as documented and, all turned on at once, install with `helm install`
//! (server-side apply) on a real apiserver that validates every object. The Prometheus Operator CRDs
//! come from the prometheus-operator Go module, downloaded at test time. A test binary of its own:
//! the release installs the cluster-wide admission policy.

mod support;

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;
use support::cluster;
use support::tools::{helm, run, yaml_documents};

const CHART: &str = "deploy/helm/ots-operator";
/// prometheus-operator release whose `example/prometheus-operator-crd/` CRDs the test installs.
const PROMETHEUS_OPERATOR: &str = "github.com/prometheus-operator/prometheus-operator@v0.85.0";

/// Values that turn every optional platform feature on.
const ALL_ON: &str = r#"
ots:
  url: https://ots.internal.example.com
replicaCount: 2
openshift: true
extraEnv:
  - name: HTTPS_PROXY
    value: http://proxy.internal.example.com:3128
extraVolumes:
  - name: scratch
    emptyDir:
      medium: Memory
extraVolumeMounts:
  - name: scratch
    mountPath: /scratch
extraObjects:
  - apiVersion: v1
    kind: ConfigMap
    metadata:
      name: "{{ .Release.Name }}-extra"
    data:
      note: rendered with tpl
  - |
    apiVersion: v1
    kind: ConfigMap
    metadata:
      name: {{ .Release.Name }}-extra-string
caBundle:
  enabled: true
  kind: configMap
  name: ots-ca
  key: ca.crt
metrics:
  serviceMonitor:
    enabled: true
prometheusRule:
  enabled: true
grafanaDashboard:
  enabled: true
podDisruptionBudget:
  enabled: true
  minAvailable: 1
topologySpreadConstraints:
  - maxSkew: 1
    topologyKey: kubernetes.io/hostname
    whenUnsatisfiable: ScheduleAnyway
networkPolicy:
  enabled: true
  apiServer:
    cidrs: [10.96.0.1/32]
    ports: [443, 6443]
  otsServers:
    cidrs: [10.20.0.0/24]
    ports: [443]
"#;

fn repo_path(path: &str) -> PathBuf {
    cluster::repo_root().join(path)
}

fn values_file() -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "ots-operator-chart-values-{}.yaml",
        std::process::id()
    ));
    std::fs::write(&path, ALL_ON).expect("write the values file");
    path
}

fn render_all_on() -> Vec<Value> {
    let values = values_file();
    let values = values.to_str().expect("temp path is UTF-8");
    yaml_documents(&run(helm(&[
        "template",
        "platform",
        CHART,
        "--namespace",
        "ots-system",
        "-f",
        values,
    ])))
}

/// `helm template x CHART` for a private OTS server (`ots.url=https://ots.example.com`) plus
/// `extra`.
fn template_with(extra: &[&str]) -> Command {
    let mut args = vec![
        "template",
        "x",
        CHART,
        "--set",
        "ots.url=https://ots.example.com",
    ];
    args.extend_from_slice(extra);
    helm(&args)
}

fn find<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    objects
        .iter()
        .find(|object| object["kind"] == kind)
        .unwrap_or_else(|| panic!("the render has no {kind}"))
}

#[test]
fn chart_lints_strict_with_every_platform_value_turned_on() {
    let values = values_file();
    let values = values.to_str().expect("temp path is UTF-8");
    run(helm(&["lint", "--strict", CHART, "-f", values]));
}

#[test]
fn network_policy_lets_the_operator_reach_only_dns_the_apiserver_and_the_ots_servers() {
    let objects = render_all_on();
    let policy = find(&objects, "NetworkPolicy");
    assert_eq!(
        policy["spec"]["policyTypes"],
        serde_json::json!(["Ingress", "Egress"])
    );
    let egress = policy["spec"]["egress"].as_array().expect("egress rules");
    assert_eq!(egress.len(), 3, "DNS, apiserver, OTS servers: {egress:?}");
    let ports = |rule: &Value| -> Vec<i64> {
        rule["ports"]
            .as_array()
            .map(|ports| ports.iter().filter_map(|p| p["port"].as_i64()).collect())
            .unwrap_or_default()
    };
    let cidrs = |rule: &Value| -> Vec<String> {
        rule["to"]
            .as_array()
            .map(|to| {
                to.iter()
                    .filter_map(|peer| peer["ipBlock"]["cidr"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(ports(&egress[0]), vec![53, 53], "DNS over UDP and TCP");
    assert_eq!(
        egress[0]["to"][0]["podSelector"]["matchLabels"]["k8s-app"],
        "kube-dns"
    );
    assert_eq!(cidrs(&egress[1]), vec!["10.96.0.1/32"]);
    assert_eq!(ports(&egress[1]), vec![443, 6443]);
    assert_eq!(cidrs(&egress[2]), vec!["10.20.0.0/24"]);
    assert_eq!(ports(&egress[2]), vec![443]);
    let ingress = policy["spec"]["ingress"].as_array().expect("ingress rules");
    assert_eq!(ingress.len(), 1);
    assert_eq!(ingress[0]["ports"][0]["port"], "metrics");
}

#[test]
fn network_policy_lets_notifications_out_to_the_allowed_cidrs_and_only_there() {
    let policy = |extra: &[&str]| {
        let mut args = vec!["--set", "networkPolicy.enabled=true"];
        args.extend_from_slice(extra);
        let objects = yaml_documents(&run(template_with(&args)));
        find(&objects, "NetworkPolicy")["spec"]["egress"]
            .as_array()
            .expect("egress rules")
            .clone()
    };
    let cidrs = |rule: &Value| -> Vec<String> {
        rule["to"]
            .as_array()
            .map(|to| {
                to.iter()
                    .filter_map(|peer| peer["ipBlock"]["cidr"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    // No notification range: no rule of its own (public endpoints use the OTS servers' rule).
    assert_eq!(policy(&[]).len(), 3);

    // The ranges --allow-notification-cidr opens are let out, with the extra ones, once each.
    let egress = policy(&[
        "--set",
        "notifications.allowedCidrs={10.30.0.0/16,fd00:30::/64}",
        "--set",
        "networkPolicy.notifications.cidrs={52.1.0.0/16,10.30.0.0/16}",
        "--set",
        "networkPolicy.notifications.ports={443,8443}",
    ]);
    assert_eq!(
        egress.len(),
        4,
        "DNS, apiserver, OTS servers, notifications: {egress:?}"
    );
    assert_eq!(
        cidrs(&egress[3]),
        vec!["10.30.0.0/16", "fd00:30::/64", "52.1.0.0/16"]
    );
    let ports: Vec<i64> = egress[3]["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .filter_map(|p| p["port"].as_i64())
        .collect();
    assert_eq!(ports, vec![443, 8443]);
    // The operator is told the same ranges.
    let objects = yaml_documents(&run(template_with(&[
        "--set",
        "notifications.allowedCidrs={10.30.0.0/16}",
    ])));
    let args = find(&objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
        .to_string();
    assert!(args.contains("--allow-notification-cidr"), "{args}");
    assert!(args.contains("10.30.0.0/16"), "{args}");

    // The default port is 443; no ports at all lets every port of those ranges out.
    let egress = policy(&["--set", "notifications.allowedCidrs={10.30.0.0/16}"]);
    assert_eq!(egress[3]["ports"][0]["port"], 443);
    let egress = policy(&[
        "--set",
        "notifications.allowedCidrs={10.30.0.0/16}",
        "--set",
        "networkPolicy.notifications.ports=null",
    ]);
    assert!(egress[3].get("ports").is_none(), "{:?}", egress[3]);
    assert_eq!(cidrs(&egress[3]), vec!["10.30.0.0/16"]);
}

#[test]
fn ca_bundle_is_mounted_and_trusted_besides_the_public_store() {
    let objects = render_all_on();
    let pod = &find(&objects, "Deployment")["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let env = |name: &str| {
        container["env"]
            .as_array()
            .and_then(|env| env.iter().find(|v| v["name"] == name))
            .map(|v| v["value"].clone())
    };
    // rustls-platform-verifier -> rustls-native-certs: SSL_CERT_FILE/SSL_CERT_DIR replace the
    // system store, so the public bundle is named too.
    assert_eq!(
        env("SSL_CERT_FILE"),
        Some(Value::from("/etc/ssl/certs/ca-certificates.crt"))
    );
    assert_eq!(
        env("SSL_CERT_DIR"),
        Some(Value::from("/etc/ots-operator/ca"))
    );
    assert_eq!(
        env("HTTPS_PROXY"),
        Some(Value::from("http://proxy.internal.example.com:3128"))
    );
    let mounts = container["volumeMounts"].as_array().expect("volume mounts");
    assert!(mounts.iter().any(|m| m["name"] == "ca-bundle"
        && m["mountPath"] == "/etc/ots-operator/ca"
        && m["readOnly"] == true));
    assert!(mounts.iter().any(|m| m["name"] == "scratch"));
    let volumes = pod["volumes"].as_array().expect("volumes");
    let ca = volumes
        .iter()
        .find(|v| v["name"] == "ca-bundle")
        .expect("the CA volume");
    assert_eq!(ca["configMap"]["name"], "ots-ca");
    assert_eq!(ca["configMap"]["items"][0]["key"], "ca.crt");
    assert!(volumes.iter().any(|v| v["name"] == "scratch"));

    // A Secret works too, and a CA bundle without a name is refused with a clear message.
    let output = template_with(&["--set", "caBundle.enabled=true"])
        .output()
        .expect("run helm");
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("caBundle.name"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let secret = yaml_documents(&run(template_with(&[
        "--set",
        "caBundle.enabled=true",
        "--set",
        "caBundle.kind=secret",
        "--set",
        "caBundle.name=ots-ca",
    ])));
    let volumes = &find(&secret, "Deployment")["spec"]["template"]["spec"]["volumes"];
    assert_eq!(volumes[0]["secret"]["secretName"], "ots-ca");
}

#[test]
fn openshift_mode_sets_no_fixed_uid_and_the_default_listens_on_ipv6_and_ipv4() {
    let objects = render_all_on();
    let pod = &find(&objects, "Deployment")["spec"]["template"]["spec"];
    for context in [
        &pod["securityContext"],
        &pod["containers"][0]["securityContext"],
    ] {
        for key in ["runAsUser", "runAsGroup", "fsGroup"] {
            assert!(context.get(key).is_none(), "{key} is fixed: {context}");
        }
        assert_eq!(context["runAsNonRoot"], true);
    }
    let args = pod["containers"][0]["args"].as_array().expect("args");
    assert!(args.contains(&Value::from("--metrics-addr=[::]:8080")));
    assert!(
        pod["topologySpreadConstraints"][0]["labelSelector"]["matchLabels"]["app.kubernetes.io/instance"]
            == "platform",
        "the spread constraint selects the operator pods by default"
    );
}

#[test]
fn alerts_and_dashboard_query_only_metrics_the_operator_exports() {
    let objects = render_all_on();
    let metrics_source = std::fs::read_to_string(repo_path("src/runtime/metrics.rs"))
        .expect("read src/runtime/metrics.rs");
    // The family names registered under the `ots_operator` prefix; counters gain `_total`,
    // histograms `_bucket`, `_count`, `_sum`.
    let families: Vec<String> = metrics_source
        .split("register")
        .skip(1)
        .filter_map(|call| call.split('"').nth(1).map(str::to_owned))
        .collect();
    let known = |name: &str| {
        let bare = name
            .trim_start_matches("ots_operator_")
            .trim_end_matches("_total")
            .trim_end_matches("_bucket")
            .trim_end_matches("_seconds");
        name.starts_with("ots_operator_") && families.iter().any(|f| f == bare)
    };
    let rule = find(&objects, "PrometheusRule");
    let mut alerts = Vec::new();
    let mut exprs = Vec::new();
    for group in rule["spec"]["groups"].as_array().expect("groups") {
        for rule in group["rules"].as_array().expect("rules") {
            alerts.push(rule["alert"].as_str().expect("alert").to_owned());
            exprs.push(rule["expr"].as_str().expect("expr").to_owned());
        }
    }
    for alert in [
        "OtsOperatorSharesFailed",
        "OtsOperatorBurnFailed",
        "OtsOperatorOrphansPossible",
        "OtsOperatorLinksExpiredUnread",
        "OtsOperatorLinksNearExpiryUnread",
    ] {
        assert!(
            alerts.iter().any(|a| a == alert),
            "{alert} missing: {alerts:?}"
        );
    }
    assert!(
        exprs
            .iter()
            .any(|e| e.contains(r#"ots_operator_burns_total{outcome="gave_up"}"#))
    );

    let dashboard_map = objects
        .iter()
        .find(|o| {
            o["kind"] == "ConfigMap" && o["metadata"]["name"] == "platform-ots-operator-dashboard"
        })
        .expect("the dashboard ConfigMap");
    assert_eq!(
        dashboard_map["metadata"]["labels"]["grafana_dashboard"],
        "1"
    );
    let dashboard: Value = serde_json::from_str(
        dashboard_map["data"]["ots-operator.json"]
            .as_str()
            .expect("dashboard JSON"),
    )
    .expect("the dashboard is JSON");
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            exprs.push(target["expr"].as_str().expect("expr").to_owned());
        }
    }
    for expr in &exprs {
        for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if word.starts_with("ots_operator_") {
                assert!(known(word), "{word} in `{expr}` is not an operator metric");
            }
        }
    }
}

#[test]
fn pod_disruption_budget_takes_min_available_or_max_unavailable() {
    let objects = render_all_on();
    let budget = find(&objects, "PodDisruptionBudget");
    assert_eq!(budget["spec"]["minAvailable"], 1);
    assert!(budget["spec"].get("maxUnavailable").is_none());
    let default = yaml_documents(&run(template_with(&[
        "--set",
        "podDisruptionBudget.enabled=true",
    ])));
    assert_eq!(
        find(&default, "PodDisruptionBudget")["spec"]["maxUnavailable"],
        1
    );
}

/// The Prometheus Operator CRDs (ServiceMonitor, PrometheusRule) from the Go module's source.
fn prometheus_operator_crds() -> Vec<PathBuf> {
    let output = Command::new("go")
        .args(["mod", "download", "-json", PROMETHEUS_OPERATOR])
        .current_dir(std::env::temp_dir())
        .env("GOFLAGS", "-mod=mod")
        .output()
        .expect("run go mod download");
    let info: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "go mod download {PROMETHEUS_OPERATOR}: {error}: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    let dir = PathBuf::from(
        info["Dir"]
            .as_str()
            .unwrap_or_else(|| panic!("go mod download gave no Dir: {info}")),
    )
    .join("example/prometheus-operator-crd");
    ["servicemonitors", "prometheusrules"]
        .iter()
        .map(|name| dir.join(format!("monitoring.coreos.com_{name}.yaml")))
        .collect()
}

#[tokio::test]
async fn helm_install_with_every_platform_value_applies_server_side_and_the_apiserver_accepts_each_object()
 {
    for crd in prometheus_operator_crds() {
        let mut apply = cluster::tool_command("kubectl");
        apply.args(["apply", "--server-side", "-f"]).arg(&crd);
        run(apply);
    }
    let mut wait = cluster::tool_command("kubectl");
    wait.args([
        "wait",
        "--for=condition=Established",
        "--timeout=120s",
        "crd/prometheusrules.monitoring.coreos.com",
        "crd/servicemonitors.monitoring.coreos.com",
    ]);
    run(wait);

    let values = values_file();
    let values = values.to_str().expect("temp path is UTF-8");
    run(helm(&[
        "install",
        "platform",
        CHART,
        "--namespace",
        "ots-platform",
        "--create-namespace",
        "--server-side=true",
        "-f",
        values,
    ]));
    let manifest = yaml_documents(&run(helm(&[
        "get",
        "manifest",
        "platform",
        "--namespace",
        "ots-platform",
    ])));
    let client = cluster::client().await;
    let kinds: Vec<&str> = manifest.iter().filter_map(|o| o["kind"].as_str()).collect();
    for kind in [
        "NetworkPolicy",
        "PodDisruptionBudget",
        "PrometheusRule",
        "ServiceMonitor",
        "ConfigMap",
    ] {
        assert!(
            kinds.contains(&kind),
            "the release has no {kind}: {kinds:?}"
        );
    }
    for object in &manifest {
        let kind = object["kind"].as_str().expect("kind");
        let name = object["metadata"]["name"].as_str().expect("name");
        let api = cluster::api_for_object(&client, object, "ots-platform").await;
        let found = api
            .get(name)
            .await
            .unwrap_or_else(|error| panic!("{kind} {name} is missing after install: {error}"));
        // Server-side apply records Helm as the field manager of what it applied.
        let managers: Vec<String> = found
            .metadata
            .managed_fields
            .unwrap_or_default()
            .into_iter()
            .filter_map(|entry| {
                entry
                    .operation
                    .filter(|op| op == "Apply")
                    .and(entry.manager)
            })
            .collect();
        assert!(
            !managers.is_empty(),
            "{kind} {name} was not applied server-side"
        );
    }
}

/// `helm template` output and success with `--kube-version`.
fn template_for_kube(version: &str, extra: &[&str]) -> (bool, String) {
    let mut args = vec!["--kube-version", version];
    args.extend_from_slice(extra);
    let output = template_with(&args).output().expect("run helm");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn chart_refuses_kubernetes_before_1_29_and_the_admission_policy_before_1_30() {
    let (ok, stderr) = template_for_kube("1.28.9", &["--set", "admissionPolicy.enabled=false"]);
    assert!(!ok, "1.28 is refused");
    assert!(stderr.contains(">=1.29.0-0"), "{stderr}");
    let (ok, stderr) = template_for_kube("1.29.0", &[]);
    assert!(!ok, "the default admission policy needs 1.30");
    assert!(stderr.contains("Kubernetes 1.30 or later"), "{stderr}");
    let (ok, stderr) = template_for_kube("1.29.0", &["--set", "admissionPolicy.enabled=false"]);
    assert!(ok, "1.29 without the policy installs: {stderr}");
    let (ok, stderr) = template_for_kube("1.30.0", &[]);
    assert!(ok, "1.30 installs the default release: {stderr}");
}

#[test]
fn chart_refuses_to_pick_the_public_service_without_an_explicit_choice() {
    let output = helm(&["template", "x", CHART]).output().expect("run helm");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "no server chosen must fail");
    assert!(
        stderr.contains("ots.url is not set") && stderr.contains("ots.acceptPublicService=true"),
        "the error tells how to choose: {stderr}"
    );
    let args = |extra: &[&str]| -> Vec<Value> {
        let mut args = vec!["template", "x", CHART];
        args.extend_from_slice(extra);
        let objects = yaml_documents(&run(helm(&args)));
        find(&objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
            .as_array()
            .expect("args")
            .clone()
    };
    assert!(
        args(&["--set", "ots.acceptPublicService=true"])
            .contains(&Value::from("--ots-url=https://onetimesecret.com"))
    );
    assert!(
        args(&["--set", "ots.url=https://ots.example.com"])
            .contains(&Value::from("--ots-url=https://ots.example.com"))
    );
}

#[test]
fn install_notes_name_the_server_that_secrets_go_to() {
    let notes = |extra: &[&str]| -> String {
        let mut args = vec!["install", "x", CHART, "--dry-run=client"];
        args.extend_from_slice(extra);
        run(helm(&args))
    };
    let own = notes(&["--set", "ots.url=https://ots.example.com"]);
    assert!(
        own.contains(
            "Shared Secrets go to the Onetime Secret server https://ots.example.com (anonymously)"
        ),
        "{own}"
    );
    let public = notes(&[
        "--set",
        "ots.acceptPublicService=true",
        "--set",
        "ots.existingSecret=ots-credentials",
    ]);
    assert!(
        public.contains(
            "Shared Secrets go to the Onetime Secret server https://onetimesecret.com (account from Secret ots-credentials), the public service"
        ),
        "{public}"
    );
}
