//! The operator where users run it: the shipped Dockerfile built, loaded into a real node's containerd,
//! and installed with the README's quick-start lines, as a Pod on the pod network. What is read inside
//! the pod is read from the container's own process on the host (/proc/PID of its containerd task):
//! the image has no shell to exec into.
//!
//! Needs a real node (testing/node/up: root, cgroups, Debian's containerd, runc, CNI plugins and
//! dockerd, which testing/node/build installs), so every test is ignored by default:
//!   cargo test --test node_pod -- --ignored --test-threads 1
//! The first run builds the image cold (minutes); later runs reuse the build cache.

mod support;

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ots_testserver::{Config, TestServer};
use serde_json::Value;
use support::node::{self, Node, proc_environ, proc_mounts, proc_status};
use support::operator::{create_secret, delete_share, open_link, reveal, wait_gone, wait_shared};
use support::readme::quick_start_commands;

const IMAGE: &str = "ots-operator:dev";
const NAMESPACE: &str = "ots-operator";

/// The OTS test server, on the bridge address: pods cannot reach this machine's loopback.
fn server() -> &'static TestServer {
    static SERVER: OnceLock<TestServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        TestServer::start_in_thread_on((node::node().gateway, 0).into(), Config::default())
            .expect("start ots-testserver on the bridge address")
    })
}

/// What the README's quick start did, once per test binary.
struct Installed {
    /// From `helm install` to the operator pod's Ready condition.
    ready_after: Duration,
    pod: Value,
}

/// The README's "Quick start on a cluster" steps 1 and 2, as written, with two substitutions: the image
/// goes into containerd by `testing/node/image` (instead of `kind load`), and `ots.url` names the test
/// server (instead of `https://ots.example.com`). Then waits for the operator pod to turn Ready.
fn installed() -> &'static Installed {
    static INSTALLED: OnceLock<Installed> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let node = node::node();
        node.image(IMAGE);
        let readme = std::fs::read_to_string(
            std::path::PathBuf::from(
                std::env::var_os("CARGO_MANIFEST_DIR")
                    .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
            )
            .join("README.md"),
        )
        .expect("read README.md");
        let steps = quick_start_commands(&readme);
        let install = steps
            .iter()
            .find(|c| c.starts_with("helm install "))
            .expect("the quick start has a helm install line");
        assert!(
            install.contains("--set ots.url=https://ots.example.com"),
            "{install}"
        );
        let install = install.replace("https://ots.example.com", &server().url());
        let started = Instant::now();
        node.shell(&install);
        for command in steps
            .iter()
            .skip_while(|c| !c.starts_with("helm install "))
            .skip(1)
            .take_while(|c| {
                c.starts_with("kubectl wait") || c.starts_with("kubectl -n ots-operator get")
            })
        {
            node.shell(command);
        }
        let pod = wait_pod_ready(node, started);
        let ready_after = started.elapsed();
        eprintln!("operator pod Ready {ready_after:.1?} after helm install");
        Installed { ready_after, pod }
    })
}

fn operator_pods(node: &Node) -> Vec<Value> {
    let pods: Value = serde_json::from_str(&node.kubectl(&[
        "-n",
        NAMESPACE,
        "get",
        "pods",
        "-l",
        "app.kubernetes.io/name=ots-operator",
        "-o",
        "json",
    ]))
    .expect("pod list JSON");
    pods["items"].as_array().cloned().unwrap_or_default()
}

