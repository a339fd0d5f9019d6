//! `/api/v2` against the upstream source: JSON shapes, `continue`, real status codes and
//! `{error, error_type}` bodies.

mod common;

use common::{send, start_with, started, v1_private_path, v2_keys};
use serde_json::{Value, json};

#[tokio::test]
async fn status_and_locales_are_public_version_needs_an_account() {
    let (_s, api) = started().await;
    let st = api.get("/api/v2/status").await;
    assert_eq!(
        st.json,
        json!({"success": true, "status": "nominal", "locale": "en"})
    );
    let bad = api.get_with_token("/api/v2/status", "wrong").await;
    assert_eq!(bad.status, 200, "status takes no credentials");
    assert_eq!(
        api.get("/api/v2/supported-locales").await.json["locale"],
        "en"
    );
    api.get("/api/v2/version")
        .await
        .assert_auth_required("[AUTH_HEADER_MISSING] No authorization header");
    let v = api.get_auth("/api/v2/version").await;
    assert_eq!(v.status, 200);
    assert!(v.json["version"].is_array());
}

#[tokio::test]
async fn conceal_answers_receipt_metadata_and_secret_records() {
    let (_s, api) = started().await;
    let body = api
        .v2_conceal(json!({"secret": "v2 value", "ttl": 3600}))
        .await;
    assert_eq!(body["success"], true);
    let rec = &body["record"];
    assert_eq!(rec["receipt"], rec["metadata"], "metadata is an alias");
    assert_eq!(rec["receipt"]["state"], "new");
    assert_eq!(rec["receipt"]["secret_ttl"], 3600);
    // The secret's lifetime (safe_dump_fields.rb:91-93), not the receipt's 2×ttl.
    assert_eq!(rec["receipt"]["lifespan"], 3600);
    // Records name no custid; an anonymous one has no owner (transcript 32, shared/real-ots).
    assert_eq!(rec["receipt"]["custid"], Value::Null);
    assert_eq!(rec["receipt"]["owner_id"], Value::Null);
    assert_eq!(rec["receipt"]["kind"], "conceal");
    assert_eq!(rec["receipt"]["has_passphrase"], false);
    assert_eq!(rec["secret"]["state"], "new");
    assert_eq!(rec["secret"]["secret_ttl"], 3600);
    assert_eq!(rec["secret"]["identifier"].as_str().unwrap().len(), 62);
    assert_eq!(
        rec["receipt"]["secret_identifier"],
        rec["secret"]["identifier"]
    );
    assert!(rec["secret"].get("secret_value").is_none());
    assert_eq!(rec["share_domain"], Value::Null);
    assert_eq!(body["details"]["kind"], "conceal");
    assert_eq!(body["details"]["recipient"], json!([]));
}

#[tokio::test]
async fn reveal_needs_continue_and_happens_once() {
    let (s, api) = started().await;
    let body = api.v2_conceal(json!({"secret": "only once"})).await;
    let (mk, sk) = v2_keys(&body);
    let path = format!("/api/v2/secret/{sk}/reveal");

    let peek = api.json(&path, json!({})).await;
    assert_eq!(peek.status, 200);
    assert_eq!(peek.json["details"]["show_secret"], false);
    assert!(peek.json["record"].get("secret_value").is_none());
    assert_eq!(s.stats().live_secrets, 1, "no continue, nothing revealed");

    let meta = api.get(&format!("/api/v2/secret/{sk}")).await;
    assert_eq!(meta.status, 200);
    assert_eq!(meta.json["record"]["state"], "new");
    assert!(meta.json["record"].get("secret_value").is_none());

    let shown = api.json(&path, json!({"continue": true})).await;
    assert_eq!(shown.status, 200, "{shown:?}");
    assert_eq!(shown.json["record"]["secret_value"], "only once");
    assert_eq!(shown.json["details"]["show_secret"], true);
    assert_eq!(shown.json["record"]["is_revealed"], true);

    let again = api.json(&path, json!({"continue": true})).await;
    again.assert_record_not_found();
    let meta_gone = api.get(&format!("/api/v2/secret/{sk}")).await;
    meta_gone.assert_record_not_found();

    let r = api.get(&format!("/api/v2/receipt/{mk}")).await;
    assert_eq!(r.json["record"]["state"], "revealed");
    assert_eq!(r.json["record"]["is_received"], true);
    assert!(r.json["record"].get("secret_identifier").is_none());
    // The share link is still built, from the cleared identifier (show_receipt.rb:322-331,
    // 356-363; the genuine server answers `<site>/secret/`).
    assert_eq!(
        r.json["record"]["share_url"],
        format!("{}/secret/", api.base)
    );
}

