//! Profiles, plans, guest routes and limits: each test pins one answer of the real server
//! (de53ff8f7, or tags v0.23.6 / v0.20.5) that `shared/ots-api.md` §13 lists.

mod common;

use std::time::Duration;

use common::{Api, EMAIL, config, send, start, start_with, v1_private_path, v2_keys};
use ots_testserver::{Config, KEY_LEN, LEGACY_KEY_LEN, Plan, Profile};
use serde_json::{Value, json};

fn with(profile: Profile, plan: Plan) -> Config {
    Config {
        profile,
        plan,
        ..config()
    }
}

async fn auth_conceal(api: &Api, secret: Value) -> common::Answer {
    api.json_auth("/api/v2/secret/conceal", json!({ "secret": secret }))
        .await
}

// ---- current (de53ff8f7) ----

#[tokio::test]
async fn v2_burn_of_a_revealed_or_expired_secret_answers_success_with_no_record() {
    let (s, api) = start(config()).await;
    let body = api
        .v2_conceal(json!({"secret": "gone soon", "ttl": 600}))
        .await;
    let (mk, sk) = v2_keys(&body);
    let shown = api.v2_reveal(&sk, json!({"continue": true})).await;
    assert_eq!(shown.json["record"]["secret_value"], "gone soon");
    let burn = api.v2_burn(&mk, json!({"continue": true})).await;
    assert_eq!(burn.status, 200, "{burn:?}");
    assert_eq!(burn.json, json!({"success": true}));
    // v1 says Unknown secret for the same situation.
    let body = api.v2_conceal(json!({"secret": "x", "ttl": 600})).await;
    let (mk2, sk2) = v2_keys(&body);
    api.form(&format!("/api/v1/secret/{sk2}"), &[]).await;
    api.form(&format!("/api/v1/private/{mk2}/burn"), &[])
        .await
        .assert_v1_error("Unknown secret", None);

    let expiring = api.v2_conceal(json!({"secret": "x", "ttl": 600})).await;
    let (mk3, _) = v2_keys(&expiring);
    s.advance_clock(Duration::from_secs(601));
    let burn = api.v2_burn(&mk3, json!({"continue": true})).await;
    assert_eq!(burn.status, 200);
    assert_eq!(burn.json, json!({"success": true}));
}

