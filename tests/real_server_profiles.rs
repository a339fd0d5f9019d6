//! The operator end to end, on the real control plane, against every profile of the real
//! Onetime Secret server that `ots-testserver` imitates: today's onetimesecret.com (`current`),
//! self-hosted v0.21–v0.23 (`v0.23`: failed actions are HTTP 500) and v0.18–v0.20 (`v0.20`:
//! receipts only under `/private/*`), plus a free plan and a server with anonymous v2 off.

mod support;

use std::time::Duration;

use ots_testserver::{Account, Config, Plan, Profile, TestServer};
use serde_json::json;
use support::operator::*;
use support::world::World;

fn profile(profile: Profile) -> Config {
    Config {
        profile,
        ..Config::default()
    }
}

/// Operator arguments with link checks every `refresh` (min and max).
fn args(ns: &str, server: &TestServer, refresh: &str) -> Vec<String> {
    let mut args = fast_args(ns, &server.url());
    for flag in ["--refresh-min", "--refresh-max"] {
        let at = args.iter().position(|a| a == flag).unwrap();
        args[at + 1] = refresh.to_owned();
    }
    args
}

async fn no_burn_failed(client: &kube::Client, ns: &str, name: &str) {
    let all = events(client, ns, name).await;
    assert!(
        !all.iter().any(|(_, reason, _)| reason == "BurnFailed"),
        "{ns}/{name}: {all:?}"
    );
}

/// Share → reveal → Received; reshare after the link was opened; delete unread → burned;
/// expiry. Every step on one server profile.
async fn lifecycle(p: Profile) {
    let (client, ns) = setup(&format!("life-{p}")).await;
    let server = ots_server(profile(p));
    let _operator = Operator::start(&ns, &server.url(), &[]);
    create_secret(
        &client,
        &ns,
        "db",
        &[
            ("a", b"first"),
            ("b", b"old"),
            ("c", b"unread"),
            ("d", b"brief"),
        ],
    )
    .await;

    // Share → reveal → Received.
    create_share(
        &client,
        &ns,
        "read",
        json!({"secretRef": {"name": "db", "key": "a"}}),
    )
    .await;
    let shared = wait_shared(&client, &ns, "read").await;
    assert_eq!(open_link(&server, &shared).await, "first", "{p}");
    let received = wait_for(&client, &ns, "read", "phase Received", |o| {
        phase(o) == "Received"
    })
    .await;
    assert_eq!(ready(&received).unwrap().1, "Received", "{p}");

    // Reshare after reveal: the link is opened and the Secret changes at once.
    create_share(
        &client,
        &ns,
        "reshared",
        json!({"secretRef": {"name": "db", "key": "b"}, "onSecretChange": "Reshare"}),
    )
    .await;
    let first = wait_shared(&client, &ns, "reshared").await;
    let first_link = first.status.as_ref().unwrap().link.clone().unwrap();
    assert_eq!(open_link(&server, &first).await, "old", "{p}");
    update_secret(
        &client,
        &ns,
        "db",
        &[
            ("a", b"first"),
            ("b", b"new"),
            ("c", b"unread"),
            ("d", b"brief"),
        ],
    )
    .await;
    let second = wait_for(&client, &ns, "reshared", "a new live link", |o| {
        phase(o) == "Shared"
            && o.status.as_ref().and_then(|s| s.link.as_deref()) != Some(first_link.as_str())
    })
    .await;
    assert_eq!(open_link(&server, &second).await, "new", "{p}");
    wait_event(&client, &ns, "reshared", "Normal", "Reshared").await;
    no_burn_failed(&client, &ns, "reshared").await;

    // Delete unread → burned.
    create_share(
        &client,
        &ns,
        "unread",
        json!({"secretRef": {"name": "db", "key": "c"}}),
    )
    .await;
    let unread = wait_shared(&client, &ns, "unread").await;
    let live = server.stats().live_secrets;
    delete_share(&client, &ns, "unread").await;
    wait_gone(&client, &ns, "unread").await;
    assert_eq!(server.stats().live_secrets, live - 1, "{p}: burned");
    let link = unread.status.unwrap().link.unwrap();
    assert!(reveal(&server, &link, None).await.is_err(), "{p}");

    // Expiry (the server's clock moves on).
    create_share(
        &client,
        &ns,
        "brief",
        json!({"secretRef": {"name": "db", "key": "d"}, "ttl": "60s"}),
    )
    .await;
    wait_shared(&client, &ns, "brief").await;
    server.advance_clock(Duration::from_secs(61));
    let expired = wait_for(&client, &ns, "brief", "phase Expired", |o| {
        phase(o) == "Expired"
    })
    .await;
    assert_eq!(ready(&expired).unwrap().1, "Expired", "{p}");
    // A link that was live a moment ago was never taken for gone before its time.
    let read = shares(&client, &ns).get("read").await.unwrap();
    assert_eq!(phase(&read), "Received", "{p}");
}

