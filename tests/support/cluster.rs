//! A real Kubernetes control plane (etcd + kube-apiserver with RBAC) for integration tests.
//!
//! The first call in a test binary runs `testing/controlplane/up` once; the control plane lives as
//! long as the test binary and is stopped by `up`'s watchdog when the binary exits. Every test gets
//! its own namespace from [`test_namespace`].
//!
//! By default there is no controller-manager: nothing garbage-collects owned objects, finishes
//! namespace deletion or makes ServiceAccount token Secrets. A test binary whose tests need those
//! calls [`with_controller_manager`] at the start of *every* test: its control plane then also runs
//! kube-controller-manager (a few seconds more start-up, see testing/controlplane/README.md). The
//! choice is per test binary, because the control plane is.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};
use kube::config::{AuthInfo, KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

/// Label put on every namespace made by [`test_namespace`].
pub const TEST_NAMESPACE_LABEL: &str = "ots-operator.test/namespace";

/// The running control plane of this test binary.
#[derive(Debug)]
pub struct ControlPlane {
    /// State directory given to `up` (certificates, logs, `env`, `kubeconfig`).
    pub dir: PathBuf,
    /// Admin kubeconfig (client certificate in group `system:masters`).
    pub kubeconfig: PathBuf,
    /// `https://127.0.0.1:PORT`.
    pub apiserver_url: String,
    /// Directory holding `kube-apiserver`, `etcd`, `kubectl` and `helm`.
    pub bin_dir: PathBuf,
    /// Apiserver audit log (Metadata level), when started with `OTS_CP_AUDIT_LOG=1`.
    pub audit_log: Option<PathBuf>,
    /// Whether kube-controller-manager runs too (see [`with_controller_manager`]).
    pub controller_manager: bool,
}

static CONTROL_PLANE: OnceLock<Result<ControlPlane, String>> = OnceLock::new();
static WANT_CONTROLLER_MANAGER: AtomicBool = AtomicBool::new(false);

/// The control plane of this test binary, with kube-controller-manager running: namespace deletion
/// finishes, owned objects are garbage-collected, ServiceAccount token Secrets get their token and
/// aggregated ClusterRoles their rules, all for real. Call it first in every test of a binary that
/// needs any of that; panics if the binary's control plane was already started without it.
pub fn with_controller_manager() -> &'static ControlPlane {
    WANT_CONTROLLER_MANAGER.store(true, Ordering::SeqCst);
    let control_plane = control_plane();
    assert!(
        control_plane.controller_manager,
        "this test binary's control plane was started without kube-controller-manager: call \
         cluster::with_controller_manager() first in every test of this binary"
    );
    control_plane
}

/// Root of the repository (the operator crate's manifest directory).
pub fn repo_root() -> &'static Path {
    static ROOT: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    // At run time first (cargo test sets it): cargo reuses a test binary built in another
    // checkout of the same content (a shared target dir), whose compile-time path may be gone.
    ROOT.get_or_init(|| {
        std::path::PathBuf::from(
            std::env::var_os("CARGO_MANIFEST_DIR")
                .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
        )
    })
}

/// The control plane of this test binary, started on first use (blocking; the first start of a
/// machine also builds the binaries). Panics with `up`'s output if it cannot start.
pub fn control_plane() -> &'static ControlPlane {
    match CONTROL_PLANE.get_or_init(start_control_plane) {
        Ok(control_plane) => control_plane,
        Err(message) => panic!("{message}"),
    }
}

/// Path of the admin kubeconfig of this test binary's control plane.
pub fn kubeconfig_path() -> &'static Path {
    &control_plane().kubeconfig
}

/// URL of this test binary's kube-apiserver.
pub fn apiserver_url() -> &'static str {
    &control_plane().apiserver_url
}

/// Path of one of the built tools: `kube-apiserver`, `etcd`, `kubectl` or `helm`.
pub fn tool_path(name: &str) -> PathBuf {
    control_plane().bin_dir.join(name)
}

/// A command for a built tool (`kubectl`, `helm`) with `KUBECONFIG` pointing at the admin kubeconfig.
pub fn tool_command(name: &str) -> Command {
    let mut command = Command::new(tool_path(name));
    command.env("KUBECONFIG", kubeconfig_path());
    command
}

