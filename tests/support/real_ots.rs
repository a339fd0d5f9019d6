//! The genuine Onetime Secret server (`testing/real-ots/up`), one per test binary, started on first
//! use and stopped by `up`'s watchdog when the binary exits; or the one `OTS_REAL_SERVER` names.
#![allow(dead_code)]

use super::cluster::repo_root;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// Exit status of `testing/real-ots/up` when the server's sources are missing.
const NO_SOURCES: i32 = 3;

/// A running genuine server and its account.
pub struct Genuine {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The account's email (HTTP Basic username).
    pub email: String,
    /// The account's API token.
    pub token: String,
    /// The `up` directory; `None` for a server named by `OTS_REAL_SERVER`.
    dir: Option<PathBuf>,
    /// Whether it serves the recipient's web page (`up` printed `web: DIR`, not `web: none`); a
    /// server named by `OTS_REAL_SERVER` is taken to (the published image does).
    web: bool,
}

impl Genuine {
    /// Whether the recipient's web page is served (the frontend `testing/real-ots/build-web` built).
    pub fn serves_web(&self) -> bool {
        self.web
    }

    /// Another account (email, token) on this server, for a test that needs one of its own;
    /// `None` on a server named by `OTS_REAL_SERVER`.
    pub fn account(&self, email: &str) -> Option<(String, String)> {
        let dir = self.dir.as_ref()?;
        let out = Command::new(repo_root().join("testing/real-ots/account"))
            .arg(dir)
            .arg(email)
            .output()
            .expect("run testing/real-ots/account");
        assert!(
            out.status.success(),
            "testing/real-ots/account failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let account = stdout
            .lines()
            .find_map(|l| l.strip_prefix("account: "))
            .expect("an `account:` line");
        let (email, token) = account.split_once(':').expect("EMAIL:TOKEN");
        Some((email.to_owned(), token.to_owned()))
    }
}

/// The genuine server of this test binary; `None` (after one line saying how to provide its
/// sources) when they are missing, so the test returns early.
pub fn genuine() -> Option<&'static Genuine> {
    static SERVER: OnceLock<Option<Genuine>> = OnceLock::new();
    let server = SERVER.get_or_init(start).as_ref();
    if server.is_none() {
        println!(
            "skipped: no genuine Onetime Secret server sources (see testing/real-ots/README.md)"
        );
    }
    server
}

fn start() -> Option<Genuine> {
    if let Ok(url) = std::env::var("OTS_REAL_SERVER") {
        let account = std::env::var("OTS_REAL_SERVER_ACCOUNT")
            .expect("OTS_REAL_SERVER needs OTS_REAL_SERVER_ACCOUNT=EMAIL:TOKEN");
        let (email, token) = account.split_once(':').expect("EMAIL:TOKEN");
        return Some(Genuine {
            url: url.trim_end_matches('/').to_owned(),
            email: email.to_owned(),
            token: token.to_owned(),
            dir: None,
            web: true,
        });
    }
    let dir = std::env::temp_dir().join(format!("real-ots-operator-{}", std::process::id()));
    let out = Command::new(repo_root().join("testing/real-ots/up"))
        .arg(&dir)
        .arg("--watch-pid")
        .arg(std::process::id().to_string())
        .output()
        .expect("run testing/real-ots/up");
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(NO_SOURCES) {
        println!("{}", stderr.lines().last().unwrap_or_default());
        return None;
    }
    assert!(
        out.status.success(),
        "testing/real-ots/up failed:\n{stderr}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = |prefix: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no `{prefix}` line in:\n{stdout}"))
            .to_owned()
    };
    let url = line("url: ");
    let account = line("account: ");
    let (email, token) = account.split_once(':').expect("account: EMAIL:TOKEN");
    let web = stdout
        .lines()
        .find_map(|l| l.strip_prefix("web: "))
        .is_some_and(|w| w != "none");
    Some(Genuine {
        url,
        email: email.to_owned(),
        token: token.to_owned(),
        dir: Some(dir),
        web,
    })
}
