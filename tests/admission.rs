//! The chart's admission guard (`ValidatingAdmissionPolicy` `ots-operator-secret-access`) on a real
//! kube-apiserver: the chart's own rendered objects are applied with `helm template | kubectl apply`,
//! then ServiceAccounts with limited rights (impersonated with `kubectl --as`) try what a hostile or
//! careless tenant would. Also the CRD's refusal of malformed Secret names and keys at `kubectl apply`.
//!
//! One control plane per test binary, so one cluster-wide policy: it is rendered with
//! [`POLICY_VALUES`]. Policies of other values (the chart defaults, a global passphrase requirement)
//! are the same rendered objects under another name, bound only to namespaces labelled
//! [`VARIANT_LABEL`].

mod support;

use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::cluster;
use support::tools::{helm, yaml_documents};

const CHART: &str = "deploy/helm/ots-operator";
/// The release of this test binary: `helm template ots-operator … --namespace ots-operator`, as
/// `scripts/render-manifests` renders it.
const RELEASE_NAMESPACE: &str = "ots-operator";
const OPERATOR_USER: &str = "system:serviceaccount:ots-operator:ots-operator";
/// The policy's fixed name (design §6).
const POLICY: &str = "ots-operator-secret-access";
/// Chart values of the cluster-wide policy of this test binary.
const POLICY_VALUES: &[&str] = &[
    "--set",
    "admissionPolicy.maxTtl=24h",
    "--set",
    "admissionPolicy.recipientDomains={example.com,*.example.org}",
];
/// Namespace label that binds a variant policy (see [`guarded_cluster`]).
const VARIANT_LABEL: &str = "ots-admission-test/policy";
/// The chart's default label that makes a namespace require passphrases.
const PASSPHRASE_LABEL: &str = "ots.dev/require-passphrase";

/// Generous bound for waits on a loaded 2-core machine; never a timing assertion.
const WAIT: Duration = Duration::from_secs(120);

/// Runs `command` with `stdin` and returns its output (success or not).
fn output(mut command: Command, stdin: Option<&str>) -> Output {
    command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .unwrap_or_else(|error| panic!("cannot run {command:?}: {error}"));
    if let Some(text) = stdin {
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin is piped")
            .write_all(text.as_bytes())
            .expect("write stdin");
    }
    child.wait_with_output().expect("wait for the command")
}

/// Runs a command that must succeed and returns its stdout.
fn run(command: Command, stdin: Option<&str>) -> String {
    let description = format!("{command:?}");
    let out = output(command, stdin);
    assert!(
        out.status.success(),
        "{description} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `kubectl` as cluster admin, or as `user` (impersonated) when given.
fn kubectl(user: Option<&str>, args: &[&str]) -> Command {
    let mut command = cluster::tool_command("kubectl");
    command.current_dir(cluster::repo_root());
    if let Some(user) = user {
        command.arg(format!("--as={user}"));
    }
    command.args(args);
    command
}

/// `helm template` of the chart (public service accepted) with `args` after it.
fn helm_template(args: &[&str]) -> Command {
    let mut all = vec![
        "template",
        "ots-operator",
        CHART,
        "--set",
        "ots.acceptPublicService=true",
    ];
    all.extend_from_slice(args);
    helm(&all)
}

/// `helm template` of the chart as this binary's release, with `values`.
fn render(values: &[&str]) -> Vec<Value> {
    let mut args = vec!["--namespace", RELEASE_NAMESPACE];
    args.extend_from_slice(values);
    yaml_documents(&run(helm_template(&args), None))
}

fn apply(objects: &[Value]) {
    let stream: String = objects
        .iter()
        .map(|object| format!("---\n{}", serde_yaml::to_string(object).expect("YAML")))
        .collect();
    run(
        kubectl(None, &["apply", "--server-side", "-f", "-"]),
        Some(&stream),
    );
}

/// Waits until `probe` (a server-side dry run) is refused with a message containing `expected`:
/// policies and bindings reach the apiserver's admission a moment after they are written.
fn wait_until_refused(namespace: &str, share: &Value, expected: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let out = output(
            kubectl(
                None,
                &["create", "--dry-run=server", "-n", namespace, "-f", "-"],
            ),
            Some(&share.to_string()),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() && stderr.contains(expected) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the policy never refused {share} in {namespace} with {expected:?}; last answer: {stderr}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn namespace(name: &str, labels: &[(&str, &str)]) {
    let labels: serde_json::Map<String, Value> = labels
        .iter()
        .map(|(key, value)| ((*key).to_owned(), json!(value)))
        .collect();
    run(
        kubectl(None, &["apply", "--server-side", "-f", "-"]),
        Some(
            &json!({
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": { "name": name, "labels": labels },
            })
            .to_string(),
        ),
    );
}

/// Applies the chart's objects once per test binary and waits until every policy is in force.
fn guarded_cluster() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        namespace(RELEASE_NAMESPACE, &[]);
        apply(&render(POLICY_VALUES));
        run(
            kubectl(
                None,
                &[
                    "wait",
                    "--for=condition=Established",
                    "crd/onetimeshares.ots.dev",
                    "--timeout=120s",
                ],
            ),
            None,
        );

        // The same chart, other values: its policy and binding under another name, bound to the
        // namespaces labelled with the variant.
        for (variant, values) in [
            ("defaults", &[][..]),
            (
                "passphrase-required",
                &["--set", "admissionPolicy.passphrase.required=true"][..],
            ),
        ] {
            let name = format!("{POLICY}-{variant}");
            let mut objects: Vec<Value> = render(values)
                .into_iter()
                .filter(|object| {
                    object["kind"]
                        .as_str()
                        .is_some_and(|kind| kind.starts_with("ValidatingAdmissionPolicy"))
                        && object["metadata"]["name"] == POLICY
                })
                .collect();
            assert_eq!(objects.len(), 2, "the chart renders a policy and a binding");
            for object in &mut objects {
                object["metadata"]["name"] = json!(name);
                if object["kind"] == "ValidatingAdmissionPolicyBinding" {
                    object["spec"]["policyName"] = json!(name);
                    object["spec"]["matchResources"] = json!({
                        "namespaceSelector": { "matchLabels": { VARIANT_LABEL: variant } }
                    });
                }
            }
            apply(&objects);
        }

        namespace("admission-probe", &[]);
        wait_until_refused(
            "admission-probe",
            &share_json(
                "probe",
                json!({ "secretRef": { "name": "db" }, "ttl": "7d" }),
            ),
            "at most 24h",
        );
        namespace("admission-probe-defaults", &[(VARIANT_LABEL, "defaults")]);
        wait_until_refused(
            "admission-probe-defaults",
            &share_json(
                "probe",
                json!({ "secretRef": { "name": "db" }, "ttl": "1h", "recipient": "a@example.com" }),
            ),
            &format!("{POLICY}-defaults"),
        );
        namespace(
            "admission-probe-passphrase",
            &[(VARIANT_LABEL, "passphrase-required")],
        );
        wait_until_refused(
            "admission-probe-passphrase",
            &share_json(
                "probe",
                json!({ "secretRef": { "name": "db" }, "ttl": "1h" }),
            ),
            &format!("{POLICY}-passphrase-required"),
        );

        // The server policies take ClusterOtsServers and OtsServers as parameters: wait until
        // their CRDs are served and the apiserver evaluates a ClusterOtsServer that allows no
        // namespace of this binary.
        for crd in ["clusterotsservers.ots.dev", "otsservers.ots.dev"] {
            run(
                kubectl(
                    None,
                    &[
                        "wait",
                        "--for=condition=Established",
                        &format!("crd/{crd}"),
                        "--timeout=120s",
                    ],
                ),
                None,
            );
        }
        cluster_server(
            "admission-probe-nowhere",
            json!([{ "namespaces": ["nowhere"] }]),
        );
        wait_until_refused(
            "admission-probe",
            &share_json(
                "probe",
                json!({
                    "secretRef": { "name": "db" },
                    "ttl": "1h",
                    "serverRef": { "kind": "ClusterOtsServer", "name": "admission-probe-nowhere" },
                }),
            ),
            "does not allow namespace admission-probe",
        );
    });
}

fn share_json(name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "ots.dev/v1alpha1",
        "kind": "OneTimeShare",
        "metadata": { "name": name },
        "spec": spec,
    })
}

