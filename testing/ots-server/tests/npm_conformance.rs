//! Third-party conformance: the npm package `onetimesecret-api` 1.1.3, which no one here wrote,
//! runs status → share → metadata → reveal → second reveal (fails) → burn of another secret
//! (and more) against the test server; its script checks every answer against the fact sheet.
//! Needs `node` and `npm` on PATH; `npm ci` runs when `node_modules` is missing. The ignored
//! test runs the same script against the genuine server.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

use ots_testserver::{Account, Config, LEGACY_KEY_LEN, Profile, TestServer};

const USER: &str = "conformance@example.com";
const TOKEN: &str = "conformance-token-1234";

fn conformance_dir() -> PathBuf {
    std::path::PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("conformance")
}

/// Serializes `npm ci`: both tests of this binary may need it at once.
static INSTALL: Mutex<()> = Mutex::new(());

fn ensure_installed() {
    let _guard = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = conformance_dir();
    if dir
        .join("node_modules/onetimesecret-api/package.json")
        .exists()
    {
        return;
    }
    let out = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&dir)
        .output()
        .expect("npm must be on PATH for the conformance test");
    assert!(
        out.status.success(),
        "npm ci failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn run_script(server: &TestServer, key_len: usize) -> String {
    run_script_at(&server.url(), USER, TOKEN, key_len)
}

fn run_script_at(url: &str, user: &str, token: &str, key_len: usize) -> String {
    let out = Command::new("node")
        .arg("conformance.js")
        .current_dir(conformance_dir())
        .env("OTS_URL", url)
        .env("OTS_USERNAME", user)
        .env("OTS_API_TOKEN", token)
        .env("OTS_KEY_LEN", key_len.to_string())
        .output()
        .expect("node must be on PATH for the conformance test");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("{stdout}");
    assert!(
        out.status.success(),
        "conformance script failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn config(legacy_keys: bool) -> Config {
    Config {
        accounts: vec![Account::new(USER, TOKEN)],
        legacy_keys,
        ..Config::default()
    }
}

#[test]
fn the_npm_client_sees_the_documented_v1_behaviour() {
    ensure_installed();
    let server = TestServer::start_in_thread(config(false)).unwrap();
    let stdout = run_script(&server, 62);
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
    assert!(!stdout.contains("not ok"), "{stdout}");
    // The client really talked to this server, through the routes it is known to use.
    let stats = server.stats();
    assert!(stats.by_operation["status"] >= 2, "{stats:?}");
    assert!(stats.by_operation["share"] >= 4, "{stats:?}");
    assert!(stats.by_operation["reveal"] >= 4, "{stats:?}");
    assert!(stats.by_operation["receipt"] >= 3, "{stats:?}");
    assert!(stats.by_operation["burn"] >= 2, "{stats:?}");
    assert!(stats.by_operation["recent"] >= 1, "{stats:?}");
    assert!(
        server
            .requests()
            .iter()
            .any(|r| r.path.starts_with("/api/v1/private/") && r.authenticated),
        "the client uses the legacy /private paths with Basic auth"
    );
}

#[test]
fn the_npm_client_works_with_legacy_31_character_keys() {
    ensure_installed();
    let server = TestServer::start_in_thread(config(true)).unwrap();
    let stdout = run_script(&server, 31);
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
}

#[test]
fn the_npm_client_sees_the_same_v1_on_the_old_profiles() {
    ensure_installed();
    for profile in [Profile::V0_23, Profile::V0_20] {
        let server = TestServer::start_in_thread(Config {
            profile,
            ..config(false)
        })
        .unwrap();
        let stdout = run_script(&server, LEGACY_KEY_LEN);
        assert!(stdout.contains(" passed, 0 failed"), "{profile}: {stdout}");
        assert!(!stdout.contains("not ok"), "{profile}: {stdout}");
        assert!(server.stats().by_operation["burn"] >= 2, "{profile}");
    }
}

/// The same script against the genuine server (`testing/real-ots`): what it expects of
/// ots-testserver is what the genuine server answers. Ignored by default, like
/// `real_ots_differential`: `cargo test -p ots-testserver --test npm_conformance -- --ignored`.
#[test]
#[ignore = "runs the genuine Onetime Secret server: -- --ignored"]
fn the_npm_client_sees_the_same_v1_on_the_genuine_server() {
    let Some(server) = common::genuine::start() else {
        return;
    };
    ensure_installed();
    let stdout = run_script_at(&server.url, &server.email, &server.token, 62);
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
    assert!(!stdout.contains("not ok"), "{stdout}");
}
