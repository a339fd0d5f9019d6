//! The recipient's browser: Debian's Chromium, headless, driven by `testing/browser/open-link.mjs`
//! (playwright-core from npm). One short `node` process per visit, so every visit is a fresh
//! browser; a visit ends itself after 75 s, and the test stops it by pid after 90 s.
#![allow(dead_code)]

use super::cluster::repo_root;
use super::real_ots::Genuine;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// How long one visit may take (a visit takes 2–5 s here).
const VISIT_TIMEOUT: Duration = Duration::from_secs(90);

/// What the page showed on one visit.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Visit {
    /// `reveal` (a "Click to reveal" page), `passphrase` (the passphrase form) or `refused`.
    pub landing: String,
    /// The page's text before anything was pressed (the link masked).
    pub landing_text: String,
    /// How many passphrases the page answered "Incorrect passphrase" to.
    pub passphrase_refusals: u32,
    /// The page's answer to a wrong passphrase, if there was one.
    #[serde(default)]
    pub passphrase_refusal_text: Option<String>,
    /// What the page's text box held after the reveal.
    pub value: Option<String>,
    /// Whether the page refused (on landing or on the reveal).
    pub refused: bool,
    /// The page's text when the reveal itself was refused.
    #[serde(default)]
    pub refusal_text: Option<String>,
    /// The screenshots, in order.
    pub shots: Vec<PathBuf>,
}

// The value is test data, but a Debug of a visit never shows it (as the operator's own types).
impl std::fmt::Debug for Visit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Visit")
            .field("landing", &self.landing)
            .field("landing_text", &self.landing_text)
            .field("passphrase_refusals", &self.passphrase_refusals)
            .field("value", &self.value.as_ref().map(|_| "[redacted]"))
            .field("refused", &self.refused)
            .field("shots", &self.shots)
            .finish()
    }
}

/// Where Chromium is (`OTS_CHROMIUM`, default Debian's).
fn chromium() -> PathBuf {
    std::env::var_os("OTS_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/lib/chromium/chromium"))
}

fn harness_dir() -> PathBuf {
    repo_root().join("testing/browser")
}

/// Panics with one line naming what the browser tests lack: Chromium, playwright-core (`npm ci`
/// in testing/browser), node, or the genuine server's built frontend.
pub fn require_browser(server: &Genuine) {
    let chromium = chromium();
    if !chromium.is_file() {
        panic!(
            "browser tests: Chromium is missing at {} (apt-get install chromium fonts-liberation fonts-dejavu-core, or set OTS_CHROMIUM)",
            chromium.display()
        );
    }
    if !harness_dir()
        .join("node_modules/playwright-core/package.json")
        .is_file()
    {
        panic!("browser tests: playwright-core is missing (run `npm ci` in testing/browser)");
    }
    if std::process::Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .map(|s| !s.success())
        .unwrap_or(true)
    {
        panic!("browser tests: node is missing (it runs testing/browser/open-link.mjs)");
    }
    if !server.serves_web() {
        panic!(
            "browser tests: the genuine server's web frontend is not built (testing/real-ots/build-web failed; see its output)"
        );
    }
}

/// Everything a child wrote to one of its pipes.
async fn read_to_end(pipe: Option<impl tokio::io::AsyncRead + Unpin>) -> Vec<u8> {
    let mut buf = Vec::new();
    if let Some(mut pipe) = pipe {
        let _ = tokio::io::AsyncReadExt::read_to_end(&mut pipe, &mut buf).await;
    }
    buf
}

/// The screenshots' directory of one test: `$CARGO_TARGET_DIR/test-artifacts/real_ots_browser/TEST`
/// (`target/` of the repository without `CARGO_TARGET_DIR`), emptied first.
pub fn shots_dir(test: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    let dir = target
        .join("test-artifacts")
        .join("real_ots_browser")
        .join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the screenshot directory");
    dir
}

/// One visit of `url`: typing `passphrases` in turn (if the page asks for one), pressing "Click
/// to reveal" unless `reveal` is false. Screenshots go to `shots` as `NAME-NN-what.png`.
pub async fn visit(
    url: &str,
    passphrases: &[&str],
    reveal: bool,
    shots: &Path,
    name: &str,
) -> Visit {
    let request = serde_json::json!({
        "url": url,
        "passphrases": passphrases,
        "reveal": reveal,
        "shots": shots,
        "name": name,
    });
    let mut child = tokio::process::Command::new("node")
        .arg(harness_dir().join("open-link.mjs"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start node testing/browser/open-link.mjs");
    let pid = child.id();
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(request.to_string().as_bytes())
        .await
        .expect("send the visit");
    drop(stdin);
    // Read while waiting, so that a full pipe never holds the visit up.
    let stdout = tokio::spawn(read_to_end(child.stdout.take()));
    let stderr = tokio::spawn(read_to_end(child.stderr.take()));
    let status = match tokio::time::timeout(VISIT_TIMEOUT, child.wait()).await {
        Ok(status) => status.expect("wait for open-link.mjs"),
        Err(_) => {
            // That pid only: TERM lets Playwright close its Chromium; KILL if it is still there
            // after 5 s (Chromium, driven over a pipe, exits when node's end closes: seen here).
            if let Some(pid) = pid {
                let _ = std::process::Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .status();
            }
            if tokio::time::timeout(Duration::from_secs(5), child.wait())
                .await
                .is_err()
            {
                let _ = child.kill().await;
            }
            panic!(
                "visit {name}: open-link.mjs (pid {pid:?}) did not finish within {VISIT_TIMEOUT:?}; stopped"
            );
        }
    };
    let out = std::process::Output {
        status,
        stdout: stdout.await.unwrap_or_default(),
        stderr: stderr.await.unwrap_or_default(),
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "visit {name}: {}",
        stderr.lines().last().unwrap_or("open-link.mjs failed")
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    let visit: Visit = serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("visit {name}: open-link.mjs printed no visit ({e})"));
    for shot in &visit.shots {
        println!("screenshot: {}", shot.display());
    }
    visit
}
