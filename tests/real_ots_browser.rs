//! The recipient's side: links the operator made (on a real control plane) opened in a real
//! browser (Debian's Chromium, headless) on the genuine Onetime Secret server's own web page
//! (onetimesecret main de53ff8f7 and its Vue frontend, built by `testing/real-ots/build-web`).
//! Every visit is a fresh browser; every test keeps its screenshots under
//! `$CARGO_TARGET_DIR/test-artifacts/real_ots_browser/<test>/`.
//!
//! Ignored by default (as `tests/real_ots_operator.rs`): `cargo test --test real_ots_browser --
//! --ignored`. Without the genuine server's sources each test returns after one line saying how to
//! provide them; without Chromium, playwright-core (`npm ci` in testing/browser) or the built
//! frontend each fails with one line naming what is missing.

mod support;

use k8s_openapi::api::core::v1::Secret;
use serde_json::json;
use support::browser::{Visit, require_browser, shots_dir, visit};
use support::operator::*;
use support::real_ots::{Genuine, genuine};

/// What the genuine page says to a link that no longer works.
const REFUSAL: &str = "This secret has been viewed or expired.";

/// The README's picture of what the recipient sees; `OTS_UPDATE_README_PICTURE=1` makes
/// [`a_link_from_status_reveals_once_then_the_page_refuses`] replace it with its own screenshot.
const README_PICTURE: &str = "docs/recipient-page.png";

/// The genuine server with a browser ready, or `None` (the test returns) without its sources.
fn server() -> Option<&'static Genuine> {
    let server = genuine()?;
    require_browser(server);
    Some(server)
}

/// The operator for `ns` on the genuine server with the account (`auto`: v2 with v1 fallback).
fn operator(ns: &str, server: &Genuine) -> Operator {
    Operator::start(
        ns,
        &server.url,
        &[
            "--ots-api",
            "auto",
            "--ots-username",
            &server.email,
            "--ots-api-token",
            &server.token,
        ],
    )
}

fn link(obj: &ots_operator::resource::OneTimeShare) -> String {
    obj.status
        .as_ref()
        .and_then(|s| s.link.clone())
        .expect("the resource has a link")
}

/// A visit that pressed "Click to reveal" on a plain link and saw `value` in the page's text box.
fn assert_revealed(visit: &Visit, value: &str) {
    assert_eq!(visit.landing, "reveal", "{visit:?}");
    assert!(visit.landing_text.contains("Click to reveal"), "{visit:?}");
    assert!(
        !visit.landing_text.contains(value),
        "the value showed before the click: {visit:?}"
    );
    assert!(!visit.refused, "{visit:?}");
    assert!(
        visit.value.as_deref() == Some(value),
        "the page's text box does not hold the Secret's exact value ({} bytes expected, {:?} bytes seen): {visit:?}",
        value.len(),
        visit.value.as_ref().map(String::len)
    );
}

/// A visit on which the page refused and showed no value.
fn assert_refused(visit: &Visit, value: &str) {
    assert_eq!(visit.landing, "refused", "{visit:?}");
    assert!(visit.refused, "{visit:?}");
    assert!(visit.landing_text.contains(REFUSAL), "{visit:?}");
    assert!(visit.value.is_none(), "{visit:?}");
    assert!(
        !visit.landing_text.contains(value),
        "the refusal page shows the value"
    );
}

/// The genuine server's own record of a receipt (`GET /api/v2/receipt/KEY` as the account), raw.
async fn genuine_receipt(server: &Genuine, metadata_key: &str) -> serde_json::Value {
    let answer = reqwest::Client::new()
        .get(format!("{}/api/v2/receipt/{metadata_key}", server.url))
        .basic_auth(&server.email, Some(&server.token))
        .send()
        .await
        // reqwest's errors quote the address, which holds the metadata key.
        .map_err(reqwest::Error::without_url)
        .expect("ask the genuine server for the receipt");
    assert!(
        answer.status().is_success(),
        "the receipt: HTTP {}",
        answer.status()
    );
    answer
        .json()
        .await
        .map_err(reqwest::Error::without_url)
        .expect("the receipt's JSON")
}