#[tokio::test]
async fn the_lifecycle_works_on_the_current_server() {
    lifecycle(Profile::Current).await;
}

#[tokio::test]
async fn the_lifecycle_works_on_a_v023_server() {
    lifecycle(Profile::V0_23).await;
}

#[tokio::test]
async fn the_lifecycle_works_on_a_v020_server_with_receipts_under_private() {
    lifecycle(Profile::V0_20).await;
}

/// Reveal, then delete at once (before the operator checks the link): the burn finds the secret
/// consumed (current: `200 {"success":true}` without a record; v0.20/v0.23: `500 "Secret could
/// not be burned."`); the resource is gone within 20 s and no BurnFailed Event says otherwise.
async fn opened_then_deleted(p: Profile) {
    let (client, ns) = setup(&format!("opened-{p}")).await;
    let server = ots_server(profile(p));
    let _operator = Operator::start_with(&args(&ns, &server, "10m"), &[("RUST_LOG", "info")]);
    let shared = shared_db(&client, &ns, "opened", b"opened", json!({})).await;
    assert_eq!(open_link(&server, &shared).await, "opened");
    delete_opened_and_expect_release(&client, &ns, "opened", &p.to_string()).await;
}

#[tokio::test]
async fn revealing_then_deleting_at_once_releases_without_burn_failed_on_the_current_server() {
    opened_then_deleted(Profile::Current).await;
}

#[tokio::test]
async fn revealing_then_deleting_at_once_releases_without_burn_failed_on_a_v023_server() {
    opened_then_deleted(Profile::V0_23).await;
}

#[tokio::test]
async fn revealing_then_deleting_at_once_releases_without_burn_failed_on_a_v020_server() {
    opened_then_deleted(Profile::V0_20).await;
}

#[tokio::test]
async fn a_month_on_a_free_plan_is_ttl_not_allowed_with_at_most_three_share_calls_a_minute() {
    let (client, ns) = setup("free-plan").await;
    let server = ots_server(Config {
        plan: Plan::Free,
        accounts: vec![Account::new("free@example.com", "tok-free-plan")],
        ..Config::default()
    });
    let _operator = Operator::start_with(
        &fast_args(&ns, &server.url()),
        &[
            ("OTS_USERNAME", "free@example.com"),
            ("OTS_API_TOKEN", "tok-free-plan"),
            ("RUST_LOG", "info"),
        ],
    );
    let created = share_db_password_for_30d(&client, &ns).await;
    let obj = wait_for(&client, &ns, "month", "TtlNotAllowed", |o| {
        ready_reason_is(o, "TtlNotAllowed")
    })
    .await;
    assert_eq!(phase(&obj), "Failed");
    let message = ready(&obj).unwrap().2;
    assert!(
        message.contains("30d") && message.contains("14d"),
        "{message}"
    );
    wait_event(&client, &ns, "month", "Warning", "TtlNotAllowed").await;
    tokio::time::sleep(Duration::from_secs(60).saturating_sub(created.elapsed())).await;
    let shares = calls(&server, "share");
    assert!(shares <= 3, "{shares} share calls in 60 s");
    assert_eq!(server.stats().live_secrets, 0);
}

