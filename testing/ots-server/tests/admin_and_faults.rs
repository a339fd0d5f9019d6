//! The admin API and fault injection: what tests use to count calls and make the server fail.

mod common;

use std::time::Duration;

use common::{Api, impatient, send, server, started};
use ots_testserver::{ApiVersion, Faults, RateLimitFault, Stats, TestServer};
use serde_json::{Value, json};

#[tokio::test]
async fn stats_count_requests_by_operation_and_status_across_versions() {
    let (s, api) = started().await;
    let r = api.v1_share(&[("secret", "x")]).await;
    api.v1_reveal(&r, &[]).await;
    api.v1_reveal(&r, &[]).await;
    api.v2_conceal(json!({"secret": "y"})).await;
    api.get("/api/v1/status").await;
    api.get("/api/v2/status").await;
    api.get("/api/v1/nope").await;
    api.get("/_admin/stats").await; // not counted
    api.get("/").await; // not counted

    let st = s.stats();
    assert_eq!(st.requests_total, 7);
    assert_eq!(
        st.by_operation["share"], 2,
        "v1 share and v2 conceal share a name"
    );
    assert_eq!(st.by_operation["reveal"], 2);
    assert_eq!(st.by_operation["status"], 2);
    assert_eq!(st.by_operation["not_found"], 1);
    assert_eq!(st.by_status[&200], 5);
    assert_eq!(st.by_status[&404], 2);
    assert_eq!(st.live_secrets, 1);
    assert_eq!(st.faults_injected, 0);

    let over_http: Stats = serde_json::from_value(api.get("/_admin/stats").await.json).unwrap();
    assert_eq!(over_http, st);
}

#[tokio::test]
async fn the_request_log_never_holds_query_strings_or_bodies() {
    let (s, api) = started().await;
    send(
        api.http
            .post(api.url("/api/v1/share?secret=query-secret-value&passphrase=query-pass"))
            .basic_auth(common::EMAIL, Some(common::TOKEN))
            .form(&[("secret", "body-secret-value")]),
    )
    .await;
    let log = s.requests();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].method, "POST");
    assert_eq!(log[0].path, "/api/v1/share");
    assert_eq!(log[0].operation, "share");
    assert_eq!(log[0].status, 200);
    assert_eq!(log[0].api, ApiVersion::V1);
    assert!(log[0].authenticated);
    let over_http = api.get("/_admin/requests").await;
    let text = over_http.text;
    for secret in [
        "query-secret-value",
        "query-pass",
        "body-secret-value",
        common::TOKEN,
    ] {
        assert!(!text.contains(secret), "the log leaks {secret}");
    }
    assert_eq!(over_http.json[0]["path"], "/api/v1/share");
}

#[tokio::test]
async fn reset_clears_counters_and_log_but_keeps_secrets() {
    let (s, api) = started().await;
    api.v1_share(&[("secret", "x")]).await;
    let a = send(api.http.post(api.url("/_admin/reset"))).await;
    assert_eq!(a.status, 200);
    let st = s.stats();
    assert_eq!(st.requests_total, 0);
    assert!(s.requests().is_empty());
    assert_eq!(st.live_secrets, 1);
    api.v1_share(&[("secret", "y")]).await;
    s.reset_stats();
    assert_eq!(s.stats().requests_total, 0);
}

#[tokio::test]
async fn live_lists_unread_secrets_without_values() {
    let (s, api) = started().await;
    let a = api
        .v1_share(&[("secret", "value-a"), ("passphrase", "pass-word")])
        .await;
    let b = api.v1_share(&[("secret", "value-b"), ("ttl", "120")]).await;
    let live = api.get("/_admin/live").await;
    assert!(!live.text.contains("value-a") && !live.text.contains("pass-word"));
    let items = live.json.as_array().unwrap();
    assert_eq!(items.len(), 2);
    let find = |mk: &Value| {
        items
            .iter()
            .find(|i| i["metadata_key"] == *mk)
            .unwrap()
            .clone()
    };
    assert_eq!(find(&a["metadata_key"])["passphrase_required"], true);
    assert_eq!(find(&b["metadata_key"])["ttl"], 120);
    assert_eq!(find(&b["metadata_key"])["secret_key"], b["secret_key"]);
    api.v1_reveal(&b, &[]).await;
    let after = s.live_receipts();
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].metadata_key, a["metadata_key"].as_str().unwrap());
}