/// The link of a status, opened: "Click to reveal", the exact value, Received in status; a second
/// visit from a fresh browser sees the page's refusal and no value.
#[tokio::test]
#[ignore = "runs the genuine Onetime Secret server and Chromium: -- --ignored"]
async fn a_link_from_status_reveals_once_then_the_page_refuses() {
    let Some(server) = server() else { return };
    let shots = shots_dir("a_link_from_status_reveals_once_then_the_page_refuses");
    let (client, ns) = setup("browser-status").await;
    let _operator = operator(&ns, server);
    let value = "p@ss w0rd <&> \"quoted\" ünïcode";
    let shared = shared_db(&client, &ns, "db", value.as_bytes(), json!({"ttl": "1h"})).await;
    let first = visit(&link(&shared), &[], true, &shots, "01-first-visit").await;
    assert_revealed(&first, value);
    wait_for(&client, &ns, "db", "Received", |o| phase(o) == "Received").await;
    let second = visit(&link(&shared), &[], true, &shots, "02-second-visit").await;
    assert_refused(&second, value);
    if std::env::var_os("OTS_UPDATE_README_PICTURE").is_some() {
        let revealed = first
            .shots
            .last()
            .expect("a screenshot of the revealed value");
        let picture = support::cluster::repo_root().join(README_PICTURE);
        std::fs::copy(revealed, &picture).expect("copy the screenshot into docs/");
        println!("README picture updated: {}", picture.display());
    }
}

/// A passphrase link: the page refuses a wrong passphrase ("Incorrect passphrase") and reveals
/// the value with the right one.
#[tokio::test]
#[ignore = "runs the genuine Onetime Secret server and Chromium: -- --ignored"]
async fn a_wrong_passphrase_is_refused_by_the_page_and_the_right_one_reveals() {
    let Some(server) = server() else { return };
    let shots = shots_dir("a_wrong_passphrase_is_refused_by_the_page_and_the_right_one_reveals");
    let (client, ns) = setup("browser-passphrase").await;
    let _operator = operator(&ns, server);
    create_secret(&client, &ns, "pass", &[("passphrase", b"correct-horse")]).await;
    let value = "behind-a-passphrase";
    let shared = shared_db(
        &client,
        &ns,
        "db",
        value.as_bytes(),
        json!({"ttl": "1h", "passphraseSecretRef": {"name": "pass", "key": "passphrase"}}),
    )
    .await;
    let seen = visit(
        &link(&shared),
        &["wrong-horse", "correct-horse"],
        true,
        &shots,
        "01-passphrase",
    )
    .await;
    assert_eq!(seen.landing, "passphrase", "{seen:?}");
    assert!(!seen.landing_text.contains(value), "{seen:?}");
    assert_eq!(seen.passphrase_refusals, 1, "{seen:?}");
    assert_eq!(
        seen.passphrase_refusal_text.as_deref(),
        Some("Incorrect passphrase"),
        "{seen:?}"
    );
    assert!(seen.value.as_deref() == Some(value), "{seen:?}");
    wait_for(&client, &ns, "db", "Received", |o| phase(o) == "Received").await;
}

