//! Server objects for platform teams, on a real apiserver (with kube-controller-manager, which
//! aggregates the chart's ClusterRoles into `admin`, `edit` and `view`): the chart's `servers:`
//! values render one ClusterOtsServer per entry whose URL the operator may call, mistakes fail the
//! render with a message naming the entry, a `helm upgrade` creates, changes and prunes the
//! servers; a namespace's `edit` user manages OtsServers but never a ClusterOtsServer; and
//! `kubectl ots servers` shows both kinds with their status. A test binary of its own: its release
//! installs the CRDs and the cluster-wide admission policy, and no operator runs (a default
//! ClusterOtsServer here would change where other binaries' shares go).

mod support;

use std::sync::OnceLock;
use std::time::Duration;

use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ObjectMeta, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use support::cluster;
use support::tools::{helm, kubectl, run, yaml_documents};

const CHART: &str = "deploy/helm/ots-operator";
const RELEASE: &str = "servers";
const RELEASE_NAMESPACE: &str = "ots-servers";
/// Generous bound for waits on a loaded 2-core machine; never a timing assertion.
const WAIT: Duration = Duration::from_secs(120);

/// Two servers as a platform team would offer them: a default one with credentials, a CA,
/// a policy and conditions, and a plain one.
const SERVERS: &str = r#"
servers:
  - name: platform-eu
    url: https://ots.eu.example.com
    default: true
    credentials:
      existingSecret: ots-eu-account
      apiTokenKey: token
    caBundle:
      existingSecret: ots-eu-ca
    policy:
      maxTtl: 24h
      defaultTtl: 1h
      passphraseRequired: true
      allowedRecipientDomains: [example.com]
    conditions:
      - namespaceSelector:
          matchLabels:
            ots.dev/tier: production
      - namespaces: [payments]
  - name: platform-us
    url: https://us.onetimesecret.com/
    api: v2
"#;

fn values_file(name: &str, text: &str) -> String {
    let path = std::env::temp_dir().join(format!(
        "ots-operator-server-objects-{}-{name}.yaml",
        std::process::id()
    ));
    std::fs::write(&path, text).expect("write the values file");
    path.to_string_lossy().into_owned()
}

/// `helm template` as release [`RELEASE`] with the public service and `extra`.
fn template(extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "template",
        RELEASE,
        CHART,
        "--namespace",
        RELEASE_NAMESPACE,
        "--set",
        "ots.acceptPublicService=true",
    ];
    args.extend_from_slice(extra);
    helm(&args).output().expect("run helm")
}