#[tokio::test]
async fn the_receipt_hides_the_secret_key_of_protected_secrets() {
    let (s, api) = started().await;
    let plain = api.v2_conceal(json!({"secret": "a"})).await;
    let (mk, sk) = v2_keys(&plain);
    let r = api.get(&format!("/api/v2/receipt/{mk}")).await;
    assert_eq!(r.json["record"]["secret_identifier"], sk.as_str());
    assert_eq!(
        r.json["record"]["share_url"],
        format!("{}/secret/{sk}", s.url())
    );
    assert_eq!(
        r.json["record"]["receipt_url"],
        format!("{}/receipt/{mk}", s.url())
    );
    assert_eq!(r.json["details"]["show_secret"], true);

    let guarded = api
        .v2_conceal(json!({"secret": "b", "passphrase": "pass-word"}))
        .await;
    let (gmk, _) = v2_keys(&guarded);
    let g = api.get(&format!("/api/v2/private/{gmk}")).await;
    assert!(g.json["record"].get("secret_identifier").is_none());
    assert_eq!(g.json["details"]["has_passphrase"], true);
}

#[tokio::test]
async fn wrong_passphrases_are_refused_and_lock_the_client_after_five() {
    let (s, api) = started().await;
    let body = api
        .v2_conceal(json!({"secret": "guarded", "passphrase": "right-one"}))
        .await;
    let (_, sk) = v2_keys(&body);
    let path = format!("/api/v2/secret/{sk}/reveal");
    for _ in 0..5 {
        let a = api
            .json(&path, json!({"continue": true, "passphrase": "wrong"}))
            .await;
        assert_eq!(a.status, 422, "{a:?}");
        assert_eq!(a.json["error"], "Incorrect passphrase");
    }
    let locked = api
        .json(&path, json!({"continue": true, "passphrase": "right-one"}))
        .await;
    locked.assert_v2_error(429, "LimitExceeded");
    assert!(locked.json["retry_after"].as_u64().unwrap() > 0);
    assert!(locked.header("retry-after").is_some());
    assert_eq!(s.stats().live_secrets, 1, "locked, not consumed");

    s.advance_clock(std::time::Duration::from_secs(1801));
    let ok = api
        .json(&path, json!({"continue": true, "passphrase": "right-one"}))
        .await;
    assert_eq!(ok.json["record"]["secret_value"], "guarded");
}

#[tokio::test]
async fn burn_needs_continue_and_the_passphrase_of_protected_secrets() {
    let (s, api) = started().await;
    let body = api
        .v2_conceal(json!({"secret": "x", "passphrase": "pass-word"}))
        .await;
    let (mk, sk) = v2_keys(&body);
    let path = format!("/api/v2/receipt/{mk}/burn");
    let wrong = api
        .json(&path, json!({"continue": true, "passphrase": "nope"}))
        .await;
    assert_eq!(wrong.status, 422);
    // burn_secret.rb:141 reads the locale key web.COMMON.error_passphrase, which is there.
    assert_eq!(wrong.json["error"], "Double check that passphrase");

    let unconfirmed = api.json(&path, json!({"passphrase": "pass-word"})).await;
    assert_eq!(unconfirmed.status, 200);
    assert_eq!(unconfirmed.json["success"], false);
    assert_eq!(s.stats().live_secrets, 1);

    let burned = api
        .json(&path, json!({"continue": true, "passphrase": "pass-word"}))
        .await;
    assert_eq!(burned.json["success"], true, "{burned:?}");
    // The receipt as loaded before the burn (shared/ots-api.md §13.10).
    assert_eq!(burned.json["record"]["state"], "new");
    assert_eq!(burned.json["record"]["is_burned"], false);
    assert_eq!(s.stats().live_secrets, 0);
    let reveal = api.v2_reveal(&sk, json!({"continue": true})).await;
    reveal.assert_record_not_found();
    // The receipt is still there, its secret is not: nothing to burn (§13.1).
    let again = api
        .json(&path, json!({"continue": true, "passphrase": "pass-word"}))
        .await;
    assert_eq!(again.status, 200);
    assert_eq!(again.json, json!({"success": true}));
    let receipt = api.get(&format!("/api/v2/receipt/{mk}")).await;
    assert_eq!(receipt.json["record"]["state"], "burned");
}