/// The page loaded but "Click to reveal" not pressed: the genuine server records a preview (its
/// receipt keeps `state: new` and gets `previewed` and `details.first_access`); status says what
/// the server says: `secretState` is the receipt's state, `openedAt` its first access, the phase
/// stays Shared, and the link still reveals the value afterwards.
#[tokio::test]
#[ignore = "runs the genuine Onetime Secret server and Chromium: -- --ignored"]
async fn a_page_opened_but_not_revealed_shows_opened_at_and_the_genuine_state() {
    let Some(server) = server() else { return };
    let shots = shots_dir("a_page_opened_but_not_revealed_shows_opened_at_and_the_genuine_state");
    let (client, ns) = setup("browser-preview").await;
    let _operator = operator(&ns, server);
    let value = "not-yet-revealed";
    let shared = shared_db(&client, &ns, "db", value.as_bytes(), json!({"ttl": "1h"})).await;
    let key = metadata_key(&shared);
    assert!(
        shared.status.as_ref().unwrap().opened_at.is_none(),
        "openedAt before anyone opened the link"
    );
    let seen = visit(&link(&shared), &[], false, &shots, "01-not-revealed").await;
    assert_eq!(seen.landing, "reveal", "{seen:?}");
    assert!(seen.value.is_none() && !seen.landing_text.contains(value));

    let opened = wait_for(&client, &ns, "db", "openedAt", |o| {
        o.status.as_ref().is_some_and(|s| s.opened_at.is_some())
    })
    .await;
    let receipt = genuine_receipt(server, &key).await;
    let record = &receipt["record"];
    let first_access = receipt["details"]["first_access"]
        .as_f64()
        .expect("the genuine receipt records the first access") as i64;
    assert!(
        record["previewed"].as_i64().is_some(),
        "the genuine server records a preview: {record}"
    );
    let status = opened.status.as_ref().unwrap();
    assert_eq!(
        status.secret_state.as_deref(),
        record["state"].as_str(),
        "status.secretState against the genuine receipt's state"
    );
    assert_eq!(
        status.opened_at.as_ref().map(|t| t.0.as_second()),
        Some(first_access),
        "status.openedAt against the genuine receipt's first access"
    );
    assert_eq!(phase(&opened), "Shared");
    assert!(status.received_at.is_none(), "{status:?}");

    let later = visit(&link(&shared), &[], true, &shots, "02-revealed-later").await;
    assert_revealed(&later, value);
}

/// `spec.linkSecretRef`: the link kept in a Secret opens on the page and reveals the value.
#[tokio::test]
#[ignore = "runs the genuine Onetime Secret server and Chromium: -- --ignored"]
async fn a_link_from_a_link_secret_reveals_the_value() {
    let Some(server) = server() else { return };
    let shots = shots_dir("a_link_from_a_link_secret_reveals_the_value");
    let (client, ns) = setup("browser-link-secret").await;
    let _operator = operator(&ns, server);
    let value = "via-link-secret";
    create_secret(&client, &ns, "db", &[("password", value.as_bytes())]).await;
    create_share(
        &client,
        &ns,
        "handoff",
        json!({"secretRef": {"name": "db", "key": "password"}, "linkSecretRef": {"name": "handoff-link"}}),
    )
    .await;
    wait_for(&client, &ns, "handoff", "Shared", |o| phase(o) == "Shared").await;
    let secrets: kube::Api<Secret> = kube::Api::namespaced(client.clone(), &ns);
    let link = secrets
        .get("handoff-link")
        .await
        .expect("the link Secret")
        .data
        .and_then(|d| d.get("link").cloned())
        .expect("a link key");
    let link = String::from_utf8(link.0).expect("text");
    let seen = visit(&link, &[], true, &shots, "01-link-secret").await;
    assert_revealed(&seen, value);
}

