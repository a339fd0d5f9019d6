//! The operator end to end (real control plane) against the genuine Onetime Secret server
//! (onetimesecret main de53ff8f7, started by `testing/real-ots/up`): anonymous and with an
//! account, v1, v2 and `auto`; share → reveal → Received; delete unread → the genuine receipt says
//! burned; an `ots.dev/burn` value → burned too, the resource kept; a passphrase; a ttl above what the server grants; a wrong token.
//!
//! Ignored by default (the genuine server's first build takes about 11 min on 2 cores):
//! `cargo test --test real_ots_operator -- --ignored`. Without the server's sources each test
//! returns after one line saying how to provide them.

mod support;

use ots_operator::ots::{
    ClientConfig, Credentials, ExposeSecret, OtsClient, SecretState, SecretString,
};
use serde_json::json;
use support::operator::*;
use support::real_ots::{Genuine, genuine};

/// A client of the genuine server: the recipient (anonymous) or the link's creator (the account).
fn ots(server: &Genuine, account: bool) -> OtsClient {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut config = ClientConfig::new(server.url.parse().expect("url"));
    if account {
        config = config.with_credentials(Credentials::new(
            server.email.clone(),
            SecretString::from(server.token.clone()),
        ));
    }
    OtsClient::new(config).expect("client")
}

/// The operator for `ns` on the genuine server, on `api` (`v1`, `v2`, `auto`), with the account
/// (or this token for it) or anonymous.
fn operator(ns: &str, server: &Genuine, api: &str, token: Option<&str>) -> Operator {
    let mut extra = vec!["--ots-api", api];
    if let Some(token) = token {
        extra.extend(["--ots-username", &server.email, "--ots-api-token", token]);
    }
    Operator::start(ns, &server.url, &extra)
}

/// Opens a link as the recipient does.
async fn open(server: &Genuine, link: &str, passphrase: Option<&str>) -> Result<String, String> {
    let passphrase = passphrase.map(|p| SecretString::from(p.to_owned()));
    ots(server, false)
        .reveal(&secret_key(link), passphrase.as_ref())
        .await
        .map(|v| v.expose_secret().to_owned())
        .map_err(|e| e.to_string())
}

fn link(obj: &ots_operator::resource::OneTimeShare) -> String {
    obj.status
        .as_ref()
        .and_then(|s| s.link.clone())
        .expect("the resource has a link")
}

/// Shares a value, opens its link as the recipient, and waits for Received.
async fn a_revealed_link_turns_received(prefix: &str, api: &str, account: bool) {
    let Some(server) = genuine() else { return };
    let (client, ns) = setup(prefix).await;
    let _operator = operator(&ns, server, api, account.then_some(server.token.as_str()));
    let shared = shared_db(&client, &ns, "db", b"genuine-value", json!({"ttl": "1h"})).await;
    let link = link(&shared);
    assert!(
        link.starts_with(&format!("{}/secret/", server.url)),
        "{link}"
    );
    assert_eq!(shared.status.as_ref().unwrap().ttl_seconds, Some(3600));
    assert_eq!(
        open(server, &link, None).await.as_deref(),
        Ok("genuine-value")
    );
    assert!(open(server, &link, None).await.is_err(), "a second reveal");
    wait_for(&client, &ns, "db", "Received", |o| phase(o) == "Received").await;
}

#[tokio::test]
#[ignore = "runs the genuine Onetime Secret server: -- --ignored"]
async fn v2_anonymous_share_reveal_received() {
    a_revealed_link_turns_received("genuine-v2-anon", "v2", false).await;
}

#[tokio::test]
#[ignore = "runs the genuine Onetime Secret server: -- --ignored"]
async fn v2_account_share_reveal_received() {
    a_revealed_link_turns_received("genuine-v2-account", "v2", true).await;
}

#[tokio::test]
#[ignore = "runs the genuine Onetime Secret server: -- --ignored"]
async fn v1_anonymous_share_reveal_received() {
    a_revealed_link_turns_received("genuine-v1-anon", "v1", false).await;
}

#[tokio::test]
#[ignore = "runs the genuine Onetime Secret server: -- --ignored"]
async fn v1_account_share_reveal_received() {
    a_revealed_link_turns_received("genuine-v1-account", "v1", true).await;
}

