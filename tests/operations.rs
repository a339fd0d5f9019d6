//! Running it in production: metrics and health endpoints, leader election across processes,
//! gentleness with the OTS server (rate limit, Retry-After, outages), and namespace scoping.

mod support;

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use ots_testserver::{Config, Faults, RateLimitFault};
use serde_json::json;
use std::time::{Duration, Instant};
use support::operator::*;
use support::world::World;

async fn get(url: String) -> (u16, String) {
    let response = reqwest::get(url).await.expect("request");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

#[tokio::test]
async fn metrics_and_health_endpoints_report_a_happy_path_without_names_or_secrets() {
    let w = World::start("metrics").await;
    let addr = w.operator.metrics_addr();
    w.secret("db-credentials", &[("password", b"metric-secret-value")])
        .await;
    w.share_key("share-with-a-distinct-name", "db-credentials", "password")
        .await;
    let shared = w
        .wait_for("share-with-a-distinct-name", "Shared", |o| {
            phase(o) == "Shared"
        })
        .await;
    w.reveal(&shared).await;
    w.wait_for("share-with-a-distinct-name", "Received", |o| {
        phase(o) == "Received"
    })
    .await;
    w.share("missing-one", json!({"secretRef": {"name": "nope"}}))
        .await;
    w.wait_for("missing-one", "SecretNotFound", |o| {
        ready_reason_is(o, "SecretNotFound")
    })
    .await;

    assert_eq!(get(format!("http://{addr}/healthz")).await.0, 200);
    assert_eq!(get(format!("http://{addr}/readyz")).await.0, 200);
    // The phase gauge is refreshed every few seconds from the watch cache.
    let deadline = Instant::now() + WAIT;
    let metrics = loop {
        let (status, text) = get(format!("http://{addr}/metrics")).await;
        assert_eq!(status, 200);
        if text.contains("ots_operator_resources{phase=\"Received\"} 1") {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "phase gauge never showed Received:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    for family in [
        "ots_operator_reconciles_total{result=\"ok\"",
        "ots_operator_reconciles_total{result=\"error\",reason=\"SecretNotFound\"}",
        "ots_operator_reconcile_duration_seconds_bucket",
        "ots_operator_ots_requests_total{operation=\"share\",status_class=\"2xx\"} 1",
        "ots_operator_ots_requests_total{operation=\"receipt\",status_class=\"2xx\"}",
        "ots_operator_ots_request_duration_seconds_bucket{le=\"+Inf\",operation=\"share\"} 1",
        "ots_operator_leader 1",
        "ots_operator_shares_created_total 1",
        "ots_operator_resources{phase=\"Pending\"} 1",
        "ots_operator_rate_limiter_waits_total",
    ] {
        assert!(metrics.contains(family), "missing {family} in:\n{metrics}");
    }
    for forbidden in [
        "share-with-a-distinct-name",
        "db-credentials",
        "missing-one",
        &w.ns,
        "metric-secret-value",
    ] {
        assert!(!metrics.contains(forbidden), "metrics mention {forbidden}");
    }
}

async fn lease_holder(client: &kube::Client, ns: &str) -> Option<String> {
    Api::<Lease>::namespaced(client.clone(), ns)
        .get_opt("ots-operator-leader")
        .await
        .expect("get lease")
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
        .filter(|h| !h.is_empty())
}

async fn wait_holder(client: &kube::Client, ns: &str, not: Option<&str>) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(holder) = lease_holder(client, ns).await
            && Some(holder.as_str()) != not
        {
            return holder;
        }
        assert!(Instant::now() < deadline, "no new leader");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn elected(ns: &str, url: &str, identity: &str) -> Operator {
    let mut args = fast_args(ns, url);
    args.extend(
        [
            "--leader-elect",
            "--leader-elect-namespace",
            ns,
            "--leader-elect-identity",
            identity,
            "--leader-elect-lease-duration",
            "5s",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    Operator::start_with(&args, &[("RUST_LOG", "info,ots_operator=debug")])
}

async fn share_many(client: &kube::Client, ns: &str, range: std::ops::Range<usize>) {
    for i in range {
        let secret = format!("s-{i}");
        create_secret(
            client,
            ns,
            &secret,
            &[("v", format!("value-{i}").as_bytes())],
        )
        .await;
        create_share(
            client,
            ns,
            &format!("share-{i}"),
            json!({"secretRef": {"name": secret, "key": "v"}, "deletionPolicy": "Keep"}),
        )
        .await;
    }
}

async fn wait_all_shared(client: &kube::Client, ns: &str, range: std::ops::Range<usize>) {
    for i in range {
        wait_for(client, ns, &format!("share-{i}"), "Shared", |o| {
            phase(o) == "Shared"
        })
        .await;
    }
}

#[tokio::test]
async fn with_leader_election_exactly_one_process_shares_and_a_standby_takes_over() {
    let (client, ns) = setup("leader").await;
    let server = ots_server(Config::default());
    let mut a = elected(&ns, &server.url(), "replica-a");
    let mut b = elected(&ns, &server.url(), "replica-b");
    let first = wait_holder(&client, &ns, None).await;

    share_many(&client, &ns, 0..25).await;
    wait_all_shared(&client, &ns, 0..25).await;
    assert_eq!(
        calls(&server, "share"),
        25,
        "one share per resource with two replicas"
    );
    let (leader, standby) = if first == "replica-a" {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    assert!(
        !standby.logs().contains("\"shared\"") && !standby.logs().contains(" shared"),
        "the standby shared nothing"
    );

    // kill -9 the leader, with more work pending: the standby takes over and finishes it.
    leader.kill();
    share_many(&client, &ns, 25..50).await;
    let second = wait_holder(&client, &ns, Some(&first)).await;
    assert_ne!(second, first);
    wait_all_shared(&client, &ns, 25..50).await;
    assert_eq!(calls(&server, "share"), 50, "no resource was shared twice");
    assert_eq!(server.stats().live_secrets, 50);

    // SIGTERM the new leader with a third replica on standby: it hands over at once.
    let mut c = elected(&ns, &server.url(), "replica-c");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let sent = Instant::now();
    standby.terminate();
    let third = wait_holder(&client, &ns, Some(&second)).await;
    let handover = sent.elapsed();
    assert_eq!(third, "replica-c");
    assert!(
        handover <= Duration::from_secs(2),
        "handover took {handover:?}"
    );
    assert!(c.is_running());
}

#[tokio::test]
async fn retry_after_holds_back_every_request_and_all_shares_complete_afterwards() {
    let (client, ns) = setup("retry-after").await;
    let server = ots_server(Config::default());
    // One request in flight at a time: a request that was already on its way when the server
    // answered 429 cannot have known better, so the test leaves no room for one.
    let _operator = Operator::start(&ns, &server.url(), &["--ots-max-in-flight", "1"]);
    // Let the operator learn the API version first, so the first request we watch is a share.
    create_secret(&client, &ns, "warmup", &[("v", b"w")]).await;
    create_share(
        &client,
        &ns,
        "warmup",
        json!({"secretRef": {"name": "warmup", "key": "v"}, "deletionPolicy": "Keep"}),
    )
    .await;
    wait_for(&client, &ns, "warmup", "Shared", |o| phase(o) == "Shared").await;
    client_delete_keep(&client, &ns, "warmup").await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    server.set_faults(Faults {
        rate_limit: Some(RateLimitFault {
            retry_after_secs: 10,
            for_secs: 10,
        }),
        ..Faults::default()
    });
    share_many(&client, &ns, 0..5).await;
    wait_all_shared(&client, &ns, 0..5).await;
    let log = server.requests();
    let first_429 = log
        .iter()
        .find(|r| r.status == 429)
        .expect("a 429 was sent");
    let after: Vec<_> = log.iter().filter(|r| r.at > first_429.at).collect();
    assert!(!after.is_empty());
    for r in &after {
        assert!(
            r.at >= first_429.at + Duration::from_millis(9_900),
            "a request {:?} after the 429 came before Retry-After passed: {r:?}",
            r.at - first_429.at
        );
    }
    assert_eq!(
        log.iter().filter(|r| r.status == 429).count(),
        1,
        "only one request met the limit"
    );
}

/// Polls until `server` has answered `operation` more than `before` times; returns how long it took.
async fn time_until_call(
    server: &ots_testserver::TestServer,
    operation: &str,
    before: u64,
) -> Duration {
    let started = Instant::now();
    while calls(server, operation) <= before {
        assert!(
            started.elapsed() < WAIT,
            "no {operation} reached the server"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

#[tokio::test]
async fn a_rate_limit_on_one_server_does_not_hold_back_burns_and_shares_on_another() {
    let (client, ns) = setup("per-server-pause").await;
    let healthy = ots_server(Config::default());
    let limited = ots_server(Config::default());
    let limited_url = limited.url();
    let _operator = Operator::start(&ns, &healthy.url(), &["--allow-server-url", &limited_url]);
    create_secret(&client, &ns, "db", &[("password", b"per-server")]).await;
    // A live link on the healthy server (to burn later), and one share on the limited server first
    // so that both API versions are known before the limit starts.
    create_share(
        &client,
        &ns,
        "on-healthy",
        json!({"secretRef": {"name": "db", "key": "password"}}),
    )
    .await;
    create_share(
        &client,
        &ns,
        "warmup-limited",
        json!({"secretRef": {"name": "db", "key": "password"}, "deletionPolicy": "Keep",
               "server": {"url": limited_url}}),
    )
    .await;
    wait_shared(&client, &ns, "on-healthy").await;
    wait_shared(&client, &ns, "warmup-limited").await;

    limited.set_faults(Faults {
        rate_limit: Some(RateLimitFault {
            retry_after_secs: 60,
            for_secs: 60,
        }),
        ..Faults::default()
    });
    create_share(
        &client,
        &ns,
        "on-limited",
        json!({"secretRef": {"name": "db", "key": "password"}, "server": {"url": limited_url}}),
    )
    .await;
    let deadline = Instant::now() + WAIT;
    while !limited.requests().iter().any(|r| r.status == 429) {
        assert!(
            Instant::now() < deadline,
            "the limited server never answered 429"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A link check that was already on its way when the 429 went out may still be answered.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let paused_at = limited.requests().len();

    // During the other server's 60 s pause: a burn and a share on the healthy server go out at once.
    let burns = calls(&healthy, "burn");
    delete_share(&client, &ns, "on-healthy").await;
    let burn_delay = time_until_call(&healthy, "burn", burns).await;
    let shares = calls(&healthy, "share");
    create_share(
        &client,
        &ns,
        "new-on-healthy",
        json!({"secretRef": {"name": "db", "key": "password"}, "deletionPolicy": "Keep"}),
    )
    .await;
    let share_delay = time_until_call(&healthy, "share", shares).await;
    wait_gone(&client, &ns, "on-healthy").await;
    wait_shared(&client, &ns, "new-on-healthy").await;
    assert!(
        burn_delay <= Duration::from_secs(2),
        "the burn on the healthy server waited {burn_delay:?}"
    );
    assert!(
        share_delay <= Duration::from_secs(2),
        "the share on the healthy server waited {share_delay:?}"
    );
    // The limited server's pause is still honoured meanwhile.
    assert_eq!(
        limited.requests().len(),
        paused_at,
        "a request reached the limited server during its Retry-After"
    );
    assert_eq!(healthy.stats().live_secrets, 1);
}

async fn client_delete_keep(client: &kube::Client, ns: &str, name: &str) {
    delete_share(client, ns, name).await;
    wait_gone(client, ns, name).await;
}

#[tokio::test]
async fn during_an_outage_requests_stay_under_the_configured_rate() {
    let (client, ns) = setup("outage-rate").await;
    let server = ots_server(Config::default());
    let mut args = fast_args(&ns, &server.url());
    let at = args.iter().position(|a| a == "--ots-rate").unwrap();
    args[at + 1] = "2".into();
    let at = args.iter().position(|a| a == "--ots-burst").unwrap();
    args[at + 1] = "2".into();
    let _operator = Operator::start_with(&args, &[("RUST_LOG", "info")]);
    server.set_faults(Faults {
        outage: true,
        ..Faults::default()
    });
    share_many(&client, &ns, 0..30).await;
    let window = Duration::from_secs(10);
    tokio::time::sleep(window).await;
    let during = server.stats().requests_total;
    // 2/s for 10 s, plus a burst of 2 and one second of slack for the window's edges.
    assert!(
        during <= 2 * 10 + 2 + 2,
        "{during} requests in {window:?} at --ots-rate 2"
    );
    assert!(during >= 1, "the operator kept trying");
    server.set_faults(Faults::default());
    wait_all_shared(&client, &ns, 0..30).await;
    assert_eq!(
        calls(&server, "share") as usize,
        30 + count_failed_shares(&server)
    );
}

/// Share calls answered by the outage (they created nothing).
fn count_failed_shares(server: &ots_testserver::TestServer) -> usize {
    server
        .requests()
        .iter()
        .filter(|r| r.operation == "share" && r.status >= 500)
        .count()
}

#[tokio::test]
async fn a_namespace_scoped_operator_leaves_other_namespaces_untouched() {
    let (client, a) = setup("scope-a").await;
    let b = support::cluster::test_namespace(&client, "scope-b").await;
    let server = ots_server(Config::default());
    let _operator = Operator::start(&a, &server.url(), &[]);
    for ns in [&a, &b] {
        create_secret(&client, ns, "db", &[("password", b"scoped")]).await;
        create_share(
            &client,
            ns,
            "share",
            json!({"secretRef": {"name": "db", "key": "password"}}),
        )
        .await;
    }
    wait_for(&client, &a, "share", "Shared", |o| phase(o) == "Shared").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let other = shares(&client, &b).get("share").await.unwrap();
    assert!(
        other.status.is_none(),
        "namespace b was touched: {:?}",
        other.status
    );
    assert!(other.metadata.finalizers.unwrap_or_default().is_empty());
    assert_eq!(calls(&server, "share"), 1);
}

#[tokio::test]
async fn link_checks_never_starve_new_shares() {
    let (client, ns) = setup("starvation").await;
    let server = ots_server(Config::default());
    let mut args = fast_args(&ns, &server.url());
    for (flag, value) in [
        ("--ots-rate", "4"),
        ("--ots-burst", "4"),
        ("--refresh-min", "1s"),
        ("--refresh-max", "1s"),
    ] {
        let at = args.iter().position(|a| a == flag).unwrap();
        args[at + 1] = value.into();
    }
    // Few reconcile slots, so a check that waited for the OTS budget would hold one.
    args.extend(["--concurrency".to_owned(), "4".to_owned()]);
    let _operator = Operator::start_with(&args, &[("RUST_LOG", "info")]);
    // 30 live links checked every second would want 30 requests/s from a budget of 4.
    share_many(&client, &ns, 0..30).await;
    wait_all_shared(&client, &ns, 0..30).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let before = calls(&server, "share");
    share_many(&client, &ns, 30..50).await;
    wait_all_shared(&client, &ns, 30..50).await;
    assert_eq!(calls(&server, "share") - before, 20);
    // Links were still checked meanwhile: in batches (v2's batch status route, every
    // --refresh-min) and by receipt for a link of their own check.
    let checks = calls(&server, "receipt") + calls(&server, "secret_status_list");
    assert!(checks > 0, "links were still checked");
}

#[tokio::test]
async fn a_share_with_a_name_of_the_longest_valid_length_gets_its_events() {
    let w = World::start("long-name").await;
    let name = format!("{}.{}", "a".repeat(200), "b".repeat(52));
    assert_eq!(name.len(), 253);
    // First a Warning (its Secret is missing), then a Normal Event once the Secret is there.
    w.share(
        &name,
        json!({"secretRef": {"name": "late", "key": "password"}}),
    )
    .await;
    let warning = w.wait_event(&name, "Warning", "SecretNotFound").await;
    assert!(warning.contains("late"), "{warning}");
    w.secret("late", &[("password", b"long-name")]).await;
    w.shared(&name).await;
    w.wait_event(&name, "Normal", "Shared").await;
}