fn rendered(extra: &[&str]) -> Vec<Value> {
    let out = template(extra);
    assert!(
        out.status.success(),
        "helm template failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    yaml_documents(&String::from_utf8_lossy(&out.stdout))
}

fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

fn allow_flags(objects: &[Value]) -> Vec<String> {
    let deployment = of_kind(objects, "Deployment")[0];
    deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(Value::as_str)
        .filter_map(|a| a.strip_prefix("--allow-server-url="))
        .map(str::to_owned)
        .collect()
}

/// The stderr of a render that must fail.
fn refused(set_json: &str) -> String {
    let out = template(&["--set-json", set_json]);
    assert!(!out.status.success(), "{set_json} must be refused");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn each_servers_entry_renders_a_cluster_server_whose_url_the_operator_may_call() {
    cluster::with_controller_manager();
    let objects = rendered(&["-f", &values_file("render", SERVERS)]);
    let servers = of_kind(&objects, "ClusterOtsServer");
    assert_eq!(servers.len(), 2);
    let eu = servers[0];
    assert_eq!(eu["metadata"]["name"], "platform-eu");
    assert_eq!(eu["metadata"].get("namespace"), None, "cluster-scoped");
    assert_eq!(
        eu["metadata"]["annotations"]["ots.dev/default-server"],
        "true"
    );
    assert_eq!(
        eu["spec"],
        json!({
            "url": "https://ots.eu.example.com",
            "api": "auto",
            "credentialsSecretRef": {
                "name": "ots-eu-account", "usernameKey": "username", "apiTokenKey": "token"
            },
            "caBundleSecretRef": {"name": "ots-eu-ca", "key": "ca.crt"},
            "policy": {
                "maxTtl": "24h", "defaultTtl": "1h", "passphraseRequired": true,
                "allowedRecipientDomains": ["example.com"]
            },
            "conditions": [
                {"namespaceSelector": {"matchLabels": {"ots.dev/tier": "production"}}},
                {"namespaces": ["payments"]}
            ]
        })
    );
    let us = servers[1];
    assert_eq!(
        us["metadata"]["annotations"].get("ots.dev/default-server"),
        None
    );
    assert_eq!(us["spec"]["api"], "v2");

    // Their Secrets are read in the operator's own namespace: the release namespace.
    let deployment = of_kind(&objects, "Deployment")[0];
    let args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .expect("args");
    assert!(args.contains(&json!("--state-namespace=$(POD_NAMESPACE)")));

    // Every server's URL is allowed, and the official hosts stay allowed as without servers.
    let mut want: Vec<String> = ots_operator::config::OFFICIAL_HOSTS
        .iter()
        .map(|h| (*h).to_owned())
        .collect();
    want.push("https://ots.eu.example.com".into());
    assert_eq!(allow_flags(&objects), want);
    // With an explicit allowlist, the servers are added to it and nothing else.
    let objects = rendered(&[
        "-f",
        &values_file("render-allowlist", SERVERS),
        "--set",
        "ots.allowedServerUrls={https://ots.internal.example.com}",
    ]);
    assert_eq!(
        allow_flags(&objects),
        [
            "https://ots.internal.example.com",
            "https://ots.eu.example.com",
            "https://us.onetimesecret.com"
        ]
    );
    // Without servers, nothing changes: no ClusterOtsServer, no allowlist flag.
    let objects = rendered(&[]);
    assert!(of_kind(&objects, "ClusterOtsServer").is_empty());
    assert!(allow_flags(&objects).is_empty());
}

#[test]
fn the_chart_refuses_two_defaults_a_missing_url_and_a_token_in_values_naming_the_entry() {
    cluster::with_controller_manager();
    let two_defaults = refused(
        r#"servers=[{"name":"a","url":"https://a.example.com","default":true},{"name":"b","url":"https://b.example.com","default":true}]"#,
    );
    assert!(
        two_defaults.contains("servers: a, b all say default: true; at most one ClusterOtsServer may be the default server"),
        "{two_defaults}"
    );
    let no_url = refused(r#"servers=[{"name":"eu"}]"#);
    assert!(
        no_url.contains("servers[0] (eu): url is required"),
        "{no_url}"
    );
    let path = refused(r#"servers=[{"name":"eu","url":"https://eu.example.com/api"}]"#);
    assert!(
        path.contains("servers[0] (eu): url \"https://eu.example.com/api\" must be a base URL"),
        "{path}"
    );
    let ttl = refused(
        r#"servers=[{"name":"eu","url":"https://eu.example.com","policy":{"maxTtl":"1h","defaultTtl":"2h"}}]"#,
    );
    assert!(
        ttl.contains(
            "servers[0] (eu): policy.defaultTtl 2h must not be longer than policy.maxTtl 1h"
        ),
        "{ttl}"
    );
    let condition =
        refused(r#"servers=[{"name":"eu","url":"https://eu.example.com","conditions":[{}]}]"#);
    assert!(
        condition.contains(
            "servers[0] (eu): conditions[0] needs namespaceSelector, namespaces or namespaceRegexes"
        ),
        "{condition}"
    );
    // A token never goes into values: credentials name a Secret, nothing else.
    let token = refused(
        r#"servers=[{"name":"eu","url":"https://eu.example.com","credentials":{"existingSecret":"x","apiToken":"s3cret"}}]"#,
    );
    assert!(
        token.contains("'apiToken' not allowed") && !token.contains("s3cret\""),
        "{token}"
    );
}

#[test]
fn install_notes_name_the_default_server_and_the_secrets_to_create_in_the_release_namespace() {
    cluster::with_controller_manager();
    let notes = run(helm(&[
        "install",
        RELEASE,
        CHART,
        "--namespace",
        RELEASE_NAMESPACE,
        "--dry-run=client",
        "--set",
        "ots.url=https://ots.example.com",
        "-f",
        &values_file("notes", SERVERS),
    ]));
    for line in [
        "Shares that name no server go to the default ClusterOtsServer platform-eu (https://ots.eu.example.com), from the namespaces its conditions allow (elsewhere they fail with reason ServerNotAllowed).",
        "Without it, shared Secrets would go to the Onetime Secret server https://ots.example.com (anonymously).",
        "ClusterOtsServers of this release (`kubectl ots servers` shows whether each is Ready): platform-eu, platform-us.",
        "Their Secrets must exist in namespace ots-servers, where the operator reads them: ots-eu-account, ots-eu-ca.",
    ] {
        assert!(notes.contains(line), "the notes lack {line:?}:\n{notes}");
    }
}

/// Installs the release once (CRDs, RBAC, no servers), after checking that Helm refuses to
/// create ClusterOtsServers in the very install that first creates their CRD (the two steps the
/// values document).
fn installed() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let first = helm(&[
            "install",
            "first-try",
            CHART,
            "--namespace",
            "ots-first-try",
            "--create-namespace",
            "--set",
            "ots.acceptPublicService=true",
            "--set",
            "admissionPolicy.enabled=false",
            "-f",
            &values_file("first-try", SERVERS),
        ])
        .output()
        .expect("run helm");
        let stderr = String::from_utf8_lossy(&first.stderr);
        assert!(
            !first.status.success() && stderr.contains("ensure CRDs are installed first"),
            "{stderr}"
        );
        run(helm(&[
            "install",
            RELEASE,
            CHART,
            "--namespace",
            RELEASE_NAMESPACE,
            "--create-namespace",
            "--set",
            "ots.acceptPublicService=true",
        ]));
        run(kubectl(&[
            "wait",
            "--for=condition=Established",
            "--timeout=120s",
            "crd/otsservers.ots.dev",
            "crd/clusterotsservers.ots.dev",
        ]));
    });
}

fn cluster_servers(client: &Client) -> Api<DynamicObject> {
    Api::all_with(
        client.clone(),
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("ots.dev", "v1alpha1", "ClusterOtsServer"),
            "clusterotsservers",
        ),
    )
}

fn ots_servers(client: &Client, namespace: &str) -> Api<DynamicObject> {
    Api::namespaced_with(
        client.clone(),
        namespace,
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("ots.dev", "v1alpha1", "OtsServer"),
            "otsservers",
        ),
    )
}