#[tokio::test]
#[ignore = "runs the genuine Onetime Secret server: -- --ignored"]
async fn auto_account_share_reveal_received() {
    a_revealed_link_turns_received("genuine-auto", "auto", true).await;
}

/// Deleting a share nobody opened burns its secret: the genuine receipt says so afterwards.
async fn deleting_an_unread_share_burns_it(prefix: &str, api: &str) {
    let Some(server) = genuine() else { return };
    let (client, ns) = setup(prefix).await;
    let _operator = operator(&ns, server, api, Some(&server.token));
    let shared = shared_db(&client, &ns, "db", b"burn-me", json!({"ttl": "1h"})).await;
    let key = metadata_key(&shared);
    delete_share(&client, &ns, "db").await;
    wait_gone(&client, &ns, "db").await;
    let receipt = ots(server, true).receipt(&key).await.expect("the receipt");
    assert_eq!(receipt.state, SecretState::Burned, "{receipt:?}");
    assert!(open(server, &link(&shared), None).await.is_err());
}

#[tokio::test]
#[ignore = "runs the genuine Onetime Secret server: -- --ignored"]
async fn v2_deleting_an_unread_share_burns_it() {
    deleting_an_unread_share_burns_it("genuine-burn-v2", "v2").await;
}

#[tokio::test]
#[ignore = "runs the genuine Onetime Secret server: -- --ignored"]
async fn v1_deleting_an_unread_share_burns_it() {
    deleting_an_unread_share_burns_it("genuine-burn-v1", "v1").await;
}

/// A new `ots.dev/burn` value burns the unread secret and keeps the resource (Burned): the
/// genuine receipt says burned, and the link reveals nothing.
#[tokio::test]
#[ignore = "runs the genuine Onetime Secret server: -- --ignored"]
async fn v2_the_burn_annotation_burns_an_unread_share_and_keeps_it() {
    let Some(server) = genuine() else { return };
    let (client, ns) = setup("genuine-burn-annotation").await;
    let _operator = operator(&ns, server, "v2", Some(&server.token));
    let shared = shared_db(&client, &ns, "db", b"burn-me-too", json!({"ttl": "1h"})).await;
    let key = metadata_key(&shared);
    shares(&client, &ns)
        .patch(
            "db",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"metadata": {"annotations": {"ots.dev/burn": "b1"}}})),
        )
        .await
        .expect("annotate");
    wait_for(&client, &ns, "db", "Burned", |o| {
        phase(o) == "Burned"
            && o.status.as_ref().and_then(|s| s.burn_token.as_deref()) == Some("b1")
    })
    .await;
    let receipt = ots(server, true).receipt(&key).await.expect("the receipt");
    assert_eq!(receipt.state, SecretState::Burned, "{receipt:?}");
    assert!(open(server, &link(&shared), None).await.is_err());
}

/// Deleting a share whose link was just opened releases it; no BurnFailed (nothing to burn).
#[tokio::test]
#[ignore = "runs the genuine Onetime Secret server: -- --ignored"]
async fn deleting_right_after_a_reveal_releases_without_burn_failed() {
    let Some(server) = genuine() else { return };
    let (client, ns) = setup("genuine-opened-delete").await;
    let _operator = operator(&ns, server, "auto", Some(&server.token));
    let shared = shared_db(&client, &ns, "db", b"opened", json!({"ttl": "1h"})).await;
    assert_eq!(
        open(server, &link(&shared), None).await.as_deref(),
        Ok("opened")
    );
    delete_opened_and_expect_release(&client, &ns, "db", "the genuine server").await;
}

/// A passphrase-protected link: a wrong passphrase reveals nothing (and does not consume it),
/// the right one reveals the value.
#[tokio::test]
#[ignore = "runs the genuine Onetime Secret server: -- --ignored"]
async fn a_wrong_passphrase_reveals_nothing_and_the_right_one_does() {
    let Some(server) = genuine() else { return };
    let (client, ns) = setup("genuine-passphrase").await;
    let _operator = operator(&ns, server, "auto", Some(&server.token));
    create_secret(&client, &ns, "pass", &[("passphrase", b"correct-horse")]).await;
    let shared = shared_db(
        &client,
        &ns,
        "db",
        b"behind-a-passphrase",
        json!({"ttl": "1h", "passphraseSecretRef": {"name": "pass", "key": "passphrase"}}),
    )
    .await;
    assert_eq!(
        shared.status.as_ref().unwrap().passphrase_protected,
        Some(true)
    );
    let link = link(&shared);
    assert!(open(server, &link, Some("wrong-horse")).await.is_err());
    assert!(open(server, &link, None).await.is_err());
    assert_eq!(
        open(server, &link, Some("correct-horse")).await.as_deref(),
        Ok("behind-a-passphrase")
    );
    wait_for(&client, &ns, "db", "Received", |o| phase(o) == "Received").await;
}