#[tokio::test]
async fn with_anonymous_v2_off_an_anonymous_share_goes_through_v1() {
    let w = World::with(
        "guest-off",
        Config {
            guest_routes: false,
            ..Config::default()
        },
        &[],
    )
    .await;
    w.secret("db", &[("a", b"guest"), ("b", b"burn")]).await;
    w.share_key("guest", "db", "a").await;
    let shared = w.shared("guest").await;
    assert_eq!(w.reveal(&shared).await, "guest");
    w.wait_phase("guest", "Received").await;
    w.share_key("burnt", "db", "b").await;
    w.shared("burnt").await;
    w.delete_share("burnt").await;
    w.wait_gone("burnt").await;
    assert_eq!(w.server.stats().live_secrets, 0, "burned through v1");
    let refused_v2 = w
        .server
        .requests()
        .iter()
        .filter(|r| r.operation == "share" && r.status == 403)
        .count();
    assert_eq!(refused_v2, 1, "v2 refused once, then v1 was remembered");
}

#[tokio::test]
async fn bad_credentials_fail_every_share_without_a_share_call_and_warn_once() {
    let (client, ns) = setup("verify-credentials").await;
    let server = ots_server(Config {
        accounts: vec![Account::new("ops@example.com", "the-right-token")],
        ..Config::default()
    });
    let operator = Operator::start_with(
        &fast_args(&ns, &server.url()),
        &[
            ("OTS_USERNAME", "ops@example.com"),
            ("OTS_API_TOKEN", "a-wrong-token"),
            ("RUST_LOG", "info"),
        ],
    );
    create_secret(&client, &ns, "db", &[("a", b"one"), ("b", b"two")]).await;
    for (name, key) in [("first", "a"), ("second", "b")] {
        create_share(
            &client,
            &ns,
            name,
            json!({"secretRef": {"name": "db", "key": key}}),
        )
        .await;
    }
    for name in ["first", "second"] {
        let obj = wait_for(&client, &ns, name, "Unauthorized", |o| {
            ready_reason_is(o, "Unauthorized")
        })
        .await;
        assert_eq!(phase(&obj), "Failed");
    }
    assert_eq!(
        calls(&server, "share"),
        0,
        "no share attempt with bad credentials"
    );
    let warnings = operator
        .logs()
        .lines()
        .filter(|l| l.contains("the server rejected the credentials") && l.contains("WARN"))
        .count();
    assert_eq!(
        warnings,
        1,
        "one Warning line per server:\n{}",
        operator.logs()
    );
}

#[tokio::test]
async fn a_server_with_a_larger_size_limit_takes_larger_values_with_ots_max_secret_bytes() {
    let w = World::with(
        "max-secret-bytes",
        Config {
            max_secret_bytes: 50_000,
            ..Config::default()
        },
        &["--ots-max-secret-bytes", "50000"],
    )
    .await;
    let big = vec![b'x'; 20_000];
    let huge = vec![b'y'; 60_000];
    w.secret("db", &[("big", &big), ("huge", &huge)]).await;
    w.share_key("big", "db", "big").await;
    let shared = w.shared("big").await;
    assert_eq!(w.reveal(&shared).await.len(), 20_000);
    w.share_key("huge", "db", "huge").await;
    let refused = w
        .wait_for("huge", "SecretTooLarge", |o| {
            ready_reason_is(o, "SecretTooLarge")
        })
        .await;
    assert!(
        ready(&refused).unwrap().2.contains("50000"),
        "{:?}",
        ready(&refused)
    );
}