#[tokio::test]
async fn burn_answers_show_the_receipt_as_loaded_before_the_burn() {
    let (s, api) = start(config()).await;
    let body = api.v2_conceal(json!({"secret": "x", "ttl": 3600})).await;
    let (mk, sk) = v2_keys(&body);
    let burn = api.v2_burn(&mk, json!({"continue": true})).await;
    assert_eq!(burn.status, 200);
    assert_eq!(burn.json["success"], true);
    assert_eq!(burn.json["record"]["state"], "new");
    assert_eq!(burn.json["record"]["is_burned"], false);
    assert_eq!(burn.json["record"]["secret_identifier"], sk.as_str());
    assert_eq!(s.stats().live_secrets, 0, "but the secret is burned");
    let after = api.get(&format!("/api/v2/receipt/{mk}")).await;
    assert_eq!(after.json["record"]["state"], "burned");

    let r = api.v1_share(&[("secret", "y"), ("ttl", "3600")]).await;
    let b = api.v1_burn(&r, &[]).await;
    assert_eq!(b.status, 200);
    assert_eq!(b.json["state"]["state"], "new");
    assert_eq!(b.json["state"]["secret_key"], r["secret_key"]);
    assert_eq!(b.json["state"]["secret_ttl"], Value::Null);
    let m = api.get(&v1_private_path(&r)).await;
    assert_eq!(m.json["state"], "burned");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burn_racing_a_reveal_answers_only_the_real_forms() {
    let (s, api) = start(config()).await;
    let api = std::sync::Arc::new(api);
    for _ in 0..20 {
        let body = api.v2_conceal(json!({"secret": "race"})).await;
        let (mk, sk) = v2_keys(&body);
        let a = api.clone();
        let reveal = tokio::spawn(async move { a.v2_reveal(&sk, json!({"continue": true})).await });
        let burn = api.v2_burn(&mk, json!({"continue": true})).await;
        let reveal = reveal.await.unwrap();
        assert_eq!(burn.status, 200, "{burn:?}");
        let revealed = reveal.json["record"]["secret_value"] == "race";
        match (&burn.json["success"], burn.json.get("record")) {
            // The burn won: the reveal found nothing.
            (Value::Bool(true), Some(rec)) => {
                assert_eq!(rec["state"], "new");
                assert!(!revealed, "{reveal:?}");
                assert_eq!(reveal.json, json!({"error_type": "RecordNotFound"}));
            }
            // The reveal was first: nothing left to burn.
            (Value::Bool(true), None) => assert!(revealed, "{reveal:?}"),
            // The reveal won between the burn's check and its claim.
            (Value::Bool(false), Some(rec)) => {
                assert_eq!(rec["state"], "new");
                assert!(revealed, "{reveal:?}");
            }
            other => panic!("unexpected burn answer {other:?}"),
        }
    }
    assert_eq!(s.stats().live_secrets, 0);
}

#[tokio::test]
async fn free_accounts_asking_v2_for_more_than_fourteen_days_are_refused() {
    let (_s, api) = start(with(Profile::Current, Plan::Free)).await;
    let refused = auth_conceal(&api, json!({"secret": "x", "ttl": 1_209_601})).await;
    assert_eq!(refused.status, 403, "{refused:?}");
    assert_eq!(
        refused.json,
        json!({
            "error": "Feature requires extended default expiration entitlement",
            "error_type": "EntitlementRequired",
            "entitlement": "extended_default_expiration",
            "current_plan": "free_v1",
            "upgrade_to": "identity_plus_v1",
            "error_key": "api.entitlements.errors.extended_default_expiration_required",
        })
    );
    let ok = auth_conceal(&api, json!({"secret": "x", "ttl": 1_209_600})).await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.json["record"]["secret"]["secret_ttl"], 1_209_600);
    // v1 clamps the same request to the plan's 14 days.
    let v1 = api
        .form_auth("/api/v1/share", &[("secret", "x"), ("ttl", "2592000")])
        .await;
    assert_eq!(v1.status, 200);
    assert_eq!(v1.json["ttl"], 1_209_600);
    // Anonymous callers are clamped silently on v2 (base_secret_action.rb:174-182).
    let anon = api
        .v2_conceal(json!({"secret": "x", "ttl": 2_592_000}))
        .await;
    assert_eq!(anon["record"]["secret"]["secret_ttl"], 604_800);
}

#[tokio::test]
async fn paid_accounts_get_thirty_days_and_a_clamp_above_it() {
    let (_s, api) = start(config()).await;
    let month = auth_conceal(&api, json!({"secret": "x", "ttl": 2_592_000})).await;
    assert_eq!(month.status, 200);
    assert_eq!(month.json["record"]["secret"]["secret_ttl"], 2_592_000);
    let more = auth_conceal(&api, json!({"secret": "x", "ttl": 9_999_999})).await;
    assert_eq!(more.status, 200);
    assert_eq!(more.json["record"]["secret"]["secret_ttl"], 2_592_000);
}

#[tokio::test]
async fn the_anonymous_plan_gives_accounts_the_anonymous_cap() {
    let (_s, api) = start(with(Profile::Current, Plan::Anonymous)).await;
    let ten_days = auth_conceal(&api, json!({"secret": "x", "ttl": 864_000})).await;
    assert_eq!(ten_days.status, 200);
    assert_eq!(ten_days.json["record"]["secret"]["secret_ttl"], 604_800);
    let refused = auth_conceal(&api, json!({"secret": "x", "ttl": 1_209_601})).await;
    assert_eq!(refused.status, 403);
    assert_eq!(refused.json["error_type"], "EntitlementRequired");
    assert_eq!(refused.json["current_plan"], "anonymous");
    let v1 = api
        .form_auth("/api/v1/share", &[("secret", "x"), ("ttl", "2592000")])
        .await;
    assert_eq!(v1.json["ttl"], 604_800);
    assert_eq!(v1.json["custid"], EMAIL);
}

