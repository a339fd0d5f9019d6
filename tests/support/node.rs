//! A real node for tests (`testing/node/up`): the control plane plus kubelet, containerd, kube-proxy
//! and kube-scheduler on this machine, and the shipped Dockerfile built and loaded into the node
//! (`testing/node/image`). Started once per test binary, stopped by `up`'s watchdog when the binary
//! exits; one node per machine.
//!
//! The node needs root, cgroups, Debian's containerd/runc/CNI plugins and dockerd (testing/node/build
//! installs them) and minutes for a cold image build, so the tests that use it are `#[ignore]`d and
//! run with `cargo test --test node_… -- --ignored`. If the node cannot start, [`node`] panics with
//! `up`'s one-line reason.
//!
//! None of this touches [`super::cluster`]: a node test must never start the loopback-only control
//! plane as well.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

/// The running node of this test binary.
#[derive(Debug)]
pub struct Node {
    /// State directory given to `up`.
    pub dir: PathBuf,
    /// Admin kubeconfig (server: the bridge address).
    pub kubeconfig: PathBuf,
    /// Directory holding `kubectl` and `helm`.
    pub tools: PathBuf,
    /// The bridge's own address: the apiserver listens here, and so must servers that pods reach.
    pub gateway: Ipv4Addr,
    /// containerd's socket.
    pub containerd: PathBuf,
    /// The kubelet's HTTPS port on 127.0.0.1 (anonymous reads: /metrics/probes).
    pub kubelet_port: u16,
    /// Apiserver audit log (Metadata level).
    pub audit_log: PathBuf,
    /// How long `up` took.
    pub up_took: Duration,
}

static NODE: OnceLock<Result<Node, String>> = OnceLock::new();
static IMAGES: Mutex<BTreeMap<String, Duration>> = Mutex::new(BTreeMap::new());

fn repo_root() -> &'static Path {
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

/// The node of this test binary, started on first use. Panics with `up`'s reason if it cannot start.
pub fn node() -> &'static Node {
    match NODE.get_or_init(start) {
        Ok(node) => node,
        Err(message) => panic!("{message}"),
    }
}

