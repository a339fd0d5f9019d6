//! The `ots-testserver` binary: the first stdout line, flags, admin API, clean stop on SIGTERM.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

struct Running {
    child: Child,
    url: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(args: &[&str]) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ots-testserver"))
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let line = line.trim_end();
    let url = line
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    let port = url.strip_prefix("http://127.0.0.1:").unwrap();
    assert!(port.parse::<u16>().unwrap() > 0, "{line}");
    Running { child, url }
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "did not exit within 30 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn prints_its_url_serves_accounts_and_stops_on_sigterm() {
    let mut server = start(&[
        "--account",
        "a@example.com:tok-1",
        "--account",
        "b@example.com:tok-2",
    ]);
    let http = common::http();
    let authcheck = |user: &'static str, token: &'static str| {
        let req = http
            .get(format!("{}/api/v1/authcheck", server.url))
            .basic_auth(user, Some(token));
        async move { common::send(req).await }
    };
    assert_eq!(authcheck("a@example.com", "tok-1").await.status, 200);
    assert_eq!(authcheck("b@example.com", "tok-2").await.status, 200);
    authcheck("a@example.com", "tok-2")
        .await
        .assert_v1_error("Not authorized", Some("401"));
    let stats = common::send(http.get(format!("{}/_admin/stats", server.url))).await;
    assert_eq!(stats.json["by_operation"]["authcheck"], 3);

    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(wait_exit(&mut server.child).success());
}

#[tokio::test]
async fn fault_and_key_flags_take_effect() {
    let server = start(&["--legacy-keys", "--no-v2", "--outage"]);
    let http = common::http();
    let down = common::send(http.get(format!("{}/api/v1/status", server.url))).await;
    assert_eq!(down.status, 503);
    let cleared = common::send(
        http.put(format!("{}/_admin/faults", server.url))
            .json(&json!({})),
    )
    .await;
    assert_eq!(cleared.status, 200);
    let share = common::send(
        http.post(format!("{}/api/v1/share", server.url))
            .form(&[("secret", "x")]),
    )
    .await;
    assert_eq!(share.json["secret_key"].as_str().unwrap().len(), 31);
    let v2 = common::send(http.get(format!("{}/api/v2/status", server.url))).await;
    assert_eq!(v2.status, 404);

    let limited = start(&["--rate-limit", "9:600"]);
    let a = common::send(http.get(format!("{}/api/v2/status", limited.url))).await;
    assert_eq!(a.status, 429);
    assert_eq!(a.header("retry-after").as_deref(), Some("9"));
}

#[tokio::test]
async fn profile_plan_guest_size_and_after_store_flags_take_effect() {
    let server = start(&[
        "--account",
        "a@example.com:tok",
        "--plan",
        "free",
        "--guest-routes",
        "off",
        "--max-secret-bytes",
        "5",
        "--after-store",
        "502",
        "--after-store-count",
        "1",
    ]);
    let http = common::http();
    let v2 = |body: serde_json::Value| {
        http.post(format!("{}/api/v2/secret/conceal", server.url))
            .basic_auth("a@example.com", Some("tok"))
            .json(&body)
    };
    let anon = common::send(
        http.post(format!("{}/api/v2/secret/conceal", server.url))
            .json(&json!({"secret": {"secret": "x"}})),
    )
    .await;
    assert_eq!(anon.status, 403);
    assert_eq!(anon.json["error_type"], "GuestRoutesDisabled");
    let long = common::send(v2(json!({"secret": {"secret": "123456"}}))).await;
    assert_eq!(
        long.json["error"],
        "Secret content must be no more than 5 bytes long"
    );
    let month = common::send(v2(json!({"secret": {"secret": "x", "ttl": 2_592_000}}))).await;
    assert_eq!(month.status, 403);
    assert_eq!(month.json["current_plan"], "free_v1");
    let struck = common::send(v2(json!({"secret": {"secret": "x"}}))).await;
    assert_eq!(struck.status, 502);
    let live = common::send(http.get(format!("{}/_admin/live", server.url))).await;
    assert_eq!(live.json.as_array().unwrap().len(), 1);
    let next = common::send(v2(json!({"secret": {"secret": "x"}}))).await;
    assert_eq!(next.status, 200);

    let old = start(&["--profile", "v0.20"]);
    let nf = common::send(http.get(format!("{}/api/v2/receipt/recent", old.url))).await;
    assert_eq!(nf.json, json!({"message": "Not Found"}));
    let share = common::send(
        http.post(format!("{}/api/v1/share", old.url))
            .form(&[("secret", "x")]),
    )
    .await;
    assert_eq!(share.json["secret_key"].as_str().unwrap().len(), 31);
}

#[test]
fn bad_flags_are_refused() {
    for args in [
        vec!["--account", "no-colon"],
        vec!["--error-rate", "1.5"],
        vec!["--rate-limit", "5"],
        vec!["--listen", "not-an-address"],
        vec!["--profile", "v0.24"],
        vec!["--plan", "gold"],
        vec!["--guest-routes", "maybe"],
        vec!["--after-store", "explode"],
        vec!["--after-store-count", "1"],
        vec!["--after-store", "reset", "--after-store-rate", "2"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_ots-testserver"))
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(
            !String::from_utf8_lossy(&out.stdout).starts_with("listening on"),
            "{args:?}"
        );
    }
}
