//! A throwaway control plane per benchmark phase (`testing/controlplane/up --audit-log`), the
//! admin client, and the operator's own kubeconfig.
//!
//! The operator runs under the admin certificate but impersonates user [`OPERATOR_USER`] (still in
//! `system:masters`), so the audit log tells its requests apart from the benchmark's own.

use crate::BenchError;
use kube::config::{KubeConfigOptions, Kubeconfig};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

/// The user name the operator impersonates; its requests carry it in the audit log.
pub const OPERATOR_USER: &str = "ots-bench-operator";

/// A running control plane.
pub struct ControlPlane {
    /// State directory given to `up`.
    pub dir: PathBuf,
    /// Admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// Kubeconfig that impersonates [`OPERATOR_USER`].
    pub operator_kubeconfig: PathBuf,
    /// Directory of `kubectl` and friends.
    pub bin_dir: PathBuf,
    /// Apiserver audit log (Metadata level, JSON lines).
    pub audit_log: PathBuf,
    /// Process ids of kube-apiserver and etcd.
    pub pids: (u32, u32),
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    std::path::PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("../..")
}

impl ControlPlane {
    /// Starts a control plane in a fresh directory; `down` runs when this process exits, at the
    /// latest (the `up` watchdog), or when the value is dropped.
    pub fn up(name: &str) -> Result<ControlPlane, BenchError> {
        let dir = std::env::temp_dir().join(format!("ots-bench-{name}-{}", std::process::id()));
        let up = repo_root().join("testing/controlplane/up");
        let out = Command::new(&up)
            .arg(&dir)
            .args(["--audit-log", "--watch-pid"])
            .arg(std::process::id().to_string())
            .output()?;
        if !out.status.success() {
            return Err(BenchError::Failed(format!(
                "{} failed: {}",
                up.display(),
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        let env_text = std::fs::read_to_string(dir.join("env"))?;
        let env: BTreeMap<&str, &str> =
            env_text.lines().filter_map(|l| l.split_once('=')).collect();
        let value = |key: &str| {
            env.get(key)
                .map(PathBuf::from)
                .ok_or_else(|| BenchError::Failed(format!("{}/env has no {key}", dir.display())))
        };
        let kubeconfig = value("KUBECONFIG")?;
        let operator_kubeconfig = dir.join("operator-kubeconfig");
        let text = std::fs::read_to_string(&kubeconfig)?;
        // The admin user plus impersonation of a user that stays in system:masters.
        let impersonating = text.replacen(
            "  - name: admin\n    user:\n",
            &format!(
                "  - name: admin\n    user:\n      as: {OPERATOR_USER}\n      as-groups: [\"system:masters\", \"system:authenticated\"]\n"
            ),
            1,
        );
        if impersonating == text {
            return Err(BenchError::Failed(
                "unexpected kubeconfig layout from up".into(),
            ));
        }
        std::fs::write(&operator_kubeconfig, impersonating)?;
        let pid = |key: &str| {
            env.get(key)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| BenchError::Failed(format!("{}/env has no {key}", dir.display())))
        };
        let cp = ControlPlane {
            pids: (pid("APISERVER_PID")?, pid("ETCD_PID")?),
            kubeconfig,
            operator_kubeconfig,
            bin_dir: value("CP_BIN_DIR")?,
            audit_log: value("AUDIT_LOG")?,
            dir,
        };
        cp.kubectl_ok(&[
            "apply",
            "--server-side",
            "-f",
            &repo_root().join("crds").to_string_lossy(),
        ])?;
        cp.kubectl_ok(&[
            "wait",
            "--for=condition=Established",
            "crd/onetimeshares.ots.dev",
            "crd/otsservers.ots.dev",
            "crd/clusterotsservers.ots.dev",
            "--timeout=60s",
        ])?;
        Ok(cp)
    }

    /// `kubectl` with the admin kubeconfig.
    pub fn kubectl(&self) -> Command {
        let mut command = Command::new(self.bin_dir.join("kubectl"));
        command.env("KUBECONFIG", &self.kubeconfig);
        command
    }

    fn kubectl_ok(&self, args: &[&str]) -> Result<(), BenchError> {
        let out = self.kubectl().args(args).output()?;
        if out.status.success() {
            Ok(())
        } else {
            Err(BenchError::Failed(format!(
                "kubectl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            )))
        }
    }

    /// An admin client.
    pub async fn client(&self) -> Result<kube::Client, BenchError> {
        let kubeconfig = Kubeconfig::read_from(&self.kubeconfig)?;
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
        Ok(kube::Client::try_from(config)?)
    }

    /// Size of the audit log now: a mark to count requests from.
    pub fn audit_mark(&self) -> u64 {
        std::fs::metadata(&self.audit_log)
            .map(|m| m.len())
            .unwrap_or_default()
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.operator_kubeconfig);
        let _ = Command::new(repo_root().join("testing/controlplane/down"))
            .arg(&self.dir)
            .status();
    }
}