fn start() -> Result<Node, String> {
    let dir = std::env::temp_dir().join(format!("ots-operator-node-{}", std::process::id()));
    let up = repo_root().join("testing/node/up");
    let started = Instant::now();
    let output = Command::new(&up)
        .arg(&dir)
        .arg("--watch-pid")
        .arg(std::process::id().to_string())
        .env("OTS_CP_AUDIT_LOG", "1")
        .output()
        .map_err(|error| format!("cannot run {}: {error}", up.display()))?;
    let up_took = started.elapsed();
    if !output.status.success() {
        return Err(format!(
            "the real node did not start ({} {}: {}):\n{}",
            up.display(),
            dir.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    eprintln!("testing/node/up took {up_took:.1?}");
    let env = read_env(&dir)?;
    let cp_env = read_env(&dir.join("cp"))?;
    let value = |env: &BTreeMap<String, String>, key: &str| {
        env.get(key)
            .cloned()
            .ok_or_else(|| format!("{}/env has no {key}", dir.display()))
    };
    Ok(Node {
        kubeconfig: PathBuf::from(value(&env, "KUBECONFIG")?),
        tools: PathBuf::from(value(&cp_env, "CP_BIN_DIR")?),
        gateway: value(&env, "GATEWAY")?
            .parse()
            .map_err(|error| format!("GATEWAY: {error}"))?,
        containerd: PathBuf::from(value(&env, "CONTAINERD_ADDRESS")?),
        kubelet_port: value(&env, "KUBELET_PORT")?
            .parse()
            .map_err(|error| format!("KUBELET_PORT: {error}"))?,
        audit_log: PathBuf::from(value(&cp_env, "AUDIT_LOG")?),
        up_took,
        dir,
    })
}

fn read_env(dir: &Path) -> Result<BTreeMap<String, String>, String> {
    let text = std::fs::read_to_string(dir.join("env"))
        .map_err(|error| format!("cannot read {}/env: {error}", dir.display()))?;
    Ok(text
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect())
}

impl Node {
    /// Builds the shipped Dockerfile (`testing/node/image`) and loads it into the node as `tag`,
    /// once per tag and test binary; returns how long that took.
    pub fn image(&self, tag: &str) -> Duration {
        let mut images = IMAGES
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(took) = images.get(tag) {
            return *took;
        }
        let started = Instant::now();
        let output = Command::new(repo_root().join("testing/node/image"))
            .arg(&self.dir)
            .args(["--tag", tag])
            .output()
            .expect("run testing/node/image");
        let took = started.elapsed();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "testing/node/image failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(
            stdout.lines().last(),
            Some(tag),
            "testing/node/image prints the image reference as its last line"
        );
        eprintln!(
            "testing/node/image --tag {tag} took {took:.1?}: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
        images.insert(tag.to_owned(), took);
        took
    }

    /// A command for a built tool (`kubectl`, `helm`) against the node, run in the repository
    /// (so the README's relative paths work), with a HELM home of its own.
    pub fn tool(&self, name: &str) -> Command {
        let mut command = Command::new(self.tools.join(name));
        self.tool_env(&mut command);
        command
    }

    fn tool_env(&self, command: &mut Command) {
        let helm_home = self.dir.join("helm-home");
        command
            .current_dir(repo_root())
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HELM_CACHE_HOME", helm_home.join("cache"))
            .env("HELM_CONFIG_HOME", helm_home.join("config"))
            .env("HELM_DATA_HOME", helm_home.join("data"));
    }

    /// Runs a shell command line (a README line) with `kubectl` and `helm` on PATH; returns stdout.
    pub fn shell(&self, line: &str) -> String {
        let mut command = Command::new("sh");
        self.tool_env(&mut command);
        command.args(["-c", line]).env(
            "PATH",
            format!(
                "{}:{}",
                self.tools.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        );
        let output = command.output().expect("run sh");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "`{line}` failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }

    /// `kubectl ARGS`, which must succeed; returns stdout.
    pub fn kubectl(&self, args: &[&str]) -> String {
        let output = self
            .tool("kubectl")
            .args(args)
            .output()
            .expect("run kubectl");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "kubectl {args:?} failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }

    /// An admin client of the node's apiserver.
    pub async fn client(&self) -> Client {
        let kubeconfig = Kubeconfig::read_from(&self.kubeconfig).expect("read the node kubeconfig");
        let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .expect("load the node kubeconfig");
        Client::try_from(config).expect("build the node client")
    }

    /// `ctr` against the node's containerd, in the kubelet's namespace; returns stdout.
    pub fn ctr(&self, args: &[&str]) -> String {
        let output = Command::new("ctr")
            .arg("--address")
            .arg(&self.containerd)
            .args(["--namespace", "k8s.io"])
            .args(args)
            .output()
            .expect("run ctr");
        assert!(
            output.status.success(),
            "ctr {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// The host pid of a running container (`containerd://ID` from a pod's status), through
    /// containerd's task list: the way to read a shell-less container's /proc from outside.
    pub fn container_pid(&self, container_id: &str) -> u32 {
        let id = container_id
            .strip_prefix("containerd://")
            .unwrap_or(container_id);
        self.ctr(&["tasks", "ls"])
            .lines()
            .find_map(|line| {
                let mut fields = line.split_whitespace();
                (fields.next() == Some(id))
                    .then(|| fields.next().and_then(|pid| pid.parse().ok()))
                    .flatten()
            })
            .unwrap_or_else(|| panic!("containerd has no running task {id}"))
    }

    /// The kubelet's probe counters (`prober_probe_total`) of the pods of `namespace`.
    pub fn probe_metrics(&self, namespace: &str) -> Vec<String> {
        let output = Command::new("curl")
            .args(["-ksS", "-m", "5"])
            .arg(format!(
                "https://127.0.0.1:{}/metrics/probes",
                self.kubelet_port
            ))
            .output()
            .expect("run curl");
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter(|line| {
                line.starts_with("prober_probe_total")
                    && line.contains(&format!("namespace=\"{namespace}\""))
            })
            .map(str::to_owned)
            .collect()
    }
}

/// The `key: value` fields of /proc/PID/status.
pub fn proc_status(pid: u32) -> BTreeMap<String, String> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("read /proc/PID/status")
        .lines()
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
        .collect()
}

/// The process's mounts as (mount point, mount options) from /proc/PID/mountinfo, seen from
/// inside its mount namespace.
pub fn proc_mounts(pid: u32) -> Vec<(String, String)> {
    std::fs::read_to_string(format!("/proc/{pid}/mountinfo"))
        .expect("read /proc/PID/mountinfo")
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            Some((fields.get(4)?.to_string(), fields.get(5)?.to_string()))
        })
        .collect()
}

/// The process's environment from /proc/PID/environ.
pub fn proc_environ(pid: u32) -> BTreeMap<String, String> {
    std::fs::read(format!("/proc/{pid}/environ"))
        .expect("read /proc/PID/environ")
        .split(|b| *b == 0)
        .filter_map(|entry| {
            let entry = String::from_utf8_lossy(entry);
            entry
                .split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        })
        .collect()
}