/// Anonymous callers get at most 7 days on the genuine server: status shows what was granted.
#[tokio::test]
#[ignore = "runs the genuine Onetime Secret server: -- --ignored"]
async fn a_ttl_above_what_the_server_grants_shows_the_granted_lifetime() {
    let Some(server) = genuine() else { return };
    let (client, ns) = setup("genuine-clamp").await;
    let _operator = operator(&ns, server, "v2", None);
    let shared = shared_db(&client, &ns, "db", b"long", json!({"ttl": "30d"})).await;
    assert_eq!(
        shared.status.as_ref().unwrap().ttl_seconds,
        Some(7 * 86_400)
    );
    let (_, _, message) = ready(&shared).unwrap();
    assert!(message.contains("7d instead of the 30d"), "{message}");
}

/// A wrong API token: the share fails as Unauthorized, on v1 and v2.
async fn a_wrong_token_is_unauthorized(prefix: &str, api: &str) {
    let Some(server) = genuine() else { return };
    let (client, ns) = setup(prefix).await;
    let _operator = operator(&ns, server, api, Some("wrongtoken0000000000000000000000"));
    create_secret(&client, &ns, "db", &[("password", b"x")]).await;
    create_share(
        &client,
        &ns,
        "db",
        json!({"secretRef": {"name": "db", "key": "password"}}),
    )
    .await;
    let obj = wait_for(&client, &ns, "db", "a refusal", |o| {
        ready(o).is_some_and(|(status, _, _)| status == "False")
    })
    .await;
    let (_, reason, message) = ready(&obj).unwrap();
    assert_eq!(reason, "Unauthorized", "{message}");
}

#[tokio::test]
#[ignore = "runs the genuine Onetime Secret server: -- --ignored"]
async fn v2_a_wrong_token_is_unauthorized() {
    a_wrong_token_is_unauthorized("genuine-token-v2", "v2").await;
}

#[tokio::test]
#[ignore = "runs the genuine Onetime Secret server: -- --ignored"]
async fn v1_a_wrong_token_is_unauthorized() {
    a_wrong_token_is_unauthorized("genuine-token-v1", "v1").await;
}

/// A value the operator lets through (`--ots-max-secret-bytes 20000`) but the genuine server
/// refuses (10,000 bytes): SecretTooLarge, on v1 and v2.
async fn a_value_too_large_for_the_server_is_secret_too_large(prefix: &str, api: &str) {
    let Some(server) = genuine() else { return };
    let (client, ns) = setup(prefix).await;
    let _operator = Operator::start(
        &ns,
        &server.url,
        &["--ots-api", api, "--ots-max-secret-bytes", "20000"],
    );
    create_secret(&client, &ns, "db", &[("password", &[b'x'; 15_000])]).await;
    create_share(
        &client,
        &ns,
        "db",
        json!({"secretRef": {"name": "db", "key": "password"}}),
    )
    .await;
    let obj = wait_for(&client, &ns, "db", "SecretTooLarge", |o| {
        ready_reason_is(o, "SecretTooLarge")
    })
    .await;
    let (status, _, message) = ready(&obj).unwrap();
    assert_eq!(status, "False", "{message}");
    assert!(message.contains("10000"), "{message}");
}

#[tokio::test]
#[ignore = "runs the genuine Onetime Secret server: -- --ignored"]
async fn v2_a_value_too_large_for_the_server_is_secret_too_large() {
    a_value_too_large_for_the_server_is_secret_too_large("genuine-large-v2", "v2").await;
}

#[tokio::test]
#[ignore = "runs the genuine Onetime Secret server: -- --ignored"]
async fn v1_a_value_too_large_for_the_server_is_secret_too_large() {
    a_value_too_large_for_the_server_is_secret_too_large("genuine-large-v1", "v1").await;
}