fn upgrade(values: &[&str]) {
    let mut args = vec![
        "upgrade",
        RELEASE,
        CHART,
        "--namespace",
        RELEASE_NAMESPACE,
        "--set",
        "ots.acceptPublicService=true",
    ];
    args.extend_from_slice(values);
    run(helm(&args));
}

#[tokio::test]
async fn helm_upgrade_with_servers_creates_changes_and_prunes_cluster_servers() {
    cluster::with_controller_manager();
    installed();
    let _default = DEFAULT_SERVER.lock().await;
    let client = cluster::client().await;
    upgrade(&["-f", &values_file("upgrade", SERVERS)]);
    let eu = cluster_servers(&client)
        .get("platform-eu")
        .await
        .expect("the release created ClusterOtsServer platform-eu");
    assert_eq!(
        eu.annotations()
            .get("ots.dev/default-server")
            .map(String::as_str),
        Some("true")
    );
    assert_eq!(
        eu.annotations()
            .get("meta.helm.sh/release-name")
            .map(String::as_str),
        Some(RELEASE)
    );
    // As the values say, with the CRD's defaults (empty lists) filled in.
    assert_eq!(
        eu.data["spec"]["conditions"],
        json!([
            {
                "namespaceSelector": {"matchLabels": {"ots.dev/tier": "production"}},
                "namespaces": [], "namespaceRegexes": []
            },
            {"namespaces": ["payments"], "namespaceRegexes": []}
        ])
    );
    assert_eq!(
        eu.data["spec"]["credentialsSecretRef"]["name"],
        "ots-eu-account"
    );
    cluster_servers(&client)
        .get("platform-us")
        .await
        .expect("the release created ClusterOtsServer platform-us");

    // One entry left, no longer the default: the release changes it and deletes the other.
    upgrade(&[
        "--set-json",
        r#"servers=[{"name":"platform-eu","url":"https://ots.eu.example.com"}]"#,
    ]);
    let eu = cluster_servers(&client)
        .get("platform-eu")
        .await
        .expect("platform-eu stays");
    assert_eq!(eu.annotations().get("ots.dev/default-server"), None);
    assert_eq!(eu.data["spec"].get("conditions"), None);
    assert!(
        cluster_servers(&client)
            .get_opt("platform-us")
            .await
            .expect("get platform-us")
            .is_none(),
        "a server dropped from the values is deleted"
    );
}

/// Held by the tests that make a ClusterOtsServer the default, so that each sees only its own
/// (the operator, and `kubectl ots servers`, take the oldest of several).
static DEFAULT_SERVER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A client acting as a new ServiceAccount `namespace/name` bound to the built-in ClusterRole
/// `role` in `namespace`.
async fn bind(admin: &Client, namespace: &str, name: &str, role: &str) -> Client {
    bind_role(admin, namespace, name, role).await;
    cluster::impersonating_client(namespace, name).await
}