#[tokio::test]
async fn guest_routes_off_refuses_anonymous_v2_calls_but_not_accounts_or_v1() {
    let (s, api) = start_with(|c| c.guest_routes = false).await;
    let disabled = json!({
        "error": "Guest API access is disabled",
        "error_type": "GuestRoutesDisabled",
        "code": "GUEST_ROUTES_DISABLED",
    });
    let mine = auth_conceal(&api, json!({"secret": "mine"})).await;
    assert_eq!(mine.status, 200);
    let (mk, sk) = v2_keys(&mine.json);
    for (method, path) in [
        ("POST", "/api/v2/secret/conceal".to_owned()),
        ("POST", "/api/v2/secret/generate".to_owned()),
        ("POST", "/api/v2/guest/secret/conceal".to_owned()),
        ("GET", format!("/api/v2/secret/{sk}")),
        ("POST", format!("/api/v2/secret/{sk}/reveal")),
        ("POST", format!("/api/v2/guest/secret/{sk}/reveal")),
        ("GET", format!("/api/v2/receipt/{mk}")),
        ("GET", format!("/api/v2/guest/receipt/{mk}")),
        ("POST", format!("/api/v2/receipt/{mk}/burn")),
    ] {
        let a = send(
            api.http
                .request(method.parse().unwrap(), api.url(&path))
                .json(&json!({"secret": {"secret": "x"}, "continue": true})),
        )
        .await;
        assert_eq!(a.status, 403, "{method} {path}: {a:?}");
        assert_eq!(a.json, disabled, "{method} {path}");
    }
    assert_eq!(
        s.stats().live_secrets,
        1,
        "nothing created, nothing consumed"
    );
    assert_eq!(api.get("/api/v2/status").await.status, 200);
    let v1 = api.v1_share(&[("secret", "v1 is not gated")]).await;
    assert_eq!(v1["custid"], "anon");
    let revealed = api
        .json_auth(
            &format!("/api/v2/secret/{sk}/reveal"),
            json!({"continue": true}),
        )
        .await;
    assert_eq!(revealed.json["record"]["secret_value"], "mine");
}

#[tokio::test]
async fn unknown_v2_routes_and_missing_records_answer_differently() {
    let (_s, api) = start(config()).await;
    let route = api.get("/api/v2/receipts/abc").await;
    assert_eq!(route.status, 404);
    assert_eq!(
        route.json,
        json!({"error": "Not Found", "error_type": "NotFound"})
    );
    let missing = "z".repeat(62);
    let reveal = api.v2_reveal(&missing, json!({"continue": true})).await;
    reveal.assert_record_not_found();
    let burn = api.v2_burn(&missing, json!({"continue": true})).await;
    burn.assert_record_not_found();
    let receipt = api.get(&format!("/api/v2/receipt/{missing}")).await;
    assert_eq!(receipt.status, 404);
    assert_eq!(
        receipt.json,
        json!({"error": format!("identifier: {missing}"), "error_type": "RecordNotFound"})
    );
}

#[tokio::test]
async fn v2_receipt_ttls_are_the_secrets_lifetime_and_realttl_ends_at_consumption() {
    let (_s, api) = start(config()).await;
    let body = api.v2_conceal(json!({"secret": "x", "ttl": 3600})).await;
    let receipt = &body["record"]["receipt"];
    for field in ["metadata_ttl", "receipt_ttl", "lifespan", "secret_ttl"] {
        assert_eq!(receipt[field], 3600, "{field}");
    }
    let (mk, sk) = v2_keys(&body);
    let before = api.get(&format!("/api/v2/receipt/{mk}")).await;
    assert_eq!(before.json["record"]["lifespan"], 3600);
    assert_eq!(before.json["details"]["secret_realttl"], 3600);
    api.v2_reveal(&sk, json!({"continue": true})).await;
    let after = api.get(&format!("/api/v2/receipt/{mk}")).await;
    assert_eq!(after.json["details"]["secret_realttl"], Value::Null);
    assert_eq!(after.json["record"]["receipt_ttl"], 3600);
}

