//! The operator under test: the real `ots-operator` binary run against this test binary's control
//! plane and an in-memory `ots-testserver`, plus helpers to create inputs and wait for outcomes.
#![allow(dead_code)]

use super::cluster::{client, kubeconfig_path, repo_root, tool_command};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client};
use ots_operator::ots::{ClientConfig, ExposeSecret, OtsClient, OtsError, SecretString};
use ots_operator::resource::{OneTimeShare, RESHARE_ANNOTATION};
use ots_testserver::{Config, TestServer};
use std::collections::BTreeMap;
use std::fs::File;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long waits for the operator last before a test fails (generous: 2 busy cores).
pub const WAIT: Duration = Duration::from_secs(60);

/// Installs the CRDs from `crds/` once per test binary and waits until they are established.
pub fn install_crd() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        run_ok(
            tool_command("kubectl")
                .args(["apply", "--server-side", "-f"])
                .arg(repo_root().join("crds")),
        );
        run_ok(tool_command("kubectl").args([
            "wait",
            "--for=condition=Established",
            "crd/onetimeshares.ots.dev",
            "crd/otsservers.ots.dev",
            "crd/clusterotsservers.ots.dev",
            "crd/otsnotifications.ots.dev",
            "crd/clusterotsnotifications.ots.dev",
            "--timeout=60s",
        ]));
    });
}