/// A fresh namespace with the given labels and the Secrets `names` (fake values).
async fn test_namespace(prefix: &str, labels: &[(&str, &str)], secrets: &[&str]) -> String {
    guarded_cluster();
    let admin = cluster::client().await;
    let name = cluster::test_namespace(&admin, prefix).await;
    if !labels.is_empty() {
        namespace(&name, labels);
    }
    for secret in secrets {
        create_secret(&name, secret, "Opaque", &[]);
    }
    name
}

fn create_secret(namespace: &str, name: &str, kind: &str, annotations: &[(&str, &str)]) {
    let annotations: serde_json::Map<String, Value> = annotations
        .iter()
        .map(|(key, value)| ((*key).to_owned(), json!(value)))
        .collect();
    let data = if kind == "kubernetes.io/service-account-token" {
        json!({ "token": "fake-token-for-the-test" })
    } else {
        json!({ "password": "fake-test-value", "username": "app", "apiToken": "fake-api-token" })
    };
    run(
        kubectl(None, &["create", "-n", namespace, "-f", "-"]),
        Some(
            &json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "type": kind,
                "metadata": { "name": name, "annotations": annotations },
                "stringData": data,
            })
            .to_string(),
        ),
    );
}

/// Polls `kubectl auth can-i` until `user` may (or may not) do `verb` on `resource`: RBAC changes
/// reach the authorizer's cache a moment after the bindings are written.
fn wait_can_i(user: &str, namespace: &str, verb: &str, resource: &str, expected: bool) {
    let deadline = Instant::now() + WAIT;
    loop {
        let out = output(
            kubectl(
                Some(user),
                &["auth", "can-i", verb, resource, "-n", namespace],
            ),
            None,
        );
        let answer = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if (answer == "yes") == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{user} can-i {verb} {resource} in {namespace} never became {expected}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A Role `name` with `rules` and the RoleBinding `name` that grants it to ServiceAccount `sa` of
/// `sa_namespace`.
fn role_bound_to(name: &str, rules: Value, sa_namespace: &str, sa: &str) -> [Value; 2] {
    [
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": { "name": name },
            "rules": rules,
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": { "name": name },
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name },
            "subjects": [{ "kind": "ServiceAccount", "name": sa, "namespace": sa_namespace }],
        }),
    ]
}

/// Applies `items` as one List in `namespace`, server-side, as an administrator would.
fn apply_list(namespace: &str, items: Vec<Value>) {
    let objects = json!({ "apiVersion": "v1", "kind": "List", "items": items });
    run(
        kubectl(
            None,
            &["apply", "--server-side", "-n", namespace, "-f", "-"],
        ),
        Some(&objects.to_string()),
    );
}

/// A ServiceAccount of `namespace` that may create, read, update and delete OneTimeShares there,
/// and `get` exactly the Secrets `readable` (none: it may not read any Secret). Returns its user name.
fn tenant(namespace: &str, name: &str, readable: &[&str]) -> String {
    let mut rules = vec![json!({
        "apiGroups": ["ots.dev"],
        "resources": ["onetimeshares"],
        "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"],
    })];
    if !readable.is_empty() {
        rules.push(json!({
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": readable,
            "verbs": ["get"],
        }));
    }
    let [role, binding] = role_bound_to(name, json!(rules), namespace, name);
    apply_list(
        namespace,
        vec![
            json!({ "apiVersion": "v1", "kind": "ServiceAccount", "metadata": { "name": name } }),
            role,
            binding,
        ],
    );
    let user = format!("system:serviceaccount:{namespace}:{name}");
    wait_can_i(&user, namespace, "create", "onetimeshares.ots.dev", true);
    for secret in readable {
        wait_can_i(&user, namespace, "get", &format!("secret/{secret}"), true);
    }
    user
}

/// `kubectl create` of a share as `user` (admin when `None`).
fn create_share(user: Option<&str>, namespace: &str, name: &str, spec: Value) -> Output {
    output(
        kubectl(user, &["create", "-n", namespace, "-f", "-"]),
        Some(&share_json(name, spec).to_string()),
    )
}

/// The cluster admin shares key `password` of Secret `db` for an hour; the policy admits it.
fn admin_shares_db(namespace: &str, name: &str, what: &str) {
    let out = create_share(
        None,
        namespace,
        name,
        json!({ "secretRef": { "name": "db", "key": "password" }, "ttl": "1h" }),
    );
    assert_admitted(&out, what);
}

fn exists(namespace: &str, name: &str) -> bool {
    output(
        kubectl(None, &["get", "onetimeshare", name, "-n", namespace]),
        None,
    )
    .status
    .success()
}

fn assert_admitted(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: expected to be admitted, got: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The kubectl words that merge-patch the Secret `name` with the JSON `patch`.
fn merge_patch_secret<'a>(name: &'a str, patch: &'a str) -> Vec<&'a str> {
    vec!["patch", "secret", name, "--type=merge", "-p", patch]
}

/// Asserts a refusal whose message holds every one of `expected`, and returns the message.
fn assert_refused(out: &Output, what: &str, expected: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "{what}: expected a refusal, but it was admitted"
    );
    for part in expected {
        assert!(
            stderr.contains(part),
            "{what}: the refusal lacks {part:?}: {stderr}"
        );
    }
    stderr
}

/// Asserts that creating the share `name` as `user` is refused by the cluster-wide policy with a
/// message naming `field`, the Secret and the missing permission, and that nothing was created.
fn assert_share_refused_for_secret(
    user: &str,
    namespace: &str,
    name: &str,
    spec: Value,
    field: &str,
    secret: &str,
) {
    let out = create_share(Some(user), namespace, name, spec);
    assert_refused(
        &out,
        &format!("{user} sharing Secret {secret} through {field}"),
        &[
            &format!("ValidatingAdmissionPolicy '{POLICY}'"),
            &format!("{field}: {user} may not get Secret \"{secret}\" in namespace {namespace}"),
            "missing permission: get on secrets",
        ],
    );
    assert!(
        !exists(namespace, name),
        "a refused share must not exist: {namespace}/{name}"
    );
}

// ---------------------------------------------------------------------------------------------
// Who may share what

#[tokio::test]
async fn a_share_naming_a_secret_its_creator_cannot_read_is_refused_for_each_of_the_three_refs() {
    let ns = test_namespace(
        "adm-deputy",
        &[],
        &["readable", "db", "passphrases", "ots-credentials"],
    )
    .await;
    let helpdesk = tenant(&ns, "helpdesk", &["readable"]);
    // Control: the Secrets exist and the help desk really cannot read them.
    let out = output(
        kubectl(Some(&helpdesk), &["get", "secret", "db", "-n", &ns]),
        None,
    );
    assert!(
        !out.status.success(),
        "the help desk must not read Secret db"
    );

    for (share, field, secret) in [
        ("via-secret-ref", "spec.secretRef", "db"),
        (
            "via-passphrase-ref",
            "spec.passphraseSecretRef",
            "passphrases",
        ),
        (
            "via-credentials-ref",
            "spec.server.credentialsSecretRef",
            "ots-credentials",
        ),
    ] {
        let spec = spec_naming(field, secret, "password");
        assert_share_refused_for_secret(&helpdesk, &ns, share, spec, field, secret);
    }
}