/// A changed Secret with `onSecretChange: Reshare`: the old link is burned on the genuine
/// server and the new one reveals the new value.
#[tokio::test]
#[ignore = "runs the genuine Onetime Secret server: -- --ignored"]
async fn a_changed_secret_is_reshared_and_the_old_receipt_is_burned() {
    let Some(server) = genuine() else { return };
    let (client, ns) = setup("genuine-reshare").await;
    let _operator = operator(&ns, server, "auto", Some(&server.token));
    let first = shared_db(
        &client,
        &ns,
        "db",
        b"first",
        json!({"ttl": "1h", "onSecretChange": "Reshare"}),
    )
    .await;
    let old_key = metadata_key(&first);
    update_secret(&client, &ns, "db", &[("password", b"second")]).await;
    wait_event(&client, &ns, "db", "Normal", "Reshared").await;
    let second = wait_for(&client, &ns, "db", "the new link", |o| {
        phase(o) == "Shared"
            && o.status.as_ref().and_then(|s| s.metadata_key.as_deref()) != Some(&old_key)
    })
    .await;
    let old = ots(server, true)
        .receipt(&old_key)
        .await
        .expect("the old receipt");
    assert_eq!(old.state, SecretState::Burned, "{old:?}");
    assert!(open(server, &link(&first), None).await.is_err());
    assert_eq!(
        open(server, &link(&second), None).await.as_deref(),
        Ok("second")
    );
}

/// `spec.generate`: the operator draws the value, and the genuine link reveals exactly it.
#[tokio::test]
#[ignore = "runs the genuine Onetime Secret server: -- --ignored"]
async fn a_generated_value_is_what_the_genuine_link_reveals() {
    let Some(server) = genuine() else { return };
    let (client, ns) = setup("genuine-generate").await;
    let _operator = operator(&ns, server, "auto", Some(&server.token));
    create_share(
        &client,
        &ns,
        "app-token",
        json!({"secretRef": {"name": "app", "key": "token"}, "generate": {"length": 32}}),
    )
    .await;
    let shared = wait_shared(&client, &ns, "app-token").await;
    let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(client.clone(), &ns);
    let value = secrets
        .get("app")
        .await
        .expect("the generated Secret")
        .data
        .unwrap()["token"]
        .0
        .clone();
    let value = String::from_utf8(value).expect("text");
    assert_eq!(value.len(), 32);
    assert_eq!(open(server, &link(&shared), None).await, Ok(value));
}

/// A 60-second link nobody opens: the genuine server lets it expire, and the share says Expired.
#[tokio::test]
#[ignore = "runs the genuine Onetime Secret server: -- --ignored"]
async fn a_short_link_left_unread_expires() {
    let Some(server) = genuine() else { return };
    let (client, ns) = setup("genuine-expiry").await;
    let _operator = operator(&ns, server, "auto", Some(&server.token));
    let shared = shared_db(&client, &ns, "db", b"short-lived", json!({"ttl": "60s"})).await;
    assert_eq!(shared.status.as_ref().unwrap().ttl_seconds, Some(60));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(150);
    loop {
        let obj = shares(&client, &ns).get("db").await.expect("get the share");
        if phase(&obj) == "Expired" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not Expired 150 s after a 60 s link: {:?}",
            obj.status
        );
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    assert!(open(server, &link(&shared), None).await.is_err());
}

/// No `secretRef.key`: every key of the Secret is shared, and the genuine link reveals them as
/// sorted KEY=VALUE lines, exactly.
#[tokio::test]
#[ignore = "runs the genuine Onetime Secret server: -- --ignored"]
async fn all_keys_reveal_as_sorted_key_value_lines() {
    let Some(server) = genuine() else { return };
    let (client, ns) = setup("genuine-all-keys").await;
    let _operator = operator(&ns, server, "v2", Some(&server.token));
    create_secret(
        &client,
        &ns,
        "db",
        &[
            ("username", b"app"),
            ("password", b"s3cr3t=with=equals"),
            ("host", b"db.internal:5432"),
        ],
    )
    .await;
    create_share(&client, &ns, "db", json!({"secretRef": {"name": "db"}})).await;
    let shared = wait_shared(&client, &ns, "db").await;
    assert_eq!(
        open(server, &link(&shared), None).await.as_deref(),
        Ok("host=db.internal:5432\npassword=s3cr3t=with=equals\nusername=app")
    );
}