#[tokio::test]
async fn the_clock_advances_over_http() {
    let (s, api) = started().await;
    api.v1_share(&[("secret", "x"), ("ttl", "60")]).await;
    let a = send(api.http.post(api.url("/_admin/clock/advance?secs=61"))).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.json["advanced_secs"], 61);
    assert_eq!(s.stats().live_secrets, 0);
    let bad = send(api.http.post(api.url("/_admin/clock/advance?secs=-1"))).await;
    assert_eq!(bad.status, 400);
    let missing = send(api.http.post(api.url("/_admin/clock/advance"))).await;
    assert_eq!(missing.status, 400);
}

#[tokio::test]
async fn faults_are_set_and_read_over_http_and_validated() {
    let (s, api) = started().await;
    let put =
        send(api.http.put(api.url("/_admin/faults")).json(
            &json!({"latency_ms": 5, "rate_limit": {"retry_after_secs": 7, "for_secs": 30}}),
        ))
        .await;
    assert_eq!(put.status, 200, "{put:?}");
    assert_eq!(
        s.faults(),
        Faults {
            latency_ms: 5,
            rate_limit: Some(RateLimitFault {
                retry_after_secs: 7,
                for_secs: 30
            }),
            ..Faults::default()
        }
    );
    let got: Faults = serde_json::from_value(api.get("/_admin/faults").await.json).unwrap();
    assert_eq!(got, s.faults());
    for bad in [
        json!({"error_rate": 2.0}),
        json!({"timeout_rate": -0.5}),
        json!("nope"),
    ] {
        let a = send(api.http.put(api.url("/_admin/faults")).json(&bad)).await;
        assert_eq!(a.status, 400, "{bad}");
    }
    let not_json = send(api.http.put(api.url("/_admin/faults")).body("{")).await;
    assert_eq!(not_json.status, 400);
    assert_eq!(api.get("/_admin/nothing").await.status, 404);
    // Clearing restores normal service.
    send(api.http.put(api.url("/_admin/faults")).json(&json!({}))).await;
    assert_eq!(api.get("/api/v1/status").await.status, 200);
}

#[tokio::test]
async fn an_outage_fails_every_api_request_but_not_the_admin_api() {
    let (s, api) = started().await;
    s.set_faults(Faults {
        outage: true,
        ..Faults::default()
    });
    for path in ["/api/v1/status", "/api/v2/status"] {
        let a = api.get(path).await;
        assert_eq!(a.status, 503);
        assert_eq!(a.json, Value::Null, "a bare proxy-style body, not JSON");
    }
    let share = api.form("/api/v1/share", &[("secret", "x")]).await;
    assert_eq!(share.status, 503);
    assert_eq!(
        s.stats().live_secrets,
        0,
        "nothing is created during an outage"
    );
    assert_eq!(api.get("/_admin/stats").await.status, 200);
    let st = s.stats();
    assert_eq!(st.faults_injected, 3);
    assert!(
        s.requests()
            .iter()
            .all(|r| r.fault.as_deref() == Some("outage"))
    );
    s.set_faults(Faults::default());
    assert_eq!(api.get("/api/v1/status").await.status, 200);
}

#[tokio::test]
async fn batch_status_missing_answers_the_batch_route_as_an_unknown_one() {
    let (s, api) = started().await;
    let body = api.v2_conceal(json!({"secret": "x"})).await;
    let (_, secret_key) = common::v2_keys(&body);
    let ask = json!({ "identifiers": secret_key });
    let served = api.json_auth("/api/v2/secret/status", ask.clone()).await;
    assert_eq!(served.status, 200);
    assert_eq!(served.json["count"], 1);
    s.set_faults(Faults {
        batch_status_missing: true,
        ..Faults::default()
    });
    let missing = api.json_auth("/api/v2/secret/status", ask.clone()).await;
    assert_eq!(missing.status, 404);
    assert_eq!(
        missing.json,
        json!({"error": "Not Found", "error_type": "NotFound"})
    );
    let unknown = api
        .json_auth("/api/v2/secret/nothing/here", ask.clone())
        .await;
    assert_eq!(
        (unknown.status, &unknown.json),
        (missing.status, &missing.json),
        "the same answer as any unknown route"
    );
    let stats = s.stats();
    assert_eq!(stats.by_operation["not_found"], 2);
    assert_eq!(
        stats.by_operation["secret_status_list"], 1,
        "only the call before the fault"
    );
    // Only that route: the secret's own status and its reveal still work.
    let one = api
        .get_auth(&format!("/api/v2/secret/{secret_key}/status"))
        .await;
    assert_eq!(one.json["record"]["state"], "new");
    s.set_faults(Faults::default());
    let back = api.json_auth("/api/v2/secret/status", ask).await;
    assert_eq!(back.status, 200);
}