#[tokio::test]
async fn validation_errors_are_422_with_field() {
    let (s, api) = started().await;
    let missing = api
        .json("/api/v2/secret/conceal", json!({"secret": {}}))
        .await;
    missing.assert_v2_error(422, "missing");
    assert_eq!(
        missing.json["error"],
        "You did not provide anything to share"
    );
    assert_eq!(missing.json["field"], "secret");

    let empty_body = send(api.http.post(api.url("/api/v2/secret/conceal"))).await;
    assert_eq!(empty_body.status, 422);

    let short = api
        .json(
            "/api/v2/secret/conceal",
            json!({"secret": {"secret": "x", "passphrase": "abc"}}),
        )
        .await;
    assert_eq!(short.status, 422);
    assert_eq!(
        short.json["error"],
        "Passphrase must be at least 4 characters long"
    );
    // Upstream names no field here (base_secret_action.rb:407).
    assert_eq!(
        short.json,
        json!({"error": "Passphrase must be at least 4 characters long"})
    );

    let big = api
        .json(
            "/api/v2/secret/conceal",
            json!({"secret": {"secret": "x".repeat(10_001)}}),
        )
        .await;
    assert_eq!(big.status, 422);
    // v2's own message (lib/onetime/logic/base.rb:192), not v1's.
    assert_eq!(
        big.json["error"],
        "Secret content must be no more than 10000 bytes long"
    );

    let scalar = api
        .json("/api/v2/secret/conceal", json!({"secret": "flat"}))
        .await;
    assert_eq!(scalar.status, 422);
    assert_eq!(scalar.json["error"], "Incorrect payload format");

    let recipient = api
        .json(
            "/api/v2/secret/conceal",
            json!({"secret": {"secret": "x", "recipient": ["a@example.com"]}}),
        )
        .await;
    recipient.assert_v2_error(401, "Unauthorized");
    assert_eq!(
        recipient.json["error"],
        "An account is required to send emails."
    );
    assert_eq!(s.stats().live_secrets, 0);
}

#[tokio::test]
async fn credentials_are_checked_and_guest_routes_ignore_them() {
    let (_s, api) = started().await;
    let bad = api
        .v2_conceal_with_token("wrong", json!({"secret": "x"}))
        .await;
    // Otto's auth layer answers before any logic (§11).
    bad.assert_auth_required("[CREDENTIALS_INVALID] Invalid credentials");
    api.get("/api/v2/receipt/recent")
        .await
        .assert_auth_required("[AUTH_HEADER_MISSING] No authorization header");

    let guest = api
        .json_with_token(
            "/api/v2/guest/secret/conceal",
            "wrong",
            json!({"secret": {"secret": "guest"}}),
        )
        .await;
    assert_eq!(guest.status, 200, "{guest:?}");
    assert_eq!(guest.json["record"]["receipt"]["owner_id"], Value::Null);

    let authed = api
        .json_auth(
            "/api/v2/secret/conceal",
            json!({"secret": {"secret": "mine", "recipient": ["friend@example.com"]}}),
        )
        .await;
    assert_eq!(authed.status, 200, "{authed:?}");
    // The owner is the account's objid, not its email; custid stays null (transcript 33).
    assert_eq!(authed.json["record"]["receipt"]["custid"], Value::Null);
    let owner = authed.json["record"]["receipt"]["owner_id"]
        .as_str()
        .unwrap();
    assert_eq!(owner.len(), 36, "a UUID: {owner}");
    assert_eq!(
        authed.json["details"]["recipient"],
        json!(["friend@example.com"])
    );
    let safe = authed.json["details"]["recipient_safe"][0]
        .as_str()
        .unwrap();
    assert!(safe.contains('*') && safe.ends_with("@example.com"));

    let recent = api.get_auth("/api/v2/receipt/recent").await;
    assert_eq!(recent.status, 200);
    assert_eq!(recent.json["count"], 1);
    assert_eq!(
        recent.json["records"][0]["identifier"],
        authed.json["record"]["receipt"]["identifier"]
    );
}