fn run_ok(command: &mut Command) {
    let out = command.output().expect("run a tool");
    assert!(
        out.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An OTS test server on its own thread, so it outlives any one async runtime.
pub fn ots_server(config: Config) -> TestServer {
    TestServer::start_in_thread(config).expect("start ots-testserver")
}

/// A running `ots-operator run` process. Killed when dropped.
pub struct Operator {
    child: Option<Child>,
    /// File holding everything the process wrote to stdout and stderr.
    pub log_path: PathBuf,
}

/// Arguments every test operator gets: fast polling and gentle bounds so tests finish quickly.
pub fn fast_args(namespace: &str, ots_url: &str) -> Vec<String> {
    [
        "--namespace",
        namespace,
        "--ots-url",
        ots_url,
        "--metrics-addr",
        "127.0.0.1:0",
        "--refresh-min",
        "1s",
        "--refresh-max",
        "2s",
        "--ots-rate",
        "100",
        "--ots-burst",
        "100",
        "--ots-timeout",
        "3s",
        "--burn-timeout",
        "20s",
        // Records live beside the shares in tests; tests of deletion order use their own.
        "--state-namespace",
        namespace,
        // Tests assert precise reasons: as if the admission policy checked every creator.
        "--admission-guard",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

impl Operator {
    /// Starts the operator for one namespace with [`fast_args`] plus `extra`.
    pub fn start(namespace: &str, ots_url: &str, extra: &[&str]) -> Operator {
        let mut args = fast_args(namespace, ots_url);
        args.extend(extra.iter().map(|s| s.to_string()));
        Operator::start_with(&args, &[("RUST_LOG", "info,ots_operator=debug")])
    }

    /// Starts `ots-operator run ARGS` with extra environment variables.
    pub fn start_with(args: &[String], env: &[(&str, &str)]) -> Operator {
        install_crd();
        Operator::spawn(args, env)
    }

    /// Starts the operator like [`Operator::start_with`] without installing any CRD first.
    pub fn spawn(args: &[String], env: &[(&str, &str)]) -> Operator {
        let dir = std::env::temp_dir().join("ots-operator-test-logs");
        std::fs::create_dir_all(&dir).expect("create the log dir");
        let log_path = dir.join(format!("operator-{}-{}.log", std::process::id(), unique()));
        let log = File::create(&log_path).expect("create the log file");
        let log_err = log.try_clone().expect("clone the log file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_ots-operator"));
        command
            .arg("run")
            .args(args)
            .env("KUBECONFIG", kubeconfig_path())
            .env_remove("OTS_USERNAME")
            .env_remove("OTS_API_TOKEN")
            .env_remove("OTS_URL")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        for (k, v) in env {
            command.env(k, v);
        }
        let child = command.spawn().expect("start ots-operator");
        running_logs().push(log_path.clone());
        Operator {
            child: Some(child),
            log_path,
        }
    }

    /// Everything the operator logged so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or_default()
    }

    /// The address of /metrics, /healthz and /readyz (read from the start-up log line).
    pub fn metrics_addr(&self) -> SocketAddr {
        let deadline = Instant::now() + WAIT;
        loop {
            let logs = self.logs();
            if let Some(addr) = logs
                .lines()
                .find(|l| l.contains("serving /metrics"))
                .and_then(|l| l.split("addr=").nth(1))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|a| a.trim_matches('"').parse().ok())
            {
                return addr;
            }
            assert!(
                Instant::now() < deadline,
                "no metrics address in logs:\n{logs}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sends SIGTERM and waits for the exit; returns how long the exit took.
    pub fn terminate(&mut self) -> Duration {
        let started = Instant::now();
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
        started.elapsed()
    }

    /// Sends SIGTERM and waits at most `limit` for the exit: how long it took, or `None` when
    /// the process was still running then (it is killed with SIGKILL).
    pub fn terminate_within(&mut self, limit: Duration) -> Option<Duration> {
        let started = Instant::now();
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        while started.elapsed() < limit {
            if let Ok(Some(_)) = child.try_wait() {
                return Some(started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// Kills the process with SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
        running_logs().retain(|p| p != &self.log_path);
    }
}

/// The log files of the operators this test binary runs now.
fn running_logs() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    static LOGS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
    LOGS.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The last lines each running operator logged, for the message of a wait that timed out: a
/// failure in CI then says what the operator was doing (its logs hold no secret; tests check).
pub fn running_operator_logs() -> String {
    const LINES: usize = 60;
    let mut out = String::new();
    for path in running_logs().iter() {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = &lines[lines.len().saturating_sub(LINES)..];
        out.push_str(&format!(
            "\n--- last {} lines of {} ---\n{}\n",
            tail.len(),
            path.display(),
            tail.join("\n")
        ));
    }
    out
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// A namespace for one test, and an admin client.
pub async fn setup(prefix: &str) -> (Client, String) {
    let client = client().await;
    let namespace = super::cluster::test_namespace(&client, prefix).await;
    (client, namespace)
}

/// Creates a Secret with the given data.
pub async fn create_secret(client: &Client, namespace: &str, name: &str, data: &[(&str, &[u8])]) {
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..Default::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.to_vec())))
                .collect(),
        ),
        ..Default::default()
    };
    Api::<Secret>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &secret)
        .await
        .expect("create the secret");
}

/// Replaces a Secret's data.
pub async fn update_secret(client: &Client, namespace: &str, name: &str, data: &[(&str, &[u8])]) {
    let api = Api::<Secret>::namespaced(client.clone(), namespace);
    let mut secret = api.get(name).await.expect("get the secret");
    secret.data = Some(
        data.iter()
            .map(|(k, v)| (k.to_string(), ByteString(v.to_vec())))
            .collect::<BTreeMap<_, _>>(),
    );
    api.replace(name, &PostParams::default(), &secret)
        .await
        .expect("update the secret");
}

/// Deletes a Secret.
pub async fn delete_secret(client: &Client, namespace: &str, name: &str) {
    Api::<Secret>::namespaced(client.clone(), namespace)
        .delete(name, &DeleteParams::default())
        .await
        .expect("delete the Secret");
}

/// Creates a OneTimeShare from a JSON spec.
/// Creates Secret `db` (`password` = `value`) and then OneTimeShare `month`, which shares it for
/// 30 days: the instant between the two.
pub async fn share_db_password_for_30d(client: &Client, namespace: &str) -> std::time::Instant {
    create_secret(client, namespace, "db", &[("password", b"value")]).await;
    let created = std::time::Instant::now();
    create_share(
        client,
        namespace,
        "month",
        serde_json::json!({"secretRef": {"name": "db", "key": "password"}, "ttl": "30d"}),
    )
    .await;
    created
}

/// Sets the `ots.dev/reshare` annotation of a OneTimeShare to `token`, as a user (or
/// `kubectl ots reissue`) would.
pub async fn annotate(client: &Client, namespace: &str, name: &str, token: &str) {
    shares(client, namespace)
        .patch(
            name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(serde_json::json!({
                "metadata": {"annotations": {RESHARE_ANNOTATION: token}}
            })),
        )
        .await
        .expect("annotate the OneTimeShare");
}

/// The metadata key of a OneTimeShare's current link; fails the test when it has none.
pub fn metadata_key(obj: &OneTimeShare) -> String {
    obj.status
        .as_ref()
        .and_then(|s| s.metadata_key.clone())
        .expect("a metadata key")
}

pub async fn create_share(client: &Client, namespace: &str, name: &str, spec: serde_json::Value) {
    let share: OneTimeShare = serde_json::from_value(serde_json::json!({
        "apiVersion": "ots.dev/v1alpha1",
        "kind": "OneTimeShare",
        "metadata": { "name": name },
        "spec": spec,
    }))
    .expect("a valid OneTimeShare");
    shares(client, namespace)
        .create(&PostParams::default(), &share)
        .await
        .expect("create the OneTimeShare");
}

/// The OneTimeShare API of a namespace.
pub fn shares(client: &Client, namespace: &str) -> Api<OneTimeShare> {
    Api::namespaced(client.clone(), namespace)
}

/// Deletes a OneTimeShare.
pub async fn delete_share(client: &Client, namespace: &str, name: &str) {
    shares(client, namespace)
        .delete(name, &DeleteParams::default())
        .await
        .expect("delete the OneTimeShare");
}

/// Polls a OneTimeShare until `done` holds, and returns it; fails the test after [`WAIT`].
pub async fn wait_for(
    client: &Client,
    namespace: &str,
    name: &str,
    what: &str,
    done: impl Fn(&OneTimeShare) -> bool,
) -> OneTimeShare {
    let api = shares(client, namespace);
    let deadline = Instant::now() + WAIT;
    loop {
        let current = api.get_opt(name).await.expect("get the OneTimeShare");
        if let Some(obj) = &current
            && done(obj)
        {
            return obj.clone();
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; last seen: {:#?}{}",
            current.map(|o| o.status),
            running_operator_logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until a OneTimeShare's phase is Shared, and returns it.
pub async fn wait_shared(client: &Client, namespace: &str, name: &str) -> OneTimeShare {
    wait_for(client, namespace, name, "phase Shared", |o| {
        phase(o) == "Shared"
    })
    .await
}

/// Waits until a OneTimeShare no longer exists.
pub async fn wait_gone(client: &Client, namespace: &str, name: &str) {
    let api = shares(client, namespace);
    let deadline = Instant::now() + WAIT;
    while api.get_opt(name).await.expect("get").is_some() {
        assert!(
            Instant::now() < deadline,
            "{namespace}/{name} was not deleted in time{}",
            running_operator_logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The phase of a OneTimeShare, as written in status.
pub fn phase(obj: &OneTimeShare) -> &'static str {
    obj.status.as_ref().map(|s| s.phase.as_str()).unwrap_or("")
}

/// The Ready condition's (status, reason, message).
pub fn ready(obj: &OneTimeShare) -> Option<(String, String, String)> {
    obj.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// Whether Ready has the given reason.
pub fn ready_reason_is(obj: &OneTimeShare, reason: &str) -> bool {
    ready(obj).is_some_and(|(_, r, _)| r == reason)
}

/// Events about one object: (type, reason, note).
pub async fn events(client: &Client, namespace: &str, name: &str) -> Vec<(String, String, String)> {
    let api: Api<Event> = Api::namespaced(client.clone(), namespace);
    api.list(&ListParams::default())
        .await
        .expect("list events")
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .map(|e| {
            (
                e.type_.unwrap_or_default(),
                e.reason.unwrap_or_default(),
                e.note.unwrap_or_default(),
            )
        })
        .collect()
}

/// Waits until an Event with `reason` about the object exists, and returns its note.
pub async fn wait_event(
    client: &Client,
    namespace: &str,
    name: &str,
    kind: &str,
    reason: &str,
) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let all = events(client, namespace, name).await;
        if let Some((_, _, note)) = all.iter().find(|(t, r, _)| t == kind && r == reason) {
            return note.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no {kind} event {reason} for {namespace}/{name}; events: {all:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A client of the test server, as a recipient or the link's creator would use it.
pub fn ots_client(server: &TestServer) -> OtsClient {
    let _ = rustls::crypto::ring::default_provider().install_default();
    OtsClient::new(ClientConfig::new(server.url().parse().expect("url"))).expect("client")
}

/// The secret key at the end of a link.
pub fn secret_key(link: &str) -> String {
    link.rsplit('/').next().unwrap_or_default().to_owned()
}

/// Opens a link as the recipient would.
pub async fn reveal(
    server: &TestServer,
    link: &str,
    passphrase: Option<&str>,
) -> Result<String, OtsError> {
    let passphrase = passphrase.map(|p| SecretString::from(p.to_owned()));
    ots_client(server)
        .reveal(&secret_key(link), passphrase.as_ref())
        .await
        .map(|v| v.expose_secret().to_owned())
}

/// Opens a resource's link as the recipient would, without a passphrase, and returns the value.
pub async fn open_link(server: &TestServer, obj: &OneTimeShare) -> String {
    let link = obj
        .status
        .as_ref()
        .and_then(|s| s.link.clone())
        .expect("the resource has a link");
    reveal(server, &link, None)
        .await
        .expect("the link reveals a value")
}

/// The usual opening: Secret `db` holding `value` under key `password`, a OneTimeShare `name` of
/// that key with the spec fields of `extra` (an object) besides, and the share once Shared.
pub async fn shared_db(
    client: &Client,
    namespace: &str,
    name: &str,
    value: &[u8],
    extra: serde_json::Value,
) -> OneTimeShare {
    create_secret(client, namespace, "db", &[("password", value)]).await;
    let mut spec = serde_json::json!({"secretRef": {"name": "db", "key": "password"}});
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    create_share(client, namespace, name, spec).await;
    wait_shared(client, namespace, name).await
}

/// Deletes a OneTimeShare whose link was already opened and checks that it is released within
/// 20 s with no BurnFailed Event (there was nothing left to burn). `what` names the case.
pub async fn delete_opened_and_expect_release(
    client: &Client,
    namespace: &str,
    name: &str,
    what: &str,
) {
    let deleted = Instant::now();
    delete_share(client, namespace, name).await;
    wait_gone(client, namespace, name).await;
    assert!(
        deleted.elapsed() < Duration::from_secs(20),
        "{what}: released after {:?}",
        deleted.elapsed()
    );
    let all = events(client, namespace, name).await;
    assert!(
        !all.iter().any(|(_, reason, _)| reason == "BurnFailed"),
        "{what}: no BurnFailed for a link that was opened: {namespace}/{name}: {all:?}"
    );
}

/// Arguments for an operator on a dedicated account (`user`, `token`) whose orphan sweep runs
/// every `interval` for secrets older than `grace`.
pub fn sweeping_account<'a>(
    user: &'a str,
    token: &'a str,
    interval: &'a str,
    grace: &'a str,
) -> [&'a str; 9] {
    [
        "--ots-username",
        user,
        "--ots-api-token",
        token,
        "--sweep-orphans",
        "--sweep-interval",
        interval,
        "--sweep-grace",
        grace,
    ]
}

/// Metadata keys of the secrets still live on the test server.
pub fn live_keys(server: &TestServer) -> std::collections::BTreeSet<String> {
    server
        .live_receipts()
        .into_iter()
        .map(|r| r.metadata_key)
        .collect()
}

/// How many requests of one operation the test server answered.
pub fn calls(server: &TestServer, operation: &str) -> u64 {
    server
        .stats()
        .by_operation
        .get(operation)
        .copied()
        .unwrap_or_default()
}

/// Waits (up to 180 s) until all `count` shares of `namespace` have a link, then checks what a
/// disruption (a leader's deletion, a rolling upgrade) must not cause: every link distinct, no
/// secret on `server` that no share names, and exactly `count` share calls. Returns when the last
/// share got its link.
pub async fn wait_each_shared_exactly_once(
    client: &Client,
    namespace: &str,
    server: &TestServer,
    count: usize,
) -> Instant {
    let api = shares(client, namespace);
    let deadline = Instant::now() + Duration::from_secs(180);
    let all = loop {
        let list = api.list(&ListParams::default()).await.expect("list shares");
        let shared = list
            .items
            .iter()
            .filter(|s| s.status.as_ref().and_then(|s| s.link.as_ref()).is_some())
            .count();
        if shared == count {
            break list.items;
        }
        assert!(
            Instant::now() < deadline,
            "{shared} of {count} shares Shared after 180 s"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let done = Instant::now();
    let links: std::collections::BTreeSet<String> = all
        .iter()
        .filter_map(|s| s.status.as_ref()?.link.clone())
        .collect();
    assert_eq!(links.len(), count, "no lost and no duplicate link");
    let keys: std::collections::BTreeSet<String> = all
        .iter()
        .filter_map(|s| s.status.as_ref()?.metadata_key.clone())
        .collect();
    let live: std::collections::BTreeSet<String> = server
        .live_receipts()
        .into_iter()
        .map(|r| r.metadata_key)
        .collect();
    let orphans: Vec<&String> = live.difference(&keys).collect();
    assert!(
        orphans.is_empty(),
        "secrets on the server that no share names: {orphans:?}"
    );
    let stats = server.stats();
    assert_eq!(
        stats.by_operation.get("share").copied().unwrap_or_default() as usize,
        count,
        "each share was made exactly once: {stats:?}"
    );
    done
}