#[tokio::test]
async fn fetching_the_secret_link_shows_on_the_receipt_as_access_telemetry() {
    let (s, api) = start(config()).await;
    let body = api.v2_conceal(json!({"secret": "watched"})).await;
    let (mk, sk) = v2_keys(&body);
    let fresh = api.get(&format!("/api/v2/receipt/{mk}")).await;
    assert_eq!(fresh.json["details"]["view_count"], 0);
    assert_eq!(fresh.json["details"]["first_access"], Value::Null);
    assert_eq!(fresh.json["record"]["is_previewed"], false);
    // Receipt views themselves are not accesses.
    assert_eq!(
        api.get(&format!("/api/v2/receipt/{mk}")).await.json["details"]["view_count"],
        0
    );
    api.get(&format!("/api/v2/secret/{sk}")).await;
    s.advance_clock(Duration::from_secs(10));
    api.get(&format!("/api/v2/secret/{sk}/status")).await;
    let seen = api.get(&format!("/api/v2/receipt/{mk}")).await;
    assert_eq!(seen.json["details"]["view_count"], 2);
    let first = seen.json["details"]["first_access"].as_f64().unwrap();
    let last = seen.json["details"]["last_access"].as_f64().unwrap();
    assert_eq!(last - first, 10.0);
    assert_eq!(seen.json["record"]["is_previewed"], true);
    assert_eq!(
        seen.json["record"]["state"], "new",
        "an access is not a reveal"
    );
    assert_eq!(s.stats().live_secrets, 1);
}

#[tokio::test]
async fn v2_status_takes_no_credentials_but_version_and_v1_authcheck_do() {
    let (_s, api) = start(config()).await;
    let status = api.get_with_token("/api/v2/status", "not-the-token").await;
    assert_eq!(
        status.json,
        json!({"success": true, "status": "nominal", "locale": "en"})
    );
    let version = api.get_with_token("/api/v2/version", "not-the-token").await;
    version.assert_auth_required("[CREDENTIALS_INVALID] Invalid credentials");
    api.get("/api/v2/version")
        .await
        .assert_auth_required("[AUTH_HEADER_MISSING] No authorization header");
    assert_eq!(api.get_auth("/api/v2/version").await.status, 200);
    api.get("/api/v1/authcheck")
        .await
        .assert_v1_error("Not authorized", Some("401"));
    assert_eq!(api.get_auth("/api/v1/authcheck").await.status, 200);
}

#[tokio::test]
async fn max_secret_bytes_limits_v2_in_bytes_and_v1_keeps_ten_thousand() {
    let (_s, api) = start_with(|c| c.max_secret_bytes = 100).await;
    let big = api.v2_conceal_raw(json!({"secret": "x".repeat(101)})).await;
    assert_eq!(big.status, 422);
    assert_eq!(
        big.json,
        json!({"error": "Secret content must be no more than 100 bytes long", "field": "secret"})
    );
    // 51 two-byte characters are 102 bytes.
    let wide = api.v2_conceal_raw(json!({"secret": "é".repeat(51)})).await;
    assert_eq!(wide.status, 422);
    assert_eq!(
        api.v2_conceal_raw(json!({"secret": "x".repeat(100)}))
            .await
            .status,
        200
    );
    let v1 = api.v1_share(&[("secret", &"x".repeat(5000))]).await;
    assert!(v1["secret_key"].is_string());
    api.form("/api/v1/share", &[("secret", &"x".repeat(10_001))])
        .await
        .assert_v1_error(
            "Secret value exceeds the maximum size of 10000 bytes",
            Some("400"),
        );
    let (_default_server, default) = start(config()).await;
    let over = default
        .v2_conceal_raw(json!({"secret": "x".repeat(10_001)}))
        .await;
    assert_eq!(
        over.json["error"],
        "Secret content must be no more than 10000 bytes long"
    );
}

// ---- v0.23 (tag v0.23.6) ----

