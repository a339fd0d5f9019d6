//! The genuine Onetime Secret server for the tests that hold this one to it: the server
//! `OTS_REAL_SERVER` names (with `OTS_REAL_SERVER_ACCOUNT=EMAIL:TOKEN`), else one started by
//! `testing/real-ots/up` (built on first use) and stopped when dropped, or by `up`'s watchdog
//! when the test binary exits.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

/// The account's email (the genuine server makes its own token).
pub const EMAIL: &str = "ots-operator@example.com";
/// Exit status of `testing/real-ots/up` and `build` when the sources are missing.
const NO_SOURCES: i32 = 3;

/// A running genuine server and its account.
pub struct Genuine {
    /// The `up` directory; `None` for a server given by `OTS_REAL_SERVER`.
    dir: Option<PathBuf>,
    pub url: String,
    pub email: String,
    pub token: String,
}

impl Drop for Genuine {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            let _ = Command::new(script("down")).arg(dir).status();
        }
    }
}

pub fn script(name: &str) -> PathBuf {
    std::path::PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("../real-ots")
    .join(name)
}

/// The server named by `OTS_REAL_SERVER` (with `OTS_REAL_SERVER_ACCOUNT=EMAIL:TOKEN`), else one
/// started by `testing/real-ots/up` (built on first use); `None` when its sources are missing.
pub fn start() -> Option<Genuine> {
    if let Ok(url) = std::env::var("OTS_REAL_SERVER") {
        let account = std::env::var("OTS_REAL_SERVER_ACCOUNT")
            .expect("OTS_REAL_SERVER needs OTS_REAL_SERVER_ACCOUNT=EMAIL:TOKEN");
        let (email, token) = account.split_once(':').expect("EMAIL:TOKEN");
        return Some(Genuine {
            dir: None,
            url: url.trim_end_matches('/').to_owned(),
            email: email.to_owned(),
            token: token.to_owned(),
        });
    }
    let dir = std::env::temp_dir().join(format!("real-ots-differential-{}", std::process::id()));
    let out = Command::new(script("up"))
        .arg(&dir)
        .arg("--watch-pid")
        .arg(std::process::id().to_string())
        .env("OTS_REAL_ACCOUNT", EMAIL)
        .output()
        .expect("run testing/real-ots/up");
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(NO_SOURCES) {
        println!("skipped: {}", stderr.lines().last().unwrap_or_default());
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
    Some(Genuine {
        dir: Some(dir),
        url,
        email: email.to_owned(),
        token: token.to_owned(),
    })
}