/// `spec.linkSecretRef`: the link goes into a Secret, not status, and reveals the value.
#[tokio::test]
#[ignore = "runs the genuine Onetime Secret server: -- --ignored"]
async fn a_link_kept_in_a_secret_reveals_the_value() {
    let Some(server) = genuine() else { return };
    let (client, ns) = setup("genuine-link-secret").await;
    let _operator = operator(&ns, server, "auto", Some(&server.token));
    create_secret(&client, &ns, "db", &[("password", b"via-link-secret")]).await;
    create_share(
        &client,
        &ns,
        "handoff",
        json!({"secretRef": {"name": "db", "key": "password"}, "linkSecretRef": {"name": "handoff-link"}}),
    )
    .await;
    let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(client.clone(), &ns);
    let deadline = std::time::Instant::now() + WAIT;
    let link = loop {
        if let Some(secret) = secrets.get_opt("handoff-link").await.expect("get")
            && let Some(link) = secret.data.as_ref().and_then(|d| d.get("link"))
        {
            break String::from_utf8(link.0.clone()).expect("text");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no link Secret in time"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert!(
        link.starts_with(&format!("{}/secret/", server.url)),
        "{link}"
    );
    let obj = wait_for(&client, &ns, "handoff", "Shared", |o| phase(o) == "Shared").await;
    assert!(
        obj.status.as_ref().unwrap().link.is_none(),
        "no link in status"
    );
    assert_eq!(
        open(server, &link, None).await.as_deref(),
        Ok("via-link-secret")
    );
}

/// The orphan sweep on a dedicated account: a live secret of the account that no share records
/// is burned on the genuine server; the one a share records stays live.
#[tokio::test]
#[ignore = "runs the genuine Onetime Secret server: -- --ignored"]
async fn the_orphan_sweep_burns_unrecorded_secrets_of_its_dedicated_account() {
    let Some(server) = genuine() else { return };
    let Some((user, token)) = server.account("sweeper@example.com") else {
        println!("skipped: a second account needs the server of testing/real-ots/up");
        return;
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let robot = OtsClient::new(
        ClientConfig::new(server.url.parse().expect("url")).with_credentials(Credentials::new(
            user.clone(),
            SecretString::from(token.clone()),
        )),
    )
    .expect("client");
    let orphan = robot
        .share(&ots_operator::ots::ShareRequest::new("left-behind"))
        .await
        .expect("an orphan on the dedicated account");
    let (client, ns) = setup("genuine-sweep").await;
    let mut extra = vec!["--ots-api", "auto"];
    extra.extend(sweeping_account(&user, &token, "1s", "2s"));
    let _operator = Operator::start(&ns, &server.url, &extra);
    let kept = shared_db(&client, &ns, "db", b"recorded", json!({"ttl": "1h"})).await;
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let receipt = robot
            .receipt(&orphan.metadata_key)
            .await
            .expect("the orphan's receipt");
        if receipt.state == SecretState::Burned {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the orphan is still {:?}",
            receipt.state
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    let recorded = robot
        .receipt(&metadata_key(&kept))
        .await
        .expect("the kept receipt");
    assert_eq!(recorded.state, SecretState::New, "{recorded:?}");
    assert_eq!(
        open(server, &link(&kept), None).await.as_deref(),
        Ok("recorded")
    );
}

/// `kubectl ots share --wait` against an operator on the genuine server: it prints the link,
/// and the link reveals the value.
#[tokio::test]
#[ignore = "runs the genuine Onetime Secret server: -- --ignored"]
async fn kubectl_ots_share_wait_prints_a_genuine_link() {
    let Some(server) = genuine() else { return };
    let (client, ns) = setup("genuine-plugin").await;
    let _operator = operator(&ns, server, "auto", Some(&server.token));
    create_secret(&client, &ns, "db", &[("password", b"from-the-plugin")]).await;
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
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let link = stdout
        .split_whitespace()
        .find(|w| w.starts_with(&format!("{}/secret/", server.url)))
        .unwrap_or_else(|| panic!("no genuine link in: {stdout}"))
        .to_owned();
    assert_eq!(
        open(server, &link, None).await.as_deref(),
        Ok("from-the-plugin")
    );
}