fn start_control_plane() -> Result<ControlPlane, String> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.subsec_nanos())
        .unwrap_or_default();
    let dir = std::env::temp_dir().join(format!("ots-operator-cp-{}-{nanos}", std::process::id()));
    let up = repo_root().join("testing/controlplane/up");
    let controller_manager = WANT_CONTROLLER_MANAGER.load(Ordering::SeqCst);
    let mut command = Command::new(&up);
    command
        .arg(&dir)
        .arg("--watch-pid")
        .arg(std::process::id().to_string());
    if controller_manager {
        command.arg("--with-controller-manager");
    }
    let output = command
        .output()
        .map_err(|error| format!("cannot run {}: {error}", up.display()))?;
    if !output.status.success() {
        return Err(format!(
            "{} {} failed ({}):\n{}",
            up.display(),
            dir.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let env_text = std::fs::read_to_string(dir.join("env"))
        .map_err(|error| format!("cannot read {}/env: {error}", dir.display()))?;
    let env: BTreeMap<&str, &str> = env_text
        .lines()
        .filter_map(|line| line.split_once('='))
        .collect();
    let value = |key: &str| {
        env.get(key)
            .map(|value| value.to_string())
            .ok_or_else(|| format!("{}/env has no {key}", dir.display()))
    };
    Ok(ControlPlane {
        kubeconfig: PathBuf::from(value("KUBECONFIG")?),
        apiserver_url: value("APISERVER_URL")?,
        bin_dir: PathBuf::from(value("CP_BIN_DIR")?),
        audit_log: value("AUDIT_LOG")
            .ok()
            .filter(|path| !path.is_empty())
            .map(PathBuf::from),
        controller_manager: value("CONTROLLER_MANAGER_PID").is_ok_and(|pid| !pid.is_empty()),
        dir,
    })
}

/// Client configuration of the cluster admin.
pub async fn admin_config() -> Config {
    let kubeconfig = Kubeconfig::read_from(kubeconfig_path()).expect("read the admin kubeconfig");
    Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("load the admin kubeconfig")
}

/// A new admin client on the current runtime (each `#[tokio::test]` has its own runtime, so
/// clients are never shared between tests).
pub async fn client() -> Client {
    Client::try_from(admin_config().await).expect("build the admin client")
}

/// A client that acts as ServiceAccount `namespace/name` through impersonation by the admin: the
/// apiserver authorizes each request exactly as for that ServiceAccount.
pub async fn impersonating_client(namespace: &str, name: &str) -> Client {
    let mut config = admin_config().await;
    config.auth_info.impersonate = Some(format!("system:serviceaccount:{namespace}:{name}"));
    config.auth_info.impersonate_groups = Some(vec![
        "system:serviceaccounts".to_owned(),
        format!("system:serviceaccounts:{namespace}"),
        "system:authenticated".to_owned(),
    ]);
    Client::try_from(config).expect("build the impersonating client")
}

/// Creates ServiceAccount `namespace/name`.
pub async fn create_service_account(admin: &Client, namespace: &str, name: &str) -> ServiceAccount {
    let service_accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), namespace);
    let service_account = ServiceAccount {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        ..ServiceAccount::default()
    };
    service_accounts
        .create(&PostParams::default(), &service_account)
        .await
        .expect("create the service account")
}

/// A client that authenticates with a fresh TokenRequest token of an existing ServiceAccount,
/// as a pod running under that ServiceAccount would.
pub async fn service_account_token_client(admin: &Client, namespace: &str, name: &str) -> Client {
    let service_accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), namespace);
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(3600),
            ..TokenRequestSpec::default()
        }),
        ..TokenRequest::default()
    };
    let token = service_accounts
        .create_token_request(name, &PostParams::default(), &request)
        .await
        .expect("request a service account token")
        .status
        .expect("the token request has a status")
        .token
        .expect("the token request returned a token");
    let mut config = admin_config().await;
    config.auth_info = AuthInfo {
        token: Some(token.into()),
        ..AuthInfo::default()
    };
    Client::try_from(config).expect("build the service account client")
}

/// A kubeconfig file that authenticates with a fresh TokenRequest token of ServiceAccount
/// `namespace/name` (the admin kubeconfig's cluster, that token as the user), for a process that
/// must run as that account, as a pod would.
pub async fn service_account_kubeconfig(admin: &Client, namespace: &str, name: &str) -> PathBuf {
    let service_accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), namespace);
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(3600),
            ..TokenRequestSpec::default()
        }),
        ..TokenRequest::default()
    };
    let token = service_accounts
        .create_token_request(name, &PostParams::default(), &request)
        .await
        .expect("request a service account token")
        .status
        .expect("the token request has a status")
        .token
        .expect("the token request returned a token");
    let text = std::fs::read_to_string(kubeconfig_path()).expect("read the admin kubeconfig");
    let mut config: serde_yaml::Value = serde_yaml::from_str(&text).expect("kubeconfig YAML");
    for user in config["users"].as_sequence_mut().expect("kubeconfig users") {
        user["user"] =
            serde_yaml::to_value(serde_json::json!({ "token": token })).expect("a YAML value");
    }
    let path = std::env::temp_dir().join(format!(
        "ots-sa-{}-{namespace}-{name}.kubeconfig",
        std::process::id()
    ));
    std::fs::write(&path, serde_yaml::to_string(&config).expect("YAML"))
        .expect("write the kubeconfig");
    path
}

/// Creates a namespace named after `prefix` and unique within this control plane, and returns its
/// name. Tests run in their own namespaces so they never see each other's objects.
pub async fn test_namespace(client: &Client, prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let mut stem: String = prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    stem.truncate(50);
    let stem = stem.trim_matches('-');
    let stem = if stem.is_empty() { "test" } else { stem };
    let name = format!("{stem}-{}", COUNTER.fetch_add(1, Ordering::Relaxed));
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            labels: Some(BTreeMap::from([(
                TEST_NAMESPACE_LABEL.to_owned(),
                "true".to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .expect("create the test namespace");
    name
}

/// The dynamic API that serves a manifest object (as Helm renders it), found by discovery: namespaced
/// in the object's namespace (or `default_namespace`), or cluster-wide. Panics when the apiserver
/// does not serve the object's kind.
pub async fn api_for_object(
    client: &Client,
    object: &serde_json::Value,
    default_namespace: &str,
) -> Api<kube::core::DynamicObject> {
    use kube::core::GroupVersionKind;
    use kube::discovery;
    let api_version = object["apiVersion"]
        .as_str()
        .expect("every object has an apiVersion");
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let kind = object["kind"].as_str().expect("every object has a kind");
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let (resource, capabilities) = discovery::pinned_kind(client, &gvk)
        .await
        .unwrap_or_else(|error| panic!("the apiserver does not serve {gvk:?}: {error}"));
    match capabilities.scope {
        discovery::Scope::Namespaced => Api::namespaced_with(
            client.clone(),
            object["metadata"]["namespace"]
                .as_str()
                .unwrap_or(default_namespace),
            &resource,
        ),
        discovery::Scope::Cluster => Api::all_with(client.clone(), &resource),
    }
}