/// Creates ServiceAccount `namespace/name` and binds the built-in ClusterRole `role` to it in
/// `namespace`.
async fn bind_role(admin: &Client, namespace: &str, name: &str, role: &str) {
    cluster::create_service_account(admin, namespace, name).await;
    let bindings: Api<RoleBinding> = Api::namespaced(admin.clone(), namespace);
    bindings
        .create(
            &PostParams::default(),
            &RoleBinding {
                metadata: ObjectMeta {
                    name: Some(format!("{name}-{role}")),
                    ..ObjectMeta::default()
                },
                role_ref: RoleRef {
                    api_group: Some("rbac.authorization.k8s.io".into()),
                    kind: "ClusterRole".into(),
                    name: role.into(),
                },
                subjects: Some(vec![Subject {
                    kind: "ServiceAccount".into(),
                    name: name.into(),
                    namespace: Some(namespace.into()),
                    ..Subject::default()
                }]),
            },
        )
        .await
        .expect("create the RoleBinding");
}

fn ots_server(name: &str) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "ots.dev/v1alpha1",
        "kind": "OtsServer",
        "metadata": {"name": name},
        "spec": {"url": "https://eu.onetimesecret.com"}
    }))
    .expect("a valid OtsServer")
}

fn cluster_server(name: &str) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "ots.dev/v1alpha1",
        "kind": "ClusterOtsServer",
        "metadata": {"name": name},
        "spec": {"url": "https://eu.onetimesecret.com"}
    }))
    .expect("a valid ClusterOtsServer")
}

fn is_forbidden<T>(result: &Result<T, kube::Error>) -> bool {
    matches!(result, Err(kube::Error::Api(status)) if status.code == 403)
}

