//! The chart as a cluster runs it: installed once per test binary with `helm install` (its
//! RBAC, its admission policies), the operator started with a token of the chart's
//! ServiceAccount, and tenants as ServiceAccounts with only the rights a test gives them.

use super::cluster::{client, impersonating_client, repo_root, tool_command};
use super::operator::{Operator, fast_args};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::PostParams;
use kube::{Api, Client};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The release's namespace and name: the operator's ServiceAccount is
/// `system:serviceaccount:ots-operator:ots-operator`.
pub const RELEASE: &str = "ots-operator";

/// Generous bound for waits on a loaded 2-core machine; never a timing assertion.
const WAIT: Duration = Duration::from_secs(120);

/// Installs the chart once for this test binary (`helm install ots-operator … --set` each of
/// `values`, plus `ots.acceptPublicService=true`: the operator under test is started outside the
/// chart with the test server's URL). Later calls in the same binary return at once; the values
/// of the first call win.
pub fn install(values: &[&str]) {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let mut command = tool_command("helm");
        command
            .args(["install", RELEASE])
            .arg(repo_root().join("deploy/helm/ots-operator"))
            .args(["--namespace", RELEASE, "--create-namespace"])
            .args(["--set", "ots.acceptPublicService=true"]);
        for value in values {
            command.args(["--set", value]);
        }
        let out = command.output().expect("run helm");
        assert!(
            out.status.success(),
            "helm install failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

/// A kubeconfig that authenticates with a fresh token of the chart's ServiceAccount, as the
/// operator's pod would.
pub async fn service_account_kubeconfig(admin: &Client) -> PathBuf {
    super::cluster::service_account_kubeconfig(admin, RELEASE, RELEASE).await
}

/// Starts the operator as the chart runs it: with the chart's ServiceAccount token, records in
/// the release namespace, creators checked by the chart's admission policy; watching
/// `namespaces`, sharing to `ots_url`, with [`fast_args`]' polling and `extra` flags.
pub async fn start_operator(namespaces: &[&str], ots_url: &str, extra: &[&str]) -> Operator {
    let admin = client().await;
    let kubeconfig = service_account_kubeconfig(&admin).await;
    let mut args = fast_args(namespaces[0], ots_url);
    let state = args
        .iter()
        .position(|a| a == "--state-namespace")
        .expect("fast_args names a state namespace");
    args[state + 1] = RELEASE.into();
    for namespace in &namespaces[1..] {
        args.extend(["--namespace".to_owned(), (*namespace).to_owned()]);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let kubeconfig = kubeconfig.to_string_lossy().to_string();
    Operator::start_with(
        &args,
        &[
            ("KUBECONFIG", kubeconfig.as_str()),
            ("RUST_LOG", "info,ots_operator=debug"),
        ],
    )
}

/// A tenant: ServiceAccount `name` in `namespace` with exactly `rules` there (a Role and its
/// binding), and a client that acts as it. Returns once the authorizer grants the first rule.
pub async fn tenant(admin: &Client, namespace: &str, name: &str, rules: Vec<PolicyRule>) -> Client {
    super::cluster::create_service_account(admin, namespace, name).await;
    let meta = || ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some(namespace.to_owned()),
        ..Default::default()
    };
    let first = rules.first().cloned();
    Api::<Role>::namespaced(admin.clone(), namespace)
        .create(
            &PostParams::default(),
            &Role {
                metadata: meta(),
                rules: Some(rules),
            },
        )
        .await
        .expect("create the tenant's Role");
    Api::<RoleBinding>::namespaced(admin.clone(), namespace)
        .create(
            &PostParams::default(),
            &RoleBinding {
                metadata: meta(),
                role_ref: RoleRef {
                    api_group: Some("rbac.authorization.k8s.io".into()),
                    kind: "Role".into(),
                    name: name.to_owned(),
                },
                subjects: Some(vec![Subject {
                    kind: "ServiceAccount".into(),
                    name: name.to_owned(),
                    namespace: Some(namespace.to_owned()),
                    ..Default::default()
                }]),
            },
        )
        .await
        .expect("bind the tenant's Role");
    if let Some(rule) = first {
        let user = format!("system:serviceaccount:{namespace}:{name}");
        let resource = rule.resources.unwrap_or_default()[0].clone();
        let verb = rule.verbs[0].clone();
        let group = rule.api_groups.unwrap_or_default()[0].clone();
        wait_allowed(admin, &user, namespace, &group, &resource, &verb).await;
    }
    impersonating_client(namespace, name).await
}

/// A rule of `verbs` on `resources` of API group `group`, optionally only for `names`.
pub fn rule(group: &str, resources: &[&str], verbs: &[&str], names: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec![group.to_owned()]),
        resources: Some(resources.iter().map(|s| s.to_string()).collect()),
        verbs: verbs.iter().map(|s| s.to_string()).collect(),
        resource_names: (!names.is_empty()).then(|| names.iter().map(|s| s.to_string()).collect()),
        ..Default::default()
    }
}

/// Waits until the authorizer lets `user` `verb` `resource` in `namespace` (RBAC reaches the
/// authorizer a moment after it is written).
async fn wait_allowed(
    admin: &Client,
    user: &str,
    namespace: &str,
    group: &str,
    resource: &str,
    verb: &str,
) {
    let reviews: Api<SubjectAccessReview> = Api::all(admin.clone());
    let deadline = Instant::now() + WAIT;
    loop {
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(user.to_owned()),
                groups: Some(vec![
                    "system:serviceaccounts".into(),
                    "system:authenticated".into(),
                ]),
                resource_attributes: Some(ResourceAttributes {
                    namespace: Some(namespace.to_owned()),
                    group: Some(group.to_owned()),
                    resource: Some(resource.to_owned()),
                    verb: Some(verb.to_owned()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let answer = reviews
            .create(&PostParams::default(), &review)
            .await
            .expect("review access");
        if answer.status.is_some_and(|s| s.allowed) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{user} never got {verb} {resource}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until the chart's admission policy answers: a server-side dry run of a share naming a
/// Secret nobody may read, as `tenant`, is refused by it.
pub async fn wait_policy_active(tenant: &Client, namespace: &str) {
    let shares: Api<ots_operator::resource::OneTimeShare> =
        Api::namespaced(tenant.clone(), namespace);
    let probe: ots_operator::resource::OneTimeShare = serde_json::from_value(serde_json::json!({
        "apiVersion": "ots.dev/v1alpha1",
        "kind": "OneTimeShare",
        "metadata": {"name": "policy-probe"},
        "spec": {"secretRef": {"name": "no-one-may-read-this"}},
    }))
    .expect("a valid OneTimeShare");
    let deadline = Instant::now() + WAIT;
    loop {
        let params = PostParams {
            dry_run: true,
            ..Default::default()
        };
        match shares.create(&params, &probe).await {
            Err(kube::Error::Api(status))
                if status.message.contains("ots-operator-secret-access") =>
            {
                return;
            }
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "the admission policy never answered"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
