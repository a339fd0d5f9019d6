//! `/api/v1` against the fact sheet: shapes, lifecycle, every error, ttl clamping, keys,
//! and the parameter encodings real clients use.

mod common;

use common::{
    Api, EMAIL, TOKEN, send, server, start_with, started, v1_burn_path, v1_private_path,
    v1_secret_path,
};
use serde_json::Value;

fn is_key(v: &Value, len: usize) -> bool {
    v.as_str().is_some_and(|s| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
    })
}

#[tokio::test]
async fn status_is_nominal_with_locale() {
    let s = server().await;
    let a = Api::new(&s).get("/api/v1/status").await;
    assert_eq!(a.status, 200);
    assert_eq!(
        a.json,
        serde_json::json!({"status": "nominal", "locale": "en"})
    );
}

#[tokio::test]
async fn share_answers_the_documented_receipt_object() {
    let (s, api) = started().await;
    let r = api.v1_share(&[("secret", "s3cr3t"), ("ttl", "3600")]).await;
    assert_eq!(r["custid"], "anon");
    assert!(is_key(&r["metadata_key"], 62), "{r}");
    assert!(is_key(&r["secret_key"], 62), "{r}");
    assert_eq!(r["ttl"], 3600);
    assert!(r["metadata_ttl"].as_u64().unwrap() > 3600);
    assert!(r["secret_ttl"].as_u64().unwrap() <= 3600);
    for f in ["created", "updated", "ttl", "metadata_ttl", "secret_ttl"] {
        assert!(r[f].is_u64(), "{f} must be an integer: {r}");
    }
    assert_eq!(r["state"], "new");
    assert_eq!(r["recipient"], serde_json::json!([]));
    assert_eq!(r["share_domain"], "");
    assert_eq!(r["passphrase_required"], false);
    let mk = r["metadata_key"].as_str().unwrap();
    assert_eq!(r["metadata_url"], format!("{}/receipt/{mk}", s.url()));
    // v0.24 alias fields mirror the classic ones.
    assert_eq!(r["identifier"], r["metadata_key"]);
    assert_eq!(r["secret_identifier"], r["secret_key"]);
    assert_eq!(r["has_passphrase"], r["passphrase_required"]);
    assert_eq!(r["receipt_url"], r["metadata_url"]);
    assert_eq!(r["receipt_ttl"], r["metadata_ttl"]);
    assert!(r.get("value").is_none(), "share never echoes the value");
    assert!(r.get("received").is_none());
}

#[tokio::test]
async fn a_secret_is_revealed_exactly_once_and_the_receipt_follows() {
    let (s, api) = started().await;
    let r = api.v1_share(&[("secret", "one time only")]).await;
    let sk = r["secret_key"].as_str().unwrap();
    let mk = r["metadata_key"].as_str().unwrap();
    assert_eq!(s.stats().live_secrets, 1);

    let m = api.get(&format!("/api/v1/private/{mk}")).await;
    assert_eq!(m.json["state"], "new");
    assert_eq!(m.json["passphrase_required"], false);
    assert!(
        m.json.get("value").is_none(),
        "a shared value is never echoed"
    );

    let first = api.form(&format!("/api/v1/secret/{sk}"), &[]).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.json["value"], "one time only");
    assert_eq!(first.json["secret_key"], sk);
    assert_eq!(first.json["share_domain"], s.url());

    let second = api.form(&format!("/api/v1/secret/{sk}"), &[]).await;
    second.assert_v1_error("Unknown secret", None);
    assert_eq!(second.json["secret_key"], sk);

    for alias in ["private", "metadata", "receipt"] {
        let m = api.get(&format!("/api/v1/{alias}/{mk}")).await;
        assert_eq!(m.status, 200);
        assert_eq!(m.json["state"], "received");
        assert!(m.json.get("secret_key").is_none(), "{}", m.json);
        assert!(m.json.get("secret_ttl").is_none());
        assert!(m.json["received"].is_u64());
        assert!(m.json.get("passphrase_required").is_none());
    }
    assert_eq!(s.stats().live_secrets, 0);
}