#[tokio::test]
async fn ttl_is_clamped_like_v1() {
    let (_s, api) = started().await;
    for (raw, want) in [
        (json!("0"), 60),
        (json!(""), 60),
        (json!(0), 60),
        (json!(7200), 7200),
    ] {
        let body = api
            .v2_conceal(json!({"secret": "x", "ttl": raw.clone()}))
            .await;
        assert_eq!(body["record"]["secret"]["secret_ttl"], want, "{raw}");
    }
    let default = api.v2_conceal(json!({"secret": "x"})).await;
    assert_eq!(default["record"]["secret"]["secret_ttl"], 604_800);
}

#[tokio::test]
async fn generate_shows_the_value_once_on_the_receipt() {
    let (_s, api) = started().await;
    let g = api
        .json("/api/v2/secret/generate", json!({"secret": {"length": 16}}))
        .await;
    assert_eq!(g.status, 200, "{g:?}");
    assert_eq!(g.json["details"]["kind"], "generate");
    let (mk, sk) = v2_keys(&g.json);
    let first = api.get(&format!("/api/v2/receipt/{mk}")).await;
    let value = first.json["details"]["secret_value"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(value.chars().count(), 16);
    let second = api.get(&format!("/api/v2/receipt/{mk}")).await;
    assert_eq!(second.json["details"]["secret_value"], Value::Null);
    let revealed = api.v2_reveal(&sk, json!({"continue": true})).await;
    assert_eq!(revealed.json["record"]["secret_value"], value.as_str());
}

#[tokio::test]
async fn secret_status_reports_unknown_without_error() {
    let (_s, api) = started().await;
    let body = api.v2_conceal(json!({"secret": "x"})).await;
    let (_, sk) = v2_keys(&body);
    let st = api.get(&format!("/api/v2/secret/{sk}/status")).await;
    assert_eq!(st.json["record"]["state"], "new");
    let list = api
        .json(
            "/api/v2/secret/status",
            json!({"identifiers": format!("{sk},{}", "z".repeat(62))}),
        )
        .await;
    assert_eq!(list.json["count"], 1);
    api.v2_reveal(&sk, json!({"continue": true})).await;
    let gone = api.get(&format!("/api/v2/secret/{sk}/status")).await;
    assert_eq!(gone.status, 200);
    assert_eq!(gone.json, json!({"record": {"state": "unknown"}}));
}

#[tokio::test]
async fn unknown_routes_wrong_methods_and_bad_json_get_v2_errors() {
    let (_s, api) = started().await;
    for (method, path) in [
        ("GET", "/api/v2/nope"),
        ("GET", "/api/v2/authcheck"),
        ("PUT", "/api/v2/secret/conceal"),
        ("GET", "/api/v2/secret/a/b/c"),
        ("DELETE", "/api/v2/receipt/abcdefghijklmnopqrstuvwxyz"),
        ("POST", "/api/v2/status"),
    ] {
        let a = send(api.http.request(method.parse().unwrap(), api.url(path))).await;
        assert_eq!(
            a.json,
            json!({"error": "Not Found", "error_type": "NotFound"}),
            "{method} {path}"
        );
        assert_eq!(a.status, 404);
    }
    let bad = api
        .post_body(
            "/api/v2/secret/conceal",
            Some("application/json"),
            "{not json",
        )
        .await;
    bad.assert_v2_error(400, "BadRequest");
    let huge = api
        .post_body(
            "/api/v2/secret/conceal",
            Some("application/json"),
            vec![b' '; 2 * 1024 * 1024],
        )
        .await;
    huge.assert_v2_error(413, "PayloadTooLarge");
}

#[tokio::test]
async fn a_server_without_v2_answers_404_there_and_still_serves_v1() {
    let (_s, api) = start_with(|c| c.enable_v2 = false).await;
    assert_eq!(api.get("/api/v2/status").await.status, 404);
    assert_eq!(api.get("/api/v1/status").await.status, 200);
}

#[tokio::test]
async fn secrets_created_on_one_version_are_served_by_the_other() {
    let (_s, api) = started().await;
    let v1 = api
        .v1_share(&[("secret", "cross"), ("passphrase", "pass-word")])
        .await;
    let sk = v1["secret_key"].as_str().unwrap();
    let v2 = api
        .v2_reveal(sk, json!({"continue": true, "passphrase": "pass-word"}))
        .await;
    assert_eq!(v2.json["record"]["secret_value"], "cross");
    let m = api.get(&v1_private_path(&v1)).await;
    assert_eq!(m.json["state"], "received");
}