#[tokio::test]
async fn v0_23_reports_a_failed_burn_as_http_500_with_a_message() {
    let (_s, api) = start(with(Profile::V0_23, Plan::Paid)).await;
    let c = api.v2_conceal(json!({"secret": "old", "ttl": 3600})).await;
    assert_eq!(c["success"], true);
    assert!(c["shrimp"].is_string());
    assert_eq!(c["custid"], "anon");
    let mk = c["record"]["metadata"]["key"].as_str().unwrap().to_owned();
    let sk = c["record"]["secret"]["key"].as_str().unwrap().to_owned();
    assert_eq!(mk.len(), LEGACY_KEY_LEN);
    assert_eq!(sk.len(), LEGACY_KEY_LEN);
    assert_eq!(c["record"]["metadata"]["state"], "new");
    assert_eq!(c["record"]["metadata"]["metadata_ttl"], 7200);
    assert!(c["record"].get("receipt").is_none());

    let shown = api.v2_reveal(&sk, json!({"continue": true})).await;
    assert_eq!(shown.json["success"], true);
    assert_eq!(shown.json["record"]["secret_value"], "old");
    let burn = api
        .json(
            &format!("/api/v2/private/{mk}/burn"),
            json!({"continue": true}),
        )
        .await;
    assert_eq!(burn.status, 500, "{burn:?}");
    assert_eq!(burn.json["message"], "Secret could not be burned.");
    assert_eq!(burn.json["success"], false);
    assert!(burn.json["shrimp"].is_string());
    assert_eq!(burn.json.as_object().unwrap().len(), 3, "{burn:?}");
}

#[tokio::test]
async fn v0_23_burns_answer_the_metadata_as_loaded_before_the_burn() {
    let (s, api) = start(with(Profile::V0_23, Plan::Paid)).await;
    let c = api.v2_conceal(json!({"secret": "old"})).await;
    let mk = c["record"]["metadata"]["key"].as_str().unwrap().to_owned();
    let unconfirmed = api.v2_burn(&mk, json!({})).await;
    assert_eq!(unconfirmed.status, 500, "no continue, not greenlighted");
    assert_eq!(s.stats().live_secrets, 1);
    let burn = api.v2_burn(&mk, json!({"continue": true})).await;
    assert_eq!(burn.status, 200);
    assert_eq!(burn.json["success"], true);
    assert_eq!(burn.json["record"]["state"], "new");
    assert_eq!(
        burn.json["record"]["burn_url"],
        format!("{}/private/{mk}/burn", s.url())
    );
    assert_eq!(s.stats().live_secrets, 0);
}

#[tokio::test]
async fn v0_23_validation_errors_are_422_with_shrimp_and_message() {
    let (_s, api) = start(with(Profile::V0_23, Plan::Paid)).await;
    let short = api
        .v2_conceal_raw(json!({"secret": "x", "passphrase": "abc"}))
        .await;
    assert_eq!(short.status, 422);
    assert_eq!(
        short.json["message"],
        "Passphrase must be at least 4 characters long"
    );
    assert_eq!(short.json["success"], false);
    assert!(short.json["shrimp"].is_string());
    assert!(short.json.get("error_type").is_none());
    let empty = api.v2_conceal_raw(json!({})).await;
    assert_eq!(empty.status, 422);
    assert_eq!(
        empty.json["message"],
        "You did not provide anything to share"
    );
}

#[tokio::test]
async fn v0_23_missing_records_bad_credentials_and_unknown_routes() {
    let (_s, api) = start(with(Profile::V0_23, Plan::Paid)).await;
    let key = "k".repeat(31);
    let reveal = api.v2_reveal(&key, json!({"continue": true})).await;
    assert_eq!(reveal.status, 404);
    assert_eq!(
        reveal.json,
        json!({"message": "Unknown secret", "secret_key": key})
    );
    let bad = api
        .v2_conceal_with_token("wrong", json!({"secret": "x"}))
        .await;
    assert_eq!(bad.status, 403);
    assert_eq!(bad.json, json!({"message": "Not authorized"}));
    let route = api.get("/api/v2/nope").await;
    assert_eq!(route.status, 404);
    assert_eq!(route.json, json!({"error": "Not Found"}));
    let status = api.get("/api/v2/status").await;
    assert_eq!(status.json, json!({"status": "nominal", "locale": "en"}));
}

#[tokio::test]
async fn v0_23_clamps_a_ttl_above_the_plan_instead_of_refusing_it() {
    let (_s, api) = start(with(Profile::V0_23, Plan::Free)).await;
    let a = auth_conceal(&api, json!({"secret": "x", "ttl": 2_592_000})).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.json["record"]["secret"]["secret_ttl"], 1_209_600);
    assert_eq!(a.json["custid"], EMAIL);
}

