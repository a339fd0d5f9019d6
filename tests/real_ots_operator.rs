//! The operator end to end (real control plane) against the genuine Onetime Secret server
//! (onetimesecret main de53ff8f7, started by `testing/real-ots/up`): anonymous and with an
//! account, v1, v2 and `auto`; share → reveal → Received; delete unread → the genuine receipt says
//! burned; a passphrase; a ttl above what the server grants; a wrong token.
//!
//! Ignored by default (the genuine server's first build takes ~15–25 min on 2 cores):
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
