//! The operator under measurement: the release `ots-operator` binary as a child process.

use crate::BenchError;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `ots-operator run`; killed when dropped.
pub struct OperatorProcess {
    child: Child,
    /// Where its stdout and stderr go.
    pub log: PathBuf,
}

/// Resident memory of a process, from `/proc/PID/status`.
#[derive(Debug, Clone, Copy)]
pub struct Rss {
    /// Current resident set (VmRSS), KiB.
    pub rss_kib: u64,
    /// Peak resident set (VmHWM), KiB.
    pub hwm_kib: u64,
}

impl OperatorProcess {
    /// Starts `BINARY run ARGS` with `KUBECONFIG` and the given OTS credentials.
    pub fn start(
        binary: &Path,
        kubeconfig: &Path,
        args: &[String],
        credentials: (&str, &str),
        log: PathBuf,
    ) -> Result<OperatorProcess, BenchError> {
        let out = File::create(&log)?;
        let err = out.try_clone()?;
        let child = Command::new(binary)
            .arg("run")
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .env("OTS_USERNAME", credentials.0)
            .env("OTS_API_TOKEN", credentials.1)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()?;
        Ok(OperatorProcess { child, log })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until `/readyz` of the metrics server (address from the start-up log) answers 200.
    pub async fn wait_ready(&mut self, limit: Duration) -> Result<(), BenchError> {
        let deadline = Instant::now() + limit;
        let http = reqwest_free_get();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(BenchError::Failed(format!(
                    "the operator exited ({status}); log: {}",
                    self.log.display()
                )));
            }
            let logs = std::fs::read_to_string(&self.log).unwrap_or_default();
            let addr = logs
                .lines()
                .find(|l| l.contains("serving /metrics"))
                .and_then(|l| l.split("addr=").nth(1))
                .and_then(|rest| rest.split_whitespace().next())
                .map(|a| a.trim_matches('"').to_owned());
            if let Some(addr) = addr
                && http(&addr, "/readyz").await
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(BenchError::Failed(format!(
                    "the operator was not ready in {limit:?}; log: {}",
                    self.log.display()
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Its resident memory now.
    pub fn rss(&self) -> Result<Rss, BenchError> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| BenchError::Failed(format!("no {name} in /proc status")))
        };
        Ok(Rss {
            rss_kib: field("VmRSS:")?,
            hwm_kib: field("VmHWM:")?,
        })
    }

    /// Stops it with SIGTERM (graceful), waiting for the exit.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A minimal HTTP/1.0 GET on loopback that says whether the answer was 200.
fn reqwest_free_get() -> impl Fn(&str, &str) -> futures::future::BoxFuture<'static, bool> {
    |addr: &str, path: &str| {
        let addr = addr.to_owned();
        let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
        Box::pin(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let Ok(mut stream) = tokio::net::TcpStream::connect(&addr).await else {
                return false;
            };
            if stream.write_all(request.as_bytes()).await.is_err() {
                return false;
            }
            let mut buf = Vec::new();
            let _ = stream.read_to_end(&mut buf).await;
            buf.starts_with(b"HTTP/1.1 200") || buf.starts_with(b"HTTP/1.0 200")
        })
    }
}