/// A share spec whose `field` (`spec.secretRef`, `spec.passphraseSecretRef` or
/// `spec.server.credentialsSecretRef`) names `secret`; any other Secret it names is `readable`.
fn spec_naming(field: &str, secret: &str, key: &str) -> Value {
    match field {
        "spec.secretRef" => json!({ "secretRef": { "name": secret, "key": key }, "ttl": "1h" }),
        "spec.passphraseSecretRef" => json!({
            "secretRef": { "name": "readable", "key": "password" },
            "passphraseSecretRef": { "name": secret, "key": key },
            "ttl": "1h",
        }),
        "spec.server.credentialsSecretRef" => json!({
            "secretRef": { "name": "readable", "key": "password" },
            "server": {
                "url": "https://eu.onetimesecret.com",
                "credentialsSecretRef": { "name": secret },
            },
            "ttl": "1h",
        }),
        other => panic!("no spec names a Secret in {other}"),
    }
}

#[tokio::test]
async fn sharing_the_token_secret_of_a_cluster_admin_service_account_is_refused() {
    let ns = test_namespace("adm-sa-token", &[], &["readable"]).await;
    // A powerful ServiceAccount and its long-lived token Secret, as `kubectl create token` users
    // and older clusters have them.
    run(
        kubectl(None, &["create", "serviceaccount", "deployer", "-n", &ns]),
        None,
    );
    let binding = format!("{ns}-deployer-cluster-admin");
    run(
        kubectl(
            None,
            &[
                "create",
                "clusterrolebinding",
                &binding,
                "--clusterrole=cluster-admin",
                &format!("--serviceaccount={ns}:deployer"),
            ],
        ),
        None,
    );
    create_secret(
        &ns,
        "deployer-token",
        "kubernetes.io/service-account-token",
        &[("kubernetes.io/service-account.name", "deployer")],
    );
    let ci_bot = tenant(&ns, "ci-bot", &["readable"]);

    for field in [
        "spec.secretRef",
        "spec.passphraseSecretRef",
        "spec.server.credentialsSecretRef",
    ] {
        let spec = spec_naming(field, "deployer-token", "token");
        assert_share_refused_for_secret(
            &ci_bot,
            &ns,
            "steal-the-token",
            spec,
            field,
            "deployer-token",
        );
    }
}

/// A namespace with the Secrets `db`, `passphrases`, `ots-credentials` and `other`, and a tenant
/// `user` who may get the first three and has created `share` naming all three (the policy
/// admitted it). Returns the namespace and the tenant.
async fn creator_of_a_share_of_three(prefix: &str, user: &str, share: &str) -> (String, String) {
    let ns = test_namespace(
        prefix,
        &[],
        &["db", "passphrases", "ots-credentials", "other"],
    )
    .await;
    let creator = tenant(&ns, user, &["db", "passphrases", "ots-credentials"]);
    let out = create_share(
        Some(&creator),
        &ns,
        share,
        json!({
            "secretRef": { "name": "db", "key": "password" },
            "passphraseSecretRef": { "name": "passphrases", "key": "password" },
            "server": {
                "url": "https://eu.onetimesecret.com",
                "credentialsSecretRef": { "name": "ots-credentials" },
            },
            "ttl": "1h",
        }),
    );
    assert_admitted(&out, &format!("{user}'s share of Secrets they may get"));
    (ns, creator)
}

#[tokio::test]
async fn a_creator_allowed_to_get_every_named_secret_shares_them() {
    let (ns, alice) =
        creator_of_a_share_of_three("adm-allowed", "alice", "everything-readable").await;
    assert!(
        exists(&ns, "everything-readable"),
        "alice shares Secrets she may get"
    );

    // Her right to get three Secrets by name is not a right to share a fourth.
    assert_share_refused_for_secret(
        &alice,
        &ns,
        "not-hers",
        json!({ "secretRef": { "name": "other" }, "ttl": "1h" }),
        "spec.secretRef",
        "other",
    );
}

#[tokio::test]
async fn changing_a_named_secret_on_update_is_refused_with_a_readable_message() {
    let (ns, bob) = creator_of_a_share_of_three("adm-update", "bob", "bobs-share").await;

    // Re-pointing a share at a Secret bob cannot read. The CRD's own immutability rules run in
    // the apiserver's validation, before validating admission policies, so they answer first; the
    // policy would refuse the change too (it checks every changed name on UPDATE).
    for (field, patch, immutable) in [
        (
            "secretRef",
            json!({ "spec": { "secretRef": { "name": "other", "key": "password" } } }),
            "secretRef is immutable",
        ),
        (
            "passphraseSecretRef",
            json!({ "spec": { "passphraseSecretRef": { "name": "other", "key": "password" } } }),
            "passphraseSecretRef is immutable",
        ),
        (
            "server.credentialsSecretRef",
            json!({ "spec": { "server": { "credentialsSecretRef": { "name": "other" } } } }),
            "server is immutable",
        ),
    ] {
        let out = output(
            kubectl(
                Some(&bob),
                &[
                    "patch",
                    "onetimeshare",
                    "bobs-share",
                    "-n",
                    &ns,
                    "--type=merge",
                    "-p",
                    &patch.to_string(),
                ],
            ),
            None,
        );
        assert_refused(
            &out,
            &format!("bob re-points {field} at Secret other"),
            &[immutable],
        );
    }
    let stored = run(
        kubectl(
            None,
            &["get", "onetimeshare", "bobs-share", "-n", &ns, "-o", "json"],
        ),
        None,
    );
    let stored: Value = serde_json::from_str(&stored).expect("JSON");
    assert_eq!(stored["spec"]["secretRef"]["name"], "db");
    assert_eq!(stored["spec"]["passphraseSecretRef"]["name"], "passphrases");
    assert_eq!(
        stored["spec"]["server"]["credentialsSecretRef"]["name"],
        "ots-credentials"
    );
}

/// `kubectl patch` (merge) of the share `admins-share` as `user`.
fn patch_share(user: Option<&str>, namespace: &str, patch: &str) -> Command {
    kubectl(
        user,
        &[
            "patch",
            "onetimeshare",
            "admins-share",
            "-n",
            namespace,
            "--type=merge",
            "-p",
            patch,
        ],
    )
}