#[tokio::test]
async fn namespace_edit_users_manage_ots_servers_view_users_read_them_and_neither_gets_cluster_servers()
 {
    cluster::with_controller_manager();
    installed();
    let admin = cluster::client().await;
    let namespace = cluster::test_namespace(&admin, "servers-rbac").await;
    let editor = bind(&admin, &namespace, "editor", "edit").await;
    let viewer = bind(&admin, &namespace, "viewer", "view").await;

    // The controller-manager aggregates the chart's roles a moment after the install.
    let deadline = tokio::time::Instant::now() + WAIT;
    let created = loop {
        let attempt = ots_servers(&editor, &namespace)
            .create(&PostParams::default(), &ots_server("team-eu"))
            .await;
        if !is_forbidden(&attempt) || tokio::time::Instant::now() >= deadline {
            break attempt;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    created.expect("an edit user creates an OtsServer in its namespace");
    ots_servers(&editor, &namespace)
        .delete("team-eu", &Default::default())
        .await
        .expect("an edit user deletes it");
    ots_servers(&admin, &namespace)
        .create(&PostParams::default(), &ots_server("team-us"))
        .await
        .expect("the admin creates one");

    let deadline = tokio::time::Instant::now() + WAIT;
    let listed = loop {
        let attempt = ots_servers(&viewer, &namespace)
            .list(&Default::default())
            .await;
        if !is_forbidden(&attempt) || tokio::time::Instant::now() >= deadline {
            break attempt;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(listed.expect("a view user lists OtsServers").items.len(), 1);
    assert!(
        is_forbidden(
            &ots_servers(&viewer, &namespace)
                .create(&PostParams::default(), &ots_server("viewer-made"))
                .await
        ),
        "a view user may not create an OtsServer"
    );

    // ClusterOtsServers are the cluster administrators': no namespace role reaches them.
    for (who, client) in [("edit", &editor), ("view", &viewer)] {
        assert!(
            is_forbidden(
                &cluster_servers(client)
                    .create(
                        &PostParams::default(),
                        &cluster_server(&format!("{who}-made"))
                    )
                    .await
            ),
            "a namespace {who} user may not create a ClusterOtsServer"
        );
        assert!(
            is_forbidden(&cluster_servers(client).list(&Default::default()).await),
            "a namespace {who} user may not list ClusterOtsServers"
        );
    }
}

/// Runs `kubectl-ots --kubeconfig KUBECONFIG ARGS`.
async fn kubectl_ots(kubeconfig: &std::path::Path, args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_kubectl-ots"))
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .env_remove("KUBECONFIG")
        .output()
        .await
        .expect("run kubectl-ots")
}

/// Writes a status as the operator does, through the status subresource.
async fn write_status(api: &Api<DynamicObject>, name: &str, status: Value) {
    api.patch_status(
        name,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&json!({ "status": status })),
    )
    .await
    .unwrap_or_else(|error| panic!("write the status of {name}: {error}"));
}

fn ready(status: &str, reason: &str, api: &str, shares: i64) -> Value {
    json!({
        "api": api,
        "liveShares": shares,
        "lastCheckedAt": "2026-12-05T12:00:00Z",
        "conditions": [{
            "type": "Ready", "status": status, "reason": reason,
            "message": "set by the test", "lastTransitionTime": "2026-12-05T12:00:00Z"
        }]
    })
}

/// The cells of the row whose NAME column is `name`.
fn row<'a>(table: &'a str, name: &str) -> Vec<&'a str> {
    table
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .find(|cells| cells.get(1) == Some(&name) || cells.get(2) == Some(&name))
        .unwrap_or_else(|| panic!("no row {name}:\n{table}"))
}

#[tokio::test]
async fn kubectl_ots_servers_lists_the_namespace_and_cluster_servers_with_their_status() {
    cluster::with_controller_manager();
    installed();
    let _default = DEFAULT_SERVER.lock().await;
    let admin = cluster::client().await;
    let namespace = cluster::test_namespace(&admin, "servers-plugin").await;
    let other = cluster::test_namespace(&admin, "servers-plugin-other").await;
    let mut team = ots_server("team-eu");
    team.data["spec"]["credentialsSecretRef"] = json!({"name": "team-ots-account"});
    ots_servers(&admin, &namespace)
        .create(&PostParams::default(), &team)
        .await
        .expect("create OtsServer team-eu");
    ots_servers(&admin, &other)
        .create(&PostParams::default(), &ots_server("elsewhere"))
        .await
        .expect("create OtsServer elsewhere");
    let mut platform = cluster_server("plugin-default");
    platform.metadata.annotations = Some(
        [("ots.dev/default-server".to_owned(), "true".to_owned())]
            .into_iter()
            .collect(),
    );
    platform.data["spec"]["conditions"] = json!([{"namespaces": [namespace.clone()]}]);
    cluster_servers(&admin)
        .create(&PostParams::default(), &platform)
        .await
        .expect("create ClusterOtsServer plugin-default");
    write_status(
        &ots_servers(&admin, &namespace),
        "team-eu",
        ready("False", "Unauthorized", "v2", 0),
    )
    .await;
    write_status(
        &cluster_servers(&admin),
        "plugin-default",
        ready("True", "Verified", "v1", 3),
    )
    .await;

    let out = kubectl_ots(cluster::kubeconfig_path(), &["-n", &namespace, "servers"]).await;
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{table}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(table.starts_with("KIND "), "a header first: {table}");
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        [
            "KIND", "NAME", "URL", "API", "READY", "REASON", "SHARES", "DEFAULT", "AGE"
        ]
    );
    let team_row = row(&table, "team-eu");
    assert_eq!(
        team_row[..8],
        [
            "OtsServer",
            "team-eu",
            "https://eu.onetimesecret.com",
            "v2",
            "False",
            "Unauthorized",
            "0",
            "-"
        ]
    );
    let platform_row = row(&table, "plugin-default");
    assert_eq!(
        platform_row[..8],
        [
            "ClusterOtsServer",
            "plugin-default",
            "https://eu.onetimesecret.com",
            "v1",
            "True",
            "Verified",
            "3",
            "yes"
        ]
    );
    assert!(
        !table.contains("elsewhere"),
        "another namespace's server: {table}"
    );
    assert!(
        !table.contains("team-ots-account"),
        "Secrets are never shown: {table}"
    );

    // -A: every namespace's servers, with a NAMESPACE column.
    let out = kubectl_ots(cluster::kubeconfig_path(), &["servers", "-A"]).await;
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{table}");
    assert!(
        table.starts_with("KIND ")
            && table
                .lines()
                .next()
                .is_some_and(|h| h.contains(" NAMESPACE ")),
        "{table}"
    );
    assert_eq!(
        row(&table, "elsewhere")[..3],
        ["OtsServer", other.as_str(), "elsewhere"]
    );
    assert_eq!(
        row(&table, "plugin-default")[..3],
        ["ClusterOtsServer", "-", "plugin-default"]
    );

    // A namespace `view` user sees the namespace's servers and is told why the cluster's are not
    // shown (listing them is the cluster administrators' right).
    bind_role(&admin, &namespace, "reader", "view").await;
    let kubeconfig = cluster::service_account_kubeconfig(&admin, &namespace, "reader").await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let out = loop {
        let out = kubectl_ots(&kubeconfig, &["-n", &namespace, "servers"]).await;
        if out.status.success() || tokio::time::Instant::now() >= deadline {
            break out;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{table}{stderr}");
    row(&table, "team-eu");
    assert!(!table.contains("plugin-default"), "{table}");
    assert!(
        stderr.contains("ClusterOtsServers are not shown: not allowed to list them"),
        "{stderr}"
    );
}
