//! Faults that strike after a create stored its secret (issue 12): the secret exists and
//! can be read, but the client that created it got no usable answer.

mod common;

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use common::{Api, impatient, send, started};
use ots_testserver::{AfterStoreFault, AfterStoreKind, Faults, LiveReceipt};
use serde_json::{Value, json};

async fn live_over_http(api: &Api) -> Vec<LiveReceipt> {
    let a = api.get("/_admin/live").await;
    assert_eq!(a.status, 200);
    serde_json::from_value(a.json).unwrap()
}

async fn set_over_http(api: &Api, faults: Value) -> Value {
    let a = send(api.http.put(api.url("/_admin/faults")).json(&faults)).await;
    assert_eq!(a.status, 200, "{a:?}");
    a.json
}

#[tokio::test]
async fn a_bare_5xx_after_store_leaves_the_secret_stored_and_readable() {
    for (kind, name, status) in [
        (AfterStoreKind::Status500, "status_500", 500),
        (AfterStoreKind::Status502, "status_502", 502),
        (AfterStoreKind::Status503, "status_503", 503),
    ] {
        let (s, api) = started().await;
        let set = set_over_http(&api, json!({"after_store": {"kind": name, "count": 1}})).await;
        assert_eq!(set["after_store"]["count"], 1);
        assert_eq!(s.faults().after_store.unwrap().kind, kind);
        let a = api.v2_conceal_raw(json!({"secret": "stored anyway"})).await;
        assert_eq!(a.status, status, "{name}");
        assert_eq!(a.json, Value::Null, "{name}: a bare, non-JSON answer");
        let live = live_over_http(&api).await;
        assert_eq!(live.len(), 1, "{name}");
        let r = api
            .json(
                &format!("/api/v2/secret/{}/reveal", live[0].secret_key),
                json!({"continue": true}),
            )
            .await;
        assert_eq!(r.json["record"]["secret_value"], "stored anyway", "{name}");
        let log = s.requests();
        let create = log.iter().find(|r| r.operation == "share").unwrap();
        assert_eq!(create.status, status);
        assert_eq!(
            create.fault.as_deref(),
            Some(&*format!("after_store_{status}"))
        );
        assert_eq!(s.stats().faults_injected, 1);
    }
}

#[tokio::test]
async fn a_count_strikes_only_the_next_n_successful_creates() {
    let (_s, api) = started().await;
    set_over_http(
        &api,
        json!({"after_store": {"kind": "status_503", "count": 2}}),
    )
    .await;
    // A refused create stores nothing and is not counted.
    let refused = api.v2_conceal_raw(json!({"secret": ""})).await;
    assert_eq!(refused.status, 422);
    let first = api.form("/api/v1/share", &[("secret", "one")]).await;
    assert_eq!(first.status, 503);
    let second = api
        .json("/api/v2/secret/generate", json!({"secret": {}}))
        .await;
    assert_eq!(second.status, 503);
    let third = api.form("/api/v1/share", &[("secret", "three")]).await;
    assert_eq!(third.status, 200, "the count is used up");
    assert_eq!(live_over_http(&api).await.len(), 3);
    let now = api.get("/_admin/faults").await;
    assert_eq!(now.json["after_store"]["count"], 0);
    // Reveals, receipts and status are never struck.
    set_over_http(&api, json!({"after_store": {"kind": "status_500"}})).await;
    let sk = third.json["secret_key"].as_str().unwrap();
    let r = api.form(&format!("/api/v1/secret/{sk}"), &[]).await;
    assert_eq!(r.json["value"], "three");
    assert_eq!(api.get("/api/v1/status").await.status, 200);
}

#[tokio::test]
async fn a_rate_decides_which_creates_are_struck() {
    let (s, api) = started().await;
    set_over_http(
        &api,
        json!({"after_store": {"kind": "garbage", "rate": 0.0}}),
    )
    .await;
    assert_eq!(api.v2_conceal_raw(json!({"secret": "x"})).await.status, 200);
    assert!(
        api.v2_conceal_raw(json!({"secret": "x"})).await.json["success"] == true,
        "rate 0 strikes nothing"
    );
    s.set_faults(Faults {
        after_store: Some(AfterStoreFault {
            kind: AfterStoreKind::Garbage,
            rate: Some(1.0),
            count: None,
        }),
        ..Faults::default()
    });
    for _ in 0..3 {
        let g = api.v2_conceal_raw(json!({"secret": "x"})).await;
        assert_eq!(g.status, 200);
        assert_eq!(g.json, Value::Null, "not JSON: {}", g.text);
        assert!(
            g.header("content-type").unwrap().starts_with("text/html"),
            "{g:?}"
        );
    }
    assert_eq!(s.stats().live_secrets, 5);
    let bad_rate = send(
        api.http
            .put(api.url("/_admin/faults"))
            .json(&json!({"after_store": {"kind": "reset", "rate": 2.0}})),
    )
    .await;
    assert_eq!(bad_rate.status, 400);
    let bad_kind = send(
        api.http
            .put(api.url("/_admin/faults"))
            .json(&json!({"after_store": {"kind": "explode"}})),
    )
    .await;
    assert_eq!(bad_kind.status, 400);
}

#[tokio::test]
async fn a_reset_after_store_closes_the_connection_without_an_answer() {
    let (s, api) = started().await;
    set_over_http(&api, json!({"after_store": {"kind": "reset", "count": 1}})).await;
    let err = api
        .http
        .post(api.url("/api/v1/share"))
        .form(&[("secret", "no answer")])
        .send()
        .await
        .unwrap_err();
    assert!(!err.is_timeout(), "{err}");
    assert!(err.status().is_none(), "no status line was received: {err}");
    let live = live_over_http(&api).await;
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].custid, "anon");
    let log = s.requests();
    assert_eq!(log[0].fault.as_deref(), Some("after_store_reset"));
    assert_eq!(log[0].status, 0);
    // On the wire: not a single byte comes back before the connection closes.
    s.set_faults(Faults {
        after_store: Some(AfterStoreFault {
            kind: AfterStoreKind::Reset,
            rate: None,
            count: Some(1),
        }),
        ..Faults::default()
    });
    let mut raw = tokio::net::TcpStream::connect(s.addr()).await.unwrap();
    let body = "secret=raw";
    let request = format!(
        "POST /api/v1/share HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    raw.write_all(request.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), raw.read_to_end(&mut got)).await;
    assert!(read.is_ok(), "the server closed the connection");
    assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
    assert_eq!(s.stats().live_secrets, 2);
    // The next create is answered normally on a fresh connection.
    let ok = api.v1_share(&[("secret", "answered")]).await;
    assert!(ok["secret_key"].is_string());
}

#[tokio::test]
async fn a_hang_after_store_outlasts_the_client_but_the_secret_is_live() {
    let (s, api) = started().await;
    s.set_faults(Faults {
        after_store: Some(AfterStoreFault {
            kind: AfterStoreKind::Hang,
            rate: None,
            count: Some(1),
        }),
        ..Faults::default()
    });
    let impatient = impatient();
    let err = impatient
        .post(api.url("/api/v2/secret/conceal"))
        .json(&json!({"secret": {"secret": "late"}}))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    let live = s.live_receipts();
    assert_eq!(live.len(), 1);
    let log = s.requests();
    assert_eq!(log[0].fault.as_deref(), Some("after_store_hang"));
    assert_eq!(log[0].status, 504);
}