#[tokio::test]
async fn receipts_answer_post_as_well_as_get() {
    let (_s, api) = started().await;
    let r = api.v1_share(&[("secret", "x")]).await;
    let mk = r["metadata_key"].as_str().unwrap();
    let m = api.form(&format!("/api/v1/private/{mk}"), &[]).await;
    assert_eq!(m.status, 200);
    assert_eq!(m.json["metadata_key"], mk);
}

#[tokio::test]
async fn create_is_an_alias_of_share() {
    let s = server().await;
    let a = Api::new(&s)
        .form("/api/v1/create", &[("secret", "x")])
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.json["state"], "new");
}

#[tokio::test]
async fn passphrase_gates_the_reveal_without_consuming_the_secret() {
    let (s, api) = started().await;
    let r = api
        .v1_share(&[("secret", "guarded"), ("passphrase", "hunter22")])
        .await;
    assert_eq!(r["passphrase_required"], true);
    let path = v1_secret_path(&r);
    api.form(&path, &[])
        .await
        .assert_v1_error("Unknown secret", None);
    api.form(&path, &[("passphrase", "wrong")])
        .await
        .assert_v1_error("Unknown secret", None);
    assert_eq!(
        s.stats().live_secrets,
        1,
        "a failed attempt keeps the secret"
    );
    let ok = api.form(&path, &[("passphrase", "hunter22")]).await;
    assert_eq!(ok.json["value"], "guarded");
}

#[tokio::test]
async fn burn_destroys_an_unread_secret_and_reports_the_shortkey() {
    let (_s, api) = started().await;
    let r = api.v1_share(&[("secret", "burn me")]).await;
    let sk = r["secret_key"].as_str().unwrap();
    let mk = r["metadata_key"].as_str().unwrap();
    let b = api.form(&format!("/api/v1/private/{mk}/burn"), &[]).await;
    assert_eq!(b.status, 200, "{b:?}");
    assert_eq!(b.json["secret_shortkey"], &sk[..8]);
    // The receipt as loaded before the burn (shared/ots-api.md §13.10).
    assert_eq!(b.json["state"]["state"], "new");
    assert_eq!(b.json["state"]["secret_ttl"], Value::Null);
    assert_eq!(b.json["state"]["secret_key"], sk);
    assert!(b.json["state"].get("passphrase_required").is_none());
    api.form(&format!("/api/v1/secret/{sk}"), &[])
        .await
        .assert_v1_error("Unknown secret", None);
    let again = api.form(&format!("/api/v1/receipt/{mk}/burn"), &[]).await;
    again.assert_v1_error("Unknown secret", None);
    assert_eq!(again.json["secret_key"], mk, "the key as sent is echoed");
    let m = api.get(&format!("/api/v1/metadata/{mk}")).await;
    assert_eq!(m.json["state"], "burned");
}

#[tokio::test]
async fn a_received_secret_cannot_be_burned() {
    let (_s, api) = started().await;
    let r = api.v1_share(&[("secret", "x")]).await;
    api.v1_reveal(&r, &[]).await;
    let b = api.v1_burn(&r, &[]).await;
    b.assert_v1_error("Unknown secret", None);
}

#[tokio::test]
async fn burning_a_protected_secret_needs_its_passphrase_even_for_the_owner() {
    let (s, api) = started().await;
    let r = api
        .form_auth(
            "/api/v1/share",
            &[("secret", "x"), ("passphrase", "pass1234")],
        )
        .await
        .json;
    let burn = v1_burn_path(&r);
    // burn_secret.rb:71 reads the locale key web.COMMON.error_passphrase, which is there
    // ("Double check that passphrase", as the genuine server answers).
    api.form_auth(&burn, &[])
        .await
        .assert_v1_error("Double check that passphrase", Some("400"));
    api.form_auth(&burn, &[("passphrase", "nope")])
        .await
        .assert_v1_error("Double check that passphrase", Some("400"));
    let ok = api.form_auth(&burn, &[("passphrase", "pass1234")]).await;
    assert_eq!(ok.status, 200, "{ok:?}");
    assert_eq!(
        ok.json["state"]["state"], "new",
        "as loaded before the burn: {ok:?}"
    );
    assert_eq!(s.stats().live_secrets, 0, "burned");
}

