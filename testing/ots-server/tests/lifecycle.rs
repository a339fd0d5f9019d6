//! Time-driven behaviour on the controllable clock: expiry, receipt lifetime, lockout.

mod common;

use std::time::Duration;

use common::{Api, started, v1_burn_path, v1_secret_path};
use serde_json::{Value, json};

/// A v1 share of `vault` behind the passphrase `correct-horse`: the share answer and the
/// secret's reveal path.
async fn protected_vault(api: &Api) -> (Value, String) {
    let r = api
        .v1_share(&[("secret", "vault"), ("passphrase", "correct-horse")])
        .await;
    let path = v1_secret_path(&r);
    (r, path)
}

/// The right passphrase reveals the vault.
async fn assert_opens(api: &Api, path: &str) {
    let ok = api.form(path, &[("passphrase", "correct-horse")]).await;
    assert_eq!(ok.json["value"], "vault");
}

#[tokio::test]
async fn an_unread_secret_expires_after_its_ttl_and_the_receipt_says_so() {
    let (s, api) = started().await;
    let r = api.v1_share(&[("secret", "short"), ("ttl", "60")]).await;
    let sk = r["secret_key"].as_str().unwrap();
    let mk = r["metadata_key"].as_str().unwrap();
    assert_eq!(s.live_receipts().len(), 1);

    s.advance_clock(Duration::from_secs(59));
    assert_eq!(s.stats().live_secrets, 1, "still live before its ttl");
    s.advance_clock(Duration::from_secs(2));
    assert_eq!(s.stats().live_secrets, 0);
    assert!(s.live_receipts().is_empty());

    api.form(&format!("/api/v1/secret/{sk}"), &[])
        .await
        .assert_v1_error("Unknown secret", None);
    let m = api.get(&format!("/api/v1/private/{mk}")).await;
    assert_eq!(m.status, 200);
    assert_eq!(m.json["state"], "expired");
    assert_eq!(m.json["secret_ttl"], Value::Null);
    assert_eq!(m.json["secret_key"], "");
    assert!(m.json.get("passphrase_required").is_none());
    api.form(&format!("/api/v1/private/{mk}/burn"), &[])
        .await
        .assert_v1_error("Unknown secret", None);
}

#[tokio::test]
async fn receipts_vanish_after_twice_the_ttl() {
    let (s, api) = started().await;
    let r = api.v1_share(&[("secret", "x"), ("ttl", "100")]).await;
    let mk = r["metadata_key"].as_str().unwrap();
    api.v1_reveal(&r, &[]).await;
    s.advance_clock(Duration::from_secs(199));
    assert_eq!(
        api.get(&format!("/api/v1/private/{mk}")).await.json["state"],
        "received"
    );
    s.advance_clock(Duration::from_secs(1));
    api.get(&format!("/api/v1/private/{mk}"))
        .await
        .assert_v1_error("Unknown secret", None);
    api.get(&format!("/api/v2/receipt/{mk}"))
        .await
        .assert_v2_error(404, "RecordNotFound");
}

#[tokio::test]
async fn ttls_count_down_on_the_server_clock() {
    let (s, api) = started().await;
    let r = api.v1_share(&[("secret", "x"), ("ttl", "3600")]).await;
    let mk = r["metadata_key"].as_str().unwrap();
    s.advance_clock(Duration::from_secs(600));
    let m = api.get(&format!("/api/v1/private/{mk}")).await;
    assert_eq!(m.json["ttl"], 3600, "ttl is the granted lifetime");
    let left = m.json["secret_ttl"].as_u64().unwrap();
    assert!(
        (2990..=3000).contains(&left),
        "secret_ttl counts down: {left}"
    );
    let receipt_left = m.json["metadata_ttl"].as_u64().unwrap();
    assert!((6590..=6600).contains(&receipt_left), "{receipt_left}");
    assert!(s.live_receipts()[0].secret_ttl <= 3000);
}

#[tokio::test]
async fn twenty_wrong_passphrases_lock_a_secret_for_thirty_minutes() {
    let (s, api) = started().await;
    let (r, path) = protected_vault(&api).await;
    for _ in 0..20 {
        api.form(&path, &[("passphrase", "battery-staple")])
            .await
            .assert_v1_error("Unknown secret", None);
    }
    api.form(&path, &[("passphrase", "correct-horse")])
        .await
        .assert_v1_error("An unexpected error occurred :[", Some("400"));
    let burn = v1_burn_path(&r);
    api.form(&burn, &[("passphrase", "correct-horse")])
        .await
        .assert_v1_error("An unexpected error occurred :[", Some("400"));
    assert_eq!(
        s.stats().live_secrets,
        1,
        "a lockout does not consume the secret"
    );

    s.advance_clock(Duration::from_secs(1799));
    api.form(&path, &[("passphrase", "correct-horse")])
        .await
        .assert_v1_error("An unexpected error occurred :[", Some("400"));
    s.advance_clock(Duration::from_secs(2));
    assert_opens(&api, &path).await;
}

#[tokio::test]
async fn failures_older_than_ten_minutes_do_not_count_towards_a_lockout() {
    let (s, api) = started().await;
    let (_, path) = protected_vault(&api).await;
    for _ in 0..19 {
        api.form(&path, &[("passphrase", "nope")]).await;
    }
    s.advance_clock(Duration::from_secs(601));
    for _ in 0..19 {
        api.form(&path, &[("passphrase", "nope")]).await;
    }
    assert_opens(&api, &path).await;
}

#[tokio::test]
async fn a_missing_passphrase_is_not_counted_as_a_v1_failure() {
    let (_s, api) = started().await;
    let (_, path) = protected_vault(&api).await;
    for _ in 0..25 {
        api.form(&path, &[])
            .await
            .assert_v1_error("Unknown secret", None);
    }
    assert_opens(&api, &path).await;
}

#[tokio::test]
async fn the_v2_receipt_expires_lazily_too() {
    let (s, api) = started().await;
    let body = api.v2_conceal(json!({"secret": "x", "ttl": 60})).await;
    let mk = body["record"]["receipt"]["identifier"].as_str().unwrap();
    s.advance_clock(Duration::from_secs(60));
    let r = api.get(&format!("/api/v2/receipt/{mk}")).await;
    assert_eq!(r.json["record"]["state"], "expired");
    assert_eq!(r.json["record"]["is_expired"], true);
    assert_eq!(r.json["record"]["is_destroyed"], true);
}