fn is_ready(pod: &Value) -> bool {
    pod["status"]["conditions"]
        .as_array()
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

fn wait_pod_ready(node: &Node, since: Instant) -> Value {
    loop {
        if let Some(pod) = operator_pods(node).into_iter().find(is_ready) {
            return pod;
        }
        if since.elapsed() > Duration::from_secs(180) {
            let describe = node
                .tool("kubectl")
                .args(["-n", NAMESPACE, "describe", "pods"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            panic!("no operator pod Ready after 180 s:\n{describe}");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn container_pid(node: &Node, pod: &Value) -> u32 {
    let id = pod["status"]["containerStatuses"][0]["containerID"]
        .as_str()
        .expect("the operator container has an ID");
    node.container_pid(id)
}

#[test]
#[ignore = "needs a real node (root, containerd, dockerd): cargo test --test node_pod -- --ignored"]
fn the_shipped_image_is_at_most_25_mb_runs_as_65532_and_reports_the_crate_version() {
    let node = node::node();
    node.image(IMAGE);
    // Size as containerd holds it: the sum of the image's (uncompressed) layers and config.
    let listing = node.ctr(&["images", "ls", &format!("name==docker.io/library/{IMAGE}")]);
    let size_line = listing.lines().nth(1).expect("the image is in containerd");
    // REF TYPE DIGEST SIZE PLATFORMS LABELS, SIZE as e.g. "13.3 MiB".
    let fields: Vec<&str> = size_line.split_whitespace().collect();
    let unit_at = fields
        .iter()
        .position(|f| ["KiB", "MiB", "GiB"].contains(f))
        .unwrap_or_else(|| panic!("no size in {size_line}"));
    let (number, unit) = (fields[unit_at - 1], fields[unit_at]);
    let mib: f64 = number.parse::<f64>().expect("size")
        * match unit {
            "KiB" => 1.0 / 1024.0,
            "MiB" => 1.0,
            "GiB" => 1024.0,
            other => panic!("size unit {other} in {size_line}"),
        };
    eprintln!("image {IMAGE}: {number} {unit}");
    assert!(
        mib * 1.048_576 <= 25.0,
        "the image is {number} {unit}, more than 25 MB"
    );

    // `--version` in a pod of its own, with nothing but the image's own user and entrypoint.
    let ns = "image-version";
    let _ = node
        .tool("kubectl")
        .args(["create", "namespace", ns])
        .output();
    let pod = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "version", "namespace": ns},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": false,
            "containers": [{"name": "version", "image": IMAGE, "imagePullPolicy": "Never", "args": ["--version"]}]
        }
    });
    let manifest =
        std::env::temp_dir().join(format!("ots-node-version-{}.json", std::process::id()));
    std::fs::write(&manifest, pod.to_string()).expect("write the pod manifest");
    node.kubectl(&["apply", "-f", manifest.to_str().expect("utf-8 path")]);
    node.kubectl(&[
        "-n",
        ns,
        "wait",
        "pod/version",
        "--for=jsonpath={.status.phase}=Succeeded",
        "--timeout=120s",
    ]);
    let logs = node.kubectl(&["-n", ns, "logs", "version"]);
    assert_eq!(
        logs.trim(),
        format!("ots-operator {}", env!("CARGO_PKG_VERSION")),
        "--version names Cargo.toml's version"
    );

    // The image's own user: a pod without any securityContext still runs as 65532. (The operator
    // keeps running while it is refused the API, long enough to read its process.)
    let pod = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "user", "namespace": ns},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "user", "image": IMAGE, "imagePullPolicy": "Never",
                            "args": ["run", "--ots-url", &server().url()]}]
        }
    });
    std::fs::write(&manifest, pod.to_string()).expect("write the pod manifest");
    node.kubectl(&["apply", "-f", manifest.to_str().expect("utf-8 path")]);
    node.kubectl(&[
        "-n",
        ns,
        "wait",
        "pod/user",
        "--for=jsonpath={.status.phase}=Running",
        "--timeout=120s",
    ]);
    let pod: Value =
        serde_json::from_str(&node.kubectl(&["-n", ns, "get", "pod", "user", "-o", "json"]))
            .expect("pod JSON");
    let status = proc_status(container_pid(node, &pod));
    assert_eq!(status["Uid"], "65532\t65532\t65532\t65532", "{status:?}");
    assert_eq!(status["Gid"], "65532\t65532\t65532\t65532", "{status:?}");
    let _ = std::fs::remove_file(manifest);
}