#[tokio::test]
async fn editing_or_deleting_a_share_whose_secret_the_editor_cannot_read_is_admitted() {
    let ns = test_namespace("adm-edit", &[], &["db"]).await;
    admin_shares_db(&ns, "admins-share", "the admin's share");
    run(
        patch_share(None, &ns, r#"{"metadata":{"finalizers":["ots.dev/burn"]}}"#),
        None,
    );
    // A namespace maintainer who manages shares but may not read Secret db: the guard checks only
    // names that change, so labelling, releasing a finalizer and deleting stay possible.
    let maintainer = tenant(&ns, "maintainer", &[]);
    for patch in [
        r#"{"metadata":{"labels":{"team":"a"}}}"#,
        r#"{"metadata":{"finalizers":null}}"#,
        r#"{"spec":{"deletionPolicy":"Keep"}}"#,
    ] {
        let out = output(patch_share(Some(&maintainer), &ns, patch), None);
        assert_admitted(&out, &format!("the maintainer patches {patch}"));
    }
    let out = output(
        kubectl(
            Some(&maintainer),
            &["delete", "onetimeshare", "admins-share", "-n", &ns],
        ),
        None,
    );
    assert_admitted(&out, "the maintainer deletes the share");
}

/// Binds `role` of `ns` to the operator's own service account too (the right to create shares
/// there, as a tenant has), and waits until the API server's authorizer says so.
fn operator_gets_the_role_of(ns: &str, role: &str) {
    run(
        kubectl(
            None,
            &[
                "create",
                "rolebinding",
                "operator-creates-shares",
                "-n",
                ns,
                &format!("--role={role}"),
                &format!("--serviceaccount={RELEASE_NAMESPACE}:ots-operator"),
            ],
        ),
        None,
    );
    wait_can_i(OPERATOR_USER, ns, "create", "onetimeshares.ots.dev", true);
}

#[tokio::test]
async fn the_operators_own_service_account_is_not_subject_to_the_policy() {
    let ns = test_namespace("adm-operator", &[], &["db"]).await;
    // Give the operator's account (which may get every Secret by name) and a look-alike account
    // with the same rights the right to create shares, and let both ask for more than maxTtl.
    let lookalike = tenant(&ns, "lookalike", &["db"]);
    operator_gets_the_role_of(&ns, "lookalike");
    let spec = json!({ "secretRef": { "name": "db", "key": "password" }, "ttl": "7d" });

    let out = create_share(Some(&lookalike), &ns, "by-lookalike", spec.clone());
    assert_refused(&out, "a ttl of 7d by another account", &["at most 24h"]);
    let out = create_share(Some(OPERATOR_USER), &ns, "by-operator", spec);
    assert_admitted(&out, "the operator's own account");
}

// ---------------------------------------------------------------------------------------------
// Server objects: who may lend an account, and which server a share may name

/// The chart's policy of OtsServer writes.
const SERVER_SECRETS_POLICY: &str = "ots-operator-server-secret-access";
/// The chart's policy of shares naming a ClusterOtsServer.
const CLUSTER_SERVER_POLICY: &str = "ots-operator-cluster-server-access";
/// The chart's policy of shares naming an OtsServer.
const SERVER_REF_POLICY: &str = "ots-operator-server-ref-access";

/// Applies the ClusterOtsServer `name` with `conditions` (a JSON list), as an administrator.
fn cluster_server(name: &str, conditions: Value) {
    run(
        kubectl(None, &["apply", "--server-side", "-f", "-"]),
        Some(
            &json!({
                "apiVersion": "ots.dev/v1alpha1",
                "kind": "ClusterOtsServer",
                "metadata": { "name": name },
                "spec": { "url": "https://eu.onetimesecret.com", "conditions": conditions },
            })
            .to_string(),
        ),
    );
}

/// An OtsServer `name` whose spec names the credentials Secret `credentials` (anonymous when
/// `None`) and, when given, the CA bundle Secret `ca`.
fn ots_server_json(name: &str, credentials: Option<&str>, ca: Option<&str>) -> Value {
    let mut spec = json!({ "url": "https://eu.onetimesecret.com" });
    if let Some(credentials) = credentials {
        spec["credentialsSecretRef"] = json!({ "name": credentials });
    }
    if let Some(ca) = ca {
        spec["caBundleSecretRef"] = json!({ "name": ca, "key": "ca.crt" });
    }
    json!({
        "apiVersion": "ots.dev/v1alpha1",
        "kind": "OtsServer",
        "metadata": { "name": name },
        "spec": spec,
    })
}

/// `kubectl create` of `object` in `namespace` as `user` (admin when `None`).
fn create_as(user: Option<&str>, namespace: &str, object: &Value) -> Output {
    output(
        kubectl(user, &["create", "-n", namespace, "-f", "-"]),
        Some(&object.to_string()),
    )
}

/// Lets the tenant `name` of `namespace` (see [`tenant`]) also create, read and update
/// OtsServers there.
fn may_manage_ots_servers(namespace: &str, name: &str) {
    let role = format!("{name}-servers");
    let rules = json!([{
        "apiGroups": ["ots.dev"],
        "resources": ["otsservers"],
        "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"],
    }]);
    apply_list(
        namespace,
        role_bound_to(&role, rules, namespace, name).to_vec(),
    );
    let user = format!("system:serviceaccount:{namespace}:{name}");
    wait_can_i(&user, namespace, "create", "otsservers.ots.dev", true);
}

/// A share of Secret `db` naming the server object `kind`/`name`.
fn share_via(kind: &str, name: &str) -> Value {
    json!({
        "secretRef": { "name": "db", "key": "password" },
        "ttl": "1h",
        "serverRef": { "kind": kind, "name": name },
    })
}