#[tokio::test]
async fn an_error_rate_of_one_fails_every_request_with_a_5xx() {
    let (s, api) = started().await;
    s.set_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });
    for _ in 0..20 {
        let a = api.form("/api/v1/share", &[("secret", "x")]).await;
        assert!(a.status == 500 || a.status == 503, "{a:?}");
    }
    assert_eq!(s.stats().live_secrets, 0);
    assert_eq!(s.stats().faults_injected, 20);
}

#[tokio::test]
async fn an_error_rate_fails_a_fraction_of_requests() {
    let (s, api) = started().await;
    s.set_faults(Faults {
        error_rate: 0.5,
        ..Faults::default()
    });
    let mut failed = 0;
    for _ in 0..200 {
        if api.get("/api/v1/status").await.status != 200 {
            failed += 1;
        }
    }
    // Binomial(200, 0.5): outside 40..=160 has probability far below 1e-15.
    assert!((40..=160).contains(&failed), "{failed} of 200 failed");
    assert_eq!(s.stats().faults_injected, failed);
}

#[tokio::test]
async fn a_rate_limit_burst_answers_each_version_in_its_own_form_then_ends() {
    let (s, api) = started().await;
    s.set_faults(Faults {
        rate_limit: Some(RateLimitFault {
            retry_after_secs: 30,
            for_secs: 120,
        }),
        ..Faults::default()
    });
    let v2 = api.v2_conceal_raw(json!({"secret": "x"})).await;
    v2.assert_v2_error(429, "LimitExceeded");
    assert_eq!(v2.header("retry-after").as_deref(), Some("30"));
    assert_eq!(v2.json["retry_after"], 30);

    let v1 = api.form("/api/v1/share", &[("secret", "x")]).await;
    v1.assert_v1_error("Rate limit exceeded. Please try again later.", Some("400"));
    assert_eq!(v1.header("retry-after").as_deref(), Some("30"));

    s.advance_clock(Duration::from_secs(121));
    assert_eq!(
        api.form("/api/v1/share", &[("secret", "x")]).await.status,
        200
    );
    assert_eq!(s.stats().faults_injected, 2);
}

#[tokio::test]
async fn a_timeout_fault_hangs_past_the_clients_timeout_and_is_logged() {
    let (s, api) = started().await;
    s.set_faults(Faults {
        timeout_rate: 1.0,
        ..Faults::default()
    });
    let impatient = impatient();
    let err = impatient
        .post(api.url("/api/v1/share"))
        .form(&[("secret", "x")])
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert_eq!(s.stats().live_secrets, 0);
    let log = s.requests();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].fault.as_deref(), Some("timeout"));
    assert_eq!(s.stats().faults_injected, 1);
}

#[tokio::test]
async fn latency_delays_but_does_not_fail_requests() {
    let (s, api) = started().await;
    s.set_faults(Faults {
        latency_ms: 20,
        ..Faults::default()
    });
    let r = api.v1_share(&[("secret", "slow")]).await;
    assert_eq!(r["state"], "new");
    assert_eq!(s.stats().faults_injected, 0);
}

#[test]
fn a_server_on_its_own_thread_serves_blocking_callers_and_stops_when_dropped() {
    let s = TestServer::start_in_thread(common::config()).unwrap();
    let url = s.url();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let http = common::http();
    let status = rt.block_on(async {
        http.get(format!("{url}/api/v1/status"))
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(status, 200);
    assert_eq!(s.stats().by_operation["status"], 1);
    s.shutdown();
    let after = rt.block_on(async {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap()
            .get(format!("{url}/api/v1/status"))
            .send()
            .await
    });
    assert!(after.is_err(), "the port is closed after shutdown");
}

#[tokio::test]
async fn a_dropped_server_stops_listening() {
    let s = server().await;
    let url = s.url();
    let api = Api::new(&s);
    assert_eq!(api.get("/api/v1/status").await.status, 200);
    drop(s);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let mut closed = false;
    for _ in 0..100 {
        if http
            .get(format!("{url}/api/v1/status"))
            .send()
            .await
            .is_err()
        {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(closed, "still answering after drop");
}