#[tokio::test]
async fn bad_credentials_are_refused_on_every_route() {
    let (s, api) = started().await;
    let r = api.v1_share(&[("secret", "x")]).await;
    let mk = r["metadata_key"].as_str().unwrap();
    let sk = r["secret_key"].as_str().unwrap();
    let variants: Vec<Box<dyn Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder>> = vec![
        Box::new(|b| b.basic_auth(EMAIL, Some("wrong-token"))),
        Box::new(|b| b.basic_auth("nobody@example.com", Some(TOKEN))),
        Box::new(|b| b.basic_auth("", Some(""))),
        Box::new(|b| b.bearer_auth(TOKEN)),
        Box::new(|b| b.header("Authorization", "Basic !!!")),
    ];
    for (i, auth) in variants.iter().enumerate() {
        for (method, path) in [
            ("GET", "/api/v1/status".to_owned()),
            ("POST", "/api/v1/share".to_owned()),
            ("POST", format!("/api/v1/secret/{sk}")),
            ("GET", format!("/api/v1/private/{mk}")),
            ("POST", format!("/api/v1/private/{mk}/burn")),
        ] {
            let b = api
                .http
                .request(method.parse().unwrap(), api.url(&path))
                .form(&[("secret", "y")]);
            let a = send(auth(b)).await;
            assert_eq!(a.status, 404, "variant {i} {path}");
            a.assert_v1_error("Not authorized", Some("401"));
        }
    }
    assert_eq!(s.stats().live_secrets, 1, "refused calls changed nothing");
}

#[tokio::test]
async fn authcheck_and_recent_need_an_account() {
    let (_s, api) = started().await;
    api.get("/api/v1/authcheck")
        .await
        .assert_v1_error("Not authorized", Some("401"));
    let ok = api.get_auth("/api/v1/authcheck").await;
    assert_eq!(ok.json["status"], "nominal");
    for alias in ["private", "metadata", "receipt"] {
        api.get(&format!("/api/v1/{alias}/recent"))
            .await
            .assert_v1_error("Not authorized", Some("401"));
    }
}

#[tokio::test]
async fn recent_lists_only_the_accounts_receipts_without_secret_keys() {
    let (_s, api) = started().await;
    let mine = api
        .form_auth("/api/v1/share", &[("secret", "mine")])
        .await
        .json;
    assert_eq!(mine["custid"], EMAIL);
    api.v1_share(&[("secret", "anonymous")]).await;
    let list = api.get_auth("/api/v1/private/recent").await;
    assert_eq!(list.status, 200);
    let items = list.json.as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["metadata_key"], mine["metadata_key"]);
    assert!(items[0].get("secret_key").is_none());
    assert_eq!(items[0]["secret_identifier"], mine["secret_key"]);
    assert!(items[0].get("passphrase_required").is_none());
}

#[tokio::test]
async fn validation_failures_have_the_documented_messages() {
    let (s, api) = started().await;
    let cases: Vec<(Vec<(&str, String)>, &str)> = vec![
        (vec![], "You did not provide anything to share"),
        (
            vec![("secret", String::new())],
            "You did not provide anything to share",
        ),
        (
            vec![("secret", "x".repeat(10_001))],
            "Secret value exceeds the maximum size of 10000 bytes",
        ),
        (
            vec![("secret", "x".into()), ("passphrase", "abc".into())],
            "Passphrase must be at least 4 characters long",
        ),
        (
            vec![("secret", "x".into()), ("passphrase", "p".repeat(129))],
            "Passphrase must be no more than 128 characters long",
        ),
        (
            vec![
                ("secret", "x".into()),
                ("recipient", "friend@example.com".into()),
            ],
            "An account is required to send emails.",
        ),
    ];
    for (fields, message) in cases {
        let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        api.form("/api/v1/share", &fields)
            .await
            .assert_v1_error(message, Some("400"));
    }
    api.form_auth(
        "/api/v1/share",
        &[("secret", "x"), ("recipient", "not-an-email")],
    )
    .await
    .assert_v1_error("Undeliverable email address: not-an-email", Some("400"));
    api.form("/api/v1/generate", &[("length", "129")])
        .await
        .assert_v1_error(
            "Generated password length must be no more than 128 characters",
            Some("400"),
        );
    assert_eq!(s.stats().live_secrets, 0);
}