/// `kubectl ots share --wait` prints a link; opened in the browser it reveals the value.
#[tokio::test]
#[ignore = "runs the genuine Onetime Secret server and Chromium: -- --ignored"]
async fn a_link_from_kubectl_ots_share_wait_reveals_the_value() {
    let Some(server) = server() else { return };
    let shots = shots_dir("a_link_from_kubectl_ots_share_wait_reveals_the_value");
    let (client, ns) = setup("browser-plugin").await;
    let _operator = operator(&ns, server);
    let value = "from-the-plugin";
    create_secret(&client, &ns, "db", &[("password", value.as_bytes())]).await;
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubectl-ots"))
        .arg("--kubeconfig")
        .arg(support::cluster::kubeconfig_path())
        .args([
            "-n", &ns, "share", "db", "--key", "password", "--ttl", "1h", "--wait",
        ])
        .env_remove("KUBECONFIG")
        .output()
        .await
        .expect("run kubectl-ots");
    assert!(
        out.status.success(),
        "kubectl ots share --wait failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let link = stdout
        .split_whitespace()
        .find(|w| w.starts_with(&format!("{}/secret/", server.url)))
        .expect("kubectl ots share --wait printed a link of the genuine server")
        .to_owned();
    let seen = visit(&link, &[], true, &shots, "01-kubectl-ots").await;
    assert_revealed(&seen, value);
}

/// `spec.generate`: the page reveals exactly the value the operator wrote into the Secret.
#[tokio::test]
#[ignore = "runs the genuine Onetime Secret server and Chromium: -- --ignored"]
async fn a_generated_value_reveals_exactly_what_the_secret_holds() {
    let Some(server) = server() else { return };
    let shots = shots_dir("a_generated_value_reveals_exactly_what_the_secret_holds");
    let (client, ns) = setup("browser-generate").await;
    let _operator = operator(&ns, server);
    create_share(
        &client,
        &ns,
        "app-token",
        json!({"secretRef": {"name": "app", "key": "token"}, "generate": {"length": 40}}),
    )
    .await;
    let shared = wait_shared(&client, &ns, "app-token").await;
    let secrets: kube::Api<Secret> = kube::Api::namespaced(client.clone(), &ns);
    let value = secrets
        .get("app")
        .await
        .expect("the generated Secret")
        .data
        .and_then(|d| d.get("token").cloned())
        .expect("a token key");
    let value = String::from_utf8(value.0).expect("text");
    assert_eq!(value.len(), 40);
    let seen = visit(&link(&shared), &[], true, &shots, "01-generated").await;
    assert_revealed(&seen, &value);
}

/// No `secretRef.key`: the page shows the sorted KEY=VALUE lines exactly, and a multi-line
/// value (a PEM block) among them as a here-document (`KEY<<EOF` ... `EOF`), whose lines read as
/// the certificate's, not as keys; the screenshot shows how the person reads it.
#[tokio::test]
#[ignore = "runs the genuine Onetime Secret server and Chromium: -- --ignored"]
async fn all_keys_show_as_key_value_lines_in_the_page() {
    let Some(server) = server() else { return };
    let shots = shots_dir("all_keys_show_as_key_value_lines_in_the_page");
    let (client, ns) = setup("browser-all-keys").await;
    let _operator = operator(&ns, server);
    let pem = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUb3RzLW9wZXJhdG9yLXRlc3Q=\nbXVsdGktbGluZS12YWx1ZQ==\n-----END CERTIFICATE-----";
    create_secret(
        &client,
        &ns,
        "db",
        &[
            ("username", b"app"),
            ("password", b"s3cr3t=with=equals"),
            ("host", b"db.internal:5432"),
            ("ca.crt", pem.as_bytes()),
        ],
    )
    .await;
    create_share(&client, &ns, "db", json!({"secretRef": {"name": "db"}})).await;
    let shared = wait_shared(&client, &ns, "db").await;
    let seen = visit(&link(&shared), &[], true, &shots, "01-all-keys").await;
    let expected = format!(
        "ca.crt<<EOF\n{pem}\nEOF\nhost=db.internal:5432\npassword=s3cr3t=with=equals\nusername=app"
    );
    assert_revealed(&seen, &expected);
}

/// A share deleted before anyone opened it: its link shows the page's refusal, not the value.
#[tokio::test]
#[ignore = "runs the genuine Onetime Secret server and Chromium: -- --ignored"]
async fn a_deleted_share_link_shows_the_refusal_not_the_value() {
    let Some(server) = server() else { return };
    let shots = shots_dir("a_deleted_share_link_shows_the_refusal_not_the_value");
    let (client, ns) = setup("browser-deleted").await;
    let _operator = operator(&ns, server);
    let value = "deleted-before-reading";
    let shared = shared_db(&client, &ns, "db", value.as_bytes(), json!({"ttl": "1h"})).await;
    delete_share(&client, &ns, "db").await;
    wait_gone(&client, &ns, "db").await;
    let seen = visit(&link(&shared), &[], true, &shots, "01-deleted").await;
    assert_refused(&seen, value);
}

/// The README shows the picture a test took of the recipient's page (not a drawing).
#[test]
fn the_readme_shows_the_recipient_page_a_test_took() {
    let readme = support::readme::readme();
    assert!(
        readme.contains(&format!("]({README_PICTURE})")),
        "README.md does not show {README_PICTURE}"
    );
    let picture = std::fs::read(support::cluster::repo_root().join(README_PICTURE))
        .expect("the README's picture of the recipient's page");
    assert!(
        picture.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{README_PICTURE} is not a PNG"
    );
}