#[test]
#[ignore = "needs a real node (root, containerd, dockerd): cargo test --test node_pod -- --ignored"]
fn readme_helm_install_turns_the_operator_pod_ready_within_30_s_on_the_pod_network() {
    let installed = installed();
    assert!(
        installed.ready_after <= Duration::from_secs(30),
        "Ready {:?} after helm install",
        installed.ready_after
    );
    let spec = &installed.pod["spec"];
    assert_ne!(spec["hostNetwork"], true, "no hostNetwork");
    let pod_ip = installed.pod["status"]["podIP"].as_str().expect("a pod IP");
    assert!(
        pod_ip.starts_with("10.244.0."),
        "the pod is on the pod network: {pod_ip}"
    );
    let container = &spec["containers"][0];
    assert_eq!(container["image"], IMAGE);
    let env_names: Vec<&str> = container["env"]
        .as_array()
        .map(|env| env.iter().filter_map(|e| e["name"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        !env_names.iter().any(|name| name.starts_with("KUBERNETES_")),
        "nothing in the chart tells the operator where the apiserver is: {env_names:?}"
    );
}

#[test]
#[ignore = "needs a real node (root, containerd, dockerd): cargo test --test node_pod -- --ignored"]
fn operator_process_has_no_capabilities_no_new_privs_runtime_default_seccomp_and_a_read_only_root()
{
    let installed = installed();
    let node = node::node();
    let pid = container_pid(node, &installed.pod);
    let status = proc_status(pid);
    eprintln!(
        "operator pid {pid}: Uid {} CapEff {} NoNewPrivs {} Seccomp {} VmRSS {}",
        status["Uid"], status["CapEff"], status["NoNewPrivs"], status["Seccomp"], status["VmRSS"]
    );
    assert_eq!(status["Uid"], "65532\t65532\t65532\t65532");
    assert_eq!(status["Gid"], "65532\t65532\t65532\t65532");
    for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(
            status[set], "0000000000000000",
            "{set} is empty: {status:?}"
        );
    }
    assert_eq!(status["NoNewPrivs"], "1");
    // 2 = SECCOMP_MODE_FILTER: the runtime's default profile (RuntimeDefault), not Unconfined (0).
    assert_eq!(status["Seccomp"], "2");
    assert_eq!(
        installed.pod["spec"]["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let mounts = proc_mounts(pid);
    let root = mounts
        .iter()
        .rev()
        .find(|(point, _)| point == "/")
        .expect("a root mount");
    assert!(
        root.1.split(',').any(|option| option == "ro"),
        "the root filesystem is read-only: {root:?}"
    );
}

#[test]
#[ignore = "needs a real node (root, containerd, dockerd): cargo test --test node_pod -- --ignored"]
fn operator_reaches_the_apiserver_through_the_kubernetes_service_with_its_projected_token() {
    let installed = installed();
    let node = node::node();
    let pid = container_pid(node, &installed.pod);
    // In-cluster config: the kubelet's Service environment and the projected token volume.
    let environ = proc_environ(pid);
    assert_eq!(
        environ.get("KUBERNETES_SERVICE_HOST").map(String::as_str),
        Some("10.0.0.1")
    );
    assert_eq!(
        environ.get("KUBERNETES_SERVICE_PORT").map(String::as_str),
        Some("443")
    );
    let mounts = proc_mounts(pid);
    let token_mount = mounts
        .iter()
        .find(|(point, _)| point == "/var/run/secrets/kubernetes.io/serviceaccount")
        .expect("the ServiceAccount token is mounted");
    assert!(
        token_mount.1.split(',').any(|o| o == "ro"),
        "{token_mount:?}"
    );
    let projected = installed.pod["spec"]["volumes"]
        .as_array()
        .and_then(|volumes| {
            volumes.iter().find(|v| {
                v["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("kube-api-access-"))
            })
        })
        .expect("a kube-api-access projected volume");
    assert!(
        projected["projected"]["sources"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s.get("serviceAccountToken").is_some())),
        "{projected}"
    );
    // The apiserver saw the operator's requests come from the pod's address, as its ServiceAccount.
    let pod_ip = installed.pod["status"]["podIP"].as_str().expect("a pod IP");
    let audit = std::fs::read_to_string(&node.audit_log).expect("read the audit log");
    let user = "system:serviceaccount:ots-operator:ots-operator";
    let from_pod = audit
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|event| {
            event["user"]["username"] == user
                && event["sourceIPs"]
                    .as_array()
                    .is_some_and(|ips| ips.iter().any(|ip| ip == pod_ip))
        })
        .count();
    assert!(
        from_pod > 0,
        "no request of {user} from {pod_ip} in the audit log"
    );
    // The token is the projected one (bound to the pod), not a legacy Secret token.
    let bound_to_pod = audit
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .any(|event| {
            event["user"]["username"] == user
                && event["user"]["extra"]["authentication.kubernetes.io/pod-name"][0]
                    == installed.pod["metadata"]["name"]
        });
    assert!(bound_to_pod, "the operator's token is bound to its pod");
}

#[test]
#[ignore = "needs a real node (root, containerd, dockerd): cargo test --test node_pod -- --ignored"]
fn kubelet_probes_hit_healthz_and_readyz_on_the_pod_ip() {
    let installed = installed();
    let node = node::node();
    let container = &installed.pod["spec"]["containers"][0];
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    // An httpGet probe without a host goes to the pod IP.
    assert!(container["livenessProbe"]["httpGet"].get("host").is_none());
    assert!(container["readinessProbe"]["httpGet"].get("host").is_none());
    // The liveness probe runs 5 s after start, then every 20 s: wait for one of each to succeed.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let metrics = node.probe_metrics(NAMESPACE);
        let succeeded = |kind: &str| {
            metrics.iter().any(|line| {
                line.contains(&format!("probe_type=\"{kind}\""))
                    && line.contains("result=\"successful\"")
                    && !line.ends_with(" 0")
            })
        };
        if succeeded("Liveness") && succeeded("Readiness") {
            eprintln!("{}", metrics.join("\n"));
            break;
        }
        assert!(Instant::now() < deadline, "probes: {metrics:#?}");
        std::thread::sleep(Duration::from_secs(1));
    }
    let pod_ip = installed.pod["status"]["podIP"].as_str().expect("a pod IP");
    let port = container["ports"][0]["containerPort"]
        .as_u64()
        .expect("metrics port");
    for path in ["/healthz", "/readyz"] {
        let output = std::process::Command::new("curl")
            .args(["-fsS", "-m", "5"])
            .arg(format!("http://{pod_ip}:{port}{path}"))
            .output()
            .expect("run curl");
        assert!(
            output.status.success(),
            "{path} on {pod_ip}:{port}: {output:?}"
        );
    }
}

#[tokio::test]
#[ignore = "needs a real node (root, containerd, dockerd): cargo test --test node_pod -- --ignored"]
async fn a_share_through_the_pod_is_shared_revealed_once_and_burned_when_deleted() {
    installed();
    let node = node::node();
    // README step 3, as written: the Secret and the example share in the default namespace.
    let readme = std::fs::read_to_string(
        std::path::PathBuf::from(
            std::env::var_os("CARGO_MANIFEST_DIR")
                .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
        )
        .join("README.md"),
    )
    .expect("README");
    let steps = quick_start_commands(&readme);
    for command in steps.iter().filter(|c| {
        c.starts_with("kubectl create secret") || c.starts_with("kubectl apply -f examples/")
    }) {
        node.shell(command);
    }
    let client = node.client().await;
    let started = Instant::now();
    let shared = wait_shared(&client, "default", "db-password-for-alice").await;
    eprintln!("example share Shared {:.1?} after apply", started.elapsed());
    let link = shared
        .status
        .as_ref()
        .and_then(|s| s.link.clone())
        .expect("link");
    // What the README's user sees, with the link itself kept out of the test's output.
    let listing = node
        .shell("kubectl get ots -o wide")
        .replace(&link, "<link>");
    eprintln!("{listing}");
    assert!(listing.contains("Shared"), "{listing}");
    let server = server();
    assert_eq!(open_link(server, &shared).await, "s3cr3t");
    assert!(
        reveal(server, &link, None).await.is_err(),
        "a link opens once"
    );

    // An unread share is burned when its resource is deleted.
    create_secret(&client, "default", "burn-me", &[("password", b"unread")]).await;
    support::operator::create_share(
        &client,
        "default",
        "unread",
        serde_json::json!({"secretRef": {"name": "burn-me", "key": "password"}}),
    )
    .await;
    let unread = wait_shared(&client, "default", "unread").await;
    let live_before = server.stats().live_secrets;
    delete_share(&client, "default", "unread").await;
    wait_gone(&client, "default", "unread").await;
    assert_eq!(
        server.stats().live_secrets,
        live_before - 1,
        "the unread secret was burned"
    );
    let link = unread.status.and_then(|s| s.link).expect("link");
    assert!(
        reveal(server, &link, None).await.is_err(),
        "a burned link reveals nothing"
    );
}

/// Runs in every `cargo test`: a node that cannot start says why in one line, at once.
#[test]
fn node_up_without_root_fails_at_once_with_one_line_naming_what_is_missing() {
    let up = std::path::PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("testing/node/up");
    let up = up.to_str().expect("UTF-8 path");
    let dir = std::env::temp_dir().join(format!("ots-node-not-root-{}", std::process::id()));
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let mut command = if root {
        let mut c = std::process::Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", up]);
        c
    } else {
        std::process::Command::new(up)
    };
    let started = Instant::now();
    let output = command.arg(&dir).output().expect("run testing/node/up");
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert_eq!(
        stderr.trim().lines().collect::<Vec<_>>(),
        ["node: a node needs root (containers, network namespaces, iptables)"]
    );
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert!(!dir.exists(), "a refused up leaves nothing behind");
}