#[tokio::test]
async fn a_secret_of_exactly_10000_bytes_is_accepted() {
    let (_s, api) = started().await;
    // Multi-byte characters count in bytes: 5000 × 2 bytes.
    let value = "é".repeat(5000);
    let r = api.v1_share(&[("secret", value.as_str())]).await;
    let got = api.form(&v1_secret_path(&r), &[]).await;
    assert_eq!(got.json["value"], value.as_str());
    let over = format!("{value}x");
    api.form("/api/v1/share", &[("secret", over.as_str())])
        .await
        .assert_v1_error(
            "Secret value exceeds the maximum size of 10000 bytes",
            Some("400"),
        );
}

#[tokio::test]
async fn recipients_need_an_account_and_are_masked() {
    let (_s, api) = started().await;
    let r = api
        .form_auth(
            "/api/v1/share",
            &[
                ("secret", "x"),
                ("recipient[]", "alice@example.com"),
                ("recipient[]", "bob@example.com"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let recipients = r.json["recipient"].as_array().unwrap();
    assert_eq!(recipients.len(), 1, "only the first is emailed");
    let shown = recipients[0].as_str().unwrap();
    assert_ne!(shown, "alice@example.com");
    assert!(
        shown.ends_with("@example.com") && shown.contains('*'),
        "{shown}"
    );
}

#[tokio::test]
async fn ttl_is_clamped_never_rejected() {
    let (_s, api) = started().await;
    for (raw, want) in [
        ("", 60),
        ("0", 60),
        ("abc", 60),
        ("-5", 60),
        ("59", 60),
        ("60", 60),
        ("3600", 3600),
        ("3600.9", 3600),
        ("604800", 604_800),
        ("99999999", 604_800),
    ] {
        let r = api.v1_share(&[("secret", "x"), ("ttl", raw)]).await;
        assert_eq!(r["ttl"], want, "ttl {raw:?}");
    }
    let missing = api.v1_share(&[("secret", "x")]).await;
    assert_eq!(missing["ttl"], 604_800);
    let authed = api
        .form_auth("/api/v1/share", &[("secret", "x"), ("ttl", "99999999")])
        .await;
    assert_eq!(
        authed.json["ttl"], 2_592_000,
        "authenticated cap is 30 days"
    );
}

#[tokio::test]
async fn the_ttl_caps_come_from_the_config() {
    let (_s, api) = start_with(|c| c.ttl_max_anonymous = 3600).await;
    assert_eq!(api.v1_share(&[("secret", "x")]).await["ttl"], 3600);
    assert_eq!(
        api.v1_share(&[("secret", "x"), ("ttl", "7200")]).await["ttl"],
        3600
    );
}

#[tokio::test]
async fn keys_shorter_than_20_characters_are_not_found() {
    let (_s, api) = started().await;
    for path in [
        "/api/v1/secret/abc",
        "/api/v1/private/abc",
        "/api/v1/private/abc/burn",
    ] {
        let a = if path.contains("private/abc") && !path.ends_with("burn") {
            api.get(path).await
        } else {
            api.form(path, &[]).await
        };
        a.assert_v1_error("Not Found", None);
        assert!(a.json.get("secret_key").is_none());
    }
}

#[tokio::test]
async fn unknown_keys_are_unknown_secrets_echoing_the_key() {
    let (_s, api) = started().await;
    let key = "k".repeat(62);
    let a = api.form(&format!("/api/v1/secret/{key}"), &[]).await;
    a.assert_v1_error("Unknown secret", None);
    assert_eq!(a.json["secret_key"], key);
    api.get(&format!("/api/v1/private/{key}"))
        .await
        .assert_v1_error("Unknown secret", None);
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_are_not_found() {
    let (_s, api) = started().await;
    let key = "k".repeat(62);
    let cases = [
        ("GET", "/api/v1/nope".to_owned()),
        ("GET", "/api/v1".to_owned()),
        ("GET", "/api/v1/share".to_owned()),
        ("POST", "/api/v1/status".to_owned()),
        ("GET", format!("/api/v1/secret/{key}")),
        ("DELETE", format!("/api/v1/private/{key}")),
        ("GET", format!("/api/v1/private/{key}/burn")),
        ("PUT", "/api/v1/share".to_owned()),
    ];
    for (method, path) in cases {
        let a = send(api.http.request(method.parse().unwrap(), api.url(&path))).await;
        assert_eq!(a.status, 404, "{method} {path}");
        assert_eq!(
            a.json,
            serde_json::json!({"error": "Not Found"}),
            "{method} {path}"
        );
    }
}

#[tokio::test]
async fn malformed_and_oversized_bodies_get_documented_errors() {
    let (_s, api) = started().await;
    let bad_json = api
        .post_body("/api/v1/share", Some("application/json"), "{\"secret\": ")
        .await;
    bad_json.assert_v1_refused("400");
    assert!(bad_json.json["message"].is_string());

    let bad_multipart = api
        .post_body(
            "/api/v1/share",
            Some("multipart/form-data; boundary=zz"),
            "garbage without boundaries",
        )
        .await;
    bad_multipart.assert_v1_refused("400");

    let huge = "a".repeat(2 * 1024 * 1024);
    let too_big = api
        .post_body(
            "/api/v1/share",
            Some("application/x-www-form-urlencoded"),
            format!("secret={huge}"),
        )
        .await;
    too_big.assert_v1_refused("413");

    let bad_utf8 = api
        .post_body(
            "/api/v1/share",
            Some("application/x-www-form-urlencoded"),
            b"secret=%FF%FE&ttl=60".to_vec(),
        )
        .await;
    assert_ne!(bad_utf8.status / 100, 5, "{bad_utf8:?}");
    // The server is still serving.
    assert_eq!(api.get("/api/v1/status").await.status, 200);
}

#[tokio::test]
async fn parameters_are_read_from_every_encoding_real_clients_use() {
    let (_s, api) = started().await;
    let reveal = |r: Value| {
        let api = &api;
        async move { api.v1_reveal(&r, &[("passphrase", "pass-word")]).await.json["value"].clone() }
    };

    // Query string on a POST (corbaltcode, PowerShell, Java).
    let q = send(
        api.http
            .post(api.url("/api/v1/share?secret=from%20query&ttl=120&passphrase=pass-word")),
    )
    .await;
    assert_eq!(q.json["ttl"], 120, "{q:?}");
    assert_eq!(reveal(q.json).await, "from query");

    // A body with no Content-Type is a form (otsgo, OneTimeSharp).
    let raw = send(
        api.http
            .post(api.url("/api/v1/share"))
            .body("secret=no+content%26type&ttl=300&passphrase=pass-word"),
    )
    .await;
    assert_eq!(raw.json["ttl"], 300, "{raw:?}");
    assert_eq!(reveal(raw.json).await, "no content&type");

    // Multipart (bash with curl -F).
    let multipart = "--XyZ\r\nContent-Disposition: form-data; name=\"secret\"\r\n\r\nfrom multipart\r\n--XyZ\r\nContent-Disposition: form-data; name=\"ttl\"\r\n\r\n900\r\n--XyZ\r\nContent-Disposition: form-data; name=\"passphrase\"\r\n\r\npass-word\r\n--XyZ--\r\n";
    let mp = api
        .post_body(
            "/api/v1/share",
            Some("multipart/form-data; boundary=XyZ"),
            multipart,
        )
        .await;
    assert_eq!(mp.json["ttl"], 900, "{mp:?}");
    assert_eq!(reveal(mp.json).await, "from multipart");

    // JSON (v0.24+), numbers as numbers.
    let js = api
        .json(
            "/api/v1/share",
            serde_json::json!({"secret": "from json", "ttl": 1800, "passphrase": "pass-word"}),
        )
        .await;
    assert_eq!(js.json["ttl"], 1800, "{js:?}");
    assert_eq!(reveal(js.json).await, "from json");

    // The body wins over the query string, as in Rack.
    let both = send(
        api.http
            .post(api.url("/api/v1/share?secret=query&ttl=120&passphrase=pass-word"))
            .form(&[("secret", "body"), ("ttl", "240")]),
    )
    .await;
    assert_eq!(both.json["ttl"], 240);
    assert_eq!(reveal(both.json).await, "body");

    // corbaltcode sends empty Basic credentials when unset: refused, as on the real server.
    let empty_basic = send(
        api.http
            .post(api.url("/api/v1/share"))
            .basic_auth("", Some(""))
            .form(&[("secret", "x"), ("ttl", "0")]),
    )
    .await;
    empty_basic.assert_v1_error("Not authorized", Some("401"));
}

#[tokio::test]
async fn generate_returns_a_value_that_the_receipt_shows_once_within_a_minute() {
    let (s, api) = started().await;
    let g = api.form("/api/v1/generate", &[]).await;
    assert_eq!(g.status, 200);
    let value = g.json["value"].as_str().unwrap().to_owned();
    assert_eq!(value.chars().count(), 12);
    assert_eq!(g.json["secret_value"], value.as_str());
    let mk = g.json["metadata_key"].as_str().unwrap();
    let first = api.get(&format!("/api/v1/private/{mk}")).await;
    assert_eq!(first.json["value"], value.as_str());
    let second = api.get(&format!("/api/v1/private/{mk}")).await;
    assert!(second.json.get("value").is_none(), "shown once only");

    let late = api.form("/api/v1/generate", &[("length", "20")]).await;
    assert_eq!(late.json["value"].as_str().unwrap().len(), 20);
    s.advance_clock(std::time::Duration::from_secs(61));
    let m = api.get(&v1_private_path(&late.json)).await;
    assert!(m.json.get("value").is_none(), "not after 60 s");
    let revealed = api.form(&v1_secret_path(&late.json), &[]).await;
    assert_eq!(revealed.json["value"], late.json["value"]);
}

#[tokio::test]
async fn legacy_mode_issues_31_character_keys() {
    let (_s, api) = start_with(|c| c.legacy_keys = true).await;
    let r = api.v1_share(&[("secret", "x")]).await;
    assert!(is_key(&r["metadata_key"], 31), "{r}");
    assert!(is_key(&r["secret_key"], 31), "{r}");
    let b = api.v1_burn(&r, &[]).await;
    assert_eq!(b.json["secret_shortkey"].as_str().unwrap().len(), 8);
}

#[tokio::test]
async fn share_domain_other_than_the_site_is_kept_in_links() {
    let (_s, api) = start_with(|c| c.public_url = Some("https://ots.example.net".into())).await;
    let own = api
        .v1_share(&[("secret", "x"), ("share_domain", "ots.example.net")])
        .await;
    assert_eq!(own["share_domain"], "");
    let mk = own["metadata_key"].as_str().unwrap();
    assert_eq!(
        own["metadata_url"],
        format!("https://ots.example.net/receipt/{mk}")
    );
    let custom = api
        .v1_share(&[("secret", "y"), ("share_domain", "secrets.example.org")])
        .await;
    assert_eq!(custom["share_domain"], "secrets.example.org");
    let got = api.form(&v1_secret_path(&custom), &[]).await;
    assert_eq!(got.json["share_domain"], "https://secrets.example.org");
}