/// Polls a server-side dry run of the share `spec` as `user` until it is refused with `expected`:
/// the apiserver learns of a new server object (a policy parameter) a moment after it is written.
fn wait_until_refused_as(user: Option<&str>, namespace: &str, spec: &Value, expected: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let out = output(
            kubectl(
                user,
                &["create", "--dry-run=server", "-n", namespace, "-f", "-"],
            ),
            Some(&share_json("probe", spec.clone()).to_string()),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() && stderr.contains(expected) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{spec} in {namespace} was never refused with {expected:?}; last answer: {stderr}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Asserts that the share `name` naming ClusterOtsServer `server` is refused in `namespace`
/// with the readable message, and that nothing was created.
fn assert_cluster_server_refused(namespace: &str, name: &str, server: &str) {
    let out = create_share(None, namespace, name, share_via("ClusterOtsServer", server));
    assert_refused(
        &out,
        &format!("a share naming ClusterOtsServer {server} in {namespace}"),
        &[
            &format!("ValidatingAdmissionPolicy '{CLUSTER_SERVER_POLICY}'"),
            &format!(
                "spec.serverRef: ClusterOtsServer \"{server}\" does not allow namespace {namespace}"
            ),
            "ask the cluster's administrators",
        ],
    );
    assert!(
        !exists(namespace, name),
        "a refused share must not exist: {namespace}/{name}"
    );
}

#[tokio::test]
async fn an_ots_server_may_only_name_secrets_its_creator_may_get() {
    let ns = test_namespace(
        "adm-server-secrets",
        &[],
        &["readable", "ots-credentials", "ca"],
    )
    .await;
    let helpdesk = tenant(&ns, "helpdesk", &["readable"]);
    may_manage_ots_servers(&ns, "helpdesk");

    for (field, server, secret) in [
        (
            "spec.credentialsSecretRef",
            ots_server_json("borrowed-account", Some("ots-credentials"), None),
            "ots-credentials",
        ),
        (
            "spec.caBundleSecretRef",
            ots_server_json("borrowed-ca", Some("readable"), Some("ca")),
            "ca",
        ),
    ] {
        let out = create_as(Some(&helpdesk), &ns, &server);
        let message = assert_refused(
            &out,
            &format!("an OtsServer naming Secret {secret} in {field}"),
            &[
                &format!("ValidatingAdmissionPolicy '{SERVER_SECRETS_POLICY}'"),
                &format!(
                    "{field}: {helpdesk} may not get Secret \"{secret}\" in namespace {ns} (missing permission: get on secrets)"
                ),
            ],
        );
        assert!(
            !message.contains("fake-"),
            "the refusal shows a Secret value: {message}"
        );
    }
    let out = create_as(
        Some(&helpdesk),
        &ns,
        &ots_server_json("own-account", Some("readable"), Some("readable")),
    );
    assert_admitted(&out, "an OtsServer naming Secrets its creator may get");

    // Re-pointing it at a Secret the help desk cannot read is refused; labelling is not.
    let patch = |patch: &str| {
        output(
            kubectl(
                Some(&helpdesk),
                &[
                    "patch",
                    "otsserver",
                    "own-account",
                    "-n",
                    &ns,
                    "--type=merge",
                    "-p",
                    patch,
                ],
            ),
            None,
        )
    };
    let out = patch(r#"{"spec":{"credentialsSecretRef":{"name":"ots-credentials"}}}"#);
    assert_refused(
        &out,
        "re-pointing an OtsServer at Secret ots-credentials",
        &[&format!(
            "spec.credentialsSecretRef: {helpdesk} may not get Secret \"ots-credentials\""
        )],
    );
    assert_admitted(
        &patch(r#"{"metadata":{"labels":{"team":"a"}}}"#),
        "labelling an OtsServer",
    );

    // An OtsServer an administrator made with Secrets the help desk cannot read stays editable.
    let out = create_as(
        None,
        &ns,
        &ots_server_json("admins-server", Some("ots-credentials"), Some("ca")),
    );
    assert_admitted(&out, "the administrator's OtsServer");
    let out = output(
        kubectl(
            Some(&helpdesk),
            &["label", "otsserver", "admins-server", "-n", &ns, "team=a"],
        ),
        None,
    );
    assert_admitted(&out, "labelling the administrator's OtsServer");
}

#[tokio::test]
async fn a_share_naming_a_cluster_server_is_refused_in_a_namespace_its_conditions_exclude() {
    let named = test_namespace("adm-cs-named", &[], &["db"]).await;
    let matched = test_namespace("adm-cs-regex", &[], &["db"]).await;
    let suffixed = test_namespace("old-adm-cs-regex", &[], &["db"]).await;
    let tier = "ots-admission-test/tier";
    let restricted = "ots-admission-test/restricted";
    let team = "ots-admission-test/team";
    let prod = test_namespace("adm-cs-prod", &[(tier, "prod"), (team, "a")], &["db"]).await;
    let locked = test_namespace(
        "adm-cs-locked",
        &[(tier, "prod"), (team, "a"), (restricted, "yes")],
        &["db"],
    )
    .await;
    let other_team = test_namespace("adm-cs-team-c", &[(tier, "prod"), (team, "c")], &["db"]).await;
    let unlabelled = test_namespace("adm-cs-plain", &[], &["db"]).await;

    // Cluster-scoped, so named after this test's namespaces.
    let by_name = format!("{named}-by-name");
    let by_regex = format!("{named}-by-regex");
    let by_labels = format!("{named}-by-labels");
    cluster_server(&by_name, json!([{ "namespaces": ["elsewhere", named] }]));
    cluster_server(
        &by_regex,
        json!([{ "namespaceRegexes": ["adm-cs-regex-[0-9]+", "never"] }]),
    );
    cluster_server(
        &by_labels,
        json!([
            { "namespaces": ["elsewhere"] },
            { "namespaceSelector": {
                "matchLabels": { tier: "prod" },
                "matchExpressions": [
                    { "key": restricted, "operator": "DoesNotExist" },
                    { "key": team, "operator": "In", "values": ["a", "b"] },
                    { "key": "ots-admission-test/legacy", "operator": "NotIn", "values": ["true"] },
                    { "key": tier, "operator": "Exists" },
                ],
            } },
        ]),
    );
    // The apiserver knows all three once the last one refuses.
    wait_until_refused_as(
        None,
        &unlabelled,
        &share_via("ClusterOtsServer", &by_labels),
        "does not allow namespace",
    );

    for (namespace, server) in [
        (&matched, &by_name),
        (&unlabelled, &by_name),
        (&named, &by_regex),
        // Anchored at both ends, as the operator matches regexes.
        (&suffixed, &by_regex),
        (&locked, &by_labels),
        (&other_team, &by_labels),
        (&unlabelled, &by_labels),
    ] {
        assert_cluster_server_refused(namespace, "excluded", server);
    }
    for (namespace, server) in [
        (&named, &by_name),
        (&matched, &by_regex),
        (&prod, &by_labels),
    ] {
        let out = create_share(
            None,
            namespace,
            "allowed",
            share_via("ClusterOtsServer", server),
        );
        assert_admitted(
            &out,
            &format!("a share naming ClusterOtsServer {server} in {namespace}"),
        );
    }
    // Shares naming no server, or an OtsServer, are not this policy's business.
    admin_shares_db(&unlabelled, "no-server", "a share naming no server");
}

#[tokio::test]
async fn a_share_naming_an_ots_server_needs_get_on_its_credentials_secret() {
    let ns = test_namespace("adm-server-ref", &[], &["db", "ots-credentials"]).await;
    let helpdesk = tenant(&ns, "helpdesk", &["db"]);
    let owner = tenant(&ns, "owner", &["db", "ots-credentials"]);
    for server in [
        ots_server_json("team-server", Some("ots-credentials"), None),
        ots_server_json("anonymous", None, None),
    ] {
        assert_admitted(
            &create_as(None, &ns, &server),
            "the administrator's OtsServer",
        );
    }

    let expected = format!(
        "spec.serverRef: {helpdesk} may not get Secret \"ots-credentials\" in namespace {ns}, the credentials of OtsServer \"team-server\" (missing permission: get on secrets)"
    );
    let spec = share_via("OtsServer", "team-server");
    wait_until_refused_as(Some(&helpdesk), &ns, &spec, &expected);
    let out = create_share(Some(&helpdesk), &ns, "borrowed", spec.clone());
    let message = assert_refused(
        &out,
        "the help desk sharing through the team's account",
        &[
            &format!("ValidatingAdmissionPolicy '{SERVER_REF_POLICY}'"),
            &expected,
        ],
    );
    assert!(
        !message.contains("fake-"),
        "the refusal shows a Secret value: {message}"
    );
    assert!(!exists(&ns, "borrowed"));

    let out = create_share(Some(&owner), &ns, "own", spec);
    assert_admitted(&out, "the owner of the credentials sharing through them");
    let out = create_share(
        Some(&helpdesk),
        &ns,
        "anonymous",
        share_via("OtsServer", "anonymous"),
    );
    assert_admitted(&out, "the help desk sharing through an anonymous OtsServer");

    // A reissue makes a new link with the server's account: it needs the same right as a create.
    // Edits that make no link stay open to whoever may edit the share.
    let patch = |patch: &str| {
        output(
            kubectl(
                Some(&helpdesk),
                &[
                    "patch",
                    "onetimeshare",
                    "own",
                    "-n",
                    &ns,
                    "--type=merge",
                    "-p",
                    patch,
                ],
            ),
            None,
        )
    };
    let out = patch(r#"{"metadata":{"annotations":{"ots.dev/reshare":"2026-01-01T00:00:00Z"}}}"#);
    assert_refused(
        &out,
        "the help desk reissuing a share that uses the team's account",
        &[
            &format!("ValidatingAdmissionPolicy '{SERVER_REF_POLICY}'"),
            &expected,
        ],
    );
    assert_admitted(
        &patch(r#"{"metadata":{"labels":{"team":"a"}}}"#),
        "the help desk labelling a share that uses the team's account",
    );
}

#[tokio::test]
async fn the_operators_own_account_may_name_any_server() {
    let ns = test_namespace("adm-server-operator", &[], &["db"]).await;
    let server = format!("{ns}-nowhere");
    cluster_server(&server, json!([{ "namespaces": ["elsewhere"] }]));
    let lookalike = tenant(&ns, "lookalike", &["db"]);
    operator_gets_the_role_of(&ns, "lookalike");
    let spec = share_via("ClusterOtsServer", &server);
    wait_until_refused_as(Some(&lookalike), &ns, &spec, "does not allow namespace");

    let out = create_share(Some(OPERATOR_USER), &ns, "by-operator", spec);
    assert_admitted(&out, "the operator's own account naming an excluded server");
}

#[tokio::test]
async fn a_share_naming_a_server_that_does_not_exist_yet_is_admitted() {
    let ns = test_namespace("adm-server-later", &[], &["db", "ots-credentials"]).await;
    let helpdesk = tenant(&ns, "helpdesk", &["db"]);
    let cluster = format!("{ns}-later");
    // No parameter to check against yet: admitted (the operator keeps it Pending, reason
    // ServerNotFound, until the object exists).
    for (share, kind, name) in [
        ("early-cluster", "ClusterOtsServer", cluster.as_str()),
        ("early-namespaced", "OtsServer", "later"),
    ] {
        let out = create_share(Some(&helpdesk), &ns, share, share_via(kind, name));
        assert_admitted(&out, &format!("a share naming the missing {kind} {name}"));
    }

    // Once they exist, the same shares are refused; the early ones stay.
    cluster_server(&cluster, json!([{ "namespaces": ["elsewhere"] }]));
    assert_admitted(
        &create_as(
            None,
            &ns,
            &ots_server_json("later", Some("ots-credentials"), None),
        ),
        "the administrator's OtsServer",
    );
    wait_until_refused_as(
        Some(&helpdesk),
        &ns,
        &share_via("ClusterOtsServer", &cluster),
        "does not allow namespace",
    );
    wait_until_refused_as(
        Some(&helpdesk),
        &ns,
        &share_via("OtsServer", "later"),
        "may not get Secret \"ots-credentials\"",
    );
    assert!(exists(&ns, "early-cluster") && exists(&ns, "early-namespaced"));
}

// ---------------------------------------------------------------------------------------------
// Generate: who may have the operator write Secrets, and which Secrets it may write

/// The chart's policy guarding the operator's own Secret writes (named after the release).
const WRITES_POLICY: &str = "ots-operator-secret-writes";

/// Binds a Role granting `verbs` on every Secret of `namespace` to `user_or_sa`
/// (`("ServiceAccount", namespace, name)`), as an administrator might.
fn grant_secrets(namespace: &str, name: &str, verbs: &[&str], sa_namespace: &str, sa: &str) {
    let rules = json!([{ "apiGroups": [""], "resources": ["secrets"], "verbs": verbs }]);
    apply_list(
        namespace,
        role_bound_to(name, rules, sa_namespace, sa).to_vec(),
    );
}

fn secret_json(name: &str, marked: bool) -> Value {
    let labels = if marked {
        json!({ "ots.dev/managed-by": "ots-operator" })
    } else {
        json!({})
    };
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": { "name": name, "labels": labels },
        "stringData": { "value": "fake-test-value" },
    })
}

#[tokio::test]
async fn generating_a_secret_needs_the_right_to_create_secrets_besides_get() {
    let ns = test_namespace("adm-generate", &[], &["app"]).await;
    let sharer = tenant(&ns, "sharer", &["app"]);
    let spec = json!({
        "secretRef": { "name": "app", "key": "token" },
        "generate": {},
        "ttl": "1h",
    });
    let out = create_share(Some(&sharer), &ns, "minted", spec.clone());
    assert_refused(
        &out,
        "generate by a tenant who may get but not create Secrets",
        &[
            &format!("ValidatingAdmissionPolicy '{POLICY}'"),
            &format!("spec.generate: {sharer} may not create Secrets in namespace {ns}"),
            "missing permission: create on secrets",
        ],
    );
    assert!(!exists(&ns, "minted"));
    // Sharing what is there needs no more than get.
    let out = create_share(
        Some(&sharer),
        &ns,
        "plain",
        json!({ "secretRef": { "name": "app", "key": "password" }, "ttl": "1h" }),
    );
    assert_admitted(&out, "a share without generate");

    grant_secrets(&ns, "sharer-creates", &["create"], &ns, "sharer");
    wait_can_i(&sharer, &ns, "create", "secrets", true);
    let out = create_share(Some(&sharer), &ns, "minted", spec);
    assert_admitted(&out, "generate by a tenant who may create Secrets");
}

#[tokio::test]
async fn the_operators_account_may_write_only_secrets_labelled_as_its_own() {
    let ns = test_namespace("adm-writes", &[], &["foreign"]).await;
    // RBAC that allows every write: the policy alone must hold the operator back.
    grant_secrets(
        &ns,
        "operator-writes",
        &["get", "create", "update", "patch", "delete"],
        RELEASE_NAMESPACE,
        "ots-operator",
    );
    wait_can_i(OPERATOR_USER, &ns, "delete", "secrets", true);
    let as_operator = |args: &[&str], stdin: Option<&str>| {
        let mut full = vec!["-n", ns.as_str()];
        full.extend_from_slice(args);
        output(kubectl(Some(OPERATOR_USER), &full), stdin)
    };
    let not_its_own = "may only write Secrets labelled ots.dev/managed-by=ots-operator";

    // A new Secret without the label (waiting until the policy is in force).
    let deadline = Instant::now() + WAIT;
    loop {
        let out = as_operator(
            &["create", "-f", "-"],
            Some(&secret_json("unlabelled", false).to_string()),
        );
        if !out.status.success() {
            assert_refused(
                &out,
                "the operator creating an unlabelled Secret",
                &[
                    &format!("ValidatingAdmissionPolicy '{WRITES_POLICY}'"),
                    not_its_own,
                    "is not labelled as its own",
                ],
            );
            break;
        }
        // Admitted before the policy was in force: remove it and try again.
        run(
            kubectl(None, &["delete", "secret", "unlabelled", "-n", &ns]),
            None,
        );
        assert!(
            Instant::now() < deadline,
            "the writes policy never came into force"
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    let out = as_operator(
        &["create", "-f", "-"],
        Some(&secret_json("generated", true).to_string()),
    );
    assert_admitted(&out, "the operator creating a labelled Secret");
    let out = as_operator(
        &merge_patch_secret(
            "generated",
            r#"{"stringData":{"other":"fake-second-value"}}"#,
        ),
        None,
    );
    assert_admitted(&out, "the operator adding a key to its own Secret");

    // A foreign Secret: neither labelled into ownership, nor changed, nor deleted.
    for (what, args) in [
        (
            "labelling a foreign Secret as its own",
            merge_patch_secret(
                "foreign",
                r#"{"metadata":{"labels":{"ots.dev/managed-by":"ots-operator"}}}"#,
            ),
        ),
        (
            "adding a key to a foreign Secret",
            merge_patch_secret("foreign", r#"{"stringData":{"token":"fake"}}"#),
        ),
        (
            "deleting a foreign Secret",
            vec!["delete", "secret", "foreign"],
        ),
    ] {
        let out = as_operator(&args, None);
        assert_refused(&out, what, &[not_its_own, "\"foreign\""]);
    }
    let out = as_operator(
        &[
            "patch",
            "secret",
            "generated",
            "--type=json",
            "-p",
            r#"[{"op":"remove","path":"/metadata/labels/ots.dev~1managed-by"}]"#,
        ],
        None,
    );
    assert_refused(
        &out,
        "removing the label from its own Secret",
        &["would lose the label"],
    );
    let out = as_operator(&["delete", "secret", "generated"], None);
    assert_admitted(&out, "the operator deleting its own Secret");
    // Everyone else is not subject to this policy.
    let out = output(
        kubectl(None, &["delete", "secret", "foreign", "-n", &ns]),
        None,
    );
    assert_admitted(&out, "an administrator deleting an unlabelled Secret");
}

// ---------------------------------------------------------------------------------------------
// Policy knobs

#[tokio::test]
async fn a_ttl_longer_than_the_maximum_is_refused_and_one_within_it_is_admitted() {
    let ns = test_namespace("adm-ttl", &[], &["db"]).await;
    for (ttl, shown) in [
        (
            Some("25h"),
            "spec.ttl: 25h is longer than this cluster allows: at most 24h",
        ),
        (
            Some("86401s"),
            "spec.ttl: 86401s is longer than this cluster allows: at most 24h",
        ),
        (
            Some("2d"),
            "spec.ttl: 2d is longer than this cluster allows: at most 24h",
        ),
        (
            None,
            "spec.ttl: the default 7d is longer than this cluster allows: at most 24h",
        ),
    ] {
        let mut spec = json!({ "secretRef": { "name": "db", "key": "password" } });
        if let Some(ttl) = ttl {
            spec["ttl"] = json!(ttl);
        }
        let out = create_share(None, &ns, "too-long", spec);
        assert_refused(&out, &format!("ttl {ttl:?}"), &[shown]);
    }
    for (name, ttl) in [
        ("a-day", "24h"),
        ("a-day-in-minutes", "1440m"),
        ("a-day-in-seconds", "86400s"),
        ("one-day", "1d"),
        ("an-hour", "1h"),
    ] {
        let out = create_share(
            None,
            &ns,
            name,
            json!({ "secretRef": { "name": "db", "key": "password" }, "ttl": ttl }),
        );
        assert_admitted(&out, &format!("ttl {ttl}"));
    }
}

#[tokio::test]
async fn recipients_are_refused_unless_their_domain_is_allowed() {
    let ns = test_namespace("adm-recipient", &[], &["db"]).await;
    let share = |recipient: &str| {
        json!({
            "secretRef": { "name": "db", "key": "password" },
            "ttl": "1h",
            "recipient": recipient,
        })
    };
    for (name, recipient) in [
        ("exact-domain", "alice@example.com"),
        ("upper-case", "Alice@EXAMPLE.com"),
        ("wildcard-subdomain", "bob@mail.example.org"),
    ] {
        let out = create_share(None, &ns, name, share(recipient));
        assert_admitted(&out, &format!("recipient {recipient}"));
    }
    for recipient in [
        "eve@evil.com",
        "eve@example.org",
        "eve@example.com.evil.com",
        "eve@notexample.com",
        "eve@evilexample.org",
    ] {
        let out = create_share(None, &ns, "refused", share(recipient));
        assert_refused(
            &out,
            &format!("recipient {recipient}"),
            &[&format!(
                "spec.recipient: {recipient} is not allowed: this cluster only sends links to example.com, *.example.org"
            )],
        );
    }
}

#[tokio::test]
async fn recipients_are_off_with_the_charts_default_values() {
    let ns = test_namespace("adm-no-recipients", &[(VARIANT_LABEL, "defaults")], &["db"]).await;
    let out = create_share(
        None,
        &ns,
        "emailed",
        json!({
            "secretRef": { "name": "db", "key": "password" },
            "ttl": "1h",
            "recipient": "alice@example.com",
        }),
    );
    assert_refused(
        &out,
        "a recipient under the default values",
        &[
            &format!("ValidatingAdmissionPolicy '{POLICY}-defaults'"),
            "spec.recipient: alice@example.com is not allowed: this cluster sends no links by email",
        ],
    );
    admin_shares_db(
        &ns,
        "handed-over",
        "a share without recipient under the default values",
    );
}

#[tokio::test]
async fn the_recipient_example_is_admitted_when_its_domain_is_allowed() {
    let ns = test_namespace("adm-example", &[], &[]).await;
    run(
        kubectl(
            None,
            &[
                "apply",
                "-n",
                &ns,
                "-f",
                "examples/secrets.yaml",
                "-f",
                "examples/recipient-and-server.yaml",
            ],
        ),
        None,
    );
    assert!(exists(&ns, "db-password-emailed-to-alice"));
}

#[tokio::test]
async fn a_passphrase_is_required_in_namespaces_carrying_the_label() {
    let labelled = test_namespace("adm-pass-label", &[(PASSPHRASE_LABEL, "true")], &["db"]).await;
    let unlabelled = test_namespace("adm-pass-none", &[], &["db"]).await;
    let not_true = test_namespace("adm-pass-false", &[(PASSPHRASE_LABEL, "false")], &["db"]).await;
    let plain = json!({ "secretRef": { "name": "db", "key": "password" }, "ttl": "1h" });
    let protected = json!({
        "secretRef": { "name": "db", "key": "password" },
        "passphraseSecretRef": { "name": "db", "key": "username" },
        "ttl": "1h",
    });

    let out = create_share(None, &labelled, "plain", plain.clone());
    assert_refused(
        &out,
        "a share without passphrase in a labelled namespace",
        &[
            "spec.passphraseSecretRef is required: namespaces labelled ots.dev/require-passphrase=true only allow passphrase-protected shares",
        ],
    );
    assert_admitted(
        &create_share(None, &labelled, "protected", protected),
        "a passphrase-protected share in a labelled namespace",
    );
    assert_admitted(
        &create_share(None, &unlabelled, "plain", plain.clone()),
        "a share without passphrase in an unlabelled namespace",
    );
    assert_admitted(
        &create_share(None, &not_true, "plain", plain),
        "a share without passphrase where the label is not \"true\"",
    );
}

#[tokio::test]
async fn a_passphrase_is_required_everywhere_when_the_values_say_so() {
    let ns = test_namespace(
        "adm-pass-global",
        &[(VARIANT_LABEL, "passphrase-required")],
        &["db"],
    )
    .await;
    let out = create_share(
        None,
        &ns,
        "plain",
        json!({ "secretRef": { "name": "db", "key": "password" }, "ttl": "1h" }),
    );
    assert_refused(
        &out,
        "a share without passphrase under passphrase.required",
        &[
            "spec.passphraseSecretRef is required: this cluster only allows passphrase-protected shares",
        ],
    );
    let out = create_share(
        None,
        &ns,
        "protected",
        json!({
            "secretRef": { "name": "db", "key": "password" },
            "passphraseSecretRef": { "name": "db", "key": "username" },
            "ttl": "1h",
        }),
    );
    assert_admitted(
        &out,
        "a passphrase-protected share under passphrase.required",
    );
}

// ---------------------------------------------------------------------------------------------
// Names the spec carries (CRD schema)

#[tokio::test]
async fn malformed_secret_names_and_keys_are_refused_at_apply_with_a_readable_message() {
    let ns = test_namespace("adm-names", &[], &[]).await;
    let apply_share = |spec: Value| {
        output(
            kubectl(None, &["apply", "-n", &ns, "-f", "-"]),
            Some(&share_json("bad-name", spec).to_string()),
        )
    };
    type Spec = fn(&str) -> Value;
    let bad_names = [
        "../../team-a/secrets/x",
        "creds?watch=true",
        "creds#frag",
        "my creds",
        "a..b",
        "Creds",
        "-creds",
        "creds.",
    ];
    let name_fields: [(&str, Spec); 3] = [
        (
            "spec.secretRef.name",
            |bad| json!({ "secretRef": { "name": bad }, "ttl": "1h" }),
        ),
        ("spec.passphraseSecretRef.name", |bad| {
            json!({
                "secretRef": { "name": "db" },
                "passphraseSecretRef": { "name": bad, "key": "k" },
                "ttl": "1h",
            })
        }),
        ("spec.server.credentialsSecretRef.name", |bad| {
            json!({
                "secretRef": { "name": "db" },
                "server": { "credentialsSecretRef": { "name": bad } },
                "ttl": "1h",
            })
        }),
    ];
    let bad_keys = ["pass word", "../x", "key?x", "k#y"];
    let key_fields: [(&str, Spec); 2] = [
        (
            "spec.secretRef.key",
            |bad| json!({ "secretRef": { "name": "db", "key": bad }, "ttl": "1h" }),
        ),
        ("spec.passphraseSecretRef.key", |bad| {
            json!({
                "secretRef": { "name": "db" },
                "passphraseSecretRef": { "name": "db", "key": bad },
                "ttl": "1h",
            })
        }),
    ];
    for (bads, fields, rule) in [
        (
            &bad_names[..],
            &name_fields[..],
            "name must be a valid Secret name",
        ),
        (
            &bad_keys[..],
            &key_fields[..],
            "key must be a valid Secret key",
        ),
    ] {
        for bad in bads {
            for (field, spec) in fields {
                let out = apply_share(spec(bad));
                assert_refused(
                    &out,
                    &format!("{field} {bad:?}"),
                    &[&format!("{field}: Invalid value: \"{bad}\""), rule],
                );
            }
        }
    }
    let too_long = "a".repeat(254);
    let out = apply_share(json!({ "secretRef": { "name": too_long }, "ttl": "1h" }));
    assert_refused(
        &out,
        "a 254-character Secret name",
        &["spec.secretRef.name", "253"],
    );
    assert!(!exists(&ns, "bad-name"));

    // Valid unusual names still pass the schema.
    let out = apply_share(json!({
        "secretRef": { "name": "db.credentials-1", "key": ".dot_key-1" },
        "passphraseSecretRef": { "name": "0.pass", "key": "K_1" },
        "server": { "credentialsSecretRef": { "name": "a" } },
        "ttl": "1h",
    }));
    assert_admitted(&out, "valid Secret names with dots and digits");
}

// ---------------------------------------------------------------------------------------------
// The chart's values (render only)

#[test]
fn policy_values_the_chart_cannot_enforce_are_refused_at_render() {
    for bad in [
        "admissionPolicy.maxTtl=1w",
        "admissionPolicy.maxTtl=24 h",
        "admissionPolicy.maxTtl=30s",
        "admissionPolicy.recipientDomains={@example.com}",
        "admissionPolicy.recipientDomains={Example.com}",
        "admissionPolicy.maxLiveSharesPerSecret=0",
        "admissionPolicy.maxLiveSharesPerSecret=-1",
        "admissionPolicy.passphrase.namespaceLabel=has space",
    ] {
        let out = output(helm_template(&["--set", bad]), None);
        assert!(
            !out.status.success(),
            "helm template --set {bad} should be refused"
        );
    }
}

#[test]
fn disabling_the_policy_renders_neither_policy_nor_binding_nor_the_guard_flag() {
    let objects = render(&["--set", "admissionPolicy.enabled=false"]);
    assert!(
        objects.iter().all(|object| !object["kind"]
            .as_str()
            .unwrap_or_default()
            .starts_with("ValidatingAdmissionPolicy")),
        "admissionPolicy.enabled=false still renders a policy"
    );
    let deployment = objects
        .iter()
        .find(|object| object["kind"] == "Deployment")
        .expect("a Deployment");
    let args = deployment["spec"]["template"]["spec"]["containers"][0]["args"].to_string();
    assert!(!args.contains("--admission-guard"), "{args}");

    let objects = render(&[]);
    let policy = objects
        .iter()
        .find(|object| object["kind"] == "ValidatingAdmissionPolicy")
        .expect("the default render has the policy");
    assert_eq!(policy["metadata"]["name"], POLICY);
    assert_eq!(policy["spec"]["failurePolicy"], "Fail");
    let binding = objects
        .iter()
        .find(|object| object["kind"] == "ValidatingAdmissionPolicyBinding")
        .expect("the default render has the binding");
    assert_eq!(binding["spec"]["policyName"], POLICY);
    assert_eq!(binding["spec"]["validationActions"], json!(["Deny"]));
}

#[test]
fn the_chart_refuses_to_install_the_guard_on_kubernetes_before_1_30() {
    let out = output(helm_template(&["--kube-version", "1.29.4"]), None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("Kubernetes 1.30 or later"),
        "rendering the guard for Kubernetes 1.29 should fail with a clear message: {stderr}"
    );
    // Turning the guard off is the documented way to install on such a cluster.
    run(
        helm_template(&[
            "--kube-version",
            "1.29.4",
            "--set",
            "admissionPolicy.enabled=false",
        ]),
        None,
    );
}

#[test]
fn the_server_policies_check_every_server_object_and_reissues_like_the_share_policy() {
    let objects = render(&[]);
    let find = |kind: &str, name: &str| {
        objects
            .iter()
            .find(|object| object["kind"] == kind && object["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("the default render has no {kind} {name}"))
            .clone()
    };
    let makes_links = |policy: &Value| {
        policy["spec"]["variables"]
            .as_array()
            .expect("variables")
            .iter()
            .find(|variable| variable["name"] == "makesLinks")
            .map(|variable| variable["expression"].clone())
            .expect("a makesLinks variable")
    };
    let share_policy = find("ValidatingAdmissionPolicy", POLICY);
    for (name, param) in [
        (CLUSTER_SERVER_POLICY, "ClusterOtsServer"),
        (SERVER_REF_POLICY, "OtsServer"),
    ] {
        let policy = find("ValidatingAdmissionPolicy", name);
        // Before the apiserver lists server objects (after install, after each apiserver start),
        // Fail would refuse every share write; the operator backs the ClusterOtsServer check.
        assert_eq!(policy["spec"]["failurePolicy"], "Ignore");
        assert_eq!(policy["spec"]["paramKind"]["kind"], param);
        // A reissue needs the same rights as a create, in every policy of shares.
        assert_eq!(makes_links(&policy), makes_links(&share_policy), "{name}");
        let binding = find("ValidatingAdmissionPolicyBinding", name);
        assert_eq!(binding["spec"]["policyName"], name);
        assert_eq!(binding["spec"]["validationActions"], json!(["Deny"]));
        // Every server object is a parameter; none at all admits (the ordering limit).
        assert_eq!(
            binding["spec"]["paramRef"],
            json!({ "selector": {}, "parameterNotFoundAction": "Allow" })
        );
    }
    let policy = find("ValidatingAdmissionPolicy", SERVER_SECRETS_POLICY);
    assert_eq!(policy["spec"]["failurePolicy"], "Fail");
    assert_eq!(
        policy["spec"]["matchConstraints"]["resourceRules"][0]["resources"],
        json!(["otsservers"])
    );
    for name in [
        SERVER_SECRETS_POLICY,
        CLUSTER_SERVER_POLICY,
        SERVER_REF_POLICY,
    ] {
        let policy = find("ValidatingAdmissionPolicy", name);
        assert!(
            policy["spec"]["matchConditions"]
                .to_string()
                .contains(&format!("request.userInfo.username != '{OPERATOR_USER}'")),
            "{name} exempts the operator's own account"
        );
    }
}

const NOTIFICATION_SECRETS_POLICY: &str = "ots-operator-notification-secret-access";

/// An OtsNotification `name` whose endpoint is the Secret `endpoint`.
fn ots_notification_json(name: &str, endpoint: &str) -> Value {
    json!({
        "apiVersion": "ots.dev/v1alpha1",
        "kind": "OtsNotification",
        "metadata": { "name": name },
        "spec": { "endpointSecretRef": { "name": endpoint } },
    })
}

#[tokio::test]
async fn an_ots_notification_may_only_name_an_endpoint_secret_its_creator_may_get() {
    let ns = test_namespace("adm-notification-secrets", &[], &["readable", "team-hook"]).await;
    run(
        kubectl(
            None,
            &[
                "wait",
                "--for=condition=Established",
                "crd/otsnotifications.ots.dev",
                "--timeout=120s",
            ],
        ),
        None,
    );
    let helpdesk = tenant(&ns, "helpdesk", &["readable"]);
    let rules = json!([{
        "apiGroups": ["ots.dev"],
        "resources": ["otsnotifications"],
        "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"],
    }]);
    apply_list(
        &ns,
        role_bound_to("helpdesk-notifications", rules, &ns, "helpdesk").to_vec(),
    );
    wait_can_i(&helpdesk, &ns, "create", "otsnotifications.ots.dev", true);

    // Another team's endpoint (its URL and signing key) is refused, saying why.
    let out = create_as(
        Some(&helpdesk),
        &ns,
        &ots_notification_json("borrowed", "team-hook"),
    );
    let message = assert_refused(
        &out,
        "an OtsNotification naming Secret team-hook",
        &[
            &format!("ValidatingAdmissionPolicy '{NOTIFICATION_SECRETS_POLICY}'"),
            &format!(
                "spec.endpointSecretRef: {helpdesk} may not get Secret \"team-hook\" in namespace {ns} (missing permission: get on secrets)"
            ),
        ],
    );
    assert!(
        !message.contains("fake-"),
        "the refusal shows a Secret value: {message}"
    );
    let out = create_as(
        Some(&helpdesk),
        &ns,
        &ots_notification_json("own", "readable"),
    );
    assert_admitted(
        &out,
        "an OtsNotification naming a Secret its creator may get",
    );

    // Re-pointing it at the other team's Secret is refused; other edits are not.
    let patch = |name: &str, patch: &str| {
        output(
            kubectl(
                Some(&helpdesk),
                &[
                    "patch",
                    "otsnotification",
                    name,
                    "-n",
                    &ns,
                    "--type=merge",
                    "-p",
                    patch,
                ],
            ),
            None,
        )
    };
    assert_refused(
        &patch(
            "own",
            r#"{"spec":{"endpointSecretRef":{"name":"team-hook"}}}"#,
        ),
        "re-pointing an OtsNotification at Secret team-hook",
        &[&format!(
            "spec.endpointSecretRef: {helpdesk} may not get Secret \"team-hook\""
        )],
    );
    assert_admitted(
        &patch("own", r#"{"spec":{"suspend":true}}"#),
        "suspending an OtsNotification",
    );

    // One an administrator made with that Secret stays editable by the help desk.
    let out = create_as(None, &ns, &ots_notification_json("admins", "team-hook"));
    assert_admitted(&out, "the administrator's OtsNotification");
    assert_admitted(
        &patch("admins", r#"{"spec":{"events":["Received"]}}"#),
        "changing the events of the administrator's OtsNotification",
    );
}