#[tokio::test]
async fn v0_23_guest_routes_off_is_a_form_error_on_guest_paths_only() {
    let (_s, api) = start(Config {
        guest_routes: false,
        ..with(Profile::V0_23, Plan::Paid)
    })
    .await;
    let guest = api
        .json(
            "/api/v2/guest/secret/conceal",
            json!({"secret": {"secret": "x"}}),
        )
        .await;
    assert_eq!(guest.status, 422);
    assert_eq!(guest.json["message"], "Guest API access is not available");
    assert_eq!(
        api.v2_conceal_raw(json!({"secret": "x"})).await.status,
        200,
        "v0.23 did not gate the regular routes"
    );
}

// ---- v0.20 (tag v0.20.5) ----

#[tokio::test]
async fn v0_20_has_private_routes_only_and_answers_unknown_routes_with_message() {
    let (s, api) = start(with(Profile::V0_20, Plan::Paid)).await;
    let c = api.v2_conceal(json!({"secret": "older"})).await;
    let mk = c["record"]["metadata"]["key"].as_str().unwrap().to_owned();
    assert_eq!(c["details"]["recipient"], json!([]));
    assert!(c["details"].get("memo").is_none());
    for path in [
        format!("/api/v2/receipt/{mk}"),
        "/api/v2/receipt/recent".to_owned(),
        format!("/api/v2/guest/receipt/{mk}"),
    ] {
        let a = api.get(&path).await;
        assert_eq!(a.status, 404, "{path}");
        assert_eq!(a.json, json!({"message": "Not Found"}), "{path}");
    }
    let burn_receipt = api.v2_burn(&mk, json!({"continue": true})).await;
    assert_eq!(burn_receipt.json, json!({"message": "Not Found"}));
    let status_list = api
        .json("/api/v2/secret/status", json!({"identifiers": "x"}))
        .await;
    assert_eq!(status_list.json, json!({"message": "Not Found"}));
    let m = api.get(&format!("/api/v2/private/{mk}")).await;
    assert_eq!(m.status, 200);
    assert_eq!(m.json["success"], true);
    assert_eq!(m.json["record"]["state"], "new");
    assert_eq!(
        m.json["record"]["metadata_url"],
        format!("{}/private/{mk}", s.url())
    );
    let private_burn = format!("/api/v2/private/{mk}/burn");
    let burn = api.json(&private_burn, json!({"continue": true})).await;
    assert_eq!(burn.status, 200);
    assert_eq!(burn.json["success"], true);
    let again = api.json(&private_burn, json!({"continue": true})).await;
    assert_eq!(again.status, 500);
    assert_eq!(again.json["message"], "Secret could not be burned.");
    assert_eq!(
        api.get("/api/v2/status").await.json,
        json!({"status": "nominal", "locale": "en"})
    );
}

#[tokio::test]
async fn old_profiles_issue_31_character_keys_and_current_62() {
    for (profile, len) in [
        (Profile::Current, KEY_LEN),
        (Profile::V0_23, LEGACY_KEY_LEN),
        (Profile::V0_20, LEGACY_KEY_LEN),
    ] {
        let (_s, api) = start(with(profile, Plan::Paid)).await;
        let r = api.v1_share(&[("secret", "x")]).await;
        assert_eq!(r["secret_key"].as_str().unwrap().len(), len, "{profile}");
    }
}

#[test]
fn profiles_and_plans_parse_from_their_flag_names() {
    for p in [Profile::Current, Profile::V0_23, Profile::V0_20] {
        assert_eq!(p.name().parse::<Profile>().unwrap(), p);
    }
    for p in [Plan::Anonymous, Plan::Free, Plan::Paid] {
        assert_eq!(p.name().parse::<Plan>().unwrap(), p);
    }
    assert!("v0.24".parse::<Profile>().is_err());
    assert!("gold".parse::<Plan>().is_err());
    let d = Config::default();
    assert_eq!(
        (d.profile, d.plan, d.guest_routes, d.max_secret_bytes),
        (Profile::Current, Plan::Paid, true, 10_000)
    );
}
